"""The check ``make mutate`` runs against each mutant of a model module
(tools/mutate.py, spec/mutations.md): exit 1 at the first check that differs from
the project's expectation, 0 when every check holds.

The checks: the fast unit tests of ``TESTS`` (each test function), every mutation
scenario of tests/mutation_scenarios (each must pass on fixed, both word sizes),
every protocol mutant of pagemap.checker.mutations (each killed by the check it
names, so that a mutant weakening a contract or an invariant is seen), every
scenario of scenarios/ on seed and fixed against its [expect] entry, all with
contracts on.

A mutant runs only the checks that can see it, cheapest first.  ``--map FILE``
runs every check once on the unmutated code under coverage.py, one coverage
context per check, and writes which checks execute each function of the
mutated modules, and how long each check took.  A mutant changes some lines of
one module (found by comparing the file with the unmutated source kept in the
map); a change inside a function's body can only be seen by a check that
enters that function (a lambda of a contract: a check that evaluates the
contract), so the gate runs those; a change anywhere else (module level, a
signature, a decorator that is not a removed contract, a function that runs at
import) runs every check.  Each
check has a time limit of ``SLACK`` times its unmutated time under coverage
(which is slower than without) plus ``GRACE_S``: a mutant that exceeds it hangs
or blows up the state space, and is killed.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib
import json
import pkgutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SLACK, GRACE_S = 4.0, 10.0
#: Unit-test files whose tests are quick and pointed.
TESTS = ("tests/test_slot.py", "tests/test_backends_layout.py", "tests/test_contracts.py",
         "tests/test_sequential.py", "tests/test_kernel_context.py", "tests/test_model_units.py",
         "tests/test_mutations.py::test_write_values_are_fresh")
#: A check slower than this on the unmutated code (under coverage) is left out of the
#: gate, except a mutation scenario: the slowest tenth took three quarters of the time;
#: ``--every`` runs them too, to see that they kill none of the gate's survivors.
CHECK_MAX_S = 2.0
IMPORT = "import"


class CheckTimeout(Exception):
    pass


@dataclass(frozen=True)
class Check:
    id: str
    #: None when the result is the expected one, else what differs
    run: Callable[[], str | None]


def _scenario_runs() -> Iterator[tuple[str, Callable[[], Any]]]:
    """(check id, its scenario's loader) of every scenario check: each mutation scenario
    on fixed at both word sizes, each scenario of scenarios/ on seed and on fixed."""
    from pagemap.checker.scenario import load

    for path in sorted((ROOT / "tests" / "mutation_scenarios").glob("*.toml")):
        for bits in (64, 32):
            yield f"ms:{path.stem}:{bits}", partial(load, path, "fixed", word_bits=bits)
    for path in sorted((ROOT / "scenarios").glob("*.toml")):
        for variant in ("seed", "fixed"):
            yield f"sc:{path.stem}:{variant}", partial(load, path, variant)


def _scenario_checks() -> Iterator[Check]:
    from pagemap.checker.command import run as run_check

    def mutation_scenario(cfg: Callable[[], Any]) -> Callable[[], str | None]:
        def run() -> str | None:
            _, out = run_check(cfg(), progress=False)
            return None if out.verdict == "pass" else f"{out.verdict} {out.invariant}"
        return run

    def scenario(cfg: Callable[[], Any], variant: str) -> Callable[[], str | None]:
        def run() -> str | None:
            c = cfg()
            exp = c.expect[variant]
            _, out = run_check(c, progress=False)
            want = (exp["verdict"], exp.get("invariant", out.invariant))
            got = (out.verdict, out.invariant if out.verdict == "violation" else want[1])
            return None if got == want else f"{out.verdict} {out.invariant}"
        return run

    for cid, cfg in _scenario_runs():
        yield Check(cid, mutation_scenario(cfg) if cid.startswith("ms:")
                    else scenario(cfg, cid.rsplit(":", 1)[1]))


def scenario_states() -> dict[str, list[object]]:
    """Verdict, invariant, states and transitions of every scenario check: a mutant argued
    equivalent should explore the very same state spaces as the unmutated code (``--states``
    on each, then compare)."""
    from pagemap.checker.command import run as run_check

    out: dict[str, list[object]] = {}
    for cid, cfg in _scenario_runs():
        _, o = run_check(cfg(), progress=False)
        out[cid] = [o.verdict, o.invariant, o.states, o.transitions]
    return out


def _protocol_checks() -> Iterator[Check]:
    """A mutant of a contract or an invariant shows as a protocol mutant no longer
    killed by the check it names.  A protocol mutant whose patch no longer applies
    (the mutant changed its text) is not counted as a kill."""
    from pagemap.checker import mutations as mut
    from pagemap.checker.patch import PatchError

    def protocol(name: str) -> Callable[[], str | None]:
        def run() -> str | None:
            pm = mut.MUTATIONS[name]
            try:
                replace = pm.replace()
            except PatchError:
                return None
            out = mut.run(replace, pm.scenario)
            if ((out.verdict, out.invariant) == ("violation", pm.invariant)
                    and (out.message or "").startswith(pm.contract)):
                return None
            return f"{out.verdict} {out.invariant}"
        return run

    for name in mut.MUTATIONS:
        yield Check(f"pm:{name}", protocol(name))


def _pytest(ids: list[str], plugins: list[object]) -> int:
    import pytest

    return int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                            "--rootdir", str(ROOT), *ids], plugins=plugins))


def checks() -> dict[str, Check]:
    return {c.id: c for c in [*_scenario_checks(), *_protocol_checks()]}


# -- the map ---------------------------------------------------------------------------


def _functions(src: str) -> list[tuple[int, int, int, bool]]:
    """(first body line, last line, depth, is a lambda) of every function and lambda."""
    out: list[tuple[int, int, int, bool]] = []

    def walk(node: ast.AST, depth: int) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                out.append((child.body[0].lineno, child.end_lineno or child.lineno,
                            depth, False))
            elif isinstance(child, ast.Lambda):
                out.append((child.body.lineno, child.body.end_lineno or child.body.lineno,
                            depth, True))
            walk(child, depth + 1)

    walk(ast.parse(src), 0)
    return out


def _innermost(funcs: list[tuple[int, int, int, bool]],
               line: int) -> tuple[int, int, bool] | None:
    inside = [f for f in funcs if f[0] <= line <= f[1]]
    if not inside:
        return None
    lo, hi, _, lam = max(inside, key=lambda f: (f[2], f[0]))
    return lo, hi, lam


def build_map(modules: list[str], out: Path) -> None:
    import coverage

    files = {m: str(ROOT / "model" / "pagemap" / f"{m}.py") for m in modules}
    cov = coverage.Coverage(data_file=None, include=list(files.values()), branch=False)
    cov.start()
    cov.switch_context(IMPORT)
    import pagemap

    for info in pkgutil.walk_packages(pagemap.__path__, "pagemap."):
        importlib.import_module(info.name)
    times: dict[str, float] = {}
    for check in checks().values():
        cov.switch_context(check.id)
        start = time.perf_counter()
        result = check.run()
        times[check.id] = time.perf_counter() - start
        if result is not None:
            raise SystemExit(f"the unmutated code fails {check.id}: {result}")

    from _pytest.stash import StashKey

    start_key: StashKey[float] = StashKey()

    class Timed:
        # from setup on: a fixture's work belongs to the test that first needs it
        def pytest_runtest_setup(self, item: Any) -> None:
            cov.switch_context(f"py:{item.nodeid}")
            item.stash[start_key] = time.perf_counter()

        def pytest_runtest_teardown(self, item: Any) -> None:
            if start_key in item.stash:
                times[f"py:{item.nodeid}"] = time.perf_counter() - item.stash[start_key]

    if _pytest(list(TESTS), [Timed()]) != 0:
        raise SystemExit("the unmutated code fails a test of TESTS")
    cov.stop()
    data = cov.get_data()
    # never the mutation scenarios, the pointed checks written to kill: small, but under load
    # one took just over the limit and its mutants survived
    slow = {c for c, t in times.items() if t > CHECK_MAX_S and not c.startswith("ms:")}
    mapping: dict[str, Any] = {"times": {c: t for c, t in times.items() if c not in slow},
                               "left_out": {c: times[c] for c in slow}, "modules": {}}
    for module, path in files.items():
        by_line = data.contexts_by_lineno(path)
        mapping["modules"][module] = {
            "source": Path(path).read_text(),
            "lines": {str(line): sorted(set(ctx))
                      for line, ctx in by_line.items()}}
    out.write_text(json.dumps(mapping))


# -- the gate --------------------------------------------------------------------------


def changed_lines(old: str, new: str) -> set[int]:
    """Lines of ``old`` (1-based) that differ in ``new``; a pure insertion marks the
    lines around it."""
    a, b = old.splitlines(), new.splitlines()
    lines: set[int] = set()
    for tag, i1, i2, _, _ in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        lines.update(range(i1 + 1, i2 + 1) if i2 > i1 else (max(1, i1), i1 + 1))
    return lines


def _removed_decorator(old: str, lines: set[int]) -> list[tuple[int, int, bool]] | None:
    """The lambdas of a decorator ``lines`` delete exactly (cosmic-ray's RemoveDecorator
    of a contract): deleting a contract is seen only where the contract is evaluated."""
    for node in ast.walk(ast.parse(old)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for dec in node.decorator_list:
                span = set(range(dec.lineno, (dec.end_lineno or dec.lineno) + 1))
                if span == lines:
                    lams = [(n.body.lineno, n.body.end_lineno or n.body.lineno, True)
                            for n in ast.walk(dec) if isinstance(n, ast.Lambda)]
                    return lams or None
    return None


def selected(entry: dict[str, Any], new: str, times: dict[str, float]) -> list[str]:
    """The checks a mutant (the module's new source) must pass, cheapest first."""
    old = entry["source"]
    covered = {int(k): v for k, v in entry["lines"].items()}
    lines = changed_lines(old, new)
    spans = _removed_decorator(old, lines)
    if spans is None:
        funcs = _functions(old)
        spans = []
        for line in lines:
            inner = _innermost(funcs, line)
            if inner is None:
                return sorted(times, key=times.__getitem__)
            spans.append(inner)
    ids = set()
    for lo, hi, lam in spans:
        for line in range(lo, hi + 1):
            ids.update(covered.get(line, ()))
            # a function run at import (a table built once) matters to every check; a
            # lambda's line runs at import as the decorator that holds it, not its body
            if IMPORT in covered.get(line, ()) and not lam:
                return sorted(times, key=times.__getitem__)
    return sorted(ids & set(times), key=times.__getitem__)


def _alarm(signum: int, frame: object) -> None:
    raise CheckTimeout


def gate(module: str, mapfile: Path, every: bool = False) -> int:
    data = json.loads(mapfile.read_text())
    times: dict[str, float] = data["times"]
    new = (ROOT / "model" / "pagemap" / f"{module}.py").read_text()
    if every:
        times = {**times, **data["left_out"]}
        ids = sorted(times, key=times.__getitem__)
    else:
        ids = selected(data["modules"][module], new, times)
    print(f"{len(ids)} checks")
    tests = [i[3:] for i in ids if i.startswith("py:")]
    if tests and _pytest(tests, []) != 0:
        print("killed by a unit test")
        return 1
    table = checks()
    signal.signal(signal.SIGALRM, _alarm)
    for cid in ids:
        if cid.startswith("py:"):
            continue
        limit = SLACK * times[cid] + GRACE_S
        signal.setitimer(signal.ITIMER_REAL, limit)
        try:
            result = table[cid].run()
        except CheckTimeout:
            result = f"over {limit:.0f} s (unmutated: {times[cid]:.1f} s under coverage)"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if result is not None:
            print(f"killed by {cid}: {result}")
            return 1
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="tools/mutation_gate.py")
    ap.add_argument("--map", type=Path, help="the check map (JSON)")
    ap.add_argument("--build", nargs="+", metavar="MODULE",
                    help="write the map for these modules instead of gating a mutant")
    ap.add_argument("--module", help="the mutated module")
    ap.add_argument("--every", action="store_true",
                    help="run every check, not only those of the mutated functions (to see "
                    "that the selection misses no kill)")
    ap.add_argument("--states", type=Path, metavar="FILE",
                    help="write every scenario check's verdict and state count (JSON)")
    args = ap.parse_args(argv)
    if args.states:
        args.states.write_text(json.dumps(scenario_states(), indent=0, sort_keys=True))
        return 0
    if args.build:
        build_map(args.build, args.map)
        return 0
    return gate(args.module, args.map, args.every)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

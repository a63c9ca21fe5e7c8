"""``make mutate``: mutation testing of the model's code with cosmic-ray (spec/mutations.md).

For each module of ``PROTOCOL`` (or ``--modules``) cosmic-ray generates
source-level mutants (its operators minus the exotic replacements of ``EXCLUDE``,
and none inside an annotation), and runs the gate (``tools/mutation_gate.py``)
against each, with the mutant applied to the module file: the checks that
execute the mutated function, cheapest first, from a map of the checks built
once on the unmutated code.  cosmic-ray edits the file in place, so everything
runs in throw-away copies of the repository (one per lane, ``--jobs`` lanes),
never in the work tree; each module's mutants are dealt to the lanes in turn,
one cosmic-ray session per (module, lane).  The sessions are kept in
``.mutate/`` for ``cr-report .mutate/<module>.<lane>.sqlite``.  The report gives the raw figure
(killed of sampled), the number of equivalent mutants excluded through the registry
``tools/equivalent.toml`` (one entry per mutant, with its reason; an entry that matches
no sampled mutant, or a killed one, is an error), and ends with

    mutants: K killed of N (P%)

where N is sampled minus equivalent.  A session is applied to its module by position:
``--rerun`` draws a module whose source changed since its sessions again.

Re-measuring after a change of the model is this one command (``--modules``
selects modules, ``--limit`` samples each module's mutants, ``make mutate``'s default
being ``--limit 30 --seed 1``); after a new check, ``--rerun`` runs only the survivors
again.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import os
import queue
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".mutate"
#: the equivalent mutants, one entry each with its reason (spec/mutations.md)
REGISTRY = ROOT / "tools" / "equivalent.toml"

#: the modules of the protocol, the mutant set of ``make mutate`` (spec/mutations.md)
PROTOCOL = ("codec", "slot", "radix", "pm", "fault", "munmap", "fileio", "removal")
#: the kernel around the protocol, with ``--modules``
KERNEL = ("sync", "vmrs", "mmap", "mprotect", "proc", "sched", "hardware")
MODULES = (*PROTOCOL, *KERNEL)

#: cosmic-ray operators left out: replacements no programmer would write for the
#: operator at hand (a bit-mask by a power, an addition by a shift), which only
#: multiply equivalent or trivially killed mutants.
EXCLUDE = (
    r"core/ReplaceBinaryOperator_\w+_(Pow|Div|FloorDiv|Mod|Mul)$",
    (r"core/ReplaceBinaryOperator_(Add|Sub|BitAnd|BitOr|BitXor|Mul|Mod|FloorDiv|Div|Pow)_"
     r"(LShift|RShift)$"),
    r"core/ReplaceComparisonOperator_(Eq|NotEq|Lt|LtE|Gt|GtE)_(Is|IsNot)$",
    r"core/ReplaceUnaryOperator_\w+_(UAdd|USub)$",
)
#: cosmic-ray's own limit per mutant, a backstop: the gate limits each check (mutation_gate)
TIMEOUT_S = 1800.0
COPY = ("model", "proofs", "tests", "scenarios", "tools", "pyproject.toml")


def _config(module: str, command: str) -> str:
    excl = ",\n  ".join(f'"{e}"'.replace("\\", "\\\\") for e in EXCLUDE)
    return (f'[cosmic-ray]\nmodule-path = "model/pagemap/{module}.py"\ntimeout = {TIMEOUT_S}\n'
            f'excluded-modules = []\ntest-command = "{command}"\n\n'
            f'[cosmic-ray.distributor]\nname = "local"\n\n'
            f'[cosmic-ray.filters.operators-filter]\nexclude-operators = [\n  {excl},\n]\n')


def _copy(dest: Path) -> None:
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".mutate"))
        else:
            shutil.copy2(src, dest / name)


def _sources_key(modules: list[str]) -> str:
    """A digest of everything the check map depends on (the code and the checks), so
    that a map built for the same sources is reused."""
    h = hashlib.sha256(" ".join(modules).encode())
    for name in COPY:
        for path in sorted((ROOT / name).rglob("*") if (ROOT / name).is_dir() else [ROOT / name]):
            if (path.is_file() and path.suffix in (".py", ".toml")
                    and path.name not in ("mutate.py", REGISTRY.name)
                    and "__pycache__" not in path.parts):
                h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def annotation_spans(src: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) (line, column) of every annotation of a module that has
    ``from __future__ import annotations``: they are never evaluated, so a mutant
    inside one is equivalent by construction (none otherwise)."""
    tree = ast.parse(src)
    if not any(isinstance(n, ast.ImportFrom) and n.module == "__future__"
               and any(a.name == "annotations" for a in n.names) for n in tree.body):
        return []
    anns: list[ast.expr] = []
    for node in ast.walk(tree):
        ann = (node.returns if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
               else node.annotation if isinstance(node, ast.arg | ast.AnnAssign) else None)
        if ann is not None:
            anns.append(ann)
    return [((a.lineno, a.col_offset), (a.end_lineno or a.lineno, a.end_col_offset or 0))
            for a in anns]


#: why _select skips a mutant in one lane's session: another lane's session runs it
LANE_SKIP = "another lane's"


def _skip(con: sqlite3.Connection, jobs: list[str], why: str) -> None:
    con.executemany("INSERT INTO work_results (job_id, worker_outcome, output, test_outcome, "
                    "diff) VALUES (?, 'SKIPPED', ?, NULL, '')", [(j, why) for j in jobs])
    con.commit()


def _select(db: Path, src: str, shard: int, lanes: int, limit: int | None, seed: int) -> None:
    """Skip the mutants inside annotations (see ``annotation_spans``), sample ``limit``
    of the rest when asked, and keep every ``lanes``-th of those from ``shard`` on:
    the order is by position and operator, the same in every lane's session."""
    spans = annotation_spans(src)
    con = sqlite3.connect(db)
    rows = con.execute("SELECT job_id, start_pos_row, start_pos_col, operator_name, occurrence "
                       "FROM mutation_specs WHERE job_id NOT IN "
                       "(SELECT job_id FROM work_results)").fetchall()
    _skip(con, [j for j, r, c, *_ in rows if any(a <= (r, c) < b for a, b in spans)],
          "in an annotation: never evaluated")
    rows = sorted((r for r in rows if not any(a <= (r[1], r[2]) < b for a, b in spans)),
                  key=lambda r: r[1:])
    keep = rows if limit is None else sorted(
        random.Random(seed).sample(rows, min(limit, len(rows))), key=lambda r: r[1:])
    mine = {r[0] for r in keep[shard::lanes]}
    _skip(con, [r[0] for r in rows if r[0] not in mine and r in keep], LANE_SKIP)
    _skip(con, [r[0] for r in rows if r not in keep], "sampled out")
    con.close()


def run_session(module: str, lane_dir: Path, shard: int, lanes: int, mapfile: Path,
                limit: int | None, seed: int, rerun: bool) -> Path:
    """A new session of ``module``'s mutants of ``shard``, or (``rerun``) the survivors
    of the existing one again, against the gate as it is now."""
    cfg, db = lane_dir / f"{module}.toml", OUT / f"{module}.{shard}.sqlite"
    gate = f"{sys.executable} tools/mutation_gate.py --map {mapfile} --module {module}"
    cfg.write_text(_config(module, gate))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(lane_dir / "model"), str(lane_dir)])}
    if rerun:
        con = sqlite3.connect(db)
        con.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'")
        con.commit()
        con.close()
    else:
        db.unlink(missing_ok=True)
        for cmd in ([_bin("cosmic-ray"), "init", str(cfg), str(db)],
                    [_bin("cr-filter-operators"), str(db), str(cfg)]):
            subprocess.run(cmd, cwd=lane_dir, env=env, check=True, capture_output=True)
        _select(db, (lane_dir / "model" / "pagemap" / f"{module}.py").read_text(), shard,
                lanes, limit, seed)
    subprocess.run([_bin("cosmic-ray"), "exec", str(cfg), str(db)], cwd=lane_dir, env=env,
                   check=True, capture_output=True)
    return db


@dataclass(frozen=True, order=True)
class Key:
    """A mutant, robust to edits elsewhere in its module: the function it is in (the
    decorators included), the text of its line, the operator, and which of that
    function's mutants with the same line text and operator it is (0, 1, ...)."""

    module: str
    function: str
    line: str
    operator: str
    occurrence: int = 0

    def __str__(self) -> str:
        return (f"{self.module}.py {self.function}: `{self.line}` {self.operator}"
                f"#{self.occurrence}")


def _function_of(src: str) -> dict[int, str]:
    """line -> dotted name of the innermost function or class around it ("" at module
    level); a decorator's lines belong to what it decorates."""
    names: dict[int, str] = {}

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = prefix + child.name
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                for line in range(first, (child.end_lineno or child.lineno) + 1):
                    names[line] = name
                walk(child, name + ".")
            else:
                walk(child, prefix)

    walk(ast.parse(src), "")
    return names


def mutant_keys(module: str, src: str,
                specs: list[tuple[str, int, int, str, int]]) -> dict[str, Key]:
    """job_id -> Key for cosmic-ray's mutation specs (job_id, row, col, operator,
    occurrence) of one module's source."""
    lines, funcs = src.splitlines(), _function_of(src)
    seen: dict[tuple[str, str, str], int] = {}
    keys = {}
    for job, row, _col, op, _occ in sorted(specs, key=lambda s: s[1:]):
        base = (funcs.get(row, ""), lines[row - 1].strip(), op.removeprefix("core/"))
        keys[job] = Key(module, *base, seen.get(base, 0))
        seen[base] = seen.get(base, 0) + 1
    return keys


@dataclass(frozen=True)
class Equivalent:
    key: Key
    reason: str


def load_registry(path: Path = REGISTRY) -> list[Equivalent]:
    """The entries of tools/equivalent.toml; each must name a mutant and say why."""
    entries = []
    for e in tomllib.loads(path.read_text()).get("equivalent", []):
        if not str(e.get("reason", "")).strip():
            raise ValueError(f"{path}: an entry without a reason: {e}")
        entries.append(Equivalent(Key(e["module"], e["function"], e["line"], e["operator"],
                                      int(e.get("occurrence", 0))), e["reason"]))
    return entries


@dataclass
class Score:
    killed: int = 0
    sampled: int = 0
    equivalent: int = 0
    survivors: list[Key] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def scored(self) -> int:
        return self.sampled - self.equivalent


def score(outcomes: dict[Key, str | None], registry: list[Equivalent]) -> Score:
    """Killed of sampled minus equivalent.  ``outcomes`` maps every sampled mutant to
    cosmic-ray's test outcome (None: not run yet).  A registry entry must be a sampled
    mutant that survived: one that matches nothing is stale, a killed one was not
    equivalent, and both are errors; an entry of a mutant not run yet counts for
    nothing."""
    out = Score()
    registered = {}
    for e in registry:
        if e.key in registered:
            out.errors.append(f"registered twice: {e.key}")
        registered[e.key] = e
    for key, outcome in sorted(outcomes.items()):
        if outcome is None:
            continue
        out.sampled += 1
        if outcome in ("KILLED", "INCOMPETENT"):
            out.killed += 1
            if key in registered:
                out.errors.append(f"registered as equivalent but killed: {key}")
        elif key in registered:
            out.equivalent += 1
        else:
            out.survivors.append(key)
    out.errors += [f"stale entry, no such mutant in the sample: {k}"
                   for k in registered if k not in outcomes]
    return out


def outcomes(module: str, dbs: list[Path], src: str) -> dict[Key, str | None]:
    """Every sampled (not skipped) mutant of ``module``'s sessions and its outcome."""
    result: dict[Key, str | None] = {}
    for db in dbs:
        con = sqlite3.connect(db)
        specs = con.execute("SELECT job_id, start_pos_row, start_pos_col, operator_name, "
                            "occurrence FROM mutation_specs").fetchall()
        done = {job: (worker == "SKIPPED", out if worker == "SKIPPED" else test)
                for job, worker, test, out in con.execute(
                    "SELECT job_id, worker_outcome, test_outcome, output FROM work_results")}
        con.close()
        for job, key in mutant_keys(module, src, specs).items():
            skipped, what = done.get(job, (False, None))
            if not skipped:
                result[key] = what
            elif what == LANE_SKIP:
                result.setdefault(key, None)  # sampled: its lane's session has it
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tools/mutate.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--modules", nargs="*", default=list(PROTOCOL), choices=list(MODULES))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="mutants per module (a sample)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rerun", action="store_true",
                    help="resume the sessions in .mutate/, their survivors again (after a new "
                    "check), and start the missing ones")
    ap.add_argument("--report", action="store_true",
                    help="only tally the sessions in .mutate/ (e.g. of an interrupted run)")
    args = ap.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    start = time.monotonic()
    lanes = max(1, args.jobs)
    if args.report:
        return _report(args.modules, start)
    with tempfile.TemporaryDirectory(prefix="pagemap-mutate-") as tmp:
        dirs = []
        for k in range(lanes):
            lane = Path(tmp) / f"lane{k}"
            lane.mkdir()
            _copy(lane)
            dirs.append(lane)
        if not args.rerun:
            for old in OUT.glob("*.sqlite"):
                old.unlink()
        # a session applies its mutants by position: one drawn from another source of the
        # module would mutate the wrong code, so a changed module is drawn again
        for m in args.modules:
            src, kept = ROOT / "model" / "pagemap" / f"{m}.py", OUT / f"{m}.py.src"
            if kept.exists() and kept.read_text() != src.read_text():
                if args.rerun and any(OUT.glob(f"{m}.[0-9]*.sqlite")):
                    print(f"{m}.py changed since its sessions: drawn again", flush=True)
                for old in OUT.glob(f"{m}.[0-9]*.sqlite"):
                    old.unlink()
            shutil.copy2(src, kept)
        shards = [(m, k) for m in args.modules for k in range(lanes)]
        mapfile = OUT / "map.json"
        # one map for the protocol modules and any others asked for, reused while the
        # sources are the same
        mapped = sorted({*PROTOCOL, *args.modules})
        key = _sources_key(mapped)
        keyfile = OUT / "map.key"
        if not (mapfile.exists() and keyfile.exists() and keyfile.read_text() == key):
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(dirs[0] / "model"),
                                                                str(dirs[0])])}
            subprocess.run([sys.executable, "tools/mutation_gate.py", "--map", str(mapfile),
                            "--build", *mapped], cwd=dirs[0], env=env, check=True)
            keyfile.write_text(key)
            print(f"check map built: {time.monotonic() - start:.0f} s", flush=True)
        # one session per (module, shard); a lane's copy is mutated by one session at a time
        free: queue.Queue[Path] = queue.Queue()
        for lane in dirs:
            free.put(lane)

        def job(module: str, shard: int) -> Path:
            lane = free.get()
            try:
                rerun = args.rerun and (OUT / f"{module}.{shard}.sqlite").exists()
                return run_session(module, lane, shard, lanes, mapfile, args.limit, args.seed,
                                   rerun)
            finally:
                free.put(lane)

        with ThreadPoolExecutor(max_workers=lanes) as pool:
            futures = [pool.submit(job, m, k) for m, k in shards]
            for f in futures:
                f.result()
    return _report(args.modules, start)


def _source(module: str) -> str:
    """The module's source its sessions were drawn from (the work tree's if not kept)."""
    kept = OUT / f"{module}.py.src"
    return (kept if kept.exists() else ROOT / "model" / "pagemap" / f"{module}.py").read_text()


def _pct(k: int, n: int) -> str:
    return f"{100 * k / n:.1f}%" if n else "-"


def _report(modules: list[str], start: float) -> int:
    """The tally of the sessions in .mutate/: raw, the equivalent mutants the registry
    excludes, and the score, killed of sampled minus equivalent (spec/mutations.md)."""
    total = Score()
    registry = load_registry()
    for module in modules:
        dbs = sorted(OUT.glob(f"{module}.[0-9]*.sqlite"))
        if not dbs:
            continue
        sc = score(outcomes(module, dbs, _source(module)),
                   [e for e in registry if e.key.module == module])
        total.killed += sc.killed
        total.sampled += sc.sampled
        total.equivalent += sc.equivalent
        total.survivors += sc.survivors
        total.errors += sc.errors
        print(f"{module:8} {sc.killed:4} killed of {sc.sampled:4} ({_pct(sc.killed, sc.sampled)})"
              f", {sc.equivalent:2} equivalent: {sc.killed} of {sc.scored} "
              f"({_pct(sc.killed, sc.scored)})")
    (OUT / "survivors.txt").write_text("".join(f"{s}\n" for s in total.survivors))
    print(f"{len(total.survivors)} survivors not registered as equivalent, listed in "
          f"{OUT / 'survivors.txt'}; {time.monotonic() - start:.0f} s")
    for err in total.errors:
        print(f"error in {REGISTRY.relative_to(ROOT)}: {err}")
    print(f"raw: {total.killed} killed of {total.sampled} ({_pct(total.killed, total.sampled)});"
          f" {total.equivalent} equivalent excluded ({REGISTRY.relative_to(ROOT)})")
    print(f"mutants: {total.killed} killed of {total.scored} "
          f"({_pct(total.killed, total.scored)})")
    return 0 if total.sampled and not total.errors else 1


if __name__ == "__main__":
    sys.exit(main())

"""Mutation tests of the protocol (pagemap.checker.mutations, spec/mutations.md).

Every mutation is a patch of the model's real source.  Each must be killed: its
scenario passes on the fixed variant, and with the patched steps the checker
reports a violation of the invariant the mutation names, after actually running
a patched step.  The survivors are checked to survive every mutation scenario,
so that spec/mutations.md's claims about them stay true; fault-drops-dirty is
shown to be killed once the lookup window it needs is opened.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
from pagemap.checker import mutations as mut
from pagemap.checker.explore import Outcome
from pagemap.checker.invariants import INVARIANTS
from pagemap.checker.patch import Patch, PatchError, apply
from pagemap.checker.scenario import load
from pagemap.machine import CODE
from pagemap.program import build_layout  # noqa: F401  (registers every step in CODE)

SPEC = Path(__file__).resolve().parents[1] / "spec" / "mutations.md"
WORD_BITS = (64, 32)


@functools.cache
def baseline(scenario: str, bits: int) -> Outcome:
    return mut.run(None, scenario, bits)


def executed_pcs(out: Outcome) -> set[int]:
    """Every pc a step of the counterexample ran (the violating step too)."""
    pcs = {pc for _, move in out.path if move is not None for pc in move.pcs}
    if out.final[1] is not None:
        pcs.update(out.final[1].pcs)
    return pcs


def test_enough_mutations_with_known_scenarios_and_invariants() -> None:
    assert len(mut.MUTATIONS) >= 15
    assert all(name == m.name for name, m in mut.MUTATIONS.items())
    assert not set(mut.MUTATIONS) & set(mut.SURVIVORS)
    for m in mut.MUTATIONS.values():
        assert m.scenario_path.is_file(), m.scenario
        assert m.invariant in INVARIANTS, m.invariant
        assert m.bare_invariant in [*INVARIANTS, "survives"], m.bare
        assert m.description and m.patches


def test_every_patch_applies_to_the_real_source() -> None:
    """The drift guard: a mutant is its patches, applied to today's real code; a patch
    whose text is gone raises, so no mutant can test an old copy of a step."""
    tables = [m.replace() for m in mut.MUTATIONS.values()]
    tables += [s.replace() for s in mut.SURVIVORS.values()] + [apply(mut.LOCKLESS_WINDOW)]
    for replace in tables:
        assert replace
        for name, fn in replace.items():
            assert name in CODE.by_name, f"no step {name} in the program"
            step = CODE.steps[CODE.pc(name)]
            assert step is not None and step.fn is not fn, name
    names = [m.name for m in mut.MUTATIONS.values()]
    assert [n for n, *_ in mut.protocol_mutants()] == names


def test_a_stale_patch_is_an_error() -> None:
    stale = Patch("pagemap.pm", "find_cas", "this text is not in find_cas", "x")
    with pytest.raises(PatchError, match="occurs 0 times"):
        apply([stale])
    with pytest.raises(PatchError, match="no function"):
        apply([Patch("pagemap.pm", "no_such_function", "a", "b")])


def test_a_patch_changes_the_step_and_leaves_the_module_alone() -> None:
    from pagemap import pm
    before = pm.find_cas
    [name] = mut.MUTATIONS["find-keeps-removal"].replace()
    assert name == "pm_find_page.cas" and pm.find_cas is before
    # a patched helper reaches every step that calls it, in other modules too
    steps = mut.MUTATIONS["put-wrong-shift"].replace()
    assert {"file_io.put", "pm_put_page.add", "__handle_page_fault.put"} <= set(steps)


def test_mutation_scenarios_declare_fixed_pass() -> None:
    for stem in mut.scenarios():
        cfg = load(mut.SCENARIO_DIR / f"{stem}.toml")
        assert cfg.expect.get("fixed", {}).get("verdict") == "pass", stem


@pytest.mark.parametrize("bits", WORD_BITS)
@pytest.mark.parametrize("name", sorted(mut.MUTATIONS))
def test_mutation_is_killed(name: str, bits: int) -> None:
    m = mut.MUTATIONS[name]
    base = baseline(m.scenario, bits)
    assert base.verdict == "pass", f"{m.scenario} fails without the mutation: {base.message}"
    replace = m.replace()
    out = mut.run(replace, m.scenario, bits)
    assert out.verdict == "violation", f"{name} survives {m.scenario}"
    assert out.invariant == m.invariant, f"{name}: {out.invariant}: {out.message}"
    assert (m.invariant == "contract") == bool(m.contract), name
    assert out.message.startswith(m.contract), f"{name}: another contract: {out.message}"
    # a local step merged into the one before it is not listed in the trace: unmerged
    unmerged = mut.run(replace, m.scenario, bits, merge_local=False)
    mutated = {CODE.pc(s) for s in replace}
    assert executed_pcs(unmerged) & mutated, f"{name}: the trace never runs a mutated step"


@pytest.mark.parametrize("name", sorted(mut.MUTATIONS))
def test_mutation_without_contracts(name: str) -> None:
    """With the steps' contracts off, the invariant checks alone: a mutant a contract
    kills first is killed by the invariant it breaks too, unless only a contract can
    tell it (``bare == "survives"``, argued in spec/mutations.md)."""
    m = mut.MUTATIONS[name]
    assert mut.run(None, m.scenario, contracts=False).verdict == "pass"
    out = mut.run(m.replace(), m.scenario, contracts=False)
    if m.bare_invariant == "survives":
        assert out.verdict == "pass", f"{name}: {out.invariant}: {out.message}"
    else:
        assert (out.verdict, out.invariant) == ("violation", m.bare_invariant), out.message


@pytest.mark.parametrize("name", sorted(mut.SURVIVORS))
def test_survivor_survives(name: str) -> None:
    """spec/mutations.md argues why each survives: it passes the scenarios it is checked
    against (every mutation scenario for the protocol's), with the contracts on (so off
    too: contracts only add checks)."""
    s = mut.SURVIVORS[name]
    assert s.kind in ("equivalent", "liveness", "gap", "open"), s.kind
    scenarios = s.checked or tuple(mut.scenarios())
    replace = s.replace()
    for scenario in scenarios:
        assert baseline(scenario, 64).verdict == "pass"
        out = mut.run(replace, scenario)
        assert out.verdict == "pass", f"{name} is killed by {scenario}: {out.message}"


def test_fault_drops_dirty_needs_the_lockless_window() -> None:
    """The PTE_D preservation in __handle_page_fault matters only if a lookup
    can run between pass 2 and pass 3: with that window the real code passes
    and the mutant loses the write."""
    window = apply(mut.LOCKLESS_WINDOW)
    assert mut.run(window, "fault-write-remove").verdict == "pass"
    both = {**window, **mut.SURVIVORS["fault-drops-dirty"].replace()}
    out = mut.run(both, "fault-write-remove")
    assert (out.verdict, out.invariant) == ("violation", "no-lost-write"), out.message


def test_spec_lists_every_mutation_and_survivor() -> None:
    text = SPEC.read_text()
    for name in list(mut.MUTATIONS) + list(mut.SURVIVORS):
        assert f"`{name}`" in text, f"spec/mutations.md does not mention {name}"


def test_write_values_are_fresh() -> None:
    """no-lost-write can only see a lost write if every write stores a value of its own:
    distinct per (thread, op) and never a backing store's initial value (those are
    negative).  A cosmic-ray mutant of write_value that makes values collide survived
    every scenario (hardware.py); this kills it."""
    from pagemap.hardware import write_value

    class T:
        def __init__(self, tid: int, op: int) -> None:
            self.id, self.op = tid, op

        def __getitem__(self, key: str) -> int:
            assert key == "op"
            return self.op

    values = [write_value(T(tid, op)) for tid in range(6) for op in range(8)]  # type: ignore[arg-type]
    assert len(set(values)) == len(values)
    assert min(values) > 0


def _script(name: str, file: str) -> object:
    """A script of tools/ (not a package module), loaded once as module `name`."""
    import importlib.util
    import sys

    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "tools" / file
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _gate() -> object:
    """tools/mutation_gate.py."""
    return _script("mutation_gate", "mutation_gate.py")


GATE_SOURCE = '''\
X = 1


@icontract.ensure(
    lambda m: m.ok)
def step(m):
    def inner(n):
        return n + 1
    return inner(X)
'''


def test_gate_runs_the_checks_that_enter_the_mutated_function() -> None:
    """make mutate's gate (tools/mutation_gate.py) runs, for a mutant, only the checks
    that execute the function it changes: a change in a nested function's body runs
    the checks of that function alone, a removed contract the checks that evaluate
    its lambda, and a change outside any body every check."""
    gate = _gate()
    lines = {"1": ["import"], "4": ["import"], "5": ["a", "import"], "7": ["b", "c"],
             "8": ["b"], "9": ["b", "c"]}
    entry = {"source": GATE_SOURCE, "lines": lines}
    times = {"a": 1.0, "b": 3.0, "c": 2.0, "d": 0.5}

    def sel(new: str) -> list[str]:
        return gate.selected(entry, new, times)  # type: ignore[attr-defined, no-any-return]

    assert gate.changed_lines(GATE_SOURCE, GATE_SOURCE.replace("n + 1", "n - 1")) == {8}  # type: ignore[attr-defined]
    assert sel(GATE_SOURCE.replace("n + 1", "n - 1")) == ["b"]
    assert sel(GATE_SOURCE.replace("inner(X)", "inner(X + 1)")) == ["c", "b"]
    assert sel(GATE_SOURCE.replace("@icontract.ensure(\n    lambda m: m.ok)\n", "")) == ["a"]
    assert sel(GATE_SOURCE.replace("X = 1", "X = 2")) == ["d", "a", "c", "b"]
    assert sel(GATE_SOURCE.replace("m.ok", "not m.ok")) == ["a"]
    # a function that runs at import (lines["8"] says so) matters to every check
    lines["8"] = ["b", "import"]
    assert sel(GATE_SOURCE.replace("n + 1", "n - 1")) == ["d", "a", "c", "b"]


def _mutate() -> object:
    """tools/mutate.py."""
    return _script("mutate_tool", "mutate.py")


KEYED_SOURCE = '''\
X = 1 + 2


@dec(lambda a: a + 1)
def f(a):
    b = a + 1
    return a + 1


class C:
    def g(self):
        return 1 + 1
'''


def test_mutants_are_keyed_by_function_line_text_and_occurrence() -> None:
    """The registry of equivalent mutants keys a mutant by its function (a decorator's
    lines belong to what it decorates), the text of its line, the operator and which of
    that function's mutants with the same line and operator it is: not by a line number,
    which any edit above it moves."""
    tool: Any = _mutate()
    op = "core/ReplaceBinaryOperator_Add_Sub"
    specs = [("j1", 1, 4, op, 0), ("j2", 4, 15, op, 1), ("j3", 6, 8, op, 2),
             ("j4", 7, 11, op, 3), ("j5", 12, 15, op, 4), ("j6", 7, 11, op + "x", 0)]
    keys = tool.mutant_keys("m", KEYED_SOURCE, specs)
    got = {j: (k.function, k.line, k.operator, k.occurrence) for j, k in keys.items()}
    assert got["j1"] == ("", "X = 1 + 2", "ReplaceBinaryOperator_Add_Sub", 0)
    assert got["j2"][:2] == ("f", "@dec(lambda a: a + 1)")
    assert got["j3"][:2] == ("f", "b = a + 1") and got["j4"][:2] == ("f", "return a + 1")
    assert got["j5"][:2] == ("C.g", "return 1 + 1")
    assert got["j6"][2:] == ("ReplaceBinaryOperator_Add_Subx", 0)
    # two mutants of one operator on one line: occurrences 0 and 1; an edit above keeps them
    twice = [("a", 6, 8, op, 0), ("b", 6, 12, op, 1)]
    before = tool.mutant_keys("m", KEYED_SOURCE.replace("b = a + 1", "b = a + 1 + a"), twice)
    shifted = "\n\n" + KEYED_SOURCE.replace("b = a + 1", "b = a + 1 + a")
    after = tool.mutant_keys("m", shifted, [(j, r + 2, c, o, n) for j, r, c, o, n in twice])
    assert [k.occurrence for k in before.values()] == [0, 1]
    assert before == after


def test_the_score_excludes_registered_equivalents_and_refuses_wrong_entries() -> None:
    """score(): killed of sampled minus equivalent.  A registry entry that matches no
    sampled mutant (stale) or a killed one (not equivalent) is an error; one registered
    twice too; a mutant not run yet counts for nothing."""
    tool: Any = _mutate()

    def key(n: int) -> Any:
        return tool.Key("m", "f", f"line {n}", "Op", 0)

    def eq(n: int) -> Any:
        return tool.Equivalent(key(n), "why")

    outcomes = {key(1): "KILLED", key(2): "SURVIVED", key(3): "SURVIVED",
                key(4): "INCOMPETENT", key(5): None}
    sc = tool.score(outcomes, [eq(2)])
    assert (sc.killed, sc.sampled, sc.equivalent, sc.scored) == (2, 4, 1, 3)
    assert sc.survivors == [key(3)] and sc.errors == []
    stale = tool.score(outcomes, [eq(2), eq(9)])
    assert len(stale.errors) == 1 and "stale" in stale.errors[0]
    killed = tool.score(outcomes, [eq(1)])
    assert len(killed.errors) == 1 and "killed" in killed.errors[0]
    assert killed.equivalent == 0 and killed.killed == 2
    assert tool.score(outcomes, [eq(5)]).errors == []  # not run yet: neither
    assert "twice" in tool.score(outcomes, [eq(2), eq(2)]).errors[0]


def test_the_registry_names_lines_of_todays_code_with_reasons(tmp_path: Path) -> None:
    """Every entry of tools/equivalent.toml names a protocol module, a function of it,
    a line of that function as the source has it now and one of cosmic-ray's operators,
    and says why (make mutate then checks that each is a sampled survivor)."""
    from cosmic_ray.plugins import operator_names

    tool: Any = _mutate()
    entries = tool.load_registry()
    assert entries
    ops = {o.removeprefix("core/") for o in operator_names()}
    root = Path(__file__).resolve().parents[1] / "model" / "pagemap"
    for e in entries:
        assert e.key.module in tool.PROTOCOL, e
        assert e.key.operator in ops, e
        assert len(e.reason) > 20, e
        src = (root / f"{e.key.module}.py").read_text()
        funcs = tool._function_of(src)
        lines = [n for n, text in enumerate(src.splitlines(), 1) if text.strip() == e.key.line]
        assert any(funcs.get(n, "") == e.key.function for n in lines), e
    bad = tmp_path / "equivalent.toml"
    bad.write_text('[[equivalent]]\nmodule = "pm"\nfunction = "f"\nline = "x"\n'
                   'operator = "Op"\nreason = " "\n')
    with pytest.raises(ValueError, match="without a reason"):
        tool.load_registry(bad)


def test_outcomes_read_both_lanes_and_leave_out_what_is_not_sampled(tmp_path: Path) -> None:
    """A lane's session marks the other lane's mutants skipped: they are sampled (run, or
    still to run, there); mutants sampled out, in annotations or of excluded operators
    are not; so an entry of the other lane's mutant is not stale while it waits."""
    import sqlite3

    tool: Any = _mutate()
    src = "def f(a):\n    return a + 1\n"
    op = "core/ReplaceBinaryOperator_Add_Sub"
    specs = [(f"j{n}", 2, 11, op + s, 0) for n, s in enumerate(["", "x", "y", "z"])]

    Row = tuple[str, str, str | None, str | None]

    def lane(k: int, results: list[Row]) -> Path:
        db = tmp_path / f"m.{k}.sqlite"
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE mutation_specs (job_id, start_pos_row, start_pos_col, "
                    "operator_name, occurrence)")
        con.execute("CREATE TABLE work_results (job_id, worker_outcome, test_outcome, output)")
        con.executemany("INSERT INTO mutation_specs VALUES (?, ?, ?, ?, ?)", specs)
        con.executemany("INSERT INTO work_results VALUES (?, ?, ?, ?)", results)
        con.commit()
        con.close()
        return db

    skip = "SKIPPED"
    common: list[Row] = [("j2", skip, None, "sampled out"),
                         ("j3", skip, None, "an excluded operator")]
    lane0: list[Row] = [("j0", "NORMAL", "KILLED", ""), ("j1", skip, None, tool.LANE_SKIP)]
    lane1: list[Row] = [("j0", skip, None, tool.LANE_SKIP), ("j1", "NORMAL", "SURVIVED", "")]
    first = [lane(0, lane0 + common)]  # lane 1's session not made yet
    got = {k.operator: v for k, v in tool.outcomes("m", first, src).items()}
    assert got == {"ReplaceBinaryOperator_Add_Sub": "KILLED", "ReplaceBinaryOperator_Add_Subx": None}
    key = tool.mutant_keys("m", src, specs)["j1"]
    assert tool.score(tool.outcomes("m", first, src), [tool.Equivalent(key, "why")]).errors == []
    both = [*first, lane(1, lane1 + common)]
    got = {k.operator: v for k, v in tool.outcomes("m", both, src).items()}
    assert got == {"ReplaceBinaryOperator_Add_Sub": "KILLED",
                   "ReplaceBinaryOperator_Add_Subx": "SURVIVED"}

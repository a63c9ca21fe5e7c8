"""The state-space reduction changes no verdict.

The explorer runs a thread's local steps (registers only) at once after the
step before them (``merge_local``).  For every scenario of the suite on both
variants, and every mutation on its killing scenario, the verdict and the
invariant must be the same with the reduction off, and the reduced run must
store no more states than the full one.

The search on several processes (``workers=2``) is the same search: same
verdict, counts, depth and shortest trace as on one."""

from __future__ import annotations

import pytest
from pagemap.checker import mutations as mut
from pagemap.checker.explore import Explorer
from pagemap.checker.scenario import load
from pagemap.checker.suite import scenario_files

SCENARIOS = scenario_files()


def _digest(out):  # type: ignore[no-untyped-def]
    """Everything an outcome says, traces included, in comparable form."""
    def mv(m):  # type: ignore[no-untyped-def]
        return None if m is None else (m.actor, m.flush, tuple(m.pcs), m.branch, tuple(m.notes))
    return (out.verdict, out.invariant, out.message, out.states, out.transitions, out.max_depth,
            out.limit, [(st, mv(m)) for st, m in out.path], (out.final[0], mv(out.final[1])))


def _parallel_same(cfg, replace=None, **kw):  # type: ignore[no-untyped-def]
    one = Explorer(cfg, contracts=False, replace=replace).explore(progress=False, **kw)
    two = Explorer(cfg, contracts=False, replace=replace).explore(progress=False, workers=2,
                                                                  **kw)
    assert _digest(two) == _digest(one)
    return one


def _pair(cfg, replace=None):  # type: ignore[no-untyped-def]
    on = Explorer(cfg, merge_local=True, replace=replace).explore(progress=False)
    off = Explorer(cfg, merge_local=False, replace=replace).explore(progress=False)
    return on, off


@pytest.mark.parametrize("variant", ["seed", "fixed"])
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_same_verdict_without_reduction(path, variant) -> None:  # type: ignore[no-untyped-def]
    on, off = _pair(load(path, variant))
    assert (on.verdict, on.invariant) == (off.verdict, off.invariant)
    if on.verdict == "pass":
        assert on.states <= off.states


@pytest.mark.parametrize("name", sorted(mut.MUTATIONS))
def test_mutation_same_verdict_without_reduction(name: str) -> None:
    m = mut.MUTATIONS[name]
    cfg, replace = load(m.scenario_path, "fixed"), m.replace()
    on, off = _pair(cfg, replace)
    assert (on.verdict, on.invariant) == (off.verdict, off.invariant) == ("violation", m.invariant)
    _parallel_same(cfg, replace)  # the workers run the mutant's steps too


#: Enough states for several rounds of chunks (the parallel search hands out up
#: to 200 states a chunk), few enough to keep the test quick.
PARALLEL_CAP = 600


@pytest.mark.parametrize("variant", ["seed", "fixed"])
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_parallel_search_is_the_same_search(path, variant) -> None:  # type: ignore[no-untyped-def]
    """Verdict, state and transition counts, depth and the shortest trace are
    those of one process, whether the run completes or stops at the cap."""
    _parallel_same(load(path, variant), max_states=PARALLEL_CAP)


def test_parallel_search_decides_a_whole_space() -> None:
    """A pass over a space of thousands of states, decided on two workers."""
    one = _parallel_same(load(SCENARIOS[0], "fixed"))
    assert one.verdict == "pass" and one.states > PARALLEL_CAP


def test_reduction_reduces_something() -> None:
    """Not a vacuous switch: some scenario stores fewer states with it."""
    cfg = load(SCENARIOS[0], "fixed")
    on, off = _pair(cfg)
    assert on.states < off.states

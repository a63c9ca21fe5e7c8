"""The state-space reduction changes no verdict.

The explorer runs a thread's local steps (registers only) at once after the
step before them (``merge_local``).  For every scenario of the suite on both
variants, and every mutation on its killing scenario, the verdict and the
invariant must be the same with the reduction off, and the reduced run must
store no more states than the full one."""

from __future__ import annotations

import pytest
from pagemap.checker import mutations as mut
from pagemap.checker.explore import Explorer
from pagemap.checker.scenario import load
from pagemap.checker.suite import scenario_files

SCENARIOS = scenario_files()


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
    on, off = _pair(load(m.scenario_path, "fixed"), m.replace())
    assert (on.verdict, on.invariant) == (off.verdict, off.invariant) == ("violation", m.invariant)


def test_reduction_reduces_something() -> None:
    """Not a vacuous switch: some scenario stores fewer states with it."""
    cfg = load(SCENARIOS[0], "fixed")
    on, off = _pair(cfg)
    assert on.states < off.states

"""Refinement: every transition of the executable model, on sampled states of every
scenario (both variants), is a step of the symbolic removal system or leaves its
projection unchanged; initial states satisfy the symbolic init; on fixed every
invariant of the proofs holds in every reachable state.  And the check is not
blind: a wrong symbolic step, or a wrong step of the model, is caught."""

from __future__ import annotations

from typing import Any

import pytest
from pagemap.machine import Machine, ThreadView
from pagemap.pageflags import pte2ppn
from pagemap.removal import _next_pte

from proofs.removal import refinement
from proofs.removal.invariants import INVARIANTS
from proofs.removal.system import STEPS, Alt, System

#: Steps no scenario can exercise, and why (spec/removal/index.md):
#: rm_reowe needs a process whose VMRs are not contiguous on pm_vmrs (the
#: scenario format declares a process's VMRs together); other_store_dirty changes
#: the projection only when a dirty entry of another core stores into a page whose
#: data was just written back, which the fixed protocol never allows and seed
#: reaches only past the checker's first violation.
UNEXERCISED = {"rm_reowe", "other_store_dirty"}


@pytest.fixture(scope="module")
def report() -> refinement.Report:
    return refinement.run(max_states=1500, walks=25)


def test_every_transition_is_a_symbolic_step(report: refinement.Report) -> None:
    assert not report.failures, "\n".join(report.failures[:10])
    assert report.scenarios == 2 * len(refinement.all_scenarios())
    assert report.pairs > 200_000
    assert report.pairs - report.stutter > 50_000  # real steps, not only stuttering
    assert report.composite > 0  # E's thread ending in the same step as a store


def test_invariants_hold_in_reachable_states(report: refinement.Report) -> None:
    # check_state records a failure for any invariant false in a fixed state;
    # the count says it ran on many states and foci.
    assert report.invariant_checks > 50_000
    assert len(INVARIANTS) > 20


def test_every_step_is_exercised(report: refinement.Report) -> None:
    matched = {name.split("+")[0] for name in report.matched}
    assert {s.name for s in STEPS} - matched == UNEXERCISED


def _no_d_bit(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """tlb_store_clean forgetting the CPU's PTE_D update."""
    from z3 import And, Not
    return [Alt(And(pre["e"], Not(pre["ed"]), pre["x_w"], pre["xn"], pre["xp"]),
                {"ed": True, "newer": True})]


def test_a_wrong_symbolic_step_is_caught() -> None:
    rep = refinement.Report()
    checker = refinement.Checker(rep, replace={"tlb_store_clean": _no_d_bit})
    path = refinement.EXTRA / "refine-read-then-write.toml"
    refinement.check_scenario(checker, path, "fixed", max_states=3000, walks=5)
    assert any("no symbolic step" in f and "xd: False -> True" in f for f in rep.failures)


def _p3_forgets_dirty(m: Machine, t: ThreadView) -> object:
    """pass 3 (atomic-pte-update) exchanging the PTE for 0 but not setting PG_DIRTY:
    the model, mutated.  The checker sees nothing until the page is freed."""
    m.touch(pte2ppn(t["rm_pte"]), "pm_remove_contig folds PTE_D")
    _next_pte(t, "pm_remove_contig.p3_read", "pm_remove_contig.p3_unlock")
    return None


def test_a_wrong_model_step_is_caught() -> None:
    rep = refinement.Report()
    checker = refinement.Checker(rep)
    path = refinement.SCENARIOS / "write-vs-remove.toml"
    refinement.check_scenario(checker, path, "fixed", max_states=5000, walks=20,
                              model_replace={"pm_remove_contig.p3_dirty": _p3_forgets_dirty})
    assert any("pm_remove_contig.p3_dirty" in f and "no symbolic step" in f
               for f in rep.failures)

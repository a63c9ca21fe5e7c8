"""Refinement: every transition of the executable model is a step of the symbolic
removal system the proofs use (the same System, CMP lemma on), declared for that
concrete step, or leaves its projection unchanged; initial states satisfy the
symbolic init; on fixed every invariant of the proofs holds in every reachable state.
`pagemap verify` runs it exhaustively (proofs/removal/refinement.py: collect); these
tests run a sample for speed, and show that the check is not blind: a wrong symbolic
step, a wrong or mutated model step, a deleted symbolic step and a step without the
concrete step among its labels are each reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pagemap.checker import mutations as mut
from pagemap.machine import PROC_RUNNING_S, PROC_WAITING, Machine, ThreadView
from pagemap.pageflags import PGSHIFT, pte2ppn
from pagemap.removal import _next_pte
from pagemap.verify import earlier_record

from proofs.removal import refinement, steps_mmu, steps_pm, steps_remover
from proofs.removal.findings import EXPECTED
from proofs.removal.invariants import INVARIANTS
from proofs.removal.steps_mmu import shoot_e
from proofs.removal.system import STEPS, Alt, System

#: A step the suite cannot exercise, and why (spec/removal/index.md, section 5):
#: another core's dirty entry storing into a page just written back changes the
#: projection only when the protocol lost the dirty bit, which fixed never allows and
#: seed reaches only past the checker's first violation.
UNEXERCISED = {"other_store_dirty"}


@pytest.fixture(scope="module")
def report() -> refinement.Report:
    """Inside `pagemap verify`: the totals of its exhaustive refinement run (handed
    over as a record); elsewhere a bounded run of every scenario."""
    rec = earlier_record("refinement", "refinement/totals")
    if rec is not None:
        return refinement.Report.from_totals(rec.witness)
    return refinement.run(max_states=1500, walks=25, findings=False)


def test_every_transition_is_a_symbolic_step(report: refinement.Report) -> None:
    assert not report.failures, "\n".join(report.failures[:10])
    assert report.scenarios == 2 * len(refinement.all_scenarios())
    assert report.pairs > 200_000
    assert report.pairs - report.stutter > 50_000  # real steps, not only stuttering
    assert report.composite > 0  # E's thread ending in the same step as a store


def test_every_match_declares_its_concrete_step(report: refinement.Report) -> None:
    assert not report.unlabelled, report.unlabelled.most_common(5)


def test_invariants_hold_in_reachable_states(report: refinement.Report) -> None:
    assert report.invariant_checks > 50_000
    assert len(INVARIANTS) > 20


def test_every_step_is_exercised(report: refinement.Report) -> None:
    matched = {name.split("+")[0] for name in report.matched}
    missing = {s.name for s in STEPS} - matched
    # verify's exhaustive run also explores seed past its violations, where
    # other_store_dirty may be realised; the bounded sample never reaches it
    assert missing <= UNEXERCISED if report.exhaustive else missing == UNEXERCISED


def _no_d_bit(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """tlb_store_clean forgetting the CPU's PTE_D update."""
    from z3 import And, Not
    return [Alt(And(pre["e"], Not(pre["ed"]), pre["ew"], pre["x_pte_w"], pre["xn"], pre["xp"]),
                {"ed": True, "newer": True})]


def test_a_wrong_symbolic_step_is_caught() -> None:
    rep = refinement.Report()
    checker = refinement.Checker(rep, replace={"tlb_store_clean": _no_d_bit})
    path = refinement.EXTRA / "refine-read-then-write.toml"
    refinement.check_scenario(checker, path, "fixed", max_states=3000, walks=5)
    assert any("no symbolic step" in f and "xd: False -> True" in f for f in rep.failures)


def test_deleting_rm_reowe_is_caught() -> None:
    """rm_reowe (X's process joins a new batch after its shootdown) is realised by
    refine-reowe's interleaved pm_vmrs; without the step those transitions have no
    symbolic counterpart."""
    path = refinement.EXTRA / "refine-reowe.toml"
    rep = refinement.Report()
    refinement.check_scenario(refinement.Checker(rep), path, "fixed")
    assert not rep.failures and rep.matched["rm_reowe"] > 0 and rep.per_run[0][-1]
    gone = refinement.Report()
    checker = refinement.Checker(gone, replace={"rm_reowe": lambda sys, pre, post: []})
    refinement.check_scenario(checker, path, "fixed")
    assert any("pm_remove_contig.p2_unlock" in f and "no symbolic step" in f
               and "x_sent: True -> False" in f for f in gone.failures), gone.failures[:3]


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


def test_a_real_source_mutant_is_caught() -> None:
    """A mutant from the real source: generic_file_write skips PG_DIRTY
    (``file-write-no-dirty``, its contracts unwrapped so that the run reaches the
    refinement check).  Against the proved system the write has no step, and the
    dirty-loop invariants fail."""
    path = Path(mut.SCENARIO_DIR) / "load-write-remove-load.toml"
    clean = refinement.Report()
    refinement.check_scenario(refinement.Checker(clean), path, "fixed")
    assert not clean.failures
    rep = refinement.Report()
    refinement.check_scenario(refinement.Checker(rep), path, "fixed",
                              model_replace={n: mut.unwrap(f) for n, f in  # the step's own
                                             # contract would stop the run before the write ends
                                             mut.MUTATIONS["file-write-no-dirty"].replace().items()})
    assert any("file_io.dirty" in f and "no symbolic step" in f for f in rep.failures)
    assert any("invariant dirty-recorded false" in f for f in rep.failures)


def test_a_real_source_mutant_of_the_dirty_loop_is_caught() -> None:
    """The dirty loop clears PG_DIRTY but never queues the page for writepage
    (``dirty-no-writeback``): the test step has no symbolic step."""
    path = Path(mut.SCENARIO_DIR) / "load-write-remove-load.toml"
    rep = refinement.Report()
    refinement.check_scenario(refinement.Checker(rep), path, "fixed",
                              model_replace=mut.MUTATIONS["dirty-no-writeback"].replace())
    assert any("pm_remove_contig.dirty_test" in f and "no symbolic step" in f
               for f in rep.failures)
    assert any("invariant dirty-recorded false" in f for f in rep.failures)


def test_a_step_matched_for_a_concrete_step_it_does_not_declare_is_reported() -> None:
    rep = refinement.Report()
    checker = refinement.Checker(rep)
    path = refinement.SCENARIOS / "read-vs-remove.toml"
    cfg = refinement.load(path, "fixed")
    rel = checker.rel(cfg)
    rel.by_label.pop("pm_find_page.cas")  # find_cas no longer declares it
    refinement.check_scenario(checker, path, "fixed")
    assert rep.unlabelled and {lab for lab, _ in rep.unlabelled} == {"pm_find_page.cas"}
    assert any("whose labels do not include pm_find_page.cas" in f for f in rep.failures)


def test_coverage_row_reports_a_missing_alternative(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(refinement, "UNEXERCISED", {})
    monkeypatch.setattr(refinement, "UNCOVERED", {})
    rep = refinement.Report()
    rep.all_alternatives = {("fixed", "find_cas", 0), ("fixed", "find_cas", 1)}
    rep.hit = {("fixed", "find_cas", 0)}
    cov = next(r for r in refinement.records(rep) if r.name == "refinement/coverage")
    assert cov.result == "violation" and "find_cas" in cov.detail
    rep.hit = set(rep.all_alternatives)
    cov = next(r for r in refinement.records(rep) if r.name == "refinement/coverage")
    assert cov.result == "pass"


def test_coverage_allowlist_is_not_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    """An allowlisted alternative (``UNEXERCISED``) passes only while no transition
    realises it and the system still has it; each entry has its reason."""
    assert all(why for why in refinement.UNEXERCISED.values())
    assert all(why for why in refinement.UNCOVERED.values())
    assert not set(refinement.UNEXERCISED) & set(refinement.UNCOVERED)
    rep = refinement.Report()
    rep.all_alternatives = {("fixed", "find_cas", 0), ("fixed", "find_cas", 1)}
    rep.hit = {("fixed", "find_cas", 0)}
    monkeypatch.setattr(refinement, "UNCOVERED", {})
    monkeypatch.setattr(refinement, "UNEXERCISED", {("fixed", "find_cas", 1): "a reason"})
    cov = next(r for r in refinement.records(rep) if r.name == "refinement/coverage")
    assert (cov.result, cov.expected) == ("pass", "pass"), cov.detail
    # not yet realised by a scenario: incomplete, and expected so
    monkeypatch.setattr(refinement, "UNEXERCISED", {})
    monkeypatch.setattr(refinement, "UNCOVERED", {("fixed", "find_cas", 1): "a scenario"})
    cov = next(r for r in refinement.records(rep) if r.name == "refinement/coverage")
    assert (cov.result, cov.expected) == ("incomplete", "incomplete"), cov.detail
    rep.hit = set(rep.all_alternatives)  # realised after all: the entry must go
    cov = next(r for r in refinement.records(rep) if r.name == "refinement/coverage")
    assert cov.result == "violation" and "allowlisted but realised" in cov.detail
    rep.all_alternatives = {("fixed", "find_cas", 0)}  # the alternative is gone
    cov = next(r for r in refinement.records(rep) if r.name == "refinement/coverage")
    assert cov.result == "violation" and "allowlisted but realised or gone" in cov.detail


def test_every_holding_alternative_is_realised() -> None:
    """Coverage credits each alternative of the concrete step's own steps that holds,
    not only the first one tried: munmap's own-core shootdown (flushed at once) also
    satisfies the alternative in which E was already empty or gets a pending flush."""
    rep = refinement.Report()
    refinement.check_scenario(refinement.Checker(rep), refinement.SCENARIOS /
                              "munmap-vs-remove.toml", "fixed")
    first = {(n, k) for n, k in rep.alternatives}
    assert {(v, n, k) for v, n, k in rep.hit} - {("fixed", n, k) for n, k in first}


def test_a_finding_is_realised_by_a_concrete_transition() -> None:
    """F2's counterexample (rm_send_x breaks tlb-covered) happens in the model: the
    async shootdown of finding-async-shootdown, seen through the abstraction.  The
    exhaustive search for all of them is `pagemap verify`'s (refinement/finding/...)."""
    rep = refinement.Report()
    checker = refinement.Checker(rep, labels=False)
    checker.wanted = [(k, e) for k, e in enumerate(EXPECTED) if e.finding == "F2"]
    path = refinement.SCENARIOS / "finding-async-shootdown.toml"
    refinement.check_scenario(checker, path, "fixed-without-removal-shootdown-wait")
    assert {EXPECTED[k].step for k in rep.realised} == {"rm_send_x"}
    assert all("shootdown_and_reset.send" in w for w in rep.realised.values())
    # the fixed variant does not realise it
    none = refinement.Report()
    fixed = refinement.Checker(none, labels=False)
    fixed.wanted = checker.wanted
    refinement.check_scenario(fixed, path, "fixed")
    assert not none.realised


def test_seed_past_a_counterexample_is_counted_not_failed() -> None:
    """On seed a stale dirty entry stores into the page the remover is freeing (F5):
    the state is already outside the invariant at another focus, where the proved
    system claims nothing.  Such pairs are counted (``outside``, ``beyond``), never
    on fixed, where every state is inside."""
    path = refinement.SCENARIOS / "finding-f5-shared-page.toml"
    for variant in ("seed", "fixed"):
        rep = refinement.Report()
        refinement.check_scenario(refinement.Checker(rep), path, variant)
        assert not rep.failures, rep.failures[:3]
        assert (rep.outside + rep.beyond > 0) == (variant == "seed")


# -- the kernel context: each new alternative of the proved system is needed ---------------


def test_an_scp_shootdown_that_cannot_miss_e_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed's proc_tlbshootdown of a PROC_RUNNING_S process flushes only the remover's
    core (F6): without the alternative in which E's core is not reached, the send has
    no symbolic step."""
    path = refinement.SCENARIOS / "finding-scp-shootdown.toml"
    clean = refinement.Report()
    refinement.check_scenario(refinement.Checker(clean), path, "seed")
    assert not clean.failures, clean.failures[:3]
    monkeypatch.setattr(steps_remover, "shoot_e",
                        lambda sys, pre, post, remote=True: shoot_e(sys, pre, post, False))
    rep = refinement.Report()
    refinement.check_scenario(refinement.Checker(rep), path, "seed")
    assert any("shootdown_and_reset.send" in f and "no symbolic step" in f
               for f in rep.failures), rep.failures[:3]


def _sync_only(sys: System, pre: dict[str, Any], post: dict[str, Any],
               remote: bool = True) -> list[Alt]:
    """shoot_e flushing E at once only when sync: the caller's own core forgotten."""
    from z3 import And
    out = shoot_e(sys, pre, post, remote)
    return [Alt(And(out[0].guard, pre["sync"]), out[0].changes), *out[1:]]


def test_a_shootdown_forgetting_the_own_core_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """munmap on E's own core flushes it at once, also with async shootdowns."""
    monkeypatch.setattr(steps_mmu, "shoot_e", _sync_only)
    rep = refinement.Report()
    refinement.check_scenario(refinement.Checker(rep), refinement.SCENARIOS /
                              "munmap-vs-remove.toml", "fixed")
    assert any("munmap.shootdown" in f and "no symbolic step" in f and "e: True -> False" in f
               for f in rep.failures), rep.failures[:3]


def test_an_insert_that_cannot_fail_is_caught() -> None:
    """[faults] enomem: radix_insert fails on an empty slot (an alternative of insert)."""
    def no_enomem(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
        return [a for k, a in enumerate(steps_pm.insert(sys, pre, post)) if k != 1]

    path = refinement.SCENARIOS / "finding-fileio-enomem.toml"
    clean = refinement.Report()
    refinement.check_scenario(refinement.Checker(clean), path, "fixed")
    assert not clean.failures and clean.alternatives[("insert", 1)] > 0
    rep = refinement.Report()
    refinement.check_scenario(refinement.Checker(rep, replace={"insert": no_enomem}), path,
                              "fixed")
    assert any("pm_insert_page.insert" in f and "no symbolic step" in f for f in rep.failures)


def test_an_scp_blocking_abandons_its_tlb() -> None:
    """An SCP whose uthread sleeps is PROC_WAITING and its core's TLB is gone: that
    transition is E's core leaving (``core_leaves``), so a non-empty E may end in it
    (``tlb_exit``); a transition of an MCP, or that does not block, is not."""
    path = refinement.SCENARIOS / "scp-sleeps-while-removed.toml"
    rep = refinement.Report()
    refinement.check_scenario(refinement.Checker(rep), path, "fixed")
    assert not rep.failures, rep.failures[:3]
    ex = refinement.Explorer(refinement.load(path, "fixed"), contracts=False, merge_local=False)
    layout = ex.layout
    [c] = [c for c, core in enumerate(layout.cfg.cores) if core.proc >= 0]
    state_off = layout.proc_off(layout.cfg.cores[c].proc, "state")
    seen, todo, sleeps, others = set(), [refinement.initial_state(layout)], 0, 0
    while todo:
        s = todo.pop()
        for t, _actor, _flush, _label in refinement._moves(ex, s):
            if s[state_off] == PROC_RUNNING_S and t[state_off] == PROC_WAITING:
                sleeps += 1
                assert refinement.core_leaves(layout, s, t, c)
                assert not any(t[o] for o in layout.tlb_off[c].values())
            elif refinement.core_leaves(layout, s, t, c):
                # otherwise only when the core's last thread is done
                others += any(t[layout.thread0[u]] for u in layout.cfg.cores[c].threads)
            if t not in seen:
                seen.add(t)
                todo.append(t)
    assert sleeps > 0 and others == 0


def test_scenarios_out_of_scope_have_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    """The refinement suite leaves out only scenarios with an op the proved system does not
    model, each with its reason as a row of its own.  Every op has an image now, so every
    scenario of the repository is in; an op declared out takes its scenarios with it."""
    assert refinement.OUT_OF_SCOPE_OPS == {} and refinement.excluded() == {}
    assert refinement.all_scenarios() == refinement.every_scenario()
    monkeypatch.setattr(refinement, "OUT_OF_SCOPE_OPS", {"mprotect": "a reason"})
    gone = refinement.excluded()
    assert gone and set(gone) == {
        p.stem for p in refinement.every_scenario()
        if any(op.op == "mprotect" for th in refinement.load(p, "fixed").threads
               for op in th.ops)}
    assert all(why == "mprotect: a reason" for why in gone.values())
    assert len(gone) + len(refinement.all_scenarios()) == len(refinement.every_scenario())
    rows = {r.name: r for r in refinement.records(refinement.Report())}
    for stem, why in gone.items():
        r = rows[f"refinement/{stem}"]
        assert (r.result, r.expected) == ("incomplete", "incomplete") and why in r.detail
    # in scope: a full munmap, an SCP, a blocking readpage, a kernel-only ENOMEM
    kept = {p.stem for p in refinement.all_scenarios()}
    assert {"munmap-vs-remove", "scp-sleeps-while-removed", "blocking-readpage",
            "finding-fileio-enomem"} <= kept
    # KFS's failing writepage (F8) is modelled: its scenarios are in the suite
    assert {"finding-kfs-writeback", "kfs-mapped-writer", "refine-kfs-kept-flag"} <= kept


def test_void_alternatives_are_left_out_of_coverage() -> None:
    """An alternative whose guard Z3 simplifies to false on the variant, or that changes
    nothing (its concrete steps stutter), can explain no transition: coverage leaves it
    out, and says how many.  Every other alternative stays in."""
    from pagemap.config import FIXES

    fixed, seed = refinement.Relations(FIXES, 64), refinement.Relations([], 64)
    # async-only or SCP-only alternatives of the send are false on fixed ...
    assert fixed.void[("rm_send_x", 6)] == "false on this variant"
    assert ("rm_send_x", 6) not in seed.void
    # ... and the shootdown of another VMR that finds E empty changes nothing
    assert seed.void[("shootdown_other", 2)] == "changes nothing (stutters)"
    assert ("rm_send_x", 0) not in fixed.void and ("shootdown_other", 0) not in seed.void
    assert len(fixed.void) < sum(len(a) for a in fixed.alts.values()) // 5


# -- coverage scenarios: each realises what it was written for -----------------------------

#: (scenario, variant) -> the (step, alternative)s it was added to realise (refinement.py:
#: they left UNCOVERED).  `pagemap verify` checks the union over the suite; this keeps each
#: scenario honest on its own, in a few seconds.
COVERAGE_SCENARIOS = {
    ("locked-fault-vs-remove", "seed"): {("fault_install_other", 1)},
    ("locked-fault-vs-remove", "fixed"): {("fault_install_other", 1)},
    ("skipped-munmap-vs-remove", "seed"): {("mu_p1_other", 3), ("mu_p1_other", 4),
                                           ("mu_p2_other", 6), ("mu_p2_other", 7)},
    ("skipped-store-after-writeback", "seed"): {("other_store_present", 4)},
    ("early-shootdown-locked", "seed"): {("rm_send_x", 2)},
    ("early-shootdown-locked", "fixed"): {("rm_send_x", 3)},
    ("scp-shootdown-two-procs", "seed"): {("rm_send_x", 12)},
    ("scp-shootdown-skipped", "seed"): {("rm_send_x", 15)},
}


@pytest.mark.parametrize("stem,variant", sorted(COVERAGE_SCENARIOS),
                         ids=[f"{s}-{v}" for s, v in sorted(COVERAGE_SCENARIOS)])
def test_a_coverage_scenario_realises_its_alternatives(stem: str, variant: str) -> None:
    path = refinement.SCENARIOS / f"{stem}.toml"
    assert path in refinement.all_scenarios()
    rep = refinement.Report()
    assert refinement.check_scenario(refinement.Checker(rep), path, variant)
    assert not rep.failures, rep.failures[:3]
    want = {(variant, n, k) for n, k in COVERAGE_SCENARIOS[(stem, variant)]}
    assert want <= rep.hit, want - rep.hit
    assert not want & (set(refinement.UNCOVERED) | set(refinement.UNEXERCISED))


#: (scenario path, finding's fix) -> the (invariant, step) it realises on fixed-without-FIX
FINDING_SCENARIOS = {
    (refinement.SCENARIOS / "skipped-fault-vs-remove.toml", "removal-vmr-overlap"):
        ("passes-visit-every-vmr", "fault_install_other"),
    (refinement.EXTRA / "refine-f3-unlink-locked.toml", "removal-vmr-overlap"):
        ("passes-visit-every-vmr", "mu_unlink"),
    (refinement.EXTRA / "refine-f3-other-unlink.toml", "removal-vmr-overlap"):
        ("passes-visit-every-vmr", "other_unlink"),
    (refinement.EXTRA / "refine-f1-munmap-race-other.toml", "atomic-pte-update"):
        ("dirty-recorded", "mu_p1_other"),
    (refinement.SCENARIOS / "finding-kfs-writeback.toml", "removal-writeback-error"):
        ("dirty-recorded", "rm_writepage"),
    (refinement.SCENARIOS / "kfs-mapped-writer.toml", "removal-writeback-error"):
        ("dirty-loop-post", "rm_writepage"),
    (refinement.SCENARIOS / "finding-split-unpublished.toml", "split-vmr-under-pm-lock"):
        ("aux/x", "split_shrink_x"),
    (refinement.EXTRA / "refine-split-tlb.toml", "split-vmr-under-pm-lock"):
        ("tlb-covered", "split_shrink_x"),
    (refinement.EXTRA / "refine-split-other.toml", "split-vmr-under-pm-lock"):
        ("passes-visit-every-vmr", "split_shrink_other"),
    (refinement.SCENARIOS / "finding-mmap-foff-window.toml", "mmap-foff-first"):
        ("stable-foff", "mx_link"),
    (refinement.SCENARIOS / "finding-mprotect-keeps-dirty.toml", "removal-fold-always"):
        ("dirty-recorded", "rm_p3_x"),
    (refinement.EXTRA / "refine-f11-other.toml", "removal-fold-always"):
        ("dirty-recorded", "rm_p3_other"),
    (refinement.EXTRA / "refine-f1-mprotect-window.toml", "atomic-pte-update"):
        ("tlb-dirty-recorded", "mp_pte_write_x"),
    (refinement.EXTRA / "refine-f1-mprotect-other.toml", "atomic-pte-update"):
        ("dirty-recorded", "mp_pte_other"),
}


@pytest.mark.parametrize("path,fix", sorted(FINDING_SCENARIOS),
                         ids=[p.stem for p, _ in sorted(FINDING_SCENARIOS)])
def test_a_finding_scenario_realises_its_counterexample(path: Path, fix: str) -> None:
    """The counterexample happens in the model with FIX off, and not with every fix on;
    the finding search finds it in the refinement-only scenarios (it is not UNREALISED)."""
    key = FINDING_SCENARIOS[(path, fix)]
    assert key not in refinement.UNREALISED
    wanted = [(k, e) for k, e in enumerate(EXPECTED) if (e.invariant, e.step) == key]
    assert len(wanted) == 1 and wanted[0][1].fix == fix
    for variant, realised in ((f"fixed-without-{fix}", True), ("fixed", False)):
        rep = refinement.Report()
        checker = refinement.Checker(rep, labels=False)
        checker.wanted = wanted
        refinement.check_scenario(checker, path, variant)
        assert (wanted[0][0] in rep.realised) == realised, (variant, rep.realised)


SPLIT_OTHER = (refinement.EXTRA / "refine-split-other.toml",
               refinement.EXTRA / "refine-split-other-read.toml")


def test_a_split_of_another_vmr_moves_its_pte_between_classes() -> None:
    """On seed, split_vmr's shrink of another VMR takes its tail's PTE naming P out of the
    passes' reach (class a to b: split_shrink_other) and pm_add_vmr brings it back
    (split_publish_other), each for every present/dirty state of that PTE across the two
    scenarios.  Without the shrink step the model's split is unmatched.  The link comes
    after the shrink broke passes-visit-every-vmr (P is not pinned here), so it is
    checked against the system without the CMP lemma (``beyond``); without the link step
    nothing explains it there, and it is only counted (``outside``)."""

    def runs(replace: dict[str, Any] | None = None) -> refinement.Report:
        rep = refinement.Report()
        checker = refinement.Checker(rep, replace=replace)
        for path in SPLIT_OTHER:
            assert refinement.check_scenario(checker, path, "seed")
        return rep

    rep = runs()
    assert not rep.failures, rep.failures[:3]
    for name in ("split_shrink_other", "split_publish_other"):
        assert {("seed", name, k) for k in range(4)} <= rep.hit, name
    no_shrink = runs({"split_shrink_other": lambda sys, pre, post: []})
    assert any("split_vmr.shrink" in f for f in no_shrink.failures), no_shrink.failures[:3]
    no_link = runs({"split_publish_other": lambda sys, pre, post: []})
    assert not no_link.failures and no_link.outside > rep.outside
    assert not any(h[1] == "split_publish_other" for h in no_link.hit)


KFS_SCENARIOS = (refinement.SCENARIOS / "finding-kfs-writeback.toml",
                 refinement.SCENARIOS / "kfs-mapped-writer.toml",
                 refinement.EXTRA / "refine-kfs-kept-flag.toml")


@pytest.mark.parametrize("variant", ["seed", "fixed"])
def test_kfs_writepage_refines_its_failure_alternative(variant: str) -> None:
    """KFS's writepage returns -1: every such transition is rm_writepage's failure
    alternative (1), never the writing one (0); on fixed the page stays dirty in the page
    map with the slot's removal flag kept, and every invariant holds on every state."""
    rep = refinement.Report()
    checker = refinement.Checker(rep)
    for path in KFS_SCENARIOS:
        refinement.check_scenario(checker, path, variant)
    assert not rep.failures, rep.failures[:3]
    assert all(run[-1] for run in rep.per_run)  # exhaustive
    assert (variant, "rm_writepage", 1) in rep.hit
    assert (variant, "rm_writepage", 0) not in rep.hit
    assert rep.matched["rm_writepage"] > 0


def test_a_writepage_that_cannot_fail_is_caught() -> None:
    """rm_writepage without its failure alternative: KFS's writepage has no symbolic step
    (on fixed the page regains PG_DIRTY and loses PG_REMOVAL, which writing never does)."""
    def writes(sys, pre, post):  # type: ignore[no-untyped-def]
        return steps_remover.rm_writepage(sys, pre, post)[:1]

    rep = refinement.Report()
    checker = refinement.Checker(rep, replace={"rm_writepage": writes})
    refinement.check_scenario(checker, KFS_SCENARIOS[0], "fixed")
    assert any("pm_remove_contig.writepage" in f and "no symbolic step" in f
               and "rmf: True -> False" in f for f in rep.failures), rep.failures[:3]


def test_refine_kfs_kept_flag_meets_the_kept_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    """refine-kfs-kept-flag on fixed reaches what kept_flag allows: the slot's removal
    flag without PG_REMOVAL between the removes, the second remove's mark CAS on that
    word, and the lookup's CAS about to clear it."""
    from pagemap.slot import slot_check_removal
    from pagemap.word import int_word

    from proofs.removal.state import Find, Rm

    seen: set[str] = set()
    abstract = refinement.abstract

    def spy(*args: Any, **kw: Any) -> dict[str, Any]:
        a = abstract(*args, **kw)
        if a["kfs"] and not a["rmf"] and slot_check_removal(int_word(64), a["slot"]):
            if a["rm"] == Rm.IDLE:
                seen.add("idle")
            if a["rm"] == Rm.MCAS:
                seen.add("mark_cas")
            if a["fpc"] == Find.CAS:
                seen.add("find_cas")
        return a

    monkeypatch.setattr(refinement, "abstract", spy)
    rep = refinement.Report()
    refinement.check_scenario(refinement.Checker(rep), KFS_SCENARIOS[2], "fixed")
    assert not rep.failures, rep.failures[:3]
    assert seen == {"idle", "mark_cas", "find_cas"}


# -- split_vmr: partial munmap (F10) ------------------------------------------------------

SPLIT = ("finding-split-unpublished", "munmap-partial-vs-fault", "munmap-partial-vs-remove")


def test_partial_munmap_is_in_the_suite() -> None:
    """A partial munmap's split_vmr is steps_split's: its scenarios are in the suite, and
    so are a partial mprotect's (a split, then steps_mprotect on the piece); mmap with
    its merges are in too (steps_mmap)."""
    kept = {p.stem for p in refinement.all_scenarios()}
    assert set(SPLIT) | {"refine-split-tlb", "mmap-merge-vs-remove"} <= kept


@pytest.mark.parametrize("variant", ["seed", "fixed-without-split-vmr-under-pm-lock", "fixed"])
def test_f10_is_realised_at_the_shrink_without_the_fix(variant: str) -> None:
    """F10's counterexamples happen in the model: split_vmr's shrink takes the tail page's
    VMR off pm_vmrs while X names P (aux/x) and, on seed, while the remover is between
    reading and writing X (aux/registers).  With the fix there is no shrink outside pm_lock, and the
    runs refine the proved system with no failure."""
    wanted = [(k, e) for k, e in enumerate(EXPECTED) if e.finding == "F10"]
    rep = refinement.Report()
    checker = refinement.Checker(rep, labels=variant == "fixed")
    checker.wanted = wanted
    path = refinement.SCENARIOS / "finding-split-unpublished.toml"
    assert refinement.check_scenario(checker, path, variant)
    got = {EXPECTED[k].invariant for k in rep.realised}
    if variant == "fixed":
        assert not got and not rep.failures, rep.failures[:3]
    else:
        # with atomic-pte-update on, the remover's read-modify-write of X is pass 3's
        # fold, which needs a D bit this scenario never sets
        # on seed the shrink also lands in the middle of pass 3's X (aux/mprotect)
        assert got == ({"aux/x", "aux/registers", "aux/mprotect"} if variant == "seed"
                       else {"aux/x"}), got
        assert all("split_vmr.shrink" in w for w in rep.realised.values())


def _split_shrinks_unlocked(m: Machine, t: ThreadView) -> object:
    """split_vmr with the fix, but old->vm_end = va stored at once, outside pm_lock (the
    publication alone under pm_lock): the model, mutated."""
    from pagemap import vmrs

    out = mut.unwrap(vmrs.split_new)(m, t)
    m.set_vf(t["sp_old"] - 1, "end", t["sp_va"])
    return out


def test_a_split_shrinking_outside_pm_lock_is_caught() -> None:
    """On fixed, a split whose shrink is not in the pm_lock critical section takes the
    tail's VMR off pm_vmrs: no symbolic step of the fixed system does that."""
    path = refinement.SCENARIOS / "finding-split-unpublished.toml"
    rep = refinement.Report()
    refinement.check_scenario(refinement.Checker(rep), path, "fixed",
                              model_replace={"split_vmr.new": _split_shrinks_unlocked})
    assert any("split_vmr.new" in f and "no symbolic step" in f and "x_linked: True -> False"
               in f for f in rep.failures), rep.failures[:3]


def test_an_abstraction_with_the_declared_geometry_is_caught(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """X's VMR is the record that maps X now: taken as the declared record instead, the
    tail of a split stays 'linked' on seed while the remover's passes no longer reach
    it, and the pass ends without having visited X."""
    from proofs.removal.abstraction import View

    path = refinement.SCENARIOS / "finding-split-unpublished.toml"
    monkeypatch.setattr(View, "xrec", lambda self, f: None if f.v is None else f.rec(self.L))
    rep = refinement.Report()
    refinement.check_scenario(refinement.Checker(rep), path, "seed")
    assert any("no symbolic step" in f for f in rep.failures), rep.failures[:3]


def test_deleting_split_shrink_x_is_caught() -> None:
    """split_shrink_x is what seed's split_vmr.shrink does to a tail X: without it the
    transition has no symbolic counterpart."""
    path = refinement.SCENARIOS / "finding-split-unpublished.toml"
    rep = refinement.Report()
    refinement.check_scenario(refinement.Checker(rep,
                              replace={"split_shrink_x": lambda sys, pre, post: []}),
                              path, "seed")
    assert any("split_vmr.shrink" in f and "no symbolic step" in f
               and "x_linked: True -> False" in f for f in rep.failures), rep.failures[:3]
# -- mmap (F14): the scenarios are in the suite, the window is seen where the C has it ------

MMAP_SCENARIOS = ("finding-mmap-foff-window", "mmap-vs-remove", "mmap-vs-file-write",
                  "mmap-vs-munmap-vs-remove", "finding-populate-error",
                  "populate-error-sibling-tlb", "mmap-merge-vs-remove",
                  "mmap-merge-next-vs-remove", "mmap-merge-populate-error")


def test_mmap_scenarios_are_in_the_suite() -> None:
    """mmap is modelled (steps_mmap), its failing populate (F13) and both merges too."""
    kept = {p.stem for p in refinement.all_scenarios()}
    assert set(MMAP_SCENARIOS) <= kept


def _merge_run(variant: str, replace: dict[str, Any] | None = None,
               scenario: str = "mmap-merge-vs-remove") -> refinement.Report:
    rep = refinement.Report()
    assert refinement.check_scenario(refinement.Checker(rep, replace=replace),
                                     refinement.SCENARIOS / f"{scenario}.toml", variant)
    return rep


MERGES = ("mmap-merge-vs-remove", "mmap-merge-next-vs-remove", "mmap-merge-populate-error")


@pytest.mark.parametrize("scenario", MERGES)
@pytest.mark.parametrize("variant", ["seed", "fixed"])
def test_merge_refines(variant: str, scenario: str) -> None:
    """merge_vmr's extend stutters (X's VMR is the record that held X), and destroy_vmr's
    unlink of the record grown over moves X into the grown one: mx_merge_unlink_x, for
    the new VMR merged into the VMR before, for the mapped next VMR merged into the new
    one (its PTE present and dirty), and before a populate that fails (whose error path
    destroys the merged record, a sibling's PTE in it).  On seed, a transition past a
    counterexample that only a loose relation happens to hold for counts as outside the
    invariant, not as a match by a step that does not declare it."""
    rep = _merge_run(variant, scenario=scenario)
    assert not rep.failures, rep.failures[:3]
    assert rep.matched["mx_merge_unlink_x"] > 0


def _first_on_pm(self: Any, f: Any) -> int | None:
    """X's VMR as the first record on pm_vmrs containing X (a mutant of View.xrec)."""
    if f.v is None:
        return None
    m, va = self.m, f.vpn(self.L) << PGSHIFT
    maps = [r for r in m.proc_vmrs(f.proc(self.L)) if m.vf(r, "base") <= va < m.vf(r, "end")]
    linked = [r for r in maps if m.on_pm(r)]
    return min(linked, key=lambda r: m.vf(r, "on_pm")) if linked else (maps or [None])[0]


def test_merge_needs_its_unlink_and_the_record_that_held_x(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without mx_merge_unlink_x the unlink that moves X is unmatched.  With X's VMR as
    find_vmr finds it (the lower record) X moves at the extend, in the merge of the next
    VMR back in the passes (the new VMR is last on pm_vmrs); as the first record on
    pm_vmrs, into a record whose walk, begun before the extend, stops short of X, and
    pass 3 is claimed past X it never visited: the refinement reports both."""
    from proofs.removal.abstraction import View

    for scenario in ("mmap-merge-vs-remove", "mmap-merge-next-vs-remove"):
        gone = _merge_run("fixed", replace={"mx_merge_unlink_x": lambda sys, pre, post: []},
                          scenario=scenario)
        assert any("pm_remove_vmr.unlink" in f for f in gone.failures), gone.failures[:3]

    def lowest(self: View, f: Any) -> int | None:
        return self.m.find_vmr(f.proc(self.L), f.vpn(self.L) << PGSHIFT) if f.v is not None else None

    with monkeypatch.context() as mp:
        mp.setattr(View, "xrec", lowest)
        low = _merge_run("fixed", scenario="mmap-merge-next-vs-remove")
        assert any("merge_vmr.extend" in f for f in low.failures), low.failures[:3]
    with monkeypatch.context() as mp:
        mp.setattr(View, "xrec", _first_on_pm)
        first = _merge_run("fixed", scenario="mmap-merge-populate-error")
        assert any("pm_remove_contig.p3_" in f for f in first.failures), first.failures[:3]


def _populate_run(variant: str, replace: dict[str, Any] | None = None) -> refinement.Report:
    rep = refinement.Report()
    checker = refinement.Checker(rep, replace=replace)
    checker.wanted = [(k, e) for k, e in enumerate(EXPECTED) if e.finding == "F13"]
    assert refinement.check_scenario(
        checker, refinement.SCENARIOS / "finding-populate-error.toml", variant)
    return rep


@pytest.mark.parametrize("variant", ["fixed-without-populate-unmap-on-error", "fixed"])
def test_populate_error_path_refines_both_ways(variant: str) -> None:
    """__do_mmap's MAP_POPULATE error path is mx_populate_failed, then munmap's steps (the
    fix: from pass 1, so mu_p1_x and the rest) or straight to the unlink (the seed's
    destroy_vmr); F13's counterexample is realised at the error path without the fix only."""
    rep = _populate_run(variant)
    assert not rep.failures, rep.failures[:3]
    fixed = variant == "fixed"
    assert {"mx_populate_failed", "mu_pm_lock", "mu_unlink", "mu_end"} <= set(rep.matched)
    assert ("mu_p1_x" in rep.matched) == fixed and ("mu_p2_x" in rep.matched) == fixed
    assert bool(rep.realised) == (not fixed)
    assert all("mmap.populate_failed" in w for w in rep.realised.values())


def test_a_populate_error_path_that_unmaps_on_seed_is_caught() -> None:
    """mx_populate_failed with the fix's change on every variant (into munmap's pass 1):
    the seed's destroy_vmr goes straight to the unlink, and the refinement reports it."""
    from z3 import And, Not

    from proofs.removal.state import Mu, Mx

    def always_unmaps(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
        g = And(pre["mu"] == Mu.NONE, pre["mx"] == Mx.NONE, pre["x_alive"], Not(pre["mp_rmw"]))
        return [Alt(g, {"mu": Mu.P1, "mu_need": False})]

    rep = _populate_run("fixed-without-populate-unmap-on-error",
                        replace={"mx_populate_failed": always_unmaps})
    assert any("mmap.populate_failed" in f and "no symbolic step" in f for f in rep.failures), \
        rep.failures[:3]
    assert not rep.realised


MPROTECT_SCENARIOS = ("finding-mprotect-keeps-dirty", "finding-mprotect-livelock",
                      "mprotect-vs-dirty-bit", "mprotect-vs-file-write", "mprotect-vs-remove",
                      "mprotect-partial", "mprotect-vs-munmap-vs-remove")


def test_mprotect_is_in_the_suite() -> None:
    """mprotect is modelled (steps_mprotect), of a whole VMR and of part of one, whose
    split_vmr is steps_split's and whose PTE loop finds X by process and page."""
    suite = {p.stem for p in refinement.all_scenarios()}
    assert set(MPROTECT_SCENARIOS) <= suite
    assert not any(op.startswith("mprotect") for op in refinement.OUT_OF_SCOPE_OPS)


@pytest.mark.parametrize("stem", MPROTECT_SCENARIOS)
def test_mprotect_scenarios_refine(stem: str) -> None:
    """Every transition of the mprotect scenarios is a step (F12's looping `continue` a
    stutter), exhaustively, on seed and fixed.  A partial mprotect splits X's VMR: on
    seed some states lie past F10's counterexamples at the shrink, where the system is
    not claimed; on fixed none does."""
    path = refinement.SCENARIOS / f"{stem}.toml"
    reps = {}
    for variant in ("seed", "fixed"):
        reps[variant] = rep = refinement.Report()
        assert refinement.check_scenario(refinement.Checker(rep), path, variant)
        assert not rep.failures, rep.failures[:3]
    assert not reps["fixed"].outside
    partial = stem in ("mprotect-partial", "mprotect-vs-munmap-vs-remove")
    assert bool(reps["seed"].outside) == partial


def test_f11_is_realised_on_seed_and_not_on_fixed() -> None:
    """F11: on seed, finding-mprotect-keeps-dirty's pass 3 zeroes the dirty PTE of the VMR
    made read-only (p3_zero after p3_read found no fold to do); not on fixed."""
    wanted = [(k, e) for k, e in enumerate(EXPECTED)
              if (e.invariant, e.step) == ("dirty-recorded", "rm_p3_zero_x")]
    assert len(wanted) == 1 and wanted[0][1].seed and not wanted[0][1].alone
    path = refinement.SCENARIOS / "finding-mprotect-keeps-dirty.toml"
    for variant, realised in (("seed", True), ("fixed", False)):
        rep = refinement.Report()
        checker = refinement.Checker(rep, labels=False)
        checker.wanted = wanted
        refinement.check_scenario(checker, path, variant)
        assert (wanted[0][0] in rep.realised) == realised, variant
        if realised:
            assert "pm_remove_contig.p3_zero" in rep.realised[wanted[0][0]]


def test_a_pass_3_choosing_by_the_old_constant_is_caught() -> None:
    """A p3_lock step that folds as the declared (writable) VMR did, not by vm_prot now:
    on seed, pass 3's lock of the VMR mprotect made read-only has no step."""
    from z3 import And, Not

    from proofs.removal.state import Rm

    def declared(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
        return [Alt(And(pre["rm"] == Rm.P3, pre["x_vis"], Not(pre["x_v3"]), Not(pre["rm_x3"])),
                    {"rm_x3": True, "rm_w": True})]

    path = refinement.SCENARIOS / "finding-mprotect-keeps-dirty.toml"
    rep = refinement.Report()
    refinement.check_scenario(refinement.Checker(rep, replace={"rm_p3_lock_x": declared}),
                              path, "seed")
    assert any("pm_remove_contig.p3_lock" in f and "no symbolic step" in f
               and "rm_x3: False -> True" in f for f in rep.failures), rep.failures[:3]


def test_an_mprotect_rewrite_dropping_d_is_caught() -> None:
    """The model, mutated: mprotect's cmpxchg (atomic-pte-update) rewriting the PTE
    without its D bit.  The checker sees a lost write only once the page is freed; the
    refinement check sees the step at once."""
    from pagemap import mprotect as mp
    from pagemap.pageflags import PTE_D, PTE_P

    def drops_d(m: Machine, t: ThreadView) -> object:
        p, k = t.proc, t["mp_vpn"]
        pte = m.pte(p, k)
        if pte & PTE_P:
            t["mp_needed"] = 1
            m.set_pte(p, k, mp._new_pte(t, pte) & ~PTE_D)
        mp._next_pte(m, t)
        return None

    path = refinement.SCENARIOS / "finding-mprotect-keeps-dirty.toml"
    clean = refinement.Report()
    refinement.check_scenario(refinement.Checker(clean), path, "fixed")
    assert not clean.failures
    rep = refinement.Report()
    refinement.check_scenario(refinement.Checker(rep), path, "fixed",
                              model_replace={"mprotect.pte_read": drops_d})
    assert any("mprotect.pte_read" in f and "no symbolic step" in f and "xd: True -> False" in f
               for f in rep.failures), rep.failures[:3]


def test_totals_record_carries_what_the_tests_assert_on() -> None:
    """`pagemap verify` hands refinement/totals to its pytest child, whose `report`
    fixture rebuilds the Report from it: the rebuilt Report answers every question the
    tests above ask as the run's own did, through JSON, and a run with a failure or a
    bound is not a pass."""
    import json

    rep = refinement.Report()
    checker = refinement.Checker(rep)
    refinement.check_scenario(checker, refinement.EXTRA / "refine-read-then-write.toml",
                              "fixed", max_states=400, walks=2)
    rep.unlabelled[("a", "b")] = 2
    [rec] = [r for r in refinement.records(rep) if r.name == "refinement/totals"]
    back = refinement.Report.from_totals(json.loads(json.dumps(rec.to_json()))["witness"])
    for name in refinement.Report.TOTALS + ("failures", "matched", "unlabelled"):
        assert getattr(back, name) == getattr(rep, name), name
    assert rep.pairs > 0 and back.matched and rec.result == ("pass" if rep.exhaustive
                                                             else "incomplete")
    rep.fail("x")
    [rec] = [r for r in refinement.records(rep) if r.name == "refinement/totals"]
    assert rec.result == "violation"

"""The removal-phase proofs (proofs/removal/): proved on fixed, the findings' counterexamples
on seed and fixed-without-FIX and no others, twins that fail, and the proofs built on
the real slot codec."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import z3
from pagemap.checker.explore import Explorer
from pagemap.checker.scenario import load
from pagemap.config import FIXES
from pagemap.results import CheckResult
from pagemap.slot import refcnt_shift
from pagemap.verify import earlier_proofs

from proofs.removal import state as st
from proofs.removal import system as system_module
from proofs.removal.evaluate import compile_formula
from proofs.removal.findings import EXPECTED, checker_scenarios, expected_for, fix_of
from proofs.removal.invariants import AUX, CLAIM, INVARIANTS, conjunction
from proofs.removal.mutants import MARK_WITH_HOLDER, MUTANTS
from proofs.removal.system import System
from proofs.removal.theorems import VARIANTS_WITHOUT, Context, run
from proofs.z3kit import COUNTEREXAMPLE, PROVED

FINDING_OF_FIX = {"atomic-pte-update": "F1", "removal-shootdown-wait": "F2",
                  "removal-vmr-overlap": "F3", "munmap-fold-dirty": "F4",
                  "munmap-shootdown-wait": "F5", "shootdown-scp-remote": "F6",
                  "removal-writeback-error": "F8", "split-vmr-under-pm-lock": "F10",
                  "removal-fold-always": "F11", "populate-unmap-on-error": "F13",
                  "mmap-foff-first": "F14"}


def test_findings_agree_with_the_checker() -> None:
    """The Z3 counterexamples name the checker's findings by the same fix."""
    for e in EXPECTED:
        assert fix_of(e.finding) == e.fix == next(
            f for f, fid in FINDING_OF_FIX.items() if fid == e.finding)
    assert {e.finding for e in EXPECTED} == set(FINDING_OF_FIX.values())


def test_shared_page_f5_is_reachable_in_the_model() -> None:
    """Z3's F5 counterexample (a shared page) has a checker witness too."""
    [own, shared] = checker_scenarios("F5")
    assert own.name == "finding-munmap-async-private.toml"
    without = Explorer(load(shared, "fixed-without-munmap-shootdown-wait"),
                       contracts=False).explore(progress=False)
    assert (without.verdict, without.invariant) == ("violation", "no-use-after-free")
    fixed = Explorer(load(shared, "fixed"), contracts=False).explore(progress=False)
    assert fixed.verdict == "pass"


@pytest.fixture(scope="module")
def results() -> list[CheckResult]:
    # inside `pagemap verify`, the records its proof kind has just produced
    return earlier_proofs("removal/", 64) or run(64)


def test_every_result_is_expected(results: list[CheckResult]) -> None:
    bad = [(r.name, r.variant, r.result, r.detail) for r in results if not r.ok]
    assert not bad
    assert all(r.kind == "proof" and r.name.startswith("removal/") for r in results)


def test_every_invariant_is_proved_on_fixed(results: list[CheckResult]) -> None:
    fixed = {r.name: r for r in results if r.variant == "fixed"}
    for inv in INVARIANTS:
        for part in ("init", "step"):
            r = fixed[f"removal/{inv.name}/{part}"]
            assert (r.result, r.expected) == (PROVED, PROVED), r.detail
    assert {i.kind for i in INVARIANTS} == {CLAIM, "lemma", AUX}
    assert sum(i.kind == CLAIM for i in INVARIANTS) >= 10


def test_findings_are_counterexamples_with_readable_witnesses(
        results: list[CheckResult]) -> None:
    rows = [r for r in results if r.expected == COUNTEREXAMPLE]
    # the fixes whose findings lie outside the proved system (spec/removal/index.md)
    # have no counterexample: their fixed-without-FIX variant proves every invariant
    assert {r.variant for r in rows} == {"seed", *(f"fixed-without-{f}" for f in FINDING_OF_FIX)}
    assert set(FINDING_OF_FIX) < set(FIXES)
    assert len([r for r in rows if r.variant == "seed"]) == len([e for e in EXPECTED if e.seed])
    for r in rows:
        assert r.result == COUNTEREXAMPLE
        finding = r.detail.split(" ")[0]
        assert finding in FINDING_OF_FIX.values(), r.detail
        w = r.witness
        # the whole pre-state, by name, and the step's effect
        assert {f"pre.{v.name}" for v in st.VARS} <= set(w)
        assert any(k.startswith("post.") for k in w)
        assert any(k.startswith("twin.pre.") for k in w)
        assert w["pre.rm"] in st.Rm.NAMES and w["pre.lock"] in st.Lock.NAMES
    for fix in FIXES:
        variant = f"fixed-without-{fix}"
        found = {r.detail.split(" ")[0] for r in rows if r.variant == variant}
        assert found == ({FINDING_OF_FIX[fix]} if fix in FINDING_OF_FIX else set())


def test_f1_witness_is_the_lost_dirty_bit(results: list[CheckResult]) -> None:
    [r] = [r for r in results if r.name == "removal/dirty-recorded/rm_p2_write_x"
           and r.variant == "seed"]
    w = r.witness
    assert (w["pre.rm"], w["post.rm"]) == ("p2_write", "pass2")
    assert w["pre.newer"] == "true" and w["pre.dirty"] == "false"
    assert (w["twin.pre.rr_d"], w["twin.pre.xd"], w["twin.post.xd"]) == ("false", "true", "false")


def _failing_pairs(variant: str) -> set[tuple[str, str]]:
    """Every (invariant, step) whose induction step fails on a variant."""
    ctx = Context(variant, 64)
    out = set()
    solver = z3.Solver()
    solver.add(*ctx.dom, ctx.inv, ctx.trans)
    for inv in INVARIANTS:
        solver.push()
        solver.add(z3.Not(inv.formula(ctx.sys, ctx.post)))
        while solver.check() == z3.sat:
            k = solver.model().eval(ctx.step_var).as_long()
            out.add((inv.name, ctx.names[k]))
            solver.add(ctx.step_var != k)
        solver.pop()
    return out


@pytest.mark.parametrize("variant", ["fixed", "seed", *VARIANTS_WITHOUT])
def test_counterexamples_are_exactly_the_findings(variant: str) -> None:
    """No counterexample without a finding: the failing pairs are those of
    proofs/removal/findings.py, nothing else (and none on fixed)."""
    expected = {(e.invariant, e.step) for e in expected_for(variant)}
    assert _failing_pairs(variant) == expected


def test_claims_need_strengthening() -> None:
    """Most claims are not inductive alone: the aux invariants are needed."""
    sys_ = System("fixed", 64)
    pre, post = st.make(64), st.make(64, "'")
    trans = z3.Or(*[sys_.relation(s, pre, post) for s in sys_.steps()])
    alone = {}
    for inv in INVARIANTS:
        if inv.kind != CLAIM:
            continue
        s = z3.Solver()
        s.add(*st.domain(pre), *st.domain(post), inv.formula(sys_, pre), trans,
              z3.Not(inv.formula(sys_, post)))
        alone[inv.name] = s.check() == z3.unsat
    assert not any(alone.values()), alone


def test_every_claim_and_lemma_has_a_mutant_twin() -> None:
    assert set(MUTANTS) == {i.name for i in INVARIANTS if i.kind != AUX}
    names = {s.name for s in System().steps()}
    assert all(step in names for step, _ in MUTANTS.values())


def test_mark_without_count_check_breaks_the_removal_flag() -> None:
    """A mark pass that ignores the refcount marks a held slot: Z3 sees it."""
    ctx = Context("fixed", 64)
    mutated = ctx.mutated("rm_mark_read", MARK_WITH_HOLDER.build)
    s = z3.Solver()
    claim = next(i for i in INVARIANTS if i.name == "removal-flag-zero-count")
    s.add(*ctx.dom, ctx.inv, mutated, z3.Not(claim.formula(ctx.sys, ctx.post)))
    assert s.check() == z3.sat


def test_proofs_use_the_slot_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """Swap in a wrong pm_slot_inc_refcnt: the refcount claim must fail."""
    def wrong_inc(w, v):  # type: ignore[no-untyped-def]
        return w.wrap(v + w.const(1 << (refcnt_shift(w.bits) - 1)))

    monkeypatch.setattr(system_module, "slot_inc_refcnt", wrong_inc)
    ctx = Context("fixed", 64)
    claim = next(i for i in INVARIANTS if i.name == "count-equals-holders")
    s = z3.Solver()
    s.add(*ctx.dom, ctx.inv, ctx.trans, z3.Not(claim.formula(ctx.sys, ctx.post)))
    assert s.check() == z3.sat


@pytest.mark.parametrize("bits", [32])
def test_slot_claims_on_the_32_bit_word(bits: int) -> None:
    """The word-size dependent claims, at 32 bits (`make proofs` runs them all)."""
    ctx = Context("fixed", bits)
    s = z3.Solver()
    s.add(*ctx.dom, ctx.inv, ctx.trans)
    for name in ("removal-flag-zero-count", "count-equals-holders", "freed-page-unreachable"):
        claim = next(i for i in INVARIANTS if i.name == name)
        s.push()
        s.add(z3.Not(claim.formula(ctx.sys, ctx.post)))
        assert s.check() == z3.unsat, name
        s.pop()


def _value(v: st.Var, bits: int, rng: random.Random) -> object:
    if v.sort == "bool":
        return rng.random() < 0.5
    if v.sort == "bv":
        return rng.choice([0, 1, (1 << bits) - 1, rng.getrandbits(bits),
                           rng.getrandbits(11) << refcnt_shift(bits) | rng.getrandbits(8)])
    if v.sort == "enum":
        return rng.randrange(v.size)
    return rng.randrange(0, 4)


def _from_model(m: z3.ModelRef, t: object) -> object:
    val = m.eval(t, model_completion=True)
    if z3.is_true(val) or z3.is_false(val):
        return z3.is_true(val)
    return val.as_long()


def test_evaluator_agrees_with_z3() -> None:
    """The compiled evaluation the refinement check uses is Z3's own semantics: on Z3's
    models of each step relation, and on those models with one value changed."""
    rng = random.Random(4)
    bits = 64
    sys_ = System("fixed", bits)
    pre, post = st.make(bits), st.make(bits, "'")
    terms = {v.name + sfx: s[v.name] for v in st.VARS for s, sfx in ((pre, ""), (post, "'"))}
    sorts = {v.name + sfx: v for v in st.VARS for sfx in ("", "'")}
    agree: Counter[bool] = Counter()
    for step in sys_.steps():
        f = sys_.relation(step, pre, post)
        solver = z3.Solver()
        solver.add(*st.domain(pre), *st.domain(post), conjunction(sys_, pre), f)
        if solver.check() != z3.sat:
            continue
        model = solver.model()
        fn = compile_formula(f)
        base = {k: _from_model(model, t) for k, t in terms.items()}
        for trial in range(4):
            env = dict(base)
            if trial:
                k = rng.choice(list(env))
                env[k] = _value(sorts[k], bits, rng)
            subst = [(terms[k], z3.BoolVal(x) if isinstance(x, bool) else
                      z3.BitVecVal(x, bits) if sorts[k].sort == "bv" else z3.IntVal(x))
                     for k, x in env.items()]
            want = z3.is_true(z3.simplify(z3.substitute(f, *subst)))
            assert fn(env) == want, (step.name, env)
            agree[want] += 1
    assert agree[True] > 50 and agree[False] > 10


def _breaks(variant: str, step_name: str, build: object, invariant: str) -> bool:
    """A mutated step, from a state satisfying every invariant, can break ``invariant``."""
    ctx = Context(variant, 64)
    s = z3.Solver()
    claim = next(i for i in INVARIANTS if i.name == invariant)
    s.add(*ctx.dom, ctx.inv, ctx.mutated(step_name, build),
          z3.Not(claim.formula(ctx.sys, ctx.post)))
    return s.check() == z3.sat


def test_other_unlink_weakened_is_refuted() -> None:
    """another locked VMR's pm_remove_vmr unpins i only when nothing skipped maps P (fixed)
    and X's VMR does not pin it itself: without either guard an invariant breaks."""
    from proofs.removal.steps_mmu import other_unlink

    def drop(k: int):  # type: ignore[no-untyped-def]
        def build(sys, pre, post):  # type: ignore[no-untyped-def]
            [alt] = other_unlink(sys, pre, post)
            guard = z3.And(*[g for j, g in enumerate(alt.guard.children()) if j != k])
            return [system_module.Alt(guard, alt.changes)]
        return build

    assert not _breaks("fixed", "other_unlink", other_unlink, "passes-visit-every-vmr")
    # guard conjuncts: lock, oins, removed, pinned, not X's own pin, keeps
    assert _breaks("fixed", "other_unlink", drop(5), "passes-visit-every-vmr")
    assert _breaks("fixed", "other_unlink", drop(4), "aux/run")


def test_deleting_other_unlink_is_caught() -> None:
    """munmap of a MAP_LOCKED VMR beside X's mapping unpins i in pm_remove_vmr.unlink
    during the removal's writeback: without other_unlink that transition has no
    symbolic step (and with it, munmap-locked-beside-mapping refines on both variants)."""
    from proofs.removal import refinement

    path = refinement.SCENARIOS / "munmap-locked-beside-mapping.toml"
    assert path in refinement.all_scenarios()
    for variant in ("seed", "fixed"):
        rep = refinement.Report()
        refinement.check_scenario(refinement.Checker(rep), path, variant)
        assert not rep.failures and rep.matched["other_unlink"] > 0, rep.failures[:3]
    gone = refinement.Report()
    checker = refinement.Checker(gone, replace={"other_unlink": lambda sys, pre, post: []})
    refinement.check_scenario(checker, path, "fixed")
    assert any("pm_remove_vmr.unlink" in f and "no symbolic step" in f
               and "pinned: True -> False" in f for f in gone.failures), gone.failures[:3]


def test_teardown_steps_are_needed_and_gated() -> None:
    """exit: proc_destroy makes X's process dead (x_kill) and __proc_free's teardown
    enters pass 2 of X's VMR (td_start); without either, exit-vs-munmap's transitions
    have no symbolic step.  A TLB fill once the process is dying breaks aux/tlb."""
    from proofs.removal import refinement
    from proofs.removal.steps_mmu import tlb_fill_write

    path = refinement.SCENARIOS / "exit-vs-munmap.toml"
    assert path in refinement.all_scenarios()
    rep = refinement.Report()
    refinement.check_scenario(refinement.Checker(rep), path, "fixed")
    assert not rep.failures and rep.matched["x_kill"] > 0 and rep.matched["td_start"] > 0
    for gone, label, change in (("x_kill", "proc_destroy.kill", "dead: False -> True"),
                                ("td_start", "unmap_and_destroy_vmrs.lock_vmr", "mu: 0 -> 5")):
        bad = refinement.Report()
        checker = refinement.Checker(bad, replace={gone: lambda sys, pre, post: []})
        refinement.check_scenario(checker, path, "fixed")
        assert any(label in f and "no symbolic step" in f and change in f
                   for f in bad.failures), (gone, bad.failures[:3])

    def ungated(sys, pre, post):  # type: ignore[no-untyped-def]
        [alt] = tlb_fill_write(sys, pre, post)
        return [system_module.Alt(z3.And(*alt.guard.children()[:1], *alt.guard.children()[2:]),
                                  alt.changes)]

    assert not _breaks("fixed", "tlb_fill_write", tlb_fill_write, "aux/tlb")
    assert _breaks("fixed", "tlb_fill_write", ungated, "aux/tlb")


def test_failed_writeback_fix_needs_both_flags() -> None:
    """removal-writeback-error after KFS's failing writepage: PG_DIRTY back and PG_REMOVAL
    cleared.  Forgetting either breaks an invariant on fixed; the step as written keeps
    them all (the fixed proofs), and the write that succeeds is unaffected."""
    from proofs.removal.steps_remover import rm_writepage

    def failing_without(flag: str):  # type: ignore[no-untyped-def]
        def build(sys, pre, post):  # type: ignore[no-untyped-def]
            ok, failed = rm_writepage(sys, pre, post)
            return [ok, system_module.Alt(failed.guard,
                                          {k: v for k, v in failed.changes.items() if k != flag})]
        return build

    for inv in ("dirty-recorded", "dirty-loop-post", "aux/mark"):
        assert not _breaks("fixed", "rm_writepage", rm_writepage, inv)
    assert _breaks("fixed", "rm_writepage", failing_without("dirty"), "dirty-recorded")
    assert _breaks("fixed", "rm_writepage", failing_without("rmf"), "dirty-loop-post")


def test_kept_removal_flag_needs_the_weaker_mark_invariant(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The slot keeps its removal flag after a failed writeback (fixed): with the old mark
    invariant (the flag implies PG_REMOVAL in this run) the fixed writepage breaks
    aux/mark; the weakening applies only with the fix (seed and fixed-without keep the
    old invariant)."""
    from proofs.removal import invariants

    for variant in ("seed", "fixed-without-removal-writeback-error"):
        sys = System(variant, 64)
        assert z3.is_false(z3.simplify(invariants.kept_flag(sys, st.make(64))))
    monkeypatch.setattr(invariants, "kept_flag", lambda sys, s: z3.BoolVal(False))
    from proofs.removal.steps_remover import rm_writepage
    assert _breaks("fixed", "rm_writepage", rm_writepage, "aux/mark")


def test_f14_witness_is_the_link_of_a_vmr_without_its_offset() -> None:
    """F14's counterexample is pm_add_vmr linking the VMR create_vmr made, vm_foff still
    unset (the seed's order); with mmap-foff-first there is no set_file step at all."""
    from proofs.removal.theorems import _prove, theorems_for

    ctx, [thm] = theorems_for("fixed-without-mmap-foff-first", 64)
    r = _prove(thm, ctx)
    assert r.result == COUNTEREXAMPLE and r.detail.startswith("F14"), r.detail
    w = r.witness
    assert (w["pre.mx"], w["pre.lock"], w["pre.x_linked"]) == ("add_vmr", "add_vmr", "false")
    assert w["pre.x_foff"] == "false" and w["post.x_linked"] == "true"
    fixed, seed = System("fixed"), System("seed")
    pre, post = st.make(64), st.make(64, "'")
    assert not fixed.step_named("mx_set_file").build(fixed, pre, post)
    assert len(seed.step_named("mx_set_file").build(seed, pre, post)) == 2


def test_mprotect_splits_the_writable_bit() -> None:
    """mprotect (F11): the old invariants on the constant x_w are false once mprotect is in
    the system -- set_prot makes a VMR read-only under a PTE that keeps PTE_D, and a read
    fill caches that D bit in E -- so they are restated on the PTE; the steps as written
    keep every invariant on fixed, and their mutations do not."""
    from proofs.removal.steps_mprotect import mp_pte_x, mp_set_prot, rm_p3_lock_x

    ctx = Context("fixed", 64)
    old = {"aux/x": lambda s: z3.Implies(s["xd"], s["x_w"]),
           "aux/tlb": lambda s: z3.Implies(s["ed"], s["x_w"])}
    for name, f in old.items():
        s = z3.Solver()
        s.add(*ctx.dom, ctx.inv, f(ctx.pre), ctx.rel["mp_set_prot"], z3.Not(f(ctx.post)))
        assert s.check() == z3.sat, name

    def drops_d(sys, pre, post):  # type: ignore[no-untyped-def]
        [alt] = mp_pte_x(sys, pre, post)
        return [system_module.Alt(alt.guard, {**alt.changes, "xd": False})]

    def old_constant(sys, pre, post):  # type: ignore[no-untyped-def]
        [alt] = rm_p3_lock_x(sys, pre, post)
        return [system_module.Alt(alt.guard, {**alt.changes, "rm_w": pre["x_w"]})]

    assert not _breaks("fixed", "mp_pte_x", mp_pte_x, "dirty-recorded")
    assert _breaks("fixed", "mp_pte_x", drops_d, "dirty-recorded")
    assert not _breaks("fixed", "rm_p3_lock_x", rm_p3_lock_x, "aux/mprotect")
    assert _breaks("fixed", "rm_p3_lock_x", old_constant, "aux/mprotect")
    assert not _breaks("fixed", "mp_set_prot", mp_set_prot, "dirty-recorded")


@pytest.mark.parametrize("variant,steps", [
    ("seed", {"rm_p3_zero_x", "rm_p3_other"}),
    ("fixed-without-removal-fold-always", {"rm_p3_x", "rm_p3_other"}),
    ("fixed-without-atomic-pte-update", set())])
def test_f11_counterexamples_are_where_pass_3_zeroes(variant: str, steps: set[str]) -> None:
    """F11 breaks dirty-recorded where pass 3 drops the D bit of a read-only VMR: at the
    exchange for 0 with atomic-pte-update, at the seed's later *pte = 0 without it."""
    assert {e.step for e in expected_for(variant) if e.finding == "F11"} == steps


def test_a_merge_unlink_without_its_reads_is_refuted() -> None:
    """mx_merge_unlink_x (destroy_vmr's unlink of the VMR a merge grew over: X moves into
    the grown record): vmr_has_page_idx and the visit are read afresh, within the run
    only; without either read the step leaves a run's choice behind the run (aux/run)."""
    from proofs.removal import steps_mmap

    build = steps_mmap.mx_merge_unlink_x

    def drop(k: int):  # type: ignore[no-untyped-def]
        def mutant(sys, pre, post):  # type: ignore[no-untyped-def]
            out = []
            for alt in build(sys, pre, post):
                unlock, reads = alt.guard.children()
                kept = [c for j, c in enumerate(reads.children()) if j != k]
                out.append(system_module.Alt(z3.And(unlock, *kept), alt.changes))
            return out
        return mutant

    for variant in ("fixed", "fixed-without-removal-vmr-overlap"):
        assert not _breaks(variant, "mx_merge_unlink_x", build, "aux/run")
        assert _breaks(variant, "mx_merge_unlink_x", drop(0), "aux/run")  # hasidx
        assert _breaks(variant, "mx_merge_unlink_x", drop(1), "aux/run")  # the visit

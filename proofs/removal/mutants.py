"""Mutated steps: plausible slips in the protocol, used as the negative twins of the
removal theorems.  Each replaces one step of the fixed system; the twin claims the
invariant is still preserved by the mutated step, and Z3 must refute it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import z3

from proofs.removal.state import Find, Ins, Lock, Mu, Mx, Rm
from proofs.removal.system import Alt, System, is_in, plain_holder

And, Or, Not = z3.And, z3.Or, z3.Not
S = dict[str, Any]


@dataclass(frozen=True)
class Mutant:
    description: str
    build: Callable[[System, S, S], list[Alt]]


def _find_cas_keeps_removal(sys: System, pre: S, post: S) -> list[Alt]:
    return [Alt(And(pre["fpc"] == Find.CAS, pre["slot"] == pre["f_old"],
                    pre["holders"] < sys.max),
                {"fpc": Find.HIT, "f_old": sys.c(0), "slot": sys.inc(pre["f_old"]),
                 "holders": pre["holders"] + 1})]


def _find_cas_unbounded(sys: System, pre: S, post: S) -> list[Alt]:
    new = sys.inc(sys.clear_removal(pre["f_old"]))
    return [Alt(And(pre["fpc"] == Find.CAS, pre["slot"] == pre["f_old"]),
                {"fpc": Find.HIT, "f_old": sys.c(0), "slot": new,
                 "holders": pre["holders"] + 1})]


def _final_without_recheck(sys: System, pre: S, post: S) -> list[Alt]:
    return [Alt(And(pre["rm"] == Rm.FL, pre["slot"] != sys.c(0), pre["rmf"]),
                {"rm_old": pre["slot"], "slot": sys.set_page(pre["slot"], pre["null"]),
                 "rm": Rm.FZERO})]


def _free_without_writeback(sys: System, pre: S, post: S) -> list[Alt]:
    return [Alt(And(pre["rm"] == Rm.DL, pre["rmf"], sys.removal(pre["slot"])),
                {"rm_old": pre["slot"], "slot": sys.set_page(pre["slot"], pre["null"]),
                 "rm": Rm.FZERO})]


def _copy_without_dirty(sys: System, pre: S, post: S) -> list[Alt]:
    return [Alt(And(pre["upd"], plain_holder(pre)), {"newer": True})]


def _p2_keeps_present(sys: System, pre: S, post: S) -> list[Alt]:
    return [Alt(And(pre["rm"] == Rm.P2, pre["x_vis"], Not(pre["x_v2"])),
                {"x_v2": True, "x_sent": False})]


def _p3_without_shootdown(sys: System, pre: S, post: S) -> list[Alt]:
    return [Alt(pre["rm"] == Rm.P2, {"rm": Rm.P3, "x_v2": False, "x_sent": False})]


def _p3_keeps_pte(sys: System, pre: S, post: S) -> list[Alt]:
    return [Alt(And(pre["rm"] == Rm.P3, pre["x_vis"], Not(pre["x_v3"])), {"x_v3": True})]


def _dirty_test_skips(sys: System, pre: S, post: S) -> list[Alt]:
    return [Alt(pre["rm"] == Rm.DT, {"rm": Rm.DDONE})]


def _relock_before_writepage(sys: System, pre: S, post: S) -> list[Alt]:
    return [Alt(And(pre["rm"] == Rm.WB, Not(pre["dl_before"]), pre["lock"] == Lock.FREE),
                {"lock": Lock.RM, "rm": Rm.FL, "wb": False})]


def _unlock_without_count(sys: System, pre: S, post: S) -> list[Alt]:
    return [Alt(pre["ipc"] == Ins.UNL, {"ipc": Ins.NONE, "lock": Lock.FREE})]


def _mu_shootdown_no_wait(sys: System, pre: S, post: S) -> list[Alt]:
    return [Alt(And(pre["mu"] == Mu.P1D, pre["mu_need"], Not(pre["sync"])),
                {"ep": True, "mu": Mu.P2, "mu_need": False})]


def _mu_zero_drops_dirty(sys: System, pre: S, post: S) -> list[Alt]:
    return [Alt(pre["mu"] == Mu.P2R, {"xn": False, "xp": False, "xd": False, "mr_n": False,
                                       "mr_d": False, "mu": Mu.P2D})]


def _lock_visits_index_only(sys: System, pre: S, post: S) -> list[Alt]:
    from proofs.removal.steps_remover import rm_lock

    seed = System("seed", sys.bits)
    return rm_lock(seed, pre, post)


def _link_before_foff(sys: System, pre: S, post: S) -> list[Alt]:
    """pm_add_vmr links the VMR create_vmr made before vm_file and vm_foff are set."""
    return [Alt(And(pre["mx"] == Mx.ADD, pre["lock"] == Lock.ADD, Not(is_in(pre["rm"], Rm.RUN))),
                {"x_linked": True, "lock": Lock.FREE, "x_foff": False, "mx": Mx.LINKED})]


def _mark_with_holder(sys: System, pre: S, post: S) -> list[Alt]:
    return [Alt(And(pre["rm"] == Rm.MARK, pre["slot"] != sys.c(0)),
                {"slot": sys.set_removal(pre["slot"]), "rm": Rm.MPAGE})]


#: invariant -> (step it replaces, mutant).  Every claim and lemma has one; the aux
#: invariants' twin drops the invariant from the pre-state instead.
MUTANTS: dict[str, tuple[str, Mutant]] = {
    "removal-flag-zero-count": ("find_cas", Mutant(
        "pm_find_page's CAS body without pm_slot_clear_removal", _find_cas_keeps_removal)),
    "count-equals-holders": ("find_cas", Mutant(
        "pm_find_page's CAS without the 2047-holder bound", _find_cas_unbounded)),
    "freed-page-unreachable": ("rm_final_read", Mutant(
        "the final loop frees without rechecking the slot's removal flag",
        _final_without_recheck)),
    "freed-page-written-back": ("rm_dirty_read", Mutant(
        "the dirty loop frees a marked page instead of writing it back",
        _free_without_writeback)),
    "dirty-recorded": ("file_write_copy", Mutant(
        "generic_file_write copies without setting PG_DIRTY afterwards",
        _copy_without_dirty)),
    "p2-post": ("rm_p2_x", Mutant("pass 2 leaves PTE_P set", _p2_keeps_present)),
    "shootdown-post": ("rm_p3_start", Mutant(
        "pass 3 starts without shooting down X's process", _p3_without_shootdown)),
    "p3-post": ("rm_p3_x", Mutant("pass 3 leaves the PTE in place", _p3_keeps_pte)),
    "dirty-loop-post": ("rm_dirty_test", Mutant(
        "the dirty loop skips a PG_DIRTY page", _dirty_test_skips)),
    "writeback-post": ("rm_relock", Mutant(
        "the final loop starts before writepage", _relock_before_writepage)),
    "pm-num-pages": ("insert_unlock", Mutant(
        "pm_insert_page unlocks without pm_num_pages++", _unlock_without_count)),
    "passes-visit-every-vmr": ("rm_lock", Mutant(
        "passes 2 and 3 visit only VMRs that map `index` (the seed's rule)",
        _lock_visits_index_only)),
    "tlb-dirty-recorded": ("mu_p2_zero_x", Mutant(
        "munmap zeroes the PTE without folding PTE_D (the seed's __vmr_free_pgs)",
        _mu_zero_drops_dirty)),
    "stable-foff": ("mx_link", Mutant(
        "pm_add_vmr links the VMR before vm_file and vm_foff are set (the seed's order)",
        _link_before_foff)),
    "tlb-covered": ("mu_shootdown", Mutant(
        "munmap's shootdown without waiting for the flushes", _mu_shootdown_no_wait)),
}

#: Used by the tests: marking a slot that has a holder breaks the refcount claims.
MARK_WITH_HOLDER = Mutant("the mark pass without the refcount check", _mark_with_holder)

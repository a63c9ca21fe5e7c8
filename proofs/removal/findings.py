"""The counterexamples to induction Z3 finds when a fix is missing, and the checker
finding each one explains (spec/findings.md, ``pagemap.checker.findings``).

On ``seed`` every entry below is a counterexample; on ``fixed-without-FIX`` exactly
the entries of FIX are (tests/test_removal_proofs.py checks both, and that no other
(invariant, step) pair fails).  Each entry has a *pin*: the documented bad case,
added to the assumptions of the theorem's twin, which must be a counterexample too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import z3
from pagemap.checker.findings import FINDINGS as CHECKER_FINDINGS

from proofs.removal.state import Mu, Rm
from proofs.removal.system import System, others_dirty, others_total

And, Not = z3.And, z3.Not
S = dict[str, Any]


@dataclass(frozen=True)
class Expected:
    fix: str  # the fix whose absence makes this a counterexample
    finding: str  # F1..F6, F8, F10, F11, F13, F14
    invariant: str
    step: str
    pin: Callable[[System, S, S], Any]
    pin_doc: str
    why: str
    seed: bool = True  # also a counterexample on seed (whose other fixes are off too)
    alone: bool = True  # also on fixed-without-FIX (False: it needs another fix off too)


def _d_lost_x(reg: str) -> Callable[[System, S, S], Any]:
    return lambda sys, a, b: And(a[reg] == z3.BoolVal(False), a["xd"])


def _d_lost_other(sys: System, a: S, b: S) -> Any:
    return And(others_dirty(b) < others_dirty(a), Not(b["dirty"]))


def _np_d_lost(sys: System, a: S, b: S) -> Any:
    """A not-present PTE with PTE_D (munmap's pass 1 cleared PTE_P) is zeroed."""
    return And(b["a_nd"] + b["b_nd"] < a["a_nd"] + a["b_nd"], Not(b["dirty"]))


def _queued_only(sys: System, a: S, b: S) -> Any:
    return And(Not(a["sync"]), a["e"], b["e"], b["ep"])


def _scp_missed(sys: System, a: S, b: S) -> Any:
    return And(a["scp"], a["e"], b["e"], Not(b["ep"]))


def _x_skipped(sys: System, a: S, b: S) -> Any:
    return And(a["x_linked"], Not(a["x_locked"]), Not(b["x_hasidx"]))


def _new_in_skipped(sys: System, a: S, b: S) -> Any:
    return And(others_total(b, "b") > others_total(a, "b"), Not(a["pinned"]))


def _write_failed(sys: System, a: S, b: S) -> Any:
    return And(a["kfs"], a["newer"], Not(b["dirty"]))


def _tail_names_p(sys: System, a: S, b: S) -> Any:
    return And(a["xn"], a["x_linked"], Not(b["x_linked"]))


def _tail_mid_rmw(sys: System, a: S, b: S) -> Any:
    return And(z3.Or(a["rm"] == Rm.P2W, a["rm"] == Rm.P3D, a["rm"] == Rm.P3Z), Not(b["x_linked"]))


def _tail_mid_p3(sys: System, a: S, b: S) -> Any:
    return And(z3.Or(a["rm"] == Rm.P3D, a["rm"] == Rm.P3Z), Not(b["x_linked"]))


def _tail_e_uncovered(sys: System, a: S, b: S) -> Any:
    return And(a["e"], Not(a["xp"]), a["x_v2"], Not(a["x_sent"]), a["mu"] == Mu.NONE)


def _linked_unset(sys: System, a: S, b: S) -> Any:
    return And(Not(a["x_linked"]), b["x_linked"], Not(b["x_foff"]))


def _populated_left(sys: System, a: S, b: S) -> Any:
    return And(a["xn"], b["mu"] == Mu.UL)


def _unpinned_by_unlink(sys: System, a: S, b: S) -> Any:
    return And(a["pinned"], Not(b["pinned"]), others_total(a, "b") > 0)


F1 = ("atomic-pte-update", "F1")
F2 = ("removal-shootdown-wait", "F2")
F3 = ("removal-vmr-overlap", "F3")
F4 = ("munmap-fold-dirty", "F4")
F5 = ("munmap-shootdown-wait", "F5")
F6 = ("shootdown-scp-remote", "F6")
F8 = ("removal-writeback-error", "F8")
F10 = ("split-vmr-under-pm-lock", "F10")
F13 = ("populate-unmap-on-error", "F13")
F14 = ("mmap-foff-first", "F14")
F11 = ("removal-fold-always", "F11")


def _no_fold_x(sys: System, a: S, b: S) -> Any:
    """Pass 3 found X's VMR read-only at p3_lock and X has PTE_D."""
    return And(a["xd"], Not(a["rm_w"]), Not(a["x_w"]), Not(b["dirty"]))


def _no_fold_read(sys: System, a: S, b: S) -> Any:
    """Seed's zeroing of X read with PTE_D, no fold chosen, PG_DIRTY clear."""
    return And(a["rr_d"], Not(a["rm_w"]), Not(a["dirty"]))

_D1 = "the CPU set PTE_D between the load and the store of the plain *pte &= ~PTE_P"
_D4 = "__vmr_free_pgs zeroes a PTE whose D bit it read, without PG_DIRTY"
_DM = ("the CPU set PTE_D between the load and the store of mprotect's plain "
       "*pte = (*pte & ~PTE_PERM) | pte_prot")
_D11 = ("mprotect kept PTE_D on a VMR it made read-only, and pass 3 (__pm_mark_unmap, chosen "
        "by vm_prot at p3_lock) zeroes the PTE without folding it into PG_DIRTY")

EXPECTED: tuple[Expected, ...] = (
    *(Expected(*F1, inv, "rm_p2_write_x", _d_lost_x("rr_d"),
               "remover read X without D, X has D now",
               "pm_remove_contig pass 2: " + _D1)
      for inv in ("dirty-recorded", "tlb-dirty-recorded")),
    *(Expected(*F1, inv, "rm_p2_other", _d_lost_other,
               "another PTE naming P loses PTE_D, PG_DIRTY clear",
               "pm_remove_contig pass 2, on another PTE: " + _D1)
      for inv in ("dirty-recorded", "tlb-dirty-recorded")),
    *(Expected(*F1, inv, "mu_p1_write_x", _d_lost_x("mr_d"),
               "munmap read X without D, X has D now",
               "__munmap_mark_not_present (munmap pass 1): " + _D1)
      for inv in ("dirty-recorded", "tlb-dirty-recorded")),
    *(Expected(*F1, inv, "mu_p1_other", _d_lost_other,
               "another PTE naming P loses PTE_D, PG_DIRTY clear",
               "munmap pass 1, on another PTE: " + _D1)
      for inv in ("dirty-recorded", "tlb-dirty-recorded")),
    *(Expected(*F2, inv, "rm_send_x", _queued_only,
               "async shootdown: E survives the send, only a flush is queued",
               "proc_tlbshootdown returns before E's core has flushed, and pm_remove_contig "
               "goes on to read PTE_D and free the page")
      for inv in ("shootdown-post", "tlb-covered")),
    *(Expected(*F6, inv, "rm_send_x", _scp_missed,
               "X's process is an SCP: E's core is neither flushed nor sent a flush",
               "proc_tlbshootdown of a PROC_RUNNING_S process flushes the calling core "
               "(the remover's), and pm_remove_contig goes on to read PTE_D and free the page")
      for inv in ("shootdown-post", "tlb-covered")),
    # with removal-shootdown-wait on, the missed core also breaks the wait's bookkeeping
    Expected(*F6, "aux/tlb", "rm_send_x", _scp_missed,
             "X's process is an SCP: E's core is neither flushed nor sent a flush",
             "the remover's wait for E's core has no pending flush to wait for", seed=False),
    Expected(*F3, "passes-visit-every-vmr", "rm_lock", _x_skipped,
             "X's VMR is on pm_vmrs, not MAP_LOCKED, and does not map `index`",
             "passes 2 and 3 skip VMRs for which vmr_has_page_idx(vmr, index) is false"),
    Expected(*F3, "passes-visit-every-vmr", "fault_install_other", _new_in_skipped,
             "a fault installs a PTE of P in a skipped VMR, P not pinned",
             "a skipped VMR keeps getting PTEs to a page the run may free"),
    Expected(*F3, "passes-visit-every-vmr", "mu_unlink", _unpinned_by_unlink,
             "unlinking the MAP_LOCKED VMR unpins i while a skipped VMR maps P",
             "with the seed's rule, skipped VMRs are not only the pinned ones"),
    Expected(*F3, "passes-visit-every-vmr", "other_unlink", _unpinned_by_unlink,
             "unlinking another MAP_LOCKED VMR unpins i while a skipped VMR maps P",
             "with the seed's rule, skipped VMRs are not only the pinned ones"),
    *(Expected(*F4, inv, "mu_p2_zero_x", lambda sys, a, b: a["mr_d"],
               "the value munmap read has PTE_D", "munmap pass 2 on X: " + _D4)
      for inv in ("dirty-recorded", "tlb-dirty-recorded")),
    *(Expected(*F4, inv, "mu_p2_other", _np_d_lost,
               "another not-present PTE with PTE_D is zeroed, PG_DIRTY clear",
               "munmap pass 2 on another PTE: " + _D4)
      for inv in ("dirty-recorded", "tlb-dirty-recorded")),
    *(Expected(*F8, inv, "rm_writepage", _write_failed,
               "KFS's writepage fails on P with newer data; PG_DIRTY stays clear",
               "pm_remove_contig ignores writepage's return value: P keeps PG_REMOVAL with "
               "PG_DIRTY cleared, and the final loop frees the data the store never got")
      for inv in ("dirty-recorded", "dirty-loop-post")),
    Expected(*F10, "aux/x", "split_shrink_x", _tail_names_p,
             "X in [va, end) names P when old->vm_end = va takes it off pm_vmrs",
             "split_vmr shrinks the old VMR before pm_add_vmr of the new one: X's VMR is on "
             "no list the remover reads, so a removal leaves X present and frees P"),
    Expected(*F10, "aux/registers", "split_shrink_x", _tail_mid_rmw,
             "the remover is between reading and writing X when X's VMR leaves pm_vmrs",
             "the shrink needs only vmr_lock: it lands in the middle of a pass over the VMR "
             "(the walk's range, read before, goes on past the new vm_end)"),
    Expected(*F10, "aux/mprotect", "split_shrink_x", _tail_mid_p3,
             "pass 3 is between reading and zeroing X when X's VMR leaves pm_vmrs",
             "the shrink lands while pass 3 holds the old record's pte_lock in the middle of "
             "X: X is in a record the pass no longer holds, with the fold choice made for "
             "the old one"),
    Expected(*F10, "tlb-covered", "split_shrink_x", _tail_e_uncovered,
             "E outlives X's PTE_P, covered only by the remover's pass 2 over X's VMR",
             "X's VMR leaves pm_vmrs before the remover's shootdown of its process: no one "
             "owes E's core a flush any more"),
    Expected(*F10, "passes-visit-every-vmr", "split_shrink_other", _new_in_skipped,
             "another VMR's tail, holding a PTE naming P, leaves pm_vmrs; P not pinned",
             "split_shrink_x's window for the other PTEs naming P: the tail's PTEs are on no "
             "list the remover reads until pm_add_vmr, and a run may free P under them"),
    Expected(*F14, "stable-foff", "mx_link", _linked_unset,
             "pm_add_vmr links X's VMR with vm_file and vm_foff still 0",
             "__do_mmap calls pm_add_vmr before it sets vm_file and vm_foff: the VMR is on "
             "pm_vmrs, where pm_remove_contig reads its offset holding only pm_lock, with the "
             "offset 0 (the remover's vmr_idx_to_va asserts once set_file changes it)"),
    Expected(*F13, "aux/x", "mx_populate_failed", _populated_left,
             "X names P when the failed populate's destroy_vmr begins",
             "__do_mmap's MAP_POPULATE error path calls destroy_vmr without touching the "
             "PTEs the populate filled: the VMR leaves pm_vmrs with X naming P, so no pass "
             "of pm_remove_contig visits X before it frees P"),
    *(Expected(*F1, inv, "mp_pte_write_x", _d_lost_x("mp_d"),
               "mprotect read X without D, X has D now", "mprotect on X: " + _DM)
      for inv in ("dirty-recorded", "tlb-dirty-recorded")),
    *(Expected(*F1, inv, "mp_pte_other", _d_lost_other,
               "another PTE naming P loses PTE_D, PG_DIRTY clear",
               "mprotect on another PTE: " + _DM)
      for inv in ("dirty-recorded", "tlb-dirty-recorded")),
    # atomic-pte-update exchanges X for 0 at the read: the D bit goes there ...
    Expected(*F11, "dirty-recorded", "rm_p3_x", _no_fold_x,
             "X has PTE_D, its VMR was read-only at p3_lock and is now, PG_DIRTY clear",
             "pass 3 on X: " + _D11, seed=False),
    # ... the seed's plain read leaves X until its *pte = 0
    Expected(*F11, "dirty-recorded", "rm_p3_zero_x", _no_fold_read,
             "the value read has PTE_D, no fold was chosen, PG_DIRTY clear",
             "pass 3 on X, seed's zeroing: " + _D11, alone=False),
    Expected(*F11, "dirty-recorded", "rm_p3_other", _d_lost_other,
             "another PTE naming P loses PTE_D, PG_DIRTY clear",
             "pass 3 on another PTE: " + _D11),
    Expected(*F5, "tlb-covered", "mu_shootdown", _queued_only,
             "async shootdown: E survives the send, only a flush is queued",
             "munmap's proc_tlbshootdown returns before E's core has flushed; munmap zeroes "
             "the PTE and unlinks the VMR, and no later shootdown covers E (for private "
             "pages munmap frees the page itself: F5's trace)"),
)


def expected_for(variant: str) -> tuple[Expected, ...]:
    """The counterexamples a variant must show: all on seed, FIX's on fixed-without-FIX."""
    if variant == "seed":
        return tuple(e for e in EXPECTED if e.seed)
    prefix = "fixed-without-"
    if variant.startswith(prefix):
        return tuple(e for e in EXPECTED if e.fix == variant[len(prefix):] and e.alone)
    return ()


#: Scenarios showing a finding the way Z3's counterexample does, where the checker's own
#: finding scenario shows another side of it.  F1's scenario races the remover, not
#: munmap's pass 1 (and with one store the writer's core leaves with its dirty entry);
#: F5's trace frees a private page in munmap, Z3's counterexample is a shared page that
#: munmap unlinks and pm_remove_contig then frees under a stale TLB entry; F6's is
#: synchronous, where the remover has no wait whose bookkeeping (aux/tlb) can break.
#: A realisation is one transition inside the invariant, so a scenario may serve here
#: although the refinement suite leaves it out.
EXTRA_SCENARIOS = {"F1": ("munmap-vs-write-twice.toml",),
                   "F5": ("finding-f5-shared-page.toml",),
                   "F6": ("scp-shootdown-async.toml",)}
SCENARIO_DIR = Path(__file__).resolve().parents[2] / "scenarios"


def checker_scenarios(finding: str) -> list[Path]:
    """The scenarios whose fixed-without-FIX run shows a finding: the checker's, then ours."""
    own = [f.path for f in CHECKER_FINDINGS if f.id == finding]
    return own + [SCENARIO_DIR / name for name in EXTRA_SCENARIOS.get(finding, ())]


def fix_of(finding: str) -> str:
    return next(f.fix for f in CHECKER_FINDINGS if f.id == finding)

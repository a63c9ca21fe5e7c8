"""The initial states and the invariants of the removal proofs.

Each invariant is a named formula over one state.  The *requested* ones are
the claims of the issue (spec/removal/index.md): the removal flag implies a
zero count, the count is the number of holders, a freed page is unreachable,
no dirty data is dropped (one postcondition per phase) and pm_num_pages.
The *aux* ones strengthen them into an inductive conjunction; each says which
requested invariant needs it.  All are stated for the fixed protocol; on seed
and on fixed-without-FIX some fail, and Z3's counterexamples to induction are
the findings (proofs/removal/theorems.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import z3

from proofs.removal.state import OTHER_STATES, Find, Ins, Lock, Mu, Mx, Rm
from proofs.removal.system import (
    System,
    b2i,
    is_in,
    others_dirty,
    others_present,
    others_total,
    record,
)

And, Or, Not, Implies = z3.And, z3.Or, z3.Not, z3.Implies

S = dict[str, Any]


CLAIM, LEMMA, AUX = "claim", "lemma", "aux"


@dataclass(frozen=True)
class Invariant:
    name: str
    kind: str  # CLAIM: the invariants; LEMMA: a strengthening the findings
    # break; AUX: bookkeeping that makes the conjunction inductive
    doc: str
    formula: Callable[[System, S], Any]


INVARIANTS: list[Invariant] = []


def inv(name: str, kind: str = AUX) -> Callable:
    def deco(fn: Callable[[System, S], Any]) -> Callable[[System, S], Any]:
        assert all(i.name != name for i in INVARIANTS), name
        INVARIANTS.append(Invariant(name, kind, (fn.__doc__ or "").strip(), fn))
        return fn

    return deco


def init(sys: System, s: S) -> Any:
    """pm_init, some pages preloaded (up to date, clean, no reference), VMRs on pm_vmrs,
    PTEs prefaulted present and clean, TLBs cold, no thread started."""
    zero = sys.c(0)
    return And(
        s["lock"] == Lock.FREE, s["fpc"] == Find.NONE, s["f_old"] == zero,
        s["ipc"] == Ins.NONE, s["rm"] == Rm.IDLE, s["rm_old"] == zero, s["mu"] == Mu.NONE,
        s["holders"] == 0, s["fw"] == 0, s["removed"] == 0, Not(s["oins"]),
        s["num"] == s["others"] + b2i(s["live"]),
        Implies(s["live"], And(s["slot"] == sys.set_page(zero, s["ppn"]),
                               sys.valid_ppn(s["ppn"]), s["upd"])),
        Implies(Not(s["live"]), And(s["slot"] == zero, s["ppn"] == zero, Not(s["upd"]))),
        *[Not(s[v]) for v in ("rmf", "dirty", "newer", "pinned", "wb", "dl_before", "ord",
                               "xd", "x_hasidx", "x_vis", "x_v2", "x_v3", "x_sent", "rr_n",
                               "rr_d", "mu_need", "mr_n", "mr_d", "e", "ed", "ep", "dead")],
        s["xp"] == s["xn"], Implies(s["xn"], And(s["live"], s["x_linked"])),
        s["x_linked"] == s["x_alive"],  # both false: X's VMR already gone (or none)
        *[s[f"a_{k}"] == 0 for k in ("pd", "nc", "nd")],
        *[s[f"b_{k}"] == 0 for k in OTHER_STATES],
        Implies(Not(s["live"]), s["a_pc"] == 0), s["omd"] == 0,
        s["mx"] == Mx.NONE, s["x_foff"],  # no mmap started; declared VMRs have their file
        # mprotect: X was prefaulted with its VMR's protection
        s["x_pte_w"] == And(s["xn"], s["x_w"]),
        *[Not(s[v]) for v in ("ew", "rm_x3", "rm_w", "mp_rmw", "mp_d")],
    )


# -- shorthands ----------------------------------------------------------------------------


def window(s: S) -> Any:
    """The slot holds pm_slot_set_page(old, NULL) (final CAS to radix_delete)."""
    return is_in(s["rm"], Rm.WINDOW)


def marked(sys: System, s: S) -> Any:
    """P is marked for removal and no lookup has taken it since: PG_REMOVAL and the
    slot's removal flag."""
    return And(s["rmf"], sys.removal(s["slot"]), Not(window(s)))


def kept_flag(sys: System, s: S) -> Any:
    """The slot may carry a removal flag that PG_REMOVAL no longer follows: with
    removal-writeback-error, a failed writepage (``kfs``) clears PG_REMOVAL and leaves
    the slot's flag (count 0) for a later lookup to clear.  False on every other
    variant and file system, where the flag implies PG_REMOVAL as before."""
    return And(z3.BoolVal(sys.fix("removal-writeback-error")), s["kfs"], Not(s["rmf"]))


POST_P3 = Rm.DIRTY + (Rm.WB, Rm.FL, Rm.FCAS)
#: The mark pass and passes 2 and 3: pm_lock held since the run's lock step, and the
#: only phases that read the run's VMR choices.
PASSES = (Rm.MARK, Rm.MCAS, Rm.MPAGE) + Rm.PASS2 + Rm.PASS3
POST_WAIT = Rm.PASS3 + POST_P3


def past_i_dirty(s: S) -> Any:
    """The dirty loop has handled i in this round (and i will not be revisited)."""
    return Or(s["rm"] == Rm.DDONE, And(s["rm"] == Rm.WB, Not(s["dl_before"])))


def e_covered(s: S) -> Any:
    """Someone who cleared X's PTE_P will shoot down (and wait for) E's core: the
    remover between visiting X and its waited shootdown, or munmap of X's VMR
    between pass 1 and its waited shootdown."""
    rm_cov = And(is_in(s["rm"], Rm.PASS2), s["x_v2"], s["rmf"],
                 Or(Not(s["x_sent"]), s["rm"] == Rm.P2WAIT))
    mu_cov = Or(And(s["mu"] == Mu.P1D, s["mu_need"]), s["mu"] == Mu.SDW)
    return Or(rm_cov, mu_cov)


# == requested ================================================================================


@inv("removal-flag-zero-count", CLAIM)
def removal_flag_zero_count(sys: System, s: S) -> Any:
    """A slot word with the removal flag set has refcount 0 (invariant id
    removal-unreferenced), outside the final loop's transient NULL word."""
    return Implies(And(Not(window(s)), sys.removal(s["slot"])), sys.count(s["slot"]) == 0)


@inv("count-equals-holders", CLAIM)
def count_equals_holders(sys: System, s: S) -> Any:
    """The refcount field is the number of threads holding a reference through the slot
    (refcount-accurate), given fewer than 2^11 = 2048 holders at once (find_cas)."""
    return And(s["holders"] <= sys.max,
               Implies(Not(window(s)), sys.count(s["slot"]) == s["holders"]))


@inv("freed-page-unreachable", CLAIM)
def freed_page_unreachable(sys: System, s: S) -> Any:
    """When the final loop frees P (final_zero_flags, final_decref) and afterwards, no
    thread holds a reference, no PTE names P (present or not), no TLB entry maps it,
    and no register is about to write a PTE's D bit into it."""
    nothing = And(s["holders"] == 0, s["fw"] == 0, Not(s["xn"]), Not(s["e"]),
                  others_total(s) == 0, s["omd"] == 0, Not(s["ord"]), Not(s["mr_n"]),
                  Not(s["rr_n"]), Not(s["wb"]))
    return Implies(Or(s["rm"] == Rm.FZERO, s["rm"] == Rm.FDEC, Not(s["live"])), nothing)


@inv("freed-page-written-back", CLAIM)
def freed_page_written_back(sys: System, s: S) -> Any:
    """When the final loop frees P its data is in the backing store (no-lost-write)."""
    return Implies(Or(s["rm"] == Rm.FZERO, s["rm"] == Rm.FDEC), Not(s["newer"]))


@inv("dirty-recorded", CLAIM)
def dirty_recorded(sys: System, s: S) -> Any:
    """Data newer than the store is recorded somewhere the remover looks: PG_DIRTY, a
    file write in progress, ptr_store, PTE_D of some PTE, or a D bit in flight."""
    return Implies(And(s["live"], s["upd"], s["newer"]), record(s))


@inv("p2-post", CLAIM)
def p2_post(sys: System, s: S) -> Any:
    """Pass 2's postcondition: once it has visited X (and always after it), no PTE naming
    a marked P is present; PTE_D is kept (dirty-recorded)."""
    m = marked(sys, s)
    return And(
        Implies(And(m, is_in(s["rm"], (Rm.P2, Rm.P2WAIT)), s["x_v2"]), Not(s["xp"])),
        Implies(And(m, is_in(s["rm"], POST_WAIT)),
                And(Not(s["xp"]), others_present(s) == 0)),
    )


@inv("shootdown-post", CLAIM)
def shootdown_post(sys: System, s: S) -> Any:
    """After the shootdown of X's process (and from pass 3 on) no TLB entry maps a marked
    P: E is gone (E is any entry)."""
    m = marked(sys, s)
    return And(
        Implies(And(m, s["rm"] == Rm.P2, s["x_v2"], s["x_sent"]), Not(s["e"])),
        Implies(And(m, is_in(s["rm"], POST_WAIT)), Not(s["e"])),
    )


@inv("p3-post", CLAIM)
def p3_post(sys: System, s: S) -> Any:
    """Pass 3's postcondition: no PTE names a marked P, their D bits are in PG_DIRTY
    (dirty-recorded), and no D bit is still in flight in a register."""
    m = marked(sys, s)
    return And(
        Implies(And(m, s["rm"] == Rm.P3, s["x_v3"]), And(Not(s["xn"]), Not(s["mr_n"]))),
        Implies(And(m, is_in(s["rm"], POST_P3)),
                And(Not(s["xn"]), others_total(s) == 0, s["omd"] == 0, Not(s["ord"]),
                    Not(s["mr_n"]))),
    )


@inv("dirty-loop-post", CLAIM)
def dirty_loop_post(sys: System, s: S) -> Any:
    """The dirty loop's postcondition at i: PG_DIRTY of a marked P is clear and newer data
    waits in ptr_store for writepage; before i, PG_DIRTY is the only record."""
    m = marked(sys, s)
    before = Or(is_in(s["rm"], (Rm.DL, Rm.DRC, Rm.DT)),
                And(s["rm"] == Rm.WB, s["dl_before"]))
    return And(
        Implies(And(m, before), And(Not(s["wb"]), Implies(s["newer"], s["dirty"]))),
        Implies(And(m, s["rm"] == Rm.DCL), s["wb"]),
        Implies(And(m, past_i_dirty(s)), And(Not(s["dirty"]), Implies(s["newer"], s["wb"]))),
    )


@inv("writeback-post", CLAIM)
def writeback_post(sys: System, s: S) -> Any:
    """After the writeback, a still-marked P entering the final loop is clean: its data
    is in the store, PG_DIRTY clear, nothing queued."""
    return Implies(And(marked(sys, s), is_in(s["rm"], (Rm.FL, Rm.FCAS))),
                   And(Not(s["newer"]), Not(s["dirty"]), Not(s["wb"])))


@inv("pm-num-pages", CLAIM)
def pm_num_pages(sys: System, s: S) -> Any:
    """pm_num_pages equals the number of occupied slots when pm_lock is free (pm-count)."""
    return Implies(s["lock"] == Lock.FREE, s["num"] == s["others"] + b2i(s["live"]))


# == strengthening ============================================================================


@inv("aux/locks")
def aux_locks(sys: System, s: S) -> Any:
    """pm_lock has one owner: the lookup or insertion at i, the remover in its locked
    phases, munmap's pm_remove_vmr, or someone else.  (pm-num-pages, mark, final loop)"""
    return And(
        (s["lock"] == Lock.RM) == is_in(s["rm"], Rm.HOLDS),
        (s["lock"] == Lock.FIND) == (s["fpc"] != Find.NONE),
        (s["lock"] == Lock.INS) == (s["ipc"] != Ins.NONE),
        Implies(s["lock"] == Lock.MU, s["mu"] == Mu.UL),
        Implies(s["oins"], s["lock"] == Lock.OTHER),
        Implies(s["removed"] > 0,
                Or(s["lock"] == Lock.OTHER,
                   And(s["lock"] == Lock.RM, is_in(s["rm"], Rm.FINAL)))),
    )


@inv("aux/pm-count")
def aux_pm_count(sys: System, s: S) -> Any:
    """pm_num_pages, plus the insertion not yet counted, is the occupied slots plus the
    remover's not yet subtracted nr_removed.  (pm-num-pages)"""
    return (s["num"] + b2i(s["ipc"] == Ins.UNL) + b2i(s["oins"])
            == s["others"] + b2i(s["live"]) + s["removed"])


@inv("aux/slot-word")
def aux_slot_word(sys: System, s: S) -> Any:
    """The slot names P by its ppn field while P lives; it is 0 when there is no page,
    and holds set_page(old, NULL) in the final loop's window.  (count-equals-holders)"""
    zero = sys.c(0)
    return And(
        Implies(And(s["live"], Not(window(s))),
                And(s["slot"] != zero, sys.page(s["slot"]) == s["ppn"],
                    sys.valid_ppn(s["ppn"]))),
        Implies(And(Not(s["live"]), s["rm"] != Rm.FDEL),
                And(s["slot"] == zero, s["ppn"] == zero, Not(s["upd"]), Not(s["rmf"]),
                    Not(s["dirty"]), Not(s["newer"]))),
        Implies(window(s),
                And(s["slot"] == sys.set_page(s["rm_old"], s["null"]),
                    sys.removal(s["rm_old"]), sys.count(s["rm_old"]) == 0,
                    s["holders"] == 0, s["fw"] == 0)),
        Implies(is_in(s["rm"], (Rm.FZERO, Rm.FDEC)),
                And(s["live"], sys.page(s["rm_old"]) == s["ppn"])),
        Implies(s["rm"] == Rm.FZERO, And(Not(s["dirty"]), Not(s["wb"]))),
        Implies(s["rm"] == Rm.FDEC, And(Not(s["upd"]), Not(s["rmf"]), Not(s["dirty"]))),
        Implies(s["rm"] == Rm.FDEL, And(Not(s["live"]), s["ppn"] == zero, Not(s["newer"]),
                                         Not(s["upd"]), Not(s["rmf"]), Not(s["dirty"]))),
    )


@inv("aux/holders")
def aux_holders(sys: System, s: S) -> Any:
    """Who the holders are: the lookup about to return, the inserter, file writers; a
    page not yet read has its loader and nothing else.  (count-equals-holders, put)"""
    loading = And(s["live"], Not(s["upd"]), Not(window(s)))
    return And(
        s["holders"] >= s["fw"] + b2i(s["fpc"] == Find.HIT) + b2i(s["ipc"] == Ins.UNL),
        Implies(s["ipc"] == Ins.UNL, loading),
        Implies(loading, And(s["holders"] >= 1, s["fw"] == 0, Not(s["rmf"]),
                             Not(s["dirty"]), Not(s["xn"]), Not(s["e"]),
                             others_total(s) == 0, s["omd"] == 0)),
        Implies(s["fw"] > 0, And(s["live"], s["upd"])),
    )


@inv("aux/find")
def aux_find(sys: System, s: S) -> Any:
    """pm_find_page's old value differs from the slot only by puts since the read.
    (count-equals-holders, removal-flag-zero-count)"""
    f, w = s["f_old"], s["slot"]
    return And(
        Implies(s["fpc"] != Find.CAS, f == sys.c(0)),
        Implies(s["fpc"] == Find.CAS,
                And(f != sys.c(0), s["live"], Not(window(s)), sys.page(f) == sys.page(w),
                    sys.removal(f) == sys.removal(w), sys.count(w) <= sys.count(f))),
    )


@inv("aux/mark")
def aux_mark(sys: System, s: S) -> Any:
    """The mark pass: nothing is marked before it reaches i; the CAS sees the word it
    read (nobody can take a reference under pm_lock); PG_REMOVAL follows the flag; the
    removal flag lives only while this run can see it.  (removal-flag-zero-count)"""
    w, old = s["slot"], s["rm_old"]
    return And(
        Implies(is_in(s["rm"], (Rm.IDLE, Rm.LOCK, Rm.MARK, Rm.MCAS)),
                And(Not(s["rmf"]), Or(Not(sys.removal(w)), kept_flag(sys, s)))),
        Implies(s["rm"] == Rm.MCAS,
                And(w == old, s["live"], sys.count(old) == 0,
                    Or(Not(sys.removal(old)), kept_flag(sys, s)))),
        Implies(s["rm"] == Rm.MPAGE, And(sys.removal(w), Not(s["rmf"]), s["live"])),
        Implies(Not(is_in(s["rm"], (Rm.MCAS, Rm.MPAGE, Rm.FCAS, Rm.FUM) + Rm.WINDOW)),
                old == sys.c(0)),
        Implies(And(sys.removal(w), Not(window(s))),
                Or(s["rm"] == Rm.MPAGE, kept_flag(sys, s),
                   And(s["rmf"], is_in(s["rm"], Rm.PASS2 + POST_WAIT)))),
        Implies(s["rmf"], is_in(s["rm"], Rm.PASS2 + POST_WAIT + (Rm.FUM, Rm.FZERO))),
        Implies(is_in(s["rm"], Rm.PASS2 + Rm.PASS3), s["rmf"] == marked(sys, s)),
        Implies(is_in(s["rm"], (Rm.MCAS, Rm.MPAGE)), Not(s["pinned"])),
        Implies(is_in(s["rm"], (Rm.DUM, Rm.FUM)), Not(sys.removal(w))),
        Implies(s["rm"] == Rm.FCAS,
                And(w == old, s["rmf"], sys.removal(old), s["live"])),
    )


@inv("passes-visit-every-vmr", LEMMA)
def passes_visit_every_vmr(sys: System, s: S) -> Any:
    """During a run, passes 2 and 3 visit every VMR on pm_vmrs that is not MAP_LOCKED
    (X's, whatever X is), and the PTEs of the VMRs they skip name only pinned pages,
    which the mark pass leaves alone.  (p2-post, p3-post, shootdown-post)  The visit
    part is stated for the mark pass and the passes (``PASSES``): after them nothing
    reads it, and a VMR mmap links while the remover writes back is linked after them."""
    run = is_in(s["rm"], Rm.RUN)
    return And(Implies(is_in(s["rm"], PASSES),
                       s["x_vis"] == And(s["x_linked"], Not(s["x_locked"]))),
               Implies(And(run, others_total(s, "b") > 0), s["pinned"]))


@inv("aux/run")
def aux_run(sys: System, s: S) -> Any:
    """The run's VMR choices lapse with the run; a pinned page is not marked; the
    per-pass progress flags belong to their pass.  (p2-post, p3-post)"""
    run = is_in(s["rm"], Rm.RUN)
    return And(
        Implies(Not(run), And(Not(s["pinned"]), Not(s["x_hasidx"]), Not(s["x_vis"]),
                              others_total(s, "b") == 0)),
        Implies(And(run, s["x_locked"], s["x_linked"]), s["pinned"]),
        Implies(And(run, s["pinned"]),
                And(Not(s["rmf"]), Or(Not(sys.removal(s["slot"])), kept_flag(sys, s)))),
        Implies(s["x_v2"], And(is_in(s["rm"], Rm.PASS2), s["x_vis"])),
        Implies(s["x_sent"], s["x_v2"]),
        Implies(s["x_v3"], And(is_in(s["rm"], Rm.PASS3), s["x_vis"])),
    )


@inv("aux/x")
def aux_x(sys: System, s: S) -> Any:
    """X names P only while P is live and read, in a live VMR on pm_vmrs (D no longer
    needs a writable VMR: mprotect keeps it); munmap's pass 1 leaves X not present and pass 2 zero (the teardown of
    a dying process has no pass 1: X may be present in its pass 2).  (freed-page-
    unreachable, p2-post)"""
    return And(
        Implies(s["xp"], s["xn"]), Implies(s["xd"], s["xn"]),
        Implies(s["xn"], And(s["live"], s["upd"], s["x_linked"], Not(window(s)))),
        Implies(s["x_linked"], s["x_alive"]),
        Implies(And(is_in(s["mu"], (Mu.P1D, Mu.SDW, Mu.P2, Mu.P2R, Mu.P2D)), Not(s["dead"])),
                Not(s["xp"])),
        Implies(is_in(s["mu"], (Mu.P2D, Mu.UL, Mu.DEAD)), Not(s["xn"])),
        Implies(Or(s["mu"] == Mu.DEAD, s["lock"] == Lock.MU), Not(s["e"])),
        Implies(s["mu"] == Mu.DEAD, Not(s["x_linked"])),
        Implies(Not(s["x_linked"]), And(Not(s["xn"]), Not(s["e"]))),
    )


@inv("aux/registers")
def aux_registers(sys: System, s: S) -> Any:
    """What the remover's and munmap's registers hold between reading X and writing it,
    and that pte_lock keeps their read-modify-writes of X apart.  (dirty-recorded)"""
    atomic = sys.fix("atomic-pte-update")
    fold = sys.fix("munmap-fold-dirty")
    rr = [
        Implies(s["rr_n"], And(s["live"], s["upd"], Not(window(s)))),
        Implies(Not(is_in(s["rm"], (Rm.P2W, Rm.P3D, Rm.P3Z))),
                And(Not(s["rr_n"]), Not(s["rr_d"]))),
        Implies(s["rm"] == Rm.P2W,
                And(s["rr_n"], s["xn"], s["xp"], Implies(s["rr_d"], s["xd"]), s["rmf"])),
        Implies(s["rm"] == Rm.P3D, And(s["rr_n"], s["rr_d"], s["rm_w"])),
        Implies(s["rm"] == Rm.P2W, And(s["x_v2"], Not(s["x_sent"]))),
        Implies(is_in(s["rm"], (Rm.P3D, Rm.P3Z)), s["x_v3"]),
        Implies(is_in(s["rm"], (Rm.P2W, Rm.P3D, Rm.P3Z)), marked(sys, s)),
    ]
    if atomic:
        rr.append(Implies(s["rm"] == Rm.P3D, Not(s["xn"])))
    else:
        rr.append(Implies(s["rm"] == Rm.P3D, And(s["xn"], s["xd"])))
        rr.append(Implies(s["rm"] == Rm.P3Z,
                          And(s["rr_n"], s["xn"], Implies(And(s["rr_d"], s["rm_w"]), s["dirty"]),
                              Implies(s["xd"], s["rr_d"]))))
    mr = [
        Implies(s["mr_n"], And(s["live"], s["upd"], s["x_linked"])),
        Implies(Not(is_in(s["mu"], (Mu.P1W, Mu.P2R))), And(Not(s["mr_n"]), Not(s["mr_d"]))),
        Implies(s["mu"] == Mu.P1W,
                And(s["mr_n"], s["xn"], s["xp"], Implies(s["mr_d"], s["xd"]), s["mu_need"])),
        Implies(s["mu"] == Mu.P2R,
                And(s["mr_n"],
                    Not(s["xn"]) if fold else And(s["xn"], s["mr_d"] == s["xd"]))),
        Not(And(is_in(s["rm"], (Rm.P2W, Rm.P3D, Rm.P3Z)), is_in(s["mu"], (Mu.P1W, Mu.P2R)))),
    ]
    # Which intermediate phases a variant has at all.
    mechanics = [
        Implies(z3.BoolVal(atomic), And(s["rm"] != Rm.P2W, s["rm"] != Rm.P3Z,
                                        s["mu"] != Mu.P1W)),
        Implies(z3.BoolVal(not sys.fix("removal-shootdown-wait")), s["rm"] != Rm.P2WAIT),
        Implies(z3.BoolVal(not sys.fix("munmap-shootdown-wait")), s["mu"] != Mu.SDW),
        Implies(s["rm"] == Rm.P2WAIT, And(s["x_v2"], s["x_sent"], Not(s["sync"]))),
        Implies(s["mu"] == Mu.SDW, Not(s["sync"])),
    ]
    return And(*rr, *mr, *mechanics)


@inv("aux/tlb")
def aux_tlb(sys: System, s: S) -> Any:
    """E caches a live, read page; an entry outlives its PTE only between munmap's
    pass 2 and the unlink; while a waiter waits, E is pending flush; a dying process
    has none.  (shootdown-post, tlb-covered)"""
    not_present = Not(And(s["xn"], s["xp"]))
    return And(
        Implies(s["ed"], s["e"]),
        Implies(s["dead"], Not(s["e"])),
        Implies(s["e"], And(s["live"], s["upd"], Not(window(s)))),
        Implies(And(s["e"], Not(s["xn"])), is_in(s["mu"], (Mu.P2R, Mu.P2D, Mu.UL))),
        Implies(And(s["rm"] == Rm.P2WAIT, s["rmf"], s["e"], not_present), s["ep"]),
        Implies(And(s["mu"] == Mu.SDW, s["e"], not_present), s["ep"]),
    )


@inv("tlb-dirty-recorded", LEMMA)
def tlb_dirty_recorded(sys: System, s: S) -> Any:
    """A dirty TLB entry's data is recorded: its PTE has PTE_D while the PTE names P, and
    some record (dirty-recorded) exists in any case.  Stores through other entries are
    allowed exactly under this lemma (CMP), so it is what the summary of other cores
    rests on.  (dirty-recorded)"""
    return And(Implies(And(s["e"], s["ed"], s["xn"]), s["xd"]),
               Implies(And(s["e"], s["ed"]), record(s)))


@inv("tlb-covered", LEMMA)
def tlb_covered(sys: System, s: S) -> Any:
    """A TLB entry whose PTE is no longer present is covered by the shootdown of whoever
    cleared PTE_P, until that shootdown has landed (the core of shootdown-post and
    freed-page-unreachable: stores through stale entries cannot outlive it)."""
    return Implies(And(s["e"], Not(And(s["xn"], s["xp"]))), e_covered(s))


@inv("aux/others")
def aux_others(sys: System, s: S) -> Any:
    """Other PTEs naming P exist only for a live, read page; registers holding their D
    bit are the remover's in pass 3 and munmap's.  (p3-post, freed-page-unreachable)"""
    return And(
        Implies(Or(others_total(s) > 0, s["omd"] > 0, s["ord"]),
                And(s["live"], s["upd"], Not(window(s)))),
        Implies(s["ord"], s["rm"] == Rm.P3),
        Implies(And(marked(sys, s), is_in(s["rm"], Rm.PASS3)),
                And(others_present(s) == 0, Not(s["xp"]))),
        Implies(And(marked(sys, s), is_in(s["rm"], Rm.PASS2 + Rm.PASS3)), s["holders"] == 0),
    )


@inv("aux/writeback")
def aux_writeback(sys: System, s: S) -> Any:
    """ptr_store holds P only from the dirty loop's push to writepage, and P is up to
    date then; dl_before only while writing back.  (dirty-loop-post, writeback-post,
    aux/holders across a failed writepage)"""
    return And(
        Implies(s["wb"], And(s["live"], s["upd"], is_in(s["rm"], (Rm.DCL, Rm.DDONE, Rm.WB)))),
        Implies(s["dl_before"], s["rm"] == Rm.WB),
        Implies(And(s["rm"] == Rm.WB, s["dl_before"]), Not(s["wb"])),
        Implies(is_in(s["rm"], (Rm.DL, Rm.DRC, Rm.DT, Rm.DUM)), Not(s["wb"])),
        Implies(s["rm"] == Rm.DCL, s["wb"]),
    )


# == mmap (F14) ===============================================================================


@inv("stable-foff", LEMMA)
def stable_foff(sys: System, s: S) -> Any:
    """A VMR on pm_vmrs has its vm_file and vm_foff set: pm_remove_contig reads them
    holding only pm_lock (vmr_has_page_idx, vmr_for_each's vmr_idx_to_va, the pin), so
    they must be right from the moment pm_add_vmr links the VMR.  (passes-visit-every-
    vmr; the model's kernel-assert in vmr_idx_to_va, F14)"""
    return Implies(s["x_linked"], s["x_foff"])


@inv("aux/mmap")
def aux_mmap(sys: System, s: S) -> Any:
    """__do_mmap of X's VMR holds vmr_lock (no munmap of it meanwhile); pm_add_vmr's
    holder of pm_lock is the mmap; the VMR joins pm_vmrs at the link, with vm_foff set
    before it only with mmap-foff-first; vm_foff is unset only in that window.
    (stable-foff, aux/x)"""
    first = sys.fix("mmap-foff-first")
    return And(
        (s["lock"] == Lock.ADD) == (s["mx"] == Mx.ADD),
        Implies(s["mx"] != Mx.NONE, And(s["x_alive"], s["mu"] == Mu.NONE)),
        Implies(is_in(s["mx"], (Mx.CREATED, Mx.ADD)),
                And(Not(s["x_linked"]), s["x_foff"] == z3.BoolVal(first))),
        Implies(s["mx"] == Mx.LINKED,
                And(z3.BoolVal(not first), s["x_linked"], Not(s["x_foff"]))),
        Implies(Not(s["x_foff"]), is_in(s["mx"], (Mx.CREATED, Mx.ADD, Mx.LINKED))),
    )


@inv("aux/mprotect")
def aux_mprotect(sys: System, s: S) -> Any:
    """What mprotect split off the VMR's PROT_WRITE: X's PTE_W and E's W bit exist only
    with X and E; pass 3's choice lives from p3_lock to p3_unlock of X's VMR and is to
    fold with removal-fold-always; mprotect's register holds the D bit of present X
    between its load and store, under pte_lock (no remover, munmap or pass 3 of X's
    VMR in between).  (dirty-recorded, tlb-dirty-recorded)"""
    return And(
        Implies(s["x_pte_w"], s["xn"]),
        Implies(s["ew"], s["e"]),
        Implies(s["rm_w"], s["rm_x3"]),
        Implies(s["rm_x3"], And(is_in(s["rm"], Rm.PASS3), s["x_vis"])),
        Implies(is_in(s["rm"], (Rm.P3D, Rm.P3Z)), s["rm_x3"]),
        Implies(And(s["rm_x3"], z3.BoolVal(sys.fix("removal-fold-always"))), s["rm_w"]),
        Implies(s["mp_rmw"], And(s["xn"], s["xp"], Implies(s["mp_d"], s["xd"]),
                                 s["mu"] == Mu.NONE, Not(s["rm_x3"]),
                                 Not(is_in(s["rm"], (Rm.P2W, Rm.P3D, Rm.P3Z))))),
        Implies(Not(s["mp_rmw"]), Not(s["mp_d"])),
        Implies(z3.BoolVal(sys.fix("atomic-pte-update")), Not(s["mp_rmw"])),
    )


def by_name(name: str) -> Invariant:
    for i in INVARIANTS:
        if i.name == name:
            return i
    raise KeyError(name)


def conjunction(sys: System, s: S, skip: str | None = None) -> Any:
    return And(*[i.formula(sys, s) for i in INVARIANTS if i.name != skip])


__all__ = ["INVARIANTS", "Invariant", "by_name", "conjunction", "init", "others_dirty"]

"""Steps of pm_remove_contig (kern/src/pagemap.c, new in the seed) as seen from slot i.

The remover's progress is the phase ``rm`` relative to i: the mark loop
before i, at i (read, CAS, PG_REMOVAL), pass 2 (X and the other PTEs lose
PTE_P; the shootdowns), pass 3 (fold PTE_D, zero), the dirty loop before,
at and past i, the writeback with pm_lock dropped, and the final loop.  Work
on other indices does not touch the state, except the final loop's frees of
other pages (pm_num_pages).  ``x_v2``/``x_v3`` say whether a pass has visited X;
a pass ends only when it has visited X (if its VMR is visited at all) and
left every other class-a PTE as the same pass leaves X -- the per-PTE part of
that is proven on X, which is any PTE.
"""

from __future__ import annotations

from typing import Any

import z3

from proofs.removal.state import OTHER_STATES, Lock, Rm
from proofs.removal.steps_mmu import MU_RMW_X, shoot_e
from proofs.removal.system import (
    FREE,
    Alt,
    System,
    move,
    others_present,
    others_total,
    plus,
    step,
)

And, Or, Not, Implies = z3.And, z3.Or, z3.Not, z3.Implies

# -- start: the one-remover swap and pm_lock ------------------------------------------------------


@step("rm_swap", ["pm_remove_contig.swap"])
def rm_swap(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """atomic_swap(&pm->pm_removal, 1) won by a remover whose range covers i."""
    return [Alt(pre["rm"] == Rm.IDLE, {"rm": Rm.LOCK})]


@step("rm_lock", ["pm_remove_contig.lock"])
def rm_lock(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """spin_lock(&pm->pm_lock); scan pm_vmrs for MAP_LOCKED.  The run's VMR choices:
    whether i is pinned, which VMRs passes 2 and 3 visit (seed: those mapping
    ``index``; removal-vmr-overlap: all that overlap the range), hence X's and the
    other PTEs' classes."""
    overlap = sys.fix("removal-vmr-overlap")
    vis = And(pre["x_linked"], Not(pre["x_locked"]), Or(z3.BoolVal(overlap), post["x_hasidx"]))
    cls = [post[f"a_{s}"] + post[f"b_{s}"] == pre[f"a_{s}"] + pre[f"b_{s}"]
           for s in OTHER_STATES]
    b_total = others_total(post, "b")
    g = And(pre["rm"] == Rm.LOCK, pre["lock"] == Lock.FREE, post["x_vis"] == vis,
            Implies(And(pre["x_locked"], pre["x_linked"]), post["pinned"]),
            Implies(b_total > 0, Or(z3.BoolVal(not overlap), post["pinned"])), *cls)
    ch: dict[str, Any] = {"rm": Rm.MARK, "lock": Lock.RM, "pinned": FREE, "x_hasidx": FREE,
                          "x_vis": FREE, "x_v2": False, "x_v3": False, "x_sent": False}
    ch.update({f"{c}_{s}": FREE for c in "ab" for s in OTHER_STATES})
    return [Alt(g, ch)]


# -- mark ---------------------------------------------------------------------------------------


@step("rm_mark_skip", ["pm_remove_contig.mark_read"])
def rm_mark_skip(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """i is pinned, empty, or has a slot reference: not marked."""
    return [Alt(And(pre["rm"] == Rm.MARK,
                    Or(pre["pinned"], pre["slot"] == sys.c(0), sys.count(pre["slot"]) != 0)),
                {"rm": Rm.P2})]


@step("rm_mark_read", ["pm_remove_contig.mark_read"])
def rm_mark_read(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """old_slot_val = ACCESS_ONCE(*tree_slot): a page, refcount 0."""
    return [Alt(And(pre["rm"] == Rm.MARK, Not(pre["pinned"]), pre["slot"] != sys.c(0),
                    sys.count(pre["slot"]) == 0),
                {"rm": Rm.MCAS, "rm_old": pre["slot"]})]


@step("rm_mark_cas", ["pm_remove_contig.mark_cas"])
def rm_mark_cas(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """atomic_cas_ptr(tree_slot, old, pm_slot_set_removal(old))."""
    at = pre["rm"] == Rm.MCAS
    return [
        Alt(And(at, pre["slot"] == pre["rm_old"]),
            {"slot": sys.set_removal(pre["rm_old"]), "rm": Rm.MPAGE}),
        Alt(And(at, pre["slot"] != pre["rm_old"]), {"rm": Rm.P2, "rm_old": sys.c(0)}),
    ]


@step("rm_mark_page", ["pm_remove_contig.mark_page"])
def rm_mark_page(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """atomic_or(&page->pg_flags, PG_REMOVAL)."""
    return [Alt(pre["rm"] == Rm.MPAGE, {"rmf": True, "rm": Rm.P2, "rm_old": sys.c(0)})]


# -- pass 2: PTE_P off, shootdowns -------------------------------------------------------------------


def enter_p3(pre: dict[str, Any], sent: Any) -> Any:
    """Pass 2 and its shootdowns are over: X visited (if its VMR is), X's process
    shot down since, every class-a PTE naming a marked P not present."""
    return And(Implies(pre["x_vis"], pre["x_v2"]), Implies(pre["x_v2"], sent),
               Implies(pre["rmf"], others_present(pre, "a") == 0))


P3_ENTRY = {"rm": Rm.P3, "x_v2": False, "x_sent": False}


@step("rm_p2_x", ["pm_remove_contig.p2_read"])
def rm_p2_x(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """__pm_mark_not_present on X: if PAGE_PRESENT and PG_REMOVAL, clear PTE_P --
    atomic_and with atomic-pte-update, else the load of a load+store."""
    at = And(pre["rm"] == Rm.P2, pre["x_vis"], Not(pre["x_v2"]),
             Not(Or(*[pre["mu"] == m for m in MU_RMW_X])), Not(pre["mp_rmw"]))
    hit = And(pre["xn"], pre["xp"], pre["rmf"])
    seen = {"x_v2": True, "x_sent": False}
    if sys.fix("atomic-pte-update"):
        done = Alt(And(at, hit), {**seen, "xp": False})
    else:
        done = Alt(And(at, hit), {**seen, "rr_n": True, "rr_d": pre["xd"], "rm": Rm.P2W})
    return [done, Alt(And(at, Not(hit)), seen)]


@step("rm_p2_write_x", ["pm_remove_contig.p2_write"])
def rm_p2_write_x(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """The store half of *pte &= ~PTE_P: the value read, without P (a D bit the CPU
    set in between is overwritten)."""
    return [Alt(pre["rm"] == Rm.P2W, {"xn": pre["rr_n"], "xp": False, "xd": pre["rr_d"],
                                       "rr_n": False, "rr_d": False, "rm": Rm.P2})]


@step("rm_p2_other", ["pm_remove_contig.p2_read", "pm_remove_contig.p2_write"])
def rm_p2_other(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """__pm_mark_not_present on another class-a PTE of marked P."""
    at = And(pre["rm"] == Rm.P2, pre["rmf"])
    out = [plus(move(pre, "a_pc", "a_nc"), at), plus(move(pre, "a_pd", "a_nd"), at)]
    if not sys.fix("atomic-pte-update"):
        out.append(plus(move(pre, "a_pd", "a_nc"), at))
    return out


@step("rm_send_x", ["shootdown_and_reset.send"])
def rm_send_x(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """proc_tlbshootdown(X's process) in pass 2; with removal-shootdown-wait (async)
    the remover then waits for the flushes.  Sent after pass 2 visited X, it is the
    shootdown that covers X (``x_sent``); before, or when X's VMR is not visited, it
    only flushes E's core.  The batch's last send also ends pass 2."""
    at = pre["rm"] == Rm.P2
    wait = sys.fix("removal-shootdown-wait")
    out = []
    for alt in shoot_e(sys, pre, post):
        for covers in (True, False):
            sent = z3.BoolVal(True) if covers else pre["x_sent"]
            base = plus(alt, And(at, pre["x_v2"] if covers else Not(pre["x_v2"])),
                        x_sent=sent)
            if wait and covers:
                out.append(plus(base, Not(pre["sync"]), rm=Rm.P2WAIT))
            go_on = pre["sync"] if wait else z3.BoolVal(True)
            out.append(plus(base, Or(go_on, z3.BoolVal(not covers))))
            out.append(plus(base, And(go_on, enter_p3(pre, sent)), **P3_ENTRY))
    return out


@step("rm_wait_x", ["shootdown_and_reset.wait"])
def rm_wait_x(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """removal-shootdown-wait: every core of X's process has flushed."""
    at = And(pre["rm"] == Rm.P2WAIT, Not(pre["ep"]))
    return [Alt(at, {"rm": Rm.P2}), Alt(And(at, enter_p3(pre, pre["x_sent"])), P3_ENTRY)]


@step("rm_reowe", ["pm_remove_contig.p2_unlock"])
def rm_reowe(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """X's process joins a new batch after its shootdown (another VMR of it)."""
    return [Alt(And(pre["rm"] == Rm.P2, pre["x_v2"]), {"x_sent": False})]


@step("rm_p3_start", ["shootdown_and_reset.enter", "shootdown_and_reset.send",
                      "shootdown_and_reset.wait"])
def rm_p3_start(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """The last shootdown_and_reset_ptrstore returns: pass 3 begins."""
    return [Alt(And(pre["rm"] == Rm.P2, enter_p3(pre, pre["x_sent"])), P3_ENTRY)]


# -- pass 3: fold PTE_D, zero ---------------------------------------------------------------------


@step("rm_p3_x", ["pm_remove_contig.p3_read"])
def rm_p3_x(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """__pm_mark_dirty_pgs_unmap on X (non-zero, PG_REMOVAL): read it -- exchange it
    for 0 with atomic-pte-update -- and go fold PTE_D if pass 3's choice at p3_lock
    (``rm_w``: vm_prot had PROT_WRITE, or removal-fold-always) says so."""
    at = And(pre["rm"] == Rm.P3, pre["x_vis"], Not(pre["x_v3"]), Not(pre["ord"]),
             Not(Or(*[pre["mu"] == m for m in MU_RMW_X])), pre["rm_x3"], Not(pre["mp_rmw"]))
    hit = And(pre["xn"], pre["rmf"])
    fold = And(pre["rm_w"], pre["xd"])
    seen = {"x_v3": True}
    out = [Alt(And(at, Not(hit)), seen)]
    if sys.fix("atomic-pte-update"):
        gone = {**seen, "xn": False, "xp": False, "xd": False, "x_pte_w": False}
        out.append(Alt(And(at, hit, fold), {**gone, "rr_n": True, "rr_d": True, "rm": Rm.P3D}))
        out.append(Alt(And(at, hit, Not(fold)), gone))
    else:
        reg = {**seen, "rr_n": True, "rr_d": pre["xd"]}
        out.append(Alt(And(at, hit, fold), {**reg, "rm": Rm.P3D}))
        out.append(Alt(And(at, hit, Not(fold)), {**reg, "rm": Rm.P3Z}))
    return out


@step("rm_p3_dirty_x", ["pm_remove_contig.p3_dirty"])
def rm_p3_dirty_x(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """atomic_or(&page->pg_flags, PG_DIRTY) for X's D bit."""
    if sys.fix("atomic-pte-update"):
        ch = {"dirty": True, "rr_n": False, "rr_d": False, "rm": Rm.P3}
    else:
        ch = {"dirty": True, "rm": Rm.P3Z}
    return [Alt(pre["rm"] == Rm.P3D, ch)]


@step("rm_p3_zero_x", ["pm_remove_contig.p3_zero"])
def rm_p3_zero_x(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """*pte = 0 (seed): a D bit set since the read is lost with it."""
    return [Alt(pre["rm"] == Rm.P3Z, {"xn": False, "xp": False, "xd": False, "x_pte_w": False,
                                       "rr_n": False, "rr_d": False, "rm": Rm.P3})]


@step("rm_p3_other", ["pm_remove_contig.p3_read", "pm_remove_contig.p3_zero"])
def rm_p3_other(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """Another class-a PTE of marked P is zeroed: exchanged for 0 with its D bit kept
    for the fold (atomic-pte-update), or (seed) zeroed after the fold of the D bit read
    -- a present PTE can have gained D since that read.  Without removal-fold-always a
    VMR whose vm_prot is read-only (mprotect kept PTE_D) is zeroed with no fold (F11)."""
    at = And(pre["rm"] == Rm.P3, pre["rmf"])
    out = []
    for s in OTHER_STATES:
        alt = plus(move(pre, f"a_{s}", None), at)
        if sys.fix("atomic-pte-update"):
            out.append(plus(alt, Not(pre["ord"]), ord=z3.BoolVal(s.endswith("d"))))
        elif s.endswith("d"):
            out.append(plus(alt, Or(pre["dirty"], z3.BoolVal(s.startswith("p")))))
        else:
            out.append(alt)
        if not sys.fix("removal-fold-always"):
            if sys.fix("atomic-pte-update") and s.endswith("d"):
                out.append(plus(alt, Not(pre["ord"])))  # exchanged, D not kept
            elif s == "nd":
                out.append(alt)  # zeroed, PG_DIRTY not set (the seed's present case is above)
    return out


@step("rm_p3_dirty_other", ["pm_remove_contig.p3_dirty"])
def rm_p3_dirty_other(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """PG_DIRTY for another PTE's D bit (from the register with the fix, else read)."""
    at = pre["rm"] == Rm.P3
    if sys.fix("atomic-pte-update"):
        return [Alt(And(at, pre["ord"]), {"ord": False, "dirty": True})]
    return [Alt(And(at, pre["a_pd"] + pre["a_nd"] >= 1), {"dirty": True})]


@step("rm_p3_end", ["pm_remove_contig.p3_vmr"])
def rm_p3_end(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """Pass 3 is over: X visited (if its VMR is), every class-a PTE of marked P zeroed."""
    return [Alt(And(pre["rm"] == Rm.P3, Implies(pre["x_vis"], pre["x_v3"]), Not(pre["ord"]),
                    Not(pre["rm_x3"]),
                    Implies(pre["rmf"], And(others_total(pre, "a") == 0, pre["omd"] == 0))),
                {"rm": Rm.DL, "x_v3": False})]


# -- the dirty loop and writeback ------------------------------------------------------------------


@step("rm_dirty_read", ["pm_remove_contig.dirty_read"])
def rm_dirty_read(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """handle_dirty at i: a page with PG_REMOVAL goes on to the recheck."""
    at = pre["rm"] == Rm.DL
    ours = And(pre["slot"] != sys.c(0), pre["rmf"])
    return [Alt(And(at, ours), {"rm": Rm.DRC}), Alt(And(at, Not(ours)), {"rm": Rm.DDONE})]


@step("rm_dirty_recheck", ["pm_remove_contig.dirty_recheck"])
def rm_dirty_recheck(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """pm_slot_check_removal(*tree_slot): has a lookup taken the page since the mark?"""
    at = pre["rm"] == Rm.DRC
    flag = sys.removal(pre["slot"])
    return [Alt(And(at, flag), {"rm": Rm.DT}), Alt(And(at, Not(flag)), {"rm": Rm.DUM})]


@step("rm_dirty_unmark", ["pm_remove_contig.dirty_unmark"])
def rm_dirty_unmark(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """Lost the race: atomic_and(&page->pg_flags, ~PG_REMOVAL)."""
    return [Alt(pre["rm"] == Rm.DUM, {"rmf": False, "rm": Rm.DDONE})]


@step("rm_dirty_test", ["pm_remove_contig.dirty_test"])
def rm_dirty_test(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """PG_DIRTY: into ptr_store -- or, the array full, break to write back (i stays)."""
    at = pre["rm"] == Rm.DT
    return [
        Alt(And(at, Not(pre["dirty"])), {"rm": Rm.DDONE}),
        Alt(And(at, pre["dirty"]), {"rm": Rm.DL}),
        Alt(And(at, pre["dirty"]), {"wb": True, "rm": Rm.DCL}),
    ]


@step("rm_dirty_clean", ["pm_remove_contig.dirty_clean"])
def rm_dirty_clean(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """atomic_and(&page->pg_flags, ~PG_DIRTY): P is queued for writepage."""
    return [Alt(pre["rm"] == Rm.DCL, {"dirty": False, "rm": Rm.DDONE})]


@step("rm_dirty_unlock", ["pm_remove_contig.dirty_unlock"])
def rm_dirty_unlock(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """spin_unlock(&pm->pm_lock) for the writeback (before, at or past i)."""
    return [Alt(Or(pre["rm"] == Rm.DL, pre["rm"] == Rm.DDONE),
                {"lock": Lock.FREE, "rm": Rm.WB, "dl_before": pre["rm"] == Rm.DL})]


@step("rm_writepage", ["pm_remove_contig.writepage"])
def rm_writepage(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """pm->pm_op->writepage(pm, P): the store gets P's data -- or, with KFS's writepage
    (``kfs``: it returns -1 and writes nothing), it does not.  The seed ignores the
    return value (P stays marked, PG_DIRTY clear: F8); removal-writeback-error sets
    PG_DIRTY again and clears PG_REMOVAL, so the final loop keeps P, while the slot
    keeps its removal flag (count 0) until a lookup clears it."""
    at = And(pre["rm"] == Rm.WB, pre["wb"])
    failed: dict[str, Any] = {"wb": False}
    if sys.fix("removal-writeback-error"):
        failed.update({"dirty": True, "rmf": False})
    return [Alt(And(at, Not(pre["kfs"])), {"wb": False, "newer": False}),
            Alt(And(at, pre["kfs"]), failed)]


@step("rm_relock", ["pm_remove_contig.relock"])
def rm_relock(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """spin_lock(&pm->pm_lock); resume the dirty loop (at or before i, or past it),
    or start the final loop."""
    at = And(pre["rm"] == Rm.WB, Not(pre["wb"]), pre["lock"] == Lock.FREE)
    ch = {"lock": Lock.RM, "dl_before": False}
    return [
        Alt(And(at, pre["dl_before"]), {**ch, "rm": Rm.DL}),
        Alt(And(at, Not(pre["dl_before"])), {**ch, "rm": Rm.DDONE}),
        Alt(And(at, Not(pre["dl_before"])), {**ch, "rm": Rm.FL}),
    ]


# -- the final loop --------------------------------------------------------------------------------------


@step("rm_final_read", ["pm_remove_contig.final_read"])
def rm_final_read(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """old_slot_val = ACCESS_ONCE(*tree_slot): PG_REMOVAL? slot REMOVAL still set?"""
    at = pre["rm"] == Rm.FL
    ours = And(pre["slot"] != sys.c(0), pre["rmf"])
    flag = sys.removal(pre["slot"])
    return [
        Alt(And(at, Not(ours)), {"rm": Rm.FDONE}),
        Alt(And(at, ours, Not(flag)), {"rm": Rm.FUM}),
        Alt(And(at, ours, flag), {"rm": Rm.FCAS, "rm_old": pre["slot"]}),
    ]


@step("rm_final_cas", ["pm_remove_contig.final_cas"])
def rm_final_cas(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """atomic_cas_ptr(tree_slot, old, pm_slot_set_page(old, 0)); page2ppn(NULL) is ``null``."""
    at = pre["rm"] == Rm.FCAS
    return [
        Alt(And(at, pre["slot"] == pre["rm_old"]),
            {"slot": sys.set_page(pre["rm_old"], pre["null"]), "rm": Rm.FZERO}),
        Alt(And(at, pre["slot"] != pre["rm_old"]), {"rm": Rm.FUM}),
    ]


@step("rm_final_unmark", ["pm_remove_contig.final_unmark"])
def rm_final_unmark(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """atomic_and(&page->pg_flags, ~PG_REMOVAL): the page stays."""
    return [Alt(pre["rm"] == Rm.FUM, {"rmf": False, "rm": Rm.FDONE, "rm_old": sys.c(0)})]


@step("rm_final_zero_flags", ["pm_remove_contig.final_zero_flags"])
def rm_final_zero_flags(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """atomic_set(&page->pg_flags, 0)."""
    return [Alt(pre["rm"] == Rm.FZERO,
                {"upd": False, "rmf": False, "dirty": False, "rm": Rm.FDEC})]


@step("rm_final_decref", ["pm_remove_contig.final_decref"])
def rm_final_decref(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """page_decref(page): P is freed; nr_removed++."""
    return [Alt(pre["rm"] == Rm.FDEC,
                {"live": False, "ppn": sys.c(0), "newer": False,
                 "removed": pre["removed"] + 1, "rm": Rm.FDEL})]


@step("rm_final_delete", ["pm_remove_contig.final_delete"])
def rm_final_delete(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """radix_delete(&pm->pm_tree, i)."""
    return [Alt(pre["rm"] == Rm.FDEL, {"slot": sys.c(0), "rm_old": sys.c(0), "rm": Rm.FDONE})]


@step("rm_free_other", ["pm_remove_contig.final_decref (another index)"])
def rm_free_other(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """The final loop frees another index's page."""
    return [Alt(And(Or(pre["rm"] == Rm.FL, pre["rm"] == Rm.FDONE), pre["others"] >= 1),
                {"others": pre["others"] - 1, "removed": pre["removed"] + 1})]


@step("rm_final_unlock", ["pm_remove_contig.final_unlock"])
def rm_final_unlock(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """pm->pm_num_pages -= nr_removed; spin_unlock(&pm->pm_lock)."""
    return [Alt(pre["rm"] == Rm.FDONE,
                {"num": pre["num"] - pre["removed"], "removed": 0, "lock": Lock.FREE,
                 "rm": Rm.RDONE})]


@step("rm_done", ["pm_remove_contig.done"])
def rm_done(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """atomic_set(&pm->pm_removal, 0): the run is over; its VMR choices lapse."""
    ch: dict[str, Any] = {"rm": Rm.IDLE, "pinned": False, "x_hasidx": False, "x_vis": False}
    for s in OTHER_STATES:
        ch[f"a_{s}"] = pre[f"a_{s}"] + pre[f"b_{s}"]
        ch[f"b_{s}"] = 0
    return [Alt(pre["rm"] == Rm.RDONE, ch)]

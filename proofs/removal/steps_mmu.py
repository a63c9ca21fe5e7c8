"""Steps of the address-space side: page faults, the TLB, user stores, munmap
(kern/src/mm.c, the hardware model of spec/model.md, proc_tlbshootdown).

X is one PTE of a shared VMR mapping file page f and E one core's TLB entry
for X.  Every other PTE naming P is counted by class and (present, dirty);
every other TLB entry is summarised, in the manner of the CMP method: a store
through another entry is allowed whenever the invariants proven of E would
allow it for that entry -- through a present PTE (which then gets PTE_D), or
through a dirty entry while the protocol still records that P is dirty.
"""

from __future__ import annotations

from typing import Any

import z3

from proofs.removal.state import Lock, Mu, Mx, Rm
from proofs.removal.system import (
    FREE,
    Alt,
    System,
    hasidx_afresh,
    is_in,
    move,
    others_total,
    plain_holder,
    plus,
    record,
    step,
)

And, Or, Not = z3.And, z3.Or, z3.Not

#: The remover holds X's process's pte_lock between reading and writing X.
RM_RMW_X = (Rm.P2W, Rm.P3D, Rm.P3Z)
#: munmap holds it between reading and writing X.
MU_RMW_X = (Mu.P1W, Mu.P2R)

# -- handle_page_fault ----------------------------------------------------------------------


@step("fault_install_x", ["__handle_page_fault.write_pte"])
def fault_install_x(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """A holder's page fault installs X: PTE(P, P|prot), keeping PTE_D of a !P PTE;
    PTE_W from the VMR's vm_prot now (pte_prot).

    Needs vmr_lock (no munmap of X's VMR in progress) and a live VMR."""
    g = And(pre["upd"], plain_holder(pre), pre["mu"] == Mu.NONE, pre["x_alive"],
            pre["x_linked"], Not(And(pre["xn"], pre["xp"])),
            Not(is_in(pre["rm"], RM_RMW_X)))
    return [Alt(g, {"xn": True, "xp": True, "xd": And(pre["xn"], pre["xd"]),
                    "x_pte_w": pre["x_w"]})]


@step("fault_install_other", ["__handle_page_fault.write_pte"])
def fault_install_other(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """A holder's page fault installs another PTE naming P (new, or !P keeping PTE_D).

    A new PTE is in class b only during a run, and on fixed only if i is pinned."""
    g = And(pre["upd"], plain_holder(pre))
    may_b = And(is_in(pre["rm"], Rm.RUN),
                Or(z3.BoolVal(not sys.fix("removal-vmr-overlap")), pre["pinned"]))
    out = [Alt(g, {"a_pc": pre["a_pc"] + 1}), Alt(And(g, may_b), {"b_pc": pre["b_pc"] + 1})]
    for c in "ab":
        out.append(plus(move(pre, f"{c}_nc", f"{c}_pc"), g))
        out.append(plus(move(pre, f"{c}_nd", f"{c}_pd"), g))
    return out


# -- the hardware: E ------------------------------------------------------------------------


@step("tlb_fill_read", ["user_access.try"])
def tlb_fill_read(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """A load misses, walks present X: E is filled with X's dirty and writable bits (a
    user access: not once X's process is dying)."""
    return [Alt(And(Not(pre["e"]), Not(pre["dead"]), pre["xn"], pre["xp"]),
                {"e": True, "ed": pre["xd"], "ew": pre["x_pte_w"]})]


@step("tlb_fill_write", ["user_access.try"])
def tlb_fill_write(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """A store misses, walks present X with PTE_W: sets PTE_D, fills E dirty and
    writable, stores."""
    return [Alt(And(Not(pre["e"]), Not(pre["dead"]), pre["xn"], pre["xp"], pre["x_pte_w"]),
                {"e": True, "ed": True, "ew": True, "xd": True, "newer": True})]


@step("tlb_store_dirty", ["user_access.try"])
def tlb_store_dirty(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """A store hits dirty writable E: straight to the page, the PTE is not looked at."""
    return [Alt(And(pre["e"], pre["ed"], pre["ew"]), {"newer": True})]


@step("tlb_store_clean", ["user_access.try"])
def tlb_store_clean(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """A store hits clean writable E: the CPU's locked update sets PTE_D of present X
    (the re-walk needs PTE_W too)."""
    return [Alt(And(pre["e"], Not(pre["ed"]), pre["ew"], pre["x_pte_w"], pre["xn"], pre["xp"]),
                {"ed": True, "xd": True, "newer": True})]


@step("tlb_store_fault", ["user_access.try"])
def tlb_store_fault(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """A store hits clean E but X is not present (or lost PTE_W to mprotect), or hits a
    read-only E: page fault, E is dropped."""
    gone = {"e": False, "ed": False, "ew": False}
    return [Alt(And(pre["e"], Not(pre["ed"]), pre["ew"],
                    Not(And(pre["xn"], pre["xp"], pre["x_pte_w"]))), gone),
            Alt(And(pre["e"], Not(pre["ew"])), gone)]


@step("tlb_flush", ["flush event (proc_tlbshootdown's IPI lands)"])
def tlb_flush(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """The pending flush lands on E's core: its whole TLB goes."""
    return [Alt(pre["ep"], {"e": False, "ed": False, "ew": False, "ep": False})]


@step("tlb_exit", ["dispatch (the core's last thread returns, or its SCP blocks)"])
def tlb_exit(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """E's core leaves the address space, TLB emptied: its last thread finished, or its
    SCP blocked (PROC_WAITING)."""
    return [Alt(True, {"e": False, "ed": False, "ew": False, "ep": False})]


@step("x_kill", ["proc_destroy.kill (X's process)"])
def x_kill(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """proc_destroy(X's process): PROC_DYING, __death to its cores, which never run its
    user code again (their TLBs go, pending flushes with them).  Its threads in the
    kernel finish their kernel paths; __proc_free tears the address space down after."""
    return [Alt(Not(pre["dead"]),
                {"dead": True, "e": False, "ed": False, "ew": False, "ep": False})]


def shoot_e(sys: System, pre: dict[str, Any], post: dict[str, Any],
            remote: bool = True) -> list[Alt]:
    """proc_tlbshootdown(X's process) and E's core (process.c, by p->state).  E's core
    is flushed at once when sync, or when it is the caller's own core (also async);
    async, another target core gets a pending flush (not a finished core, which has
    no entries).  An SCP (PROC_RUNNING_S) has only the *calling* core flushed unless
    shootdown-scp-remote: E's core is not reached (F6).  A process in another state
    (an SCP blocked in PROC_WAITING) gets nothing, and has no entries (sched.sleep).
    ``remote``: the caller may run outside X's process (the remover); munmap runs in
    it, and an SCP's thread runs on the SCP's one core, E's."""
    reach = Or(Not(pre["scp"]), z3.BoolVal(sys.fix("shootdown-scp-remote") or not remote))
    out = [
        Alt(True, {"e": False, "ed": False, "ew": False}),
        Alt(And(Not(pre["sync"]), reach), {"ep": True}),
        Alt(And(Not(pre["sync"]), Not(pre["e"])), {}),
    ]
    return out + ([Alt(Not(reach), {})] if remote else [])


@step("shootdown_other", ["munmap.shootdown (of another VMR of E's process)",
                          "shootdown_and_reset.send (the remover, before it visited X)"])
def shootdown_other(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """A shootdown of E's process that the proofs do not track (it only helps)."""
    return shoot_e(sys, pre, post)


# -- stores through other TLB entries (CMP summary) ------------------------------------------


@step("other_store_present", ["user_access.try (another core or entry)"])
def other_store_present(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """Another entry stores through a present PTE naming P: that PTE gets PTE_D."""
    g = And(pre["live"], pre["upd"])
    # through X: another core of X's process, which runs no user code once it is dying
    out = [Alt(And(g, Not(pre["dead"]), pre["xn"], pre["xp"], pre["x_pte_w"]),
               {"xd": True, "newer": True})]
    for c in "ab":
        out.append(plus(move(pre, f"{c}_pc", f"{c}_pd"), g, newer=True))
        out.append(plus(move(pre, f"{c}_pd", f"{c}_pd"), g, newer=True))
    return out


@step("other_store_dirty", ["user_access.try (another dirty entry)"])
def other_store_dirty(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """Another dirty entry stores: allowed only while the protocol records P dirty,
    which is what `tlb-dirty-recorded` proves of E (and so of every entry)."""
    lemma = record(pre) if sys.env_lemmas else z3.BoolVal(True)
    return [Alt(And(pre["live"], pre["upd"], lemma), {"newer": True})]


# -- munmap of X's VMR ---------------------------------------------------------------------------


@step("mu_start", ["munmap.lock_vmr"])
def mu_start(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """spin_lock(&p->vmr_lock) for munmap of X's VMR: no fault in X's process now (and
    no __do_mmap or mprotect of X's VMR, which hold vmr_lock throughout)."""
    return [Alt(And(pre["mu"] == Mu.NONE, pre["mx"] == Mx.NONE, Not(pre["mp_rmw"])),
                {"mu": Mu.P1, "mu_need": False})]


@step("td_start", ["unmap_and_destroy_vmrs.lock_vmr"])
def td_start(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """__proc_free of X's dying process, every other thread of it stopped:
    unmap_and_destroy_vmrs takes vmr_lock and runs __vmr_free_pgs over every VMR --
    the teardown enters munmap's pass 2 on X's VMR with no pass 1 and no shootdown
    (no user code runs, its TLBs went with proc_destroy), so X may still be present."""
    return [Alt(And(pre["dead"], pre["mu"] == Mu.NONE, pre["mx"] == Mx.NONE, pre["x_alive"],
                    Not(pre["mp_rmw"])),
                {"mu": Mu.P2})]


@step("mu_p1_x", ["munmap.p1_read"])
def mu_p1_x(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """__munmap_mark_not_present on X: clear PTE_P (atomic_and with the fix, else the
    load of a load+store), set shootdown_needed."""
    at = And(pre["mu"] == Mu.P1, Not(is_in(pre["rm"], RM_RMW_X)))
    present = And(pre["xn"], pre["xp"])
    if sys.fix("atomic-pte-update"):
        hit = Alt(And(at, present), {"xp": False, "mu_need": True, "mu": Mu.P1D})
    else:
        hit = Alt(And(at, present),
                  {"mr_n": True, "mr_d": pre["xd"], "mu_need": True, "mu": Mu.P1W})
    return [hit, Alt(And(at, Not(present)), {"mu": Mu.P1D})]


@step("mu_p1_write_x", ["munmap.p1_write"])
def mu_p1_write_x(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """The store half of *pte &= ~PTE_P: writes back the value read, without P."""
    return [Alt(pre["mu"] == Mu.P1W, {"xn": pre["mr_n"], "xp": False, "xd": pre["mr_d"],
                                       "mr_n": False, "mr_d": False, "mu": Mu.P1D})]


@step("mu_need", ["munmap.p1_read (another PTE of X's VMR)"])
def mu_need(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """Another present PTE of X's VMR makes the shootdown needed."""
    return [Alt(Or(pre["mu"] == Mu.P1, pre["mu"] == Mu.P1D), {"mu_need": True})]


@step("mu_shootdown", ["munmap.shootdown"])
def mu_shootdown(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """proc_tlbshootdown(p); with munmap-shootdown-wait (async), wait for the flushes."""
    at = And(pre["mu"] == Mu.P1D, pre["mu_need"])
    out = []
    for alt in shoot_e(sys, pre, post, remote=False):
        if sys.fix("munmap-shootdown-wait"):
            nxt = z3.If(pre["sync"], Mu.P2, Mu.SDW)
        else:
            nxt = Mu.P2
        out.append(plus(alt, at, mu=nxt, mu_need=False))
    return out


@step("mu_no_shootdown", ["munmap.unlock_pte1"])
def mu_no_shootdown(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """No present PTE in pass 1: no shootdown."""
    return [Alt(And(pre["mu"] == Mu.P1D, Not(pre["mu_need"])), {"mu": Mu.P2})]


@step("mu_wait", ["munmap.shootdown_wait"])
def mu_wait(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """Fix munmap-shootdown-wait: E's core has flushed."""
    return [Alt(And(pre["mu"] == Mu.SDW, Not(pre["ep"])), {"mu": Mu.P2})]


@step("mu_p2_x", ["__vmr_free_pgs.read"])
def mu_p2_x(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """__vmr_free_pgs on X: read it (exchange it for 0 with munmap-fold-dirty)."""
    at = And(pre["mu"] == Mu.P2, Not(is_in(pre["rm"], RM_RMW_X)))
    reg = {"mr_n": True, "mr_d": pre["xd"], "mu": Mu.P2R}
    if sys.fix("munmap-fold-dirty"):
        reg.update(xn=False, xp=False, xd=False, x_pte_w=False)
    return [Alt(And(at, pre["xn"]), reg), Alt(And(at, Not(pre["xn"])), {"mu": Mu.P2D})]


@step("mu_p2_zero_x", ["__vmr_free_pgs.zero"])
def mu_p2_zero_x(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """*pte = 0 (seed, PTE_D dropped); with munmap-fold-dirty, fold the D bit read."""
    ch: dict[str, Any] = {"mr_n": False, "mr_d": False, "mu": Mu.P2D}
    if sys.fix("munmap-fold-dirty"):
        ch["dirty"] = Or(pre["dirty"], And(pre["mr_n"], pre["mr_d"]))
    else:
        ch.update(xn=False, xp=False, xd=False, x_pte_w=False)
    return [Alt(pre["mu"] == Mu.P2R, ch)]


@step("mu_unlock_pte", ["munmap.unlock_pte2",
                        "unmap_and_destroy_vmrs.unlock_pte (X's VMR first on the list)",
                        "unmap_and_destroy_vmrs.destroyed (next: X's VMR)"])
def mu_unlock_pte(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """spin_unlock(&p->pte_lock); destroy_vmr -> pm_remove_vmr (the teardown: after
    __vmr_free_pgs over every VMR, destroy_vmr of each in turn, X's now)."""
    return [Alt(pre["mu"] == Mu.P2D, {"mu": Mu.UL})]


@step("mu_pm_lock", ["pm_remove_vmr.lock"])
def mu_pm_lock(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """spin_lock(&pm->pm_lock) in pm_remove_vmr."""
    return [Alt(And(pre["mu"] == Mu.UL, pre["lock"] == Lock.FREE), {"lock": Lock.MU})]


@step("mu_unlink", ["pm_remove_vmr.unlink"])
def mu_unlink(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """TAILQ_REMOVE(&pm->pm_vmrs, vmr): X's VMR leaves the page map's VMR list."""
    keeps = Or(z3.BoolVal(not sys.fix("removal-vmr-overlap")),
               others_total(pre, "b") == 0, post["pinned"])
    return [Alt(And(pre["mu"] == Mu.UL, pre["lock"] == Lock.MU,
                    z3.Implies(post["pinned"], pre["pinned"]),
                    z3.Implies(Not(pre["x_locked"]), post["pinned"] == pre["pinned"]), keeps),
                {"x_linked": False, "x_vis": False, "pinned": FREE, "lock": Lock.FREE,
                 "mu": Mu.DEAD})]


@step("other_unlink", ["pm_remove_vmr.unlink (munmap of another VMR, MAP_LOCKED)"])
def other_unlink(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """TAILQ_REMOVE of another, MAP_LOCKED VMR mapping i; spin_unlock(&pm->pm_lock).
    Between the remover's dirty loop and its relock (pm_lock dropped for writepage)
    the run's pin of i lapses with the last locked VMR that maps i; X's VMR, locked
    and linked, would still pin it.  The unlinked VMR's PTEs are zeroed already, so
    with removal-vmr-overlap (the passes skip only locked VMRs) no skipped PTE names
    P any more; with the seed's rule a VMR not mapping ``index`` may (F3)."""
    keeps = Or(z3.BoolVal(not sys.fix("removal-vmr-overlap")), others_total(pre, "b") == 0)
    return [Alt(And(pre["lock"] == Lock.OTHER, Not(pre["oins"]), pre["removed"] == 0,
                    pre["pinned"], Not(And(pre["x_locked"], pre["x_linked"])), keeps),
                {"pinned": False, "lock": Lock.FREE})]


@step("mu_end", ["destroy_vmr.free"])
def mu_end(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """destroy_vmr takes the VMR off its process's list and frees it (its fields are
    gone, vm_prot with them: vmr_has_page_idx of X's VMR means nothing any more,
    steps_split)."""
    return [Alt(And(pre["mu"] == Mu.DEAD,
                    hasidx_afresh(pre, post)),
                {"x_alive": False, "x_w": False, "mu": Mu.NONE, "x_hasidx": FREE})]


# -- munmap passes over other PTEs naming P -------------------------------------------------------


@step("mu_p1_other", ["munmap.p1_read", "munmap.p1_write"])
def mu_p1_other(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """Pass 1 clears PTE_P of another PTE; the plain load+store (seed) can lose PTE_D."""
    out = []
    for c in "ab":
        out.append(move(pre, f"{c}_pc", f"{c}_nc"))
        out.append(move(pre, f"{c}_pd", f"{c}_nd"))
        if not sys.fix("atomic-pte-update"):
            out.append(move(pre, f"{c}_pd", f"{c}_nc"))
    return out


@step("mu_p2_other", ["__vmr_free_pgs.read", "__vmr_free_pgs.zero"])
def mu_p2_other(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """Pass 2 zeroes another PTE: seed drops PTE_D; munmap-fold-dirty keeps it in a
    register (``omd``) until the fold."""
    out = []
    for c in "ab":
        for s in ("pc", "pd", "nc", "nd"):
            alt = move(pre, f"{c}_{s}", None)
            if sys.fix("munmap-fold-dirty") and s.endswith("d"):
                alt = plus(alt, omd=pre["omd"] + 1)
            out.append(alt)
    return out


@step("mu_fold_other", ["__vmr_free_pgs.zero"])
def mu_fold_other(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """munmap-fold-dirty: atomic_or(&page->pg_flags, PG_DIRTY) for the D bit it took."""
    if not sys.fix("munmap-fold-dirty"):
        return []
    return [Alt(pre["omd"] >= 1, {"omd": pre["omd"] - 1, "dirty": True})]

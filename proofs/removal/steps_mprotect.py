"""Steps of mprotect of a whole VMR (kern/src/mm.c: __do_mprotect, model/pagemap/
mprotect.py) and the remover's pass 3 choice it bears on (pm_remove_contig's
``vm_prot & PROT_WRITE`` test under pte_lock), as seen from slot i, PTE X and E.

mprotect is why ``x_w`` no longer stands for both the VMR's PROT_WRITE and X's
PTE_W: ``set_prot`` changes the first (``x_w``) under vmr_lock only, the PTE walk
rewrites the second (``x_pte_w``) of each *present* PTE under pte_lock keeping
PTE_D, and a TLB entry keeps the W bit it was filled with (``ew``) until the
shootdown at the end.  Pass 3 reads vm_prot once per VMR, at p3_lock: its choice
for X's VMR is the register ``rm_w``, which a set_prot after the lock does not
change.  Without removal-fold-always a read-only VMR is zeroed without folding
PTE_D: F11.

mprotect's lock_vmr, loop, lock_pte, unlock_pte, done and unlock_vmr change
nothing the state abstracts (vmr_lock keeps munmap of X's VMR out of the PTE
window, which ``mu_start`` and ``td_start`` say through ``mp_rmw``; a fault cannot
install X while it is present),
and its loop's `continue` on a VMR that already has the new protection (F12's
livelock) is a stutter: a liveness bug, no step of the proofs.
"""

from __future__ import annotations

from typing import Any

import z3

from proofs.removal.state import Mu, Rm
from proofs.removal.steps_mmu import MU_RMW_X, RM_RMW_X, shoot_e
from proofs.removal.system import FREE, Alt, System, is_in, move, step

And, Or, Not = z3.And, z3.Or, z3.Not

# -- mprotect of X's VMR ---------------------------------------------------------------------------


@step("mp_set_prot", ["mprotect.set_prot"])
def mp_set_prot(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """vmr->vm_prot = prot on X's VMR, under vmr_lock only: pass 3 (pm_lock and
    pte_lock) may be anywhere, and PTEs keep their bits until the walk below."""
    return [Alt(And(pre["x_alive"], pre["mu"] == Mu.NONE, Not(pre["mp_rmw"])), {"x_w": FREE})]


@step("mp_pte_x", ["mprotect.pte_read"])
def mp_pte_x(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """pgdir_walk; PAGE_PRESENT(*pte) on X under pte_lock: replace the W/U bits with
    pte_prot(vm_prot), keeping P, D and the ppn -- one cmpxchg loop with
    atomic-pte-update, else the load of a plain load and store."""
    at = And(pre["xn"], pre["xp"], Not(pre["mp_rmw"]), pre["mu"] == Mu.NONE,
             Not(is_in(pre["rm"], RM_RMW_X)), Not(pre["rm_x3"]))
    if sys.fix("atomic-pte-update"):
        return [Alt(at, {"x_pte_w": pre["x_w"]})]  # a D bit set since the load is kept
    return [Alt(at, {"mp_rmw": True, "mp_d": pre["xd"]})]


@step("mp_pte_write_x", ["mprotect.pte_write"])
def mp_pte_write_x(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """The store half: *pte = (old & ~PTE_PERM) | pte_prot, from the value read -- a D
    bit the CPU set in between is overwritten (F1's pattern, in mprotect)."""
    return [Alt(pre["mp_rmw"], {"xd": pre["mp_d"], "x_pte_w": pre["x_w"], "mp_rmw": False,
                                "mp_d": False})]


@step("mp_pte_other", ["mprotect.pte_read", "mprotect.pte_write"])
def mp_pte_other(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """The same rewrite of another present PTE naming P: its W bit is not tracked; the
    seed's plain load and store can lose a D bit set in between."""
    if sys.fix("atomic-pte-update"):
        return []
    return [move(pre, f"{c}_pd", f"{c}_pc") for c in "ab"]


@step("mp_shootdown", ["mprotect.shootdown"])
def mp_shootdown(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """proc_tlbshootdown(p, addr, addr + len) by a thread of X's process, vmr_lock still
    held: E and its W bit go (or a flush is queued), as with munmap's."""
    return shoot_e(sys, pre, post, remote=False)


# -- pass 3's choice, read at p3_lock ----------------------------------------------------------


@step("rm_p3_lock_x", ["pm_remove_contig.p3_lock"])
def rm_p3_lock_x(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """spin_lock(&vmr->vm_proc->pte_lock) for X's VMR; vm_prot & PROT_WRITE chooses
    __pm_mark_dirty_pgs_unmap over __pm_mark_unmap (removal-fold-always: always)."""
    fold = Or(pre["x_w"], z3.BoolVal(sys.fix("removal-fold-always")))
    return [Alt(And(pre["rm"] == Rm.P3, pre["x_vis"], Not(pre["x_v3"]), Not(pre["rm_x3"]),
                    Not(pre["mp_rmw"]), Not(is_in(pre["mu"], MU_RMW_X))),
                {"rm_x3": True, "rm_w": fold})]


@step("rm_p3_unlock_x", ["pm_remove_contig.p3_unlock"])
def rm_p3_unlock_x(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """spin_unlock(&vmr->vm_proc->pte_lock) after X's VMR: the choice lapses."""
    return [Alt(And(pre["rm"] == Rm.P3, pre["rm_x3"], pre["x_v3"]),
                {"rm_x3": False, "rm_w": False})]

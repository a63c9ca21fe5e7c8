"""Steps of mmap of X's VMR (kern/src/mm.c: __do_mmap, kern/src/pagemap.c: pm_add_vmr).

__do_mmap runs with the process's vmr_lock held: create_vmr puts a zeroed VMR on the
process's list and sets vm_prot and vm_flags (``mx_create``); pm_add_vmr takes
pm_lock (``mx_add_lock``) and links the VMR on pm_vmrs (``mx_link``); then the seed
sets vm_file and vm_foff (``mx_set_file``).  With the fix ``mmap-foff-first`` the two
fields are set in create_vmr's step, before pm_add_vmr, and there is no set_file.
Between the link and set_file the VMR is on pm_vmrs with vm_foff 0, and the remover
reads VMRs on pm_vmrs holding only pm_lock (F14): ``stable-foff`` fails at the link.

MAP_POPULATE's faults (under vmr_lock on seed, after it with hpf-load-unlocked) are
page faults like any other: ``fault_install_x``.  When one fails, the error path
(``mx_populate_failed``) destroys the VMR: on seed with destroy_vmr alone, which
leaves the PTEs the populate filled (F13); with populate-unmap-on-error by running
__do_munmap over the VMR, whose steps are munmap's (steps_mmu).  merge_me's
merge_vmr(first, second) grows first over second (first->vm_end = second->vm_end,
vmr_lock only) and destroys second.  The growth stutters: X's VMR is the record that
held X before (abstraction.View.xrec), and a record growing upwards gains no
``vmr_has_page_idx`` of the remover's index for an X it held (index <= i).  X in second
changes record at destroy_vmr's unlink (``mx_merge_unlink_x``), outside the remover's
passes.  vmr_lock keeps munmap of X's VMR out while __do_mmap runs (``mu_start`` and
``td_start`` need ``mx`` none).
"""

from __future__ import annotations

from typing import Any

import z3

from proofs.removal.state import Lock, Mu, Mx, Rm
from proofs.removal.steps_pm import other_unlock
from proofs.removal.steps_split import _vis
from proofs.removal.system import FREE, Alt, System, hasidx_afresh, is_in, plus, step

And, Not = z3.And, z3.Not


@step("mx_create", ["mmap.create"])
def mx_create(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """create_vmr(p, addr, len); vm_prot, vm_flags (and, with mmap-foff-first, vm_file
    and vm_foff): X's VMR is alive, on its process's list, not on pm_vmrs.  What
    vmr_has_page_idx says of it is read afresh (the record has a geometry now),
    and so is its vm_prot (``x_w``, the VMR's PROT_WRITE: steps_mprotect)."""
    g = And(pre["mx"] == Mx.NONE, Not(pre["x_alive"]), pre["mu"] == Mu.NONE,
            hasidx_afresh(pre, post))
    return [Alt(g, {"mx": Mx.CREATED, "x_alive": True, "x_hasidx": FREE, "x_w": FREE,
                    "x_foff": z3.BoolVal(sys.fix("mmap-foff-first"))})]


@step("mx_add_lock", ["pm_add_vmr.lock"])
def mx_add_lock(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """pm_add_vmr: spin_lock(&pm->pm_lock)."""
    return [Alt(And(pre["mx"] == Mx.CREATED, pre["lock"] == Lock.FREE),
                {"mx": Mx.ADD, "lock": Lock.ADD})]


@step("mx_link", ["pm_add_vmr.link"])
def mx_link(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """TAILQ_INSERT_TAIL(&pm->pm_vmrs, vmr); spin_unlock(&pm->pm_lock).

    pm_lock is free only when no remover runs or while one writes back (or has
    unlocked for good): a VMR linked during a run comes after its passes, which
    are the only readers of the run's VMR choices, so ``x_vis`` is left free then
    (passes-visit-every-vmr holds it only during the passes).  The run's pin
    (``pinned``) is computed from the VMRs there at its lock; a MAP_LOCKED VMR
    linked later would change what the abstraction counts as pinned, which the
    proved system has no image of: such a link is left out (spec/removal/index.md,
    section 6)."""
    run = is_in(pre["rm"], Rm.RUN)
    g = And(pre["mx"] == Mx.ADD, pre["lock"] == Lock.ADD)
    ch: dict[str, Any] = {"x_linked": True, "lock": Lock.FREE,
                          "mx": Mx.NONE if sys.fix("mmap-foff-first") else Mx.LINKED}
    return [Alt(And(g, Not(run)), ch),
            Alt(And(g, run, Not(pre["x_locked"])), {**ch, "x_vis": FREE})]


@step("mx_set_file", ["mmap.set_file"])
def mx_set_file(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """vmr->vm_file = file; vmr->vm_foff = offset, after pm_add_vmr (the seed's order;
    with mmap-foff-first this happens in mx_create).  The run's view of X's VMR may
    change with it (x_vis: the remover reads the fields live)."""
    if sys.fix("mmap-foff-first"):
        return []
    run = is_in(pre["rm"], Rm.RUN)
    ch: dict[str, Any] = {"x_foff": True, "mx": Mx.NONE}
    return [Alt(And(pre["mx"] == Mx.LINKED, Not(run)), ch),
            Alt(And(pre["mx"] == Mx.LINKED, run), {**ch, "x_vis": FREE})]


@step("mx_populate_failed", ["mmap.populate_failed"])
def mx_populate_failed(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """A MAP_POPULATE fault of X's VMR failed, vmr_lock held (set_file done: ``mx``
    none).  The seed calls destroy_vmr: munmap's unlink phase with X as the populate
    left it, present perhaps, and E with it (F13).  With populate-unmap-on-error the
    C calls __do_munmap over the VMR's range: munmap's pass 1, entered past its
    lock_vmr since the lock is held (``mu_start``'s change)."""
    g = And(pre["mu"] == Mu.NONE, pre["mx"] == Mx.NONE, pre["x_alive"], Not(pre["mp_rmw"]))
    if sys.fix("populate-unmap-on-error"):
        return [Alt(g, {"mu": Mu.P1, "mu_need": False})]
    return [Alt(g, {"mu": Mu.UL})]


@step("mx_merge_unlink_x",
      ["pm_remove_vmr.unlink (merge_vmr's destroy_vmr of the VMR X was in)"])
def mx_merge_unlink_x(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """merge_vmr(first, second): first grew over second, which destroy_vmr now takes off
    pm_vmrs (TAILQ_REMOVE; spin_unlock, other_unlock's relation).  Until now X, in
    second's range, was in both records and X's VMR was second, the one that held it
    (abstraction.View.xrec); now it is first, linked and alive, with X's PTE and E as
    they are: zero when second is the new VMR (vmr_lock has been held since
    create_vmr, and faults take it), anything when it is the mapped next VMR.  The
    unlinker holds pm_lock, so the remover is not in its passes: no pass progress to
    carry over, only vmr_has_page_idx and the visit, read afresh."""
    g = And(hasidx_afresh(pre, post), _vis(sys, pre, post))  # x_linked is framed
    return [plus(alt, g, x_hasidx=FREE, x_vis=FREE) for alt in other_unlock(sys, pre, post)]

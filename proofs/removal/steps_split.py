"""Steps of split_vmr (kern/src/mm.c), called by isolate_vmrs for a partial munmap, as
seen from X (spec/removal/index.md, section 6, "split_vmr").

split_vmr(old, va) makes a new VMR for [va, old end).  X, any PTE of ``old``, either
stays in the old record (X below va: the head) or moves to the new one (the tail).
The abstraction follows X's address (``View.xrec``): X's VMR is the record that maps
it now.  So the head sees nothing but pm_lock change hands; for the tail, X's VMR
becomes another record at the step that shrinks the old one:

* seed (split_vmr.shrink): ``old->vm_end = va`` holding only vmr_lock.  X's VMR is now
  the new record, which is not on pm_vmrs yet (``x_linked`` false; a run's passes no
  longer visit it) while X may still name P (F10).  The new VMR's vm_foff is set next
  (split_vmr.publish, before pm_add_vmr): what vmr_has_page_idx says of it changes;
  pm_add_vmr (pm_add_vmr.lock, .link) then puts it on pm_vmrs.
* fix split-vmr-under-pm-lock: the new VMR is complete (vm_foff too) before
  split_vmr.lock_pm takes pm_lock, and split_vmr.publish_locked links it and shrinks
  the old one in that critical section: X goes from a VMR on pm_vmrs to another on
  pm_vmrs, and the remover, which holds pm_lock through its passes, sees both stores
  or neither.

Another VMR's split moves the other PTEs naming P that its tail holds: on seed the
shrink takes them out of the passes' reach (``split_shrink_other``, class a to b) and
pm_add_vmr brings them back (``split_publish_other``); with the fix the run sees either
the whole VMR or both pieces, and the classes do not change.  A split of a MAP_LOCKED
VMR (which would change ``pinned``) is not modelled: a refinement failure, not a
silent gap.
"""

from __future__ import annotations

from typing import Any

import z3

from proofs.removal.state import OTHER_STATES, Mu, Mx, Rm
from proofs.removal.steps_pm import other_lock, other_unlock
from proofs.removal.system import FREE, Alt, System, hasidx_afresh, is_in, plus, step

And, Or, Not, Implies = z3.And, z3.Or, z3.Not, z3.Implies

FIX = "split-vmr-under-pm-lock"


def _isolating(pre: dict[str, Any]) -> Any:
    """isolate_vmrs runs under vmr_lock: no munmap of X's VMR is past it (one of X's
    own range is at its start, Mu.P1), no __do_mmap of it is between create_vmr and
    its last field (mx none), and the record split is not MAP_LOCKED (not
    modelled: it would unpin i, see the module docstring)."""
    return And(is_in(pre["mu"], (Mu.NONE, Mu.P1)), Not(pre["mu_need"]), Not(pre["x_locked"]),
               pre["mx"] == Mx.NONE)


def _vis(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> Any:
    """The run's passes visit X's VMR (its fields as they are now): on pm_vmrs, not
    MAP_LOCKED, and (seed's rule) mapping ``index``.  Only after the passes: pm_lock,
    which the split holds, keeps them out."""
    overlap = z3.BoolVal(sys.fix("removal-vmr-overlap"))
    return post["x_vis"] == And(is_in(pre["rm"], Rm.RUN), post["x_linked"],
                                Not(pre["x_locked"]), Or(overlap, post["x_hasidx"]))


@step("split_lock", ["split_vmr.lock_pm", "pm_add_vmr.lock"])
def split_lock(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """spin_lock(&pm->pm_lock) to publish the new VMR: pm_lock taken by someone the
    state does not track otherwise (other_lock's relation)."""
    return other_lock(sys, pre, post)


@step("split_shrink_x", ["split_vmr.shrink"])
def split_shrink_x(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """Seed: old->vm_end = va with the new VMR not yet on pm_vmrs, X in [va, end): X's
    VMR is the new record now, off pm_vmrs; a run no longer visits it (the progress of
    its passes over X lapses with it, and so does pass 3's hold of X's VMR, rm_x3 and
    its choice rm_w: the pass holds the old record).  With the fix there is no such step."""
    if sys.fix(FIX):
        return []
    return [Alt(And(pre["x_linked"], pre["x_alive"], _isolating(pre), hasidx_afresh(pre, post)),
                {"x_linked": False, "x_vis": False, "x_v2": False, "x_v3": False,
                 "x_sent": False, "x_hasidx": FREE, "rm_x3": False, "rm_w": False})]


@step("split_foff_x", ["split_vmr.publish"])
def split_foff_x(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """Seed: new_vmr->vm_foff = old foff + (va - old base) on X's VMR, still off
    pm_vmrs: vmr_has_page_idx(X's VMR, index) is another answer now."""
    if sys.fix(FIX):
        return []
    return [Alt(And(Not(pre["x_linked"]), pre["x_alive"], _isolating(pre), hasidx_afresh(pre, post)),
                {"x_hasidx": FREE})]


@step("split_publish", ["pm_add_vmr.link", "split_vmr.publish_locked"])
def split_publish(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """The new VMR goes on pm_vmrs and pm_lock is released (other_unlock's relation).
    Seed (pm_add_vmr.link): X, if in the tail, has been in the new record since the
    shrink, and its VMR is linked again.  Fix (split_vmr.publish_locked, which also
    shrinks the old VMR): X, if in the tail, moves from the old record to the new one,
    both on pm_vmrs.  Either way X's VMR may have other fields now (x_hasidx, x_vis)."""
    out = []
    for alt in other_unlock(sys, pre, post):
        free = {"x_hasidx": FREE, "x_vis": FREE}
        if not sys.fix(FIX):
            out.append(plus(alt, And(Not(pre["x_linked"]), pre["x_alive"], _isolating(pre),
                                     post["x_linked"], hasidx_afresh(pre, post),
                                     _vis(sys, pre, post)),
                            x_linked=True, **free))
        # X not in the new VMR (seed), or in either record (fix): x_linked as it was
        out.append(plus(alt, And(hasidx_afresh(pre, post), _vis(sys, pre, post)), **free))
    return out


def _reclass(pre: dict[str, Any], src: str, dst: str, guard: Any) -> list[Alt]:
    """One other PTE naming P moves from class ``src`` to ``dst`` (state.OTHERS), keeping
    its present and dirty bits."""
    return [Alt(And(guard, pre[f"{src}_{k}"] >= 1),
                {f"{src}_{k}": pre[f"{src}_{k}"] - 1, f"{dst}_{k}": pre[f"{dst}_{k}"] + 1})
            for k in OTHER_STATES]


@step("split_shrink_other", ["split_vmr.shrink (another VMR, its tail holding a PTE naming P)"])
def split_shrink_other(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """Seed: old->vm_end = va of another VMR -- not X's: X's VMR holds no other PTE naming
    P, one VMR maps a file page once -- whose tail holds a PTE naming P.  The tail's
    record is not on pm_vmrs yet: during a run (the only time the classes differ) that
    PTE is one the passes skip now (F10 for the other PTEs).  Nothing of X is read: the
    split VMR may be another process's, whatever X's munmap or lock is.  With the fix
    there is no such step."""
    if sys.fix(FIX):
        return []
    return _reclass(pre, "a", "b", is_in(pre["rm"], Rm.RUN))


@step("split_publish_other", ["pm_add_vmr.link (another VMR's tail, a PTE naming P in it)"])
def split_publish_other(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """Seed: pm_add_vmr links the tail of another VMR, which holds a PTE naming P, and
    unlocks (other_unlock's relation): during a run the passes visit that PTE again,
    unless the tail, with its own vm_foff, does not map ``index`` (the seed's rule:
    then it stays skipped, and the link changes only pm_lock)."""
    if sys.fix(FIX):
        return []
    out = []
    for alt in other_unlock(sys, pre, post):
        for moved in _reclass(pre, "b", "a", is_in(pre["rm"], Rm.RUN)):
            out.append(plus(alt, moved.guard, **moved.changes))
    return out

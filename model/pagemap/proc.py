"""Processes (kern/src/process.c): proc_tlbshootdown, proc_destroy and
__proc_free, which tears the address space down with unmap_and_destroy_vmrs.

proc_tlbshootdown runs under p->proc_lock and only queues messages, so it is
one step of its caller.  Which cores get a flush follows p->state, as at the
commit: PROC_RUNNING_S flushes the *calling* core only;
PROC_RUNNING_M sends an IMMEDIATE message to each of p's cores; any other
state, nothing.  The caller's own core is flushed at once (a message to self
is taken before the core returns to user space).  With ``shootdown =
"async"`` (as at the commit) every other target core's flush is a pending
event that lands at some later point; with ``"sync"`` (ideal) it has landed
when the call returns.

proc_destroy marks the process PROC_DYING and sends __death to its cores:
none of them runs the process's user code again, so its TLBs are emptied
here (no user access can use them any more, spec/deviations.md); a thread in
the kernel finishes its kernel path and then stops (pagemap.sched).  The
address space is torn down by __proc_free when the last reference goes, i.e.
when every thread of the process has stopped; the model runs it on the thread
that called proc_destroy.
"""

from __future__ import annotations

import icontract

from pagemap import contracts as C
from pagemap.machine import (
    BLOCKED,
    CODE,
    DONE_PC,
    PROC_DEAD,
    PROC_DYING,
    PROC_RUNNING_M,
    PROC_RUNNING_S,
    Machine,
    ThreadView,
)
from pagemap.sched import finish, leave_kernel


def _send(m: Machine, c: int) -> None:
    """__tlbshootdown as an IMMEDIATE kernel message to core c."""
    if m.cfg.shootdown == "sync":
        m.flush_tlb(c)
    elif any(m.v[m.L.thread0[u]] != DONE_PC for u in m.cfg.cores[c].threads):
        m.set_flush_pending(c, True)


def proc_tlbshootdown(m: Machine, t: ThreadView, p: int) -> None:
    """proc_tlbshootdown(p, start, end) called by thread t (the range is ignored:
    every flush is a full tlbflush())."""
    state = m.pstate(p)
    here = t.core
    if state == PROC_RUNNING_S:
        m.flush_tlb(here)  # tlbflush() on the calling core
        m.note(f"{m.cfg.processes[p].name} is PROC_RUNNING_S: tlbflush() on the calling core "
               f"{m.cfg.cores[here].name}")
        if m.cfg.fix("shootdown-scp-remote"):
            for c in m.cfg.proc_cores(p):
                if c != here:
                    _send(m, c)
    elif state == PROC_RUNNING_M:
        for c in m.cfg.proc_cores(p):
            if c == here:
                m.flush_tlb(c)
            else:
                _send(m, c)
    else:
        m.note(f"{m.cfg.processes[p].name} is not running: proc_tlbshootdown does nothing")


def shootdown_pending(m: Machine, p: int) -> bool:
    """Whether some core of p has not yet taken its flush (the wait fixes)."""
    return any(m.flush_pending(c) for c in m.cfg.proc_cores(p))


# -- proc_destroy and __proc_free -------------------------------------------------------------

CODE.function("proc_destroy", ())


@CODE.step("proc_destroy", "kill",
           "proc_destroy(p): under proc_lock, p->state = PROC_DYING; __death to p's cores")
@icontract.require(lambda m, t: not C.holds(m, t, "pm_lock") and C.no_ref(t),
                   "proc_destroy from a syscall or a failed fault: no page-map lock, no reference")
def destroy_kill(m: Machine, t: ThreadView) -> object:
    p = t.proc
    if m.pstate(p) in (PROC_DYING, PROC_DEAD):
        m.note("the process is already dying")
        t.goto("proc_destroy.stop")
        return None
    m.set_pstate(p, PROC_DYING)
    for c in m.cfg.proc_cores(p):
        m.flush_tlb(c)
        m.set_flush_pending(c, False)
    # proc_destroy returns and the core goes idle (it runs its routine messages, e.g.
    # a sibling woken from lock_page); __proc_free runs later, when the last
    # reference goes.  Keeping the core here would starve that sibling forever.
    if m.v[m.L.occ[t.core]] == t.owner:
        m.v[m.L.occ[t.core]] = 0
    t.goto("__proc_free.wait")
    return None


@CODE.step("proc_destroy", "stop", "the kthread of a dying process ends: no return to user space",
           local=True)
def destroy_stop(m: Machine, t: ThreadView) -> object:
    leave_kernel(m, t)
    for off in range(m.L.thread_sizes[t.id]):
        m.v[t.base + off] = 0
    finish(m, t)
    return None


CODE.function("__proc_free", ())


@CODE.step("__proc_free", "wait",
           "proc_decref: __proc_free runs when the last reference goes (every thread stopped)")
def free_wait(m: Machine, t: ThreadView) -> object:
    if any(m.v[m.L.thread0[u]] != DONE_PC for u in m.cfg.proc_threads(t.proc) if u != t.id):
        return BLOCKED
    t.call("unmap_and_destroy_vmrs.lock_vmr", "__proc_free.done")
    return None


@CODE.step("__proc_free", "done", "__proc_free: the process is gone", local=True)
@icontract.ensure(lambda m, t, result: C.blocked(result) or not m.proc_vmrs(t.proc),
                  "__proc_free: the process has no VMR left")
def free_done(m: Machine, t: ThreadView) -> object:
    m.set_pstate(t.proc, PROC_DEAD)
    t.goto("proc_destroy.stop")
    return None

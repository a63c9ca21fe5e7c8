"""Cores and kernel paths: who runs where, sleeping and waking (kern/src/kthread.c,
kern/src/smp.c's kernel messages, kern/src/process.c's process states).

Facts of the 2014 kernel the model keeps (spec/model.md §3):

* The kernel is not preemptive: a core that runs kernel code (a page fault, a
  syscall, a kernel thread's work) runs it until it returns to user space or
  sleeps in ``sem_down``.  ``occ`` of a core is the thread whose kernel path
  it runs (0: none); a thread may take a kernel step only on a core that is
  free or already its own.
* A thread's kernel path runs on its home core, except after a wake-up:
  ``sem_up`` makes the sleeper runnable through a *routine* kernel message to
  the core that called ``sem_up``, and routine messages run only when that
  core is not busy with kernel code.  ``cpu`` of a thread is the core its
  kernel path runs on (0 in user mode).  So a woken sleeper waits for the
  waker's core, and if the waker then spins on a lock the sleeper holds,
  neither can move: the checker reports that as ``deadlock``.
* An SCP (PROC_RUNNING_S) runs its uthreads on one core: while one of them is
  in the kernel (awake or asleep) no other runs (``inkern`` of the process).
  When that kernel path sleeps the process is PROC_WAITING and its core
  abandons the address space (lcr3 of the kernel's page table: the TLB goes).
* A thread of a dying process (PROC_DYING) never returns to user space: in
  user mode its next transition is its death (pagemap.proc).

The explorer applies the entry rule before each step (``Explorer._run``);
the steps call ``leave_kernel``, ``sleep``, ``wake`` and ``resume`` where the
C returns to user space, blocks and is restarted.
"""

from __future__ import annotations

from pagemap.machine import (
    CODE,
    DONE_PC,
    PROC_DYING,
    PROC_RUNNING_S,
    PROC_WAITING,
    Machine,
    ThreadView,
    Violation,
)


def holds_spinlock(m: Machine, t: ThreadView) -> bool:
    """Whether thread t holds any spinlock (what CONFIG_SPINLOCK_DEBUG's lock_depth
    counts): pm_lock, or any process's vmr_lock or pte_lock."""
    return any(m.v[off] == t.owner for off in m.L.spinlocks)


def sem_down_check(m: Machine, t: ThreadView, what: str) -> None:
    """sem_down's assert(!pcpui->lock_depth) (CONFIG_SPINLOCK_DEBUG): no spinlock
    may be held by a kthread that may block.  With ``[kernel] spinlock_debug =
    false`` (config-default) the sleep goes ahead, and what it leads to (a
    deadlock through the wake-up, say) is what the checker finds."""
    if m.cfg.spinlock_debug and holds_spinlock(m, t):
        held = [m.L.names[off] for off in m.L.spinlocks if m.v[off] == t.owner]
        raise Violation("sleep-holding-spinlock", f"{what}: sem_down holding {', '.join(held)}")


def is_scp(m: Machine, p: int) -> bool:
    return p >= 0 and m.cfg.processes[p].mode == "scp"


def leave_kernel(m: Machine, t: ThreadView) -> bool:
    """The kernel path ends: the thread returns to user space (a fault handled, a
    syscall done, a kernel thread's op finished).  Its core is free again; on
    the way out the core runs any routine message queued for it.  False when the
    process is dying: the thread does not return to user space at all."""
    c = t.core
    if m.v[m.L.occ[c]] == t.owner:
        m.v[m.L.occ[c]] = 0
    m.v[m.L.cpu[t.id]] = 0
    ik = m.L.scp_inkern[t.id]
    if ik >= 0 and m.v[ik] == t.owner:
        m.v[ik] = 0
    return not (t.proc >= 0 and m.pstate(t.proc) == PROC_DYING)


def sleep(m: Machine, t: ThreadView) -> None:
    """The thread blocks in sem_down: its core goes to smp_idle (free for routine
    messages).  An SCP whose only running context blocks is PROC_WAITING and its
    core abandons the address space (its TLB is gone)."""
    c = t.core
    if m.v[m.L.occ[c]] == t.owner:
        m.v[m.L.occ[c]] = 0
    p = t.proc
    if is_scp(m, p) and m.pstate(p) == PROC_RUNNING_S:
        m.set_pstate(p, PROC_WAITING)
        for pc in m.cfg.proc_cores(p):
            m.flush_tlb(pc)
            m.set_flush_pending(pc, False)


def wake(m: Machine, waker: ThreadView, sleeper: int) -> None:
    """sem_up woke ``sleeper``: it restarts through a routine kernel message on the
    waker's core."""
    m.v[m.L.cpu[sleeper]] = waker.core + 1
    m.note(f"wakes {m.cfg.threads[sleeper].name} (routine message to core "
           f"{m.cfg.cores[waker.core].name})")


def resume(m: Machine, t: ThreadView) -> None:
    """A woken kthread runs again: an SCP is running again (PROC_RUNNING_S)."""
    p = t.proc
    if is_scp(m, p) and m.pstate(p) == PROC_WAITING:
        m.set_pstate(p, PROC_RUNNING_S)


def finish(m: Machine, t: ThreadView) -> None:
    """The thread has no op left (or its process died): its core leaves the
    address space when no thread runs there any more (a context switch reloads
    CR3), so its TLB is emptied and any pending flush is moot."""
    t["pc"] = DONE_PC
    p = t.proc
    if p < 0:
        return
    c = m.L.home[t.id]
    if any(m.v[m.L.thread0[u]] != DONE_PC for u in m.cfg.cores[c].threads):
        return
    if m.tlb_nonempty(c):
        m.note("last thread on this core done: it leaves the address space, TLB emptied")
    m.flush_tlb(c)
    m.set_flush_pending(c, False)


CODE.function("proc_death", ())


@CODE.step("proc_death", "die", "the core takes the __death message: no return to user space",
           user=True)
def proc_death(m: Machine, t: ThreadView) -> object:
    """A thread of a PROC_DYING process, in user mode, stops (the explorer runs this
    instead of the thread's next step)."""
    base = t.base
    for off in range(m.L.thread_sizes[t.id]):
        m.v[base + off] = 0
    m.note("process dying: this thread stops")
    finish(m, t)
    return None


DEATH_PC = CODE.pc("proc_death.die")

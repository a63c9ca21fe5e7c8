"""Spinlocks, semaphores, lock_page and unlock_page (kern/src/kthread.c,
kern/src/page_alloc.c at the commit).

A spinlock word holds 0 when free and ``tid + 1`` when held: acquiring it is
one step (the xchg that wins), enabled only while the lock is free, so a
spinning thread simply has no step to take.  A semaphore keeps nr_signals and
a FIFO of sleepers (encoded in one int, head in the low digit); sem_down and
sem_up each run under the semaphore's internal spinlock, so each is one step.
Who sleeps and who restarts where is pagemap.sched: a sleeper's core is free
while it sleeps, and sem_up restarts it on the waker's core.
"""

from __future__ import annotations

import icontract

from pagemap import contracts as C
from pagemap.machine import BLOCKED, CODE, Machine, ThreadView, Violation
from pagemap.pageflags import PG_LOCKED
from pagemap.sched import resume, sem_down_check, sleep, wake


def spin_trylock(word: int, t: ThreadView) -> int | None:
    """The new lock word if t can take the lock now, else None (it spins)."""
    if word != 0:
        if word == t.owner:
            raise Violation("kernel-assert", "spin_lock of a lock this thread already holds")
        return None
    return t.owner


def spin_unlock_check(word: int, t: ThreadView, what: str) -> None:
    if word != t.owner:
        raise Violation("kernel-assert", f"spin_unlock of {what}, not held by this thread")


def spin_acquire(m: Machine, t: ThreadView, off: int) -> bool:
    """spin_lock on the lock word at state offset ``off``; False while another
    thread holds it (the caller's step is then BLOCKED)."""
    new = spin_trylock(m.v[off], t)
    if new is None:
        return False
    m.v[off] = new
    return True


def spin_release(m: Machine, t: ThreadView, off: int, what: str) -> None:
    """spin_unlock on the lock word at state offset ``off``."""
    spin_unlock_check(m.v[off], t, what)
    m.v[off] = 0


# -- FIFO of sleepers, one int --------------------------------------------------


def _base(m: Machine) -> int:
    return len(m.cfg.threads) + 1


def q_push(m: Machine, q: int, tid: int) -> int:
    b = _base(m)
    n, x = 0, q
    while x:
        x //= b
        n += 1
    return q + (tid + 1) * b**n


def q_pop(m: Machine, q: int) -> tuple[int, int]:
    """(head tid, rest)."""
    b = _base(m)
    return q % b - 1, q // b


def q_has(m: Machine, q: int, tid: int) -> bool:
    b = _base(m)
    while q:
        if q % b == tid + 1:
            return True
        q //= b
    return False


# -- lock_page / unlock_page ------------------------------------------------------

CODE.function("lock_page", ("lp_page",))


@CODE.step("lock_page", "sem_down", "sem_down(&page->pg_sem): take a signal or sleep")
@icontract.require(lambda m, t: m.pg(t["lp_page"], "tslot") != 0 and m.pg(t["lp_page"], "kref") >= 1,
                   "lock_page on a live page-map page (the caller's slot reference keeps it there)")
def lock_page_sem_down(m: Machine, t: ThreadView) -> object:
    page = t["lp_page"]
    sem_down_check(m, t, "lock_page")
    m.touch(page, "lock_page")
    n = m.pg(page, "sem")
    m.set_pg(page, "sem", n - 1)
    if n > 0:
        t.goto("lock_page.set_locked")
    else:
        m.set_pg(page, "semq", q_push(m, m.pg(page, "semq"), t.id))
        sleep(m, t)
        t.goto("lock_page.sleeping")
    return None


@CODE.step("lock_page", "sleeping",
           "asleep in sem_down until sem_up dequeues us; then restarted by a routine message")
def lock_page_sleeping(m: Machine, t: ThreadView) -> object:
    if q_has(m, m.pg(t["lp_page"], "semq"), t.id):
        return BLOCKED
    resume(m, t)
    t.goto("lock_page.set_locked")
    return None


@CODE.step("lock_page", "set_locked", "assert(!PG_LOCKED); atomic_or(&pg_flags, PG_LOCKED)")
@icontract.snapshot(lambda t: t["lp_page"], name="page")
@icontract.ensure(lambda OLD, m, result: C.blocked(result) or bool(m.pg(OLD.page, "flags") & PG_LOCKED),
                  "lock_page returns with PG_LOCKED set, by us")
def lock_page_set_locked(m: Machine, t: ThreadView) -> object:
    # The assert's read and the OR are one step: only the semaphore's owner
    # sets or clears PG_LOCKED, so nothing can come between them.
    page = t["lp_page"]
    m.touch(page, "lock_page")
    flags = m.pg(page, "flags")
    if flags & PG_LOCKED:
        raise Violation("kernel-assert", f"lock_page: page {page} already PG_LOCKED")
    m.set_pg(page, "flags", m.c.pg_set(flags, PG_LOCKED))
    t.ret("lock_page")
    return None


CODE.function("unlock_page", ("ul_page",))


@CODE.step("unlock_page", "clear_locked", "atomic_and(&pg_flags, ~PG_LOCKED)")
@icontract.require(lambda m, t: bool(m.pg(t["ul_page"], "flags") & PG_LOCKED)
                   or m.pg(t["ul_page"], "sem") <= 0,
                   "unlock_page by the holder of the page lock (PG_LOCKED, or the semaphore "
                   "taken: a fresh page's count is 0)")
def unlock_page_clear(m: Machine, t: ThreadView) -> object:
    page = t["ul_page"]
    m.touch(page, "unlock_page")
    m.set_pg(page, "flags", m.c.pg_clear(m.pg(page, "flags"), PG_LOCKED))
    t.goto("unlock_page.sem_up")
    return None


@CODE.step("unlock_page", "sem_up", "sem_up(&page->pg_sem): wake the first sleeper")
@icontract.snapshot(lambda t: t["ul_page"], name="page")
@icontract.ensure(lambda OLD, m, result: C.blocked(result) or not m.pg(OLD.page, "flags") & PG_LOCKED,
                  "PG_LOCKED is clear when unlock_page returns (a woken waiter sets it later)")
def unlock_page_sem_up(m: Machine, t: ThreadView) -> object:
    page = t["ul_page"]
    m.touch(page, "unlock_page")
    n = m.pg(page, "sem")
    m.set_pg(page, "sem", n + 1)
    if n < 0:
        head, rest = q_pop(m, m.pg(page, "semq"))
        m.set_pg(page, "semq", rest)
        wake(m, t, head)
    t.ret("unlock_page")
    return None

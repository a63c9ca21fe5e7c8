"""Tearing mappings down (kern/src/mm.c): __do_munmap with its callbacks
__munmap_mark_not_present and __vmr_free_pgs, and unmap_and_destroy_vmrs
(exec and __proc_free), all run with the process's vmr_lock held throughout.

__do_munmap: isolate_vmrs cuts the VMRs at both ends of [addr, addr + len);
pass 1 clears PTE_P of every VMR of the range under pte_lock and shoots down;
pass 2, VMR by VMR, zeroes the PTEs under pte_lock (dropping the kref of pages
that are not page-map pages) and then destroy_vmr (pm_remove_vmr under
pm_lock).  The model's ``munmap`` is do_munmap (vmr_lock, __do_munmap, unlock);
a caller that holds vmr_lock already and calls __do_munmap itself (the error
path of mmap's MAP_POPULATE under the fix ``populate-unmap-on-error``) enters
it after the lock with ``mu_held`` = 1 and leaves at ``done``, lock still held.
unmap_and_destroy_vmrs runs __vmr_free_pgs over every VMR under one
pte_lock hold, then destroy_vmr each, and shoots nothing down (every core has
left the process by then, pagemap.proc).
"""

from __future__ import annotations

import icontract

from pagemap import contracts as C
from pagemap.alloc import page_decref
from pagemap.fault import _lock, _unlock
from pagemap.machine import BLOCKED, CODE, PROC_DYING, Machine, ThreadView
from pagemap.pageflags import PG_DIRTY, PG_PAGEMAP, PGSHIFT, PTE_D, PTE_P, pte2ppn
from pagemap.proc import proc_tlbshootdown, shootdown_pending
from pagemap.vmrs import vpn_range

CODE.function("munmap", ("mu_addr", "mu_end", "mu_vmr", "mu_vpn", "mu_pte", "mu_needed",
                         "mu_next", "mu_held"))


def _in_range(m: Machine, t: ThreadView, r: int | None) -> bool:
    """The munmap loops' test: a VMR (from find_first_vmr) with vm_base < addr + len."""
    return r is not None and m.vf(r, "base") < t["mu_end"]


@CODE.step("munmap", "lock_vmr", "spin_lock(&p->vmr_lock); isolate_vmrs(p, addr, len)",
           lock="vmr_lock")
@icontract.require(lambda m, t: C.no_spinlock(m, t) and C.no_ref(t))
def mu_lock_vmr(m: Machine, t: ThreadView) -> object:
    if not _lock(m, t, "vmr_lock"):
        return BLOCKED
    t.call("isolate_vmrs.first", "munmap.lock_pte1", iso_addr=t["mu_addr"], iso_end=t["mu_end"])
    return None


@CODE.step("munmap", "lock_pte1",
           "first = find_first_vmr(p, addr); pass 1: spin_lock(&p->pte_lock)", lock="pte_lock")
def mu_lock_pte1(m: Machine, t: ThreadView) -> object:
    if not _lock(m, t, "pte_lock"):
        return BLOCKED
    r = m.find_first_vmr(t.proc, t["mu_addr"])
    if _in_range(m, t, r):
        assert r is not None
        t["mu_vmr"], t["mu_vpn"] = r + 1, vpn_range(m, r)[0]
        t.goto("munmap.p1_read")
    else:
        t.goto("munmap.unlock_pte1")
    return None


def _p1_next(m: Machine, t: ThreadView) -> None:
    """The walk over [vm_base, vm_end), then the next VMR of the range."""
    t["mu_pte"] = 0
    r = t["mu_vmr"] - 1
    if t["mu_vpn"] + 1 < vpn_range(m, r)[1]:
        t["mu_vpn"] += 1
        t.goto("munmap.p1_read")
        return
    nxt = m.next_vmr(t.proc, r)
    if _in_range(m, t, nxt):
        assert nxt is not None
        t["mu_vmr"], t["mu_vpn"] = nxt + 1, vpn_range(m, nxt)[0]
        t.goto("munmap.p1_read")
    else:
        t["mu_vmr"] = t["mu_vpn"] = 0
        t.goto("munmap.unlock_pte1")


@CODE.step("munmap", "p1_read", "__munmap_mark_not_present: if (PAGE_PRESENT(*pte)) ...",
           fixed={"atomic-pte-update":
                  "__munmap_mark_not_present: if (PAGE_PRESENT(*pte)) "
                  "atomic_and(pte, ~PTE_P)"})
def mu_p1_read(m: Machine, t: ThreadView) -> object:
    p, k = t.proc, t["mu_vpn"]
    pte = m.pte(p, k)
    if not pte & PTE_P:
        _p1_next(m, t)
        return None
    t["mu_needed"] = 1
    if m.cfg.fix("atomic-pte-update"):
        m.set_pte(p, k, pte & ~PTE_P)  # atomic_and: the D bit cannot be lost
        _p1_next(m, t)
        return None
    t["mu_pte"] = pte
    t.goto("munmap.p1_write")
    return None


@CODE.step("munmap", "p1_write", "__munmap_mark_not_present: *pte &= ~PTE_P (store)")
def mu_p1_write(m: Machine, t: ThreadView) -> object:
    # The store half of a plain read-modify-write: a dirty bit the hardware
    # set since the read is overwritten.
    m.set_pte(t.proc, t["mu_vpn"], t["mu_pte"] & ~PTE_P)
    _p1_next(m, t)
    return None


@CODE.step("munmap", "unlock_pte1", "spin_unlock(&p->pte_lock); if needed: proc_tlbshootdown(p)")
def mu_unlock_pte1(m: Machine, t: ThreadView) -> object:
    _unlock(m, t, "pte_lock")
    t.goto("munmap.shootdown" if t["mu_needed"] else "munmap.p2_start")
    return None


@CODE.step("munmap", "shootdown", "proc_tlbshootdown(p, addr, addr + len)")
def mu_shootdown(m: Machine, t: ThreadView) -> object:
    proc_tlbshootdown(m, t, t.proc)
    t["mu_needed"] = 0
    if m.cfg.fix("munmap-shootdown-wait") and m.cfg.shootdown == "async":
        t.goto("munmap.shootdown_wait")
    else:
        t.goto("munmap.p2_start")
    return None


@CODE.step("munmap", "shootdown_wait", "fix: wait until every target core has flushed")
def mu_shootdown_wait(m: Machine, t: ThreadView) -> object:
    if shootdown_pending(m, t.proc):
        return BLOCKED
    t.goto("munmap.p2_start")
    return None


@CODE.step("munmap", "p2_start", "pass 2: for each VMR from first while vm_base < addr + len",
           local=True)
def mu_p2_start(m: Machine, t: ThreadView) -> object:
    r = m.find_first_vmr(t.proc, t["mu_addr"])
    _p2_at(m, t, r)
    return None


def _p2_at(m: Machine, t: ThreadView, r: int | None) -> None:
    if _in_range(m, t, r):
        assert r is not None
        t["mu_vmr"] = r + 1
        t.goto("munmap.lock_pte2")
    else:
        t["mu_vmr"] = 0
        # __do_munmap called by a holder of vmr_lock returns with it still held.
        t.goto("munmap.done" if t["mu_held"] else "munmap.unlock_vmr")


@CODE.step("munmap", "lock_pte2", "spin_lock(&p->pte_lock); env_user_mem_walk(__vmr_free_pgs)",
           lock="pte_lock")
def mu_lock_pte2(m: Machine, t: ThreadView) -> object:
    if not _lock(m, t, "pte_lock"):
        return BLOCKED
    t.call("__vmr_free_pgs.start", "munmap.unlock_pte2", fp_vmr=t["mu_vmr"])
    return None


@CODE.step("munmap", "unlock_pte2",
           "spin_unlock(&p->pte_lock); next = TAILQ_NEXT(vmr); destroy_vmr(vmr)")
def mu_unlock_pte2(m: Machine, t: ThreadView) -> object:
    _unlock(m, t, "pte_lock")
    r = t["mu_vmr"] - 1
    nxt = m.next_vmr(t.proc, r)
    t["mu_next"] = 0 if nxt is None else nxt + 1
    t.call("destroy_vmr.start", "munmap.p2_next", dv_vmr=r + 1)
    return None


@CODE.step("munmap", "p2_next", "vmr = next", local=True)
def mu_p2_next(m: Machine, t: ThreadView) -> object:
    nxt = t["mu_next"] - 1
    t["mu_next"] = 0
    _p2_at(m, t, nxt if nxt >= 0 else None)
    return None


def _unmapped(m: Machine, t: ThreadView, rng: tuple[int, int, int]) -> bool:
    """What __do_munmap leaves: no VMR and no PTE in [addr, addr + len), and no spinlock
    held but the vmr_lock of a caller that held it (``mu_held``, rng[2]; the registers are
    cleared by the return)."""
    locks = (len(C.spinlocks_held(m, t)) == 1 and C.holds(m, t, "vmr_lock") if rng[2]
             else C.no_spinlock(m, t))
    return (not C.vmrs_overlapping(m, t.proc, rng[0], rng[1])
            and C.ptes_zero(m, t.proc, rng[0], rng[1]) and locks)


@CODE.step("munmap", "unlock_vmr", "spin_unlock(&p->vmr_lock); return 0")
@icontract.snapshot(lambda t: (t["mu_addr"], t["mu_end"], t["mu_held"]), name="rng")
@icontract.ensure(lambda OLD, m, t, result: C.blocked(result) or _unmapped(m, t, OLD.rng),
                  "munmap leaves no VMR and no PTE in [addr, addr + len)")
def mu_unlock_vmr(m: Machine, t: ThreadView) -> object:
    _unlock(m, t, "vmr_lock")
    t.ret("munmap")
    return None


@CODE.step("munmap", "done", "__do_munmap: return 0 (its caller keeps vmr_lock)", local=True)
@icontract.require(lambda m, t: t["mu_held"] and C.holds(m, t, "vmr_lock"),
                   "only a caller of __do_munmap that holds vmr_lock returns here")
@icontract.snapshot(lambda t: (t["mu_addr"], t["mu_end"], t["mu_held"]), name="rng")
@icontract.ensure(lambda OLD, m, t, result: _unmapped(m, t, OLD.rng),
                  "__do_munmap leaves no VMR and no PTE in [addr, addr + len)")
def mu_done(m: Machine, t: ThreadView) -> object:
    t.ret("munmap")
    return None


# -- __vmr_free_pgs over [vm_base, vm_end) (the caller holds pte_lock) -------------------------

CODE.function("__vmr_free_pgs", ("fp_vmr", "fp_vpn", "fp_end", "fp_pte"))


@CODE.step("__vmr_free_pgs", "start", "env_user_mem_walk(p, vm_base, vm_end - vm_base, cb)",
           local=True)
@icontract.require(lambda m, t: C.holds(m, t, "pte_lock") and C.holds(m, t, "vmr_lock"),
                   "__vmr_free_pgs walks the page table under pte_lock")
def fp_start(m: Machine, t: ThreadView) -> object:
    t["fp_vpn"], t["fp_end"] = vpn_range(m, t["fp_vmr"] - 1)
    t.goto("__vmr_free_pgs.read")
    return None


def _fp_next(t: ThreadView) -> None:
    t["fp_pte"] = 0
    if t["fp_vpn"] + 1 < t["fp_end"]:
        t["fp_vpn"] += 1
        t.goto("__vmr_free_pgs.read")
    else:
        t.ret("__vmr_free_pgs")


@CODE.step("__vmr_free_pgs", "read", "__vmr_free_pgs: if (*pte) { page = ppn2page(PTE2PPN(*pte))",
           fixed={"munmap-fold-dirty":
                  "__vmr_free_pgs: old = xchg(pte, 0); if (old) { page = "
                  "ppn2page(...)"})
def fp_read(m: Machine, t: ThreadView) -> object:
    p, k = t.proc, t["fp_vpn"]
    pte = m.pte(p, k)
    if pte == 0:
        _fp_next(t)
        return None
    if m.cfg.fix("munmap-fold-dirty"):
        m.set_pte(p, k, 0)  # xchg(pte, 0): the last D bit comes back with it
    t["fp_pte"] = pte
    t.goto("__vmr_free_pgs.zero")
    return None


@CODE.step("__vmr_free_pgs", "zero",
           "__vmr_free_pgs: *pte = 0; if (!(pg_flags & PG_PAGEMAP)) page_decref(page)",
           fixed={"munmap-fold-dirty":
                  ("__vmr_free_pgs: PG_PAGEMAP? (old & PTE_D: atomic_or(PG_DIRTY)) : "
                   "page_decref(page)")})
@icontract.snapshot(lambda m, t: vpn_range(m, t["fp_vmr"] - 1), name="rng")
@icontract.snapshot(lambda t: t["fp_vpn"] + 1 >= t["fp_end"], name="last")
@icontract.ensure(lambda OLD, m, t, result: C.blocked(result) or not OLD.last
                  or C.ptes_zero(m, t.proc, OLD.rng[0] << PGSHIFT, OLD.rng[1] << PGSHIFT),
                  "after __vmr_free_pgs every PTE of the VMR is 0")
def fp_zero(m: Machine, t: ThreadView) -> object:
    p, k, pte = t.proc, t["fp_vpn"], t["fp_pte"]
    page = pte2ppn(pte)
    if not m.cfg.fix("munmap-fold-dirty"):
        m.set_pte(p, k, 0)
    m.touch(page, "__vmr_free_pgs")
    flags = m.pg(page, "flags")
    if not flags & PG_PAGEMAP:
        page_decref(m, page, "__vmr_free_pgs")
    elif m.cfg.fix("munmap-fold-dirty") and pte & PTE_D:
        m.set_pg(page, "flags", m.c.pg_set(flags, PG_DIRTY))  # atomic_or(PG_DIRTY)
    _fp_next(t)
    return None


# -- unmap_and_destroy_vmrs (exec, __proc_free) ------------------------------------------------

CODE.function("unmap_and_destroy_vmrs", ("ud_vmr", "ud_next"))


@CODE.step("unmap_and_destroy_vmrs", "lock_vmr", "spin_lock(&p->vmr_lock)", lock="vmr_lock")
@icontract.require(lambda m, t: m.pstate(t.proc) == PROC_DYING and C.no_spinlock(m, t),
                   "unmap_and_destroy_vmrs runs in __proc_free, on a dying process")
@icontract.require(lambda m, t: all(m.v[m.L.thread0[u]] == 0 for u in m.cfg.proc_threads(t.proc) if u != t.id),
    "__proc_free: every other thread of the process has stopped")
def ud_lock_vmr(m: Machine, t: ThreadView) -> object:
    if not _lock(m, t, "vmr_lock"):
        return BLOCKED
    t.goto("unmap_and_destroy_vmrs.lock_pte")
    return None


@CODE.step("unmap_and_destroy_vmrs", "lock_pte", "spin_lock(&p->pte_lock)", lock="pte_lock")
def ud_lock_pte(m: Machine, t: ThreadView) -> object:
    if not _lock(m, t, "pte_lock"):
        return BLOCKED
    _ud_at(m, t, _first(m, t), "__vmr_free_pgs.start", "unmap_and_destroy_vmrs.freed",
           "unmap_and_destroy_vmrs.unlock_pte")
    return None


def _first(m: Machine, t: ThreadView) -> int | None:
    recs = m.proc_vmrs(t.proc)
    return recs[0] if recs else None


def _ud_at(m: Machine, t: ThreadView, r: int | None, entry: str, ret: str, done: str) -> None:
    """TAILQ_FOREACH(vmr, &p->vm_regions): call ``entry`` on r, or go on to ``done``."""
    if r is None:
        t["ud_vmr"] = 0
        t.goto(done)
        return
    t["ud_vmr"] = r + 1
    if entry == "__vmr_free_pgs.start":
        t.call(entry, ret, fp_vmr=r + 1)
    else:
        nxt = m.next_vmr(t.proc, r)
        t["ud_next"] = 0 if nxt is None else nxt + 1
        t.call(entry, ret, dv_vmr=r + 1)


@CODE.step("unmap_and_destroy_vmrs", "freed", "next VMR: __vmr_free_pgs over it", local=True)
def ud_freed(m: Machine, t: ThreadView) -> object:
    nxt = m.next_vmr(t.proc, t["ud_vmr"] - 1)
    _ud_at(m, t, nxt, "__vmr_free_pgs.start", "unmap_and_destroy_vmrs.freed",
           "unmap_and_destroy_vmrs.unlock_pte")
    return None


@CODE.step("unmap_and_destroy_vmrs", "unlock_pte",
           "spin_unlock(&p->pte_lock); destroy_vmr each (it takes pm_lock)")
def ud_unlock_pte(m: Machine, t: ThreadView) -> object:
    _unlock(m, t, "pte_lock")
    _ud_at(m, t, _first(m, t), "destroy_vmr.start", "unmap_and_destroy_vmrs.destroyed",
           "unmap_and_destroy_vmrs.unlock_vmr")
    return None


@CODE.step("unmap_and_destroy_vmrs", "destroyed", "next VMR: destroy_vmr", local=True)
def ud_destroyed(m: Machine, t: ThreadView) -> object:
    nxt = t["ud_next"] - 1
    t["ud_next"] = 0
    _ud_at(m, t, nxt if nxt >= 0 else None, "destroy_vmr.start",
           "unmap_and_destroy_vmrs.destroyed", "unmap_and_destroy_vmrs.unlock_vmr")
    return None


@CODE.step("unmap_and_destroy_vmrs", "unlock_vmr", "spin_unlock(&p->vmr_lock)")
@icontract.ensure(lambda m, t, result: C.blocked(result) or not m.proc_vmrs(t.proc),
                  "no VMR is left (their PTEs went with __vmr_free_pgs; a PTE outside every "
                  "VMR is left for env_user_mem_free)")
def ud_unlock_vmr(m: Machine, t: ThreadView) -> object:
    _unlock(m, t, "vmr_lock")
    t.ret("unmap_and_destroy_vmrs")
    return None

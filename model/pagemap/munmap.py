"""munmap of a whole VMR (kern/src/mm.c: __do_munmap and its callbacks
__munmap_mark_not_present and __vmr_free_pgs, then destroy_vmr ->
pm_remove_vmr), run with the process's vmr_lock held throughout.

Pass 1 clears PTE_P under pte_lock and shoots down; pass 2 zeroes the PTEs
under pte_lock and drops the kref of pages that are not page-map pages;
destroy_vmr then takes pm_lock to leave the page map's VMR list.
"""

from __future__ import annotations

from pagemap.alloc import page_decref
from pagemap.fault import _lock, _unlock
from pagemap.hardware import proc_tlbshootdown, shootdown_pending
from pagemap.machine import BLOCKED, CODE, Machine, ThreadView
from pagemap.pageflags import PG_DIRTY, PG_PAGEMAP, PTE_D, PTE_P, pte2ppn

CODE.function("munmap", ("mu_vmr", "mu_k", "mu_pte", "mu_needed"))


def _next_k(m: Machine, t: ThreadView, here: str, after: str) -> None:
    k = t["mu_k"] + 1
    if k < m.cfg.vmrs[t["mu_vmr"]].npages:
        t["mu_k"] = k
        t.goto(here)
    else:
        t["mu_k"] = 0
        t.goto(after)


@CODE.step("munmap", "lock_vmr", "spin_lock(&p->vmr_lock)", lock="vmr_lock")
def mu_lock_vmr(m: Machine, t: ThreadView) -> object:
    if not _lock(m, t, "vmr_lock"):
        return BLOCKED
    t.goto("munmap.lock_pte1")
    return None


@CODE.step("munmap", "lock_pte1", "pass 1: spin_lock(&p->pte_lock)", lock="pte_lock")
def mu_lock_pte1(m: Machine, t: ThreadView) -> object:
    if not _lock(m, t, "pte_lock"):
        return BLOCKED
    t["mu_k"] = 0
    t.goto("munmap.p1_read")
    return None


@CODE.step("munmap", "p1_read", "__munmap_mark_not_present: if (PAGE_PRESENT(*pte)) ...",
           fixed=(("atomic-pte-update",
                   "__munmap_mark_not_present: if (PAGE_PRESENT(*pte)) atomic_and(pte, ~PTE_P)"),))
def mu_p1_read(m: Machine, t: ThreadView) -> object:
    v, k = t["mu_vmr"], t["mu_k"]
    pte = m.pte(v, k)
    if not pte & PTE_P:
        _next_k(m, t, "munmap.p1_read", "munmap.unlock_pte1")
        return None
    t["mu_needed"] = 1
    if m.cfg.fix("atomic-pte-update"):
        m.set_pte(v, k, pte & ~PTE_P)  # atomic_and: the D bit cannot be lost
        _next_k(m, t, "munmap.p1_read", "munmap.unlock_pte1")
        return None
    t["mu_pte"] = pte
    t.goto("munmap.p1_write")
    return None


@CODE.step("munmap", "p1_write", "__munmap_mark_not_present: *pte &= ~PTE_P (store)")
def mu_p1_write(m: Machine, t: ThreadView) -> object:
    # The store half of a plain read-modify-write: a dirty bit the hardware
    # set since the read is overwritten.
    m.set_pte(t["mu_vmr"], t["mu_k"], t["mu_pte"] & ~PTE_P)
    t["mu_pte"] = 0
    _next_k(m, t, "munmap.p1_read", "munmap.unlock_pte1")
    return None


@CODE.step("munmap", "unlock_pte1", "spin_unlock(&p->pte_lock); if needed: proc_tlbshootdown(p)")
def mu_unlock_pte1(m: Machine, t: ThreadView) -> object:
    _unlock(m, t, "pte_lock")
    t.goto("munmap.shootdown" if t["mu_needed"] else "munmap.lock_pte2")
    return None


@CODE.step("munmap", "shootdown", "proc_tlbshootdown(p, addr, addr + len)")
def mu_shootdown(m: Machine, t: ThreadView) -> object:
    proc_tlbshootdown(m, t.proc)
    t["mu_needed"] = 0
    if m.cfg.fix("munmap-shootdown-wait") and m.cfg.shootdown == "async":
        t.goto("munmap.shootdown_wait")
    else:
        t.goto("munmap.lock_pte2")
    return None


@CODE.step("munmap", "shootdown_wait", "fix: wait until every target core has flushed")
def mu_shootdown_wait(m: Machine, t: ThreadView) -> object:
    if shootdown_pending(m, t.proc):
        return BLOCKED
    t.goto("munmap.lock_pte2")
    return None


@CODE.step("munmap", "lock_pte2", "pass 2: spin_lock(&p->pte_lock)", lock="pte_lock")
def mu_lock_pte2(m: Machine, t: ThreadView) -> object:
    if not _lock(m, t, "pte_lock"):
        return BLOCKED
    t["mu_k"] = 0
    t.goto("munmap.p2_read")
    return None


@CODE.step("munmap", "p2_read", "__vmr_free_pgs: if (*pte) { page = ppn2page(PTE2PPN(*pte)) ...",
           fixed=(("munmap-fold-dirty",
                   ("__vmr_free_pgs: if (*pte) { old = xchg(pte, 0); "
                    "page = ppn2page(PTE2PPN(old)) ...")),))
def mu_p2_read(m: Machine, t: ThreadView) -> object:
    v, k = t["mu_vmr"], t["mu_k"]
    pte = m.pte(v, k)
    if pte == 0:
        _next_k(m, t, "munmap.p2_read", "munmap.unlock_pte2")
        return None
    if m.cfg.fix("munmap-fold-dirty"):
        m.set_pte(v, k, 0)  # xchg(pte, 0): the last D bit comes back with it
    t["mu_pte"] = pte
    t.goto("munmap.p2_zero")
    return None


@CODE.step("munmap", "p2_zero", "__vmr_free_pgs: *pte = 0; if !PG_PAGEMAP: page_decref(page)",
           fixed=(("munmap-fold-dirty", ("__vmr_free_pgs: if !PG_PAGEMAP: page_decref(page); "
                                         "else if (old & PTE_D) atomic_or(&pg_flags, PG_DIRTY)")),))
def mu_p2_zero(m: Machine, t: ThreadView) -> object:
    v, k, pte = t["mu_vmr"], t["mu_k"], t["mu_pte"]
    page = pte2ppn(pte)
    if not m.cfg.fix("munmap-fold-dirty"):
        m.set_pte(v, k, 0)
    m.touch(page, "__vmr_free_pgs")
    flags = m.pg(page, "flags")
    t["mu_pte"] = 0
    if not flags & PG_PAGEMAP:
        page_decref(m, page, "__vmr_free_pgs")
    elif m.cfg.fix("munmap-fold-dirty") and pte & PTE_D:
        m.set_pg(page, "flags", flags | PG_DIRTY)  # atomic_or(PG_DIRTY)
    _next_k(m, t, "munmap.p2_read", "munmap.unlock_pte2")
    return None


@CODE.step("munmap", "unlock_pte2", "spin_unlock(&p->pte_lock); destroy_vmr -> pm_remove_vmr")
def mu_unlock_pte2(m: Machine, t: ThreadView) -> object:
    _unlock(m, t, "pte_lock")
    t.call("pm_remove_vmr.lock", "munmap.unlock_vmr", rmv_vmr=t["mu_vmr"])
    return None


@CODE.step("munmap", "unlock_vmr", "destroy_vmr: unlink from p's VMRs; spin_unlock(&p->vmr_lock)")
def mu_unlock_vmr(m: Machine, t: ThreadView) -> object:
    # The process's VMR list is read only under vmr_lock, which we hold.
    m.set_alive(t["mu_vmr"], False)
    _unlock(m, t, "vmr_lock")
    t.ret("munmap")
    return None

"""The page-fault path (kern/src/mm.c): handle_page_fault and
__handle_page_fault for file mappings, as changed by the seed (the
__put_page helper, the spurious-fault path, the preserved dirty bit and the
final pm_put_page)."""

from __future__ import annotations

from pagemap.alloc import page_alloc, page_decref
from pagemap.hardware import EFAULT, PROT_WRITE
from pagemap.machine import BLOCKED, CODE, Machine, ThreadView, Violation
from pagemap.pageflags import PG_PAGEMAP, PTE_D, PTE_P, PTE_USER_RO, PTE_USER_RW
from pagemap.pm import put_slot_ref
from pagemap.sync import spin_acquire, spin_release
from pagemap.vmr import MAP_PRIVATE

CODE.function(
    "handle_page_fault", ("hpf_vmr", "hpf_k", "hpf_prot", "hpf_page", "hpf_cache", "hpf_rv")
)


def _lock(m: Machine, t: ThreadView, which: str) -> bool:
    """spin_lock of the thread's own process's vmr_lock or pte_lock."""
    return spin_acquire(m, t, m.L.proc_lock_off(t.proc, which))


def _unlock(m: Machine, t: ThreadView, which: str) -> None:
    spin_release(m, t, m.L.proc_lock_off(t.proc, which), which)


def __put_page(m: Machine, t: ThreadView, page: int) -> None:
    """__put_page (mm.c): pm_put_page for a page-map page, else page_decref.

    PG_PAGEMAP of a page we hold a reference to does not change under us, so
    reading it joins the put."""
    m.touch(page, "__put_page")
    if m.pg(page, "flags") & PG_PAGEMAP:
        put_slot_ref(m, t, page)
    else:
        page_decref(m, page, "__put_page")


@CODE.step("handle_page_fault", "lock_vmr", "spin_lock(&p->vmr_lock)", lock="vmr_lock")
def hpf_lock_vmr(m: Machine, t: ThreadView) -> object:
    if not _lock(m, t, "vmr_lock"):
        return BLOCKED
    t.goto("handle_page_fault.find_vmr")
    return None


@CODE.step(
    "handle_page_fault",
    "find_vmr",
    "vmr = find_vmr(p, va); check prot; pm_load_page(f_mapping, f_idx)",
    local=True,
)
def hpf_find_vmr(m: Machine, t: ThreadView) -> object:
    # The VMR list and fields change only under vmr_lock, which we hold.
    v = t["hpf_vmr"]
    if not m.alive(v):
        t["hpf_rv"] = EFAULT
        t.goto("handle_page_fault.unlock_vmr")
        return None
    vmr = m.cfg.vmrs[v]
    if t["hpf_prot"] == PROT_WRITE and not vmr.vm_prot & PROT_WRITE:
        raise Violation("kernel-assert", "write fault on a read-only VMR (-EPERM)")
    f_idx = vmr.first_idx + t["hpf_k"]
    t.call("pm_load_page.find", "handle_page_fault.loaded", load_index=f_idx)
    return None


@CODE.step("handle_page_fault", "loaded", "a_page = loaded page; MAP_PRIVATE?", local=True)
def hpf_loaded(m: Machine, t: ThreadView) -> object:
    t["hpf_page"] = t["rv"]
    t["rv"] = 0
    if m.cfg.vmrs[t["hpf_vmr"]].vm_flags & MAP_PRIVATE:
        t.goto("handle_page_fault.private_alloc")
    else:
        t.goto("handle_page_fault.lock_pte")
    return None


@CODE.step(
    "handle_page_fault",
    "private_alloc",
    "cache_page = a_page; upage_alloc(p, &a_page, FALSE); a_page->pg_tree_slot = 0",
)
def hpf_private_alloc(m: Machine, t: ThreadView) -> object:
    t["hpf_cache"] = t["hpf_page"]
    t["hpf_page"] = page_alloc(m, zero=False, what="upage_alloc")
    t.goto("handle_page_fault.private_copy")
    return None


@CODE.step("handle_page_fault", "private_copy", "memcpy(page2kva(a_page), page2kva(cache_page))")
def hpf_private_copy(m: Machine, t: ThreadView) -> object:
    cache, page = t["hpf_cache"], t["hpf_page"]
    m.touch(cache, "private copy")
    m.set_pg(page, "data", m.pg(cache, "data"))
    t.goto("handle_page_fault.private_put")
    return None


@CODE.step("handle_page_fault", "private_put", "__put_page(cache_page)")
def hpf_private_put(m: Machine, t: ThreadView) -> object:
    __put_page(m, t, t["hpf_cache"])
    t["hpf_cache"] = 0
    t.goto("handle_page_fault.lock_pte")
    return None


@CODE.step("handle_page_fault", "lock_pte", "spin_lock(&p->pte_lock)", lock="pte_lock")
def hpf_lock_pte(m: Machine, t: ThreadView) -> object:
    if not _lock(m, t, "pte_lock"):
        return BLOCKED
    t.goto("handle_page_fault.write_pte")
    return None


@CODE.step(
    "handle_page_fault",
    "write_pte",
    "pte = pgdir_walk(); if PAGE_PRESENT: spurious; keep PTE_D; *pte = PTE(a_page, P|prot)",
)
def hpf_write_pte(m: Machine, t: ThreadView) -> object:
    # Read and write are one step: the PTE is not present, so the hardware
    # cannot update it, and every software writer holds pte_lock (we do).
    v, k = t["hpf_vmr"], t["hpf_k"]
    old = m.pte(v, k)
    if old & PTE_P:
        t.goto("handle_page_fault.spurious_unlock")
        return None
    vmr = m.cfg.vmrs[v]
    prot = PTE_USER_RW if vmr.vm_prot & PROT_WRITE else PTE_USER_RO
    prot |= old & PTE_D
    m.set_pte(v, k, m.c.make_pte(t["hpf_page"], PTE_P | prot))
    t.goto("handle_page_fault.unlock_pte")
    return None


@CODE.step(
    "handle_page_fault", "unlock_pte", "spin_unlock(&p->pte_lock); if PG_PAGEMAP: pm_put_page"
)
def hpf_unlock_pte(m: Machine, t: ThreadView) -> object:
    _unlock(m, t, "pte_lock")
    page = t["hpf_page"]
    m.touch(page, "handle_page_fault")
    if m.pg(page, "flags") & PG_PAGEMAP:
        t.goto("handle_page_fault.put")
    else:
        t.goto("handle_page_fault.unlock_vmr")  # the PTE owns the private page's kref
    return None


@CODE.step("handle_page_fault", "put", "pm_put_page(a_page)")
def hpf_put(m: Machine, t: ThreadView) -> object:
    put_slot_ref(m, t, t["hpf_page"])
    t.goto("handle_page_fault.unlock_vmr")
    return None


@CODE.step("handle_page_fault", "spurious_unlock", "spurious fault: spin_unlock(&p->pte_lock)")
def hpf_spurious_unlock(m: Machine, t: ThreadView) -> object:
    _unlock(m, t, "pte_lock")
    t.goto("handle_page_fault.spurious_put")
    return None


@CODE.step("handle_page_fault", "spurious_put", "__put_page(a_page); return 0")
def hpf_spurious_put(m: Machine, t: ThreadView) -> object:
    __put_page(m, t, t["hpf_page"])
    t.goto("handle_page_fault.unlock_vmr")
    return None


@CODE.step("handle_page_fault", "unlock_vmr", "spin_unlock(&p->vmr_lock)")
def hpf_unlock_vmr(m: Machine, t: ThreadView) -> object:
    _unlock(m, t, "vmr_lock")
    t.ret("handle_page_fault", t["hpf_rv"])
    return None

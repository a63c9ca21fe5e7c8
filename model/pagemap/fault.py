"""The page-fault path (kern/src/mm.c): handle_page_fault and
__handle_page_fault for file mappings, as changed by the seed (the
__put_page helper and the three error and spurious-fault lines it changed,
the preserved dirty bit and the final pm_put_page).

handle_page_fault takes vmr_lock around __handle_page_fault; MAP_POPULATE in
__do_mmap calls __handle_page_fault directly, with vmr_lock already held
(pagemap.mmap).  __handle_page_fault calls pm_load_page, which may sleep
(lock_page, a blocking readpage) -- with vmr_lock held, which the source marks
with a TODO and the fix ``hpf-load-unlocked`` avoids: drop vmr_lock around the
load, then look the VMR up again (what later Akaros does).
"""

from __future__ import annotations

from pagemap.alloc import ENOMEM, may_fail, page_alloc, page_decref
from pagemap.hardware import EFAULT, EPERM
from pagemap.machine import BLOCKED, CODE, Machine, ThreadView
from pagemap.pageflags import PG_PAGEMAP, PTE_D, PTE_P, PTE_USER_RO, PTE_USER_RW
from pagemap.pm import put_slot_ref
from pagemap.sync import spin_acquire, spin_release
from pagemap.vmr import MAP_PRIVATE, PGSHIFT, PROT_EXEC, PROT_READ, PROT_WRITE

CODE.function(
    "handle_page_fault",
    ("hpf_vpn", "hpf_prot", "hpf_vmr", "hpf_idx", "hpf_page", "hpf_cache", "hpf_rv"),
)


def _lock(m: Machine, t: ThreadView, which: str) -> bool:
    """spin_lock of the thread's own process's vmr_lock or pte_lock."""
    return spin_acquire(m, t, m.L.proc_off(t.proc, which))


def _unlock(m: Machine, t: ThreadView, which: str) -> None:
    spin_release(m, t, m.L.proc_off(t.proc, which), which)


def __put_page(m: Machine, t: ThreadView, page: int) -> None:
    """__put_page (mm.c): pm_put_page for a page-map page, else page_decref.

    PG_PAGEMAP of a page we hold a reference to does not change under us, so
    reading it joins the put."""
    m.touch(page, "__put_page")
    if m.pg(page, "flags") & PG_PAGEMAP:
        put_slot_ref(m, t, page)
    else:
        page_decref(m, page, "__put_page")


def pte_prot(vm_prot: int) -> int:
    """The PTE permissions __handle_page_fault picks from the VMR (not the fault)."""
    if vm_prot & PROT_WRITE:
        return PTE_USER_RW
    if vm_prot & (PROT_READ | PROT_EXEC):
        return PTE_USER_RO
    return 0


def _fail(t: ThreadView, err: int) -> None:
    t["hpf_rv"] = err
    t.goto("__handle_page_fault.out")


# -- handle_page_fault: vmr_lock around __handle_page_fault ---------------------------------


@CODE.step("handle_page_fault", "lock_vmr", "spin_lock(&p->vmr_lock)", lock="vmr_lock")
def hpf_lock_vmr(m: Machine, t: ThreadView) -> object:
    if not _lock(m, t, "vmr_lock"):
        return BLOCKED
    t.call("__handle_page_fault.find_vmr", "handle_page_fault.unlock_vmr")
    return None


@CODE.step("handle_page_fault", "unlock_vmr", "spin_unlock(&p->vmr_lock); return ret")
def hpf_unlock_vmr(m: Machine, t: ThreadView) -> object:
    _unlock(m, t, "vmr_lock")
    t.ret("handle_page_fault", t["rv"])
    return None


# -- __handle_page_fault ------------------------------------------------------------------


@CODE.step(
    "__handle_page_fault",
    "find_vmr",
    "vmr = find_vmr(p, va); check prot; f_idx; pm_load_page(f_mapping, f_idx)",
    local=True,
)
def hpf_find_vmr(m: Machine, t: ThreadView) -> object:
    # The VMR list and fields change only under vmr_lock, which we hold.
    va = t["hpf_vpn"] << PGSHIFT
    r = m.find_vmr(t.proc, va)
    if r is None:
        _fail(t, EFAULT)
        return None
    vmr = m.vmr(r)
    if not vmr.vm_prot & t["hpf_prot"]:
        _fail(t, EPERM)
        return None
    t["hpf_vmr"] = r + 1
    t["hpf_idx"] = vmr.idx_of(t["hpf_vpn"])
    if m.cfg.fix("hpf-load-unlocked"):
        t.goto("__handle_page_fault.unlock_for_load")
    else:
        t.call("pm_load_page.find", "__handle_page_fault.loaded", load_index=t["hpf_idx"])
    return None


@CODE.step("__handle_page_fault", "unlock_for_load",
           "fix hpf-load-unlocked: spin_unlock(&p->vmr_lock) before pm_load_page (may sleep)")
def hpf_unlock_for_load(m: Machine, t: ThreadView) -> object:
    _unlock(m, t, "vmr_lock")
    t.call("pm_load_page.find", "__handle_page_fault.relock", load_index=t["hpf_idx"])
    return None


@CODE.step("__handle_page_fault", "relock",
           "fix hpf-load-unlocked: spin_lock(&p->vmr_lock); vmr = find_vmr(p, va) again",
           lock="vmr_lock")
def hpf_relock(m: Machine, t: ThreadView) -> object:
    if not _lock(m, t, "vmr_lock"):
        return BLOCKED
    loaded = t["rv"]
    if loaded <= 0:  # the load failed: nothing to put back
        t.goto("__handle_page_fault.loaded")
        return None
    va = t["hpf_vpn"] << PGSHIFT
    r = m.find_vmr(t.proc, va)
    if r is not None:
        vmr = m.vmr(r)
        if vmr.vm_prot & t["hpf_prot"] and vmr.idx_of(t["hpf_vpn"]) == t["hpf_idx"]:
            t["hpf_vmr"] = r + 1
            t.goto("__handle_page_fault.loaded")
            return None
    # The VMR went away or changed while we slept: drop the page, look again.
    t["hpf_page"] = loaded
    t["rv"] = 0
    t.goto("__handle_page_fault.stale_put")
    return None


@CODE.step("__handle_page_fault", "stale_put",
           "fix hpf-load-unlocked: the VMR changed: __put_page(page); retry the fault")
def hpf_stale_put(m: Machine, t: ThreadView) -> object:
    __put_page(m, t, t["hpf_page"])
    t["hpf_page"] = t["hpf_vmr"] = t["hpf_idx"] = 0
    t.goto("__handle_page_fault.find_vmr")
    return None


@CODE.step("__handle_page_fault", "loaded",
           "error? return it; a_page = the loaded page; MAP_PRIVATE?", local=True)
def hpf_loaded(m: Machine, t: ThreadView) -> object:
    got = t["rv"]
    t["rv"] = 0
    if got <= 0:  # pm_load_page's -ENOMEM
        _fail(t, -got)
        return None
    t["hpf_page"] = got
    if m.vf(t["hpf_vmr"] - 1, "flags") & MAP_PRIVATE:
        t.goto("__handle_page_fault.private_alloc")
    else:
        t.goto("__handle_page_fault.lock_pte")
    return None


@CODE.step(
    "__handle_page_fault",
    "private_alloc",
    "cache_page = a_page; upage_alloc(p, &a_page, FALSE); a_page->pg_tree_slot = 0",
)
def hpf_private_alloc(m: Machine, t: ThreadView) -> object:
    t["hpf_cache"] = t["hpf_page"]
    page = page_alloc(m, zero=False, what="upage_alloc")
    if page is None:
        t["hpf_page"] = 0
        t.goto("__handle_page_fault.private_fail")
        return None
    t["hpf_page"] = page
    t.goto("__handle_page_fault.private_copy")
    return None


@CODE.step("__handle_page_fault", "private_fail",
           "upage_alloc failed: __put_page(cache_page); return -ENOMEM")
def hpf_private_fail(m: Machine, t: ThreadView) -> object:
    __put_page(m, t, t["hpf_cache"])
    t["hpf_cache"] = 0
    _fail(t, ENOMEM)
    return None


@CODE.step("__handle_page_fault", "private_copy",
           "memcpy(page2kva(a_page), page2kva(cache_page))")
def hpf_private_copy(m: Machine, t: ThreadView) -> object:
    cache, page = t["hpf_cache"], t["hpf_page"]
    m.touch(cache, "private copy")
    m.set_pg(page, "data", m.pg(cache, "data"))
    t.goto("__handle_page_fault.private_put")
    return None


@CODE.step("__handle_page_fault", "private_put", "__put_page(cache_page)")
def hpf_private_put(m: Machine, t: ThreadView) -> object:
    __put_page(m, t, t["hpf_cache"])
    t["hpf_cache"] = 0
    t.goto("__handle_page_fault.lock_pte")
    return None


@CODE.step("__handle_page_fault", "lock_pte", "spin_lock(&p->pte_lock)", lock="pte_lock")
def hpf_lock_pte(m: Machine, t: ThreadView) -> object:
    if not _lock(m, t, "pte_lock"):
        return BLOCKED
    t.goto("__handle_page_fault.write_pte")
    return None


@CODE.step(
    "__handle_page_fault",
    "write_pte",
    "pte = pgdir_walk(create); if PAGE_PRESENT: spurious; keep PTE_D; *pte = PTE(a_page, P|prot)",
)
def hpf_write_pte(m: Machine, t: ThreadView) -> object:
    # Read and write are one step: the PTE is not present, so the hardware
    # cannot update it, and every software writer holds pte_lock (we do).
    p, vpn = t.proc, t["hpf_vpn"]
    if not m.pt_present(p, vpn):
        if may_fail(m, "pgdir_walk: kpage_zalloc_addr of a page table"):
            t.goto("__handle_page_fault.walk_fail")
            return None
        m.set_pt_present(p, vpn)
    old = m.pte(p, vpn)
    if old & PTE_P:
        t.goto("__handle_page_fault.spurious_unlock")
        return None
    prot = pte_prot(m.vf(t["hpf_vmr"] - 1, "prot")) | (old & PTE_D)
    m.set_pte(p, vpn, m.c.make_pte(t["hpf_page"], PTE_P | prot))
    t.goto("__handle_page_fault.unlock_pte")
    return None


@CODE.step("__handle_page_fault", "walk_fail",
           "pgdir_walk returned NULL: spin_unlock(&p->pte_lock)")
def hpf_walk_fail(m: Machine, t: ThreadView) -> object:
    _unlock(m, t, "pte_lock")
    t.goto("__handle_page_fault.walk_fail_put")
    return None


@CODE.step("__handle_page_fault", "walk_fail_put", "__put_page(a_page); return -ENOMEM")
def hpf_walk_fail_put(m: Machine, t: ThreadView) -> object:
    __put_page(m, t, t["hpf_page"])
    _fail(t, ENOMEM)
    return None


@CODE.step(
    "__handle_page_fault", "unlock_pte", "spin_unlock(&p->pte_lock); if PG_PAGEMAP: pm_put_page"
)
def hpf_unlock_pte(m: Machine, t: ThreadView) -> object:
    _unlock(m, t, "pte_lock")
    page = t["hpf_page"]
    m.touch(page, "handle_page_fault")
    if m.pg(page, "flags") & PG_PAGEMAP:
        t.goto("__handle_page_fault.put")
    else:
        t.goto("__handle_page_fault.out")  # the PTE owns the private page's kref
    return None


@CODE.step("__handle_page_fault", "put", "pm_put_page(a_page)")
def hpf_put(m: Machine, t: ThreadView) -> object:
    put_slot_ref(m, t, t["hpf_page"])
    t.goto("__handle_page_fault.out")
    return None


@CODE.step("__handle_page_fault", "spurious_unlock", "spurious fault: spin_unlock(&p->pte_lock)")
def hpf_spurious_unlock(m: Machine, t: ThreadView) -> object:
    _unlock(m, t, "pte_lock")
    t.goto("__handle_page_fault.spurious_put")
    return None


@CODE.step("__handle_page_fault", "spurious_put", "__put_page(a_page); return 0")
def hpf_spurious_put(m: Machine, t: ThreadView) -> object:
    __put_page(m, t, t["hpf_page"])
    t.goto("__handle_page_fault.out")
    return None


@CODE.step("__handle_page_fault", "out", "return ret", local=True)
def hpf_out(m: Machine, t: ThreadView) -> object:
    t.ret("handle_page_fault", t["hpf_rv"])
    return None

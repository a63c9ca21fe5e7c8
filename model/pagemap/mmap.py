"""mmap of a file (kern/src/mm.c: __do_mmap), run with the process's vmr_lock
held, in the C's order:

    create_vmr      the VMR joins the process's list, its struct zeroed
    prot, flags     vm_prot, vm_flags (MAP_POPULATE ORed in: CONFIG_DEMAND_PAGING
                    is off in the default build)
    pm_add_vmr      on pm->pm_vmrs (pm_lock) -- while vm_file and vm_foff are 0
    file, foff      *then* vm_file and vm_foff (the fix ``mmap-foff-first`` sets them
                    before pm_add_vmr)
    merge_me        merge_vmr with the VMR before, then the one after
    populate        __handle_page_fault(p, va, vm_prot) for each page, vmr_lock
                    still held; on an error destroy_vmr (the PTEs already filled
                    stay; the fix ``populate-unmap-on-error`` calls __do_munmap over
                    the VMR instead), and on -ENOMEM the process is destroyed too

With ``hpf-load-unlocked`` the pages are faulted in after vmr_lock is dropped,
through handle_page_fault (as later Akaros does), so that no load sleeps
holding vmr_lock; a failure then ends the populate loop.
"""

from __future__ import annotations

import icontract

from pagemap import contracts as C
from pagemap.alloc import ENOMEM
from pagemap.fault import _lock, _unlock
from pagemap.machine import BLOCKED, CODE, Machine, ThreadView
from pagemap.vmr import MAP_POPULATE, PROT_NONE, PROT_READ, PROT_WRITE, VMR
from pagemap.vmrs import can_merge

CODE.function("mmap", ("mm_decl", "mm_vmr", "mm_vpn", "mm_end", "mm_err"))


def _decl(m: Machine, t: ThreadView) -> VMR:
    """The declared VMR the op maps (``mm_decl`` = its index + 1)."""
    return m.cfg.vmrs[t["mm_decl"] - 1]


def _rec(m: Machine, t: ThreadView) -> int:
    """Its record: the struct vm_region create_vmr allocates for it."""
    return m.L.decl_rec[t["mm_decl"] - 1]


@CODE.step("mmap", "lock_vmr", "spin_lock(&p->vmr_lock)", lock="vmr_lock")
@icontract.require(lambda m, t: C.no_spinlock(m, t) and C.no_ref(t))
@icontract.require(lambda m, t: not m.vf(m.L.decl_rec[t["mm_decl"] - 1], "alive"),
    "mmap of a VMR that is not mapped (the scenario parser makes sure)")
def mm_lock_vmr(m: Machine, t: ThreadView) -> object:
    if not _lock(m, t, "vmr_lock"):
        return BLOCKED
    t.goto("mmap.create")
    return None


@CODE.step("mmap", "create",
           "vmr = create_vmr(p, addr, len); vmr->vm_prot = prot; vmr->vm_flags = flags; "
           "pm_add_vmr(f_mapping, vmr)", local=True,
           fixed={"mmap-foff-first": "vmr = create_vmr(p, addr, len); vm_prot, vm_flags, "
                   "vm_file, vm_foff; then pm_add_vmr(f_mapping, vmr)"})
def mm_create(m: Machine, t: ThreadView) -> object:
    # The VMR is on no list another thread reads without vmr_lock until pm_add_vmr.
    r, decl = _rec(m, t), _decl(m, t)
    m.set_vf(r, "alive", 1)
    m.set_vf(r, "base", decl.vm_base)
    m.set_vf(r, "end", decl.vm_end)
    m.set_vf(r, "prot", decl.vm_prot)
    flags = decl.vm_flags if m.cfg.demand_paging else decl.vm_flags | MAP_POPULATE
    m.set_vf(r, "flags", flags)
    t["mm_vmr"] = r + 1
    if m.cfg.fix("mmap-foff-first"):
        m.set_vf(r, "file", 1)
        m.set_vf(r, "foff", decl.vm_foff)
        t.call("pm_add_vmr.lock", "mmap.merge_prev", addv_vmr=r + 1)
    else:
        t.call("pm_add_vmr.lock", "mmap.set_file", addv_vmr=r + 1)
    return None


@CODE.step("mmap", "set_file", "vmr->vm_file = file; vmr->vm_foff = offset")
@icontract.require(lambda m, t: m.vf(t["mm_vmr"] - 1, "on_pm") > 0 and C.holds(m, t, "vmr_lock"),
                   "vm_file and vm_foff are set after pm_add_vmr (the seed's order)")
def mm_set_file(m: Machine, t: ThreadView) -> object:
    # The VMR is on pm_vmrs already: pm_remove_contig may have read vm_foff = 0.
    r, decl = _rec(m, t), _decl(m, t)
    m.set_vf(r, "file", 1)
    m.set_vf(r, "foff", decl.vm_foff)
    t.goto("mmap.merge_prev")
    return None


@CODE.step("mmap", "merge_prev", "merge_me: if merge_vmr(TAILQ_PREV(vmr), vmr) == 0: vmr = prev",
           local=True)
def mm_merge_prev(m: Machine, t: ThreadView) -> object:
    r = t["mm_vmr"] - 1
    recs = m.proc_vmrs(t.proc)
    k = recs.index(r)
    if k > 0 and can_merge(m, recs[k - 1], r):
        t["mm_vmr"] = recs[k - 1] + 1
        t.call("merge_vmr.extend", "mmap.merge_next", mg_first=recs[k - 1] + 1, mg_second=r + 1)
    else:
        t.goto("mmap.merge_next")
    return None


@CODE.step("mmap", "merge_next", "merge_me: merge_vmr(vmr, TAILQ_NEXT(vmr))", local=True)
def mm_merge_next(m: Machine, t: ThreadView) -> object:
    r = t["mm_vmr"] - 1
    nxt = m.next_vmr(t.proc, r)
    if nxt is not None and can_merge(m, r, nxt):
        t.call("merge_vmr.extend", "mmap.populate_start", mg_first=r + 1, mg_second=nxt + 1)
    else:
        t.goto("mmap.populate_start")
    return None


def _populating(m: Machine, t: ThreadView) -> bool:
    r = t["mm_vmr"] - 1
    return bool(m.vf(r, "flags") & MAP_POPULATE) and m.vf(r, "prot") != PROT_NONE


@CODE.step("mmap", "populate_start",
           "if (flags & MAP_POPULATE && prot != PROT_NONE): for each page of [addr, addr + len)",
           local=True,
           fixed={"hpf-load-unlocked":
                  "MAP_POPULATE: after spin_unlock(&p->vmr_lock), "
                  "handle_page_fault each page"})
def mm_populate_start(m: Machine, t: ThreadView) -> object:
    decl = _decl(m, t)
    t["mm_vpn"], t["mm_end"] = decl.base_vpn, decl.end_vpn
    if not _populating(m, t):
        t["mm_vpn"] = t["mm_end"] = 0
    if m.cfg.fix("hpf-load-unlocked") or not t["mm_end"]:
        t.goto("mmap.unlock_vmr")
    else:
        _populate(m, t)
    return None


def _populate(m: Machine, t: ThreadView) -> None:
    """__handle_page_fault(p, va, vmr->vm_prot), vmr_lock held (seed)."""
    t.call("__handle_page_fault.find_vmr", "mmap.populated", hpf_vpn=t["mm_vpn"],
           hpf_prot=m.vf(t["mm_vmr"] - 1, "prot"))


@CODE.step("mmap", "populated", "if (ret) goto error; next page", local=True)
def mm_populated(m: Machine, t: ThreadView) -> object:
    rv = t["rv"]
    t["rv"] = 0
    if rv:
        _failed(m, t, rv)
        t.goto("mmap.populate_failed")
        return None
    t["mm_vpn"] += 1
    if t["mm_vpn"] < t["mm_end"]:
        _populate(m, t)
    else:
        t["mm_vpn"] = t["mm_end"] = 0
        t.goto("mmap.unlock_vmr")
    return None


def _failed(m: Machine, t: ThreadView, rv: int) -> None:
    t["mm_err"] = rv
    t["mm_vpn"] = t["mm_end"] = 0
    m.note(f"MAP_POPULATE's fault failed ({rv}): destroy_vmr")


@CODE.step("mmap", "populate_failed",
           "populate failed: destroy_vmr(vmr) (the PTEs already filled stay)", local=True,
           fixed={"populate-unmap-on-error":
                  "populate failed: __do_munmap(p, vmr->vm_base, vmr->vm_end - vmr->vm_base) "
                  "(vmr_lock held, as __do_munmap expects)"})
def mm_populate_failed(m: Machine, t: ThreadView) -> object:
    """The error path of __do_mmap's MAP_POPULATE loop (kern/src/mm.c).  The seed only
    destroy_vmr's the VMR.  The fix unmaps it as munmap does: __do_munmap over the VMR's
    range, which the C could call here since vmr_lock is held -- clear PTE_P, shoot the
    TLBs down (another thread of the process may have loaded a populated PTE into its
    TLB), zero the PTEs (__vmr_free_pgs), then destroy_vmr.  The model enters its munmap
    after the lock_vmr step: isolate_vmrs has nothing to cut when the range is one VMR's."""
    r = t["mm_vmr"] - 1
    if r < 0:  # (fixed path) the VMR went away meanwhile
        t.goto("mmap.unlock_vmr")
    elif m.cfg.fix("populate-unmap-on-error"):
        t.call("munmap.lock_pte1", "mmap.unlock_vmr", mu_addr=m.vf(r, "base"),
               mu_end=m.vf(r, "end"), mu_held=1)
    else:
        t.call("destroy_vmr.start", "mmap.unlock_vmr", dv_vmr=t["mm_vmr"])
    return None


@CODE.step("mmap", "unlock_vmr", "spin_unlock(&p->vmr_lock); ENOMEM: proc_destroy(p)")
def mm_unlock_vmr(m: Machine, t: ThreadView) -> object:
    _unlock(m, t, "vmr_lock")
    if t["mm_err"] == ENOMEM:
        t.goto("proc_destroy.kill")
    elif t["mm_end"]:  # hpf-load-unlocked: now fault the pages in
        _populate_unlocked(m, t)
    else:
        t.ret("mmap")
    return None


def _populate_unlocked(m: Machine, t: ThreadView) -> None:
    fault = PROT_WRITE if _decl(m, t).vm_prot & PROT_WRITE else PROT_READ
    t.call("handle_page_fault.lock_vmr", "mmap.populated_unlocked", hpf_vpn=t["mm_vpn"],
           hpf_prot=fault)


@CODE.step("mmap", "populated_unlocked",
           "fix hpf-load-unlocked: the fault failed? error path; else next page", local=True)
def mm_populated_unlocked(m: Machine, t: ThreadView) -> object:
    rv = t["rv"]
    t["rv"] = 0
    if rv:
        _failed(m, t, rv)
        t.goto("mmap.relock")
        return None
    t["mm_vpn"] += 1
    if t["mm_vpn"] >= t["mm_end"]:
        t.ret("mmap")
    else:
        _populate_unlocked(m, t)
    return None


@CODE.step("mmap", "relock",
           "fix hpf-load-unlocked: spin_lock(&p->vmr_lock); vmr = find_vmr(p, addr)",
           lock="vmr_lock")
def mm_relock(m: Machine, t: ThreadView) -> object:
    if not _lock(m, t, "vmr_lock"):
        return BLOCKED
    r = m.find_vmr(t.proc, _decl(m, t).vm_base)
    t["mm_vmr"] = 0 if r is None else r + 1
    t.goto("mmap.populate_failed")
    return None

"""The hardware of DESIGN §4: per-core TLBs, the dirty bit, user loads and
stores through a mapping, and TLB shootdown (proc_tlbshootdown,
kern/src/process.c).

A user access is one step when it hits in the TLB, or when it misses and the
walk finds a present PTE: on x86 the walk, the fill, the dirty-bit update and
the access are one instruction, and a flush IPI is taken only between
instructions.  A store through an entry whose dirty bit is clear sets PTE_D
with a locked update of the PTE, and faults instead if the PTE is no longer
present.  A fault drops the entry (x86 invalidates the faulting address), runs
handle_page_fault and retries the access.
"""

from __future__ import annotations

from pagemap.machine import CODE, Machine, ThreadView, tlb_dirty, tlb_entry, tlb_ppn
from pagemap.pageflags import PTE_D, PTE_P, PTE_W, pte2ppn
from pagemap.vmr import MAP_SHARED

PROT_READ = 0x1
PROT_WRITE = 0x2
EFAULT = 14

CODE.function("user_access", ("acc_vmr", "acc_k", "acc_write", "acc_value"))


def write_value(t: ThreadView) -> int:
    """The fresh value a write op stores: unique per (thread, op)."""
    return 100 * (t.id + 1) + t["op"] + 1


def _store(m: Machine, t: ThreadView, ppn: int) -> None:
    v, k = t["acc_vmr"], t["acc_k"]
    what = f"store to {m.cfg.vmrs[v].name}+{k}"
    m.touch(ppn, what)
    value = t["acc_value"]
    m.set_pg(ppn, "data", value)
    vmr = m.cfg.vmrs[v]
    if vmr.vm_flags & MAP_SHARED:
        m.set_last(vmr.first_idx + k, value)  # a write to the file's page


def _load(m: Machine, t: ThreadView, ppn: int) -> None:
    v, k = t["acc_vmr"], t["acc_k"]
    m.touch(ppn, f"load from {m.cfg.vmrs[v].name}+{k}")


@CODE.step("user_access", "try", "user load/store: TLB hit, or walk the PTE (one instruction)")
def access_try(m: Machine, t: ThreadView) -> object:
    v, k, write = t["acc_vmr"], t["acc_k"], t["acc_write"]
    e = m.tlb(t.id, v, k)
    pte = m.pte(v, k)
    if e:
        ppn = tlb_ppn(e)
        if not write:
            _load(m, t, ppn)
            t.ret("user_access")
            return None
        if tlb_dirty(e):
            _store(m, t, ppn)  # straight to the page, PTE not looked at
            t.ret("user_access")
            return None
        if pte & PTE_P:
            m.set_pte(v, k, pte | PTE_D)  # locked update of the PTE's D bit
            m.set_tlb(t.id, v, k, tlb_entry(ppn, True, True))
            _store(m, t, ppn)
            t.ret("user_access")
            return None
        m.set_tlb(t.id, v, k, 0)  # D update through a !P PTE faults
    elif pte & PTE_P and (not write or pte & PTE_W):
        ppn = pte2ppn(pte)
        if write and not pte & PTE_D:
            pte |= PTE_D
            m.set_pte(v, k, pte)
        m.set_tlb(t.id, v, k, tlb_entry(ppn, bool(pte & PTE_D), bool(pte & PTE_W)))
        if write:
            _store(m, t, ppn)
        else:
            _load(m, t, ppn)
        t.ret("user_access")
        return None
    m.note("page fault")
    t.call(
        "handle_page_fault.lock_vmr",
        "user_access.faulted",
        hpf_vmr=v,
        hpf_k=k,
        hpf_prot=PROT_WRITE if write else PROT_READ,
    )
    return None


@CODE.step("user_access", "faulted", "handle_page_fault returned: retry the access", local=True)
def access_faulted(m: Machine, t: ThreadView) -> object:
    rv = t["rv"]
    t["rv"] = 0
    if rv:
        # The VMR is gone (munmap won): the process would be killed; the
        # model ends the op there.
        m.note("fault failed (-EFAULT): the access does not happen")
        t.ret("user_access")
    else:
        t.goto("user_access.try")
    return None


def proc_tlbshootdown(m: Machine, proc: int) -> None:
    """proc_tlbshootdown(p, 0, 0): queue a flush for every core of p.

    ``shootdown = "async"`` (as at the commit): each target core's flush is a
    pending event that happens later, while the caller goes on.  ``"sync"``:
    every TLB of p is empty when the call returns."""
    for u in m.cfg.proc_threads(proc):
        if m.cfg.shootdown == "sync":
            m.flush_tlb(u)
        elif m.thread(u)["pc"] != 0:
            m.set_flush_pending(u, True)


def shootdown_pending(m: Machine, proc: int) -> bool:
    """Whether some core of p has not yet taken its flush."""
    return any(m.flush_pending(u) for u in m.cfg.proc_threads(proc))

"""The hardware model (spec/model.md): per-core TLBs, the dirty bit and user loads and
stores through a mapping.

A user access is one step when it hits in the TLB, or when it misses and the
walk finds a present PTE: on x86 the walk, the fill, the dirty-bit update and
the access are one instruction, and a flush IPI is taken only between
instructions.  A store through an entry whose dirty bit is clear makes the
hardware re-walk the PTE and set PTE_D with a locked update; if the PTE is no
longer present, or no longer writable, the store faults instead (spec/
deviations.md).  A store through a read-only entry
faults.  A fault drops the entry (x86 invalidates the faulting address), runs
handle_page_fault and retries the access; a fault that fails destroys the
process (kern/arch/x86/trap.c: page_fault_handler).

TLBs belong to cores (``Config.cores``): an MCP thread has its own, the
uthreads of an SCP share their core's.
"""

from __future__ import annotations

from pagemap.machine import CODE, Machine, ThreadView, tlb_dirty, tlb_entry, tlb_ppn, tlb_writable
from pagemap.pageflags import PTE_D, PTE_P, PTE_W, pte2ppn
from pagemap.sched import leave_kernel
from pagemap.vmr import PROT_READ, PROT_WRITE

EFAULT = 14
EPERM = 1

CODE.function("user_access", ("acc_vpn", "acc_write", "acc_value"))


def write_value(t: ThreadView) -> int:
    """The fresh value a write op stores: unique per (thread, op)."""
    return 100 * (t.id + 1) + t["op"] + 1


def _where(m: Machine, t: ThreadView) -> str:
    return m.L.page_name(t.proc, t["acc_vpn"])


def _store(m: Machine, t: ThreadView, ppn: int) -> None:
    m.touch(ppn, f"store to {_where(m, t)}")
    value = t["acc_value"]
    m.set_pg(ppn, "data", value)
    # A page-map page keeps pg_tree_slot (private and anonymous pages have it 0,
    # set by the page-fault path): a store into it is a write to its file page.
    if m.pg(ppn, "tslot") > 0:
        m.set_last(m.pg(ppn, "index"), value)


def _load(m: Machine, t: ThreadView, ppn: int) -> None:
    m.touch(ppn, f"load from {_where(m, t)}")


@CODE.step("user_access", "try", "user load/store: TLB hit, or walk the PTE (one instruction)",
           user=True)
def access_try(m: Machine, t: ThreadView) -> object:
    p, vpn, write = t.proc, t["acc_vpn"], t["acc_write"]
    c = t.core
    e = m.tlb(c, vpn)
    pte = m.pte(p, vpn)
    if e:
        ppn = tlb_ppn(e)
        if not write:
            _load(m, t, ppn)
            t.ret("user_access")
            return None
        if tlb_writable(e):
            if tlb_dirty(e):
                _store(m, t, ppn)  # straight to the page, PTE not looked at
                t.ret("user_access")
                return None
            if pte & PTE_P and pte & PTE_W:
                m.set_pte(p, vpn, pte | PTE_D)  # locked update of the PTE's D bit
                m.set_tlb(c, vpn, tlb_entry(ppn, True, True))
                _store(m, t, ppn)
                t.ret("user_access")
                return None
        m.set_tlb(c, vpn, 0)  # the store faults; the entry is invalidated
    elif pte & PTE_P and (not write or pte & PTE_W):
        ppn = pte2ppn(pte)
        if write and not pte & PTE_D:
            pte |= PTE_D
            m.set_pte(p, vpn, pte)
        m.set_tlb(c, vpn, tlb_entry(ppn, bool(pte & PTE_D), bool(pte & PTE_W)))
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
        hpf_vpn=vpn,
        hpf_prot=PROT_WRITE if write else PROT_READ,
    )
    return None


@CODE.step("user_access", "faulted",
           "page_fault_handler: handle_page_fault failed? proc_destroy; else retry", local=True)
def access_faulted(m: Machine, t: ThreadView) -> object:
    rv = t["rv"]
    t["rv"] = 0
    if rv:
        # A non-zero return destroys the process (trap.c).
        m.note(f"page fault failed ({-rv if rv < 0 else rv}): proc_destroy(current)")
        t.goto("proc_destroy.kill")
        return None
    if not leave_kernel(m, t):
        t.goto("proc_destroy.stop")  # dying: no return to user space
        return None
    t.goto("user_access.try")
    return None

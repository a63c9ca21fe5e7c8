"""The whole modeled program: every kernel module's steps, how a thread runs
its ops one after the other, and the initial state of a configuration."""

from __future__ import annotations

# Importing the kernel modules registers their steps in CODE.
from pagemap import fault, fileio, hardware, munmap, pm, removal, sync  # noqa: F401
from pagemap.config import Config
from pagemap.machine import CODE, DONE_PC, Layout, Machine, ThreadView
from pagemap.pageflags import (
    PG_BUFFER,
    PG_PAGEMAP,
    PG_UPTODATE,
    PTE_P,
    PTE_USER_RO,
    PTE_USER_RW,
    make_pte,
)
from pagemap.slot import pm_slot_set_page
from pagemap.vmr import MAP_PRIVATE, PROT_WRITE


def dispatch(t: ThreadView) -> None:
    """Start the thread's next op (t["op"]), or finish the thread.

    A finished thread's core leaves the address space (a context switch
    reloads CR3), so its TLB is emptied and any pending flush is moot."""
    ops = t.cfg.ops
    i = t["op"]
    if i >= len(ops):
        t["pc"] = DONE_PC
        if t.proc >= 0:
            if any(t.m.v[b + k] for (u, v), b in t.m.L.tlb0.items() if u == t.id
                   for k in range(t.m.cfg.vmrs[v].npages)):
                t.m.note("last op done: the core leaves the address space, TLB emptied")
            t.m.flush_tlb(t.id)
            t.m.set_flush_pending(t.id, False)
        return
    op = ops[i]
    if op.op in ("write", "read"):
        t.call(
            "user_access.try",
            None,
            acc_vmr=op.vmr,
            acc_k=op.page,
            acc_write=int(op.op == "write"),
            acc_value=hardware.write_value(t) if op.op == "write" else 0,
        )
    elif op.op == "munmap":
        t.call("munmap.lock_vmr", None, mu_vmr=op.vmr)
    elif op.op in ("file_write", "file_read"):
        t.call("file_io.load", None, fio_index=op.index, fio_write=int(op.op == "file_write"))
    elif op.op == "remove":
        t.call("pm_remove_contig.swap", None, rm_index=op.index, rm_nr=op.count)
    else:  # the scenario parser admits no other op
        raise ValueError(f"unknown op {op.op!r}")


def initial_value(i: int) -> int:
    """The backing store's initial contents of file page i (writes are > 0)."""
    return -(i + 1)


#: The modeled functions each op can run (its call graph), so that a thread
#: carries registers only for those.  A thread with no ops is driven directly
#: (pagemap.sequential) and gets every function's registers.
OP_FUNCTIONS: dict[str, frozenset[str]] = {
    "write": frozenset({"user_access", "handle_page_fault", "pm_load_page", "pm_find_page",
                        "pm_insert_page", "pm_put_page", "lock_page", "unlock_page"}),
    "munmap": frozenset({"munmap", "pm_remove_vmr"}),
    "file_write": frozenset({"file_io", "pm_load_page", "pm_find_page", "pm_insert_page",
                             "pm_put_page", "lock_page", "unlock_page"}),
    "remove": frozenset({"pm_remove_contig", "shootdown_and_reset"}),
}
OP_FUNCTIONS["read"] = OP_FUNCTIONS["write"]
OP_FUNCTIONS["file_read"] = OP_FUNCTIONS["file_write"]


def thread_functions(cfg: Config) -> list[frozenset[str]] | None:
    if any(not th.ops for th in cfg.threads):
        return None
    return [
        frozenset({"thread"}).union(*(OP_FUNCTIONS[op.op] for op in th.ops))
        for th in cfg.threads
    ]


def build_layout(cfg: Config, contracts: bool = True, replace: dict | None = None) -> Layout:
    layout = Layout(cfg, CODE, contracts, replace, thread_functions(cfg))
    layout.dispatch = dispatch
    return layout


def initial_state(layout: Layout) -> tuple[int, ...]:
    """The state before any thread runs: pm_init, the preloaded pages (up to
    date, clean, unlocked, no slot reference), the VMRs on pm_vmrs, the
    prefaulted PTEs (TLBs cold), and each thread at its first op."""
    cfg = layout.cfg
    m = Machine(layout, (0,) * layout.size)
    for i in range(cfg.file_pages):
        m.set_store(i, initial_value(i))
        m.set_last(i, initial_value(i))
    next_ppn = 1

    def take() -> int:
        nonlocal next_ppn
        ppn = next_ppn
        next_ppn += 1
        if ppn > cfg.pool_pages:
            raise ValueError("pool_pages is too small for the preloaded and prefaulted pages")
        m.set_pg(ppn, "kref", 1)
        m.set_pg(ppn, "sem", 1)
        return ppn

    cached: dict[int, int] = {}
    for i in cfg.preload:
        ppn = take()
        m.set_pg(ppn, "flags", PG_UPTODATE | PG_BUFFER | PG_PAGEMAP)
        m.set_pg(ppn, "tslot", i + 1)
        m.set_pg(ppn, "index", i)
        m.set_pg(ppn, "data", m.store(i))
        m.set_slot(i, pm_slot_set_page(0, ppn, cfg.word_bits))
        cached[i] = ppn
    if cfg.preload:
        m.set("radix_depth", 1)
    m.set("pm_num_pages", len(cfg.preload))
    for v, vmr in enumerate(cfg.vmrs):
        m.set_on_pm(v, True)
        m.set_alive(v, True)
        if not cfg.prefault[v]:
            continue
        prot = PTE_USER_RW if vmr.vm_prot & PROT_WRITE else PTE_USER_RO
        for k in range(vmr.npages):
            i = vmr.first_idx + k
            if i not in cached:
                raise ValueError(f"VMR {vmr.name} is prefaulted but file page {i} is not preloaded")
            ppn = cached[i]
            if vmr.vm_flags & MAP_PRIVATE:
                ppn = take()
                m.set_pg(ppn, "sem", 0)
                m.set_pg(ppn, "data", m.store(i))
            m.set_pte(v, k, make_pte(ppn, PTE_P | prot))
    for t in range(len(cfg.threads)):
        dispatch(m.thread(t))
    return m.freeze()

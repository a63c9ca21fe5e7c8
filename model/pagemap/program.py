"""The whole modeled program: every kernel module's steps, how a thread runs
its ops one after the other, and the initial state of a configuration."""

from __future__ import annotations

# Importing the kernel modules registers their steps in CODE.
from pagemap import (  # noqa: F401
    fault,
    fileio,
    hardware,
    mmap,
    mprotect,
    munmap,
    pm,
    proc,
    removal,
    sched,
    sync,
    vmrs,
)
from pagemap.config import Config
from pagemap.fault import pte_prot
from pagemap.machine import (
    CODE,
    PROC_RUNNING_M,
    PROC_RUNNING_S,
    Layout,
    Machine,
    ThreadView,
    Violation,
)
from pagemap.pageflags import (
    PG_BUFFER,
    PG_PAGEMAP,
    PG_UPTODATE,
    PGSHIFT,
    PTE_P,
)
from pagemap.pm import pm_vmrs_insert_tail
from pagemap.sched import finish, leave_kernel
from pagemap.slot import pm_slot_set_page
from pagemap.vmr import MAP_POPULATE, MAP_PRIVATE


def _stop(t: ThreadView) -> None:
    """The thread has nothing more to run: its registers go, but the last op's
    return value (which pagemap.sequential reads) and the slot reference it may
    still hold (a leak the invariants must see), and its core may leave."""
    rv, holds = t["rv"], t["holds"]
    for off in range(t.m.L.thread_sizes[t.id]):
        t.m.v[t.base + off] = 0
    t["rv"], t["holds"] = rv, holds
    finish(t.m, t)


def dispatch(t: ThreadView) -> None:
    """Start the thread's next op (t["op"]), or finish the thread.

    The previous op's kernel path (a syscall, or a kernel thread's work) ends
    here: the thread returns to user space, which frees its core; a thread of a
    dying process stops instead (pagemap.sched)."""
    m = t.m
    if not leave_kernel(m, t):
        _stop(t)
        return
    ops = t.cfg.ops
    i = t["op"]
    if i >= len(ops):
        _stop(t)
        return
    op = ops[i]
    cfg = m.cfg
    if op.op in ("write", "read"):
        t.call(
            "user_access.try",
            None,
            acc_vpn=cfg.op_vpn(op),
            acc_write=int(op.op == "write"),
            acc_value=hardware.write_value(t) if op.op == "write" else 0,
        )
    elif op.op in ("munmap", "mprotect"):
        addr = cfg.op_vpn(op) << PGSHIFT
        end = addr + (op.pages << PGSHIFT)
        if op.op == "munmap":
            t.call("munmap.lock_vmr", None, mu_addr=addr, mu_end=end)
        else:
            t.call("mprotect.lock_vmr", None, mp_addr=addr, mp_end=end, mp_prot=op.prot)
    elif op.op == "mmap":
        t.call("mmap.lock_vmr", None, mm_decl=op.vmr + 1)
    elif op.op == "exit":
        t.call("proc_destroy.kill", None)
    elif op.op in ("file_write", "file_read"):
        t.call("file_io.load", None, fio_index=op.index, fio_write=int(op.op == "file_write"))
    elif op.op == "remove":
        t.call("pm_remove_contig.swap", None, rm_index=op.index, rm_nr=op.count)
    else:  # the scenario parser admits no other op
        raise ValueError(f"unknown op {op.op!r}")


def initial_value(i: int) -> int:
    """The backing store's initial contents of file page i (writes are > 0)."""
    return -(i + 1)


_LOAD = frozenset({"pm_load_page", "pm_find_page", "pm_insert_page", "pm_put_page", "lock_page",
                   "unlock_page"})
_TEARDOWN = frozenset({"proc_destroy", "__proc_free", "unmap_and_destroy_vmrs", "__vmr_free_pgs",
                       "destroy_vmr", "pm_remove_vmr"})
_FAULT = frozenset({"handle_page_fault"}) | _LOAD | _TEARDOWN  # a failed fault destroys
_SPLIT = frozenset({"isolate_vmrs", "split_vmr", "pm_add_vmr"})

#: The modeled functions each op can run (its call graph), so that a thread
#: carries registers only for those.  A thread with no ops is driven directly
#: (pagemap.sequential) and gets every function's registers.
OP_FUNCTIONS: dict[str, frozenset[str]] = {
    "write": frozenset({"user_access"}) | _FAULT,
    "read": frozenset({"user_access"}) | _FAULT,
    "munmap": frozenset({"munmap", "__vmr_free_pgs", "destroy_vmr", "pm_remove_vmr"}) | _SPLIT,
    "mprotect": frozenset({"mprotect"}) | _SPLIT,
    # munmap: the error path of MAP_POPULATE under populate-unmap-on-error (__do_munmap)
    "mmap": frozenset({"mmap", "pm_add_vmr", "merge_vmr", "munmap"}) | _FAULT,
    "exit": _TEARDOWN,
    "file_write": frozenset({"file_io"}) | _LOAD,
    "file_read": frozenset({"file_io"}) | _LOAD,
    "remove": frozenset({"pm_remove_contig", "shootdown_and_reset"}),
}


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
    date, clean, unlocked, no slot reference), the VMRs mapped at the start (as
    __do_mmap left them, in declaration order on pm_vmrs), the prefaulted PTEs
    (TLBs cold), the processes running, and each thread at its first op."""
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
    for p, process in enumerate(cfg.processes):
        m.set_pstate(p, PROC_RUNNING_S if process.mode == "scp" else PROC_RUNNING_M)
    for v, vmr in enumerate(cfg.vmrs):
        if not cfg.is_mapped(v):
            continue
        r = layout.decl_rec[v]
        flags = vmr.vm_flags if cfg.demand_paging else vmr.vm_flags | MAP_POPULATE
        for f, val in (("alive", 1), ("base", vmr.vm_base), ("end", vmr.vm_end),
                       ("foff", vmr.vm_foff), ("prot", vmr.vm_prot), ("flags", flags),
                       ("file", 1)):
            m.set_vf(r, f, val)
        pm_vmrs_insert_tail(m, r)
        if not cfg.prefault[v]:
            continue
        prot = pte_prot(vmr.vm_prot)
        for k in range(vmr.npages):
            i = vmr.first_idx + k
            if i not in cached:
                raise ValueError(f"VMR {vmr.name} is prefaulted but file page {i} is not preloaded")
            ppn = cached[i]
            if vmr.vm_flags & MAP_PRIVATE:
                ppn = take()
                m.set_pg(ppn, "sem", 0)
                m.set_pg(ppn, "data", m.store(i))
            vpn = vmr.base_vpn + k
            m.set_pt_present(vmr.proc, vpn)
            m.set_pte(vmr.proc, vpn, m.c.make_pte(ppn, PTE_P | prot))
    for t in range(len(cfg.threads)):
        dispatch(m.thread(t))
    return m.freeze()


__all__ = ["OP_FUNCTIONS", "Violation", "build_layout", "dispatch", "initial_state",
           "initial_value", "thread_functions"]

"""The static configuration of a run: what a scenario file describes.

Everything here is constant for a run; everything that changes lives in the
state vector of ``pagemap.machine``.  Parsing and validation of scenario files
is in ``pagemap.checker.scenario``; this module is the validated result.

VMRs are *declared* here (their geometry as the scenario gives it); the
struct vm_region instances of a run -- the declared ones once mapped, and the
pieces ``split_vmr`` cuts -- are records in the state vector, whose fields
change under ``vmr_lock`` (``pagemap.vmr``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from pagemap.vmr import PGSHIFT, VMR

#: The named repairs of the 2014 protocol (spec/findings.md).  The variant ``seed``
#: switches none on, ``fixed`` all of them.  Each is described in
#: spec/findings.md with the finding it repairs.
FIXES: dict[str, str] = {
    "removal-vmr-overlap": (
        "pm_remove_contig's PTE passes visit every VMR that overlaps "
        "[index, index + nr_pgs), not only those that map `index`"
    ),
    "removal-shootdown-wait": (
        "pm_remove_contig waits until every target core has flushed its TLB "
        "before it looks at dirty bits"
    ),
    "munmap-shootdown-wait": (
        "__do_munmap waits until every target core has flushed its TLB before "
        "it frees pages in pass 2"
    ),
    "munmap-fold-dirty": (
        "__vmr_free_pgs (munmap's second pass, unmap_and_destroy_vmrs) exchanges "
        "each PTE for 0 atomically and folds PTE_D into PG_DIRTY of a page-map page"
    ),
    "atomic-pte-update": (
        "PTE read-modify-writes racing the hardware's dirty-bit update use "
        "locked operations (clear PTE_P with atomic_and, zero with xchg, "
        "mprotect's permission change with a cmpxchg loop)"
    ),
    "shootdown-scp-remote": (
        "proc_tlbshootdown of a RUNNING_S process sends the flush to the core the "
        "process runs on, not only to the calling core"
    ),
    "hpf-load-unlocked": (
        "the page-fault path does not sleep holding vmr_lock: __handle_page_fault "
        "drops it around pm_load_page and looks the VMR up again, and MAP_POPULATE "
        "faults pages in after __do_mmap has dropped it"
    ),
    "removal-writeback-error": (
        "pm_remove_contig checks writepage's return value: a page whose writeback "
        "failed is marked dirty again and kept in the page map"
    ),
    "fileio-enomem": (
        "generic_file_read/write return pm_load_page's error instead of asserting "
        "that it succeeded"
    ),
    "split-vmr-under-pm-lock": (
        "split_vmr puts the new VMR on pm_vmrs and shrinks the old one in one pm_lock "
        "critical section, so that pm_remove_contig never sees a page without a VMR, nor a "
        "VMR that shrinks under its passes"
    ),
    "removal-fold-always": (
        "pm_remove_contig's third pass folds PTE_D of every VMR, not only of those "
        "whose vm_prot is writable now (mprotect keeps PTE_D)"
    ),
    "mprotect-advance": (
        "__do_mprotect moves on to the next VMR when one already has the new "
        "protection, instead of testing the same one again"
    ),
    "mmap-foff-first": (
        "__do_mmap sets vm_file and vm_foff before pm_add_vmr, so that pm_remove_contig never "
        "sees the new VMR with a file offset of 0"
    ),
    "populate-unmap-on-error": (
        "when MAP_POPULATE's fault fails, __do_mmap unmaps the VMR with __do_munmap "
        "(clear PTE_P, shoot the TLBs down, zero the PTEs) before destroy_vmr"
    ),
}

VARIANTS = ("seed", "fixed")


WITHOUT = "fixed-without-"


def resolve_variant(variant: str | list[str] | tuple[str, ...]) -> frozenset[str]:
    """The set of fixes a variant switches on; raises ValueError when unknown.

    "seed": none; "fixed": all; a fix name or a list of them: those;
    "fixed-without-NAME": all but one, to show that fix is needed."""
    if isinstance(variant, str):
        if variant == "seed":
            return frozenset()
        if variant == "fixed":
            return frozenset(FIXES)
        if variant.startswith(WITHOUT) and variant[len(WITHOUT):] in FIXES:
            return frozenset(FIXES) - {variant[len(WITHOUT):]}
        if variant in FIXES:
            return frozenset([variant])
        raise ValueError(f"unknown variant {variant!r} (seed, fixed, fixed-without-FIX, or a "
                         f"fix: {', '.join(FIXES)})")
    out = set()
    for name in variant:
        if name not in FIXES:
            raise ValueError(f"unknown fix {name!r} (known: {', '.join(FIXES)})")
        out.add(name)
    return frozenset(out)


def variant_name(fixes: frozenset[str]) -> str:
    if not fixes:
        return "seed"
    if fixes == frozenset(FIXES):
        return "fixed"
    missing = frozenset(FIXES) - fixes
    if len(missing) == 1 and len(FIXES) > 2:
        return WITHOUT + next(iter(missing))
    return "+".join(sorted(fixes))


@dataclass(frozen=True)
class Op:
    """One operation of a thread (spec/scenarios-format.md)."""

    op: str  # write | read | munmap | mprotect | mmap | exit | file_write | file_read | remove
    vmr: int = -1  # index into Config.vmrs (the declared VMR the op names)
    page: int = 0  # page within the declared VMR
    pages: int = 0  # munmap / mprotect: how many pages, from `page`
    index: int = 0  # file page index
    count: int = 0  # remove: nr_pgs
    prot: int = 0  # mprotect: the new protection


@dataclass(frozen=True)
class Thread:
    name: str
    proc: int  # process number, -1 for kernel-only threads
    ops: tuple[Op, ...]


#: Process modes (spec/scenarios-format.md): PROC_RUNNING_M, a core per thread; PROC_RUNNING_S,
#: the threads are uthreads multiplexed on one core.
MODES = ("mcp", "scp")


@dataclass(frozen=True)
class Process:
    name: str
    vmrs: tuple[int, ...]  # indices into Config.vmrs (declared VMRs)
    mode: str = "mcp"


@dataclass(frozen=True)
class Core:
    """A physical core.  ``proc`` is the process whose address space it runs
    (its TLB caches that process's pages), -1 for a kernel thread's core (no
    user TLB)."""

    name: str
    proc: int
    threads: tuple[int, ...]  # the threads whose home this core is


@dataclass(frozen=True)
class Config:
    name: str
    fixes: frozenset[str]
    word_bits: int
    file_pages: int
    pool_pages: int
    preload: tuple[int, ...]
    shootdown: str  # "async" | "sync"
    processes: tuple[Process, ...]
    vmrs: tuple[VMR, ...]  # declared VMRs (their geometry)
    prefault: tuple[bool, ...]  # per declared VMR
    threads: tuple[Thread, ...]
    ptr_arr_len: int = 10  # PTR_ARR_LEN in pm_remove_contig
    mapped: tuple[bool, ...] = ()  # per declared VMR: mapped at the start (default all)
    writepage: str = "ideal"  # [filesystem] writepage: "ideal" | "kfs"
    readpage: str = "ideal"  # [filesystem] readpage: "ideal" | "blocking" (ext2-like)
    enomem: bool = False  # [faults] enomem: every page allocation may fail
    demand_paging: bool = False  # [kernel] CONFIG_DEMAND_PAGING (off in config-default)
    # [kernel] spinlock_debug: sem_down asserts that no spinlock is held (what
    # CONFIG_SPINLOCK_DEBUG does); off, the sleep goes ahead as in config-default.
    spinlock_debug: bool = True
    expect: dict[str, dict[str, str]] = field(default_factory=dict, compare=False, hash=False)

    def fix(self, name: str) -> bool:
        assert name in FIXES, name
        return name in self.fixes

    @property
    def variant(self) -> str:
        return variant_name(self.fixes)

    def is_mapped(self, v: int) -> bool:
        return self.mapped[v] if self.mapped else True

    @cached_property
    def _threads_of(self) -> tuple[tuple[int, ...], ...]:
        return tuple(
            tuple(t for t, th in enumerate(self.threads) if th.proc == p)
            for p in range(len(self.processes))
        )

    def proc_threads(self, proc: int) -> tuple[int, ...]:
        """The user threads that run in process ``proc``."""
        return self._threads_of[proc]

    # -- cores -----------------------------------------------------------------------
    @cached_property
    def cores(self) -> tuple[Core, ...]:
        """Every core: one per thread of an MCP (its vcore), one per SCP (shared by its
        uthreads), one per kernel-only thread."""
        out: list[Core] = []
        scp_core: dict[int, int] = {}
        for t, th in enumerate(self.threads):
            if th.proc >= 0 and self.processes[th.proc].mode == "scp":
                if th.proc not in scp_core:
                    scp_core[th.proc] = len(out)
                    out.append(Core(f"{self.processes[th.proc].name}.cpu", th.proc,
                                    self.proc_threads(th.proc)))
                continue
            out.append(Core(th.name, th.proc, (t,)))
        return tuple(out)

    @cached_property
    def home(self) -> tuple[int, ...]:
        """Each thread's home core."""
        where = {}
        for c, core in enumerate(self.cores):
            for t in core.threads:
                where[t] = c
        return tuple(where[t] for t in range(len(self.threads)))

    def proc_cores(self, proc: int) -> tuple[int, ...]:
        """The cores that run process ``proc``'s user code."""
        return tuple(c for c, core in enumerate(self.cores) if core.proc == proc)

    # -- address spaces ----------------------------------------------------------------
    @cached_property
    def aspace(self) -> tuple[tuple[int, ...], ...]:
        """Per process, the virtual page numbers its declared VMRs cover, sorted:
        the pages that can have a PTE (and a TLB entry) in a run."""
        out = []
        for p, proc in enumerate(self.processes):
            vpns: set[int] = set()
            for v in proc.vmrs:
                vmr = self.vmrs[v]
                vpns.update(range(vmr.vm_base >> PGSHIFT, vmr.vm_end >> PGSHIFT))
            out.append(tuple(sorted(vpns)))
        return tuple(out)

    @cached_property
    def page_names(self) -> tuple[dict[int, str], ...]:
        """Per process, a name for each virtual page: `v1+k`, the declared VMR and the
        page within it (an address keeps its name after a split)."""
        out = []
        for proc in self.processes:
            names: dict[int, str] = {}
            for v in proc.vmrs:
                vmr = self.vmrs[v]
                for k in range(vmr.npages):
                    names.setdefault((vmr.vm_base >> PGSHIFT) + k, f"{vmr.name}+{k}")
            out.append(names)
        return tuple(out)

    @cached_property
    def vmr_records(self) -> tuple[int, ...]:
        """Per process, how many struct vm_region records a run can need at once: the
        declared VMRs, plus two per op that may split (isolate_vmrs splits at both
        ends of its range)."""
        out = []
        for p, proc in enumerate(self.processes):
            splits = sum(2 for t in self.proc_threads(p) for op in self.threads[t].ops
                         if op.op in ("munmap", "mprotect"))
            out.append(len(proc.vmrs) + splits)
        return tuple(out)

    def op_vpn(self, op: Op) -> int:
        """The virtual page an op on (declared VMR, page) names."""
        return (self.vmrs[op.vmr].vm_base >> PGSHIFT) + op.page

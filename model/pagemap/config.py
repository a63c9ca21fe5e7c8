"""The static configuration of a run: what a scenario file describes.

Everything here is constant for a run; everything that changes lives in the
state vector of ``pagemap.machine``.  Parsing and validation of scenario files
is in ``pagemap.checker.scenario``; this module is the validated result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from pagemap.vmr import VMR

#: The named repairs of the 2014 protocol (DESIGN §2.3).  The variant ``seed``
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
        "__do_munmap's second pass exchanges each PTE for 0 atomically and "
        "folds PTE_D into PG_DIRTY of a page-map page"
    ),
    "atomic-pte-update": (
        "PTE read-modify-writes racing the hardware's dirty-bit update use "
        "locked operations (clear PTE_P with atomic_and, zero with xchg)"
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
        raise ValueError(f"unknown variant {variant!r} (seed, fixed, or a fix: {', '.join(FIXES)})")
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
    """One operation of a thread (DESIGN §3)."""

    op: str  # write | read | munmap | file_write | file_read | remove
    vmr: int = -1  # index into Config.vmrs
    page: int = 0  # page within the VMR
    index: int = 0  # file page index
    count: int = 0  # remove: nr_pgs


@dataclass(frozen=True)
class Thread:
    name: str
    proc: int  # process number, -1 for kernel-only threads
    ops: tuple[Op, ...]


@dataclass(frozen=True)
class Process:
    name: str
    vmrs: tuple[int, ...]  # indices into Config.vmrs


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
    vmrs: tuple[VMR, ...]
    prefault: tuple[bool, ...]  # per VMR
    threads: tuple[Thread, ...]
    ptr_arr_len: int = 10  # PTR_ARR_LEN in pm_remove_contig
    expect: dict[str, dict[str, str]] = field(default_factory=dict, compare=False, hash=False)

    def fix(self, name: str) -> bool:
        assert name in FIXES, name
        return name in self.fixes

    @property
    def variant(self) -> str:
        return variant_name(self.fixes)

    @cached_property
    def _threads_of(self) -> tuple[tuple[int, ...], ...]:
        return tuple(
            tuple(t for t, th in enumerate(self.threads) if th.proc == p)
            for p in range(len(self.processes))
        )

    def proc_threads(self, proc: int) -> tuple[int, ...]:
        """The user threads (cores) that run in process ``proc``."""
        return self._threads_of[proc]

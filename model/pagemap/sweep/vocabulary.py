"""The op vocabulary of the sweep: one entry per op of the scenario format
(the scenario format of spec/scenarios-format.md), saying which instances of it a world admits and what they refer to.

A *world* is a scenario without its threads: file size, preloaded pages, the
kernel sections, the processes and their VMRs.  Adding an op to the scenario
format means adding one ``OpKind`` here (tests/test_sweep.py fails while an op
the parser accepts has no entry): where a thread running it must be placed,
its instances in a world, the file pages an instance refers to (for page
compaction, spec/sweep.md), whether it walks a VMR list (then VMR and process
order is observable and no renaming of them is tried), how many pages it may
allocate and keep (for sizing the pool), and whether a scenario may hold it
only once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Op = dict[str, Any]

#: Where a thread running an op must be: ``kernel`` anywhere (a kernel-only
#: thread or a thread of any process), ``vmr`` in the process of the VMR the op
#: names, ``process`` in some process (exit destroys the thread's own).
KERNEL, VMR, PROCESS = "kernel", "vmr", "process"


@dataclass(frozen=True)
class World:
    """A scenario dict without threads, as the op instances need it."""

    file_pages: int
    vmrs: tuple[tuple[str, dict[str, Any]], ...]  # (process name, VMR dict), declaration order

    @staticmethod
    def of(scenario: dict[str, Any]) -> World:
        return World(
            scenario["file_pages"],
            tuple((p["name"], v) for p in scenario.get("process", []) for v in p.get("vmr", [])),
        )

    def vmr(self, name: str) -> tuple[str, dict[str, Any]]:
        for proc, v in self.vmrs:
            if v["name"] == name:
                return proc, v
        raise KeyError(name)


@dataclass(frozen=True)
class Choices:
    """What a scope says about op instances beyond the world: whether munmap
    and mprotect also take every part of a VMR (``ranges = "any"``) or only the
    whole (``"whole"``), and the protections mprotect may set."""

    ranges: str = "any"
    mprotect_prot: tuple[tuple[str, ...], ...] = (("read",), ("read", "write"))


@dataclass(frozen=True)
class OpKind:
    name: str
    placement: str  # KERNEL | VMR | PROCESS
    #: Every instance of the op in a world (op dicts as in a scenario file).
    instances: Callable[[World, Choices], Iterator[Op]]
    #: The file pages an instance refers to (for page compaction).
    pages: Callable[[Op, World], set[int]]
    #: The op never walks a list of VMRs, so the order of VMRs and processes
    #: is not observable through it (remove walks pm_vmrs in order, exit and
    #: mmap's merge walk the process's VMRs).
    order_free: bool
    #: Pages the op may allocate and leave allocated (page-cache page, private copy).
    allocs: Callable[[Op, World], int]
    #: A scenario may hold the instance at most once (the parser rejects an
    #: mmap of one VMR twice).
    once: bool = False

    @property
    def user(self) -> bool:
        """Runs in a process (a user thread's syscall or access)."""
        return self.placement != KERNEL


def _vmr_range(op: Op, w: World) -> set[int]:
    v = w.vmr(op["vmr"])[1]
    return set(range(v["file_page"], v["file_page"] + v["pages"]))


def _mmap_pages(op: Op, w: World) -> set[int]:
    """The VMR's pages, and [0, pages): __do_mmap puts the VMR on pm_vmrs
    before it sets vm_foff, so for a while it maps the file from page 0 (F14)."""
    return _vmr_range(op, w) | set(range(w.vmr(op["vmr"])[1]["pages"]))


def _access(kind: str, prot: str) -> Callable[[World, Choices], Iterator[Op]]:
    def gen(w: World, c: Choices) -> Iterator[Op]:
        for _, v in w.vmrs:
            if prot in v["prot"]:
                for k in range(v["pages"]):
                    yield {"op": kind, "vmr": v["name"], "page": k}
    return gen


def _parts(v: dict[str, Any], c: Choices) -> Iterator[dict[str, int]]:
    """The whole VMR (no page/pages: the parser's default), then with
    ``ranges = "any"`` every proper part [page, page + pages)."""
    yield {}
    if c.ranges == "any":
        for page in range(v["pages"]):
            for pages in range(1, v["pages"] - page + 1):
                if pages < v["pages"]:
                    yield {"page": page, "pages": pages}


def _munmap(w: World, c: Choices) -> Iterator[Op]:
    for _, v in w.vmrs:
        for part in _parts(v, c):
            yield {"op": "munmap", "vmr": v["name"], **part}


def _mprotect(w: World, c: Choices) -> Iterator[Op]:
    for _, v in w.vmrs:
        for prot in c.mprotect_prot:
            for part in _parts(v, c):
                yield {"op": "mprotect", "vmr": v["name"], "prot": list(prot), **part}


def _mmap(w: World, c: Choices) -> Iterator[Op]:
    """Only a VMR declared ``mapped = false`` can be mmapped."""
    for _, v in w.vmrs:
        if v.get("mapped") is False:
            yield {"op": "mmap", "vmr": v["name"]}


def _exit(w: World, c: Choices) -> Iterator[Op]:
    yield {"op": "exit"}


def _file_op(kind: str) -> Callable[[World, Choices], Iterator[Op]]:
    def gen(w: World, c: Choices) -> Iterator[Op]:
        for i in range(w.file_pages):
            yield {"op": kind, "index": i}
    return gen


def _remove(w: World, c: Choices) -> Iterator[Op]:
    """Every range [index, index + count) of the file with count >= 1."""
    for i in range(w.file_pages):
        for n in range(1, w.file_pages - i + 1):
            yield {"op": "remove", "index": i, "count": n}


def _none(op: Op, w: World) -> set[int]:
    return set()


def _const(n: int) -> Callable[[Op, World], int]:
    return lambda op, w: n


OPS: dict[str, OpKind] = {
    k.name: k
    for k in (
        OpKind("write", VMR, _access("write", "write"), _vmr_range, True, _const(2)),
        OpKind("read", VMR, _access("read", "read"), _vmr_range, True, _const(2)),
        OpKind("munmap", VMR, _munmap, _vmr_range, True, _const(0)),
        OpKind("mprotect", VMR, _mprotect, _vmr_range, True, _const(0)),
        # MAP_POPULATE faults every page in: a page-cache page and a private copy each.
        OpKind("mmap", VMR, _mmap, _mmap_pages, False,
               lambda op, w: 2 * w.vmr(op["vmr"])[1]["pages"], once=True),
        OpKind("exit", PROCESS, _exit, _none, False, _const(0)),
        OpKind("file_write", KERNEL, _file_op("file_write"), lambda op, w: {op["index"]}, True,
               _const(1)),
        OpKind("file_read", KERNEL, _file_op("file_read"), lambda op, w: {op["index"]}, True,
               _const(1)),
        OpKind("remove", KERNEL, _remove,
               lambda op, w: set(range(op["index"], op["index"] + op["count"])), False, _const(0)),
    )
}


def instances(w: World, kinds: tuple[str, ...], c: Choices) -> list[Op]:
    """Every op of the given kinds in world w, in a fixed order."""
    return [op for name in kinds for op in OPS[name].instances(w, c)]


def runs_in(op: Op, w: World, place: str | None) -> bool:
    """Whether a thread placed in process ``place`` (None: a kernel-only
    thread) can run op."""
    kind = OPS[op["op"]].placement
    if kind == KERNEL:
        return True
    if kind == PROCESS:
        return place is not None
    return w.vmr(op["vmr"])[0] == place

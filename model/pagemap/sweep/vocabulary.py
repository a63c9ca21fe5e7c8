"""The op vocabulary of the sweep: one entry per op of the scenario format
(DESIGN §3), saying which instances of it a world admits and what they refer to.

A *world* is a scenario without its threads: file size, preloaded pages, the
processes and their VMRs.  Adding an op to the scenario format means adding one
``OpKind`` here (tests/test_sweep.py fails while an op the parser accepts has no
entry): its instances in a world, the file pages an instance refers to (for
page compaction, spec/sweep.md), whether it walks a VMR list (then VMR and
process order is observable and no renaming of them is tried), and how many
pages it may allocate and keep (for sizing the pool).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Op = dict[str, Any]


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
class OpKind:
    name: str
    #: Runs through a mapping: the thread must belong to the VMR's process.
    user: bool
    #: Every instance of the op in a world (op dicts as in a scenario file).
    instances: Callable[[World], Iterator[Op]]
    #: The file pages an instance names (beyond the VMR's own pages).
    pages: Callable[[Op, World], range]
    #: The op never walks a list of VMRs, so the order of VMRs and processes
    #: is not observable through it (remove walks pm_vmrs in order).
    order_free: bool
    #: Pages the op may allocate and leave allocated (page-cache page, private copy).
    allocs: int


def _vmr_pages(op: Op, w: World) -> range:
    v = w.vmr(op["vmr"])[1]
    return range(v["file_page"], v["file_page"] + v["pages"])


def _access(kind: str, prot: str) -> Callable[[World], Iterator[Op]]:
    def gen(w: World) -> Iterator[Op]:
        for _, v in w.vmrs:
            if prot in v["prot"]:
                for k in range(v["pages"]):
                    yield {"op": kind, "vmr": v["name"], "page": k}
    return gen


def _munmap(w: World) -> Iterator[Op]:
    for _, v in w.vmrs:
        yield {"op": "munmap", "vmr": v["name"]}


def _file_op(kind: str) -> Callable[[World], Iterator[Op]]:
    def gen(w: World) -> Iterator[Op]:
        for i in range(w.file_pages):
            yield {"op": kind, "index": i}
    return gen


def _remove(w: World) -> Iterator[Op]:
    """Every range [index, index + count) of the file with count >= 1."""
    for i in range(w.file_pages):
        for c in range(1, w.file_pages - i + 1):
            yield {"op": "remove", "index": i, "count": c}


OPS: dict[str, OpKind] = {
    k.name: k
    for k in (
        OpKind("write", True, _access("write", "write"), _vmr_pages, True, 2),
        OpKind("read", True, _access("read", "read"), _vmr_pages, True, 2),
        OpKind("munmap", True, _munmap, _vmr_pages, True, 0),
        OpKind("file_write", False, _file_op("file_write"),
               lambda op, w: range(op["index"], op["index"] + 1), True, 1),
        OpKind("file_read", False, _file_op("file_read"),
               lambda op, w: range(op["index"], op["index"] + 1), True, 1),
        OpKind("remove", False, _remove,
               lambda op, w: range(op["index"], op["index"] + op["count"]), False, 0),
    )
}


def instances(w: World, kinds: tuple[str, ...]) -> list[Op]:
    """Every op of the given kinds in world w, in a fixed order."""
    return [op for name in kinds for op in OPS[name].instances(w)]


def op_process(op: Op, w: World) -> str | None:
    """The process a thread running op must belong to (None: any, or none)."""
    return w.vmr(op["vmr"])[0] if OPS[op["op"]].user else None

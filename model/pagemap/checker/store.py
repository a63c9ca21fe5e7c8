"""How the explorer stores the states it has seen: collapse compression.

A state is ~300 ints, but it is made of parts that change independently: the
page map and file (globals, slots, store, ghost), the struct pages, the
processes' page tables and TLBs, and each thread's registers.  Like SPIN's
COLLAPSE mode, the store interns each part in a table of its own and keeps a
state as the vector of its parts' numbers, packed into bytes (4 bytes a
part).  The number of distinct parts is tiny next to the number of states,
so a stored state costs its packed key plus the dictionary entry.

This is exact: two states get the same key if and only if all their parts
are equal, so no state is ever confused with another (no hash compaction).
"""

from __future__ import annotations

import itertools
from array import array

from pagemap.machine import Layout

State = tuple[int, ...]

#: A part number a replica store does not know yet (``lookup_after``).
MISSING = 0xFFFFFFFF


def components(layout: Layout) -> list[tuple[int, int]]:
    """The parts of the state vector, as [start, end) ranges covering it."""
    # Fewer, larger parts measured faster than one part per struct page (4
    # interned tuples per successor instead of 11), at no visible memory cost.
    cuts = {0, layout.page0, layout.proc0, layout.size}
    cuts.update(layout.thread0)
    edges = sorted(cuts)
    return [(a, b) for a, b in itertools.pairwise(edges) if a < b]


class StateStore:
    """Interns the parts of states; a key is the packed part numbers."""

    def __init__(self, layout: Layout) -> None:
        self.ranges = components(layout)
        self.tables: list[dict[State, int]] = [{} for _ in self.ranges]
        self.parts: list[list[State]] = [[] for _ in self.ranges]
        thread_start = {a: k for k, (a, _) in enumerate(self.ranges)}
        #: the part holding thread t's registers; the parts before the first
        #: thread are the shared ones.
        self.thread_part = [thread_start[b] for b in layout.thread0]
        self.shared = min(self.thread_part) if self.thread_part else len(self.ranges)
        self._slices = [slice(a, b) for a, b in self.ranges]
        #: The parts thread t's step may change (the shared ones and its own),
        #: and last those a flush may change (the shared ones).
        shared = list(range(self.shared))
        self._moved = [(*shared, k) for k in self.thread_part] + [tuple(shared)]

    def _intern(self, k: int, part: State) -> int:
        table = self.tables[k]
        i = table.get(part)
        if i is None:
            i = table[part] = len(self.parts[k])
            self.parts[k].append(part)
        return i

    def key(self, state: State) -> bytes:
        return array("I", [self._intern(k, state[sl]) for k, sl in enumerate(self._slices)]).tobytes()

    def key_after(self, state: State, before: array, thread: int | None) -> bytes:
        """The key of a successor of the state whose part numbers are ``before``:
        one thread's step changes only the shared parts and that thread's
        registers, so the other threads' part numbers are reused as they are."""
        idx = array("I", before)
        slices = self._slices
        for k in range(self.shared):
            idx[k] = self._intern(k, state[slices[k]])
        if thread is not None:
            k = self.thread_part[thread]
            idx[k] = self._intern(k, state[slices[k]])
        return idx.tobytes()

    # -- a replica in a worker of the parallel search (pagemap.checker.parallel) ------
    def lookup_after(self, state: State, before: array, thread: int | None
                     ) -> tuple[array, list[tuple[int, State]]]:
        """``key_after`` without interning: the part numbers this store knows,
        and the parts it does not know as (component, part), their numbers left
        at MISSING for the store that owns the numbering to fill in."""
        idx = array("I", before)
        missing: list[tuple[int, State]] = []
        slices, tables = self._slices, self.tables
        for k in self._moved[-1 if thread is None else thread]:
            part = state[slices[k]]
            i = tables[k].get(part)
            if i is None:
                idx[k] = MISSING
                missing.append((k, part))
            else:
                idx[k] = i
        return idx, missing

    def resolve(self, idx: bytes, missing: list[tuple[int, State]]) -> bytes:
        """The key of a successor a replica looked up: its missing parts interned here."""
        if not missing:
            return idx
        a = array("I")
        a.frombytes(idx)
        for k, part in missing:
            a[k] = self._intern(k, part)
        return a.tobytes()

    def parts_since(self, known: list[int]) -> list[list[State]]:
        """The parts interned after the first ``known[k]`` of each component."""
        return [p[n:] for p, n in zip(self.parts, known, strict=True)]

    def add_parts(self, new: list[list[State]]) -> None:
        """Append parts numbered by the owning store (``parts_since``), in order."""
        for k, parts in enumerate(new):
            table, known = self.tables[k], self.parts[k]
            for part in parts:
                table[part] = len(known)
                known.append(part)

    def state(self, key: bytes) -> tuple[State, array]:
        """The state a key stands for, and its part numbers."""
        idx = array("I")
        idx.frombytes(key)
        out: list[int] = []
        for parts, i in zip(self.parts, idx, strict=True):
            out.extend(parts[i])
        return tuple(out), idx

    def part_count(self) -> int:
        return sum(len(p) for p in self.parts)

"""What a partial-order reduction with static footprints could save: a measurement.

Ample sets (Peled's conditions; Godefroid's persistent sets): from a state,
expand only thread t's next transition a when

- C1: a is independent of every transition another thread, or a flush IPI,
  can take before t moves (neither writes a slot the other reads or writes).
  While t holds a spinlock, no other thread gets past its acquire of that
  lock before t moves, so with ``lock_aware`` a thread's future stops there
  (the acquire only reads the lock word): the one state-dependent refinement
  of the table, and the one the C's lock discipline offers;
- C2: a is invisible: it writes no slot a single-state invariant reads, and
  does not finish its thread (no-lost-write is judged when all are done);
- C3: a does not close a cycle: in a breadth-first search, its successor is
  not already stored (else the state is expanded in full).

A *static* footprint table gives, for each (thread, pc), the slots the
transition starting there may read and may write, and for each pc the pcs the
thread may go on to.  A sound table must contain every slot the transition
touches in every reachable state, so no table read from the code can be
smaller than the union over the reachable states themselves.  This module
computes that union from a complete search (every thread's transition from
every stored state, run again with its reads and writes tracked), then runs
the reduced search with it (``Explorer.explore(ample=...)``).  The reduced
count is therefore an upper bound on what any static-footprint reduction can
save on a scenario; it is not a reduction the checker uses (it needs the
full search first).  ``movers`` counts, on the same table, what a reduction
by coarser atomicity (Lipton's movers) could merge.  Figures: spec/bench.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from pagemap.checker.explore import Explorer
from pagemap.checker.invariants import _plan
from pagemap.checker.scenario import load
from pagemap.config import Config
from pagemap.machine import DONE_PC, PROC_DYING, Layout, Machine, ThreadView
from pagemap.sched import DEATH_PC


class TrackedList(list):  # type: ignore[type-arg]
    """A state vector that records which offsets are read and written."""

    def __init__(self, values: object) -> None:
        super().__init__(values)  # type: ignore[call-overload]
        self.reads: set[int] = set()
        self.writes: set[int] = set()

    def _offsets(self, i: int | slice) -> range | tuple[int]:
        return range(*i.indices(len(self))) if isinstance(i, slice) else (i,)

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        self.reads.update(self._offsets(i))
        return super().__getitem__(i)

    def __setitem__(self, i, value) -> None:  # type: ignore[no-untyped-def]
        self.writes.update(self._offsets(i))
        super().__setitem__(i, value)


class TrackingMachine(Machine):
    """A Machine whose state vector is a TrackedList (the same steps run on it)."""

    __slots__ = ("_v",)

    @property  # type: ignore[override]
    def v(self) -> list[int]:
        return self._v  # type: ignore[return-value]

    @v.setter
    def v(self, values: list[int] | None) -> None:
        self._v = None if values is None else TrackedList(values)  # type: ignore[assignment]


def bits(offsets: set[int] | range) -> int:
    out = 0
    for i in offsets:
        out |= 1 << i
    return out


@dataclass
class Table:
    """Footprints per (thread, pc): slots read and written (bit sets), whether
    the transition may finish the thread, the pcs it may lead to."""

    reads: dict[tuple[int, int], int] = field(default_factory=dict)
    writes: dict[tuple[int, int], int] = field(default_factory=dict)
    finishes: set[tuple[int, int]] = field(default_factory=set)
    nexts: dict[tuple[int, int], set[int]] = field(default_factory=dict)
    #: the spinlock words the thread holds in every stored state it is at that pc
    #: in, with the one the step acquires (its accesses are atomic with the acquire)
    held: dict[tuple[int, int], frozenset[int]] = field(default_factory=dict)
    #: how many stored states have the thread at that pc with a transition to take
    visits: dict[tuple[int, int], int] = field(default_factory=dict)
    #: of reads / writes, what the death of the thread's process (proc_death,
    #: taken in user mode from that pc instead of its step) touches
    death_reads: dict[tuple[int, int], int] = field(default_factory=dict)
    death_writes: dict[tuple[int, int], int] = field(default_factory=dict)


def _dies(layout: Layout, s: tuple[int, ...], t: int) -> bool:
    """Whether thread t's transition from s is its death (as in Explorer._run:
    a finished thread has none)."""
    ps = layout.pstate_off[t]
    return (s[layout.thread0[t]] != DONE_PC and not s[layout.cpu[t]] and ps >= 0
            and s[ps] == PROC_DYING)


def _acquired(layout: Layout, t: int, pc: int) -> int:
    """The word of the spinlock thread t's step at ``pc`` acquires (Step.lock), or -1."""
    st = layout.steps[pc]
    return layout.lock_off[t][st.lock] if st is not None and st.lock is not None else -1


def _held(layout: Layout, s: tuple[int, ...], t: int) -> frozenset[int]:
    """The spinlock words thread t holds in s."""
    return frozenset(o for o in layout.spinlocks if s[o] == t + 1)


def _guard(layout: Layout, s: tuple[int, ...], t: int, dies: bool) -> set[int]:
    """The slots Explorer._run reads from the state before the step runs (its
    pc, its core and that core's occupant, the SCP's in-kernel word, the
    process state, and the spinlock the step names, if it names one)."""
    k = s[layout.cpu[t]]
    g = {layout.thread0[t], layout.cpu[t], layout.occ[k - 1 if k else layout.home[t]]}
    g.update(off for off in (layout.scp_inkern[t], layout.pstate_off[t]) if off >= 0)
    lock = _acquired(layout, t, DEATH_PC if dies else s[layout.thread0[t]])
    if lock >= 0:
        g.add(lock)
    return g


def searched(cfg: Config, replace: dict | None = None) -> Explorer:
    """An explorer that has searched ``cfg`` completely (which must pass)."""
    full = Explorer(cfg, contracts=False, replace=replace)
    out = full.explore(progress=False)
    if out.verdict != "pass":
        raise ValueError(f"footprints need a complete search; it gave {out.verdict}")
    return full


def footprint_table(cfg: Config, replace: dict | None = None) -> tuple[Table, int]:
    """The exact footprints over the reachable space of ``cfg`` (which must pass),
    and its number of states."""
    full = searched(cfg, replace)
    return table_of(full, replace), full.progress_so_far()[0]


def table_of(full: Explorer, replace: dict | None = None) -> Table:
    """The footprints of every transition from the states ``full`` stored."""
    ex = Explorer(full.cfg, contracts=False, replace=replace)
    tm = TrackingMachine(ex.layout, ())
    ex._m, ex._tv = tm, [ThreadView(tm, t) for t in range(ex.nthreads)]
    layout, table = ex.layout, Table()
    for s in full.stored_states():
        for t in range(ex.nthreads):
            key = (t, s[layout.thread0[t]])
            if key[1] != DONE_PC:
                held = _held(layout, s, t) | {_acquired(layout, t, key[1])} - {-1}
                table.held[key] = table.held.get(key, held) & held
            dies, enabled = _dies(layout, s, t), False
            for branch in (0, 1):
                tm.v = None
                nxt = ex.step(s, t, branch)
                reads, writes = _guard(layout, s, t, dies), set()
                if tm.v is not None:
                    reads |= tm.v.reads  # type: ignore[attr-defined]
                    writes |= tm.v.writes  # type: ignore[attr-defined]
                table.reads[key] = table.reads.get(key, 0) | bits(reads)
                table.writes[key] = table.writes.get(key, 0) | bits(writes)
                if dies:
                    table.death_reads[key] = table.death_reads.get(key, 0) | bits(reads)
                    table.death_writes[key] = table.death_writes.get(key, 0) | bits(writes)
                if nxt is not None:
                    enabled = True
                    table.nexts.setdefault(key, set()).add(nxt[layout.thread0[t]])
                    if nxt[layout.thread0[t]] == DONE_PC:
                        table.finishes.add(key)
                if not ex.chose:
                    break
            if enabled:
                table.visits[key] = table.visits.get(key, 0) + 1
    return table


class StaticAmple:
    """The ample-set choice of a footprint table: for a state, the threads whose
    transition alone may be expanded (C1 and C2; the explorer applies C3).
    ``lock_aware``: the other threads' futures stop at the acquire of a
    spinlock the candidate thread holds (module docstring, C1)."""

    def __init__(self, layout: Layout, table: Table, lock_aware: bool = False) -> None:
        self.layout, self.table, self.lock_aware = layout, table, lock_aware
        self._futures: dict[tuple[int, int, frozenset[int]], tuple[int, int]] = {}
        P = _plan(layout)
        n = layout.cfg.file_pages
        visible = set(P.holds) | set(P.kref[1:]) | set(P.data[1:]) | {P.pm_lock, P.num_pages}
        visible |= {off for off, _ in P.ptes} | {off for off, _ in P.tlbs}
        for start in (layout.slot0, layout.store0, layout.last0):
            visible |= set(range(start, start + n))
        self.visible = bits(visible)
        # A flush IPI may be queued at any time: its footprint counts always.
        self.flush = 0
        for c, off in layout.flush.items():
            self.flush |= bits({off, *layout.tlb_off[c].values()})

    def future(self, u: int, pc: int, held: frozenset[int]) -> tuple[int, int]:
        """What thread u may read and write from ``pc`` on while the spinlock words
        ``held`` stay taken: the walk of the pcs stops at an acquire of one of
        them, which can only spin (read the lock word) until the holder moves,
        unless u's process dies there (a death at that pc counts).  With nothing
        held, everything u may touch from ``pc`` on.  Memoised."""
        key = (u, pc, held)
        if key not in self._futures:
            tb = self.table
            r = w = 0
            seen, todo = set(), [pc]
            while todo:
                q = todo.pop()
                if q in seen:
                    continue
                seen.add(q)
                lock = _acquired(self.layout, u, q)
                if lock in held:
                    r |= 1 << lock | tb.death_reads.get((u, q), 0)
                    w |= tb.death_writes.get((u, q), 0)
                    continue
                r |= tb.reads.get((u, q), 0)
                w |= tb.writes.get((u, q), 0)
                todo.extend(tb.nexts.get((u, q), ()))
            self._futures[key] = (r, w)
        return self._futures[key]

    def __call__(self, s: tuple[int, ...]) -> Iterator[int]:
        tb, L = self.table, self.layout
        pcs = [s[b] for b in L.thread0]
        for t, pc in enumerate(pcs):
            key = (t, pc)
            if pc == DONE_PC or key not in tb.reads or key in tb.finishes:
                continue
            r, w = tb.reads[key], tb.writes[key]
            if w & (self.visible | self.flush) or self.flush & r:
                continue
            held = _held(L, s, t) if self.lock_aware else frozenset()
            if all(not (w & (fr | fw) or fw & r)
                   for fr, fw in (self.future(u, q, held) for u, q in enumerate(pcs) if u != t)):
                yield t


def movers(layout: Layout, table: Table) -> dict:
    """How much a Lipton reduction (coarser atomicity by movers: Lipton 1975;
    Flanagan and Qadeer's lock-based movers) could find to merge.  A transition
    is counted a *mover* when every slot it touches is a spinlock word (an
    acquire moves right, a release left; the only other readers of a lock word
    are the sleep checks, which compare it with their own thread's id), or
    touched by no other thread, or only read by everyone, or protected: some
    lock is held at every transition of every thread that touches it.  A
    reduction may run a mover together with the step after it; the other
    transitions are points where the threads must be interleaved.  Generous on
    purpose (an upper bound on what it finds): a release is counted with the
    movers, and whether a transition may be disabled is not asked.  Returns how many of the stored states' transitions
    (one per state and enabled thread) are movers, which (thread, pc) are, and
    for the rest the slots that most often made them not."""
    # Per slot, once: the threads that touch it, those that write it, and the
    # locks held at every transition that touches it.
    locks = frozenset(layout.spinlocks)
    touchers: dict[int, set[int]] = {}
    writers: dict[int, set[int]] = {}
    common: dict[int, frozenset[int]] = {}
    for key, r in table.reads.items():
        w = table.writes.get(key, 0)
        for i in _offsets(r | w):
            touchers.setdefault(i, set()).add(key[0])
            if w >> i & 1:
                writers.setdefault(i, set()).add(key[0])
            common[i] = common.get(i, locks) & table.held.get(key, frozenset())

    def conflict(i: int, t: int, wrote: bool) -> bool:
        if i in locks or touchers[i] == {t}:
            return False
        if not wrote and not writers.get(i, set()) - {t}:
            return False  # read here, written by no other thread
        return not common[i]

    blame: dict[str, int] = {}
    mover_keys: set[tuple[int, int]] = set()
    moving = total = 0
    for key, n in table.visits.items():
        if key not in table.reads:
            continue
        w = table.writes.get(key, 0)
        total += n
        bad = next((i for i in _offsets(table.reads[key] | w)
                    if conflict(i, key[0], bool(w >> i & 1))), None)
        if bad is None:
            moving += n
            mover_keys.add(key)
        else:
            blame[layout.names[bad]] = blame.get(layout.names[bad], 0) + n
    return {"transitions": total, "movers": moving, "keys": mover_keys,
            "blame": sorted(blame.items(), key=lambda kv: -kv[1])}


def _offsets(mask: int) -> Iterator[int]:
    """The offsets of the set bits of a footprint, lowest first."""
    i = 0
    while mask:
        if mask & 1:
            yield i
        mask >>= 1
        i += 1


def states_after_movers(full: Explorer, keys: set[tuple[int, int]]) -> int:
    """How many of the states ``full`` (a complete search, ``searched``) stored are
    reached by a mover transition (``keys``, from ``movers``): a Lipton reduction
    skips only states in which some thread has just taken a right mover, so at
    most these (a generous bound: a state also reached by another transition may
    stay)."""
    thread0 = full.layout.thread0
    hit: set[tuple[int, ...]] = set()
    for s in full.stored_states():
        for t in range(full.nthreads):
            if (t, s[thread0[t]]) in keys:
                for branch in (0, 1):
                    nxt = full.step(s, t, branch)
                    if nxt is not None and nxt != s:
                        hit.add(nxt)
                    if not full.chose:
                        break
    return len(hit)


def bound(cfg: Config) -> dict:
    """States of the full search and of the reduced ones with the exact table,
    without and with the lock-aware futures."""
    t0 = time.monotonic()
    searched_full = searched(cfg)
    table, full = table_of(searched_full), searched_full.progress_so_far()[0]
    t1 = time.monotonic()
    ex = Explorer(cfg, contracts=False)
    out = ex.explore(progress=False, ample=StaticAmple(ex.layout, table))
    ex = Explorer(cfg, contracts=False)
    locked = ex.explore(progress=False, ample=StaticAmple(ex.layout, table, lock_aware=True))
    mv = movers(ex.layout, table)
    after = states_after_movers(searched_full, mv["keys"])
    return {"after_movers": after, "full": full, "reduced": out.states, "verdict": out.verdict,
            "lock_aware": locked.states, "lock_aware_verdict": locked.verdict,
            "movers": mv["movers"], "transitions": mv["transitions"], "blame": mv["blame"][:5],
            "table_seconds": t1 - t0, "reduced_seconds": time.monotonic() - t1}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario", nargs="+")
    ap.add_argument("--variant", default="fixed")
    args = ap.parse_args(argv)
    for path in args.scenario:
        r = bound(load(path, args.variant))
        print(f"{path}: full {r['full']:,} states, reduced {r['reduced']:,} ({r['verdict']}), "
              f"{r['full'] / r['reduced']:.3f}x fewer; lock-aware {r['lock_aware']:,} "
              f"({r['lock_aware_verdict']}), {r['full'] / r['lock_aware']:.3f}x; "
              f"table {r['table_seconds']:.1f} s, reduced searches {r['reduced_seconds']:.1f} s")
        print(f"  movers: {r['movers']:,} of {r['transitions']:,} transitions "
              f"({r['movers'] / max(r['transitions'], 1):.1%}), leading to "
              f"{r['after_movers']:,} of the states ({r['after_movers'] / r['full']:.1%}); "
              "the others most often touch "
              + ", ".join(f"{name} ({n:,})" for name, n in r["blame"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

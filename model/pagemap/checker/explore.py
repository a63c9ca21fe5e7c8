"""Breadth-first exploration of every interleaving of a configuration.

States are the flat tuples of ``pagemap.machine``; the explorer stores each
once (a dict from state to its number) with its parent's number and the
actor of the transition that first reached it, so that a violation comes
with a shortest trace.  Successors are generated in a fixed order (threads by
index, then pending TLB flushes), so counts and traces are the same on every
run and under any hash seed.
"""

from __future__ import annotations

import sys
import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise

import icontract

from pagemap.checker.invariants import check_state
from pagemap.checker.store import StateStore
from pagemap.config import Config
from pagemap.machine import BLOCKED, DONE_PC, PROC_DYING, Layout, Machine, ThreadView, Violation
from pagemap.program import build_layout, initial_state
from pagemap.sched import DEATH_PC

#: After this many local steps in a row the explorer starts to look for a
#: repeated state: a thread whose own local steps come back to where they were
#: loops forever without help (``livelock``).
LOCAL_CHAIN_WATCH = 64

#: Actors: thread t's step is ``t`` (``t | BRANCH`` for the failing outcome of
#: a step with two, pagemap.alloc); the flush IPI landing on core c is ``-(c + 1)``.
BRANCH = 1 << 8


@dataclass
class Move:
    """One transition: a thread's step (and the local steps that follow it),
    or a TLB flush landing on a core (``flush`` true; ``actor`` is the core)."""

    actor: int
    flush: bool
    pcs: list[int]
    notes: list[str]
    branch: int = 0  # 1: the step's second outcome (an allocation that fails)


@dataclass
class Outcome:
    verdict: str  # pass | violation | incomplete
    states: int
    transitions: int
    seconds: float
    max_depth: int
    invariant: str | None = None
    message: str | None = None
    path: list[tuple[tuple[int, ...], Move | None]] = field(default_factory=list)
    final: tuple[tuple[int, ...] | None, Move | None] = (None, None)
    limit: str | None = None
    stored_parts: int = 0  # distinct state parts interned (pagemap.checker.store)


def contract_message(e: icontract.ViolationError) -> str:
    """One line: where the condition is, and what it says (its description, or
    its source), without the values icontract lists after it."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    where = lines[0].split(" in <module>")[0] if lines else "?"
    what = lines[1] if len(lines) > 1 else ""
    return f"{what} ({where})" if what else where


class SearchTree:
    """The states stored so far, numbered in the order found, each with its parent's
    number, the actor that reached it (thread, or -(t + 1) for a flush on t's core) and
    its depth: what a shortest trace is read back from.  The single-process and the
    parallel search fill it the same way, so they number the states alike."""

    __slots__ = ("actor", "depth", "index", "keys", "parent")

    def __init__(self, key0: bytes) -> None:
        self.index: dict[bytes, int] = {key0: 0}
        self.keys: list[bytes] = [key0]
        self.parent = array("q", [-1])
        self.actor = array("h", [0])
        self.depth = array("i", [0])

    def add(self, k: bytes, head: int, code: int) -> int:
        """Store the new state ``k`` reached from state ``head`` by ``code``; its number."""
        n = len(self.keys)
        self.index[k] = n
        self.keys.append(k)
        self.parent.append(head)
        self.actor.append(code)
        self.depth.append(self.depth[head] + 1)
        return n


class Explorer:
    def __init__(
        self,
        cfg: Config,
        contracts: bool = True,
        merge_local: bool = True,
        replace: dict | None = None,
    ) -> None:
        """``merge_local``: run a thread's local steps (registers only) at once
        after the step before them, instead of as points of interleaving.  A
        local step commutes with every step of every other thread, so merging
        it changes no verdict (tests/test_reduction.py checks this)."""
        self.cfg = cfg
        self.layout: Layout = build_layout(cfg, contracts, replace)
        self.nthreads = len(cfg.threads)
        self.merge_local = merge_local
        # One Machine and its thread views, reused by every unrecorded step
        # (a step's result is frozen into a tuple before the next one runs).
        self._m = Machine(self.layout, ())
        self._tv = [ThreadView(self._m, t) for t in range(self.nthreads)]
        #: The order successors come in: threads by number, then the flushes
        #: pending on each core, as (actor, state offset of its flush flag);
        #: actor -(c + 1) is the flush landing on core c.
        self.actors = [(t, -1) for t in range(self.nthreads)]
        self.actors += [(-(c + 1), off) for c, off in self.layout.flush.items()]
        self._search: tuple = (None, [], array("i", [0]))

    # -- one transition ----------------------------------------------------------
    def step(self, state: tuple[int, ...], t: int, branch: int = 0) -> tuple[int, ...] | None:
        """Thread t's next transition from ``state``: its step and the local
        steps after it.  None when it cannot run (blocked, or finished).
        Raises Violation when the step breaks an invariant.  ``self.chose``
        tells afterwards whether the step had a second outcome (``branch`` 1)."""
        m = self._run(state, t, None, branch)
        return None if m is None else m.freeze()

    def run_thread(self, state: tuple[int, ...], t: int, branch: int = 0
                   ) -> tuple[tuple[int, ...], Move] | None:
        """The same transition, recorded (the pcs it ran, its notes) for traces."""
        pcs: list[int] = []
        m = self._run(state, t, pcs, branch)
        return None if m is None else (m.freeze(), Move(t, False, pcs, m.events, branch))

    def _run(self, state: tuple[int, ...], t: int, pcs: list[int] | None,
             branch: int = 0) -> Machine | None:
        layout = self.layout
        self.chose = False
        base = layout.thread0[t]
        pc = state[base]
        if pc == DONE_PC:
            return None
        steps = layout.steps
        # Cores (pagemap.sched): the thread runs kernel code on the core in
        # `cpu` (its home core in user mode), and only while no other thread's
        # kernel path occupies that core.
        cpu_off = layout.cpu[t]
        k = state[cpu_off]
        core = k - 1 if k else layout.home[t]
        occ_off = layout.occ[core]
        ik = layout.scp_inkern[t]
        ps = layout.pstate_off[t]
        if not k and ps >= 0 and state[ps] == PROC_DYING:
            pc = DEATH_PC  # in user mode: its core took the __death message
        else:
            o = state[occ_off]
            if o and o != t + 1:
                return None
            if not k and ik >= 0 and state[ik] and state[ik] != t + 1:
                return None  # a uthread of this SCP is in the kernel
        st = steps[pc]
        assert st is not None
        lock = st.lock
        if lock is not None:
            held = state[layout.lock_off[t][lock]]
            if held and held != t + 1:  # spinning: no step (t + 1 would be a self-deadlock)
                return None
        if pcs is None:
            m, tv = self._m, self._tv[t]
            m.v = list(state)
            m.events = []
        else:
            m = Machine(layout, state)
            tv = ThreadView(m, t)
            pcs.append(pc)
        m.branch = branch
        m.chose = False
        if not st.user:  # kernel code: it occupies the core
            m.v[cpu_off] = core + 1
            m.v[occ_off] = t + 1
            if not k and ik >= 0:
                m.v[ik] = t + 1
        local = layout.local
        try:
            if st.fn(m, tv) is BLOCKED:
                return None
            self.chose = m.chose
            n = 0
            seen: set[tuple[int, ...]] | None = None
            while self.merge_local:
                pc = m.v[base]
                if pc == DONE_PC or not local[pc]:
                    break
                st = steps[pc]
                assert st is not None
                if pcs is not None:
                    pcs.append(pc)
                st.fn(m, tv)
                n += 1
                if n >= LOCAL_CHAIN_WATCH:
                    seen = set() if seen is None else seen
                    snap = tuple(m.v)
                    if snap in seen:
                        raise Violation("livelock", f"{self.cfg.threads[t].name} loops in "
                                        f"{st.func}.{st.label} and nothing changes")
                    seen.add(snap)
        except icontract.ViolationError as e:
            raise Violation("contract", contract_message(e)) from e
        return m

    def run_flush(self, state: tuple[int, ...], c: int) -> tuple[tuple[int, ...], Move] | None:
        """The flush IPI proc_tlbshootdown queued for core c lands."""
        off = self.layout.flush.get(c)
        if off is None or not state[off]:
            return None
        m = Machine(self.layout, state)
        m.flush_tlb(c)
        m.set_flush_pending(c, False)
        return m.freeze(), Move(c, True, [], ["tlbflush() on this core"])

    def successors(self, state: tuple[int, ...]):
        """Yield (actor, next state or None, Violation or None), in the order
        of ``actors``.  (``explore`` inlines this loop: it is the hot one.)"""
        for who, off in self.actors:
            if who >= 0:
                for branch in (0, 1):
                    actor = who | (BRANCH if branch else 0)
                    try:
                        nxt = self.step(state, who, branch)
                    except Violation as v:
                        yield actor, None, v
                        break
                    if nxt is not None:
                        yield actor, nxt, None
                    if not self.chose:
                        break
            elif state[off]:
                r = self.run_flush(state, -who - 1)
                assert r is not None
                yield who, r[0], None

    def move(self, state: tuple[int, ...], actor: int) -> Move:
        """The recorded form of one transition (for traces)."""
        if actor < 0:
            r = self.run_flush(state, -actor - 1)
        else:
            t, branch = actor & (BRANCH - 1), int(bool(actor & BRANCH))
            try:
                r = self.run_thread(state, t, branch)
            except Violation:
                return Move(t, False, [state[self.layout.thread0[t]]], [], branch)
        assert r is not None
        return r[1]

    def finished(self, state: tuple[int, ...]) -> bool:
        return all(state[b] == DONE_PC for b in self.layout.thread0)

    # -- what the last search stored (coverage; what a Ctrl-C had explored) --------------
    def stored_states(self):
        """The states the last (or interrupted) search stored, in BFS order."""
        store, keys, _ = self._search
        return (store.state(k)[0] for k in keys)

    def progress_so_far(self) -> tuple[int, int]:
        """(states stored, depth of the deepest one) of the last search."""
        _, keys, depth = self._search
        return len(keys), depth[len(depth) - 1]

    # -- the search -----------------------------------------------------------------
    def explore(
        self,
        max_states: int | None = None,
        max_seconds: float | None = None,
        progress: bool = True,
        workers: int = 1,
        ample: Callable[[tuple[int, ...]], Iterable[int]] | None = None,
    ) -> Outcome:
        """Breadth first from the initial state.  ``workers`` > 1 computes the
        successors on that many processes (pagemap.checker.parallel): the same
        search, the same outcome.  ``ample``: for a state, the threads whose
        transition alone may be expanded (a partial-order reduction's C1 and
        C2, pagemap.checker.footprint); the first whose transition is enabled,
        has one outcome, raises nothing and reaches a state not yet stored (C3,
        the breadth-first cycle proviso) is the state's only successor, else
        the state is expanded in full."""
        if workers > 1:
            assert ample is None, "the parallel search expands every state in full"
            from pagemap.checker import parallel

            return parallel.search(self, workers, max_states, max_seconds, progress)
        start = time.monotonic()
        layout = self.layout
        store = StateStore(layout)
        init = initial_state(layout)
        key0 = store.key(init)
        tree = SearchTree(key0)
        index, keys, depth = tree.index, tree.keys, tree.depth
        transitions = 0
        last_report = start
        head = 0
        self._search = (store, keys, depth)  # read by stored_states / progress_so_far

        def outcome(verdict: str, **kw) -> Outcome:
            return Outcome(
                verdict,
                len(keys),
                transitions,
                time.monotonic() - start,
                depth[len(depth) - 1] if len(depth) else 0,
                stored_parts=store.part_count(),
                **kw,
            )

        def path(n: int) -> list[tuple[tuple[int, ...], Move | None]]:
            return self._path(store, tree, n)

        def admit(k: bytes, code: int, nxt: tuple[int, ...]) -> Outcome | None:
            """Store a new state reached from ``head`` by ``code``; its violation, if any."""
            n = tree.add(k, head, code)
            bad = check_state(layout, nxt)
            return None if bad is None else outcome(
                "violation", invariant=bad.invariant, message=bad.message, path=path(n))

        v0 = check_state(layout, init)
        if v0 is not None:
            return outcome("violation", invariant=v0.invariant, message=v0.message, path=path(0))
        # ``successors``, inlined: this is the hot loop.
        step = self.step
        actors = self.actors
        while head < len(keys):
            s, parts = store.state(keys[head])
            moved = False
            alone = self._ample(store, s, parts, ample, index, keys[head]) if ample else None
            if alone is not None:
                t, only, k = alone
                transitions += 1
                moved = True
                stop = admit(k, t, only)
                if stop is not None:
                    return stop
            for who, flush_off in actors if alone is None else ():
                branch = 0
                while True:
                    code = who | (BRANCH if branch else 0)
                    chose = False
                    if who >= 0:
                        try:
                            nxt = step(s, who, branch)
                        except Violation as viol:
                            transitions += 1
                            return outcome(
                                "violation",
                                invariant=viol.invariant,
                                message=viol.message,
                                path=path(head),
                                final=(None, self.move(s, code)),
                            )
                        chose = self.chose
                    elif s[flush_off]:
                        r = self.run_flush(s, -who - 1)
                        assert r is not None
                        nxt = r[0]
                    else:
                        nxt = None
                    if nxt is not None:
                        transitions += 1
                        moved = True
                        k = store.key_after(nxt, parts, who if who >= 0 else None)
                        if k == keys[head]:
                            return outcome(
                                "violation", invariant="livelock",
                                message=f"{self.cfg.threads[who].name}'s step leaves the state "
                                "as it was: it can go on forever without help",
                                path=path(head), final=(None, self.move(s, code)))
                        if k not in index:
                            stop = admit(k, code, nxt)
                            if stop is not None:
                                return stop
                    if not chose or branch:
                        break
                    branch = 1
            if not moved and not self.finished(s):
                return outcome(
                    "violation",
                    invariant="deadlock",
                    message="some thread is unfinished and none can step",
                    path=path(head),
                )
            head += 1
            if max_states is not None and len(keys) >= max_states and head < len(keys):
                return outcome("incomplete", limit=f"--max-states {max_states}")
            now = time.monotonic()
            if max_seconds is not None and now - start > max_seconds and head < len(keys):
                return outcome("incomplete", limit=f"--max-seconds {max_seconds:g}")
            if progress and now - last_report > 2.0:
                last_report = now
                el = now - start
                print(
                    f"  {len(keys):,} states, {len(keys) / el:,.0f} states/s, "
                    f"depth {depth[head - 1]}, frontier {len(keys) - head:,}",
                    file=sys.stderr,
                )
        return outcome("pass")

    def _ample(self, store: StateStore, s: tuple[int, ...], parts: array, ample: Callable,
               index: dict, here: bytes) -> tuple[int, tuple[int, ...], bytes] | None:
        """The one transition to expand from ``s`` (see ``explore``), or None."""
        for t in ample(s):
            try:
                nxt = self.step(s, t)
            except Violation:
                return None  # the full expansion meets it, in its order
            if nxt is None or self.chose:
                continue
            k = store.key_after(nxt, parts, t)
            if k != here and k not in index:
                return t, nxt, k
        return None

    def _path(self, store: StateStore, tree: SearchTree, n: int):
        """The shortest path to state n: (state, the move that left it)."""
        keys, parent, actor = tree.keys, tree.parent, tree.actor
        chain = []
        while n >= 0:
            chain.append(n)
            n = parent[n]
        chain.reverse()
        path: list[tuple[tuple[int, ...], Move | None]] = []
        for a, b in pairwise(chain):
            s = store.state(keys[a])[0]
            mv = self.move(s, actor[b])
            path.append((s, mv))
        path.append((store.state(keys[chain[-1]])[0], None))
        return path

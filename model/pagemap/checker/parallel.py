"""The breadth-first search on several cores: worker processes compute the
successors, one process keeps the store and numbers the states.

The search is the one of ``Explorer.explore``, state by state in the same
order: the owner hands out the states of the queue in chunks, in number order,
and takes the workers' results back in that same order, so every state gets
the number, the parent and the actor the single-process search gives it, and
verdict, counts and shortest trace are the same (tests/test_reduction.py).
Only the expansion moves: running the steps, checking the invariants of each
successor, and looking its parts up.

Moving a state between processes costs about as much as computing a
successor when it travels as a tuple of ints, so states travel as keys (a few
part numbers, ``pagemap.checker.store``).  Each worker holds a replica of the
owner's part tables, brought up to date with every chunk it is sent (the
parts are few next to the states); a successor whose parts the replica does
not know yet comes back with those parts, and the owner interns them.

The workers are forked, so they share the owner's configuration, compiled
steps and any mutant's replaced steps without pickling them.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
from collections import deque
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

from pagemap.checker.invariants import check_state
from pagemap.checker.store import StateStore
from pagemap.program import initial_state

if TYPE_CHECKING:
    from pagemap.checker.explore import Explorer, Outcome

#: States per chunk once the queue is long; chunks in flight per worker.
CHUNK = 200
IN_FLIGHT = 3

#: A successor this worker has reported before (its key, not the state it
#: came from).  By the time the owner reaches this report it has processed the
#: earlier one, so the state is stored and was checked when it was: the
#: report needs no key and no invariant check, only its count.  The cache is
#: cleared when full; forgetting only costs work.
DUP = b""
SEEN_MAX = 1 << 20

#: One successor as a worker reports it: (actor, key or None, parts the
#: replica lacked, (invariant, message) of a violation or None).  A key of
#: None is a step that raised a violation: the state's last entry.
Succ = tuple[int, bytes | None, list, tuple[str, str] | None]


def _serve(ex: Explorer, conn: Connection) -> None:
    """A worker: expand the states whose keys it is sent, in order."""
    from pagemap.checker.explore import BRANCH

    store = StateStore(ex.layout)
    layout = ex.layout
    seen: set[bytes] = set()
    while True:
        msg = conn.recv()
        if msg is None:
            return
        new_parts, keys = msg
        store.add_parts(new_parts)
        out: list[tuple[list[Succ], bool]] = []
        for key in keys:
            s, parts = store.state(key)
            succ: list[Succ] = []
            for code, nxt, viol in ex.successors(s):
                if viol is not None:
                    succ.append((code, None, [], (viol.invariant, viol.message)))
                    break
                assert nxt is not None
                thread = code & (BRANCH - 1) if code >= 0 else None
                idx, missing = store.lookup_after(nxt, parts, thread)
                k = idx.tobytes()
                if not missing and k != key:
                    if k in seen:
                        succ.append((code, DUP, [], None))
                        continue
                    if len(seen) >= SEEN_MAX:
                        seen.clear()
                    seen.add(k)
                bad = check_state(layout, nxt)
                succ.append((code, k, missing,
                             None if bad is None else (bad.invariant, bad.message)))
            out.append((succ, ex.finished(s)))
        conn.send(out)


def search(ex: Explorer, workers: int, max_states: int | None, max_seconds: float | None,
           progress: bool) -> Outcome:
    """``Explorer.explore`` with the expansion on ``workers`` processes."""
    from pagemap.checker.explore import Outcome, SearchTree

    start = time.monotonic()
    layout = ex.layout
    store = StateStore(layout)
    init = initial_state(layout)
    key0 = store.key(init)
    tree = SearchTree(key0)
    index, keys, depth = tree.index, tree.keys, tree.depth
    transitions = 0
    ex._search = (store, keys, depth)

    def outcome(verdict: str, **kw) -> Outcome:  # type: ignore[no-untyped-def]
        return Outcome(verdict, len(keys), transitions, time.monotonic() - start,
                       depth[len(depth) - 1], stored_parts=store.part_count(), **kw)

    def path(n: int):  # type: ignore[no-untyped-def]
        return ex._path(store, tree, n)

    v0 = check_state(layout, init)
    if v0 is not None:
        return outcome("violation", invariant=v0.invariant, message=v0.message, path=path(0))

    ctx = mp.get_context("fork")
    conns: list[Connection] = []
    procs = []
    for _ in range(workers):
        mine, theirs = ctx.Pipe()
        p = ctx.Process(target=_serve, args=(ex, theirs), daemon=True)
        p.start()
        theirs.close()
        conns.append(mine)
        procs.append(p)
    synced = [[0] * len(store.parts) for _ in range(workers)]
    pending: deque[int] = deque()  # the worker of each chunk in flight, in the order sent
    load = [0] * workers  # chunks in flight per worker
    sent = 0  # states handed out
    head = 0  # the next state whose results are taken
    last_report = start
    rr = 0

    def dispatch() -> None:
        nonlocal sent, rr
        while sent < len(keys):
            w = min(range(workers), key=lambda j: (load[j], (j - rr) % workers))
            if load[w] >= IN_FLIGHT:
                return
            n = min(CHUNK, max(1, (len(keys) - sent) // workers))
            conns[w].send((store.parts_since(synced[w]), keys[sent:sent + n]))
            synced[w] = [len(p) for p in store.parts]
            pending.append(w)
            load[w] += 1
            sent += n
            rr = w + 1

    try:
        dispatch()
        while pending:
            w = pending.popleft()
            results = conns[w].recv()
            load[w] -= 1
            for succ, finished in results:
                moved = False
                for code, idx, missing, bad in succ:
                    transitions += 1
                    if idx is None:
                        assert bad is not None
                        s = store.state(keys[head])[0]
                        return outcome("violation", invariant=bad[0], message=bad[1],
                                       path=path(head), final=(None, ex.move(s, code)))
                    moved = True
                    if idx is DUP or not idx:
                        continue
                    k = store.resolve(idx, missing)
                    if k == keys[head]:
                        s = store.state(keys[head])[0]
                        return outcome(
                            "violation", invariant="livelock",
                            message=f"{ex.cfg.threads[code & 0xFF].name}'s step leaves the "
                            "state as it was: it can go on forever without help",
                            path=path(head), final=(None, ex.move(s, code)))
                    if k not in index:
                        m = tree.add(k, head, code)
                        if bad is not None:
                            return outcome("violation", invariant=bad[0], message=bad[1],
                                           path=path(m))
                if not moved and not finished:
                    return outcome("violation", invariant="deadlock",
                                   message="some thread is unfinished and none can step",
                                   path=path(head))
                head += 1
                if max_states is not None and len(keys) >= max_states and head < len(keys):
                    return outcome("incomplete", limit=f"--max-states {max_states}")
                now = time.monotonic()
                if max_seconds is not None and now - start > max_seconds and head < len(keys):
                    return outcome("incomplete", limit=f"--max-seconds {max_seconds:g}")
                if progress and now - last_report > 2.0:
                    last_report = now
                    el = now - start
                    print(f"  {len(keys):,} states, {len(keys) / el:,.0f} states/s, "
                          f"depth {depth[head - 1]}, frontier {len(keys) - head:,} "
                          f"({workers} workers)", file=sys.stderr)
            dispatch()
        return outcome("pass")
    finally:
        for c in conns:
            try:
                c.send(None)
            except OSError:
                pass
        for p in procs:
            p.join(timeout=1)
            if p.is_alive():
                p.kill()
                p.join()
        for c in conns:
            c.close()

"""Random simulation (`pagemap check --simulate N [--seed S]`): N random
complete interleavings, for state spaces too large to exhaust.

Not a model of any C function.  Each walk starts at the initial state and,
at every state, runs every actor that can move (as the explorer does) and
picks one at random; it ends when every thread has finished, when no actor
can move (a deadlock), or at the first broken invariant.  A step that would
break an invariant is taken as soon as it is enabled: that interleaving
exists, so it is a counterexample like any other.  The walks draw from one
``random.Random(seed)``, so the same N and seed give the same walks on every
run and every machine.  A violation comes back as a schedule
(``pagemap.checker.schedule``), which the trace and ``--save-trace`` use.

Finding nothing proves nothing: the verdict is then ``incomplete``.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from pagemap.checker.explore import BRANCH, Explorer
from pagemap.checker.invariants import check_state
from pagemap.checker.schedule import Actor, core_thread
from pagemap.program import initial_state

#: A walk longer than this is cut (a model that loops; no verdict from it).
MAX_WALK = 100_000


@dataclass
class Simulation:
    walks: int  # walks run
    seed: int
    steps: int  # steps taken over all walks
    seconds: float
    finished: int = 0  # walks in which every thread finished
    cut: int = 0  # walks cut at MAX_WALK steps
    longest: int = 0
    violation_walk: int | None = None  # 1-based number of the walk that broke an invariant
    invariant: str | None = None
    message: str | None = None
    schedule: list[Actor] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "violation" if self.invariant else "incomplete"


def _actor(ex: Explorer, who: int) -> Actor:
    """The schedule entry of an actor code of ``Explorer.successors``."""
    if who < 0:
        return Actor(core_thread(ex.cfg, -who - 1), flush=True)
    return Actor(ex.cfg.threads[who & (BRANCH - 1)].name, branch=int(bool(who & BRANCH)))


def simulate(ex: Explorer, walks: int, seed: int = 0, max_seconds: float | None = None
             ) -> Simulation:
    rng = random.Random(seed)
    start = time.monotonic()
    init = initial_state(ex.layout)
    sim = Simulation(0, seed, 0, 0.0)
    bad = check_state(ex.layout, init)
    if bad is not None:
        sim.walks, sim.violation_walk = 1, 1
        sim.invariant, sim.message = bad.invariant, bad.message
        return sim
    for w in range(1, walks + 1):
        if max_seconds is not None and time.monotonic() - start > max_seconds:
            break
        sim.walks = w
        state = init
        sched: list[Actor] = []
        while True:
            if len(sched) >= MAX_WALK:
                sim.cut += 1
                break
            succ = list(ex.successors(state))
            viol = [(who, v) for who, _, v in succ if v is not None]
            if viol:
                who, v = viol[0]
                sched.append(_actor(ex, who))
                sim.invariant, sim.message = v.invariant, v.message
                break
            moves = [(who, nxt) for who, nxt, _ in succ if nxt is not None]
            if not moves:
                if not ex.finished(state):
                    sim.invariant = "deadlock"
                    sim.message = "some thread is unfinished and none can step"
                else:
                    sim.finished += 1
                break
            who, state = moves[rng.randrange(len(moves))]
            sched.append(_actor(ex, who))
            bad = check_state(ex.layout, state)
            if bad is not None:
                sim.invariant, sim.message = bad.invariant, bad.message
                break
        sim.steps += len(sched)
        sim.longest = max(sim.longest, len(sched))
        if sim.invariant:
            sim.violation_walk = w
            sim.schedule = sched
            break
    sim.seconds = time.monotonic() - start
    return sim

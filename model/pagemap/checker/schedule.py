"""Schedules: an interleaving as a list of actors, saved to a file and run
again step by step (`pagemap check --save-trace`, `pagemap replay`).

Not a model of any C function.  A schedule says who moves at each step:

    {"thread": "r"}                  thread r takes its next step
    {"thread": "u1", "flush": true}  the TLB flush queued for u1's core lands
    {"thread": "u1", "branch": 1}    thread u1's next step, taking its outcome 1

``branch`` is for steps with more than one outcome: under ``[faults] enomem``
an allocation succeeds (0) or fails (1); it is omitted when 0.  A flush is
named by a thread whose home core it lands on.  Each entry may also carry ``id``, the step it ran when
the schedule was saved: replay uses it only to say where a run under another
variant starts to differ.

A saved trace is one JSON object, self-contained: it embeds the scenario's
TOML data, so it replays without the file it came from (`pagemap replay`
takes nothing else).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pagemap.checker.explore import BRANCH, Explorer, Move, Outcome
from pagemap.checker.invariants import check_state
from pagemap.checker.scenario import ScenarioError, parse
from pagemap.config import Config
from pagemap.machine import Violation
from pagemap.program import initial_state

FORMAT = "pagemap-trace"
VERSION = 1


@dataclass(frozen=True)
class Actor:
    thread: str
    flush: bool = False
    branch: int = 0
    id: str = ""  # the step it ran when saved (informational)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"thread": self.thread}
        if self.flush:
            d["flush"] = True
        if self.branch:
            d["branch"] = self.branch
        if self.id:
            d["id"] = self.id
        return d

    @staticmethod
    def from_json(d: Any, n: int) -> Actor:
        if not isinstance(d, dict) or not isinstance(d.get("thread"), str):
            raise ScenarioError(f"schedule entry #{n}: needs \"thread\": NAME")
        unknown = set(d) - {"thread", "flush", "branch", "id"}
        if unknown:
            raise ScenarioError(f"schedule entry #{n}: unknown key '{min(unknown)}'")
        branch = d.get("branch", 0)
        if not isinstance(branch, int) or isinstance(branch, bool) or branch < 0:
            raise ScenarioError(f"schedule entry #{n}: branch must be a number >= 0")
        return Actor(d["thread"], bool(d.get("flush", False)), branch, str(d.get("id", "")))


def step_id(ex: Explorer, move: Move) -> str:
    if move.flush:
        return "tlbflush"
    st = ex.layout.steps[move.pcs[0]]
    return f"{st.func}.{st.label}" if st is not None else ""


def core_thread(cfg: Config, core: int) -> str:
    """The thread a schedule names for a flush on ``core``: the first whose home it is."""
    return cfg.threads[cfg.cores[core].threads[0]].name


def actor_of(ex: Explorer, mv: Move) -> Actor:
    if mv.flush:
        return Actor(core_thread(ex.cfg, mv.actor), True, 0, "tlbflush")
    return Actor(ex.cfg.threads[mv.actor].name, False, mv.branch, step_id(ex, mv))


def schedule_of(ex: Explorer, out: Outcome) -> list[Actor]:
    """The actors of an outcome's path, the violating move included."""
    moves = [mv for _, mv in out.path if mv is not None]
    if out.final[1] is not None:
        moves.append(out.final[1])
    return [actor_of(ex, mv) for mv in moves]


# -- the file ------------------------------------------------------------------------


@dataclass
class Saved:
    scenario: dict[str, Any]  # the scenario's TOML data
    source: str  # the file it came from (informational)
    variant: str
    word_bits: int
    schedule: list[Actor]
    verdict: str = "violation"
    invariant: str | None = None
    message: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def config(self, variant: Any = None) -> Config:
        return parse(self.scenario, self.source, variant if variant is not None else self.variant,
                     self.word_bits)

    def to_json(self) -> dict[str, Any]:
        d = {"format": FORMAT, "version": VERSION, "source": self.source,
             "variant": self.variant, "word_bits": self.word_bits, "verdict": self.verdict,
             "invariant": self.invariant, "message": self.message, **self.extra,
             "schedule": [a.to_json() for a in self.schedule], "scenario": self.scenario}
        return d


def scenario_data(path: str | Path) -> dict[str, Any]:
    """The TOML data of a scenario file (already validated by ``load``)."""
    return tomllib.loads(Path(path).read_text())


def dumps(saved: Saved) -> str:
    """The file's text: JSON, one schedule entry a line so that it reads as a list."""
    d = saved.to_json()
    sched = d.pop("schedule")
    scenario = d.pop("scenario")
    head = json.dumps(d, indent=1)[:-2]  # without the closing "\n}"
    lines = ",\n".join("  " + json.dumps(a) for a in sched)
    body = json.dumps(scenario, indent=1).replace("\n", "\n ")
    return f'{head},\n "schedule": [\n{lines}\n ],\n "scenario": {body}\n}}\n'


def save(path: str | Path, saved: Saved) -> None:
    Path(path).write_text(dumps(saved))


def load_saved(path: str | Path) -> Saved:
    p = Path(path)
    try:
        d = json.loads(p.read_text())
    except OSError as e:
        raise ScenarioError(f"{p}: cannot read ({e.strerror})") from None
    except ValueError as e:
        raise ScenarioError(f"{p}: not a saved trace (not JSON: {e})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ScenarioError(f"{p}: not a saved trace (no \"format\": \"{FORMAT}\")")
    if d.get("version") != VERSION:
        raise ScenarioError(f"{p}: saved trace version {d.get('version')!r}; this pagemap "
                            f"reads version {VERSION}")
    if not isinstance(d.get("scenario"), dict) or not isinstance(d.get("schedule"), list):
        raise ScenarioError(f"{p}: a saved trace needs \"scenario\" and \"schedule\"")
    sched = [Actor.from_json(a, n) for n, a in enumerate(d["schedule"], 1)]
    extra = {k: v for k, v in d.items() if k in ("simulate",)}
    return Saved(d["scenario"], str(d.get("source", p.name)), str(d.get("variant", "seed")),
                 int(d.get("word_bits", 64)), sched, str(d.get("verdict", "violation")),
                 d.get("invariant"), d.get("message"), extra)


# -- running a schedule ------------------------------------------------------------------


@dataclass
class Replay:
    """What a schedule did: an Outcome-like path for ``trace.build``, and
    where it stopped applying, if it did."""

    verdict: str  # violation | pass (the schedule completed) | stopped
    path: list[tuple[tuple[int, ...], Move | None]]
    final: tuple[tuple[int, ...] | None, Move | None] = (None, None)
    invariant: str | None = None
    message: str | None = None
    stopped: str | None = None  # why the schedule could not go on, at step ``steps + 1``
    differs_at: int | None = None  # first step whose step id differs from the saved one
    finished: bool = False  # every thread ran to its end

    @property
    def steps(self) -> int:
        return len(self.path) - 1 + (1 if self.final[1] is not None else 0)

    @property
    def state(self) -> tuple[int, ...]:
        return self.path[-1][0]

    def outcome(self, seconds: float = 0.0) -> Outcome:
        verdict = {"stopped": "incomplete"}.get(self.verdict, self.verdict)
        return Outcome(verdict, len(self.path), self.steps, seconds, len(self.path) - 1,
                       self.invariant, self.message, self.path, self.final)


def _thread(ex: Explorer, name: str) -> int | None:
    for t, th in enumerate(ex.cfg.threads):
        if th.name == name:
            return t
    return None


def _why_not(ex: Explorer, state: tuple[int, ...], t: int) -> str:
    layout = ex.layout
    name = ex.cfg.threads[t].name
    pc = state[layout.thread0[t]]
    if pc == 0:
        return f"thread {name} has finished"
    st = layout.steps[pc]
    assert st is not None
    return f"thread {name} cannot take its next step {st.func}.{st.label} (blocked)"


def run_schedule(ex: Explorer, schedule: list[Actor]) -> Replay:
    """Run ``schedule`` from the initial state, checking every invariant the
    explorer checks.  Raises ScenarioTooSmall as the explorer does."""
    state = initial_state(ex.layout)
    path: list[tuple[tuple[int, ...], Move | None]] = []
    bad = check_state(ex.layout, state)
    if bad is not None:
        return Replay("violation", [(state, None)], invariant=bad.invariant, message=bad.message)
    differs: int | None = None
    for n, actor in enumerate(schedule, 1):
        t = _thread(ex, actor.thread)
        if t is None:
            return Replay("stopped", path + [(state, None)], differs_at=differs,
                          stopped=f"the scenario has no thread {actor.thread!r}")
        if actor.branch not in (0, 1) or (actor.branch and actor.flush):
            return Replay("stopped", path + [(state, None)], differs_at=differs,
                          stopped=f"thread {actor.thread}'s step has no outcome {actor.branch}")
        if actor.flush:
            r = ex.run_flush(state, ex.cfg.home[t])
            if r is None:
                return Replay("stopped", path + [(state, None)], differs_at=differs,
                              stopped=f"no TLB flush is pending on {actor.thread}'s core")
        else:
            try:
                r = ex.run_thread(state, t, actor.branch)
            except Violation as v:
                mv = ex.move(state, t | (BRANCH if actor.branch else 0))
                if actor.id and step_id(ex, mv) != actor.id and differs is None:
                    differs = n
                return Replay("violation", path + [(state, None)], (None, mv), v.invariant,
                              v.message, differs_at=differs)
            if r is None:
                return Replay("stopped", path + [(state, None)], differs_at=differs,
                              stopped=_why_not(ex, state, t))
            if actor.branch and not ex.chose:
                return Replay("stopped", path + [(state, None)], differs_at=differs,
                              stopped=f"thread {actor.thread}'s step has no outcome "
                              f"{actor.branch} (it has one outcome)")
        nxt, mv = r
        if actor.id and step_id(ex, mv) != actor.id and differs is None:
            differs = n
        path.append((state, mv))
        state = nxt
        bad = check_state(ex.layout, state)
        if bad is not None:
            return Replay("violation", path + [(state, None)], invariant=bad.invariant,
                          message=bad.message, differs_at=differs)
    path.append((state, None))
    if ex.finished(state):
        return Replay("pass", path, differs_at=differs, finished=True)
    if not any(nxt is not None or v is not None for _, nxt, v in ex.successors(state)):
        return Replay("violation", path, invariant="deadlock",
                      message="some thread is unfinished and none can step", differs_at=differs)
    return Replay("pass", path, differs_at=differs)

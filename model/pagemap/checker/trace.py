"""Counterexample traces for people (a table, one column per thread) and for
scripts (JSON), from the path the explorer returns."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from pagemap.checker.explore import Move, Outcome
from pagemap.checker.values import (
    describe_initial,
    fmt_value,
    notes_for,
    numbering,
    shown,
    state_values,
)
from pagemap.machine import Layout


@dataclass
class TraceStep:
    thread: str
    where: str  # "function.label": the model's step id, named after the C function
    step: str  # "function: statement", as the running variant performs it
    changed: dict[str, str]  # name -> "before -> after", for people
    notes: list[str]
    violation: str | None = None
    values: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (before, after)

    def to_json(self, layout: Layout | None = None) -> dict[str, Any]:
        ident = "tlbflush" if self.where == FLUSH_WHERE else self.where
        d: dict[str, Any] = {"thread": self.thread, "id": ident, "step": self.step,
                             "changed": self.changed}
        d["changes"] = {
            name: {"before": (fmt_value(layout, name, a) if layout else a),
                   "after": (fmt_value(layout, name, b) if layout else b),
                   "before_value": a, "after_value": b}
            for name, (a, b) in self.values.items()}
        if self.notes:
            d["notes"] = self.notes
        if self.violation:
            d["violation"] = self.violation
        return d


def _routine(layout: Layout, k: int, x: int, y: int) -> bool:
    """Core bookkeeping that says nothing new: a thread entering or leaving the
    kernel on its own home core (pagemap.sched).  Shown only when a thread runs on
    another core (a woken sleeper, through a routine message)."""
    if k in layout.cpu:
        home = layout.home[layout.cpu.index(k)] + 1
        return {x, y} <= {0, home}
    if k in layout.occ:
        c = layout.occ.index(k)
        return all(v == 0 or layout.home[v - 1] == c for v in (x, y))
    return layout.names[k].endswith(".inkern")


def diff(layout: Layout, a: tuple[int, ...], b: tuple[int, ...]
         ) -> tuple[dict[str, str], dict[str, tuple[int, int]]]:
    """The shown values that differ: as text, and as (before, after) ints."""
    text, raw = {}, {}
    for k, (x, y) in enumerate(zip(a, b)):
        if x != y and shown(layout, k) and not _routine(layout, k, x, y):
            name = layout.names[k]
            text[name] = f"{fmt_value(layout, name, x)} -> {fmt_value(layout, name, y)}"
            raw[name] = (x, y)
    return text, raw


FLUSH_WHERE = "tlbflush (IPI)"  # the step name of a flush landing, for people


def _describe(layout: Layout, move: Move) -> tuple[str, str]:
    if move.flush:
        return FLUSH_WHERE, "tlbflush: the IPI from proc_tlbshootdown lands on this core"
    st = layout.steps[move.pcs[0]]
    assert st is not None
    text = st.text(layout.cfg.fixes)
    if move.branch:
        text += " [the allocation fails: -ENOMEM]"
    return f"{st.func}.{st.label}", f"{st.func}: {text}"


def actor_name(layout: Layout, move: Move) -> str:
    """The thread that moved, or for a flush the thread(s) of the core it lands on."""
    cfg = layout.cfg
    if move.flush:
        return cfg.threads[cfg.cores[move.actor].threads[0]].name
    return cfg.threads[move.actor].name


def build(layout: Layout, outcome: Outcome) -> list[TraceStep]:
    steps: list[TraceStep] = []
    path = outcome.path
    for (s, move), nxt in itertools.pairwise(path):
        assert move is not None
        func, text = _describe(layout, move)
        changed, raw = diff(layout, s, nxt[0])
        steps.append(TraceStep(actor_name(layout, move), func, text,
                               changed, list(move.notes), values=raw))
    _, fmove = outcome.final
    if fmove is not None:
        func, text = _describe(layout, fmove)
        steps.append(TraceStep(actor_name(layout, fmove), func, text, {}, [],
                               f"{outcome.invariant}: {outcome.message}"))
    elif steps and outcome.verdict == "violation":
        steps[-1].violation = f"{outcome.invariant}: {outcome.message}"
    return steps


def initial_state_of(outcome: Outcome) -> tuple[int, ...] | None:
    """The state a trace starts from (the first state of its path)."""
    return outcome.path[0][0] if outcome.path else None


WIDTH = 100  # the text trace fits this many columns
DETAIL = 7  # indent of a step's statement and changes


def wrap(text: str, indent: int, width: int = WIDTH) -> list[str]:
    room = width - indent
    words, lines, cur = text.split(" "), [], ""
    for w in words:
        while len(w) > room:  # a token longer than a line is cut
            if cur:
                lines.append(cur)
                cur = ""
            lines.append(w[:room])
            w = w[room:]
        if cur and len(cur) + 1 + len(w) > room:
            lines.append(cur)
            cur = "  " + w  # continuation lines are indented a little more
        else:
            cur = f"{cur} {w}" if cur else w
    if cur:
        lines.append(cur)
    return [" " * indent + ln for ln in lines]


def say(text: str) -> None:
    """Print a line of output wrapped to the trace's width."""
    print("\n".join(wrap(text, 0)))


def render_table(layout: Layout, steps: list[TraceStep], width: int = WIDTH) -> str:
    """One column per thread for the step's name, one row per step; the
    statement and the values it changed on the lines below, within ``width``."""
    names = [t.name for t in layout.cfg.threads]
    col = {n: i for i, n in enumerate(names)}
    colw = max(12, (width - 5) // max(1, len(names)))
    head = "   # " + "".join(n[: colw - 1].ljust(colw) for n in names)
    lines = [head.rstrip(), "-" * min(width, max(len(head), 40))]
    for n, st in enumerate(steps, 1):
        x = 5 + colw * col.get(st.thread, 0)
        x = max(5, min(x, width - len(st.where)))  # a long name near the edge moves left
        lines.append(f"{n:4d}".ljust(x) + st.where)
        lines += wrap(st.step.split(": ", 1)[-1], DETAIL, width)
        for k, v in st.changed.items():
            lines += wrap(f"{k}: {v}", DETAIL + 2, width)
        for note in st.notes:
            lines += wrap(f"({note})", DETAIL + 2, width)
        if st.violation:
            lines += wrap(f">>> VIOLATION {st.violation}", 4, width)
    return "\n".join(lines)


def render_initial(layout: Layout, state: tuple[int, ...], width: int = WIDTH) -> str:
    """The starting state and the numbering of names, before a trace."""
    lines = ["initial state (before step 1):"]
    for line in describe_initial(layout, state):
        lines += wrap(line, 2, width)
    lines.append("names:")
    for line in numbering(layout):
        lines += wrap(line, 2, width)
    return "\n".join(lines)


def trace_notes(layout: Layout, steps: list[TraceStep], state: tuple[int, ...] | None
                ) -> list[str]:
    """Notes on values that need one (the NULL-page slot word, the initial
    negative file data), only for those that appear in the trace."""
    seen = [(k, v) for st in steps for k, ab in st.values.items() for v in ab]
    if state is not None:
        seen += [(layout.names[k], v) for k, v in enumerate(state) if shown(layout, k)]
    return notes_for(layout, seen)


def picture_lines(layout: Layout, steps: list[TraceStep], state: tuple[int, ...] | None
                  ) -> list[str]:
    """What a swimlane shows above the steps: the initial state, the
    numbering of names, and the notes on values."""
    if state is None:
        return []
    return (describe_initial(layout, state) + numbering(layout)
            + [f"values: {n}" for n in trace_notes(layout, steps, state)])


def render_notes(layout: Layout, steps: list[TraceStep], state: tuple[int, ...] | None) -> str:
    """The notes on values, as the last lines of a text trace."""
    notes = trace_notes(layout, steps, state)
    return "\n".join(["values:"] + [ln for n in notes for ln in wrap(n, 2)]) if notes else ""


def render_text(layout: Layout, steps: list[TraceStep], state: tuple[int, ...] | None) -> str:
    """The whole text trace: starting state, the steps, the footnotes."""
    parts = [render_initial(layout, state)] if state is not None else []
    parts.append(render_table(layout, steps))
    notes = render_notes(layout, steps, state)
    if notes:
        parts.append(notes)
    return "\n".join(parts)


def initial_json(layout: Layout, state: tuple[int, ...] | None) -> dict[str, str]:
    return {} if state is None else state_values(layout, state)

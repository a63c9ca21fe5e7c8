"""Counterexample traces for people (a table, one column per thread) and for
scripts (JSON), from the path the explorer returns."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from pagemap.checker.explore import Move, Outcome
from pagemap.machine import Layout, tlb_dirty, tlb_ppn
from pagemap.pageflags import pg_names, pte_names
from pagemap.slot import flags_shift, refcnt_shift


@dataclass
class TraceStep:
    thread: str
    where: str  # "function.label": the model's step, named after the C function
    step: str  # "function: statement"
    changed: dict[str, str]
    notes: list[str]
    violation: str | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"thread": self.thread, "step": self.step, "changed": self.changed}
        if self.notes:
            d["notes"] = self.notes
        if self.violation:
            d["violation"] = self.violation
        return d


def fmt_slot(w: int, bits: int) -> str:
    if w == 0:
        return "0"
    ref = w >> refcnt_shift(bits)
    rm = (w >> flags_shift(bits)) & 1
    ppn = w & ((1 << flags_shift(bits)) - 1)
    return f"ref={ref}{' REMOVAL' if rm else ''} page={ppn}"


def fmt_value(layout: Layout, name: str, value: int) -> str:
    if name.startswith("slot["):
        return fmt_slot(value, layout.cfg.word_bits)
    if name.endswith(".flags"):
        return pg_names(value)
    if ".pte[" in name:
        return pte_names(value)
    if ".tlb[" in name:
        if not value:
            return "-"
        return f"page{tlb_ppn(value)}{' dirty' if tlb_dirty(value) else ''}"
    if name.endswith("_lock"):
        return "free" if value == 0 else f"held by {layout.cfg.threads[value - 1].name}"
    if name.endswith(".holds"):
        return "-" if value == 0 else f"slot {value - 1}"
    return str(value)


def _shown(layout: Layout, k: int) -> bool:
    """Shared state and the ghost 'holds'; not program counters or registers."""
    for base, size in zip(layout.thread0, layout.thread_sizes, strict=True):
        if base <= k < base + size:
            return k - base == layout.fixed_reg["holds"]
    return True


def diff(layout: Layout, a: tuple[int, ...], b: tuple[int, ...]) -> dict[str, str]:
    out = {}
    for k, (x, y) in enumerate(zip(a, b)):
        if x != y and _shown(layout, k):
            name = layout.names[k]
            out[name] = f"{fmt_value(layout, name, x)} -> {fmt_value(layout, name, y)}"
    return out


def _describe(layout: Layout, move: Move) -> tuple[str, str]:
    if move.flush:
        return "tlbflush (IPI)", "tlbflush: the IPI from proc_tlbshootdown lands on this core"
    st = layout.steps[move.pcs[0]]
    assert st is not None
    return f"{st.func}.{st.label}", f"{st.func}: {st.c}"


def build(layout: Layout, outcome: Outcome) -> list[TraceStep]:
    steps: list[TraceStep] = []
    path = outcome.path
    for (s, move), nxt in itertools.pairwise(path):
        assert move is not None
        func, text = _describe(layout, move)
        steps.append(TraceStep(layout.cfg.threads[move.actor].name, func, text,
                               diff(layout, s, nxt[0]), list(move.notes)))
    _, fmove = outcome.final
    if fmove is not None:
        func, text = _describe(layout, fmove)
        steps.append(TraceStep(layout.cfg.threads[fmove.actor].name, func, text, {}, [],
                               f"{outcome.invariant}: {outcome.message}"))
    elif steps and outcome.verdict == "violation":
        steps[-1].violation = f"{outcome.invariant}: {outcome.message}"
    return steps


def render_table(layout: Layout, steps: list[TraceStep], width: int = 34) -> str:
    """One column per thread, one row per step; changes to the right."""
    names = [t.name for t in layout.cfg.threads]
    col = {n: i for i, n in enumerate(names)}

    def cell(text: str) -> str:
        return text[: width - 1].ljust(width)

    lines = ["  # " + "".join(cell(n) for n in names) + "changed"]
    lines.append("  " + "-" * (2 + width * len(names) + 30))
    for n, st in enumerate(steps, 1):
        cells = [""] * len(names)
        cells[col[st.thread]] = st.where
        row = f"{n:3d} " + "".join(cell(c) for c in cells)
        changes = [f"{k}: {v}" for k, v in st.changed.items()] + [f"({x})" for x in st.notes]
        lines.append(row + (changes[0] if changes else ""))
        stmt = " " * 4 + " " * (width * col[st.thread]) + "  " + st.step.split(": ", 1)[-1]
        for c in changes[1:]:
            lines.append(" " * (4 + width * len(names)) + c)
        lines.append(stmt)
        if st.violation:
            lines.append(f"    >>> VIOLATION {st.violation}")
    return "\n".join(lines)


"""Counterexample traces for people (a table, one column per thread) and for
scripts (JSON), from the path the explorer returns."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from pagemap.checker.explore import Move, Outcome
from pagemap.machine import PROC_STATE_NAMES, Layout, tlb_dirty, tlb_ppn, tlb_writable
from pagemap.pageflags import PGSHIFT, pg_names, pte_names
from pagemap.slot import flags_shift, refcnt_shift
from pagemap.vmr import MAP_LOCKED, MAP_POPULATE, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE


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


def _bits(value: int, names: tuple[tuple[int, str], ...]) -> str:
    out = [n for b, n in names if value & b]
    return "|".join(out) if out else "0"


_VM_FLAGS = ((MAP_SHARED, "SHARED"), (MAP_PRIVATE, "PRIVATE"), (MAP_LOCKED, "LOCKED"),
             (MAP_POPULATE, "POPULATE"))
_VM_PROT = ((PROT_READ, "READ"), (PROT_WRITE, "WRITE"))


def fmt_value(layout: Layout, name: str, value: int) -> str:
    if name.startswith("slot["):
        return fmt_slot(value, layout.cfg.word_bits)
    owner, _, field = name.rpartition(".")
    if owner in layout.rec_name:  # a VMR record's field
        if field in ("base", "end"):
            return f"vpn {value >> PGSHIFT:#x}" if value else "0"
        if field == "foff":
            return f"file page {value >> PGSHIFT}"
        if field == "flags":
            return _bits(value, _VM_FLAGS)
        if field == "prot":
            return _bits(value, _VM_PROT)
        if field == "on_pm":
            return f"#{value} on pm_vmrs" if value else "not on pm_vmrs"
        return str(value)
    if field == "flags":
        return pg_names(value)
    if ".pte[" in name:
        return pte_names(value)
    if ".tlb[" in name:
        if not value:
            return "-"
        return (f"page{tlb_ppn(value)}{' dirty' if tlb_dirty(value) else ''}"
                f"{'' if tlb_writable(value) else ' read-only'}")
    if name.endswith("_lock") or field == "occ" or field == "inkern":
        return "free" if value == 0 else f"held by {layout.cfg.threads[value - 1].name}"
    if field == "cpu":
        return "user mode" if value == 0 else f"kernel on {layout.cfg.cores[value - 1].name}"
    if field == "state" and owner in {p.name for p in layout.cfg.processes}:
        return PROC_STATE_NAMES.get(value, str(value))
    if name.endswith(".holds"):
        return "-" if value == 0 else f"slot {value - 1}"
    return str(value)


def _shown(layout: Layout, k: int) -> bool:
    """Shared state and the ghost 'holds'; not program counters or registers."""
    for base, size in zip(layout.thread0, layout.thread_sizes, strict=True):
        if base <= k < base + size:
            return k - base == layout.fixed_reg["holds"]
    return True


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


def diff(layout: Layout, a: tuple[int, ...], b: tuple[int, ...]) -> dict[str, str]:
    out = {}
    for k, (x, y) in enumerate(zip(a, b)):
        if x != y and _shown(layout, k) and not _routine(layout, k, x, y):
            name = layout.names[k]
            out[name] = f"{fmt_value(layout, name, x)} -> {fmt_value(layout, name, y)}"
    return out


def _describe(layout: Layout, move: Move) -> tuple[str, str]:
    if move.flush:
        return "tlbflush (IPI)", "tlbflush: the IPI from proc_tlbshootdown lands on this core"
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
        steps.append(TraceStep(actor_name(layout, move), func, text,
                               diff(layout, s, nxt[0]), list(move.notes)))
    _, fmove = outcome.final
    if fmove is not None:
        func, text = _describe(layout, fmove)
        steps.append(TraceStep(actor_name(layout, fmove), func, text, {}, [],
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


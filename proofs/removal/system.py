"""The symbolic transition system of the removal proofs, for one fix set and word size.

A *step* is a named relation between a pre-state and a post-state (both
``dict``s of Z3 terms, ``proofs.removal.state``).  It is written as a list of
alternatives, each a guard (which may constrain post-state variables the
alternative leaves free) and the variables it changes; every variable an
alternative does not name keeps its value (the frame).  The transition
relation of the system is the disjunction of its steps.

Each step models one atomic step of the executable model (``pagemap.*``) as
seen from slot i, page P, PTE X and TLB entry E; its ``labels`` name those
steps (``pm_find_page.cas``...).  Concrete steps that change nothing the
state abstracts are stuttering and need no symbolic step.  The refinement
check (tests/test_refinement.py) evaluates these same relations on concrete
pre- and post-states of the executable model.

The fixes of ``pagemap.config.FIXES`` are switched on per system, exactly as
the model's steps test ``cfg.fix(...)``; ``sync`` (the shootdown mode) is a
state parameter, so every theorem covers both modes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import z3
from pagemap.config import FIXES, resolve_variant, variant_name
from pagemap.slot import (
    ppn_mask,
    refcnt_max,
    slot_check_refcnt,
    slot_check_removal,
    slot_clear_removal,
    slot_dec_refcnt,
    slot_inc_refcnt,
    slot_page_field,
    slot_set_page,
    slot_set_removal,
)
from pagemap.word import Z3Word

from proofs.removal import state as st

FREE = object()  # in an alternative's changes: the post value is left unconstrained


@dataclass
class Alt:
    """One alternative of a step: a guard and the variables it changes."""

    guard: Any
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Parts:
    """One alternative as the conjunction ``System.alternatives`` builds: the guard and,
    for every variable whose post value it constrains, that equation (in the order of
    ``state.VARS``); ``changed`` names the variables the alternative sets or frees, so
    every other equation is the frame ``post[v] == pre[v]``."""

    guard: Any
    eqs: tuple[tuple[str, Any], ...]
    changed: frozenset[str]


@dataclass(frozen=True)
class Step:
    name: str
    labels: tuple[str, ...]  # the executable model's steps it stands for
    build: Callable[[System, dict[str, Any], dict[str, Any]], list[Alt]]
    doc: str = ""


STEPS: list[Step] = []


def step(name: str, labels: Iterable[str], doc: str = "") -> Callable:
    """Register a step builder ``fn(sys, pre, post) -> list[Alt]``."""

    def deco(fn: Callable) -> Callable:
        assert all(s.name != name for s in STEPS), name
        STEPS.append(Step(name, tuple(labels), fn, doc or (fn.__doc__ or "").strip()))
        return fn

    return deco


class System:
    """The steps of one variant (fix set) at one word size."""

    def __init__(self, variant: str | Iterable[str] = "fixed", bits: int = 64,
                 env_lemmas: bool = True) -> None:
        """``env_lemmas``: constrain the summarised other TLB entries by the lemma
        ``aux/tlb`` proves of E (CMP).  The refinement check turns it off, so that it
        compares the model with the unconstrained environment; the lemma itself is
        checked on every reachable concrete state of the fixed variant instead."""
        self.fixes = resolve_variant(variant if isinstance(variant, str) else list(variant))
        self.variant = variant_name(self.fixes)
        self.bits = bits
        self.env_lemmas = env_lemmas
        self.w = Z3Word(bits)
        self.max = refcnt_max(bits)
        # Importing the step modules registers their steps.
        from proofs.removal import (  # noqa: F401
            steps_mmap,
            steps_mmu,
            steps_mprotect,
            steps_pm,
            steps_remover,
            steps_split,
        )

    def fix(self, name: str) -> bool:
        assert name in FIXES, name
        return name in self.fixes

    # -- the slot word, through pagemap.slot's generic core ---------------------------
    def c(self, value: int) -> Any:
        return self.w.const(value)

    def count(self, v: Any) -> Any:
        """pm_slot_check_refcnt as a mathematical integer."""
        return z3.BV2Int(slot_check_refcnt(self.w, v), is_signed=False)

    def removal(self, v: Any) -> Any:
        return slot_check_removal(self.w, v)

    def page(self, v: Any) -> Any:
        return slot_page_field(self.w, v)

    def inc(self, v: Any) -> Any:
        return slot_inc_refcnt(self.w, v)

    def dec(self, v: Any) -> Any:
        return slot_dec_refcnt(self.w, v)

    def set_removal(self, v: Any) -> Any:
        return slot_set_removal(self.w, v)

    def clear_removal(self, v: Any) -> Any:
        return slot_clear_removal(self.w, v)

    def set_page(self, v: Any, ppn: Any) -> Any:
        return slot_set_page(self.w, v, ppn)

    def valid_ppn(self, p: Any) -> Any:
        """A real page: not pages[0], fits the ppn field (pm_slot_set_page's assert)."""
        return z3.And(p != self.c(0), z3.ULE(p, self.c(ppn_mask(self.bits))))

    # -- the relation -----------------------------------------------------------------
    def parts(self, s: Step, pre: dict[str, Any], post: dict[str, Any],
              frame: bool = True) -> list[Parts]:
        """Each alternative of s as the conjuncts ``alternatives`` joins (``frame``
        False: without the frame's equations, for who decides them otherwise)."""
        out = []
        for alt in s.build(self, pre, post):
            eqs = []
            for v in st.VARS:
                new = alt.changes.get(v.name, pre[v.name])
                assert not (v.const and v.name in alt.changes), (s.name, v.name)
                if new is not FREE and (frame or v.name in alt.changes):
                    eqs.append((v.name, post[v.name] == new))
            guard = z3.BoolVal(alt.guard) if isinstance(alt.guard, bool) else alt.guard
            out.append(Parts(guard, tuple(eqs), frozenset(alt.changes)))
        return out

    def alternatives(self, s: Step, pre: dict[str, Any], post: dict[str, Any]) -> list[Any]:
        return [z3.And(p.guard, *(eq for _, eq in p.eqs)) for p in self.parts(s, pre, post)]

    def relation(self, s: Step, pre: dict[str, Any], post: dict[str, Any]) -> Any:
        """The step as one formula over (pre, post)."""
        alts = self.alternatives(s, pre, post)
        return z3.Or(*alts) if alts else z3.BoolVal(False)

    def steps(self) -> list[Step]:
        return list(STEPS)

    def step_named(self, name: str) -> Step:
        for s in STEPS:
            if s.name == name:
                return s
        raise KeyError(name)


# -- small helpers the step modules share -----------------------------------------------


def b2i(b: Any) -> Any:
    return z3.If(b, 1, 0)


def is_in(x: Any, values: Iterable[int]) -> Any:
    return z3.Or(*[x == v for v in values])


def hasidx_afresh(pre: dict[str, Any], post: dict[str, Any]) -> Any:
    """vmr_has_page_idx(X's VMR, index) is read afresh: X's VMR has other fields now
    (created, split, freed); the abstraction has it only during a run."""
    return z3.Implies(z3.Not(is_in(pre["rm"], st.Rm.RUN)), z3.Not(post["x_hasidx"]))


def others_total(s: dict[str, Any], cls: str = "ab") -> Any:
    return z3.Sum(*[s[f"{c}_{k}"] for c in cls for k in st.OTHER_STATES])


def others_dirty(s: dict[str, Any]) -> Any:
    return z3.Sum(s["a_pd"], s["a_nd"], s["b_pd"], s["b_nd"])


def others_present(s: dict[str, Any], cls: str = "ab") -> Any:
    return z3.Sum(*[s[f"{c}_{k}"] for c in cls for k in ("pc", "pd")])


def move(pre: dict[str, Any], src: str, dst: str | None) -> Alt:
    """One other PTE goes from counter ``src`` to ``dst`` (None: it stops naming P)."""
    ch = {src: pre[src] - 1}
    if dst is not None:
        ch = {} if dst == src else {src: pre[src] - 1, dst: pre[dst] + 1}
    return Alt(pre[src] >= 1, ch)


def plus(alt: Alt, guard: Any = True, **changes: Any) -> Alt:
    """``alt`` with one more guard and more changes."""
    return Alt(z3.And(alt.guard, guard), {**alt.changes, **changes})


def plain_holder(pre: dict[str, Any]) -> Any:
    """Some holder is neither a file writer mid-write nor the finder about to return."""
    return pre["holders"] > pre["fw"] + b2i(pre["fpc"] == st.Find.HIT)


def record(s: dict[str, Any]) -> Any:
    """Somewhere the protocol still knows that P's data may be newer than the store.

    PG_DIRTY; a file writer between its copy and PG_DIRTY; P waiting in
    ptr_store for writepage; PTE_D on X or on another PTE naming P; a D bit in
    a register between an exchange for 0 and its fold (remover or munmap)."""
    return z3.Or(
        s["dirty"], s["fw"] > 0, s["wb"], z3.And(s["xn"], s["xd"]), others_dirty(s) > 0,
        s["omd"] > 0, s["ord"],
        z3.And(s["rm"] == st.Rm.P3D, s["rr_n"], s["rr_d"]),
        z3.And(s["mu"] == st.Mu.P2R, s["mr_n"], s["mr_d"]),
    )

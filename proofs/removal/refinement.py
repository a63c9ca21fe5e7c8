"""Refinement: the symbolic steps mean what the executable model does.

For concrete states of the scenario suite (a breadth-first prefix of each
state space, then random runs to the end, so that every phase of the remover
is reached), every transition the checker would take, and every focus
(slot i, PTE X, TLB entry E; proofs/removal/abstraction.py):

* if the transition leaves the abstract state unchanged, it stutters;
* otherwise some step of the symbolic system, *evaluated as the Z3 relation
  the proofs use* (proofs/removal/evaluate.py), must hold between the two
  abstract states -- possibly followed by ``tlb_exit`` when E's thread ran its
  last op in that transition (the model empties the TLB in the same step).

Every initial state must satisfy the symbolic ``init``.  On the fixed
variant every invariant must hold in every abstract state reached: the
invariants are true of the executable model, not only of the symbolic one.
Local steps are not merged (``merge_local=False``), so each transition is one
step of the C.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import z3
from pagemap.checker.explore import Explorer
from pagemap.checker.invariants import check_state
from pagemap.checker.scenario import load
from pagemap.config import Config
from pagemap.machine import Layout
from pagemap.program import initial_state

from proofs.removal import state as st
from proofs.removal.abstraction import (
    AbstractionError,
    Focus,
    abstract,
    foci,
    thread_finished,
)
from proofs.removal.evaluate import Compiler, Fn
from proofs.removal.invariants import INVARIANTS, init
from proofs.removal.system import Step, System

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"


class Relations:
    """The compiled step relations, invariants and init of one variant and word size."""

    def __init__(self, fixes: Iterable[str], bits: int,
                 replace: dict[str, Callable] | None = None) -> None:
        """``replace``: step name -> builder, a mutated symbolic step (for tests)."""
        self.sys = System(list(fixes), bits, env_lemmas=False)
        pre, post = st.make(bits), st.make(bits, "'")
        comp = Compiler()
        steps = [Step(s.name, s.labels, (replace or {}).get(s.name, s.build))
                 for s in self.sys.steps()]
        self.steps: list[tuple[str, Fn]] = [
            (s.name, comp(self.sys.relation(s, pre, post))) for s in steps]
        # The steps that declare a concrete step of the model among their labels.
        self.by_label: dict[str, list[tuple[str, Fn]]] = {}
        for s, (name, fn) in zip(steps, self.steps, strict=True):
            for label in s.labels:
                self.by_label.setdefault(label.split(" ")[0], []).append((name, fn))
        self.exit = dict(self.steps)["tlb_exit"]
        self.domain = comp(z3.And(*st.domain(pre)))
        self.invariants = [(i.name, comp(i.formula(self.sys, pre))) for i in INVARIANTS]
        self.init = comp(init(self.sys, pre))
        self.hits: Counter[str] = Counter()

    def match(self, env: dict[str, Any], label: str = "") -> str | None:
        """The first step whose relation holds: those declaring the concrete step
        ``label`` first (so that the counts say which step explained what)."""
        order = self.by_label.get(label, []) + sorted(self.steps, key=lambda s: -self.hits[s[0]])
        for name, fn in order:
            if fn(env):
                self.hits[name] += 1
                return name
        return None


def _env(pre: dict[str, Any], post: dict[str, Any]) -> dict[str, Any]:
    env = dict(pre)
    env.update({k + "'": v for k, v in post.items()})
    return env


def _diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {a[k]} -> {b[k]}" for k in a if a[k] != b[k])


@dataclass
class Report:
    scenarios: int = 0
    states: int = 0
    pairs: int = 0  # (transition, focus) pairs checked
    stutter: int = 0
    composite: int = 0  # matched as step + tlb_exit
    invariant_checks: int = 0  # (state, focus) pairs the invariants were evaluated on
    matched: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def fail(self, text: str) -> None:
        if len(self.failures) < 50 and text not in self.failures:
            self.failures.append(text)


class Checker:
    def __init__(self, report: Report, replace: dict[str, Callable] | None = None) -> None:
        self.report = report
        self.replace = replace
        self.relations: dict[tuple[frozenset[str], int], Relations] = {}
        self.cache: dict[tuple[tuple[int, ...], Focus], dict[str, Any]] = {}

    def rel(self, cfg: Config) -> Relations:
        key = (cfg.fixes, cfg.word_bits)
        if key not in self.relations:
            self.relations[key] = Relations(cfg.fixes, cfg.word_bits, self.replace)
        return self.relations[key]

    def abs(self, layout: Layout, s: tuple[int, ...], f: Focus) -> dict[str, Any] | None:
        key = (s, f)
        if key not in self.cache:
            try:
                self.cache[key] = abstract(layout, s, f)
            except AbstractionError as e:
                self.report.fail(f"{layout.cfg.name} [{layout.cfg.variant}] "
                                 f"{f.describe(layout)}: {e}")
                return None
        return self.cache[key]

    def check_state(self, cfg: Config, layout: Layout, s: tuple[int, ...], what: str,
                    fs: list[Focus]) -> None:
        rel = self.rel(cfg)
        for f in fs:
            a = self.abs(layout, s, f)
            if a is None:
                continue
            if not rel.domain(a):
                self.report.fail(f"{what} {f.describe(layout)}: out of the domain: {a}")
            if what == "init" and not rel.init(a):
                self.report.fail(f"{cfg.name} [{cfg.variant}] {f.describe(layout)}: the "
                                 f"initial state does not satisfy init: {a}")
            if cfg.variant == "fixed":
                self.report.invariant_checks += 1
                for name, fn in rel.invariants:
                    if not fn(a):
                        self.report.fail(f"{what} {f.describe(layout)}: invariant {name} "
                                         f"false in a reachable state: {a}")

    def check_transition(self, cfg: Config, layout: Layout, s: tuple[int, ...],
                         t: tuple[int, ...], actor: int, flush: bool, what: str,
                         fs: list[Focus]) -> None:
        label = what.split(" ")[-1]
        rel = self.rel(cfg)
        for f in fs:
            a, b = self.abs(layout, s, f), self.abs(layout, t, f)
            if a is None or b is None:
                continue
            self.report.pairs += 1
            if a == b:
                self.report.stutter += 1
                continue
            name = rel.match(_env(a, b), label)
            if name is None and f.u is not None and not flush and \
                    thread_finished(layout, s, t, f.u):
                name = self._composite(rel, a, b)
            if name is None:
                self.report.fail(f"{what} {f.describe(layout)}: no symbolic step for "
                                 f"{_diff(a, b)}")
            else:
                self.report.matched[name] += 1

    def _composite(self, rel: Relations, a: dict[str, Any], b: dict[str, Any]) -> str | None:
        """E's thread finished in this transition: a step, then tlb_exit."""
        for e, ed, ep in product((False, True), repeat=3):
            mid = {**b, "e": e, "ed": ed, "ep": ep}
            if rel.exit(_env(mid, b)):
                name = rel.match(_env(a, mid)) if a != mid else "stutter"
                if name is not None:
                    self.report.composite += 1
                    return f"{name}+tlb_exit"
        return None


def _moves(ex: Explorer, s: tuple[int, ...]) -> Iterator[tuple[tuple[int, ...], int, bool, str]]:
    """Successors of s: (state, thread, whether it is a TLB flush, the step's name)."""
    layout = ex.layout
    for actor, nxt, viol in ex.successors(s):
        # A step that breaks an invariant of the checker ends the run there: the
        # explorer never goes on from it, and neither does refinement.
        if viol is not None or nxt is None or check_state(layout, nxt) is not None:
            continue
        if actor < 0:
            yield nxt, -actor - 1, True, "flush"
            continue
        step = layout.steps[s[layout.thread0[actor]]]
        label = f"{step.func}.{step.label}" if step is not None else "?"
        yield nxt, actor, False, f"{layout.cfg.threads[actor].name} {label}"


def check_scenario(checker: Checker, path: Path, variant: str, max_states: int, walks: int,
                   seed: int = 0, model_replace: dict[str, Callable] | None = None) -> None:
    """BFS up to ``max_states`` states, then ``walks`` random runs to completion.
    ``model_replace``: a mutated step of the executable model (for tests)."""
    cfg = load(path, variant)
    ex = Explorer(cfg, contracts=True, merge_local=False, replace=model_replace)
    layout = ex.layout
    fs = list(foci(layout))
    name = f"{cfg.name} [{cfg.variant}]"
    init_s = initial_state(layout)
    checker.check_state(cfg, layout, init_s, "init", fs)
    seen = {init_s}
    frontier = [init_s]
    visited = 0
    while frontier and visited < max_states:
        s = frontier.pop(0)
        visited += 1
        for t, actor, flush, label in _moves(ex, s):
            checker.check_transition(cfg, layout, s, t, actor, flush, f"{name} {label}", fs)
            if t not in seen:
                seen.add(t)
                checker.check_state(cfg, layout, t, f"{name} state", fs)
                frontier.append(t)
    rng = random.Random(seed)
    for _ in range(walks):
        s = init_s
        for _depth in range(2000):
            succ = list(_moves(ex, s))
            if not succ:
                break
            t, actor, flush, label = rng.choice(succ)
            checker.check_transition(cfg, layout, s, t, actor, flush, f"{name} {label}", fs)
            if t not in seen:
                seen.add(t)
                checker.check_state(cfg, layout, t, f"{name} state", fs)
            s = t
    checker.report.states += len(seen)
    checker.report.scenarios += 1
    checker.cache.clear()


#: Scenarios of this package that exercise steps the suite does not (refinement only).
EXTRA = Path(__file__).resolve().parent / "scenarios"


def all_scenarios() -> list[Path]:
    return sorted(SCENARIOS.glob("*.toml")) + sorted(EXTRA.glob("*.toml"))


def run(paths: Iterable[Path] | None = None, variants: Iterable[str] = ("seed", "fixed"),
        max_states: int = 1500, walks: int = 25, budget_s: float | None = None) -> Report:
    report = Report()
    checker = Checker(report)
    start = time.monotonic()
    for path in paths or all_scenarios():
        for variant in variants:
            if budget_s is not None and time.monotonic() - start > budget_s:
                return report
            check_scenario(checker, path, variant, max_states, walks)
    return report


if __name__ == "__main__":
    t0 = time.monotonic()
    r = run()
    print(f"{r.scenarios} runs, {r.states} states, {r.pairs} pairs ({r.stutter} stutter, "
          f"{r.composite} composite), {r.invariant_checks} invariant checks, "
          f"{time.monotonic() - t0:.1f} s")
    for name, n in sorted(r.matched.items()):
        print(f"  {name}: {n}")
    for fail in r.failures:
        print("FAIL", fail)

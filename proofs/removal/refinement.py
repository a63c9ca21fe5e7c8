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

import dataclasses
import operator
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import z3
from pagemap.checker.explore import BRANCH, Explorer
from pagemap.checker.invariants import check_state
from pagemap.checker.scenario import load
from pagemap.config import Config
from pagemap.machine import Layout
from pagemap.program import initial_state

from proofs.removal import state as st
from proofs.removal.abstraction import (
    AbstractionError,
    Focus,
    View,
    abstract,
    core_leaves,
    foci,
)
from proofs.removal.evaluate import Compiler, Fn
from proofs.removal.invariants import INVARIANTS, init
from proofs.removal.system import Step, System

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"


#: An abstract state as a tuple, in the order of ``state.VARS`` (hashable, interned).
NAMES = tuple(v.name for v in st.VARS)
Key = tuple[Any, ...]
#: A concrete state's abstract states, one per focus of the run: (values, key), None
#: where the abstraction failed.
Abs = list[tuple[dict[str, Any], Key] | None]
#: A step matched: (step, alternative, whether the step declares the concrete step,
#: every (step, alternative) declaring it that holds -- each is realised).
Match = tuple[str, int, bool, tuple[tuple[str, int], ...]]


_KEY = operator.itemgetter(*NAMES)


def key_of(a: dict[str, Any]) -> Key:
    return _KEY(a)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class CompiledAlt:
    """One alternative of a step (``system.Parts``), compiled: its guard, the equations
    of the variables it changes, and their positions in a key (the rest is the frame)."""

    guard: Fn
    sets: tuple[Fn, ...]
    changed: frozenset[int]


class Relations:
    """The compiled step relations, invariants and init of one variant and word size:
    the system the proofs use (``System(fixes, bits)``, the CMP lemma on), each
    alternative of each step compiled on its own, so that a match says which one held.
    Evaluations are memoised per abstract (pre, post) pair: abstract states repeat a
    great deal more than concrete ones."""

    def __init__(self, fixes: Iterable[str], bits: int,
                 replace: dict[str, Callable] | None = None, env_lemmas: bool = True,
                 compiler: Compiler | None = None) -> None:
        """``replace``: step name -> builder, a mutated symbolic step (for tests).
        ``env_lemmas``: False only for ``lax``, below.  ``compiler``: shared by the
        systems of one check; Z3 shares equal subterms, so what two variants have in
        common (most of every step) is compiled once."""
        self.fixes, self.bits, self.replace = list(fixes), bits, replace
        self._lax: Relations | None = None
        self.sys = System(list(fixes), bits, env_lemmas=env_lemmas)
        self.variant = self.sys.variant
        pre, post = st.make(bits), st.make(bits, "'")
        comp = self.compiler = compiler or Compiler()
        self.steps = [Step(s.name, s.labels, (replace or {}).get(s.name, s.build), s.doc)
                      for s in self.sys.steps()]
        index = {n: k for k, n in enumerate(NAMES)}
        self.alts: dict[str, list[CompiledAlt]] = {}
        #: (step, alternative) no transition can be explained by, and why: a guard Z3
        #: simplifies to false on this variant, or no change at all (the concrete steps
        #: it stands for leave the abstract state as it is: they stutter)
        self.void: dict[tuple[str, int], str] = {}
        for s in self.steps:
            parts = self.sys.parts(s, pre, post, frame=False)
            self.alts[s.name] = [CompiledAlt(comp(p.guard), tuple(comp(eq) for _, eq in p.eqs),
                                             frozenset(index[n] for n in p.changed))
                                 for p in parts]
            for k, p in enumerate(parts):
                if z3.is_false(z3.simplify(p.guard)):
                    self.void[(s.name, k)] = "false on this variant"
                elif len(p.eqs) == len(p.changed) and all(
                        z3.eq(eq, post[n] == pre[n]) for n, eq in p.eqs):
                    self.void[(s.name, k)] = "changes nothing (stutters)"
        #: concrete step name -> the symbolic steps that declare it among their labels
        self.by_label: dict[str, list[str]] = {}
        for s in self.steps:
            for label in s.labels:
                self.by_label.setdefault(label.split(" ")[0], []).append(s.name)
        self.domain = comp(z3.And(*st.domain(pre)))
        self.invariants = [(i.name, comp(i.formula(self.sys, pre))) for i in INVARIANTS]
        self.init = comp(init(self.sys, pre))
        self._match: dict[tuple[Key, Key, tuple[str, ...]], Match | None] = {}
        self._inv: dict[Key, tuple[str, ...]] = {}
        self._dom: dict[Key, bool] = {}

    @property
    def lax(self) -> Relations:
        """The same system without the CMP guard of the environment step.  Where the
        abstract pre-state already breaks an invariant (seed, past one of its
        counterexamples) the guard -- a lemma the proofs show only *inside* the
        invariant -- no longer bounds what other TLB entries do, and the model is
        checked against this system instead (``Report.beyond``)."""
        if self._lax is None:
            self._lax = Relations(self.fixes, self.bits, self.replace, env_lemmas=False,
                                  compiler=self.compiler)
        return self._lax

    def _holding(self, a: dict[str, Any], b: dict[str, Any], ka: Key, kb: Key,
                 names: Iterable[str], first: bool = True) -> list[tuple[str, int]]:
        """The (step, alternative)s of ``names`` that hold from a to b, in order (only
        the first with ``first``).  The frame equations are decided on the keys: an
        alternative can hold only if every variable that differs is one it changes."""
        diff = frozenset(k for k, (x, y) in enumerate(zip(ka, kb, strict=True)) if x != y)
        env: dict[str, Any] | None = None
        out = []
        for name in names:
            for k, alt in enumerate(self.alts[name]):
                if not diff <= alt.changed:
                    continue
                env = env or _env(a, b)
                if alt.guard(env) and all(eq(env) for eq in alt.sets):
                    out.append((name, k))
                    if first:
                        return out
        return out

    def holds(self, name: str, a: dict[str, Any], b: dict[str, Any]) -> int | None:
        """The first alternative of step ``name`` that holds from a to b."""
        hit = self._holding(a, b, key_of(a), key_of(b), [name])
        return hit[0][1] if hit else None

    def match(self, a: dict[str, Any], b: dict[str, Any], labels: tuple[str, ...] = (),
              ka: Key | None = None, kb: Key | None = None) -> Match | None:
        """(step, alternative, whether the step declares one of ``labels``, every
        alternative of a step declaring them that holds) for a -> b: the steps
        declaring the concrete step first, then any other."""
        ka = key_of(a) if ka is None else ka
        kb = key_of(b) if kb is None else kb
        memo = (ka, kb, labels)
        if memo in self._match:
            return self._match[memo]
        own = [n for lab in labels for n in self.by_label.get(lab, [])]
        every = tuple(self._holding(a, b, ka, kb, own, first=False))
        out: Match | None = None
        if every:
            out = (every[0][0], every[0][1], True, every)
        else:
            other = self._holding(a, b, ka, kb, [s.name for s in self.steps if s.name not in own])
            if other:
                out = (other[0][0], other[0][1], False, ())
        self._match[memo] = out
        return out

    def broken(self, a: dict[str, Any], k: Key | None = None) -> tuple[str, ...]:
        """The invariants false in a."""
        k = key_of(a) if k is None else k
        out = self._inv.get(k)
        if out is None:
            out = tuple(name for name, fn in self.invariants if not fn(a))
            self._inv[k] = out
        return out

    def in_domain(self, a: dict[str, Any], k: Key) -> bool:
        out = self._dom.get(k)
        if out is None:
            out = self._dom[k] = bool(self.domain(a))
        return out


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
    transitions: int = 0
    pairs: int = 0  # (transition, focus) pairs checked
    stutter: int = 0
    composite: int = 0  # matched as step + tlb_exit
    invariant_checks: int = 0  # (state, focus) pairs the invariants were evaluated on
    exhaustive: bool = True  # every reachable state of every run was visited
    matched: Counter[str] = field(default_factory=Counter)
    #: (step, alternative) -> how many (transition, focus) pairs it explained
    alternatives: Counter[tuple[str, int]] = field(default_factory=Counter)
    #: (concrete step, symbolic step) matched although the symbolic step does not
    #: declare the concrete one among its labels
    unlabelled: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: findings.Expected index -> "scenario [variant] step, focus" realising it
    realised: dict[int, str] = field(default_factory=dict)
    #: (scenario, variant, states, foci, seconds, failures, exhaustive)
    per_run: list[tuple[str, str, int, int, float, int, bool]] = field(default_factory=list)
    #: (variant, step, alternative) of every system the runs used
    all_alternatives: set[tuple[str, str, int]] = field(default_factory=set)
    #: (variant, step, alternative) that explained some (transition, focus) pair
    hit: set[tuple[str, str, int]] = field(default_factory=set)
    #: (variant, step, alternative) left out of coverage: void (Relations.void)
    void: set[tuple[str, str, int]] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    nfail: int = 0
    finding_states: int = 0  # states of the fixed-without-FIX runs that look for findings
    #: pairs from states outside the invariant (seed, past a counterexample of the
    #: proofs) explained only without the CMP guard, and explained by no step at all
    beyond: int = 0
    outside: int = 0

    def fail(self, text: str) -> None:
        self.nfail += 1
        if len(self.failures) < 50 and text not in self.failures:
            self.failures.append(text)

    #: the counters `totals` carries (the ones tests/test_refinement.py asserts on)
    TOTALS = ("scenarios", "states", "transitions", "pairs", "stutter", "composite",
              "invariant_checks", "exhaustive", "nfail")

    def totals(self) -> dict[str, Any]:
        """The run's counters, its failures, matched steps and unlabelled matches, as
        JSON: the witness of the ``refinement/totals`` record, which `pagemap verify`
        hands to its pytest child so that the refinement tests assert on the
        exhaustive run instead of repeating a bounded one."""
        return {**{k: getattr(self, k) for k in self.TOTALS}, "failures": self.failures,
                "matched": dict(self.matched),
                "unlabelled": [[a, b, n] for (a, b), n in self.unlabelled.items()]}

    @classmethod
    def from_totals(cls, d: dict[str, Any]) -> Report:
        """The Report that ``totals`` was made from, as far as ``totals`` carries it."""
        return cls(**{k: d[k] for k in cls.TOTALS}, failures=list(d["failures"]),
                   matched=Counter(d["matched"]),
                   unlabelled=Counter({(a, b): n for a, b, n in d["unlabelled"]}))


class Checker:
    def __init__(self, report: Report, replace: dict[str, Callable] | None = None,
                 labels: bool = True) -> None:
        """``labels``: a match whose step does not declare the concrete step is a
        failure (else only counted)."""
        self.report = report
        self.replace = replace
        self.labels = labels
        self.relations: dict[tuple[frozenset[str], int], Relations] = {}
        self.compiler = Compiler()
        self.dicts: dict[Key, tuple[dict[str, Any], Key]] = {}  # interned abstract states
        self.foci: list[Focus] = []  # the current run's
        #: the Expected entries to look for in the current run (index, entry)
        self.wanted: list[tuple[int, Any]] = []
        #: a search for them only: a run stops once every one is realised
        self.search = False

    def rel(self, cfg: Config) -> Relations:
        key = (cfg.fixes, cfg.word_bits)
        if key not in self.relations:
            self.relations[key] = Relations(cfg.fixes, cfg.word_bits, self.replace,
                                            compiler=self.compiler)
        return self.relations[key]

    def abstract_all(self, layout: Layout, s: tuple[int, ...]) -> Abs:
        """The abstract state of s for every focus of the run, each with its key.
        Computed once per concrete state (the foci share its View); abstract states
        repeat, so each distinct one is kept once (interned) and the run keeps, per
        concrete state, a pointer per focus."""
        view = View(layout, s)
        out: Abs = []
        for g in self.foci:
            try:
                a = abstract(layout, s, g, view)
            except AbstractionError as e:
                self.report.fail(f"{layout.cfg.name} [{layout.cfg.variant}] "
                                 f"{g.describe(layout)}: {e}")
                out.append(None)
                continue
            k = key_of(a)
            out.append(self.dicts.setdefault(k, (a, k)))
        return out

    def check_state(self, cfg: Config, layout: Layout, s: tuple[int, ...], what: str,
                    fs: list[Focus], abs_s: Abs | None = None) -> Abs:
        """Domain, init (``what`` "init") and, on fixed, every invariant in each of s's
        abstract states; returns them (``abs_s``: already computed)."""
        rel = self.rel(cfg)
        abs_s = self.abstract_all(layout, s) if abs_s is None else abs_s
        for f, hit in zip(fs, abs_s, strict=True):
            if hit is None:
                continue
            a, ka = hit
            if not rel.in_domain(a, ka):
                self.report.fail(f"{what} {f.describe(layout)}: out of the domain: {a}")
            if what == "init" and not rel.init(a):
                self.report.fail(f"{cfg.name} [{cfg.variant}] {f.describe(layout)}: the "
                                 f"initial state does not satisfy init: {a}")
            if cfg.variant == "fixed":
                self.report.invariant_checks += 1
                for name in rel.broken(a, ka):
                    self.report.fail(f"{what} {f.describe(layout)}: invariant {name} "
                                     f"false in a reachable state: {a}")
        return abs_s

    def check_transition(self, cfg: Config, layout: Layout, s: tuple[int, ...],
                         t: tuple[int, ...], actor: int, flush: bool, what: str,
                         fs: list[Focus], abs_s: Abs, abs_t: Abs) -> None:
        """``abs_s``, ``abs_t``: the abstract states of s and t (``abstract_all``)."""
        label = what.split(" ")[-1]
        rel = self.rel(cfg)
        leaves: dict[int, bool] = {}
        for f, ha, hb in zip(fs, abs_s, abs_t, strict=True):
            if ha is None or hb is None:
                continue
            self.report.pairs += 1
            if ha is hb:  # interned: the same abstract state
                self.report.stutter += 1
                continue
            (a, ka), (b, kb) = ha, hb
            # E's core abandoning the address space (its last thread done, or its
            # SCP blocked) empties its TLB in the same step ("dispatch")
            ends = False
            if f.c is not None and not flush:
                ends = leaves.get(f.c, None)  # type: ignore[assignment]
                if ends is None:
                    ends = leaves[f.c] = core_leaves(layout, s, t, f.c)
            labels = (label, "dispatch") if ends else (label,)
            if self.wanted:
                self._realises(rel, a, b, labels, f"{what}, {f.describe(layout)}")
            hit = rel.match(a, b, labels, ka, kb)
            if (hit is None or not hit[2]) and self._outside(rel, abs_s):
                # Past a counterexample of the proofs (seed): the system is only
                # claimed inside the invariant; count what happens out there.  Only
                # a step declaring the concrete step explains it (of the system
                # without the CMP lemma): another that happens to hold is an accident
                # of a loose relation.
                lax = rel.lax.match(a, b, labels, ka, kb)
                if lax is None or not lax[2]:
                    self.report.outside += 1
                    continue
                hit = lax
                self.report.beyond += 1
            name = None
            if hit is not None:
                name = hit[0]
                self.report.alternatives[(hit[0], hit[1])] += 1
                self.report.hit.add((cfg.variant, hit[0], hit[1]))
                self.report.hit.update((cfg.variant, n, k) for n, k in hit[3])
                if not hit[2]:
                    self.report.unlabelled[(label, hit[0])] += 1
                    if self.labels:
                        self.report.fail(f"{what} {f.describe(layout)}: matched {hit[0]}, "
                                         f"whose labels do not include {label}")
            elif ends:
                name = self._composite(rel, a, b, labels)
            if name is None:
                self.report.fail(f"{what} {f.describe(layout)}: no symbolic step for "
                                 f"{_diff(a, b)}")
            else:
                self.report.matched[name] += 1

    def _outside(self, rel: Relations, abs_s: Abs) -> bool:
        """Some focus of s breaks an invariant: the state lies past a counterexample
        (for the CMP guard, the entry that broke `tlb-dirty-recorded` is E of
        another focus)."""
        return any(hit is not None and rel.broken(*hit) for hit in abs_s)

    def _composite(self, rel: Relations, a: dict[str, Any], b: dict[str, Any],
                   labels: tuple[str, ...]) -> str | None:
        """E's thread finished in this transition: a step, then tlb_exit."""
        for e, ed, ew, ep in product((False, True), repeat=4):
            mid = {**b, "e": e, "ed": ed, "ew": ew, "ep": ep}
            if rel.holds("tlb_exit", mid, b) is not None:
                hit = rel.match(a, mid, labels) if a != mid else ("stutter", 0, True, ())
                if hit is not None:
                    self.report.composite += 1
                    if hit[0] != "stutter":
                        self.report.alternatives[(hit[0], hit[1])] += 1
                        self.report.hit.add((rel.variant, hit[0], hit[1]))
                        self.report.hit.update((rel.variant, n, k) for n, k in hit[3])
                    self.report.alternatives[("tlb_exit", 0)] += 1
                    self.report.hit.add((rel.variant, "tlb_exit", 0))
                    return f"{hit[0]}+tlb_exit"
        return None

    def _realises(self, rel: Relations, a: dict[str, Any], b: dict[str, Any],
                  labels: tuple[str, ...], where: str) -> None:
        """A concrete transition is the counterexample to induction ``e`` when all
        invariants hold before it, it is a concrete step that e's step declares, the
        step's relation holds between the two abstract states, and e's invariant is
        false after it (the finding's pin too)."""
        if rel.broken(a):
            return
        after = rel.broken(b)
        for idx, e in self.wanted:
            if idx in self.report.realised or e.invariant not in after:
                continue
            if not any(e.step in rel.by_label.get(lab, ()) for lab in labels):
                continue
            if rel.holds(e.step, a, b) is not None and pin_holds(rel, e, a, b):
                self.report.realised[idx] = where


def pin_holds(rel: Relations, e: Any, a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Evaluate a finding's pin (a Z3 formula over pre and post) on concrete values."""
    pre, post = st.make(rel.sys.bits), st.make(rel.sys.bits, "'")
    formula = z3.substitute(e.pin(rel.sys, pre, post), *_bindings(pre, a), *_bindings(post, b))
    return z3.is_true(z3.simplify(formula))


def _bindings(terms: dict[str, Any], values: dict[str, Any]) -> list[tuple[Any, Any]]:
    out = []
    for name, term in terms.items():
        v = values[name]
        if z3.is_bool(term):
            out.append((term, z3.BoolVal(bool(v))))
        elif z3.is_bv(term):
            out.append((term, z3.BitVecVal(v, term.size())))
        else:
            out.append((term, z3.IntVal(int(v))))
    return out


def _moves(ex: Explorer, s: tuple[int, ...], known: Container[tuple[int, ...]] = frozenset()
           ) -> Iterator[tuple[tuple[int, ...], int, bool, str]]:
    """Successors of s: (state, thread, whether it is a TLB flush, the step's name).
    ``known``: states already reached (they passed the checker's invariants)."""
    layout = ex.layout
    for actor, nxt, viol in ex.successors(s):
        # A step that breaks an invariant of the checker ends the run there: the
        # explorer never goes on from it, and neither does refinement.
        if viol is not None or nxt is None or (
                nxt not in known and check_state(layout, nxt) is not None):
            continue
        if actor < 0:
            yield nxt, -actor - 1, True, "flush"
            continue
        actor &= BRANCH - 1  # an allocation failure's branch is the same step
        step = layout.steps[s[layout.thread0[actor]]]
        label = f"{step.func}.{step.label}" if step is not None else "?"
        yield nxt, actor, False, f"{layout.cfg.threads[actor].name} {label}"


#: Refinement-only scenarios whose VMRs lie on pm_vmrs in another order than the
#: scenario file can declare (position k holds the declared VMR order[k]).
PM_VMRS_ORDER: dict[str, tuple[int, ...]] = {"refine-reowe.toml": (0, 2, 1)}


def reorder_vmrs(cfg: Config, order: tuple[int, ...]) -> Config:
    """The configuration with its VMRs (and so pm_vmrs) in ``order``: every index
    into ``cfg.vmrs`` (processes, ops, prefault) is renumbered."""
    assert sorted(order) == list(range(len(cfg.vmrs))), order
    new_of = {old: new for new, old in enumerate(order)}
    procs = tuple(dataclasses.replace(p, vmrs=tuple(sorted(new_of[v] for v in p.vmrs)))
                  for p in cfg.processes)
    threads = tuple(dataclasses.replace(th, ops=tuple(
        dataclasses.replace(op, vmr=new_of[op.vmr]) if op.vmr >= 0 else op for op in th.ops))
        for th in cfg.threads)
    return dataclasses.replace(cfg, processes=procs, threads=threads,
                               vmrs=tuple(cfg.vmrs[v] for v in order),
                               prefault=tuple(cfg.prefault[v] for v in order))


def check_scenario(checker: Checker, path: Path, variant: str,
                   max_states: int | None = None, walks: int = 0, seed: int = 0,
                   model_replace: dict[str, Callable] | None = None) -> bool:
    """Breadth-first over every reachable state (up to ``max_states``, None: no
    limit), then ``walks`` random runs to completion; True when the run was
    exhaustive.  ``model_replace``: a mutated step of the executable model (tests)."""
    t0 = time.monotonic()
    fails0 = checker.report.nfail
    cfg = load(path, variant)
    if path.name in PM_VMRS_ORDER:
        cfg = reorder_vmrs(cfg, PM_VMRS_ORDER[path.name])
    # Contracts off: the same steps (icontract keeps them in __wrapped__), whose
    # conditions the scenario suite checks; here they would cost a third of the time.
    ex = Explorer(cfg, contracts=False, merge_local=False, replace=model_replace)
    layout = ex.layout
    fs = list(foci(layout))
    checker.foci = fs
    name = f"{cfg.name} [{cfg.variant}]"
    init_s = initial_state(layout)
    #: every state reached -> its abstract states (one per focus)
    seen: dict[tuple[int, ...], Abs] = {init_s: checker.check_state(
        cfg, layout, init_s, "init", fs)}
    frontier = deque([init_s])
    visited = 0
    report = checker.report

    def reach(t: tuple[int, ...]) -> tuple[Abs, bool]:
        abs_t = seen.get(t)
        if abs_t is not None:
            return abs_t, False
        abs_t = seen[t] = checker.check_state(cfg, layout, t, f"{name} state", fs)
        return abs_t, True

    while frontier and (max_states is None or visited < max_states):
        if checker.search and all(k in report.realised for k, _ in checker.wanted):
            break
        s = frontier.popleft()
        abs_s = seen[s]
        visited += 1
        for t, actor, flush, label in _moves(ex, s, seen):
            report.transitions += 1
            abs_t, new = reach(t)
            checker.check_transition(cfg, layout, s, t, actor, flush, f"{name} {label}", fs,
                                     abs_s, abs_t)
            if new:
                frontier.append(t)
    exhaustive = not frontier
    rng = random.Random(seed)
    for _ in range(walks):
        s = init_s
        for _depth in range(2000):
            succ = list(_moves(ex, s, seen))
            if not succ:
                break
            t, actor, flush, label = rng.choice(succ)
            abs_t, _new = reach(t)
            checker.check_transition(cfg, layout, s, t, actor, flush, f"{name} {label}", fs,
                                     seen[s], abs_t)
            s = t
    report.states += len(seen)
    report.scenarios += 1
    report.exhaustive &= exhaustive
    report.per_run.append((path.stem, cfg.variant, len(seen), len(fs),
                           round(time.monotonic() - t0, 2), report.nfail - fails0, exhaustive))
    rel = checker.rel(cfg)
    report.all_alternatives.update((rel.variant, name, k) for name, fns in rel.alts.items()
                                   for k in range(len(fns)) if (name, k) not in rel.void)
    report.void.update((rel.variant, name, k) for name, k in rel.void)
    checker.dicts.clear()
    return exhaustive


#: Scenarios of this package that exercise steps the suite does not (refinement only).
EXTRA = Path(__file__).resolve().parent / "scenarios"


#: Ops whose steps change what the abstraction holds constant or has no step for,
#: and why the proved system has no sound image of them (spec/removal/index.md,
#: section 6).  A scenario with one of them is out of the refinement suite, with a
#: row saying why: its transitions would be reported unmatched, not stuttered.  Every
#: op of the model has an image now (the last in were mmap's failing MAP_POPULATE and
#: its merges).
OUT_OF_SCOPE_OPS: dict[str, str] = {}


def out_of_scope(cfg: Config) -> str | None:
    """Why a scenario is not in the refinement suite (None: it is)."""
    for th in cfg.threads:
        for op in th.ops:
            if op.op in OUT_OF_SCOPE_OPS:
                return f"{op.op}: {OUT_OF_SCOPE_OPS[op.op]}"
    return None


def every_scenario() -> list[Path]:
    return sorted(SCENARIOS.glob("*.toml")) + sorted(EXTRA.glob("*.toml"))


def excluded() -> dict[str, str]:
    """The scenarios left out of the refinement suite, and why."""
    out = {}
    for path in every_scenario():
        why = out_of_scope(load(path, "fixed"))
        if why is not None:
            out[path.stem] = why
    return out


def all_scenarios() -> list[Path]:
    """The refinement suite: every scenario whose ops the proved system models."""
    gone = excluded()
    return [p for p in every_scenario() if p.stem not in gone]


def merge(into: Report, part: Report) -> None:
    """Add a run's report to another (the parallel runs' reports to the total)."""
    for name in ("scenarios", "states", "transitions", "pairs", "stutter", "composite",
                 "invariant_checks", "nfail", "finding_states", "beyond", "outside"):
        setattr(into, name, getattr(into, name) + getattr(part, name))
    into.exhaustive &= part.exhaustive
    for name in ("matched", "alternatives", "unlabelled"):
        getattr(into, name).update(getattr(part, name))
    into.all_alternatives |= part.all_alternatives
    into.hit |= part.hit
    into.void |= part.void
    for k, where in part.realised.items():
        into.realised.setdefault(k, where)
    into.per_run.extend(part.per_run)
    for f in part.failures:
        if len(into.failures) < 50 and f not in into.failures:
            into.failures.append(f)


_WORKER: Checker | None = None


def _one(task: tuple[Path, str, int | None, int, bool]) -> Report:
    """One (scenario, variant) in a worker process, with the worker's compiled systems."""
    global _WORKER
    from proofs.removal.findings import EXPECTED

    path, variant, max_states, walks, findings = task
    if _WORKER is None:
        _WORKER = Checker(Report())
    _WORKER.report = Report()
    _WORKER.wanted = [(k, e) for k, e in enumerate(EXPECTED) if e.seed] \
        if findings and variant == "seed" else []
    check_scenario(_WORKER, path, variant, max_states, walks)
    return _WORKER.report


def run(paths: Iterable[Path] | None = None, variants: Iterable[str] = ("seed", "fixed"),
        max_states: int | None = None, walks: int = 0, findings: bool = True,
        jobs: int = 1) -> Report:
    """Every scenario on each variant, exhaustively by default (``jobs`` processes);
    seed runs also look for the expected counterexamples (seed has every fix off),
    and with ``findings`` the rest are looked for on fixed-without-FIX."""
    tasks = [(p, v, max_states, walks, findings) for p in (paths or all_scenarios())
             for v in variants]
    report = Report()
    if jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            for part in pool.imap(_one, tasks):
                merge(report, part)
    else:
        for task in tasks:
            merge(report, _one(task))
    if findings:
        checker = Checker(report)
        realise_findings(checker, max_states)
    return report


def realise_findings(checker: Checker, max_states: int | None = None) -> None:
    """For every expected counterexample not yet realised (``run`` looks for them in
    its seed runs), run the finding's checker scenarios, then the refinement-only
    ones (not for entries of UNREALISED), on fixed-without-FIX and record the first
    concrete transition realising it; a run stops once it has realised them all.
    Refinement failures past the first broken invariant are not this search's
    business (the CMP lemma no longer holds there), so they are not reported."""
    from proofs.removal.findings import EXPECTED, checker_scenarios

    for finding in sorted({e.finding for e in EXPECTED}):
        fix = next(e.fix for e in EXPECTED if e.finding == finding)
        wanted = [(k, e) for k, e in enumerate(EXPECTED)
                  if e.finding == finding and k not in checker.report.realised]
        if not wanted:
            continue
        sub = Report()
        inner = Checker(sub, labels=False)
        inner.relations, inner.compiler = checker.relations, checker.compiler
        inner.search = True
        # the finding's own scenarios first; the refinement-only ones for what is left,
        # except what UNREALISED says no scenario of the suite has
        own = checker_scenarios(finding)
        for path in own + sorted(EXTRA.glob("*.toml")):
            inner.wanted = [(k, e) for k, e in wanted if k not in sub.realised and (
                path in own or (e.invariant, e.step) not in UNREALISED)]
            if not inner.wanted:
                continue
            check_scenario(inner, path, f"fixed-without-{fix}", max_states)
        checker.report.realised.update(sub.realised)
        checker.report.finding_states += sub.states


# -- pagemap verify ---------------------------------------------------------------------

#: Worker processes of the exhaustive run in `pagemap verify` (the machine has 2 cores).
JOBS = 2

#: (variant, step, alternative) no concrete transition of the refinement suite can
#: realise, and why: the symbolic step over-approximates what the model's ops do.
#: ``refinement/coverage`` fails when any other alternative of a system the suite uses
#: is never realised (UNCOVERED aside), and when an entry here is realised after all or
#: is gone (then it must leave this list).
_ATOMIC = ("on fixed (atomic-pte-update) the PTE is updated in one atomic step at the "
           "read, so the window between the load and the store is seed's only")
_NO_WAIT = "seed has no wait after its shootdown: the waiting phase exists only with the fix"
_LOCKED_CAS = ("the CAS runs under pm_lock on a word read with refcount 0 (and, in the final "
               "loop, the removal flag set): no lookup can take a reference and no holder "
               "can put one, so the word cannot change between the read and the CAS; the "
               "failing branch is the C's retry, kept for soundness")
_P3_PRESENT = ("pass 3 meets only PTEs pass 2 made not present: P is marked, so no fault "
               "maps it again before pass 3 in a VMR the passes visit")
_NP_AT_FAULT = ("no fault meets a not-present PTE naming P: the remover's pass 2 leaves one "
                "only until its pass 3 zeroes it, holding pm_lock throughout with P marked and "
                "the slot's removal flag set, so no fault gets a reference to P in between (a "
                "reference taken before made the mark skip P); munmap's pass 1 leaves one in a "
                "VMR whose munmap holds vmr_lock until its pass 2 zeroes it, and a fault "
                "writes its PTE under vmr_lock after finding the VMR again")
_PINNED_NEWER = ("on fixed the passes skip, of the VMRs mapping i, only MAP_LOCKED ones, and "
                 "such a VMR pins i while it maps P (the one unpinning, another VMR's "
                 "unlink, other_unlink, is allowed on fixed only when no skipped PTE names "
                 "P): P is never marked, so never written back, and its data, newer "
                 "since the store that set PTE_D in the locked VMR's PTE, stays newer; a "
                 "second store through that PTE changes nothing the proofs track (it stutters)")
UNEXERCISED: dict[tuple[str, str, int], str] = {
    ("fixed", "mu_p1_write_x", 0): _ATOMIC,
    ("fixed", "rm_p2_write_x", 0): _ATOMIC,
    ("fixed", "rm_p3_zero_x", 0): _ATOMIC,
    ("fixed", "mp_pte_write_x", 0): _ATOMIC,
    ("seed", "mu_wait", 0): _NO_WAIT,
    ("seed", "rm_wait_x", 0): _NO_WAIT,
    ("seed", "rm_wait_x", 1): _NO_WAIT,
    **{(v, n, 1): _LOCKED_CAS for v in ("seed", "fixed") for n in ("rm_mark_cas", "rm_final_cas")},
    **{(v, "rm_p3_other", k): _P3_PRESENT for v in ("seed", "fixed") for k in (0, 1)},
    **{(v, "fault_install_other", k): _NP_AT_FAULT for v in ("seed", "fixed")
       for k in (2, 3, 4, 5)},
    ("fixed", "other_store_present", 4): _PINNED_NEWER,
}

#: (variant, step, alternative) a concrete run could realise but no scenario of the
#: refinement suite does yet, and what it would need.  While any is listed the coverage
#: row is ``incomplete`` (expected so); one realised after all must leave the list.
UNCOVERED: dict[tuple[str, str, int], str] = {}

#: findings.EXPECTED entries (invariant, step) without a concrete realisation, and why.
#: Searched in the seed runs of the suite, then on fixed-without-FIX in the finding's
#: scenarios and the refinement-only ones (spec/removal/index.md, section 5).  A listed
#: entry that the exhaustive seed runs do realise simply passes.
_E_OUTLIVES_X = ("the step changes other PTEs only, so it breaks tlb-dirty-recorded only from "
                 "a state where E is dirty and X no longer names P (X naming P with E dirty "
                 "has PTE_D, which is a record), E then being covered by a shootdown still to "
                 "come (tlb-covered); with FIX off the shootdown waits stay on, so X is zeroed "
                 "(pass 3, munmap's pass 2) only after E's core has flushed, and "
                 "fixed-without-FIX has no such state; seed has one only if another core of "
                 "X's process keeps a dirty E while X's own VMR is unmapped and, at the same "
                 "time, another munmap's pass 1 or 2 meets a second PTE naming P: no scenario "
                 "of the suite combines the two (refine-munmap-store-window has the store "
                 "window alone)")
_E_OUTLIVES_X_MP = ("as for munmap's passes: mp_pte_other changes other PTEs only, so it "
                    "breaks tlb-dirty-recorded only from a state where E is dirty and X no "
                    "longer names P, covered by a shootdown still to come; fixed-without-"
                    "atomic-pte-update waits for its shootdowns before X is zeroed, and seed "
                    "would need a dirty E outliving X's zeroing (munmap of X's VMR beside a "
                    "storing sibling core) while mprotect of another VMR naming P races a "
                    "store of a third core: no scenario of the suite combines them")
UNREALISED: dict[tuple[str, str], str] = {
    ("tlb-dirty-recorded", "mu_p1_other"): _E_OUTLIVES_X,
    ("tlb-dirty-recorded", "mu_p2_other"): _E_OUTLIVES_X,
    ("tlb-dirty-recorded", "mp_pte_other"): _E_OUTLIVES_X_MP,
}


def records(report: Report) -> list[Any]:
    """The refinement rows of `pagemap verify` (kind ``refinement``)."""
    from pagemap.results import CheckResult

    from proofs.removal.findings import EXPECTED

    out = []
    for stem, reason in sorted(excluded().items()):
        out.append(CheckResult("refinement", f"refinement/{stem}", "incomplete", "incomplete",
                               0.0, detail=f"not in the refinement suite: {reason}"))
    for stem, variant, states, nfoci, secs, nfail, exhaustive in report.per_run:
        result = "violation" if nfail else ("pass" if exhaustive else "incomplete")
        detail = (f"{'exhaustive' if exhaustive else 'NOT exhaustive'}: {states} states x "
                  f"{nfoci} foci, {nfail} failures")
        if nfail:
            first = next((f for f in report.failures if f.split(" [")[0] and f"[{variant}]" in f
                          and stem in f), report.failures[0] if report.failures else "")
            detail += f"; {first}"
        out.append(CheckResult("refinement", f"refinement/{stem}", result, "pass", secs,
                               variant=variant, detail=detail))
    listed = {**UNEXERCISED, **UNCOVERED}
    missing = sorted(report.all_alternatives - report.hit - set(listed))
    stale = sorted(k for k in listed if k in report.hit or k not in report.all_alternatives)
    cov = "pass" if not missing and not stale else "violation"
    if cov == "pass" and UNCOVERED:
        cov = "incomplete"
    out.append(CheckResult(
        "refinement", "refinement/coverage", cov, "incomplete" if UNCOVERED else "pass", 0.0,
        detail=(f"{len(report.hit & report.all_alternatives)} of "
                f"{len(report.all_alternatives)} (variant, step, alternative) realised, "
                f"{len(UNEXERCISED)} allowlisted as unrealisable, {len(UNCOVERED)} not yet "
                f"realised by a scenario ({len(report.void)} more are void: false on their "
                "variant, or changing nothing)"
                + (f"; never realised: {missing[:8]}" if missing else "")
                + (f"; allowlisted but realised or gone: {stale}" if stale else ""))))
    out.append(CheckResult(
        "refinement", "refinement/totals",
        "violation" if report.nfail else ("pass" if report.exhaustive else "incomplete"),
        "pass", 0.0, witness=report.totals(),
        detail=f"{report.scenarios} runs, {report.states} states, {report.transitions} "
               f"transitions, {report.pairs} (transition, focus) pairs ({report.stutter} "
               f"stuttering), {report.invariant_checks} invariant checks, {report.nfail} "
               "failures"))
    unl = sum(report.unlabelled.values())
    out.append(CheckResult(
        "refinement", "refinement/labels", "pass" if not unl else "violation", "pass", 0.0,
        detail=f"{report.pairs - report.stutter} non-stuttering pairs, {unl} matched by a step "
               "that does not declare the concrete step"
               + (f": {report.unlabelled.most_common(5)}" if unl else "")))
    for k, e in enumerate(EXPECTED):
        key = (e.invariant, e.step)
        where = report.realised.get(k)
        why = UNREALISED.get(key)
        if where is not None:
            result, detail = "pass", f"{e.finding}: realised by {where}"
        else:
            result, detail = "incomplete", f"{e.finding}: no concrete transition realises it"
            if why:
                detail += f" ({why})"
        out.append(CheckResult("refinement", f"refinement/finding/{e.invariant}/{e.step}",
                               result, "incomplete" if why and where is None else "pass", 0.0,
                               variant=f"fixed-without-{e.fix}", detail=detail))
    return out


def collect() -> list[Any]:
    """`pagemap verify`'s refinement collector: the exhaustive run, as records."""
    t0 = time.monotonic()
    report = run(jobs=JOBS)
    out = records(report)
    # the runs' rows carry their own seconds (in parallel); the last row the rest
    busy = sum(r[4] for r in report.per_run) / JOBS
    out[-1].seconds = max(0.0, round(time.monotonic() - t0 - busy, 2))
    return out


if __name__ == "__main__":
    t0 = time.monotonic()
    r = run()
    print(f"{r.scenarios} runs, {r.states} states, {r.transitions} transitions, {r.pairs} "
          f"pairs ({r.stutter} stutter, {r.composite} composite), {r.invariant_checks} "
          f"invariant checks, exhaustive {r.exhaustive}, {time.monotonic() - t0:.1f} s")
    for name, n in sorted(r.matched.items()):
        print(f"  {name}: {n}")
    for (lab, name), n in sorted(r.unlabelled.items()):
        print(f"  UNLABELLED {lab} -> {name}: {n}")
    for run_ in r.per_run:
        print("  run", *run_)
    print("realised:", r.realised)
    for fail in r.failures:
        print("FAIL", fail)

"""Checking one scenario, as a worker does it: the verdict on the swept
variant and, for a violation, its root cause.

The root cause of a violating scenario is the set of named fixes X for which
``fixed-without-X`` also violates on it.  When ``fixed`` itself
violates, no named fix repairs it: a new defect (``fixes`` empty).  When
``fixed`` passes but no single ``fixed-without-X`` fails, the violation needs
several fixes missing at once; then ``together`` lists the smallest sets of
fixes whose removal from ``fixed`` makes it fail, and ``fixes`` is their union.

**Runs that need not be made.**  The model consults a fix only through
``Config.fix`` (``name in cfg.fixes``), so each run records the fixes it
consulted.  If a complete run of ``fixed`` minus S never consulted x, then
``fixed`` minus S and x has the same successors in every state that run
reached, so the same reachable states, the same verdict and the same fixes
consulted: it is not run, and counts as that run (``same_as``).  For the
single fixes this skips every fix whose code no interleaving of the scenario
reaches under ``fixed``; tests/test_sweep.py checks the root causes against
runs of every variant.

Everything here is a pure function of its arguments (the checker is
deterministic and the limit is a state count, not a time), so a result does not
depend on which worker ran it or how many there are.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from pagemap.checker.explore import Explorer
from pagemap.checker.scenario import parse
from pagemap.config import FIXES, WITHOUT, variant_name


class Consulted(frozenset[str]):
    """The fixes of a run, remembering which of them the model asked about."""

    asked: set[str]

    def __contains__(self, name: object) -> bool:
        self.asked.add(str(name))
        return super().__contains__(name)


@dataclass(frozen=True)
class Run:
    """One exploration: a scenario on one variant."""

    variant: str
    verdict: str  # pass | violation | incomplete
    invariant: str | None
    states: int
    #: The fixes the model consulted (complete only when the verdict is pass).
    consulted: frozenset[str] = field(default=frozenset(), compare=False)


@dataclass(frozen=True)
class Result:
    key: str
    run: Run  # on the swept variant
    #: For a violation: the runs that decide the root cause.
    probes: tuple[Run, ...] = ()
    fixes: tuple[str, ...] = ()
    together: tuple[tuple[str, ...], ...] = ()
    decided: bool = True  # every run needed finished within the state limit
    #: Variants not run because a run that passed never consulted the fix
    #: that tells them apart: variant -> the variant whose run stands for it.
    same_as: tuple[tuple[str, str], ...] = ()
    seconds: float = field(default=0.0, compare=False)

    @property
    def violation(self) -> bool:
        return self.run.verdict == "violation"

    @property
    def new_defect(self) -> bool:
        return self.violation and self.decided and not self.fixes


def explore(scenario: dict[str, Any], variant: Any, max_states: int, contracts: bool,
            replace: dict[str, Any] | None = None) -> Run:
    cfg = parse(scenario, "sweep", variant)
    fixes = Consulted(cfg.fixes)
    fixes.asked = set()
    cfg = dataclasses.replace(cfg, fixes=fixes)
    out = Explorer(cfg, contracts=contracts, replace=replace).explore(
        max_states=max_states, progress=False)
    asked = frozenset(fixes.asked)
    return Run(variant_name(cfg.fixes), out.verdict, out.invariant, out.states, asked)


def check(key: str, scenario: dict[str, Any], variant: Any, max_states: int,
          contracts: bool, replace: dict[str, Any] | None = None) -> Result:
    """The verdict on ``variant`` and, for a violation, the root cause.
    ``replace``: steps replaced by mutants (pagemap.checker.mutations), for
    the tests of what a defect no fix repairs looks like."""
    t0 = time.monotonic()

    def ex(v: Any) -> Run:
        return explore(scenario, v, max_states, contracts, replace)

    run = ex(variant)
    if run.verdict != "violation":
        return Result(key, run, decided=run.verdict == "pass", seconds=time.monotonic() - t0)
    fixed = run if run.variant == "fixed" else ex("fixed")
    probes = [] if fixed is run else [fixed]
    if fixed.verdict != "pass":
        return Result(key, run, tuple(probes), decided=fixed.verdict != "incomplete",
                      seconds=time.monotonic() - t0)
    search = _Search(ex, fixed)
    fixes, together, decided = search.cause()
    probes += search.runs
    return Result(key, run, tuple(probes), fixes, together, decided, tuple(search.same_as),
                  time.monotonic() - t0)


class _Search:
    """fixed minus S for S of one fix, then (if none violates) two, three...:
    the smallest sets whose removal makes the scenario violate."""

    def __init__(self, ex: Any, fixed: Run) -> None:
        self.ex = ex
        self.runs: list[Run] = []
        self.same_as: list[tuple[str, str]] = []
        #: Each set S decided so far (it passed): the run that decided it.
        self.passed: dict[tuple[str, ...], Run] = {(): fixed}

    def _decide(self, s: tuple[str, ...]) -> Run:
        """The run of fixed minus s, or the run that stands for it."""
        for x in s:
            smaller = self.passed.get(tuple(y for y in s if y != x))
            if smaller is not None and x not in smaller.consulted:
                self.same_as.append((_variant(s), smaller.variant))
                return smaller
        r = self.ex(_variant_fixes(s))
        self.runs.append(r)
        return r

    def cause(self) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...], bool]:
        names = list(FIXES)
        for size in range(1, len(names) + 1):
            found = []
            for s in combinations(names, size):
                r = self._decide(s)
                if r.verdict == "incomplete":
                    return (), (), False
                if r.verdict == "violation":
                    found.append(s)
                else:
                    self.passed[s] = r
            if found:
                if size == 1:
                    return tuple(x for (x,) in found), (), True
                return tuple(x for x in names if any(x in s for s in found)), tuple(found), True
        return (), (), True  # unreachable: seed, fixed minus every fix, violated


def _variant_fixes(s: tuple[str, ...]) -> list[str] | str:
    return WITHOUT + s[0] if len(s) == 1 else [x for x in FIXES if x not in s]


def _variant(s: tuple[str, ...]) -> str:
    return variant_name(frozenset(FIXES) - set(s))


def check_batch(batch: list[tuple[str, dict[str, Any]]], variant: Any, max_states: int,
                contracts: bool) -> list[Result]:
    """The unit of work sent to a worker."""
    return [check(k, s, variant, max_states, contracts) for k, s in batch]

"""Checking one scenario, as a worker does it: the verdict on the swept
variant and, for a violation, its root cause.

The root cause of a violating scenario is the set of named fixes X for which
``fixed-without-X`` also violates on it (DESIGN §3).  When ``fixed`` itself
violates, no named fix repairs it: a new defect (``fixes`` empty).  When
``fixed`` passes but no single ``fixed-without-X`` fails, the violation needs
several fixes missing at once; then ``together`` lists the smallest sets of
fixes whose removal from ``fixed`` makes it fail, and ``fixes`` is their union.

Everything here is a pure function of its arguments (the checker is
deterministic and the limit is a state count, not a time), so a result does not
depend on which worker ran it or how many there are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from pagemap.checker.explore import Explorer
from pagemap.checker.scenario import parse
from pagemap.config import FIXES, WITHOUT


@dataclass(frozen=True)
class Run:
    """One exploration: a scenario on one variant."""

    variant: str
    verdict: str  # pass | violation | incomplete
    invariant: str | None
    states: int


@dataclass(frozen=True)
class Result:
    key: str
    run: Run  # on the swept variant
    #: For a violation: the runs that decide the root cause, by variant name.
    probes: tuple[Run, ...] = ()
    fixes: tuple[str, ...] = ()
    together: tuple[tuple[str, ...], ...] = ()
    decided: bool = True  # every run needed finished within the state limit
    seconds: float = field(default=0.0, compare=False)

    @property
    def violation(self) -> bool:
        return self.run.verdict == "violation"

    @property
    def new_defect(self) -> bool:
        return self.violation and self.decided and not self.fixes


def explore(scenario: dict[str, Any], variant: Any, max_states: int, contracts: bool) -> Run:
    cfg = parse(scenario, "sweep", variant)
    out = Explorer(cfg, contracts=contracts).explore(max_states=max_states, progress=False)
    return Run(cfg.variant, out.verdict, out.invariant, out.states)


def check(key: str, scenario: dict[str, Any], variant: Any, max_states: int,
          contracts: bool) -> Result:
    t0 = time.monotonic()
    run = explore(scenario, variant, max_states, contracts)
    if run.verdict != "violation":
        return Result(key, run, decided=run.verdict == "pass", seconds=time.monotonic() - t0)
    probes = [run] if run.variant == "fixed" else [explore(scenario, "fixed", max_states,
                                                           contracts)]
    decided = probes[0].verdict != "incomplete"
    fixes: tuple[str, ...] = ()
    together: tuple[tuple[str, ...], ...] = ()
    if probes[0].verdict == "pass":
        without = [explore(scenario, WITHOUT + x, max_states, contracts) for x in FIXES]
        probes += without
        decided = all(r.verdict != "incomplete" for r in without)
        fixes = tuple(x for x, r in zip(FIXES, without, strict=True) if r.verdict == "violation")
        if not fixes and decided:
            together, more, decided = _together(scenario, max_states, contracts)
            probes += more
            fixes = tuple(x for x in FIXES if any(x in s for s in together))
    return Result(key, run, tuple(probes), fixes, together, decided, time.monotonic() - t0)


def _together(scenario: dict[str, Any], max_states: int, contracts: bool
              ) -> tuple[tuple[tuple[str, ...], ...], list[Run], bool]:
    """The smallest sets S (two fixes or more) such that fixed minus S violates."""
    names = list(FIXES)
    runs: list[Run] = []
    for size in range(2, len(names) + 1):
        found = []
        for s in combinations(names, size):
            r = explore(scenario, [x for x in names if x not in s], max_states, contracts)
            runs.append(r)
            if r.verdict == "incomplete":
                return (), runs, False
            if r.verdict == "violation":
                found.append(s)
        if found:
            return tuple(found), runs, True
    return (), runs, True  # unreachable: seed, fixed minus every fix, violated


def check_batch(batch: list[tuple[str, dict[str, Any]]], variant: Any, max_states: int,
                contracts: bool) -> list[Result]:
    """The unit of work sent to a worker."""
    return [check(k, s, variant, max_states, contracts) for k, s in batch]

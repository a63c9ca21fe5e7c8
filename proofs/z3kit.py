"""A small framework for Z3 theorems that cannot pass vacuously (spec/slot.md).

A ``Theorem`` is checked in three steps:

1. its assumptions alone must be satisfiable -- otherwise anything follows
   from them, and the result is ``error`` ("vacuous");
2. assumptions ∧ ¬claim is decided: unsat means ``proved``; sat means
   ``counterexample``, with the model's values of every free variable (and of
   the theorem's named ``show`` terms) as the witness;
3. its negative ``Twin`` -- a mutated operation, or a weakened/strengthened
   claim -- is decided the same way and MUST give a counterexample.  A twin
   that proves means the claim does not discriminate: the theorem's result is
   ``error`` ("twin survived").

An ``unknown`` from Z3 (timeout, resource limit) is an ``error`` too.  The
outcome is a ``pagemap.results.CheckResult`` of kind ``proof``.  Nothing here
knows about slots: proofs of the removal phase reuse it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import z3
from pagemap.results import CheckResult

#: Per-check solver timeout.  Every encoding check takes milliseconds; the
#: bound only turns a runaway formula into an ``error`` instead of a hang.
DEFAULT_TIMEOUT_S = 20.0

PROVED = "proved"
COUNTEREXAMPLE = "counterexample"
ERROR = "error"


@dataclass(frozen=True)
class Twin:
    """The negative twin of a theorem: it must yield a counterexample.

    ``assumptions`` of ``None`` means "the theorem's own assumptions"."""

    description: str
    claim: Any  # z3.BoolRef
    assumptions: Sequence[Any] | None = None


@dataclass(frozen=True)
class Theorem:
    """A claim under explicit assumptions, for one word size."""

    name: str
    word_bits: int
    assumptions: Sequence[Any]  # z3.BoolRef each
    claim: Any  # z3.BoolRef
    twin: Twin
    expected: str = PROVED  # PROVED, or COUNTEREXAMPLE for a documented finding
    variant: str | None = None  # None: holds for every variant; else "seed"/"fixed"
    statement: str = ""  # one line for people: what the claim says
    show: Mapping[str, Any] = field(default_factory=dict)  # derived terms for the witness


@dataclass(frozen=True)
class Outcome:
    """The answer to one solver question."""

    result: str  # PROVED, COUNTEREXAMPLE or ERROR
    witness: dict[str, str]
    reason: str = ""


def _free_constants(exprs: Iterable[Any]) -> list[Any]:
    """Uninterpreted constants (the theorem's variables), in first-seen order."""
    seen: dict[str, Any] = {}
    todo = list(exprs)
    visited: set[int] = set()
    while todo:
        e = todo.pop(0)
        if e.get_id() in visited:
            continue
        visited.add(e.get_id())
        if z3.is_const(e) and e.decl().kind() == z3.Z3_OP_UNINTERPRETED:
            seen.setdefault(e.decl().name(), e)
        else:
            todo.extend(e.children())
    return list(seen.values())


def _show_value(model: z3.ModelRef, term: Any) -> str:
    val = model.eval(term, model_completion=True)
    if z3.is_bv_value(val):
        return hex(val.as_long())
    if z3.is_true(val) or z3.is_false(val):
        return "true" if z3.is_true(val) else "false"
    return str(val)


def _smallest_model(
    facts: Sequence[Any], variables: Sequence[Any], timeout_ms: int
) -> z3.ModelRef | None:
    """A model with the variables minimised in order (unsigned), for readable witnesses.

    Returns None when the optimiser does not answer in time; the caller then
    keeps the plain model."""
    opt = z3.Optimize()
    opt.set("timeout", timeout_ms)
    opt.add(*facts)
    for var in variables:
        if z3.is_bv(var):
            opt.minimize(var)
    if opt.check() == z3.sat:
        return opt.model()
    return None


def decide(
    assumptions: Sequence[Any],
    claim: Any,
    show: Mapping[str, Any] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    minimize: bool = True,
) -> Outcome:
    """Is ``claim`` valid under ``assumptions``?  Checks the assumptions first."""
    timeout_ms = int(timeout_s * 1000)
    sat_check = z3.Solver()
    sat_check.set("timeout", timeout_ms)
    sat_check.add(*assumptions)
    first = sat_check.check()
    if first == z3.unsat:
        return Outcome(ERROR, {}, "vacuous: the assumptions are unsatisfiable")
    if first == z3.unknown:
        return Outcome(ERROR, {}, f"unknown on the assumptions: {sat_check.reason_unknown()}")

    facts = [*assumptions, z3.Not(claim)]
    solver = z3.Solver()
    solver.set("timeout", timeout_ms)
    solver.add(*facts)
    answer = solver.check()
    if answer == z3.unsat:
        return Outcome(PROVED, {})
    if answer == z3.unknown:
        return Outcome(ERROR, {}, f"unknown: {solver.reason_unknown()}")

    variables = _free_constants([*assumptions, claim])
    model = solver.model()
    if minimize:
        model = _smallest_model(facts, variables, timeout_ms) or model
    witness = {str(var): _show_value(model, var) for var in variables}
    for label, term in (show or {}).items():
        witness[label] = _show_value(model, term)
    return Outcome(COUNTEREXAMPLE, witness)


def prove(thm: Theorem, timeout_s: float = DEFAULT_TIMEOUT_S) -> CheckResult:
    """Run a theorem and its twin; report one ``CheckResult``."""
    start = time.perf_counter()
    main = decide(thm.assumptions, thm.claim, thm.show, timeout_s)
    twin_assumptions = thm.twin.assumptions
    if twin_assumptions is None:
        twin_assumptions = thm.assumptions
    # A twin's witness is only shown for findings, so only then is it minimised.
    twin = decide(
        twin_assumptions,
        thm.twin.claim,
        thm.show,
        timeout_s,
        minimize=thm.expected == COUNTEREXAMPLE,
    )
    seconds = time.perf_counter() - start

    result, witness = main.result, dict(main.witness)
    detail = thm.statement
    if main.result == ERROR:
        detail = main.reason
    elif twin.result == PROVED:
        result, witness = ERROR, {}
        detail = f"twin survived (it must give a counterexample): {thm.twin.description}"
    elif twin.result == ERROR:
        result, witness = ERROR, {}
        detail = f"twin {thm.twin.description!r}: {twin.reason}"
    else:
        detail = f"{thm.statement} | twin refuted: {thm.twin.description}"
        if main.result == COUNTEREXAMPLE and thm.expected == PROVED:
            values = ", ".join(f"{k}={v}" for k, v in witness.items())
            detail = f"claim refuted ({values}): {thm.statement}"
        if thm.expected == COUNTEREXAMPLE:
            # For a finding, the twin pins the documented bad case; show it too.
            witness.update({f"twin.{k}": v for k, v in twin.witness.items()})
    return CheckResult(
        kind="proof",
        name=thm.name,
        variant=thm.variant,
        word_bits=thm.word_bits,
        result=result,
        expected=thm.expected,
        seconds=round(seconds, 4),
        witness=witness,
        detail=detail,
    )


def prove_all(
    theorems: Iterable[Theorem], timeout_s: float = DEFAULT_TIMEOUT_S
) -> list[CheckResult]:
    """Run each theorem in order."""
    return [prove(t, timeout_s) for t in theorems]


def ult(a: Any, b: Any) -> Any:
    """Unsigned a < b: Z3's ``<`` on bit-vectors is signed, C's on unsigned long is not."""
    return z3.ULT(a, b)


def ule(a: Any, b: Any) -> Any:
    """Unsigned a <= b."""
    return z3.ULE(a, b)

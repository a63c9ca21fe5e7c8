"""The removal theorems: every invariant proven inductive on fixed, for any number of
threads; the counterexamples to induction on seed and fixed-without-FIX, each tied
to the finding it explains.

Rows (``CheckResult`` of kind ``proof``, names ``removal/...``):

* ``removal/<invariant>/init`` (fixed): the initial states satisfy it.  Twin: the
  same claim about an arbitrary state, which must fail (the invariant says
  something).
* ``removal/<invariant>/step`` (fixed): the conjunction of all invariants before any
  step implies it after.  Twin: a claim or lemma under a mutated step
  (proofs/removal/mutants.py); a bookkeeping invariant without assuming it before
  the step.  Together these make the conjunction an inductive invariant.
* ``removal/<invariant>/<step>`` (seed, fixed-without-FIX; expected counterexample):
  the conjunction before that step does not imply the invariant after; the
  witness is the pre-state and the step (proofs/removal/findings.py says which
  finding it is); the twin pins the documented bad case.

The satisfiability of every theorem's assumptions is checked by ``z3kit.prove``.
"""

from __future__ import annotations

import time
from typing import Any

import z3
from pagemap.config import FIXES
from pagemap.results import CheckResult
from pagemap.word import WORD_SIZES

from proofs.removal import state as st
from proofs.removal.findings import Expected, expected_for
from proofs.removal.invariants import AUX, INVARIANTS, conjunction, init
from proofs.removal.mutants import MUTANTS
from proofs.removal.system import Step, System
from proofs.z3kit import COUNTEREXAMPLE, Theorem, Twin, prove

VARIANTS_WITHOUT = tuple(f"fixed-without-{f}" for f in FIXES)


class Context:
    """One system with its pre/post states and the formulas every theorem shares."""

    def __init__(self, variant: str, bits: int) -> None:
        self.sys = System(variant, bits)
        self.variant = variant
        self.bits = bits
        self.pre, self.post = st.make(bits), st.make(bits, "'")
        self.dom = [*st.domain(self.pre), *st.domain(self.post)]
        self.inv = conjunction(self.sys, self.pre)
        self.rel = {s.name: self.sys.relation(s, self.pre, self.post)
                    for s in self.sys.steps()}
        self.step_var = z3.Int("step")
        self.names = list(self.rel)
        self.trans = z3.Or(*[z3.And(self.step_var == k, r)
                             for k, r in enumerate(self.rel.values())])

    def mutated(self, step_name: str, build: Any) -> Any:
        """The relation of a mutated version of one step (a twin's operation)."""
        return self.sys.relation(Step(step_name + "*", (), build), self.pre, self.post)


def fixed_theorems(ctx: Context) -> list[Theorem]:
    out = []
    for i in INVARIANTS:
        claim_pre = i.formula(ctx.sys, ctx.pre)
        claim_post = i.formula(ctx.sys, ctx.post)
        statement = i.doc.split(". ")[0].replace("\n", " ")
        out.append(Theorem(
            f"removal/{i.name}/init", ctx.bits,
            [*st.domain(ctx.pre), init(ctx.sys, ctx.pre)], claim_pre,
            Twin("about an arbitrary state, not an initial one", claim_pre,
                 list(st.domain(ctx.pre))),
            variant="fixed", statement=f"init: {statement}"))
        assumptions = [*ctx.dom, ctx.inv, ctx.trans]
        if i.kind == AUX:
            twin = Twin(f"without assuming {i.name} before the step", claim_post,
                        [*ctx.dom, conjunction(ctx.sys, ctx.pre, skip=i.name), ctx.trans])
        else:
            step_name, mutant = MUTANTS[i.name]
            twin = Twin(mutant.description, claim_post,
                        [*ctx.dom, ctx.inv, ctx.mutated(step_name, mutant.build)])
        out.append(Theorem(
            f"removal/{i.name}/step", ctx.bits, assumptions, claim_post, twin,
            variant="fixed", statement=statement, show={"step": ctx.step_var}))
    return out


def finding_theorem(ctx: Context, e: Expected) -> Theorem:
    inv = next(i for i in INVARIANTS if i.name == e.invariant)
    claim = inv.formula(ctx.sys, ctx.post)
    assumptions = [*ctx.dom, ctx.inv, ctx.rel[e.step]]
    return Theorem(
        f"removal/{e.invariant}/{e.step}", ctx.bits, assumptions, claim,
        Twin(f"pinned: {e.pin_doc}", claim,
             [*assumptions, e.pin(ctx.sys, ctx.pre, ctx.post)]),
        expected=COUNTEREXAMPLE, variant=ctx.variant,
        statement=f"{e.finding} ({e.fix}): {e.why}")


# -- witnesses for people ----------------------------------------------------------------


def _value(var: str, raw: str) -> str:
    names = st.enum_names(var)
    if names is not None and raw.lstrip("-").isdigit() and 0 <= int(raw) < len(names):
        return names[int(raw)]
    return raw


def readable(witness: dict[str, str], step_names: list[str]) -> dict[str, str]:
    """pre.<var> for the whole pre-state, post.<var> for what the step changed."""
    out: dict[str, str] = {}
    for prefix in ("", "twin."):
        w = {k[len(prefix):]: v for k, v in witness.items() if k.startswith(prefix)
             and (prefix or not k.startswith("twin."))}
        if not w:
            continue
        if "step" in w and w["step"].isdigit() and int(w["step"]) < len(step_names):
            out[prefix + "step"] = step_names[int(w["step"])]
        for v in st.VARS:
            if v.name in w:
                out[f"{prefix}pre.{v.name}"] = _value(v.name, w[v.name])
        for v in st.VARS:
            new = w.get(v.name + "'")
            if new is not None and new != w.get(v.name):
                out[f"{prefix}post.{v.name}"] = _value(v.name, new)
    return out


def _prove(thm: Theorem, ctx: Context) -> CheckResult:
    r = prove(thm)
    if r.witness:
        r.witness = readable(r.witness, ctx.names)
    return r


def theorems_for(variant: str, bits: int) -> tuple[Context, list[Theorem]]:
    ctx = Context(variant, bits)
    if variant == "fixed":
        return ctx, fixed_theorems(ctx)
    return ctx, [finding_theorem(ctx, e) for e in expected_for(variant)]


def run(word_bits: int | None = None, variants: tuple[str, ...] | None = None
        ) -> list[CheckResult]:
    """fixed and seed at both word sizes, fixed-without-FIX at 64 bits (the findings
    do not depend on the word size; seed shows them at 32 bits too)."""
    sizes = WORD_SIZES if word_bits is None else (word_bits,)
    plan = []
    for variant in variants or ("fixed", "seed", *VARIANTS_WITHOUT):
        for bits in sizes:
            if variant.startswith("fixed-without-") and word_bits is None and bits != 64:
                continue
            plan.append((variant, bits))
    results: list[CheckResult] = []
    for variant, bits in plan:
        start = time.perf_counter()
        ctx, thms = theorems_for(variant, bits)
        setup = time.perf_counter() - start
        for k, thm in enumerate(thms):
            r = _prove(thm, ctx)
            if k == 0:
                r.seconds = round(r.seconds + setup, 4)  # building the system, once
            results.append(r)
    return results

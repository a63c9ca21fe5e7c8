"""Evaluate the Z3 formulas of the removal proofs on concrete values, fast.

The refinement check (proofs/removal/refinement.py) must evaluate every
step relation on many thousands of (abstract pre-state, abstract post-state)
pairs.  ``z3.substitute`` + ``simplify`` costs milliseconds a call; this
module compiles a formula once into nested Python closures over an
environment ``{constant name: value}`` (bool, int, bit-vectors as unsigned
ints) and evaluates it in microseconds.  It interprets the formula Z3 holds,
so the check is about the very relation the proofs use.  Only the operators
the removal formulas contain are supported; anything else raises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import z3

Env = dict[str, Any]
Fn = Callable[[Env], Any]


def _all(fs: list[Fn]) -> Fn:
    def f(env: Env) -> bool:
        return all(g(env) for g in fs)

    return f


def _any(fs: list[Fn]) -> Fn:
    def f(env: Env) -> bool:
        return any(g(env) for g in fs)

    return f


class Compiler:
    """Compiles Z3 expressions to closures, sharing common subterms."""

    def __init__(self) -> None:
        # Keyed by AST id; the AST is kept alive with its closure, since Z3
        # reuses the ids of freed ASTs.
        self.memo: dict[int, tuple[Any, Fn]] = {}

    def __call__(self, e: Any) -> Fn:
        key = e.get_id()
        hit = self.memo.get(key)
        if hit is None:
            hit = (e, self._compile(e))
            self.memo[key] = hit
        return hit[1]

    def _compile(self, e: Any) -> Fn:
        k = e.decl().kind()
        if z3.is_true(e):
            return lambda env: True
        if z3.is_false(e):
            return lambda env: False
        if z3.is_int_value(e):
            v = e.as_long()
            return lambda env: v
        if z3.is_bv_value(e):
            v = e.as_long()
            return lambda env: v
        if k == z3.Z3_OP_UNINTERPRETED and e.num_args() == 0:
            name = e.decl().name()
            return lambda env: env[name]
        args = [self(a) for a in e.children()]
        if k == z3.Z3_OP_AND:
            return _all(args)
        if k == z3.Z3_OP_OR:
            return _any(args)
        if k == z3.Z3_OP_NOT:
            a = args[0]
            return lambda env: not a(env)
        if k == z3.Z3_OP_IMPLIES:
            a, b = args
            return lambda env: (not a(env)) or b(env)
        if k == z3.Z3_OP_EQ:
            a, b = args
            return lambda env: a(env) == b(env)
        if k == z3.Z3_OP_DISTINCT:
            return lambda env: len({g(env) for g in args}) == len(args)
        if k == z3.Z3_OP_ITE:
            c, a, b = args
            return lambda env: a(env) if c(env) else b(env)
        if k == z3.Z3_OP_ADD:
            return lambda env: sum(g(env) for g in args)
        if k == z3.Z3_OP_SUB:
            a, b = args
            return lambda env: a(env) - b(env)
        if k == z3.Z3_OP_UMINUS:
            a = args[0]
            return lambda env: -a(env)
        if k == z3.Z3_OP_MUL:
            a, b = args
            return lambda env: a(env) * b(env)
        cmp = {z3.Z3_OP_LE: lambda x, y: x <= y, z3.Z3_OP_LT: lambda x, y: x < y,
               z3.Z3_OP_GE: lambda x, y: x >= y, z3.Z3_OP_GT: lambda x, y: x > y,
               z3.Z3_OP_ULEQ: lambda x, y: x <= y, z3.Z3_OP_ULT: lambda x, y: x < y,
               z3.Z3_OP_UGEQ: lambda x, y: x >= y, z3.Z3_OP_UGT: lambda x, y: x > y}
        if k in cmp:
            op = cmp[k]
            a, b = args
            return lambda env: op(a(env), b(env))
        if z3.is_bv(e) or k == z3.Z3_OP_BV2INT:
            return self._bv(e, k, args)
        raise NotImplementedError(f"evaluate: operator {e.decl()} in {e}")

    def _bv(self, e: Any, k: int, args: list[Fn]) -> Fn:
        if k == z3.Z3_OP_BV2INT:
            a = args[0]
            return lambda env: a(env)  # unsigned, as the proofs use it
        mask = (1 << e.size()) - 1
        if k == z3.Z3_OP_BADD:
            return lambda env: sum(g(env) for g in args) & mask
        if k == z3.Z3_OP_BSUB:
            a, b = args
            return lambda env: (a(env) - b(env)) & mask
        if k == z3.Z3_OP_BAND:
            def band(env: Env) -> int:
                r = mask
                for g in args:
                    r &= g(env)
                return r
            return band
        if k == z3.Z3_OP_BOR:
            def bor(env: Env) -> int:
                r = 0
                for g in args:
                    r |= g(env)
                return r
            return bor
        if k == z3.Z3_OP_BNOT:
            a = args[0]
            return lambda env: ~a(env) & mask
        if k == z3.Z3_OP_BLSHR:
            a, b = args
            return lambda env: (a(env) & mask) >> b(env)
        raise NotImplementedError(f"evaluate: bit-vector operator {e.decl()}")


def compile_formula(e: Any, compiler: Compiler | None = None) -> Fn:
    """A closure ``env -> value`` computing ``e``."""
    return (compiler or Compiler())(e)

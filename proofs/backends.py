"""The two back-ends of ``pagemap.word`` compute the same slot codec (spec/slot.md).

The proofs run the generic core of ``pagemap.slot`` on ``Z3Word``, the model runs it
on ``IntWord``; a proof about the first says something about the second only if
both give the same result.  For every core function and both word sizes, this
check builds the Z3 term once over symbolic arguments, then, for many concrete
words (every field boundary, the all-ones and top-bit words, ``PAGE2PPN_NULL``,
and seeded random words), substitutes the word into the term, lets Z3 evaluate
it, and compares with the ``IntWord`` result.  A disagreement is a
``counterexample`` with the word as witness.  It is a test (a finite sample), not
a proof, and is reported as kind ``test`` by ``pagemap verify``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import z3
from pagemap import slot
from pagemap.results import CheckResult
from pagemap.word import WORD_SIZES, IntWord, Z3Word

#: Seeded random words per function and word size, beside the edge words.
RANDOM_WORDS = 400


@dataclass(frozen=True)
class Core:
    name: str
    fn: Callable[..., Any]
    arity: int  # number of word arguments after the Word


CORE: tuple[Core, ...] = (
    Core("slot_check_removal", slot.slot_check_removal, 1),
    Core("slot_set_removal", slot.slot_set_removal, 1),
    Core("slot_clear_removal", slot.slot_clear_removal, 1),
    Core("slot_check_refcnt", slot.slot_check_refcnt, 1),
    Core("slot_inc_refcnt", slot.slot_inc_refcnt, 1),
    Core("slot_dec_refcnt", slot.slot_dec_refcnt, 1),
    Core("slot_is_null", slot.slot_is_null, 1),
    Core("slot_page_field", slot.slot_page_field, 1),
    Core("slot_set_page", slot.slot_set_page, 2),
)


def edge_words(bits: int) -> list[int]:
    """Words at every boundary of the layout, computed from the word size alone
    (not from the codec's constants, so a wrong constant cannot hide its own edge)."""
    mask = (1 << bits) - 1
    out = {0, 1, 2, mask, mask - 1, 1 << (bits - 1), (1 << (bits - 1)) - 1,
           slot.PAGE2PPN_NULL[bits] & mask}
    for b in range(bits):  # every single bit, and every run of ones below and above it
        out.update({1 << b, (1 << b) - 1, mask & ~((1 << b) - 1), mask ^ (1 << b)})
    return sorted(out)


def words(bits: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    mask = (1 << bits) - 1
    sample = [rng.getrandbits(bits) for _ in range(RANDOM_WORDS)]
    # words with a small count and a small ppn, as the model's slots are
    sample += [(rng.getrandbits(11) << (bits - 11)) | rng.getrandbits(8) for _ in range(50)]
    return edge_words(bits) + [x & mask for x in sample]


def arguments(core: Core, bits: int) -> Iterator[tuple[int, ...]]:
    ws = words(bits, seed=bits)
    if core.arity == 1:
        yield from ((x,) for x in ws)
        return
    rng = random.Random(bits + 1)
    for x in ws:  # each word with an edge ppn and with a random one
        yield x, ws[rng.randrange(len(ws))]
        yield x, rng.getrandbits(bits)


def _z3_value(term: Any) -> int | bool:
    val = z3.simplify(term)
    if z3.is_true(val) or z3.is_false(val):
        return z3.is_true(val)
    if z3.is_bv_value(val):
        return int(val.as_long())
    raise ValueError(f"the Z3 term did not evaluate to a constant: {val}")


def _int_value(x: Any) -> int | bool:
    return x if isinstance(x, bool) else int(x)


def disagreement(core: Core, bits: int, iw: IntWord | None = None,
                 zw: Z3Word | None = None) -> tuple[tuple[int, ...], Any, Any] | None:
    """The first arguments on which the back-ends differ, with both results."""
    iw = iw or IntWord(bits)
    zw = zw or Z3Word(bits)
    xs = [zw.var(f"x{k}") for k in range(core.arity)]
    term = core.fn(zw, *xs)
    if isinstance(term, bool):  # a Python bool: the term did not depend on the word
        term = z3.BoolVal(term)
    for args in arguments(core, bits):
        concrete = z3.substitute(term, *[(x, z3.BitVecVal(a, bits))
                                         for x, a in zip(xs, args, strict=True)])
        z_val = _z3_value(concrete)
        i_val = _int_value(core.fn(iw, *args))
        if type(z_val) is not type(i_val) or z_val != i_val:
            return args, i_val, z_val
    return None


def check(core: Core, bits: int) -> CheckResult:
    start = time.perf_counter()
    n = sum(1 for _ in arguments(core, bits))
    bad = disagreement(core, bits)
    seconds = round(time.perf_counter() - start, 3)
    name = f"backends/{core.name}"
    if bad is None:
        return CheckResult("test", name, "pass", "pass", seconds, word_bits=bits,
                           detail=f"IntWord and Z3Word agree on {n} argument tuples")
    args, i_val, z_val = bad
    shown = ", ".join(hex(a) for a in args)
    return CheckResult(
        "test", name, "counterexample", "pass", seconds, word_bits=bits,
        witness={"args": shown, "IntWord": str(i_val), "Z3Word": str(z_val)},
        detail=f"{core.name}({shown}): IntWord gives {i_val}, Z3Word gives {z_val}")


def run(word_bits: int | None = None, cores: Sequence[Core] = CORE) -> list[CheckResult]:
    sizes = WORD_SIZES if word_bits is None else (word_bits,)
    return [check(c, bits) for bits in sizes for c in cores]


if __name__ == "__main__":
    for r in run():
        print(f"{r.name:32} {r.word_bits}  {r.result:14} {r.seconds:6.2f}  {r.detail}")

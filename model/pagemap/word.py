"""Machine words, generic over Python ``int`` and Z3 bit-vectors.

The slot codec (``pagemap.slot``) is written once against the small interface
below, so that the model executes exactly the code that Z3 proves and that
CrossHair checks (spec/slot.md).  ``IntWord`` does C ``unsigned long``
arithmetic modulo 2**bits on Python ints; ``Z3Word`` builds the same
expressions over ``z3.BitVecRef`` of the same width.

Z3's ``>>`` is an arithmetic shift, C's ``>>`` on ``unsigned long`` is a
logical one: every shift goes through ``lshr``.
"""

from __future__ import annotations

from typing import Any

#: Word sizes of the C code: CONFIG_64BIT and the 32-bit build.
WORD_SIZES = (64, 32)


class IntWord:
    """``unsigned long`` of ``bits`` bits, as Python ints in [0, 2**bits)."""

    def __init__(self, bits: int) -> None:
        if bits not in WORD_SIZES:
            raise ValueError(f"word size {bits} is not one of {WORD_SIZES}")
        self.bits = bits
        self.mask = (1 << bits) - 1

    def const(self, c: int) -> int:
        return c & self.mask

    def wrap(self, v: int) -> int:
        return v & self.mask

    def lshr(self, v: int, n: int) -> int:
        return (v & self.mask) >> n

    def is_zero(self, v: int) -> bool:
        return (v & self.mask) == 0

    def ite(self, cond: bool, a: Any, b: Any) -> Any:
        return a if cond else b

    def to_int(self, v: int) -> int:
        return v & self.mask


class Z3Word:
    """The same interface over ``z3.BitVecRef`` of ``bits`` bits."""

    def __init__(self, bits: int) -> None:
        import z3  # imported lazily: the model itself never needs z3

        if bits not in WORD_SIZES:
            raise ValueError(f"word size {bits} is not one of {WORD_SIZES}")
        self.z3 = z3
        self.bits = bits
        self.mask = (1 << bits) - 1

    def const(self, c: int) -> Any:
        return self.z3.BitVecVal(c & self.mask, self.bits)

    def wrap(self, v: Any) -> Any:
        return v  # bit-vector arithmetic already wraps

    def lshr(self, v: Any, n: int) -> Any:
        return self.z3.LShR(v, n)

    def is_zero(self, v: Any) -> Any:
        return v == self.const(0)

    def ite(self, cond: Any, a: Any, b: Any) -> Any:
        return self.z3.If(cond, a, b)

    def to_int(self, v: Any) -> Any:
        # Used where C converts an unsigned long to int (the refcount, which
        # is at most 11 bits wide): stays a bit-vector of the word's width.
        return v

    def var(self, name: str) -> Any:
        return self.z3.BitVec(name, self.bits)


_INT_WORDS = {bits: IntWord(bits) for bits in WORD_SIZES}


def int_word(bits: int) -> IntWord:
    """The shared, stateless ``IntWord`` for a word size."""
    try:
        return _INT_WORDS[bits]
    except KeyError:
        raise ValueError(f"word size {bits} is not one of {WORD_SIZES}") from None

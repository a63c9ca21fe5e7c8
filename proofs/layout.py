"""The slot layout as kern/src/pagemap.c (seed) writes it, and the proof that the codec
of ``pagemap.slot`` reads and writes exactly those fields (spec/slot.md, "Tied to the C").

The C states the layout twice, and both statements are transcribed here, in this
module's own code, without reading anything from ``pagemap.slot``:

* the defines above the ``pm_slot_*`` helpers: ``PM_FLAGS_SHIFT`` is 52 under
  ``CONFIG_64BIT`` and 20 otherwise, ``PM_REFCNT_SHIFT`` is ``PM_FLAGS_SHIFT + 1``,
  ``PM_REMOVAL`` is ``1UL << PM_FLAGS_SHIFT``, and ``pm_slot_get_page`` /
  ``pm_slot_set_page`` mask the ppn with ``(1UL << PM_FLAGS_SHIFT) - 1``;
* the picture in the comment above them: from the top bit down, an 11-bit
  refcount, a 1-bit flag, and the ppn in the remaining 52 or 20 bits.

Each theorem takes one core function of ``pagemap.slot`` over ``Z3Word`` and proves
it equal, for every word, to the C expression built from these constants (``C``),
and its field to the bit range the picture gives (``PICTURE``, with ``z3.Extract``,
which uses no shift at all).  The negative twin of each compares the codec with
the C expression one bit off, which must be a counterexample: the claim pins the
position.  Changing ``pagemap.slot.FLAGS_SHIFT`` to 51/19 fails these proofs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import z3
from pagemap.results import CheckResult
from pagemap.slot import (
    slot_check_refcnt,
    slot_check_removal,
    slot_clear_removal,
    slot_dec_refcnt,
    slot_inc_refcnt,
    slot_page_field,
    slot_set_page,
    slot_set_removal,
)
from pagemap.word import WORD_SIZES, Z3Word

from proofs.z3kit import Theorem, Twin, prove_all

# -- the C, transcribed (not imported from the model) ----------------------------


@dataclass(frozen=True)
class CLayout:
    """The seed's slot defines for one build, as the C computes them."""

    word_bits: int  # sizeof(unsigned long) * 8: 64 under CONFIG_64BIT
    PM_FLAGS_SHIFT: int
    PM_REFCNT_SHIFT: int
    PM_REMOVAL: int
    PPN_MASK: int  # (1UL << PM_FLAGS_SHIFT) - 1, written inline in the C
    REFCNT_INC: int  # 1UL << PM_REFCNT_SHIFT, the step of pm_slot_inc/dec_refcnt


def c_layout(config_64bit: bool) -> CLayout:
    """#ifdef CONFIG_64BIT / # define PM_FLAGS_SHIFT 52 / #else 20 / #endif, and the
    defines and masks derived from it."""
    bits = 64 if config_64bit else 32
    flags_shift = 52 if config_64bit else 20
    refcnt_shift = flags_shift + 1
    return CLayout(bits, flags_shift, refcnt_shift, 1 << flags_shift,
                   (1 << flags_shift) - 1, 1 << refcnt_shift)


@dataclass(frozen=True)
class Picture:
    """The comment ``|--11--|--1--|----52 or 20 bits--|`` (ref, flag, ppn of page)."""

    ref_bits: int
    flag_bits: int
    ppn_bits: int


PICTURE = {64: Picture(11, 1, 52), 32: Picture(11, 1, 20)}
C = {64: c_layout(True), 32: c_layout(False)}


# -- theorems ---------------------------------------------------------------------


def _field(v: Any, lo: int, width: int, bits: int) -> Any:
    """Bits lo .. lo+width-1 of v, zero-extended to the word: no shift involved."""
    return z3.ZeroExt(bits - width, z3.Extract(lo + width - 1, lo, v))


def theorems(bits: int, c: CLayout | None = None) -> list[Theorem]:
    """The codec against the C for one word size (``c``: another C, for tests)."""
    c = c or C[bits]
    pic = PICTURE[bits]
    w = Z3Word(bits)
    v, p = w.var("v"), w.var("p")
    k = w.const
    one_off = c.PM_FLAGS_SHIFT - 1  # the twins' C: every position one bit lower

    def thm(name: str, claim: Any, twin_desc: str, twin_claim: Any, statement: str,
            assumptions: list[Any] | None = None) -> Theorem:
        return Theorem(f"layout/{name}", bits, assumptions or [], claim,
                       Twin(twin_desc, twin_claim), statement=statement)

    removal = z3.If(v & k(c.PM_REMOVAL) != k(0), True, False)
    ppn = v & k(c.PPN_MASK)
    low = f"PM_FLAGS_SHIFT - 1 = {one_off}"
    return [
        thm("pm-slot-check-removal", slot_check_removal(w, v) == removal,
            f"PM_REMOVAL at bit {low}",
            slot_check_removal(w, v) == (v & k(1 << one_off) != k(0)),
            "slot_check_removal(v) == (v & PM_REMOVAL ? TRUE : FALSE)"),
        thm("pm-slot-set-removal", slot_set_removal(w, v) == v | k(c.PM_REMOVAL),
            f"PM_REMOVAL at bit {low}", slot_set_removal(w, v) == v | k(1 << one_off),
            "slot_set_removal(v) == v | PM_REMOVAL"),
        thm("pm-slot-clear-removal", slot_clear_removal(w, v) == v & ~k(c.PM_REMOVAL),
            f"PM_REMOVAL at bit {low}", slot_clear_removal(w, v) == v & ~k(1 << one_off),
            "slot_clear_removal(v) == v & ~PM_REMOVAL"),
        thm("pm-slot-check-refcnt",
            slot_check_refcnt(w, v) == z3.LShR(v, c.PM_REFCNT_SHIFT),
            f"PM_REFCNT_SHIFT = {c.PM_REFCNT_SHIFT - 1}",
            slot_check_refcnt(w, v) == z3.LShR(v, c.PM_REFCNT_SHIFT - 1),
            "slot_check_refcnt(v) == (unsigned long)v >> PM_REFCNT_SHIFT"),
        thm("pm-slot-inc-refcnt", slot_inc_refcnt(w, v) == v + k(c.REFCNT_INC),
            "adds 1UL << PM_FLAGS_SHIFT", slot_inc_refcnt(w, v) == v + k(c.PM_REMOVAL),
            "slot_inc_refcnt(v) == v + (1UL << PM_REFCNT_SHIFT)"),
        thm("pm-slot-dec-refcnt", slot_dec_refcnt(w, v) == v - k(c.REFCNT_INC),
            "subtracts 1UL << PM_FLAGS_SHIFT", slot_dec_refcnt(w, v) == v - k(c.PM_REMOVAL),
            "slot_dec_refcnt(v) == v - (1UL << PM_REFCNT_SHIFT)"),
        thm("pm-slot-get-page-field", slot_page_field(w, v) == ppn,
            f"mask (1UL << {one_off}) - 1",
            slot_page_field(w, v) == v & k((1 << one_off) - 1),
            "the ppn pm_slot_get_page decodes == v & ((1UL << PM_FLAGS_SHIFT) - 1)"),
        thm("pm-slot-set-page", slot_set_page(w, v, p) == p | (v & ~k(c.PPN_MASK)),
            f"mask (1UL << {one_off}) - 1",
            slot_set_page(w, v, p) == p | (v & ~k((1 << one_off) - 1)),
            "slot_set_page(v, pg) == page2ppn(pg) | (v & ~((1UL << PM_FLAGS_SHIFT) - 1))"),
        # The picture: the same fields as bit ranges, which also pins the widths.
        thm("picture-fields",
            z3.And(slot_page_field(w, v) == _field(v, 0, pic.ppn_bits, bits),
                   slot_check_removal(w, v) == (z3.Extract(pic.ppn_bits, pic.ppn_bits, v)
                                                == z3.BitVecVal(1, 1)),
                   slot_check_refcnt(w, v) == _field(v, pic.ppn_bits + pic.flag_bits,
                                                     pic.ref_bits, bits)),
            "a 10-bit refcount above a 53-bit low part",
            slot_check_refcnt(w, v) == _field(v, pic.ppn_bits + 2, pic.ref_bits - 1, bits),
            "ppn, flag and refcount are the bit ranges of the comment's picture, top bit "
            f"down {pic.ref_bits} | {pic.flag_bits} | {pic.ppn_bits}"),
    ]


def run(word_bits: int | None = None) -> list[CheckResult]:
    """The codec against the C's layout (both word sizes by default)."""
    sizes = WORD_SIZES if word_bits is None else (word_bits,)
    return [r for bits in sizes for r in prove_all(theorems(bits))]

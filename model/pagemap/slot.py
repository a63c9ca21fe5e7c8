"""The page-map slot word: refcount, removal flag and page number in one word.

Models the ``pm_slot_*`` helpers at the top of kern/src/pagemap.c (seed).
A radix-tree slot of a page map holds, from the top bit down::

    | refcount: 11 bits | REMOVAL: 1 bit | ppn: 52 bits (64-bit) / 20 bits (32-bit) |

Two layers, one source of truth (spec/slot.md):

* ``slot_*`` -- the generic core, undecorated, over any ``Word`` of
  ``pagemap.word`` (Python ints or Z3 bit-vectors).  The Z3 proofs in
  ``proofs/`` call exactly these.
* ``pm_slot_*`` -- the contracted wrappers the executable model calls, on
  concrete ints.  Their icontract conditions say what the C assumes and
  guarantees; ``tests/test_slot.py`` shows that each wrapper and its core are
  the same function on concrete words.

A page is named by its ppn (an index into ``pages``).  ``None`` is the C NULL
page.  ``pm_slot_get_page`` returns NULL only when the whole word is 0; a word
whose ppn field is 0 but whose upper bits are not decodes to ``pages[0]``
(ppn 0), exactly as the C does.
"""

from __future__ import annotations

from typing import Any

import icontract

from pagemap.word import IntWord, int_word

# -- layout (PM_FLAGS_SHIFT and friends) ---------------------------------------

#: PM_FLAGS_SHIFT: 52 under CONFIG_64BIT, 20 otherwise.
FLAGS_SHIFT = {64: 52, 32: 20}


def flags_shift(bits: int) -> int:
    """PM_FLAGS_SHIFT for a word size."""
    return FLAGS_SHIFT[bits]


def refcnt_shift(bits: int) -> int:
    """PM_REFCNT_SHIFT = PM_FLAGS_SHIFT + 1."""
    return FLAGS_SHIFT[bits] + 1


def removal_bit(bits: int) -> int:
    """PM_REMOVAL = 1UL << PM_FLAGS_SHIFT."""
    return 1 << FLAGS_SHIFT[bits]


def ppn_mask(bits: int) -> int:
    """(1UL << PM_FLAGS_SHIFT) - 1: the ppn field."""
    return (1 << FLAGS_SHIFT[bits]) - 1


def refcnt_max(bits: int) -> int:
    """Largest count the refcount field holds: 2**11 - 1 on both word sizes."""
    return (1 << (bits - refcnt_shift(bits))) - 1


#: page2ppn(NULL): the C computes (0 - pages) / sizeof(struct page) with no
#: NULL check.  The result depends on where ``pages`` lies, so the proofs
#: quantify over it; the executable model needs one concrete value and uses
#: these.  64-bit: a value a modern GCC produced for a direct-map ``pages``;
#: 32-bit: the same computation for pages = 0xc1000000, sizeof = 56.  Both
#: have bits set above the ppn field, which is what matters.
PAGE2PPN_NULL = {
    64: 0x13B13C4EC4EC0000,
    32: ((1 << 32) - 0xC1000000) // 8 * pow(7, -1, 1 << 32) % (1 << 32),
}


# -- generic core (int or Z3), undecorated --------------------------------------


def slot_check_removal(w: Any, v: Any) -> Any:
    """pm_slot_check_removal: is the PM_REMOVAL bit set?"""
    return w.ite(w.is_zero(v & w.const(removal_bit(w.bits))), False, True)


def slot_set_removal(w: Any, v: Any) -> Any:
    """pm_slot_set_removal: slot_val | PM_REMOVAL."""
    return v | w.const(removal_bit(w.bits))


def slot_clear_removal(w: Any, v: Any) -> Any:
    """pm_slot_clear_removal: slot_val & ~PM_REMOVAL."""
    return v & w.const(~removal_bit(w.bits))


def slot_check_refcnt(w: Any, v: Any) -> Any:
    """pm_slot_check_refcnt: slot_val >> PM_REFCNT_SHIFT (logical)."""
    return w.to_int(w.lshr(v, refcnt_shift(w.bits)))


def slot_inc_refcnt(w: Any, v: Any) -> Any:
    """pm_slot_inc_refcnt: slot_val + (1UL << PM_REFCNT_SHIFT), modulo 2**bits."""
    return w.wrap(v + w.const(1 << refcnt_shift(w.bits)))


def slot_dec_refcnt(w: Any, v: Any) -> Any:
    """pm_slot_dec_refcnt: slot_val - (1UL << PM_REFCNT_SHIFT), modulo 2**bits.

    pm_put_page's ``atomic_add(slot, -(1UL << PM_REFCNT_SHIFT))`` computes the
    same word."""
    return w.wrap(v - w.const(1 << refcnt_shift(w.bits)))


def slot_is_null(w: Any, v: Any) -> Any:
    """pm_slot_get_page returns NULL exactly when the whole word is 0."""
    return w.is_zero(v)


def slot_page_field(w: Any, v: Any) -> Any:
    """The ppn pm_slot_get_page hands to ppn2page: slot_val & ((1UL << shift) - 1)."""
    return v & w.const(ppn_mask(w.bits))


def slot_set_page(w: Any, v: Any, ppn: Any) -> Any:
    """pm_slot_set_page: page2ppn(pg) | (slot_val & ~((1UL << shift) - 1)).

    ``ppn`` is whatever page2ppn returned: a real page's number, or for the
    NULL page the arbitrary word of ``PAGE2PPN_NULL``."""
    return ppn | (v & w.const(~ppn_mask(w.bits)))


# -- contracted wrappers on concrete words (what the model executes) -------------


def _w(bits: int) -> IntWord:
    return int_word(bits)


def is_word(v: int, bits: int) -> bool:
    """v is an unsigned long of one of the C code's word sizes."""
    return bits in FLAGS_SHIFT and 0 <= v < (1 << bits)


# Conditions read fields through the undecorated core, never through another
# contracted wrapper: a condition that calls a contracted function makes
# CrossHair analyse contracts inside contracts (and once hit its recursion
# limit), and it would check the same conditions twice at run time.


def _removal(v: int, bits: int) -> bool:
    return bool(slot_check_removal(_w(bits), v))


def _refcnt(v: int, bits: int) -> int:
    return int(slot_check_refcnt(_w(bits), v))


def _page(v: int, bits: int) -> int | None:
    w = _w(bits)
    return None if slot_is_null(w, v) else int(slot_page_field(w, v))


def _low(v: int, bits: int) -> int:
    """Everything below the refcount: the removal flag and the ppn."""
    return v & ((1 << refcnt_shift(bits)) - 1)


@icontract.require(lambda v, bits: is_word(v, bits))
@icontract.ensure(lambda v, bits, result: result == bool(v & removal_bit(bits)))
def pm_slot_check_removal(v: int, bits: int) -> bool:
    """pm_slot_check_removal (pagemap.c)."""
    return _removal(v, bits)


@icontract.require(lambda v, bits: is_word(v, bits))
@icontract.ensure(lambda bits, result: _removal(result, bits))
@icontract.ensure(lambda v, bits, result: result & ~removal_bit(bits) == v & ~removal_bit(bits))
def pm_slot_set_removal(v: int, bits: int) -> int:
    """pm_slot_set_removal (pagemap.c): sets the flag, nothing else."""
    return int(slot_set_removal(_w(bits), v))


@icontract.require(lambda v, bits: is_word(v, bits))
@icontract.ensure(lambda bits, result: not _removal(result, bits))
@icontract.ensure(lambda v, bits, result: result & ~removal_bit(bits) == v & ~removal_bit(bits))
def pm_slot_clear_removal(v: int, bits: int) -> int:
    """pm_slot_clear_removal (pagemap.c): clears the flag, nothing else."""
    return int(slot_clear_removal(_w(bits), v))


@icontract.require(lambda v, bits: is_word(v, bits))
@icontract.ensure(lambda bits, result: 0 <= result <= refcnt_max(bits))
@icontract.ensure(
    lambda v, bits, result: (result << refcnt_shift(bits)) | _low(v, bits) == v,
    "the count is the whole field above flag and ppn",
)
def pm_slot_check_refcnt(v: int, bits: int) -> int:
    """pm_slot_check_refcnt (pagemap.c): the 11-bit slot refcount."""
    return _refcnt(v, bits)


@icontract.require(lambda v, bits: is_word(v, bits))
@icontract.require(
    lambda v, bits: _refcnt(v, bits) < refcnt_max(bits),
    "the 11-bit refcount must not overflow (the C does not check)",
)
@icontract.ensure(
    lambda v, bits, result: _refcnt(result, bits) == _refcnt(v, bits) + 1
)
@icontract.ensure(lambda v, bits, result: _low(result, bits) == _low(v, bits))
def pm_slot_inc_refcnt(v: int, bits: int) -> int:
    """pm_slot_inc_refcnt (pagemap.c): one more slot reference."""
    return int(slot_inc_refcnt(_w(bits), v))


@icontract.require(lambda v, bits: is_word(v, bits))
@icontract.require(
    lambda v, bits: _refcnt(v, bits) > 0,
    "a slot reference must be held to be dropped",
)
@icontract.ensure(
    lambda v, bits, result: _refcnt(result, bits) == _refcnt(v, bits) - 1
)
@icontract.ensure(lambda v, bits, result: _low(result, bits) == _low(v, bits))
def pm_slot_dec_refcnt(v: int, bits: int) -> int:
    """pm_slot_dec_refcnt (pagemap.c), and pm_put_page's atomic_add."""
    return int(slot_dec_refcnt(_w(bits), v))


@icontract.require(lambda v, bits: is_word(v, bits))
@icontract.ensure(lambda v, result: (result is None) == (v == 0))
@icontract.ensure(lambda v, bits, result: result is None or result == v & ppn_mask(bits))
def pm_slot_get_page(v: int, bits: int) -> int | None:
    """pm_slot_get_page (pagemap.c): the page's ppn, or None (NULL) for a 0 word."""
    return _page(v, bits)


@icontract.require(lambda v, bits: is_word(v, bits))
# one lower bound: ppn != 0 and 0 < ppn apart made a weakened 0 <= ppn undetectable
@icontract.require(
    lambda ppn: ppn > 0, "assert(pg != pages): page 0 is never allocated, nor one before it"
)
@icontract.require(lambda ppn, bits: ppn <= ppn_mask(bits), "a real page's ppn fits the ppn field")
@icontract.ensure(lambda ppn, bits, result: _page(result, bits) == ppn)
@icontract.ensure(
    lambda v, bits, result: result & ~ppn_mask(bits) == v & ~ppn_mask(bits),
    "refcount and removal flag are unchanged",
)
def pm_slot_set_page(v: int, ppn: int, bits: int) -> int:
    """pm_slot_set_page (pagemap.c) for a real page."""
    return int(slot_set_page(_w(bits), v, ppn))


@icontract.require(lambda v, bits: is_word(v, bits))
@icontract.ensure(lambda bits, result: is_word(result, bits))
@icontract.ensure(
    lambda v, bits, result: result & ppn_mask(bits) == PAGE2PPN_NULL[bits] & ppn_mask(bits),
    "the ppn field is page2ppn(NULL)'s low bits",
)
@icontract.ensure(
    lambda v, bits, result: result & ~ppn_mask(bits)
    == (v | PAGE2PPN_NULL[bits]) & ~ppn_mask(bits) & ((1 << bits) - 1),
    "above the field: v's refcount and flag, OR-ed with page2ppn(NULL)'s upper bits",
)
def pm_slot_set_page_null(v: int, bits: int) -> int:
    """pm_slot_set_page(slot_val, 0), as pm_remove_contig's final loop calls it.

    page2ppn(NULL) is not 0 (see ``PAGE2PPN_NULL``), so the result is not a
    word with an empty ppn field: the postconditions pin what it is instead, the
    garbage word of finding F-SLOT-NULL (spec/slot.md)."""
    return int(slot_set_page(_w(bits), v, PAGE2PPN_NULL[bits] & _w(bits).mask))

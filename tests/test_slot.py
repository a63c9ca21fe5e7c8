"""The contracted slot wrappers (pm_slot_*) and the generic core (slot_*) agree.

pagemap.slot keeps one source of truth: the core is what Z3 proves, the
wrappers are what the model executes.  These tests show, on concrete words of
both sizes, that each wrapper computes exactly its core function within its
preconditions, and that the contracts fire outside them (spec/slot.md).
"""

from __future__ import annotations

import icontract
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pagemap import slot
from pagemap.slot import (
    PAGE2PPN_NULL,
    flags_shift,
    ppn_mask,
    refcnt_max,
    refcnt_shift,
    removal_bit,
)
from pagemap.word import WORD_SIZES, int_word

BITS = st.sampled_from(WORD_SIZES)


@st.composite
def words(draw: st.DrawFn, bits: int, min_count: int = 0, max_count: int | None = None) -> int:
    """A slot word, biased towards the edges of each field."""
    top = refcnt_max(bits) if max_count is None else max_count
    edges = [c for c in (min_count, min_count + 1, top - 1, top) if min_count <= c <= top]
    count = draw(st.one_of(st.sampled_from(edges), st.integers(min_count, top)))
    mask = ppn_mask(bits)
    ppn = draw(st.one_of(st.sampled_from([0, 1, 2, mask - 1, mask]), st.integers(0, mask)))
    flag = draw(st.booleans())
    return (count << refcnt_shift(bits)) | (removal_bit(bits) if flag else 0) | ppn


def any_word(bits: int) -> st.SearchStrategy[int]:
    return st.one_of(words(bits), st.integers(0, (1 << bits) - 1))


def real_ppn(bits: int) -> st.SearchStrategy[int]:
    mask = ppn_mask(bits)
    return st.one_of(st.sampled_from([1, 2, mask - 1, mask]), st.integers(1, mask))


@given(data=st.data(), bits=BITS)
def test_removal_wrappers_are_the_core(data: st.DataObject, bits: int) -> None:
    v = data.draw(any_word(bits))
    w = int_word(bits)
    assert slot.pm_slot_check_removal(v, bits) == slot.slot_check_removal(w, v)
    assert slot.pm_slot_set_removal(v, bits) == slot.slot_set_removal(w, v)
    assert slot.pm_slot_clear_removal(v, bits) == slot.slot_clear_removal(w, v)
    assert slot.pm_slot_check_refcnt(v, bits) == slot.slot_check_refcnt(w, v)


@given(data=st.data(), bits=BITS)
def test_refcount_wrappers_are_the_core(data: st.DataObject, bits: int) -> None:
    w = int_word(bits)
    below_max = data.draw(words(bits, max_count=refcnt_max(bits) - 1))
    above_zero = data.draw(words(bits, min_count=1))
    assert slot.pm_slot_inc_refcnt(below_max, bits) == slot.slot_inc_refcnt(w, below_max)
    assert slot.pm_slot_dec_refcnt(above_zero, bits) == slot.slot_dec_refcnt(w, above_zero)


@given(data=st.data(), bits=BITS)
def test_page_wrappers_are_the_core(data: st.DataObject, bits: int) -> None:
    w = int_word(bits)
    v = data.draw(any_word(bits))
    ppn = data.draw(real_ppn(bits))
    expected_page = None if slot.slot_is_null(w, v) else slot.slot_page_field(w, v)
    assert slot.pm_slot_get_page(v, bits) == expected_page
    assert slot.pm_slot_set_page(v, ppn, bits) == slot.slot_set_page(w, v, ppn)
    assert slot.pm_slot_set_page_null(v, bits) == slot.slot_set_page(w, v, PAGE2PPN_NULL[bits])


@pytest.mark.parametrize("bits", WORD_SIZES)
def test_field_boundaries_concretely(bits: int) -> None:
    """Hand-picked words at the field edges, decoded by the wrappers."""
    fs = flags_shift(bits)
    full = (1 << bits) - 1
    assert slot.pm_slot_check_refcnt(full, bits) == 2047
    assert slot.pm_slot_check_removal(1 << fs, bits)
    assert not slot.pm_slot_check_removal((1 << fs) - 1, bits)
    assert slot.pm_slot_get_page(1 << fs, bits) == 0  # pages[0], not NULL
    assert slot.pm_slot_get_page(0, bits) is None
    inc = slot.pm_slot_inc_refcnt((2046 << (fs + 1)) | (1 << fs) | 5, bits)
    assert inc == (2047 << (fs + 1)) | (1 << fs) | 5
    assert slot.pm_slot_dec_refcnt(1 << (fs + 1), bits) == 0


def test_contracts_are_enabled() -> None:
    """The remaining tests mean something only if icontract checks at all."""
    assert __debug__, "pytest runs under -O: icontract's default is off"
    for fn in (slot.pm_slot_inc_refcnt, slot.pm_slot_dec_refcnt, slot.pm_slot_set_page):
        assert getattr(fn, "__preconditions__", None), f"{fn.__name__} has no checker"


@pytest.mark.parametrize("bits", WORD_SIZES)
def test_contracts_fire_outside_preconditions(bits: int) -> None:
    top = refcnt_max(bits) << refcnt_shift(bits)
    with pytest.raises(icontract.ViolationError, match="reference must be held"):
        slot.pm_slot_dec_refcnt(removal_bit(bits) | 7, bits)  # count 0
    with pytest.raises(icontract.ViolationError, match="must not overflow"):
        slot.pm_slot_inc_refcnt(top | 7, bits)  # count 2047
    # Either of set_page's two preconditions may report ppn 0 first.
    with pytest.raises(icontract.ViolationError, match="ppn was 0"):
        slot.pm_slot_set_page(top, 0, bits)
    with pytest.raises(icontract.ViolationError, match="fits the ppn field"):
        slot.pm_slot_set_page(0, ppn_mask(bits) + 1, bits)
    with pytest.raises(icontract.ViolationError):
        slot.pm_slot_check_refcnt(1 << bits, bits)  # not a word of this size
    # Just inside the preconditions nothing fires.
    assert slot.pm_slot_check_refcnt(slot.pm_slot_dec_refcnt(1 << refcnt_shift(bits), bits),
                                     bits) == 0
    assert slot.pm_slot_get_page(slot.pm_slot_set_page(0, ppn_mask(bits), bits), bits) == (
        ppn_mask(bits)
    )


def test_page2ppn_null_is_the_c_computation() -> None:
    """The 32-bit page2ppn(NULL) is the C's (0 - pages) / sizeof(struct page) for
    pages = 0xc1000000 and sizeof = 56, an exact pointer division (a cosmic-ray mutant
    of its formula survived every check: any value with bits above the ppn field
    behaves alike in the scenarios).  Both values have bits above the ppn field and
    fit the word."""
    assert PAGE2PPN_NULL[32] * 56 == (1 << 32) - 0xC1000000
    for bits in WORD_SIZES:
        assert PAGE2PPN_NULL[bits] >> flags_shift(bits) != 0
        assert 0 < PAGE2PPN_NULL[bits] < 1 << bits


CONTRACTED = ("pm_slot_check_removal", "pm_slot_set_removal", "pm_slot_clear_removal",
              "pm_slot_check_refcnt", "pm_slot_inc_refcnt", "pm_slot_dec_refcnt",
              "pm_slot_get_page", "pm_slot_set_page", "pm_slot_set_page_null")


def _posts_hold(fn: object, args: dict[str, int], result: object) -> bool:
    """Whether every icontract postcondition of ``fn`` accepts ``result`` for ``args``."""
    return all(c.condition(**{a: result if a == "result" else args[a] for a in c.condition_args})
               for c in fn.__postconditions__)  # type: ignore[attr-defined]


def _others(result: object, bits: int, optional: bool) -> list[object]:
    """Wrong results near ``result``: every one-bit flip, one more, one less (and None
    for a result that may be None)."""
    if isinstance(result, bool):
        return [not result]
    if result is None:
        return [1, 2]
    assert isinstance(result, int)
    near = {result ^ (1 << k) for k in range(bits)} | {result + 1, result - 1}
    return sorted(c for c in near if c >= 0) + ([None] if optional else [])


@pytest.mark.parametrize("bits", WORD_SIZES)
@pytest.mark.parametrize("name", CONTRACTED)
def test_postconditions_pin_the_result(name: str, bits: int) -> None:
    """Each slot function's postconditions accept its result and no other near it: a
    weakened postcondition (``==`` -> ``>=``, a dropped frame) lets a wrong result
    through.  (cosmic-ray mutants weakening them survived every scenario, which only
    ever runs correct code through them.)"""
    fn = getattr(slot, name)
    rs = refcnt_shift(bits)
    words = [0, removal_bit(bits), 1 << rs, (5 << rs) | removal_bit(bits) | 123,
             (refcnt_max(bits) << rs) | 7, ppn_mask(bits), PAGE2PPN_NULL[bits], 3 << rs | 9]
    checked = 0
    for v in words:
        for ppn in ([1, 77, ppn_mask(bits)] if name == "pm_slot_set_page" else [None]):
            args = {"v": v, "bits": bits} | ({} if ppn is None else {"ppn": ppn})
            try:
                result = fn(**args)
            except icontract.ViolationError:
                continue  # outside the preconditions
            assert _posts_hold(fn, args, result), (name, args, result)
            for wrong in _others(result, bits, name == "pm_slot_get_page"):
                assert not _posts_hold(fn, args, wrong), (name, args, result, wrong)
            checked += 1
    assert checked >= 3, name


@pytest.mark.parametrize("bits", WORD_SIZES)
def test_set_page_rejects_a_negative_ppn(bits: int) -> None:
    """The lower bound is ``0 < ppn``, not ``ppn != 0`` (a mutant ``0 != ppn`` survived),
    and 0 itself is rejected (``0 <= ppn`` must not pass)."""
    for ppn in (-1, 0):
        with pytest.raises(icontract.ViolationError, match="page 0 is never allocated"):
            slot.pm_slot_set_page(0, ppn, bits)
    assert slot.pm_slot_get_page(slot.pm_slot_set_page(0, ppn_mask(bits), bits), bits) \
        == ppn_mask(bits)

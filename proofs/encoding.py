"""Z3 proofs about the page-map slot word (the ``pm_slot_*`` helpers of kern/src/pagemap.c).

Every formula is built by calling the generic core of ``pagemap.slot`` over
``pagemap.word.Z3Word``: the bit arithmetic that is proved is the one the
model executes (spec/slot.md).  The only arithmetic written here is

* the C statement of ``pm_put_page`` (an ``atomic_add`` of a negative
  constant), which is the thing compared against ``slot_dec_refcnt``; and
* the deliberately wrong *mutants* below, used as negative twins.

Two kinds of theorems:

* lemmas (``expected="proved"``): what the 2014 code relies on, with every
  assumption explicit;
* findings (``expected="counterexample"``, variant ``seed``): the same kind of
  claim with an assumption of the C dropped, where Z3 shows a witness.  Their
  twin pins the documented bad case (e.g. the model's concrete
  ``PAGE2PPN_NULL``), so that case is checked to be a counterexample too.

spec/slot.md explains each finding and whether it matters at runtime.
"""

from __future__ import annotations

from typing import Any

import z3
from pagemap.results import CheckResult
from pagemap.slot import (
    PAGE2PPN_NULL,
    flags_shift,
    ppn_mask,
    refcnt_max,
    refcnt_shift,
    removal_bit,
    slot_check_refcnt,
    slot_check_removal,
    slot_clear_removal,
    slot_dec_refcnt,
    slot_inc_refcnt,
    slot_is_null,
    slot_page_field,
    slot_set_page,
    slot_set_removal,
)
from pagemap.word import WORD_SIZES, Z3Word

from proofs.z3kit import COUNTEREXAMPLE, Theorem, Twin, prove_all, ule, ult

And = z3.And
Not = z3.Not

# -- mutants: plausible slips in the C helpers, used only as negative twins ------


def mut_removal_bit_low(w: Any, v: Any) -> Any:
    """pm_slot_set_removal with PM_REMOVAL one bit too low (inside the ppn field)."""
    return v | w.const(1 << (flags_shift(w.bits) - 1))


def mut_clear_wrong_bit(w: Any, v: Any) -> Any:
    """pm_slot_clear_removal clearing bit PM_REFCNT_SHIFT instead of PM_REMOVAL."""
    return v & w.const(~(1 << refcnt_shift(w.bits)))


def mut_toggle_removal(w: Any, v: Any) -> Any:
    """Setting or clearing PM_REMOVAL with ^ instead of | or &~."""
    return v ^ w.const(removal_bit(w.bits))


def mut_inc_flags_shift(w: Any, v: Any) -> Any:
    """pm_slot_inc_refcnt adding 1UL << PM_FLAGS_SHIFT instead of PM_REFCNT_SHIFT."""
    return w.wrap(v + w.const(1 << flags_shift(w.bits)))


def mut_dec_flags_shift(w: Any, v: Any) -> Any:
    """pm_slot_dec_refcnt subtracting 1UL << PM_FLAGS_SHIFT."""
    return w.wrap(v - w.const(1 << flags_shift(w.bits)))


def mut_set_page_keep_old(w: Any, v: Any, ppn: Any) -> Any:
    """pm_slot_set_page forgetting to mask out the old ppn."""
    return ppn | v


def mut_set_page_wide_mask(w: Any, v: Any, ppn: Any) -> Any:
    """pm_slot_set_page masking with PM_REFCNT_SHIFT: it drops PM_REMOVAL."""
    return ppn | (v & w.const(~((1 << refcnt_shift(w.bits)) - 1)))


def mut_count_reader(w: Any, v: Any) -> Any:
    """pm_slot_check_refcnt shifting one bit too far."""
    return w.lshr(v, refcnt_shift(w.bits) + 1)


# -- the C statements built from the core ----------------------------------------


def find_page_cas_body(w: Any, v: Any) -> Any:
    """pm_find_page's CAS-loop body: clear PM_REMOVAL, then take a slot ref."""
    return slot_inc_refcnt(w, slot_clear_removal(w, v))


def put_page_atomic_add(w: Any, v: Any) -> Any:
    """pm_put_page: atomic_add of -(1UL << PM_REFCNT_SHIFT) on the slot word.

    The constant is an unsigned long, so -(x) is 2**bits - x; ``const`` wraps it."""
    return w.wrap(v + w.const(-(1 << refcnt_shift(w.bits))))


# -- theorems --------------------------------------------------------------------


class _Slot:
    """Field readers over one word size, all from the core."""

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.w = Z3Word(bits)

    def var(self, name: str) -> Any:
        return self.w.var(name)

    def c(self, value: int) -> Any:
        return self.w.const(value)

    def page(self, v: Any) -> Any:
        return slot_page_field(self.w, v)

    def removal(self, v: Any) -> Any:
        return slot_check_removal(self.w, v)

    def count(self, v: Any) -> Any:
        return slot_check_refcnt(self.w, v)

    def null(self, v: Any) -> Any:
        return slot_is_null(self.w, v)

    def same_page_count(self, a: Any, b: Any) -> Any:
        return And(self.page(a) == self.page(b), self.count(a) == self.count(b))

    def same_low(self, a: Any, b: Any) -> Any:
        """Same ppn field and same PM_REMOVAL: what refcount ops must not touch."""
        return And(self.page(a) == self.page(b), self.removal(a) == self.removal(b))

    def same_high(self, a: Any, b: Any) -> Any:
        """Same refcount and PM_REMOVAL: what pm_slot_set_page must not touch."""
        return And(self.count(a) == self.count(b), self.removal(a) == self.removal(b))

    def valid_ppn(self, p: Any) -> Any:
        """A real page: not pages[0] (set_page asserts it), and it fits the field."""
        return And(p != self.c(0), ule(p, self.c(ppn_mask(self.bits))))


def _field_lemmas(s: _Slot) -> list[Theorem]:
    w, bits = s.w, s.bits
    v, p = s.var("v"), s.var("p")
    sr, cr = slot_set_removal(w, v), slot_clear_removal(w, v)
    inc, dec = slot_inc_refcnt(w, v), slot_dec_refcnt(w, v)
    sp = slot_set_page(w, v, p)
    return [
        Theorem(
            "encoding/set-removal-preserves-page-and-count", bits, [],
            And(s.same_page_count(sr, v), s.removal(sr)),
            Twin("PM_REMOVAL one bit too low", And(
                s.same_page_count(mut_removal_bit_low(w, v), v),
                s.removal(mut_removal_bit_low(w, v)))),
            statement="pm_slot_set_removal sets the flag and keeps ppn and refcount",
        ),
        Theorem(
            "encoding/clear-removal-preserves-page-and-count", bits, [],
            And(s.same_page_count(cr, v), Not(s.removal(cr))),
            Twin("clear bit PM_REFCNT_SHIFT instead", And(
                s.same_page_count(mut_clear_wrong_bit(w, v), v),
                Not(s.removal(mut_clear_wrong_bit(w, v))))),
            statement="pm_slot_clear_removal clears the flag and keeps ppn and refcount",
        ),
        Theorem(
            "encoding/inc-preserves-low-fields", bits, [],
            s.same_low(inc, v),
            Twin("inc adds 1 << PM_FLAGS_SHIFT", s.same_low(mut_inc_flags_shift(w, v), v)),
            statement="pm_slot_inc_refcnt keeps ppn and PM_REMOVAL, at every count",
        ),
        Theorem(
            "encoding/dec-preserves-low-fields", bits, [],
            s.same_low(dec, v),
            Twin("dec subtracts 1 << PM_FLAGS_SHIFT", s.same_low(mut_dec_flags_shift(w, v), v)),
            statement="pm_slot_dec_refcnt keeps ppn and PM_REMOVAL, at every count",
        ),
        Theorem(
            "encoding/set-page-preserves-count-and-removal", bits, [s.valid_ppn(p)],
            s.same_high(sp, v),
            Twin("mask includes PM_REMOVAL", s.same_high(mut_set_page_wide_mask(w, v, p), v)),
            statement="pm_slot_set_page with 0 < ppn < 2^FLAGS_SHIFT keeps refcount and flag",
        ),
        Theorem(
            "encoding/get-page-after-set-page", bits, [s.valid_ppn(p)],
            And(s.page(sp) == p, Not(s.null(sp))),
            Twin("set_page keeps the old ppn bits", And(
                s.page(mut_set_page_keep_old(w, v, p)) == p,
                Not(s.null(mut_set_page_keep_old(w, v, p))))),
            statement="pm_slot_get_page(pm_slot_set_page(v, pg)) is pg and the word is non-null",
        ),
    ]


def _algebra_lemmas(s: _Slot) -> list[Theorem]:
    w, bits = s.w, s.bits
    v = s.var("v")
    sr, cr = slot_set_removal, slot_clear_removal
    inc, dec = slot_inc_refcnt, slot_dec_refcnt
    minc, mdec = mut_inc_flags_shift, mut_dec_flags_shift

    u = s.var("u")

    def same_fields(count: Any) -> Any:
        return And(s.page(v) == s.page(u), s.removal(v) == s.removal(u), count(v) == count(u))

    def commute(i: Any, d: Any) -> Any:
        return And(
            sr(w, i(w, v)) == i(w, sr(w, v)),
            sr(w, d(w, v)) == d(w, sr(w, v)),
            cr(w, i(w, v)) == i(w, cr(w, v)),
            cr(w, d(w, v)) == d(w, cr(w, v)),
        )

    return [
        Theorem(
            "encoding/inc-then-dec-identity", bits, [],
            dec(w, inc(w, v)) == v,
            Twin("dec subtracts 1 << PM_FLAGS_SHIFT", mdec(w, inc(w, v)) == v),
            statement="pm_slot_dec_refcnt(pm_slot_inc_refcnt(v)) == v for every word",
        ),
        Theorem(
            "encoding/dec-then-inc-identity", bits, [],
            inc(w, dec(w, v)) == v,
            Twin("inc adds 1 << PM_FLAGS_SHIFT", minc(w, dec(w, v)) == v),
            statement="pm_slot_inc_refcnt(pm_slot_dec_refcnt(v)) == v for every word",
        ),
        Theorem(
            "encoding/set-removal-idempotent", bits, [],
            sr(w, sr(w, v)) == sr(w, v),
            Twin("set with ^", mut_toggle_removal(w, mut_toggle_removal(w, v))
                 == mut_toggle_removal(w, v)),
            statement="setting PM_REMOVAL twice is setting it once (a repeated mark pass)",
        ),
        Theorem(
            "encoding/clear-removal-idempotent", bits, [],
            cr(w, cr(w, v)) == cr(w, v),
            Twin("clear with ^", mut_toggle_removal(w, mut_toggle_removal(w, v))
                 == mut_toggle_removal(w, v)),
            statement="clearing PM_REMOVAL twice is clearing it once (two racing lookups)",
        ),
        Theorem(
            "encoding/removal-commutes-with-refcount", bits, [],
            commute(inc, dec),
            Twin("inc/dec at 1 << PM_FLAGS_SHIFT", commute(minc, mdec)),
            statement="set/clear PM_REMOVAL commute with inc/dec of the refcount",
        ),
        Theorem(
            "encoding/fields-partition-word", bits, [],
            z3.Implies(same_fields(s.count), v == u),
            Twin("refcount read one bit too far",
                 z3.Implies(same_fields(lambda x: mut_count_reader(w, x)), v == u)),
            statement="ppn field, PM_REMOVAL and refcount together determine the word",
        ),
        Theorem(
            "encoding/refcnt-fits-11-bits", bits, [],
            ule(s.count(v), s.c(refcnt_max(bits))),
            Twin("claim a 2046 maximum", ule(s.count(v), s.c(refcnt_max(bits) - 1))),
            statement=f"pm_slot_check_refcnt is at most {refcnt_max(bits)} (11 bits)",
        ),
    ]


def _count_lemmas(s: _Slot) -> list[Theorem]:
    """The refcount field as a counter, and its overflow/underflow (findings c, d)."""
    w, bits = s.w, s.bits
    v = s.var("v")
    top = s.c(refcnt_max(bits))
    inc, dec = slot_inc_refcnt(w, v), slot_dec_refcnt(w, v)
    show_inc = {"count": s.count(v), "count_after": s.count(inc)}
    show_dec = {"count": s.count(v), "count_after": s.count(dec)}
    return [
        Theorem(
            "encoding/inc-reads-back-plus-one", bits, [ult(s.count(v), top)],
            s.count(inc) == s.count(v) + 1,
            Twin("inc adds 1 << PM_FLAGS_SHIFT",
                 s.count(mut_inc_flags_shift(w, v)) == s.count(v) + 1),
            statement="below 2047, pm_slot_check_refcnt after inc is one more",
        ),
        Theorem(
            "encoding/dec-reads-back-minus-one", bits, [ult(s.c(0), s.count(v))],
            s.count(dec) == s.count(v) - 1,
            Twin("dec subtracts 1 << PM_FLAGS_SHIFT",
                 s.count(mut_dec_flags_shift(w, v)) == s.count(v) - 1),
            statement="above 0, pm_slot_check_refcnt after dec is one less",
        ),
        Theorem(
            "encoding/inc-at-max-wraps-keeps-low-fields", bits, [s.count(v) == top],
            And(s.count(inc) == s.c(0), s.same_low(inc, v)),
            Twin("claim the count saturates", s.count(inc) == top),
            statement="at 2047, inc wraps the count to 0 and carries nothing into flag or ppn",
        ),
        Theorem(
            "encoding/dec-at-zero-wraps-keeps-low-fields", bits, [s.count(v) == s.c(0)],
            And(s.count(dec) == top, s.same_low(dec, v)),
            Twin("claim the count saturates", s.count(dec) == s.c(0)),
            statement="at 0, dec wraps the count to 2047 and borrows nothing from flag or ppn",
        ),
        Theorem(
            "encoding/inc-overflow-wraps-count", bits, [],
            s.count(inc) == s.count(v) + 1,
            Twin("count pinned to 2047", s.count(inc) == s.count(v) + 1,
                 [s.count(v) == top]),
            expected=COUNTEREXAMPLE, variant="seed", show=show_inc,
            statement="finding F-SLOT-REF-OVERFLOW: without count < 2047, inc does not add "
            "one (no C check)",
        ),
        Theorem(
            "encoding/dec-underflow-wraps-count", bits, [],
            s.count(dec) == s.count(v) - 1,
            Twin("count pinned to 0", s.count(dec) == s.count(v) - 1,
                 [s.count(v) == s.c(0)]),
            expected=COUNTEREXAMPLE, variant="seed", show=show_dec,
            statement="finding F-SLOT-REF-UNDERFLOW: without count > 0, dec (pm_put_page) "
            "wraps to 2047",
        ),
    ]


def _protocol_lemmas(s: _Slot) -> list[Theorem]:
    """The slot steps of pm_find_page, pm_remove_contig and pm_put_page."""
    w, bits = s.w, s.bits
    v = s.var("v")
    top = s.c(refcnt_max(bits))
    found = find_page_cas_body(w, v)
    no_clear = slot_inc_refcnt(w, v)  # the mutant body: forgets pm_slot_clear_removal
    marked = slot_set_removal(w, v)

    def found_ok(r: Any) -> Any:
        return And(Not(s.null(r)), s.page(r) == s.page(v), Not(s.removal(r)),
                   s.count(r) == s.count(v) + 1)

    def marked_ok(r: Any) -> Any:
        return And(Not(s.null(r)), s.page(r) == s.page(v), s.count(r) == s.c(0),
                   s.removal(r))

    def used_since_mark(lookup: Any) -> Any:
        # A pm_find_page and its pm_put_page between the mark and the check.
        return slot_dec_refcnt(w, lookup(w, slot_set_removal(w, v)))

    def check_detects(u: Any) -> Any:
        return And(s.removal(marked), Not(s.removal(u)), s.count(u) == s.c(0),
                   s.page(u) == s.page(v))

    idle = [Not(s.null(v)), s.count(v) == s.c(0)]
    return [
        Theorem(
            "encoding/find-page-cas-body", bits, [Not(s.null(v)), ult(s.count(v), top)],
            found_ok(found),
            Twin("body without pm_slot_clear_removal", found_ok(no_clear)),
            statement="pm_find_page CAS value: same page, PM_REMOVAL clear, count + 1",
        ),
        Theorem(
            "encoding/remove-mark-body", bits, idle,
            marked_ok(marked),
            Twin("mark without the refcount check", marked_ok(marked), [Not(s.null(v))]),
            statement="pm_remove_contig mark pass at count 0: same page, count 0, PM_REMOVAL",
        ),
        Theorem(
            "encoding/removal-check-detects-lookup", bits, idle,
            check_detects(used_since_mark(find_page_cas_body)),
            Twin("lookup body without pm_slot_clear_removal",
                 check_detects(used_since_mark(slot_inc_refcnt))),
            statement="dirty/final loops: a lookup+put after the mark leaves count 0 but "
            "PM_REMOVAL clear, so the flag check (not the count) sees it",
        ),
        Theorem(
            "encoding/put-page-atomic-add-is-dec", bits, [],
            put_page_atomic_add(w, v) == slot_dec_refcnt(w, v),
            Twin("atomic_add of +(1UL << PM_REFCNT_SHIFT)",
                 v + s.c(1 << refcnt_shift(bits)) == slot_dec_refcnt(w, v)),
            statement="pm_put_page's atomic_add(-(1UL << PM_REFCNT_SHIFT)) is pm_slot_dec_refcnt",
        ),
    ]


def _null_and_range(s: _Slot) -> list[Theorem]:
    """set_page(v, page2ppn(NULL)) in the final loop, NULL decoding, oversized ppns."""
    w, bits = s.w, s.bits
    v, n, p = s.var("v"), s.var("page2ppn_null"), s.var("p")
    cleared = slot_set_page(w, v, n)
    concrete = PAGE2PPN_NULL[bits] & w.mask
    # pm_remove_contig's final loop reaches set_page only for a non-null word
    # with PM_REMOVAL set, count 0 (else it warns) and a real page in the field.
    final = [s.removal(v), s.count(v) == s.c(0), s.page(v) != s.c(0)]
    intent = And(s.page(cleared) == s.c(0), s.same_high(cleared, v))
    keep_old = mut_set_page_keep_old(w, v, n)
    after = {"result": cleared, "ppn_field_after": s.page(cleared),
             "count_after": s.count(cleared)}
    sp = slot_set_page(w, v, p)
    return [
        Theorem(
            "encoding/set-page-zero-clears-page-field", bits, [*final, n == s.c(0)],
            And(intent, Not(s.null(cleared))),
            Twin("set_page keeps the old ppn bits", And(
                s.page(keep_old) == s.c(0), s.same_high(keep_old, v))),
            statement="if page2ppn(NULL) were 0, the final loop's set_page would empty the ppn "
            "field, keep count and PM_REMOVAL, and leave a non-null word",
        ),
        Theorem(
            "encoding/remove-final-word-stays-an-item", bits, final,
            And(Not(s.null(cleared)), s.removal(cleared)),
            Twin("mask includes PM_REMOVAL", Not(s.null(mut_set_page_wide_mask(w, v, n)))),
            statement="for every page2ppn(NULL), the final loop's word is non-null with "
            "PM_REMOVAL set, so radix_delete still finds an item to delete",
        ),
        Theorem(
            "encoding/remove-final-set-page-null", bits, final,
            intent,
            Twin(f"page2ppn(NULL) pinned to PAGE2PPN_NULL[{bits}] = {concrete:#x}", intent,
                 [*final, n == s.c(concrete)]),
            expected=COUNTEREXAMPLE, variant="seed", show=after,
            statement="finding F-SLOT-NULL: for an arbitrary page2ppn(NULL), set_page(v, 0) in "
            "pm_remove_contig need not empty the ppn field or keep count and PM_REMOVAL",
        ),
        Theorem(
            "encoding/get-page-null-for-empty-word", bits,
            [s.page(v) == s.c(0), s.count(v) == s.c(0), Not(s.removal(v))],
            s.null(v),
            Twin("drop 'PM_REMOVAL clear'", s.null(v),
                 [s.page(v) == s.c(0), s.count(v) == s.c(0)]),
            statement="an empty ppn field decodes to NULL when count and PM_REMOVAL are 0 too",
        ),
        Theorem(
            "encoding/get-page-null-only-for-zero-word", bits, [s.page(v) == s.c(0)],
            s.null(v),
            Twin("word pinned to PM_REMOVAL alone (the final loop's intent)", s.null(v),
                 [v == slot_set_removal(w, s.c(0))]),
            expected=COUNTEREXAMPLE, variant="seed",
            show={"ppn_field": s.page(v), "removal": s.removal(v), "count": s.count(v)},
            statement="finding F-SLOT-DECODE-ZERO: pm_slot_get_page of a non-zero word with "
            "an empty ppn field is pages[0], not NULL",
        ),
        Theorem(
            "encoding/set-page-oversized-ppn-corrupts-flags", bits, [p != s.c(0)],
            s.same_high(sp, v),
            Twin(f"ppn pinned to 1 << {flags_shift(bits)}", s.same_high(sp, v),
                 [p == s.c(1 << flags_shift(bits))]),
            expected=COUNTEREXAMPLE, variant="seed",
            show={"result": sp, "count_after": s.count(sp), "removal_after": s.removal(sp)},
            statement="finding F-SLOT-PPN-RANGE: a ppn >= 2^FLAGS_SHIFT spills into "
            "PM_REMOVAL and the refcount",
        ),
    ]


def theorems(bits: int) -> list[Theorem]:
    """Every encoding theorem for one word size."""
    s = _Slot(bits)
    return [
        *_field_lemmas(s),
        *_algebra_lemmas(s),
        *_count_lemmas(s),
        *_protocol_lemmas(s),
        *_null_and_range(s),
    ]


def run(word_bits: int | None = None) -> list[CheckResult]:
    """Prove the encoding lemmas and confirm the findings (both word sizes by default)."""
    sizes = WORD_SIZES if word_bits is None else (word_bits,)
    results: list[CheckResult] = []
    for bits in sizes:
        results.extend(prove_all(theorems(bits)))
    return results

"""Negative twins of the CrossHair checks: wrong code under the real contracts.

Each mutant is a realistic slip in one of the C helpers the model mirrors,
written the way the real function is written, and put under the *same*
icontract condition objects as the real function (``with_contracts_of``).
CrossHair must find a counterexample for every one of them; if it reports
``pass`` for a mutant, the CrossHair setup (or the contract) is too weak to
catch that slip and ``make crosshair`` fails.
"""

from __future__ import annotations

from typing import Any

from pagemap import pageflags, radix, slot, vmr
from pagemap.pageflags import PGSHIFT
from pagemap.radix import Radix
from pagemap.slot import flags_shift, refcnt_shift
from pagemap.vmr import VMR
from pagemap.word import int_word

from proofs.crosshair_checks import Target, with_contracts_of

MODULE = "proofs.crosshair_mutants"

# -- slot word (kern/src/pagemap.c, pm_slot_* helpers) ---------------------------


def slot_inc_refcnt_by_flags_shift(w: Any, v: Any) -> Any:
    """pm_slot_inc_refcnt adding 1UL << PM_FLAGS_SHIFT (1 << 52 on 64-bit):
    the removal bit, not one reference at 1 << PM_REFCNT_SHIFT."""
    return w.wrap(v + w.const(1 << flags_shift(w.bits)))


def inc_refcnt_by_flags_shift(v: int, bits: int) -> int:
    return int(slot_inc_refcnt_by_flags_shift(int_word(bits), v))


def slot_check_refcnt_by_flags_shift(w: Any, v: Any) -> Any:
    """pm_slot_check_refcnt shifting by PM_FLAGS_SHIFT: the removal flag lands in
    bit 0 of the count (a refcount of 1 read for an unreferenced doomed slot)."""
    return w.to_int(w.lshr(v, flags_shift(w.bits)))


def check_refcnt_by_flags_shift(v: int, bits: int) -> int:
    return int(slot_check_refcnt_by_flags_shift(int_word(bits), v))


def check_refcnt_halved(v: int, bits: int) -> int:
    """pm_slot_check_refcnt shifting one bit too far (PM_REFCNT_SHIFT + 1): half the
    count.  Within 0..2047, so the old range-only postcondition let it through."""
    return int(int_word(bits).lshr(v, refcnt_shift(bits) + 1))


def slot_clear_removal_by_shift(w: Any, v: Any) -> Any:
    """pm_slot_clear_removal masking with ~PM_FLAGS_SHIFT (the shift count, 52)
    instead of ~PM_REMOVAL: clears ppn bits and leaves the flag set."""
    return v & w.const(~flags_shift(w.bits))


def clear_removal_by_shift(v: int, bits: int) -> int:
    return int(slot_clear_removal_by_shift(int_word(bits), v))


def slot_set_page_unmasked(w: Any, v: Any, ppn: Any) -> Any:
    """pm_slot_set_page without ``& ~((1UL << PM_FLAGS_SHIFT) - 1)``: the old
    page's ppn bits survive and are OR-ed into the new one."""
    return ppn | v


def set_page_unmasked(v: int, ppn: int, bits: int) -> int:
    return int(slot_set_page_unmasked(int_word(bits), v, ppn))


def slot_dec_refcnt_by_refcnt_shift(w: Any, v: Any) -> Any:
    """pm_put_page's atomic_add with -PM_REFCNT_SHIFT (the shift count, 53)
    instead of -(1UL << PM_REFCNT_SHIFT): scribbles on the ppn."""
    return w.wrap(v - w.const(refcnt_shift(w.bits)))


def dec_refcnt_by_refcnt_shift(v: int, bits: int) -> int:
    return int(slot_dec_refcnt_by_refcnt_shift(int_word(bits), v))


# -- radix tree and VMR index helpers ---------------------------------------------


def radix_insert_overwrites(t: Radix, key: int, item: int) -> tuple[int, Radix]:
    """radix_insert that stores over an occupied slot instead of failing with
    EEXIST: pm_insert_page would then replace a page still in the map."""
    slots = list(t.slots)
    slots[key] = item
    return 0, Radix(1, tuple(slots))


def radix_insert_fresh_leaf(t: Radix, key: int, item: int) -> tuple[int, Radix]:
    """radix_insert that always hangs a fresh, zeroed leaf (the depth test
    inverted): the item lands, every neighbouring slot is cleared."""
    if t.slots[key] != 0:
        return radix.EEXIST, Radix(1, t.slots)
    slots = [0] * len(t.slots)
    slots[key] = item
    return 0, Radix(1, tuple(slots))


def make_pte_drops_flags(ppn: int, bits: int) -> int:
    """PTE(ppn, flags) masking the flags with 0x3f (the x86 permission and
    accessed bits): PTE_D (0x40) and everything above it are lost."""
    return (ppn << PGSHIFT) | (bits & 0x3F)


def vmr_has_page_idx_inclusive_end(vmr: VMR, pg_idx: int) -> bool:
    """vmr_has_page_idx with ``<=`` at the end: claims the page one past the VMR."""
    nr_pgs = (vmr.vm_end - vmr.vm_base) >> PGSHIFT
    start_pg = vmr.vm_foff >> PGSHIFT
    return start_pg <= pg_idx <= start_pg + nr_pgs


def vmr_get_end_idx_without_base(vmr: VMR) -> int:
    """vmr_get_end_idx using vm_end as if it were the length (forgets vm_base)."""
    return (vmr.vm_end + vmr.vm_foff) >> PGSHIFT


# -- the contracted mutants CrossHair analyses ------------------------------------

mut_pm_slot_inc_refcnt_64 = with_contracts_of(
    slot.pm_slot_inc_refcnt, inc_refcnt_by_flags_shift, 64)
mut_pm_slot_inc_refcnt_32 = with_contracts_of(
    slot.pm_slot_inc_refcnt, inc_refcnt_by_flags_shift, 32)
mut_pm_slot_check_refcnt_64 = with_contracts_of(
    slot.pm_slot_check_refcnt, check_refcnt_by_flags_shift, 64)
mut_pm_slot_clear_removal_64 = with_contracts_of(
    slot.pm_slot_clear_removal, clear_removal_by_shift, 64)
mut_pm_slot_set_page_32 = with_contracts_of(slot.pm_slot_set_page, set_page_unmasked, 32)
mut_pm_slot_dec_refcnt_64 = with_contracts_of(
    slot.pm_slot_dec_refcnt, dec_refcnt_by_refcnt_shift, 64)
mut_pm_slot_check_refcnt_halved_64 = with_contracts_of(
    slot.pm_slot_check_refcnt, check_refcnt_halved, 64)
mut_pm_slot_check_refcnt_halved_32 = with_contracts_of(
    slot.pm_slot_check_refcnt, check_refcnt_halved, 32)
mut_radix_insert = with_contracts_of(
    radix.radix_insert, radix_insert_overwrites)
mut_radix_insert_fresh_leaf = with_contracts_of(radix.radix_insert, radix_insert_fresh_leaf)
mut_make_pte = with_contracts_of(pageflags.make_pte, make_pte_drops_flags)
mut_vmr_has_page_idx = with_contracts_of(vmr.vmr_has_page_idx, vmr_has_page_idx_inclusive_end)
mut_vmr_get_end_idx = with_contracts_of(vmr.vmr_get_end_idx, vmr_get_end_idx_without_base)

# (attribute in this module, the mutated operation's own name, word size, the slip)
MUTANTS: tuple[tuple[str, str, int | None, str], ...] = (
    ("mut_pm_slot_inc_refcnt_64", "inc_refcnt_by_flags_shift", 64,
     "adds 1 << 52 (PM_FLAGS_SHIFT) instead of 1 << 53"),
    ("mut_pm_slot_inc_refcnt_32", "inc_refcnt_by_flags_shift", 32,
     "adds 1 << 20 (PM_FLAGS_SHIFT) instead of 1 << 21"),
    ("mut_pm_slot_check_refcnt_64", "check_refcnt_by_flags_shift", 64,
     "shifts by PM_FLAGS_SHIFT: the removal flag counts as a reference"),
    ("mut_pm_slot_clear_removal_64", "clear_removal_by_shift", 64,
     "masks with ~PM_FLAGS_SHIFT instead of ~PM_REMOVAL"),
    ("mut_pm_slot_set_page_32", "set_page_unmasked", 32,
     "does not mask the old ppn out before OR-ing the new one in"),
    ("mut_pm_slot_dec_refcnt_64", "dec_refcnt_by_refcnt_shift", 64,
     "subtracts PM_REFCNT_SHIFT instead of 1 << PM_REFCNT_SHIFT"),
    ("mut_pm_slot_check_refcnt_halved_64", "check_refcnt_halved", 64,
     "shifts by PM_REFCNT_SHIFT + 1: half the count"),
    ("mut_pm_slot_check_refcnt_halved_32", "check_refcnt_halved", 32,
     "shifts by PM_REFCNT_SHIFT + 1: half the count"),
    ("mut_radix_insert", "radix_insert_overwrites", None,
     "overwrites an occupied slot instead of failing with EEXIST"),
    ("mut_radix_insert_fresh_leaf", "radix_insert_fresh_leaf", None,
     "hangs a fresh zeroed leaf: the neighbouring slots are cleared"),
    ("mut_make_pte", "make_pte_drops_flags", None,
     "masks the flags with 0x3f: PTE_D is dropped"),
    ("mut_vmr_has_page_idx", "vmr_has_page_idx_inclusive_end", None,
     "<= at the end: one page past the VMR counts as mapped"),
    ("mut_vmr_get_end_idx", "vmr_get_end_idx_without_base", None,
     "forgets to subtract vm_base"),
)

def mutant_targets() -> list[Target]:
    """One Target per mutant; each MUST yield a counterexample."""
    return [
        Target(f"crosshair/{MODULE}.{op}", f"{MODULE}.{attr}", "counterexample", bits,
               f"mutant: {slip}")
        for attr, op, bits, slip in MUTANTS
    ]

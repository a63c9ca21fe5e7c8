"""The pure, contracted functions the model's steps call, as one object.

With contracts on (the default, and always in tests) the steps call the
icontract-decorated functions; ``pagemap check --contracts off`` gives them
the undecorated originals instead (icontract keeps them in ``__wrapped__``),
which is the same code without the condition checks.  The choice is made per
run, not by mutating any module."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pagemap import pageflags, radix, slot, vmr

CONTRACTED = (
    (slot, "pm_slot_check_removal"),
    (slot, "pm_slot_set_removal"),
    (slot, "pm_slot_clear_removal"),
    (slot, "pm_slot_check_refcnt"),
    (slot, "pm_slot_inc_refcnt"),
    (slot, "pm_slot_dec_refcnt"),
    (slot, "pm_slot_get_page"),
    (slot, "pm_slot_set_page"),
    (slot, "pm_slot_set_page_null"),
    (radix, "radix_has_leaf"),
    (radix, "radix_lookup_slot"),
    (radix, "radix_insert"),
    (radix, "radix_delete"),
    (vmr, "vmr_has_page_idx"),
    (vmr, "vmr_get_end_idx"),
    (vmr, "vmr_idx_to_va"),
    (vmr, "vmr_for_each_range"),
    (pageflags, "make_pte"),
    (pageflags, "pg_set"),
    (pageflags, "pg_clear"),
)


def _raw(f: Any) -> Any:
    while hasattr(f, "__wrapped__"):
        f = f.__wrapped__
    return f


def make_codec(contracts: bool) -> SimpleNamespace:
    ns = SimpleNamespace(contracts=contracts)
    for mod, name in CONTRACTED:
        f = getattr(mod, name)
        setattr(ns, name, f if contracts else _raw(f))
    return ns

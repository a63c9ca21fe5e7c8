"""The pure, contracted functions the model's steps call, as one object.

With contracts on (the default, and always in tests) the steps call the
icontract-decorated functions; ``pagemap check --contracts off`` gives them
the undecorated originals instead (icontract keeps them in ``__wrapped__``),
which is the same code without the condition checks.  The choice is made per
run, not by mutating any module."""

from __future__ import annotations

from types import FunctionType, SimpleNamespace
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


def _rebound(f: Any, raw: dict[str, Any]) -> Any:
    """The undecorated ``f`` with the contracted functions it calls by name
    (radix_lookup_slot calls radix_has_leaf, vmr_for_each_range calls
    vmr_idx_to_va) replaced by their undecorated originals: otherwise their
    checks would still run, about a tenth of the search's time with contracts off.
    The module is not touched: the copy gets globals of its own."""
    g = f.__globals__
    if not any(name in g and g[name] is not r for name, r in raw.items()):
        return f
    own = {**g, **{name: r for name, r in raw.items() if name in g}}
    return FunctionType(f.__code__, own, f.__name__, f.__defaults__, f.__closure__)


def make_codec(contracts: bool) -> SimpleNamespace:
    ns = SimpleNamespace(contracts=contracts)
    if contracts:
        for mod, name in CONTRACTED:
            setattr(ns, name, getattr(mod, name))
        return ns
    raw = {name: _raw(getattr(mod, name)) for mod, name in CONTRACTED}
    for name, f in raw.items():
        setattr(ns, name, _rebound(f, raw))
    return ns

"""Contracts on the paths (pagemap.contracts) and the postcondition removal-effective
(pagemap.effective) catch mutated steps of the real model: each test replaces one step
for one run and asserts that the checker now reports the contract or invariant that
guards it, while the unmutated run passes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pagemap import mprotect, munmap, removal
from pagemap.checker.explore import Explorer
from pagemap.checker.scenario import load
from pagemap.machine import Machine, ThreadView

SCEN = Path(__file__).resolve().parents[1] / "scenarios"


def mark_nothing(m: Machine, t: ThreadView) -> object:
    """pm_remove_contig.mark_read, mutated: the mark pass marks no page."""
    removal._mark_done(t)
    return None


def p2_clears_nothing(m: Machine, t: ThreadView) -> object:
    """pm_remove_contig.p2_read, mutated: __pm_mark_not_present never clears PTE_P."""
    removal._next_pte(t, "pm_remove_contig.p2_read", "pm_remove_contig.p2_unlock")
    return None


def p3_zeroes_nothing(m: Machine, t: ThreadView) -> object:
    """pm_remove_contig.p3_read, mutated: pass 3 leaves every PTE as it is."""
    removal._next_pte(t, "pm_remove_contig.p3_read", "pm_remove_contig.p3_unlock")
    return None


def final_unmarks_nothing(m: Machine, t: ThreadView) -> object:
    """pm_remove_contig.final_unmark, mutated: a rescued page keeps PG_REMOVAL."""
    removal._final_next(t)
    return None


def mprotect_writes_nothing(m: Machine, t: ThreadView) -> object:
    """mprotect.pte_read, mutated: the permission bits are never rewritten."""
    mprotect._next_pte(m, t)
    return None


def free_pgs_skips(m: Machine, t: ThreadView) -> object:
    """__vmr_free_pgs.read, mutated: the walk ends at once."""
    t.ret("__vmr_free_pgs")
    return None


CASES = [
    ("write-vs-remove", "pm_remove_contig.mark_read", mark_nothing, "removal-effective", None),
    ("two-removers", "pm_remove_contig.mark_read", mark_nothing, "removal-effective", None),
    ("write-vs-remove", "pm_remove_contig.p2_read", p2_clears_nothing, "contract", "after pass 2"),
    ("read-vs-remove", "pm_remove_contig.p3_read", p3_zeroes_nothing, "contract", "after pass 3"),
    ("file-read-vs-remove", "pm_remove_contig.final_unmark", final_unmarks_nothing, "contract",
     "every mark is undone"),
    ("mprotect-vs-remove", "mprotect.pte_read", mprotect_writes_nothing, "contract",
     "permission bits"),
    ("munmap-private-sync", "__vmr_free_pgs.read", free_pgs_skips, "contract", None),
]


@pytest.mark.parametrize("name, step, fn, invariant, words", CASES,
                         ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_mutated_step_is_caught(name: str, step: str, fn, invariant: str,  # type: ignore[no-untyped-def]
                                words: str | None) -> None:
    cfg = load(SCEN / f"{name}.toml", "fixed")
    assert Explorer(cfg).explore(progress=False).verdict == "pass"
    out = Explorer(cfg, replace={step: fn}).explore(progress=False)
    assert (out.verdict, out.invariant) == ("violation", invariant), out.message
    if words:
        assert words in (out.message or "")


def test_removal_effective_is_about_the_winner_of_the_swap() -> None:
    """A remover that finds another one running returns 0 at once (documented in
    pagemap.c: "others will return 0"): two removers of the same range pass, although
    the loser removed nothing."""
    cfg = load(SCEN / "two-removers.toml", "fixed")
    assert Explorer(cfg).explore(progress=False).verdict == "pass"


def test_contracts_off_runs_the_same_steps_without_checks() -> None:
    cfg = load(SCEN / "write-vs-remove.toml", "fixed")
    on = Explorer(cfg, contracts=True).explore(progress=False)
    off = Explorer(cfg, contracts=False, replace={
        "pm_remove_contig.p2_read": p2_clears_nothing}).explore(progress=False)
    assert on.verdict == "pass"
    assert off.verdict == "violation" and off.invariant != "contract"  # caught later, by an invariant


def test_munmap_contract_names_the_range() -> None:
    """munmap's postcondition is about its own range: a partial munmap leaves the rest."""
    cfg = load(SCEN / "munmap-partial-vs-fault.toml", "fixed")
    assert Explorer(cfg).explore(progress=False).verdict == "pass"
    assert munmap.mu_unlock_vmr.__wrapped__ is not None  # contracted


def test_codec_switches_the_contracts() -> None:
    """make_codec(True) hands the steps the contracted codec, make_codec(False) the plain
    functions icontract wraps (a mutant swapping the two ran unnoticed: every check runs
    with contracts on)."""
    import icontract
    from pagemap.codec import CONTRACTED, make_codec

    on, off = make_codec(True), make_codec(False)
    assert on.contracts and not off.contracts
    for _, name in CONTRACTED:
        assert hasattr(getattr(on, name), "__wrapped__"), name
        assert not hasattr(getattr(off, name), "__wrapped__"), name
    with pytest.raises(icontract.ViolationError):
        on.pm_slot_inc_refcnt(-1, 64)  # a slot word is never negative
    assert off.pm_slot_inc_refcnt(-1, 64) == -1 + (1 << 53)


def test_codec_without_contracts_calls_no_contracted_function() -> None:
    """With contracts off, a plain codec function that calls another codec function by
    name (radix_lookup_slot -> radix_has_leaf, vmr_for_each_range -> vmr_idx_to_va)
    calls its plain original too.  (cosmic-ray mutants of _rebound's test for that
    survived every check: they only put the contract checks back inside the plain
    functions, which still return the same values.)"""
    from pagemap.codec import CONTRACTED, make_codec

    off = make_codec(False)
    names = {name for _, name in CONTRACTED}
    callers = 0
    for _, name in CONTRACTED:
        f = getattr(off, name)
        calls = names & set(f.__code__.co_names)
        for callee in calls:
            assert not hasattr(f.__globals__[callee], "__wrapped__"), (name, callee)
        callers += bool(calls)
    assert callers >= 2


def _posts_hold(fn: object, args: dict[str, object], result: object) -> bool:
    """Whether every icontract postcondition of ``fn`` accepts ``result`` for ``args``."""
    return all(c.condition(**{a: result if a == "result" else args[a] for a in c.condition_args})
               for c in fn.__postconditions__)  # type: ignore[attr-defined]


def _wrong_trees(t: object) -> list[object]:
    """Trees one change away from ``t``: the other depth, or one slot rewritten."""
    from pagemap.radix import Radix

    assert isinstance(t, Radix)
    out: list[object] = [Radix(1 - t.depth, t.slots)]
    for j, w in enumerate(t.slots):
        for other in {0, 7, w + 1} - {w}:
            out.append(Radix(t.depth, t.slots[:j] + (other,) + t.slots[j + 1:]))
    return out


def test_radix_postconditions_pin_the_result() -> None:
    """Each radix function's postconditions accept its result and no result one change
    away (another error code, depth or slot): cosmic-ray mutants weakening or removing
    them survived every scenario, which only runs correct code through them."""
    import icontract
    from pagemap import radix
    from pagemap.radix import EEXIST, ENOMEM, Radix

    trees = [Radix(0, (0, 0, 0, 0)), Radix(1, (0, 5, 0, 9)), Radix(1, (3, 0, 0, 0))]
    checked = 0
    for t in trees:
        for key in range(len(t.slots)):
            cases: list[tuple[object, dict[str, object], list[object]]] = []
            for grow_ok in (True, False):
                args: dict[str, object] = {"t": t, "key": key, "item": 7, "grow_ok": grow_ok}
                err, t2 = radix.radix_insert(t, key, 7, grow_ok)
                wrong = [(e, t2) for e in {0, EEXIST, ENOMEM} - {err}]
                cases.append((radix.radix_insert, args,
                              wrong + [(err, w) for w in _wrong_trees(t2)]))
            old, t2 = radix.radix_delete(t, key)
            cases.append((radix.radix_delete, {"t": t, "key": key},
                          [(old + 1, t2)] + [(old, w) for w in _wrong_trees(t2)]))
            found = radix.radix_lookup_slot(t, key)
            cases.append((radix.radix_lookup_slot, {"t": t, "key": key},
                          [w for w in (None, key, key + 1) if w != found]))
            for fn, fargs, wrongs in cases:
                right = fn(**fargs)  # type: ignore[operator]
                assert _posts_hold(fn, fargs, right), (fn, fargs)
                for w in wrongs:
                    assert not _posts_hold(fn, fargs, w), (fn, fargs, w)
                checked += 1
    assert checked >= 40
    for depth in (0, 1):
        assert not _posts_hold(radix.radix_has_leaf, {"depth": depth, "key": 3},
                               not radix.radix_has_leaf(depth, 3))
    # the preconditions' edges: 64 file pages at most, a non-zero word inserted
    for key in (64, 65, -1):  # not `key != 64`: every key outside 0..63
        with pytest.raises(icontract.ViolationError, match="at most 64"):
            radix.radix_has_leaf(1, key)
    assert radix.radix_has_leaf(1, 63)
    with pytest.raises(icontract.ViolationError, match="non-zero word"):
        radix.radix_insert(trees[1], 0, 0)
    # every precondition fires: a tree of another depth, a negative word, a key outside
    for bad in (Radix(2, (0, 0)), Radix(1, (-1, 0))):
        for call in (radix.radix_lookup_slot, radix.radix_delete):
            with pytest.raises(icontract.ViolationError):
                call(bad, 0)
        with pytest.raises(icontract.ViolationError):
            radix.radix_insert(bad, 0, 7)
    with pytest.raises(icontract.ViolationError):
        radix.radix_has_leaf(2, 0)
    for key in (-1, 4):
        for call in (radix.radix_lookup_slot, radix.radix_delete):
            with pytest.raises(icontract.ViolationError):
                call(trees[1], key)
        with pytest.raises(icontract.ViolationError):
            radix.radix_insert(trees[1], key, 7)

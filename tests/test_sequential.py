"""The sequential page map (pagemap.sequential) against a plain dictionary.

A Hypothesis state machine drives the contracted API -- which runs the
concurrent model's own steps with one kernel thread -- next to a reference
that is only a dict from file index to (page, slot refcount, up to date), and
compares the two after every call, on both word sizes.  Further tests show
that the contracts are on and fire outside their preconditions, that they
catch a mutated step, that the driver refuses to wait for a lock nobody will
release, and that equal page maps hash equal (spec/sequential.md).
"""

from __future__ import annotations

from collections.abc import Callable

import icontract
import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from pagemap import sequential as S
from pagemap.machine import Machine, ThreadView
from pagemap.pageflags import PG_LOCKED, PG_UPTODATE
from pagemap.pm import find_cas
from pagemap.program import build_layout, initial_value
from pagemap.radix import EEXIST
from pagemap.slot import refcnt_max, refcnt_shift
from pagemap.vmr import MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE, VMR

FILE_PAGES = 4
POOL_PAGES = 6  # every file page cached, plus a fresh page that meets EEXIST, plus one
VMRS = (
    VMR("va", 0, 0x1000, 0x3000, 0x0000, PROT_READ | PROT_WRITE, MAP_SHARED),
    VMR("vb", 0, 0x8000, 0xB000, 0x1000, PROT_READ, MAP_PRIVATE),
    VMR("vc", 1, 0x1000, 0x2000, 0x3000, PROT_READ | PROT_WRITE, MAP_SHARED),
)
INDEX = st.integers(0, FILE_PAGES - 1)
API = (
    S.pm_init, S.kpage_alloc, S.page_decref, S.pm_find_page, S.pm_insert_page, S.pm_put_page,
    S.pm_load_page, S.lock_page, S.unlock_page, S.pm_add_vmr, S.pm_remove_vmr,
)


class PageMapVersusDict(RuleBasedStateMachine):
    """The page map and the reference ``ref``: index -> (page, refcount, uptodate).

    ``locked`` holds the pages whose page lock the test holds (a page fresh
    from kpage_alloc is born with its lock taken); ``listed`` the names of the
    VMRs on pm_vmrs."""

    BITS = 64

    def __init__(self) -> None:
        super().__init__()
        self.pm = S.pm_init(FILE_PAGES, POOL_PAGES, self.BITS, VMRS)
        self.ref: dict[int, tuple[int, int, bool]] = {}
        self.locked: set[int] = set()
        self.listed: set[str] = set()

    def _pages(self) -> set[int]:
        return {page for page, _, _ in self.ref.values()}

    # -- rules ------------------------------------------------------------------------
    @rule(index=INDEX)
    def load(self, index: int) -> None:
        entry = self.ref.get(index)
        if entry is not None and not entry[2] and entry[0] in self.locked:
            # Covered by test_load_of_a_locked_page_*: it would sleep forever.
            event("load: skipped, page locked and not up to date")
            return
        event("load: " + ("miss" if entry is None else "hit" if entry[2] else "fill"))
        self.pm, page = S.pm_load_page(self.pm, index)
        if entry is None:
            assert page not in self._pages()
            self.ref[index] = (page, 1, True)
        else:
            assert page == entry[0]
            self.ref[index] = (page, entry[1] + 1, True)

    @rule(index=INDEX)
    def find(self, index: int) -> None:
        self.pm, page = S.pm_find_page(self.pm, index)
        entry = self.ref.get(index)
        event("find: " + ("miss" if entry is None else "hit"))
        if entry is None:
            assert page is None
        else:
            assert page == entry[0]
            self.ref[index] = (entry[0], entry[1] + 1, entry[2])

    @precondition(lambda self: any(refs for _, refs, _ in self.ref.values()))
    @rule(data=st.data())
    def put(self, data: st.DataObject) -> None:
        held = sorted(i for i, (_, refs, _) in self.ref.items() if refs)
        index = data.draw(st.sampled_from(held), label="put index")
        page, refs, uptodate = self.ref[index]
        self.pm = S.pm_put_page(self.pm, page)
        self.ref[index] = (page, refs - 1, uptodate)

    @rule(index=INDEX, unlock=st.booleans())
    def insert_fresh(self, index: int, unlock: bool) -> None:
        """What pm_load_page's insert path does, without reading the page in;
        then perhaps unlock it at once, so that a later load fills it."""
        free = set(self.pm.free_pages())
        self.pm, page = S.kpage_alloc(self.pm)
        assert page in free and page not in self._pages()
        self.pm, err = S.pm_insert_page(self.pm, index, page)
        event(f"insert: {err}")
        if index in self.ref:
            assert err == EEXIST
            self.pm = S.page_decref(self.pm, page)
            assert self.pm.free_pages() == tuple(sorted(free))
        else:
            assert err == 0
            self.ref[index] = (page, 1, False)
            self.locked.add(page)
            if unlock:
                self.pm = S.unlock_page(self.pm, page)
                self.locked.remove(page)

    @precondition(lambda self: bool(self.locked))
    @rule(data=st.data())
    def unlock(self, data: st.DataObject) -> None:
        page = data.draw(st.sampled_from(sorted(self.locked)), label="unlock page")
        self.pm = S.unlock_page(self.pm, page)
        self.locked.remove(page)

    @precondition(lambda self: bool(self._pages() - self.locked))
    @rule(data=st.data())
    def lock(self, data: st.DataObject) -> None:
        page = data.draw(st.sampled_from(sorted(self._pages() - self.locked)), label="lock page")
        self.pm = S.lock_page(self.pm, page)
        self.locked.add(page)

    @precondition(lambda self: len(self.listed) < len(VMRS))
    @rule(data=st.data())
    def add_vmr(self, data: st.DataObject) -> None:
        vmr = data.draw(st.sampled_from([v for v in VMRS if v.name not in self.listed]))
        self.pm = S.pm_add_vmr(self.pm, vmr)
        self.listed.add(vmr.name)

    @precondition(lambda self: bool(self.listed))
    @rule(data=st.data())
    def remove_vmr(self, data: st.DataObject) -> None:
        vmr = data.draw(st.sampled_from([v for v in VMRS if v.name in self.listed]))
        self.pm = S.pm_remove_vmr(self.pm, vmr)
        self.listed.remove(vmr.name)

    # -- invariants -----------------------------------------------------------------------
    @invariant()
    def same_slots(self) -> None:
        pm = self.pm
        assert pm.pm_num_pages() == len(self.ref)
        for i in range(FILE_PAGES):
            entry = self.ref.get(i)
            if entry is None:
                assert pm.word(i) == 0 and pm.page_at(i) is None
                continue
            page, refs, uptodate = entry
            assert pm.page_at(i) == page
            assert pm.refcnt(i) == refs
            assert not pm.removal(i)
            assert bool(pm.flags(page) & PG_UPTODATE) == uptodate
            if uptodate:
                # The data a loaded page holds is the backing store's initial contents.
                assert pm.data(page) == pm.store(i) == initial_value(i)
            assert pm.kref(page) == 1

    @invariant()
    def same_pages(self) -> None:
        pages = self._pages()
        assert set(self.pm.free_pages()) == set(range(1, POOL_PAGES + 1)) - pages
        for page in pages:
            assert (self.pm.sem(page) == 0) == (page in self.locked)
            assert not self.pm.flags(page) & PG_LOCKED or page in self.locked

    @invariant()
    def same_vmrs(self) -> None:
        assert {v.name for v in self.pm.pm_vmrs()} == self.listed

    @invariant()
    def value_semantics(self) -> None:
        again = S.PageMap(self.pm.layout, self.pm.state)
        assert again == self.pm and hash(again) == hash(self.pm)


class PageMapVersusDict32(PageMapVersusDict):
    BITS = 32


SETTINGS = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSequential64 = PageMapVersusDict.TestCase
TestSequential64.settings = SETTINGS
TestSequential32 = PageMapVersusDict32.TestCase
TestSequential32.settings = SETTINGS


class ForgetfulReference(PageMapVersusDict):
    """Negative twin: a reference that forgets the slot reference pm_find_page
    hands out.  The comparison must catch it."""

    @rule(index=INDEX)
    def find(self, index: int) -> None:
        self.pm, _ = S.pm_find_page(self.pm, index)


def test_comparison_catches_a_wrong_reference() -> None:
    twin = settings(SETTINGS, max_examples=200, database=None, phases=[Phase.generate])
    with pytest.raises(AssertionError):
        run_state_machine_as_test(ForgetfulReference, settings=twin)


# -- contracts are on and fire ----------------------------------------------------------------


def fresh(bits: int = 64) -> S.PageMap:
    return S.pm_init(FILE_PAGES, POOL_PAGES, bits, VMRS)


def test_contracts_are_on() -> None:
    for f in API:
        assert getattr(f, "__preconditions__", None), f.__name__
        assert getattr(f, "__postconditions__", None), f.__name__
    assert S.PageMap.__invariants__  # type: ignore[attr-defined]


@pytest.mark.parametrize("bits", [64, 32])
def test_put_of_a_page_without_references_fires(bits: int) -> None:
    pm, page = S.pm_load_page(fresh(bits), 2)
    pm = S.pm_put_page(pm, page)
    assert pm.refcnt(2) == 0
    with pytest.raises(icontract.ViolationError, match="slot reference to drop"):
        S.pm_put_page(pm, page)


def test_preconditions_fire() -> None:
    pm, page = S.pm_load_page(fresh(), 0)
    with pytest.raises(icontract.ViolationError):
        S.pm_find_page(pm, FILE_PAGES)
    with pytest.raises(icontract.ViolationError, match="not in the map"):
        S.pm_insert_page(pm, 1, page)  # already in the map
    with pytest.raises(icontract.ViolationError, match="map's is dropped"):
        S.page_decref(pm, page)
    with pytest.raises(icontract.ViolationError, match="pm_put_page|slot reference"):
        S.pm_put_page(pm, 5)  # never allocated
    pm = S.pm_add_vmr(pm, VMRS[0])
    with pytest.raises(icontract.ViolationError, match="TAILQ_INSERT_TAIL"):
        S.pm_add_vmr(pm, VMRS[0])
    with pytest.raises(icontract.ViolationError, match="TAILQ_REMOVE"):
        S.pm_remove_vmr(pm, VMRS[1])
    with pytest.raises(icontract.ViolationError, match="declared"):
        S.pm_add_vmr(pm, VMR("vx", 0, 0x1000, 0x2000, 0, PROT_READ, MAP_SHARED))
    with pytest.raises(icontract.ViolationError, match="distinct names"):
        S.pm_init(FILE_PAGES, POOL_PAGES, 64, (VMRS[0], VMRS[0]))


@pytest.mark.parametrize("bits", [64, 32])
def test_refcount_overflow_fires(bits: int) -> None:
    pm, page = S.pm_load_page(fresh(bits), 0)
    m = Machine(pm.layout, pm.state)
    m.set_slot(0, (refcnt_max(bits) << refcnt_shift(bits)) | page)  # 2047 holders
    full = S.PageMap(pm.layout, m.freeze())
    assert full.refcnt(0) == refcnt_max(bits) == 2047
    for call in (S.pm_find_page, S.pm_load_page):
        with pytest.raises(icontract.ViolationError, match="overflow"):
            call(full, 0)
    assert S.pm_put_page(full, page).refcnt(0) == 2046


def test_load_runs_out_of_pages_fires() -> None:
    pm = S.pm_init(2, 1, 64)
    pm, _ = S.pm_load_page(pm, 0)
    with pytest.raises(icontract.ViolationError, match="ENOMEM"):
        S.pm_load_page(pm, 1)


def _locked_fresh_page() -> tuple[S.PageMap, int]:
    pm, page = S.kpage_alloc(fresh())
    pm, err = S.pm_insert_page(pm, 3, page)
    assert err == 0 and pm.sem(page) == 0 and not pm.flags(page) & PG_UPTODATE
    return pm, page


def test_load_of_a_locked_page_fires_instead_of_sleeping() -> None:
    pm, page = _locked_fresh_page()
    with pytest.raises(icontract.ViolationError, match="sleep forever"):
        S.pm_load_page(pm, 3)
    # Without the contract, the driver finds lock_page's sem_down asleep.
    with pytest.raises(S.SequentialBlocked, match="lock_page.sleeping"):
        S.pm_load_page.__wrapped__(pm, 3)  # type: ignore[attr-defined]
    # Once the inserter unlocks it, pm_load_page locks, reads and unlocks it.
    pm, got = S.pm_load_page(S.unlock_page(pm, page), 3)
    assert got == page and pm.data(page) == initial_value(3) and pm.sem(page) == 1


def test_driver_refuses_a_held_lock() -> None:
    pm = fresh()
    m = Machine(pm.layout, pm.state)
    m.set("pm_lock", 2)  # held by some other thread that will never run
    with pytest.raises(S.SequentialBlocked, match="pm_find_page.lock"):
        S.run_call(pm.layout, m.freeze(), "pm_find_page.lock", find_index=0)
    with pytest.raises(icontract.ViolationError):
        S.PageMap(pm.layout, m.freeze())  # not a value between calls


def test_load_runs_the_concurrent_steps() -> None:
    pm = fresh()
    _, page, ran = S.run_call(pm.layout, pm.state, "pm_load_page.find", load_index=1)
    assert page == 1
    assert ran[0] == "pm_load_page.find" and ran[-1] == "pm_load_page.done"
    for step in ("pm_find_page.read", "pm_insert_page.insert", "pm_load_page.readpage",
                 "unlock_page.sem_up"):
        assert step in ran
    # The same call through the API yields the same state.
    assert S.pm_load_page(pm, 1)[0].state == S.run_call(
        pm.layout, pm.state, "pm_load_page.find", load_index=1)[0]


# -- contracts catch a wrong step -------------------------------------------------------------


def _put_without_dec(m: Machine, t: ThreadView) -> object:
    t["holds"] = 0
    t.ret("pm_put_page")
    return None


def _insert_without_count(m: Machine, t: ThreadView) -> object:
    i, page = t["ins_index"], t["ins_page"]
    m.set_pg(page, "tslot", i + 1)
    m.set("pm_lock", 0)
    t.ret("pm_insert_page", 0)
    return None


def _find_twice(m: Machine, t: ThreadView) -> object:
    """The CAS, and then one increment too many."""
    i = t["find_index"]
    find_cas(m, t)
    if t["holds"] == i + 1:
        m.set_slot(i, m.c.pm_slot_inc_refcnt(m.slot(i), m.bits))
    return None


MUTANTS: dict[str, tuple[str, Callable[[Machine, ThreadView], object], str]] = {
    "put-no-dec": ("pm_put_page.add", _put_without_dec, "one slot reference fewer"),
    "insert-no-count": ("pm_insert_page.unlock", _insert_without_count, "well_formed"),
    "find-double-inc": ("pm_find_page.cas", _find_twice, "one more slot reference"),
}


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_contracts_catch_mutated_steps(name: str) -> None:
    step, fn, expect = MUTANTS[name]
    cfg = S.seq_config(FILE_PAGES, POOL_PAGES, 64, VMRS)
    pm = S.pm_init_layout(build_layout(cfg, replace={step: fn}))
    with pytest.raises(icontract.ViolationError, match=expect):
        pm, page = S.pm_load_page(pm, 0)
        pm, _ = S.pm_find_page(pm, 0)
        S.pm_put_page(pm, page)


# -- value semantics --------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [64, 32])
def test_equal_maps_hash_equal(bits: int) -> None:
    a, page = S.pm_load_page(fresh(bits), 1)
    a = S.pm_put_page(a, page)
    b, _ = S.pm_load_page(fresh(bits), 1)
    b, _ = S.pm_find_page(b, 1)
    b = S.pm_put_page(S.pm_put_page(b, page), page)
    b = S.pm_remove_vmr(S.pm_add_vmr(b, VMRS[2]), VMRS[2])
    assert a is not b and a == b and hash(a) == hash(b)
    assert len({a, b, fresh(bits)}) == 2
    # The same state on a separately built layout of the same configuration.
    c = S.PageMap(build_layout(a.cfg), a.state)
    assert c == a and hash(c) == hash(a)
    # Different word size or contents: different values.
    assert a != S.pm_load_page(fresh(bits), 1)[0]
    assert fresh(64) != fresh(32)

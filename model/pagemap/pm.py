"""Page-map operations of kern/src/pagemap.c (seed): pm_find_page,
pm_insert_page, pm_put_page, pm_load_page, pm_remove_vmr.

A slot reference is counted in the slot word's refcount; the ghost register
``holds`` (slot index + 1) records which slot a thread holds a reference
through, updated in the same step as the word, so that the invariant
``refcount-accurate`` can compare the two in every state.
"""

from __future__ import annotations

import icontract

from pagemap import contracts as C
from pagemap.alloc import may_fail, page_alloc, page_decref
from pagemap.effective import disturb
from pagemap.machine import BLOCKED, CODE, TSLOT_POISON, Machine, ThreadView, Violation
from pagemap.pageflags import PG_BUFFER, PG_LOCKED, PG_PAGEMAP, PG_UPTODATE
from pagemap.radix import EEXIST, ENOMEM, Radix
from pagemap.sched import resume, sem_down_check, sleep
from pagemap.sync import spin_acquire, spin_release


def pm_lock(m: Machine, t: ThreadView) -> bool:
    """spin_lock(&pm->pm_lock); False while another thread holds it."""
    return spin_acquire(m, t, m.L.off["pm_lock"])


def pm_unlock(m: Machine, t: ThreadView) -> None:
    spin_release(m, t, m.L.off["pm_lock"], "pm_lock")


def pm_tree(m: Machine) -> Radix:
    """pm->pm_tree as the radix functions of pagemap.radix see it."""
    s0 = m.L.slot0
    return Radix(m.get("radix_depth"), tuple(m.v[s0:s0 + m.cfg.file_pages]))


def lookup_slot(m: Machine, i: int) -> int | None:
    """radix_lookup_slot(&pm->pm_tree, i): the slot (named by its key) or NULL.  The
    tree's shape changes only under pm_lock, which every caller holds."""
    return m.c.radix_lookup_slot(pm_tree(m), i)


# -- pm_find_page ------------------------------------------------------------------

CODE.function("pm_find_page", ("find_index", "find_old", "find_page"))


@CODE.step("pm_find_page", "lock", "spin_lock(&pm->pm_lock)", lock="pm_lock")
@icontract.require(lambda t: C.no_ref(t), "pm_find_page gives the caller a reference: it holds none yet")
@icontract.require(lambda m, t: not C.holds(m, t, "pm_lock"), "pm_lock is not recursive")
def find_lock(m: Machine, t: ThreadView) -> object:
    if not pm_lock(m, t):
        return BLOCKED
    t.goto("pm_find_page.read")
    return None


@CODE.step(
    "pm_find_page", "read", "tree_slot = radix_lookup_slot(); old_slot_val = ACCESS_ONCE(*tree_slot)"
)
def find_read(m: Machine, t: ThreadView) -> object:
    i = t["find_index"]
    # The tree's shape changes only under pm_lock, which we hold: the lookup
    # is local; the read of the word races pm_put_page.
    if lookup_slot(m, i) is None:
        t.goto("pm_find_page.unlock")
        return None
    old = m.slot(i)
    page = m.c.pm_slot_get_page(old, m.bits)
    if page is None:
        t.goto("pm_find_page.unlock")
        return None
    t["find_old"] = old
    t["find_page"] = page
    t.goto("pm_find_page.cas")
    return None


@CODE.step(
    "pm_find_page",
    "cas",
    "atomic_cas_ptr(tree_slot, old, inc_refcnt(clear_removal(old))); retry on failure",
)
def find_cas(m: Machine, t: ThreadView) -> object:
    i, old = t["find_index"], t["find_old"]
    if m.slot(i) != old:
        t["find_old"] = 0
        t["find_page"] = 0
        t.goto("pm_find_page.read")
        return None
    new = m.c.pm_slot_inc_refcnt(m.c.pm_slot_clear_removal(old, m.bits), m.bits)
    m.set_slot(i, new)
    t["holds"] = i + 1
    disturb(m, i)
    page = t["find_page"]
    m.touch(page, "pm_find_page")
    if m.pg(page, "tslot") != i + 1:
        raise Violation("kernel-assert", "pm_find_page: page->pg_tree_slot != tree_slot")
    t.goto("pm_find_page.unlock")
    return None


@CODE.step("pm_find_page", "unlock", "spin_unlock(&pm->pm_lock); return page")
@icontract.ensure(lambda m, t, result: C.blocked(result) or not C.holds(m, t, "pm_lock"),
                  "pm_lock is released")
@icontract.ensure(lambda m, t, result: C.blocked(result) or t["rv"] == 0 and C.no_ref(t)
                  or C.holds_ref_on(m, t, t["holds"] - 1, t["rv"])
                  and not C.slot_marked(m, t["holds"] - 1),
                  "a page comes with a slot reference through its slot, removal flag cleared; "
                  "NULL with none")
def find_unlock(m: Machine, t: ThreadView) -> object:
    pm_unlock(m, t)
    t.ret("pm_find_page", t["find_page"])
    return None


# -- pm_insert_page ------------------------------------------------------------------

CODE.function("pm_insert_page", ("ins_index", "ins_page"))


@CODE.step("pm_insert_page", "lock", "spin_lock(&pm->pm_lock)", lock="pm_lock")
@icontract.require(lambda m, t: m.in_pool(t["ins_page"]) and m.pg(t["ins_page"], "kref") == 1
                   and not C.in_map(m, t["ins_page"]),
                   "a page the caller allocated: its one kref, in no slot")
@icontract.require(lambda t: C.no_ref(t))
def insert_lock(m: Machine, t: ThreadView) -> object:
    if not pm_lock(m, t):
        return BLOCKED
    t.goto("pm_insert_page.insert")
    return None


@CODE.step(
    "pm_insert_page",
    "insert",
    "pg_index = index; pg_tree_slot = poison; radix_insert(slot_val = set_page(inc_refcnt(0)))",
)
def insert_insert(m: Machine, t: ThreadView) -> object:
    i, page = t["ins_index"], t["ins_page"]
    # The page is still private to us: its field writes are local.
    m.set_pg(page, "index", i)
    m.set_pg(page, "tslot", TSLOT_POISON)
    slot_val = m.c.pm_slot_set_page(m.c.pm_slot_inc_refcnt(0, m.bits), page, m.bits)
    tree = pm_tree(m)
    # The one allocation radix_insert can fail on: the root, for the first page.
    grow_ok = tree.depth > 0 or not may_fail(m, "radix_insert: root node allocation")
    err, tree = m.c.radix_insert(tree, i, slot_val, grow_ok)
    if err:
        if err == EEXIST:
            m.set("radix_depth", tree.depth)  # the tree grew before the slot was tested
        pm_unlock(m, t)
        t.ret("pm_insert_page", err)
        return None
    m.set("radix_depth", tree.depth)
    m.set_slot(i, tree.slots[i])
    t["holds"] = i + 1
    disturb(m, i)
    t.goto("pm_insert_page.unlock")
    return None


@CODE.step(
    "pm_insert_page",
    "unlock",
    "page->pg_tree_slot = tree_slot; pm_num_pages++; spin_unlock(&pm->pm_lock)",
)
@icontract.ensure(lambda m, t, result: C.blocked(result) or not C.holds(m, t, "pm_lock"))
@icontract.snapshot(lambda t: t["ins_page"], name="page")
@icontract.ensure(lambda OLD, m, t, result: C.blocked(result)
                  or C.holds_ref_on(m, t, t["holds"] - 1, OLD.page),
                  "on success the caller's page reference became a slot reference")
def insert_unlock(m: Machine, t: ThreadView) -> object:
    # pg_tree_slot is read by pm_find_page (under pm_lock, which we hold) and
    # by pm_put_page of a holder (we hold the only reference): local writes.
    i, page = t["ins_index"], t["ins_page"]
    m.set_pg(page, "tslot", i + 1)
    m.set("pm_num_pages", m.get("pm_num_pages") + 1)
    pm_unlock(m, t)
    t.ret("pm_insert_page", 0)
    return None


# -- pm_put_page ---------------------------------------------------------------------

CODE.function("pm_put_page", ("put_page",))


def put_slot_ref(m: Machine, t: ThreadView, page: int) -> None:
    """pm_put_page's body: assert(pg_tree_slot); atomic_add(slot, -(1 << shift))."""
    m.touch(page, "pm_put_page")
    ts = m.pg(page, "tslot")
    if ts == 0:
        raise Violation("kernel-assert", f"pm_put_page: page {page} has no pg_tree_slot")
    if ts == TSLOT_POISON:
        raise Violation("kernel-assert", f"pm_put_page: page {page}'s pg_tree_slot is poison")
    i = ts - 1
    m.set_slot(i, m.c.pm_slot_dec_refcnt(m.slot(i), m.bits))
    if t["holds"] != i + 1:
        raise Violation("refcount-accurate", f"pm_put_page on slot {i} without holding a ref")
    t["holds"] = 0


@CODE.step("pm_put_page", "add", "atomic_add(page->pg_tree_slot, -(1UL << PM_REFCNT_SHIFT))")
@icontract.require(lambda m, t: t["holds"] != 0 and m.pg(t["put_page"], "tslot") == t["holds"],
                   "the caller holds the slot reference it drops, through pg_tree_slot")
@icontract.ensure(lambda t, result: C.blocked(result) or C.no_ref(t))
def put_add(m: Machine, t: ThreadView) -> object:
    put_slot_ref(m, t, t["put_page"])
    t.ret("pm_put_page")
    return None


# -- pm_load_page ---------------------------------------------------------------------

CODE.function("pm_load_page", ("load_index", "load_page"))


@CODE.step("pm_load_page", "find", "page = pm_find_page(pm, index)", local=True)
@icontract.require(lambda t: C.no_ref(t))
@icontract.require(lambda m, t: C.no_spinlock(m, t) or C.holds(m, t, "vmr_lock"),
    "pm_load_page takes pm_lock and may sleep: no spinlock but (seed) the fault path's vmr_lock")
def load_find(m: Machine, t: ThreadView) -> object:
    t.call("pm_find_page.lock", "pm_load_page.found", find_index=t["load_index"])
    return None


@CODE.step("pm_load_page", "found", "while (!page): try to insert a new page", local=True)
def load_found(m: Machine, t: ThreadView) -> object:
    page = t["rv"]
    t["rv"] = 0
    if page:
        t["load_page"] = page
        t.goto("pm_load_page.check_uptodate")
    else:
        t.goto("pm_load_page.alloc")
    return None


@CODE.step(
    "pm_load_page",
    "alloc",
    "kpage_alloc(&page); pg_flags = LOCKED|BUFFER|PAGEMAP; pg_sem.nr_signals = 0",
)
def load_alloc(m: Machine, t: ThreadView) -> object:
    page = page_alloc(m, zero=False, what="kpage_alloc")
    if page is None:
        t.ret("pm_load_page", -ENOMEM)
        return None
    m.set_pg(page, "flags", PG_LOCKED | PG_BUFFER | PG_PAGEMAP)
    m.set_pg(page, "sem", 0)
    t["load_page"] = page
    t.call("pm_insert_page.lock", "pm_load_page.inserted", ins_index=t["load_index"], ins_page=page)
    return None


@CODE.step("pm_load_page", "inserted", "switch (pm_insert_page(...)): 0 or -EEXIST", local=True)
def load_inserted(m: Machine, t: ThreadView) -> object:
    err = t["rv"]
    t["rv"] = 0
    if err == 0:
        t.goto("pm_load_page.readpage")
    elif err == EEXIST:
        t.goto("pm_load_page.eexist")
    else:
        t.goto("pm_load_page.insert_fail")
    return None


@CODE.step("pm_load_page", "insert_fail", "default: page_decref(page); return error")
@icontract.ensure(lambda m, t, result: C.blocked(result) or C.no_ref(t) and t["rv"] < 0,
                  "an error comes with no reference")
def load_insert_fail(m: Machine, t: ThreadView) -> object:
    page_decref(m, t["load_page"], "pm_load_page")
    t.ret("pm_load_page", -ENOMEM)
    return None


@CODE.step("pm_load_page", "eexist", "-EEXIST: page_decref(page); page = pm_find_page()")
def load_eexist(m: Machine, t: ThreadView) -> object:
    page_decref(m, t["load_page"], "pm_load_page")
    t["load_page"] = 0
    t.call("pm_find_page.lock", "pm_load_page.found", find_index=t["load_index"])
    return None


@CODE.step(
    "pm_load_page",
    "check_uptodate",
    "assert(refcnt(*pg_tree_slot)); if (pg_flags & PG_UPTODATE) return page",
)
def load_check_uptodate(m: Machine, t: ThreadView) -> object:
    page = t["load_page"]
    m.touch(page, "pm_load_page")
    # The assert reads the slot we hold a reference through: it cannot drop to
    # 0 under us, so reading it in the same step as the flags loses nothing.
    ts = m.pg(page, "tslot")
    if ts <= 0 or m.c.pm_slot_check_refcnt(m.slot(ts - 1), m.bits) == 0:
        raise Violation("kernel-assert", "pm_load_page: assert(pm_slot_check_refcnt(...))")
    if m.pg(page, "flags") & PG_UPTODATE:
        t.ret("pm_load_page", page)
        return None
    t.call("lock_page.sem_down", "pm_load_page.recheck", lp_page=page)
    return None


@CODE.step("pm_load_page", "recheck", "after lock_page: if (pg_flags & PG_UPTODATE) unlock, return")
def load_recheck(m: Machine, t: ThreadView) -> object:
    page = t["load_page"]
    m.touch(page, "pm_load_page")
    if m.pg(page, "flags") & PG_UPTODATE:
        t.call("unlock_page.clear_locked", "pm_load_page.done", ul_page=page)
    else:
        t.goto("pm_load_page.readpage")
    return None


@CODE.step(
    "pm_load_page", "readpage", "pm->pm_op->readpage(pm, page): copy the store, set PG_UPTODATE"
)
def load_readpage(m: Machine, t: ThreadView) -> object:
    if m.cfg.readpage == "blocking":
        # ext2_readpage submits the block request and sleeps on it (sem_down).
        sem_down_check(m, t, "readpage (blocking on the block request)")
        m.touch(t["load_page"], "readpage")
        sleep(m, t)
        t.goto("pm_load_page.readpage_io")
        return None
    _fill(m, t)
    return None


@CODE.step("pm_load_page", "readpage_io",
           "the block request completes: its alarm's sem_up restarts readpage on this core")
def load_readpage_io(m: Machine, t: ThreadView) -> object:
    resume(m, t)
    _fill(m, t)
    return None


def _fill(m: Machine, t: ThreadView) -> None:
    """readpage's effect (the ideal file system of spec/model.md), then pm_load_page's
    assert(PG_UPTODATE) and unlock_page.  We hold the page lock, so nobody else
    fills or writes the frame; a reader that sees PG_UPTODATE sees data."""
    page, i = t["load_page"], t["load_index"]
    m.touch(page, "readpage")
    m.set_pg(page, "data", m.store(i))
    flags = m.c.pg_set(m.pg(page, "flags"), PG_UPTODATE)
    m.set_pg(page, "flags", flags)
    if not flags & PG_UPTODATE:  # assert(PG_UPTODATE) after readpage
        raise Violation("kernel-assert", "pm_load_page: page not up to date after readpage")
    t.call("unlock_page.clear_locked", "pm_load_page.done", ul_page=page)


@CODE.step("pm_load_page", "done", "*pp = page; return 0", local=True)
@icontract.ensure(lambda m, t, result: C.blocked(result) or
                  C.holds_ref_on(m, t, t["holds"] - 1, t["rv"])
                  and bool(m.pg(t["rv"], "flags") & PG_UPTODATE),
                  "the page is up to date and comes with a slot reference")
def load_done(m: Machine, t: ThreadView) -> object:
    t.ret("pm_load_page", t["load_page"])
    return None


# -- pm_remove_vmr (from destroy_vmr) ---------------------------------------------------
#
# VMR registers hold the record number + 1 (pagemap.machine.Layout).

CODE.function("pm_remove_vmr", ("rmv_vmr",))


@CODE.step("pm_remove_vmr", "lock", "spin_lock(&pm->pm_lock)", lock="pm_lock")
@icontract.require(lambda m, t: m.vf(t["rmv_vmr"] - 1, "on_pm") > 0, "the VMR is on pm_vmrs")
def remove_vmr_lock(m: Machine, t: ThreadView) -> object:
    if not pm_lock(m, t):
        return BLOCKED
    t.goto("pm_remove_vmr.unlink")
    return None


def pm_vmrs_remove(m: Machine, r: int) -> None:
    """TAILQ_REMOVE(&pm->pm_vmrs, vmr): the records behind it move up one place."""
    k = m.vf(r, "on_pm")
    assert k, "pm_remove_vmr of a VMR not on pm_vmrs"
    for q in range(m.L.nrec):
        pos = m.vf(q, "on_pm")
        if pos > k:
            m.set_vf(q, "on_pm", pos - 1)
    m.set_vf(r, "on_pm", 0)


def pm_vmrs_insert_tail(m: Machine, r: int) -> None:
    """TAILQ_INSERT_TAIL(&pm->pm_vmrs, vmr)."""
    assert not m.vf(r, "on_pm"), "pm_add_vmr of a VMR already on pm_vmrs"
    m.set_vf(r, "on_pm", 1 + max((m.vf(q, "on_pm") for q in range(m.L.nrec)), default=0))


@CODE.step("pm_remove_vmr", "unlink", "TAILQ_REMOVE(&pm->pm_vmrs, vmr); spin_unlock(&pm->pm_lock)")
@icontract.snapshot(lambda t: t["rmv_vmr"] - 1, name="vmr")
@icontract.ensure(lambda OLD, m, t, result: C.blocked(result)
                  or not m.vf(OLD.vmr, "on_pm") and not C.holds(m, t, "pm_lock"))
def remove_vmr_unlink(m: Machine, t: ThreadView) -> object:
    # The list is read only under pm_lock, which we hold: the unlink is
    # invisible until the unlock, so the two are one step.
    pm_vmrs_remove(m, t["rmv_vmr"] - 1)
    pm_unlock(m, t)
    t.ret("pm_remove_vmr")
    return None


# -- pm_add_vmr (from mmap, split_vmr, fork) ----------------------------------------------

CODE.function("pm_add_vmr", ("addv_vmr",))


@CODE.step("pm_add_vmr", "lock", "spin_lock(&pm->pm_lock)", lock="pm_lock")
@icontract.require(lambda m, t: not m.vf(t["addv_vmr"] - 1, "on_pm") and m.vf(t["addv_vmr"] - 1, "alive"),
    "a live VMR not yet on pm_vmrs")
def add_vmr_lock(m: Machine, t: ThreadView) -> object:
    if not pm_lock(m, t):
        return BLOCKED
    t.goto("pm_add_vmr.link")
    return None


@CODE.step("pm_add_vmr", "link", "TAILQ_INSERT_TAIL(&pm->pm_vmrs, vmr); spin_unlock(&pm->pm_lock)")
@icontract.snapshot(lambda t: t["addv_vmr"] - 1, name="vmr")
@icontract.ensure(lambda OLD, m, result: C.blocked(result)
                  or m.vf(OLD.vmr, "on_pm") == len(m.pm_vmrs()),
                  "TAILQ_INSERT_TAIL: the VMR is last on pm_vmrs")
def add_vmr_link(m: Machine, t: ThreadView) -> object:
    pm_vmrs_insert_tail(m, t["addv_vmr"] - 1)
    pm_unlock(m, t)
    t.ret("pm_add_vmr")
    return None

"""pm_remove_contig (kern/src/pagemap.c, new in the seed), phase by phase.

    swap      atomic_swap(&pm->pm_removal, 1): one remover per page map
    mark      for each index: if the slot's count is 0, CAS in the removal
              flag, then set PG_REMOVAL (skipping MAP_LOCKED VMRs' ranges)
    pass 2    for each VMR: PTEs of marked pages lose PTE_P (under pte_lock);
              processes batched (PTR_ARR_LEN) for proc_tlbshootdown
    pass 3    for each VMR: fold PTE_D into PG_DIRTY (writable VMRs), zero PTE
    dirty     for each index still marked: collect PG_DIRTY pages, clear
              PG_DIRTY, drop pm_lock, writepage each, retake pm_lock, and
              restart where the batch filled up
    final     for each index still marked: CAS the slot to set_page(NULL),
              zero pg_flags, page_decref, radix_delete; pm_num_pages -= n

Registers hold the C locals; ``rm_store`` is ptr_store[] (procs, then pages)
packed base 64, ``rm_n`` is ptr_free_idx; ``rm_vmr`` is vmr_i (a VMR record
number + 1); ``rm_k``/``rm_kend`` the virtual pages vmr_for_each walks.

The remover reads VMR fields holding only pm_lock, while their writers hold
vmr_lock (split_vmr, merge_vmr, mprotect, __do_mmap): each read happens at the
step where the C makes it, and the steps that choose the next VMR are points
of interleaving whenever a scenario has an op that changes VMRs.
"""

from __future__ import annotations

import icontract

from pagemap import contracts as C
from pagemap.alloc import page_decref
from pagemap.effective import disturb, pinned_now, removal_begins, removal_ends, settle
from pagemap.machine import BLOCKED, CODE, Machine, ThreadView, Violation
from pagemap.pageflags import PG_DIRTY, PG_REMOVAL, PTE_D, PTE_P, pte2ppn
from pagemap.pm import lookup_slot, pm_lock, pm_tree, pm_unlock
from pagemap.proc import proc_tlbshootdown, shootdown_pending
from pagemap.sync import spin_acquire, spin_release
from pagemap.vmr import MAP_LOCKED, PGSHIFT, PROT_WRITE

CODE.function(
    "pm_remove_contig",
    (
        "rm_index", "rm_nr", "rm_i", "rm_old", "rm_new", "rm_page", "rm_pinned",
        "rm_vmr", "rm_k", "rm_kend", "rm_w", "rm_pte", "rm_store", "rm_n", "rm_j", "rm_removed",
        "rm_after",
    ),
)

DIGIT = 64  # ptr_store packing base: procs are p + 1, pages are their ppn


def store_get(t: ThreadView, j: int) -> int:
    return (t["rm_store"] // DIGIT**j) % DIGIT


def store_push(t: ThreadView, item: int) -> None:
    assert 0 < item < DIGIT
    t["rm_store"] += item * DIGIT ** t["rm_n"]
    t["rm_n"] += 1


def _end(t: ThreadView) -> int:
    return t["rm_index"] + t["rm_nr"]


def _slot_page(m: Machine, i: int) -> tuple[int, int | None]:
    """radix_lookup_slot (local: the tree's shape changes only under pm_lock,
    which the remover holds) and the word it reads, decoded."""
    if lookup_slot(m, i) is None:
        return 0, None
    w = m.slot(i)
    return w, m.c.pm_slot_get_page(w, m.bits)


def _marked(m: Machine, page: int) -> bool:
    """atomic_read(&page->pg_flags) & PG_REMOVAL.  Only the remover sets or
    clears PG_REMOVAL on a page-map page, so this read cannot race."""
    m.touch(page, "pm_remove_contig reads pg_flags")
    return bool(m.pg(page, "flags") & PG_REMOVAL)


# -- entry and the one-remover swap --------------------------------------------------


@CODE.step("pm_remove_contig", "swap", "if (!nr_pgs) return 0; atomic_swap(&pm->pm_removal, 1)")
@icontract.require(lambda m, t: C.no_spinlock(m, t) and C.no_ref(t),
                   "pm_remove_contig may spin on pm_lock and pte_locks: it starts holding nothing")
def rm_swap(m: Machine, t: ThreadView) -> object:
    if t["rm_nr"] == 0:
        t.ret("pm_remove_contig", 0)
        return None
    old = m.get("pm_removal")
    m.set("pm_removal", 1)
    if old:
        m.note("another remover is running: return 0")
        t.ret("pm_remove_contig", 0)
        return None
    removal_begins(m)
    t.goto("pm_remove_contig.lock")
    return None


@CODE.step(
    "pm_remove_contig",
    "lock",
    "spin_lock(&pm->pm_lock); look for MAP_LOCKED VMRs on pm_vmrs",
    lock="pm_lock",
)
def rm_lock(m: Machine, t: ThreadView) -> object:
    if not pm_lock(m, t):
        return BLOCKED
    # The VMR list is stable under pm_lock, and a VMR's flags are set before
    # pm_add_vmr and never change while it is on the list: the scan joins the lock.
    t["rm_pinned"] = int(any(m.vf(r, "flags") & MAP_LOCKED for r in m.pm_vmrs()))
    pinned_now(m)
    t["rm_i"] = t["rm_index"]
    t.goto("pm_remove_contig.mark_read")
    return None


# -- mark ------------------------------------------------------------------------------


def _mark_next(m: Machine, t: ThreadView, i: int) -> None:
    t["rm_old"] = t["rm_new"] = t["rm_page"] = 0
    t["rm_i"] = i + 1
    if i + 1 >= _end(t):
        _mark_done(t)
    else:
        t.goto("pm_remove_contig.mark_read")


def _mark_done(t: ThreadView) -> None:
    """The mark loop is over: on to pass 2 (the loop test is thread-local, so
    it joins the last iteration's step)."""
    t["rm_i"] = 0
    t["rm_vmr"] = 0
    t.goto("pm_remove_contig.p2_vmr")


def _pinned_end(m: Machine, t: ThreadView, i: int) -> int | None:
    """The pinned-VMR skip: vmr_get_end_idx of a MAP_LOCKED VMR mapping i (its
    fields read as they are now: spec/deviations.md, joined reads)."""
    if not t["rm_pinned"]:
        return None
    for r in m.pm_vmrs():
        if m.vf(r, "flags") & MAP_LOCKED:
            vmr = m.vmr(r)
            if m.c.vmr_has_page_idx(vmr, i):
                return m.c.vmr_get_end_idx(vmr)
    return None


@CODE.step(
    "pm_remove_contig",
    "mark_read",
    "mark: skip pinned; old_slot_val = ACCESS_ONCE(*tree_slot); skip if no page or refcnt",
)
def rm_mark_read(m: Machine, t: ThreadView) -> object:
    i = t["rm_i"]
    while i < _end(t):
        pe = _pinned_end(m, t, i)
        if pe is None:
            break
        i = pe  # i = vmr_get_end_idx(vmr) - 1; the loop's i++
    if i >= _end(t):
        _mark_done(t)
        return None
    old, page = _slot_page(m, i)
    if page is None or m.c.pm_slot_check_refcnt(old, m.bits):
        _mark_next(m, t, i)
        return None
    t["rm_i"] = i
    t["rm_old"] = old
    t["rm_new"] = m.c.pm_slot_set_removal(old, m.bits)
    t["rm_page"] = page
    t.goto("pm_remove_contig.mark_cas")
    return None


@CODE.step("pm_remove_contig", "mark_cas", "atomic_cas_ptr(tree_slot, old, set_removal(old))")
def rm_mark_cas(m: Machine, t: ThreadView) -> object:
    i = t["rm_i"]
    if m.slot(i) != t["rm_old"]:
        _mark_next(m, t, i)
        return None
    m.set_slot(i, t["rm_new"])
    settle(m, i)
    t.goto("pm_remove_contig.mark_page")
    return None


@CODE.step("pm_remove_contig", "mark_page", "atomic_or(&page->pg_flags, PG_REMOVAL)")
def rm_mark_page(m: Machine, t: ThreadView) -> object:
    page = t["rm_page"]
    m.touch(page, "pm_remove_contig marks")
    m.set_pg(page, "flags", m.c.pg_set(m.pg(page, "flags"), PG_REMOVAL))
    _mark_next(m, t, t["rm_i"])
    return None


# -- the VMR passes -----------------------------------------------------------------------


def _visits(m: Machine, t: ThreadView, r: int) -> tuple[int, int] | None:
    """Whether a pass visits VMR r (its fields as they are now), and from which
    file index for how many pages: (pg_idx, max_nr_pgs) of vmr_for_each.

    Seed: only VMRs that map ``index`` itself (vmr_has_page_idx(vmr, index)),
    from there for nr_pgs pages.  Fix removal-vmr-overlap: every VMR
    overlapping [index, index + nr_pgs), over the overlap."""
    if m.vf(r, "flags") & MAP_LOCKED:
        return None
    vmr = m.vmr(r)
    index, end = t["rm_index"], _end(t)
    if m.cfg.fix("removal-vmr-overlap"):
        lo, hi = max(index, vmr.first_idx), min(end, m.c.vmr_get_end_idx(vmr))
        return (lo, hi - lo) if lo < hi else None
    if not m.c.vmr_has_page_idx(vmr, index):
        return None
    return index, t["rm_nr"]


def _vmr_range(m: Machine, t: ThreadView, r: int, pg_idx: int, n: int) -> tuple[int, int]:
    """The virtual pages [k0, k1) vmr_for_each(vmr, pg_idx, n, cb) walks in VMR r,
    from its fields as they are now: vmr_idx_to_va(pg_idx), MIN(vm_end - start,
    n pages) long.  vmr_idx_to_va asserts that the VMR still maps pg_idx."""
    vmr = m.vmr(r)
    if not m.c.vmr_has_page_idx(vmr, pg_idx):
        raise Violation("kernel-assert", f"vmr_idx_to_va: assert(va < vm_end): "
                        f"{m.L.rec_name[r]} no longer maps file page {pg_idx}")
    idx = m.c.vmr_for_each_range(vmr, pg_idx, n)
    k0 = m.c.vmr_idx_to_va(vmr, idx[0]) >> PGSHIFT
    return k0, k0 + len(idx)


def _next_vmr(m: Machine, t: ThreadView, found: str, done: str) -> None:
    """TAILQ_FOREACH(vmr_i, &pm->pm_vmrs): the next VMR after vmr_i (``rm_vmr``,
    0 before the first) that the pass does not skip, and the (pg_idx, nr_pgs) it
    will hand vmr_for_each (kept in rm_k, rm_kend until the walk starts).
    pm_vmrs cannot change while the remover holds pm_lock; the VMRs' fields can,
    and are read here."""
    order = m.pm_vmrs()
    cur = t["rm_vmr"] - 1
    start = order.index(cur) + 1 if cur >= 0 else 0
    for r in order[start:]:
        visit = _visits(m, t, r)
        if visit is not None:
            t["rm_vmr"] = r + 1
            t["rm_k"], t["rm_kend"] = visit
            t.goto(found)
            return
    t["rm_vmr"] = t["rm_k"] = t["rm_kend"] = 0
    t.goto(done)


def _vmr_proc(m: Machine, t: ThreadView) -> int:
    return m.L.rec_proc[t["rm_vmr"] - 1]


def _pte_lock(m: Machine, t: ThreadView) -> bool:
    """spin_lock(&vmr_i->vm_proc->pte_lock)."""
    return spin_acquire(m, t, m.L.proc_off(_vmr_proc(m, t), "pte_lock"))


def _pte_unlock(m: Machine, t: ThreadView) -> None:
    spin_release(m, t, m.L.proc_off(_vmr_proc(m, t), "pte_lock"), "pte_lock")


def _walk_start(m: Machine, t: ThreadView, here: str) -> None:
    """vmr_for_each, called after taking pte_lock: it computes the walk from the
    VMR's fields as they are now, which an mmap or a split_vmr may have changed
    since the pass tested them (spec/removal/pass2.md)."""
    k0, k1 = _vmr_range(m, t, t["rm_vmr"] - 1, t["rm_k"], t["rm_kend"])
    t["rm_k"], t["rm_kend"] = k0, k1
    t.goto(here)


def _next_pte(t: ThreadView, here: str, after: str) -> None:
    t["rm_pte"] = 0
    if t["rm_k"] + 1 < t["rm_kend"]:
        t["rm_k"] += 1
        t.goto(here)
    else:
        t.goto(after)


@CODE.step("pm_remove_contig", "p2_vmr",
           "pass 2: next VMR on pm_vmrs (skip MAP_LOCKED, !vmr_has_page_idx(vmr, index))",
           local="static-vmrs")
@icontract.require(lambda m, t: t["rm_vmr"] != 0 or all(
    C.slot_marked(m, i) and C.slot_refs(m, i) == 0
    for i, _ in C.marked_pages_in(m, t["rm_index"], _end(t))),
    "after the mark pass: every page it marked has the slot's removal flag and no reference "
    "(pm_lock keeps lookups out)")
@icontract.require(lambda m, t: C.holds(m, t, "pm_lock"), "passes 2 and 3 run under pm_lock")
def rm_p2_vmr(m: Machine, t: ThreadView) -> object:
    _next_vmr(m, t, "pm_remove_contig.p2_lock", "pm_remove_contig.p2_done")
    return None


@CODE.step("pm_remove_contig", "p2_lock",
           "spin_lock(&vmr_i->vm_proc->pte_lock); vmr_for_each(vmr_i, index, nr_pgs, ...)")
def rm_p2_lock(m: Machine, t: ThreadView) -> object:
    if not _pte_lock(m, t):
        return BLOCKED
    _walk_start(m, t, "pm_remove_contig.p2_read")
    return None


@CODE.step("pm_remove_contig", "p2_read",
           "__pm_mark_not_present: if PAGE_PRESENT(*pte) && PG_REMOVAL ...",
           fixed={"atomic-pte-update": "__pm_mark_not_present: if PAGE_PRESENT(*pte) && "
                  "PG_REMOVAL: atomic_and(pte, ~PTE_P)"})
def rm_p2_read(m: Machine, t: ThreadView) -> object:
    p, k = _vmr_proc(m, t), t["rm_k"]
    pte = m.pte(p, k)
    if pte & PTE_P and _marked(m, pte2ppn(pte)):
        if m.cfg.fix("atomic-pte-update"):
            m.set_pte(p, k, pte & ~PTE_P)  # atomic_and
        else:
            t["rm_pte"] = pte
            t.goto("pm_remove_contig.p2_write")
            return None
    _next_pte(t, "pm_remove_contig.p2_read", "pm_remove_contig.p2_unlock")
    return None


@CODE.step("pm_remove_contig", "p2_write", "__pm_mark_not_present: *pte &= ~PTE_P (store)")
def rm_p2_write(m: Machine, t: ThreadView) -> object:
    m.set_pte(_vmr_proc(m, t), t["rm_k"], t["rm_pte"] & ~PTE_P)
    _next_pte(t, "pm_remove_contig.p2_read", "pm_remove_contig.p2_unlock")
    return None


@CODE.step("pm_remove_contig", "p2_unlock",
           "spin_unlock(pte_lock); batch vm_proc into ptr_store (shootdown when full)")
def rm_p2_unlock(m: Machine, t: ThreadView) -> object:
    _pte_unlock(m, t)
    proc = _vmr_proc(m, t) + 1
    t["rm_k"] = t["rm_kend"] = 0
    if any(store_get(t, j) == proc for j in range(t["rm_n"])):
        t.goto("pm_remove_contig.p2_vmr")
        return None
    t["rm_after"] = proc  # pushed once the batch has room
    if t["rm_n"] == m.cfg.ptr_arr_len:
        t.call("shootdown_and_reset.enter", "pm_remove_contig.p2_push")
    else:
        t.goto("pm_remove_contig.p2_push")
    return None


@CODE.step("pm_remove_contig", "p2_push", "ptr_store[ptr_free_idx++] = vmr_i->vm_proc",
           local=True)
def rm_p2_push(m: Machine, t: ThreadView) -> object:
    store_push(t, t["rm_after"])
    t["rm_after"] = 0
    t.goto("pm_remove_contig.p2_vmr")
    return None


@CODE.step("pm_remove_contig", "p2_done", "shootdown_and_reset_ptrstore(ptr_store)", local=True)
@icontract.require(lambda m, t: not C.sees_all_ptes(m)
    or C.marked_clean_of(m, t["rm_index"], _end(t), "present"),
    "after pass 2: no present PTE names a marked page")
def rm_p2_done(m: Machine, t: ThreadView) -> object:
    t.call("shootdown_and_reset.enter", "pm_remove_contig.p3_start")
    return None


@CODE.step("pm_remove_contig", "p3_start", "pass 3 over pm_vmrs", local=True)
@icontract.require(lambda m, t: not C.shootdown_lands(m)
    or C.marked_clean_of(m, t["rm_index"], _end(t), "tlbs"),
    "after the shootdowns: no TLB maps a marked page, so the dirty bits can be read")
def rm_p3_start(m: Machine, t: ThreadView) -> object:
    t["rm_vmr"] = 0
    t.goto("pm_remove_contig.p3_vmr")
    return None


@CODE.step("pm_remove_contig", "p3_vmr",
           "pass 3: next VMR on pm_vmrs (skip MAP_LOCKED, !vmr_has_page_idx(vmr, index))",
           local="static-vmrs")
def rm_p3_vmr(m: Machine, t: ThreadView) -> object:
    _next_vmr(m, t, "pm_remove_contig.p3_lock", "pm_remove_contig.dirty_start")
    return None


@CODE.step("pm_remove_contig", "p3_lock",
           "spin_lock(pte_lock); vm_prot & PROT_WRITE? mark_dirty_pgs_unmap : mark_unmap",
           fixed={"removal-fold-always":
                  "spin_lock(pte_lock); vmr_for_each(..., "
                  "__pm_mark_dirty_pgs_unmap) always"})
def rm_p3_lock(m: Machine, t: ThreadView) -> object:
    if not _pte_lock(m, t):
        return BLOCKED
    writable = m.vf(t["rm_vmr"] - 1, "prot") & PROT_WRITE
    t["rm_w"] = int(bool(writable) or m.cfg.fix("removal-fold-always"))
    _walk_start(m, t, "pm_remove_contig.p3_read")
    return None


@CODE.step("pm_remove_contig", "p3_read",
           "__pm_mark_dirty_pgs_unmap / __pm_mark_unmap: if (*pte) && PG_REMOVAL ...",
           fixed={"atomic-pte-update": "__pm_mark_dirty_pgs_unmap / __pm_mark_unmap: "
                  "if (*pte) && PG_REMOVAL: old = xchg(pte, 0)"})
def rm_p3_read(m: Machine, t: ThreadView) -> object:
    p, k = _vmr_proc(m, t), t["rm_k"]
    pte = m.pte(p, k)
    if pte == 0 or not _marked(m, pte2ppn(pte)):
        _next_pte(t, "pm_remove_contig.p3_read", "pm_remove_contig.p3_unlock")
        return None
    if m.cfg.fix("atomic-pte-update"):
        m.set_pte(p, k, 0)  # xchg(pte, 0): a D bit set since is returned too
        t["rm_pte"] = pte
        if t["rm_w"] and pte & PTE_D:
            t.goto("pm_remove_contig.p3_dirty")
        else:
            _next_pte(t, "pm_remove_contig.p3_read", "pm_remove_contig.p3_unlock")
        return None
    t["rm_pte"] = pte
    if t["rm_w"] and pte & PTE_D:
        t.goto("pm_remove_contig.p3_dirty")
    else:
        t.goto("pm_remove_contig.p3_zero")
    return None


@CODE.step("pm_remove_contig", "p3_dirty", "if (*pte & PTE_D) atomic_or(&pg_flags, PG_DIRTY)")
def rm_p3_dirty(m: Machine, t: ThreadView) -> object:
    page = pte2ppn(t["rm_pte"])
    m.touch(page, "pm_remove_contig folds PTE_D")
    m.set_pg(page, "flags", m.c.pg_set(m.pg(page, "flags"), PG_DIRTY))
    if m.cfg.fix("atomic-pte-update"):
        _next_pte(t, "pm_remove_contig.p3_read", "pm_remove_contig.p3_unlock")
    else:
        t.goto("pm_remove_contig.p3_zero")
    return None


@CODE.step("pm_remove_contig", "p3_zero", "*pte = 0")
def rm_p3_zero(m: Machine, t: ThreadView) -> object:
    m.set_pte(_vmr_proc(m, t), t["rm_k"], 0)
    _next_pte(t, "pm_remove_contig.p3_read", "pm_remove_contig.p3_unlock")
    return None


@CODE.step("pm_remove_contig", "p3_unlock", "spin_unlock(&vmr_i->vm_proc->pte_lock)")
def rm_p3_unlock(m: Machine, t: ThreadView) -> object:
    _pte_unlock(m, t)
    t["rm_k"] = t["rm_kend"] = t["rm_w"] = 0
    t.goto("pm_remove_contig.p3_vmr")
    return None


# -- the dirty loop and writeback ---------------------------------------------------------


@CODE.step("pm_remove_contig", "dirty_start", "i = index; handle_dirty:", local=True)
@icontract.require(lambda m, t: not C.sees_all_ptes(m)
    or C.marked_clean_of(m, t["rm_index"], _end(t), "ptes"),
    "after pass 3: no PTE names a marked page (their D bits are in PG_DIRTY)")
def rm_dirty_start(m: Machine, t: ThreadView) -> object:
    t["rm_i"] = t["rm_index"]
    t.goto("pm_remove_contig.dirty_read")
    return None


def _dirty_next(t: ThreadView) -> None:
    t["rm_page"] = 0
    t["rm_i"] += 1
    if t["rm_i"] >= _end(t):
        t.goto("pm_remove_contig.dirty_unlock")
    else:
        t.goto("pm_remove_contig.dirty_read")


@CODE.step("pm_remove_contig", "dirty_read",
           "handle_dirty: page = pm_slot_get_page(*tree_slot); only PG_REMOVAL pages")
def rm_dirty_read(m: Machine, t: ThreadView) -> object:
    i = t["rm_i"]
    if i >= _end(t):
        t.goto("pm_remove_contig.dirty_unlock")
        return None
    _, page = _slot_page(m, i)
    if page is None or not _marked(m, page):
        _dirty_next(t)
        return None
    t["rm_page"] = page
    t.goto("pm_remove_contig.dirty_recheck")
    return None


@CODE.step("pm_remove_contig", "dirty_recheck", "if (!pm_slot_check_removal(*tree_slot)) ...")
def rm_dirty_recheck(m: Machine, t: ThreadView) -> object:
    if m.c.pm_slot_check_removal(m.slot(t["rm_i"]), m.bits):
        t.goto("pm_remove_contig.dirty_test")
    else:
        t.goto("pm_remove_contig.dirty_unmark")
    return None


@CODE.step("pm_remove_contig", "dirty_unmark", "lost the race: atomic_and(~PG_REMOVAL)")
def rm_dirty_unmark(m: Machine, t: ThreadView) -> object:
    page = t["rm_page"]
    m.touch(page, "pm_remove_contig")
    m.set_pg(page, "flags", m.c.pg_clear(m.pg(page, "flags"), PG_REMOVAL))
    _dirty_next(t)
    return None


@CODE.step("pm_remove_contig", "dirty_test",
           "if (pg_flags & PG_DIRTY): full? break; ptr_store[n++] = page")
def rm_dirty_test(m: Machine, t: ThreadView) -> object:
    page = t["rm_page"]
    m.touch(page, "pm_remove_contig")
    if not m.pg(page, "flags") & PG_DIRTY:
        _dirty_next(t)
        return None
    if t["rm_n"] == m.cfg.ptr_arr_len:
        t["rm_page"] = 0
        t.goto("pm_remove_contig.dirty_unlock")  # break; i stays where we left off
        return None
    store_push(t, page)
    t.goto("pm_remove_contig.dirty_clean")
    return None


@CODE.step("pm_remove_contig", "dirty_clean", "atomic_and(&page->pg_flags, ~PG_DIRTY)")
def rm_dirty_clean(m: Machine, t: ThreadView) -> object:
    page = t["rm_page"]
    m.touch(page, "pm_remove_contig")
    m.set_pg(page, "flags", m.c.pg_clear(m.pg(page, "flags"), PG_DIRTY))
    _dirty_next(t)
    return None


@CODE.step("pm_remove_contig", "dirty_unlock", "spin_unlock(&pm->pm_lock) for writeback")
def rm_dirty_unlock(m: Machine, t: ThreadView) -> object:
    pm_unlock(m, t)
    t["rm_j"] = 0
    t.goto("pm_remove_contig.writepage" if t["rm_n"] else "pm_remove_contig.relock")
    return None


@CODE.step("pm_remove_contig", "writepage", "pm->pm_op->writepage(pm, ptr_store[j])",
           fixed={"removal-writeback-error":
                  "if (writepage(pm, page)) { atomic_or(PG_DIRTY); "
                  "atomic_and(~PG_REMOVAL) }"})
def rm_writepage(m: Machine, t: ThreadView) -> object:
    j = t["rm_j"]
    if j >= t["rm_n"]:
        t["rm_store"] = t["rm_n"] = t["rm_j"] = 0
        t.goto("pm_remove_contig.relock")
        return None
    page = store_get(t, j)
    # No reference is held on these pages (ptr_store is a plain array).
    m.touch(page, "writepage")
    if m.cfg.writepage == "kfs":
        # kfs_writepage (and ext2's) returns -1 and writes nothing; the seed
        # ignores the return value.
        m.note("writepage returns -1 (KFS): nothing written")
        disturb(m, m.pg(page, "index"))
        if m.cfg.fix("removal-writeback-error"):
            flags = m.c.pg_set(m.pg(page, "flags"), PG_DIRTY)
            m.set_pg(page, "flags", m.c.pg_clear(flags, PG_REMOVAL))
    else:
        m.set_store(m.pg(page, "index"), m.pg(page, "data"))
    t["rm_j"] = j + 1
    if j + 1 >= t["rm_n"]:
        t["rm_store"] = t["rm_n"] = t["rm_j"] = 0
        t.goto("pm_remove_contig.relock")
    return None


@CODE.step("pm_remove_contig", "relock", "spin_lock(&pm->pm_lock); if (i < end) goto handle_dirty",
           lock="pm_lock")
def rm_relock(m: Machine, t: ThreadView) -> object:
    if not pm_lock(m, t):
        return BLOCKED
    if t["rm_i"] < _end(t):
        t.goto("pm_remove_contig.dirty_read")
    else:
        t["rm_i"] = t["rm_index"]
        t.goto("pm_remove_contig.final_read")
    return None


# -- final removal ----------------------------------------------------------------------------


def _final_next(t: ThreadView) -> None:
    t["rm_old"] = t["rm_new"] = t["rm_page"] = 0
    t["rm_i"] += 1
    if t["rm_i"] >= _end(t):
        t.goto("pm_remove_contig.final_unlock")
    else:
        t.goto("pm_remove_contig.final_read")


@CODE.step("pm_remove_contig", "final_read",
           "final: old = ACCESS_ONCE(*tree_slot); PG_REMOVAL? slot REMOVAL? refcnt warn")
def rm_final_read(m: Machine, t: ThreadView) -> object:
    i = t["rm_i"]
    if i >= _end(t):
        t.goto("pm_remove_contig.final_unlock")
        return None
    # The C reads *tree_slot twice (old_slot_val, then for the page); only a
    # holder's pm_put_page could change the word in between, and it would
    # change the count, not the page: one read gives the same outcomes.
    old, page = _slot_page(m, i)
    if page is None or not _marked(m, page):
        _final_next(t)
        return None
    t["rm_page"] = page
    if not m.c.pm_slot_check_removal(old, m.bits):
        t.goto("pm_remove_contig.final_unmark")
        return None
    if m.c.pm_slot_check_refcnt(old, m.bits):
        m.note("warn: Unexpected refcnt in PM remove!")
    t["rm_old"] = old
    t["rm_new"] = m.c.pm_slot_set_page_null(old, m.bits)
    t.goto("pm_remove_contig.final_cas")
    return None


@CODE.step("pm_remove_contig", "final_unmark", "atomic_and(&page->pg_flags, ~PG_REMOVAL)")
def rm_final_unmark(m: Machine, t: ThreadView) -> object:
    page = t["rm_page"]
    m.touch(page, "pm_remove_contig")
    m.set_pg(page, "flags", m.c.pg_clear(m.pg(page, "flags"), PG_REMOVAL))
    _final_next(t)
    return None


@CODE.step("pm_remove_contig", "final_cas",
           "atomic_cas_ptr(tree_slot, old, pm_slot_set_page(old, 0))")
def rm_final_cas(m: Machine, t: ThreadView) -> object:
    i = t["rm_i"]
    if m.slot(i) != t["rm_old"]:
        t.goto("pm_remove_contig.final_unmark")
        return None
    m.set_slot(i, t["rm_new"])
    t.goto("pm_remove_contig.final_zero_flags")
    return None


@CODE.step("pm_remove_contig", "final_zero_flags", "atomic_set(&page->pg_flags, 0)")
def rm_final_zero_flags(m: Machine, t: ThreadView) -> object:
    page = t["rm_page"]
    m.touch(page, "pm_remove_contig")
    m.set_pg(page, "flags", 0)
    t.goto("pm_remove_contig.final_decref")
    return None


@CODE.step("pm_remove_contig", "final_decref", "page_decref(page); nr_removed++")
def rm_final_decref(m: Machine, t: ThreadView) -> object:
    page = t["rm_page"]
    m.touch(page, "pm_remove_contig frees")
    index = m.pg(page, "index")
    if m.pg(page, "data") != m.store(index):
        raise Violation(
            "no-lost-write",
            f"page {page} (file page {index}) freed holding {m.pg(page, 'data')}, "
            f"backing store has {m.store(index)}",
        )
    page_decref(m, page, "pm_remove_contig")
    settle(m, t["rm_i"])
    t["rm_removed"] += 1
    t.goto("pm_remove_contig.final_delete")
    return None


@CODE.step("pm_remove_contig", "final_delete", "radix_delete(&pm->pm_tree, i)")
def rm_final_delete(m: Machine, t: ThreadView) -> object:
    i = t["rm_i"]
    if m.slot(i) == 0:
        m.note("radix_delete: slot already empty (warning)")
    _, tree = m.c.radix_delete(pm_tree(m), i)
    m.set_slot(i, tree.slots[i])
    _final_next(t)
    return None


@CODE.step("pm_remove_contig", "final_unlock",
           "pm->pm_num_pages -= nr_removed; spin_unlock(&pm->pm_lock)")
@icontract.require(lambda m, t: not C.marked_pages_in(m, t["rm_index"], _end(t)),
                   "after the final loop: every mark is undone or its page freed")
def rm_final_unlock(m: Machine, t: ThreadView) -> object:
    # pm_num_pages is read and written only under pm_lock: local until the unlock.
    m.set("pm_num_pages", m.get("pm_num_pages") - t["rm_removed"])
    pm_unlock(m, t)
    t.goto("pm_remove_contig.done")
    return None


@CODE.step("pm_remove_contig", "done", "atomic_set(&pm->pm_removal, 0); return nr_removed")
def rm_done(m: Machine, t: ThreadView) -> object:
    removal_ends(m, t["rm_index"], t["rm_nr"])
    m.set("pm_removal", 0)
    t.ret("pm_remove_contig", t["rm_removed"])
    return None


# -- shootdown_and_reset_ptrstore ---------------------------------------------------------------

CODE.function("shootdown_and_reset", ("sd_j",))


def _sd_finish(t: ThreadView) -> None:
    t["rm_store"] = t["rm_n"] = 0  # *arr_idx = 0
    t.ret("shootdown_and_reset")


@CODE.step("shootdown_and_reset", "enter", "for (i = 0; i < *arr_idx; i++)", local=True)
def sd_enter(m: Machine, t: ThreadView) -> object:
    if t["rm_n"] == 0:
        _sd_finish(t)
    else:
        t.goto("shootdown_and_reset.send")
    return None


@CODE.step("shootdown_and_reset", "send", "proc_tlbshootdown(ptr_store[i], 0, 0)")
def sd_send(m: Machine, t: ThreadView) -> object:
    j = t["sd_j"]
    proc = store_get(t, j) - 1
    proc_tlbshootdown(m, t, proc)
    if m.cfg.fix("removal-shootdown-wait") and m.cfg.shootdown == "async":
        t.goto("shootdown_and_reset.wait")
    elif j + 1 < t["rm_n"]:
        t["sd_j"] = j + 1
    else:
        _sd_finish(t)
    return None


@CODE.step("shootdown_and_reset", "wait", "fix: wait until the target cores have flushed")
def sd_wait(m: Machine, t: ThreadView) -> object:
    j = t["sd_j"]
    if shootdown_pending(m, store_get(t, j) - 1):
        return BLOCKED
    if j + 1 < t["rm_n"]:
        t["sd_j"] = j + 1
        t.goto("shootdown_and_reset.send")
    else:
        _sd_finish(t)
    return None

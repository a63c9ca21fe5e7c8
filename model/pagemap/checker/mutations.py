"""Mutation tests of the protocol: deliberate, realistic errors in the C.

Each ``Mutation`` replaces one or a few steps of the model (by
``"function.label"``, see ``pagemap.machine.Code``) with a copy of the real
step that makes one mistake a programmer could have made in
kern/src/pagemap.c, kern/src/mm.c, kern/src/vfs.c or kern/src/kthread.c.  The
explorer runs the scenario of ``tests/mutation_scenarios`` the mutation names
on the ``fixed`` variant: without the mutation it must pass, with it the
checker must report a violation of the named invariant.  A mutation the
checker cannot tell from the real code would show that the scenarios or the
invariants are too weak; the ones that are equivalent (benign) are argued in
spec/mutations.md and kept out of ``MUTATIONS``.

Each step function below is a copy of the step it replaces, with the mistake
marked ``MUTATION``; the helpers are the real ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from pagemap.alloc import page_decref
from pagemap.checker.explore import Explorer, Outcome
from pagemap.checker.scenario import load
from pagemap.fault import _unlock
from pagemap.hardware import write_value
from pagemap.machine import BLOCKED, TSLOT_POISON, Machine, ThreadView, Violation
from pagemap.pageflags import (
    PG_DIRTY,
    PG_PAGEMAP,
    PG_UPTODATE,
    PTE_P,
    PTE_USER_RO,
    PTE_USER_RW,
    pte2ppn,
)
from pagemap.pm import pm_lock, pm_unlock, put_slot_ref
from pagemap.removal import (
    _dirty_next,
    _end,
    _final_next,
    _mark_done,
    _mark_next,
    _marked,
    _next_pte,
    _pinned_end,
    _sd_finish,
    _slot_page,
)
from pagemap.slot import flags_shift
from pagemap.vmr import MAP_LOCKED, MAP_PRIVATE, PROT_WRITE

StepFn = Callable[[Machine, ThreadView], object]

#: The scenarios the mutations name (owned by the mutation tests).
SCENARIO_DIR = Path(__file__).resolve().parents[3] / "tests" / "mutation_scenarios"


@dataclass(frozen=True)
class Mutation:
    name: str
    description: str  # the protocol error, in terms of the C code
    replace: Mapping[str, StepFn] = field(compare=False)
    scenario: str  # stem of a file in tests/mutation_scenarios
    invariant: str  # the invariant the checker must report

    @property
    def scenario_path(self) -> Path:
        return SCENARIO_DIR / f"{self.scenario}.toml"


# -- pagemap.c: pm_find_page ---------------------------------------------------------


def find_cas_keeps_removal(m: Machine, t: ThreadView) -> object:
    """pm_find_page.cas, but the new slot value is inc_refcnt(old): the
    lookup takes a reference without clearing the removal flag."""
    i, old = t["find_index"], t["find_old"]
    if m.slot(i) != old:
        t["find_old"] = 0
        t["find_page"] = 0
        t.goto("pm_find_page.read")
        return None
    new = m.c.pm_slot_inc_refcnt(old, m.bits)  # MUTATION: no pm_slot_clear_removal
    m.set_slot(i, new)
    t["holds"] = i + 1
    page = t["find_page"]
    m.touch(page, "pm_find_page")
    if m.pg(page, "tslot") != i + 1:
        raise Violation("kernel-assert", "pm_find_page: page->pg_tree_slot != tree_slot")
    t.goto("pm_find_page.unlock")
    return None


def find_plain_store(m: Machine, t: ThreadView) -> object:
    """pm_find_page.cas as a plain store: *tree_slot = inc(clear(old))."""
    i, old = t["find_index"], t["find_old"]
    # MUTATION: no compare; a pm_put_page since the read is overwritten.
    new = m.c.pm_slot_inc_refcnt(m.c.pm_slot_clear_removal(old, m.bits), m.bits)
    m.set_slot(i, new)
    t["holds"] = i + 1
    page = t["find_page"]
    m.touch(page, "pm_find_page")
    if m.pg(page, "tslot") != i + 1:
        raise Violation("kernel-assert", "pm_find_page: page->pg_tree_slot != tree_slot")
    t.goto("pm_find_page.unlock")
    return None


def find_lock_skipped(m: Machine, t: ThreadView) -> object:
    """pm_find_page.lock without spin_lock(&pm->pm_lock)."""
    t.goto("pm_find_page.read")  # MUTATION: the lookup does not take pm_lock
    return None


def find_unlock_skipped(m: Machine, t: ThreadView) -> object:
    """pm_find_page.unlock without spin_unlock (it never took the lock)."""
    t.ret("pm_find_page", t["find_page"])  # MUTATION: no spin_unlock
    return None


# -- pagemap.c: pm_insert_page, pm_put_page, pm_load_page --------------------------------


def insert_unlock_no_count(m: Machine, t: ThreadView) -> object:
    """pm_insert_page.unlock without pm->pm_num_pages++."""
    i, page = t["ins_index"], t["ins_page"]
    m.set_pg(page, "tslot", i + 1)
    # MUTATION: pm_num_pages is not incremented
    pm_unlock(m, t)
    t.ret("pm_insert_page", 0)
    return None


def put_wrong_shift(m: Machine, t: ThreadView) -> object:
    """generic_file_read/write's pm_put_page with atomic_add(slot,
    -(1UL << PM_FLAGS_SHIFT)): the wrong shift borrows from the refcount into
    the removal bit."""
    page = t["fio_page"]
    m.touch(page, "pm_put_page")
    ts = m.pg(page, "tslot")
    if ts == 0:
        raise Violation("kernel-assert", f"pm_put_page: page {page} has no pg_tree_slot")
    if ts == TSLOT_POISON:
        raise Violation("kernel-assert", f"pm_put_page: page {page}'s pg_tree_slot is poison")
    i = ts - 1
    # MUTATION: PM_FLAGS_SHIFT instead of PM_REFCNT_SHIFT (a plain atomic_add, mod 2**bits)
    m.set_slot(i, (m.slot(i) - (1 << flags_shift(m.bits))) % (1 << m.bits))
    if t["holds"] != i + 1:
        raise Violation("refcount-accurate", f"pm_put_page on slot {i} without holding a ref")
    t["holds"] = 0
    t.ret("file_io")
    return None


def readpage_no_copy(m: Machine, t: ThreadView) -> object:
    """pm_load_page's readpage sets PG_UPTODATE without filling the frame."""
    page = t["load_page"]
    m.touch(page, "readpage")
    # MUTATION: the copy of the backing store into the page is missing
    flags = m.pg(page, "flags") | PG_UPTODATE
    m.set_pg(page, "flags", flags)
    t.call("unlock_page.clear_locked", "pm_load_page.done", ul_page=page)
    return None


def readpage_no_uptodate(m: Machine, t: ThreadView) -> object:
    """pm_load_page's readpage fills the frame but never sets PG_UPTODATE."""
    page, i = t["load_page"], t["load_index"]
    m.touch(page, "readpage")
    m.set_pg(page, "data", m.store(i))
    flags = m.pg(page, "flags")  # MUTATION: no | PG_UPTODATE
    m.set_pg(page, "flags", flags)
    if not flags & PG_UPTODATE:
        raise Violation("kernel-assert", "pm_load_page: page not up to date after readpage")
    t.call("unlock_page.clear_locked", "pm_load_page.done", ul_page=page)
    return None


# -- kthread.c: lock_page / unlock_page --------------------------------------------------


def lock_page_no_sleep(m: Machine, t: ThreadView) -> object:
    """lock_page without sem_down: it goes straight to setting PG_LOCKED."""
    page = t["lp_page"]
    m.touch(page, "lock_page")
    t.goto("lock_page.set_locked")  # MUTATION: the semaphore is ignored
    return None


def unlock_page_no_sem_up(m: Machine, t: ThreadView) -> object:
    """unlock_page clears PG_LOCKED but forgets sem_up(&page->pg_sem)."""
    page = t["ul_page"]
    m.touch(page, "unlock_page")
    # MUTATION: no sem_up: a sleeper in lock_page is never woken
    t.ret("unlock_page")
    return None


# -- mm.c: __handle_page_fault -------------------------------------------------------------


def hpf_write_pte_drops_dirty(m: Machine, t: ThreadView) -> object:
    """__handle_page_fault writes the PTE without preserving the old PTE_D."""
    v, k = t["hpf_vmr"], t["hpf_k"]
    old = m.pte(v, k)
    if old & PTE_P:
        t.goto("handle_page_fault.spurious_unlock")
        return None
    vmr = m.cfg.vmrs[v]
    prot = PTE_USER_RW if vmr.vm_prot & PROT_WRITE else PTE_USER_RO
    # MUTATION: no pte_prot |= (*pte & PTE_D)
    m.set_pte(v, k, m.c.make_pte(t["hpf_page"], PTE_P | prot))
    t.goto("handle_page_fault.unlock_pte")
    return None


def hpf_loaded_put_first(m: Machine, t: ThreadView) -> object:
    """__handle_page_fault, shared mapping: go to pm_put_page first."""
    t["hpf_page"] = t["rv"]
    t["rv"] = 0
    if m.cfg.vmrs[t["hpf_vmr"]].vm_flags & MAP_PRIVATE:
        t.goto("handle_page_fault.private_alloc")
    else:
        t.goto("handle_page_fault.put")  # MUTATION: the put comes before the PTE
    return None


def hpf_put_first(m: Machine, t: ThreadView) -> object:
    """pm_put_page(a_page), then on to spin_lock(&p->pte_lock)."""
    put_slot_ref(m, t, t["hpf_page"])
    t.goto("handle_page_fault.lock_pte")  # MUTATION: the PTE is written after the put
    return None


def hpf_unlock_pte_no_put(m: Machine, t: ThreadView) -> object:
    """spin_unlock(&p->pte_lock); the slot reference was dropped already."""
    _unlock(m, t, "pte_lock")
    page = t["hpf_page"]
    m.touch(page, "handle_page_fault")
    t.goto("handle_page_fault.unlock_vmr")  # MUTATION: put moved before lock_pte
    return None


def hpf_spurious_put_moved(m: Machine, t: ThreadView) -> object:
    """The spurious path of the same mutant: a page-map page was put already."""
    page = t["hpf_page"]
    m.touch(page, "__put_page")
    if not m.pg(page, "flags") & PG_PAGEMAP:
        page_decref(m, page, "__put_page")
    t.goto("handle_page_fault.unlock_vmr")
    return None


# -- mm.c: __do_munmap ---------------------------------------------------------------------


def mu_lock_pte1_skipped(m: Machine, t: ThreadView) -> object:
    """__do_munmap pass 1 without spin_lock(&p->pte_lock)."""
    t["mu_k"] = 0
    t.goto("munmap.p1_read")  # MUTATION: no pte_lock
    return None


def mu_unlock_pte1_skipped(m: Machine, t: ThreadView) -> object:
    t.goto("munmap.shootdown" if t["mu_needed"] else "munmap.lock_pte2")  # MUTATION: no unlock
    return None


def mu_lock_pte2_skipped(m: Machine, t: ThreadView) -> object:
    """__do_munmap pass 2 (__vmr_free_pgs) without spin_lock(&p->pte_lock)."""
    t["mu_k"] = 0
    t.goto("munmap.p2_read")  # MUTATION: no pte_lock
    return None


def mu_unlock_pte2_skipped(m: Machine, t: ThreadView) -> object:
    t.call("pm_remove_vmr.lock", "munmap.unlock_vmr", rmv_vmr=t["mu_vmr"])  # MUTATION: no unlock
    return None


# -- vfs.c: generic_file_write -------------------------------------------------------------


def fio_dirty_skipped(m: Machine, t: ThreadView) -> object:
    """generic_file_write copies into the page but never sets PG_DIRTY."""
    page = t["fio_page"]
    m.touch(page, "generic_file_write")
    # MUTATION: no atomic_or(&page->pg_flags, PG_DIRTY)
    t.goto("file_io.put")
    return None


# -- pagemap.c: pm_remove_contig ----------------------------------------------------------


def rm_swap_ignored(m: Machine, t: ThreadView) -> object:
    """pm_remove_contig ignores what atomic_swap(&pm->pm_removal, 1) returned."""
    if t["rm_nr"] == 0:
        t.ret("pm_remove_contig", 0)
        return None
    m.set("pm_removal", 1)  # MUTATION: a second remover goes on as well
    t.goto("pm_remove_contig.lock")
    return None


def rm_lock_no_pinned_scan(m: Machine, t: ThreadView) -> object:
    """pm_remove_contig never sets pm_has_pinned_vmrs (the MAP_LOCKED scan is lost)."""
    if not pm_lock(m, t):
        return BLOCKED
    t["rm_pinned"] = 0  # MUTATION: MAP_LOCKED VMRs are not looked for
    t["rm_i"] = t["rm_index"]
    t.goto("pm_remove_contig.mark_read")
    return None


def rm_mark_read_ignores_refcnt(m: Machine, t: ThreadView) -> object:
    """The mark pass marks a page whose slot refcount is not 0."""
    i = t["rm_i"]
    while i < _end(t):
        pe = _pinned_end(m, t, i)
        if pe is None:
            break
        i = pe
    if i >= _end(t):
        _mark_done(t)
        return None
    old, page = _slot_page(m, i)
    if page is None:  # MUTATION: no `|| pm_slot_check_refcnt(slot_val)`
        _mark_next(m, t, i)
        return None
    t["rm_i"] = i
    t["rm_old"] = old
    t["rm_new"] = m.c.pm_slot_set_removal(old, m.bits)
    t["rm_page"] = page
    t.goto("pm_remove_contig.mark_cas")
    return None


def sd_send_no_shootdown(m: Machine, t: ThreadView) -> object:
    """shootdown_and_reset_ptrstore resets the batch without proc_tlbshootdown."""
    j = t["sd_j"]
    # MUTATION: proc_tlbshootdown(ptr_store[i], 0, 0) is not called (so there
    # is no flush to wait for either)
    if j + 1 < t["rm_n"]:
        t["sd_j"] = j + 1
    else:
        _sd_finish(t)
    return None


def rm_p3_dirty_no_fold(m: Machine, t: ThreadView) -> object:
    """__pm_mark_dirty_pgs_unmap sees PTE_D but does not set PG_DIRTY."""
    page = pte2ppn(t["rm_pte"])
    m.touch(page, "pm_remove_contig folds PTE_D")
    # MUTATION: no atomic_or(&page->pg_flags, PG_DIRTY)
    if m.cfg.fix("atomic-pte-update"):
        _next_pte(t, "pm_remove_contig.p3_read", "pm_remove_contig.p3_unlock")
    else:
        t.goto("pm_remove_contig.p3_zero")
    return None


def rm_dirty_test_no_writeback(m: Machine, t: ThreadView) -> object:
    """The dirty loop clears PG_DIRTY but never queues the page for writepage."""
    page = t["rm_page"]
    m.touch(page, "pm_remove_contig")
    if not m.pg(page, "flags") & PG_DIRTY:
        _dirty_next(t)
        return None
    if t["rm_n"] == m.cfg.ptr_arr_len:
        t["rm_page"] = 0
        t.goto("pm_remove_contig.dirty_unlock")
        return None
    # MUTATION: no ptr_store[ptr_free_idx++] = page
    t.goto("pm_remove_contig.dirty_clean")
    return None


def rm_relock_no_restart(m: Machine, t: ThreadView) -> object:
    """After writeback, pm_remove_contig forgets `if (i < index + nr_pgs)
    goto handle_dirty` and goes on to the final loop."""
    if not pm_lock(m, t):
        return BLOCKED
    # MUTATION: no restart of the dirty loop where it broke off
    t["rm_i"] = t["rm_index"]
    t.goto("pm_remove_contig.final_read")
    return None


def rm_final_read_ignores_slot_removal(m: Machine, t: ThreadView) -> object:
    """The final loop does not re-check the slot's removal flag: a page a
    lookup took since the mark pass is removed anyway."""
    i = t["rm_i"]
    if i >= _end(t):
        t.goto("pm_remove_contig.final_unlock")
        return None
    old, page = _slot_page(m, i)
    if page is None or not _marked(m, page):
        _final_next(t)
        return None
    t["rm_page"] = page
    # MUTATION: no `if (!pm_slot_check_removal(slot_val))` unmark-and-continue
    if m.c.pm_slot_check_refcnt(old, m.bits):
        m.note("warn: Unexpected refcnt in PM remove!")
    t["rm_old"] = old
    t["rm_new"] = m.c.pm_slot_set_page_null(old, m.bits)
    t.goto("pm_remove_contig.final_cas")
    return None


def rm_final_delete_skipped(m: Machine, t: ThreadView) -> object:
    """The final loop forgets radix_delete(&pm->pm_tree, i)."""
    # MUTATION: the slot keeps pm_slot_set_page(old, 0)
    _final_next(t)
    return None


def rm_final_unlock_no_count(m: Machine, t: ThreadView) -> object:
    """pm_remove_contig forgets pm->pm_num_pages -= nr_removed."""
    # MUTATION: pm_num_pages unchanged
    pm_unlock(m, t)
    t.goto("pm_remove_contig.done")
    return None


# -- survivors: mutations no scenario kills, argued in spec/mutations.md ------------------------


def rm_mark_cas_blind(m: Machine, t: ThreadView) -> object:
    """The mark pass stores set_removal(old) without the CAS."""
    m.set_slot(t["rm_i"], t["rm_new"])  # MUTATION: no compare with old_slot_val
    t.goto("pm_remove_contig.mark_page")
    return None


def rm_final_cas_blind(m: Machine, t: ThreadView) -> object:
    """The final loop stores pm_slot_set_page(old, 0) without the CAS."""
    m.set_slot(t["rm_i"], t["rm_new"])  # MUTATION: no compare with old_slot_val
    t.goto("pm_remove_contig.final_zero_flags")
    return None


def fio_copy_dirty_first(m: Machine, t: ThreadView) -> object:
    """generic_file_write sets PG_DIRTY before the copy (file_io.dirty then copies)."""
    page = t["fio_page"]
    if t["fio_write"]:
        m.touch(page, "generic_file_write")
        m.set_pg(page, "flags", m.pg(page, "flags") | PG_DIRTY)  # MUTATION: dirty first
        t.goto("file_io.dirty")
    else:
        m.touch(page, "generic_file_read copy")
        t.goto("file_io.put")
    return None


def fio_dirty_then_copy(m: Machine, t: ThreadView) -> object:
    """... and the copy comes second."""
    page, i = t["fio_page"], t["fio_index"]
    m.touch(page, "generic_file_write copy")
    value = write_value(t)
    m.set_pg(page, "data", value)
    m.set_last(i, value)
    t.goto("file_io.put")
    return None


def rm_dirty_no_recheck(m: Machine, t: ThreadView) -> object:
    """The handle_dirty loop does not re-check the slot's removal flag."""
    t.goto("pm_remove_contig.dirty_test")  # MUTATION: no pm_slot_check_removal
    return None


def rm_dirty_unmark_skipped(m: Machine, t: ThreadView) -> object:
    """The handle_dirty loop sees a cleared slot flag but keeps PG_REMOVAL."""
    _dirty_next(t)  # MUTATION: no atomic_and(~PG_REMOVAL)
    return None


def rm_final_unmark_skipped(m: Machine, t: ThreadView) -> object:
    """The final loop skips a page it lost to a lookup but keeps its PG_REMOVAL."""
    _final_next(t)  # MUTATION: no atomic_and(~PG_REMOVAL)
    return None


def rm_final_zero_flags_skipped(m: Machine, t: ThreadView) -> object:
    """The final loop frees the page without atomic_set(&pg_flags, 0)."""
    t.goto("pm_remove_contig.final_decref")  # MUTATION: flags kept
    return None


def rm_mark_page_skipped(m: Machine, t: ThreadView) -> object:
    """The mark pass sets the slot's removal flag but not PG_REMOVAL."""
    _mark_next(m, t, t["rm_i"])  # MUTATION: no atomic_or(PG_REMOVAL)
    return None


@dataclass(frozen=True)
class Survivor:
    """A mutation no scenario kills, and why (spec/mutations.md)."""

    name: str
    description: str
    replace: Mapping[str, StepFn] = field(compare=False)
    kind: str  # "equivalent": no run can tell; "liveness": only progress differs
    reason: str


def _s(name: str, description: str, replace: dict[str, StepFn], kind: str,
       reason: str) -> Survivor:
    return Survivor(name, description, MappingProxyType(replace), kind, reason)


SURVIVORS: dict[str, Survivor] = {s.name: s for s in [
    _s("fault-drops-dirty",
       "__handle_page_fault writes the PTE without preserving the old PTE_D",
       {"handle_page_fault.write_pte": hpf_write_pte_drops_dirty}, "equivalent",
       "a PTE is !P with PTE_D only between the remover's pass 2 and pass 3, which run "
       "under pm_lock; the fault's pm_find_page needs pm_lock, so it cannot refill such "
       "a PTE (killed once lookups may run in that window: LOCKLESS_WINDOW)"),
    _s("mark-blind-store",
       "the mark pass replaces atomic_cas_ptr with a plain store",
       {"pm_remove_contig.mark_cas": rm_mark_cas_blind}, "equivalent",
       "the remover marks only a slot with refcount 0 and holds pm_lock: no holder can "
       "pm_put_page and no lookup can CAS, so the word cannot change between read and store"),
    _s("final-cas-blind-store",
       "the final loop replaces atomic_cas_ptr with a plain store",
       {"pm_remove_contig.final_cas": rm_final_cas_blind}, "equivalent",
       "a slot still flagged for removal has refcount 0 (removal-unreferenced) and "
       "pm_lock is held: nobody else can write the word"),
    _s("file-write-dirty-before-copy",
       "generic_file_write sets PG_DIRTY before copying into the page",
       {"file_io.copy": fio_copy_dirty_first, "file_io.dirty": fio_dirty_then_copy},
       "equivalent",
       "the writer holds a slot reference across both; the remover clears PG_DIRTY only "
       "of pages whose slot is still flagged, i.e. with no holder"),
    _s("dirty-no-recheck",
       "the handle_dirty loop does not re-check the slot's removal flag",
       {"pm_remove_contig.dirty_recheck": rm_dirty_no_recheck}, "equivalent",
       "it only adds writebacks (clear PG_DIRTY, then write the current data); the final "
       "loop re-checks the flag before it frees anything"),
    _s("dirty-unmark-skipped",
       "the handle_dirty loop leaves PG_REMOVAL on a page it lost to a lookup",
       {"pm_remove_contig.dirty_unmark": rm_dirty_unmark_skipped}, "equivalent",
       "the final loop makes the same test and clears PG_REMOVAL itself"),
    _s("final-unmark-skipped",
       "the final loop leaves PG_REMOVAL on a page it lost to a lookup",
       {"pm_remove_contig.final_unmark": rm_final_unmark_skipped}, "equivalent",
       "a stale PG_REMOVAL only makes the next remover's passes 2/3 unmap the page's "
       "PTEs (folding PTE_D): safe for a page-map page; its loops re-check the slot flag"),
    _s("final-zero-flags-skipped",
       "the final loop frees the page without atomic_set(&page->pg_flags, 0)",
       {"pm_remove_contig.final_zero_flags": rm_final_zero_flags_skipped}, "equivalent",
       "a debugging aid: the allocator resets pg_flags, and any access to the freed page "
       "is no-use-after-free already"),
    _s("mark-page-skipped",
       "the mark pass sets the slot's removal flag but forgets atomic_or(PG_REMOVAL)",
       {"pm_remove_contig.mark_page": rm_mark_page_skipped}, "liveness",
       "every later phase skips pages without PG_REMOVAL, so nothing is removed: a "
       "removal that removes nothing is allowed by every safety invariant"),
]}


# -- a context, not a mutation: lookups in the window between pass 2 and pass 3 ----------------


def rm_p3_start_unlocked(m: Machine, t: ThreadView) -> object:
    """pm_remove_contig drops pm_lock after the pass 2 shootdown (as an RCU
    lookup in pm_find_page would not wait for it) ..."""
    pm_unlock(m, t)
    t["rm_j"] = 1  # rm_j is otherwise 0 here: marks "retake the lock for pass 3"
    t.goto("pm_remove_contig.lock")
    return None


def rm_lock_window(m: Machine, t: ThreadView) -> object:
    """... and retakes it for pass 3 (rm_j = 1), or takes it at entry as usual."""
    if not pm_lock(m, t):
        return BLOCKED
    if t["rm_j"] == 1:
        t["rm_j"] = 0
        t["rm_vmr"] = 0
        t.goto("pm_remove_contig.p3_vmr")
        return None
    t["rm_pinned"] = int(
        any(m.on_pm(v) and vmr.vm_flags & MAP_LOCKED for v, vmr in enumerate(m.cfg.vmrs))
    )
    t["rm_i"] = t["rm_index"]
    t.goto("pm_remove_contig.mark_read")
    return None


#: The race the C comment above __pm_mark_not_present describes ({remover
#: marks !P, fault finds the page and rewrites the PTE, remover clears the
#: PTE}) needs a lookup between pass 2 and pass 3.  At the commit
#: pm_find_page takes pm_lock, which the remover holds there; this context
#: opens that window, as the RCU lookup the code plans for would.
LOCKLESS_WINDOW: Mapping[str, StepFn] = MappingProxyType({
    "pm_remove_contig.p3_start": rm_p3_start_unlocked,
    "pm_remove_contig.lock": rm_lock_window,
})


def _m(name: str, description: str, replace: dict[str, StepFn], scenario: str,
       invariant: str) -> Mutation:
    return Mutation(name, description, MappingProxyType(replace), scenario, invariant)


_ALL = [
    _m("find-keeps-removal",
       "pm_find_page's CAS installs inc_refcnt(old) without pm_slot_clear_removal: a lookup "
       "during removal leaves the slot marked while it holds a reference",
       {"pm_find_page.cas": find_cas_keeps_removal},
       "read-vs-remove", "removal-unreferenced"),
    _m("find-plain-store",
       "pm_find_page replaces atomic_cas_ptr with a plain store of inc(clear(old)): a "
       "concurrent pm_put_page between the read and the store is undone",
       {"pm_find_page.cas": find_plain_store},
       "two-readers", "refcount-accurate"),
    _m("find-without-pm-lock",
       "pm_find_page walks the tree and CASes the slot without pm_lock: it can read the "
       "pm_slot_set_page(old, 0) word the final loop leaves before radix_delete",
       {"pm_find_page.lock": find_lock_skipped, "pm_find_page.unlock": find_unlock_skipped},
       "read-vs-remove", "no-use-after-free"),
    _m("insert-no-count",
       "pm_insert_page forgets pm->pm_num_pages++",
       {"pm_insert_page.unlock": insert_unlock_no_count},
       "load-write-remove-load", "pm-count"),
    _m("put-wrong-shift",
       "pm_put_page subtracts 1UL << PM_FLAGS_SHIFT instead of 1UL << PM_REFCNT_SHIFT: the "
       "borrow sets the removal bit of a slot that still has references",
       {"file_io.put": put_wrong_shift},
       "two-readers", "removal-unreferenced"),
    _m("readpage-no-copy",
       "pm_load_page's readpage sets PG_UPTODATE without copying the backing store into "
       "the frame (the page keeps whatever kpage_alloc left in it)",
       {"pm_load_page.readpage": readpage_no_copy},
       "two-loaders", "no-lost-write"),
    _m("readpage-no-uptodate",
       "readpage fills the frame but never sets PG_UPTODATE: the assert after readpage fires",
       {"pm_load_page.readpage": readpage_no_uptodate},
       "load-write-remove-load", "kernel-assert"),
    _m("lock-page-no-sleep",
       "lock_page skips sem_down(&page->pg_sem) and sets PG_LOCKED on a page another "
       "loader holds locked",
       {"lock_page.sem_down": lock_page_no_sleep},
       "two-loaders", "kernel-assert"),
    _m("unlock-page-no-sem-up",
       "unlock_page clears PG_LOCKED but forgets sem_up: a loader asleep in lock_page "
       "never wakes",
       {"unlock_page.sem_up": unlock_page_no_sem_up},
       "two-loaders", "deadlock"),
    _m("fault-put-before-pte",
       "__handle_page_fault calls pm_put_page(a_page) before it takes pte_lock and stores "
       "the PTE: the remover can free the page the PTE then names",
       {"handle_page_fault.loaded": hpf_loaded_put_first,
        "handle_page_fault.put": hpf_put_first,
        "handle_page_fault.unlock_pte": hpf_unlock_pte_no_put,
        "handle_page_fault.spurious_put": hpf_spurious_put_moved},
       "fault-write-remove", "no-use-after-free"),
    _m("munmap-no-pte-lock",
       "__do_munmap walks and zeroes the PTEs without p->pte_lock: the remover's pass 3 "
       "sees the PTE already zeroed before munmap folded its PTE_D into PG_DIRTY",
       {"munmap.lock_pte1": mu_lock_pte1_skipped, "munmap.unlock_pte1": mu_unlock_pte1_skipped,
        "munmap.lock_pte2": mu_lock_pte2_skipped, "munmap.unlock_pte2": mu_unlock_pte2_skipped},
       "munmap-vs-remove", "no-lost-write"),
    _m("file-write-no-dirty",
       "generic_file_write copies into the page but never sets PG_DIRTY: the remover frees "
       "it without writepage",
       {"file_io.dirty": fio_dirty_skipped},
       "load-write-remove-load", "no-lost-write"),
    _m("remove-two-removers",
       "pm_remove_contig ignores the old value of atomic_swap(&pm->pm_removal, 1): a second "
       "remover runs while the first has dropped pm_lock for writeback",
       {"pm_remove_contig.swap": rm_swap_ignored},
       "two-removers", "no-lost-write"),
    _m("remove-ignores-pinned",
       "pm_remove_contig never sets pm_has_pinned_vmrs: pages of a MAP_LOCKED VMR are "
       "marked and freed, while passes 2 and 3 skip that VMR's PTEs",
       {"pm_remove_contig.lock": rm_lock_no_pinned_scan},
       "pinned", "no-use-after-free"),
    _m("mark-ignores-refcnt",
       "the mark pass drops `if (pm_slot_check_refcnt(slot_val)) continue`: a slot with "
       "references gets the removal flag",
       {"pm_remove_contig.mark_read": rm_mark_read_ignores_refcnt},
       "read-vs-remove", "removal-unreferenced"),
    _m("remove-no-shootdown",
       "shootdown_and_reset_ptrstore resets the batch without calling proc_tlbshootdown: "
       "a TLB entry keeps mapping the page the remover frees",
       {"shootdown_and_reset.send": sd_send_no_shootdown},
       "fault-write-remove", "no-use-after-free"),
    _m("pass3-no-fold-dirty",
       "__pm_mark_dirty_pgs_unmap zeroes a PTE with PTE_D set without atomic_or(PG_DIRTY): "
       "a store through the mapping is never written back",
       {"pm_remove_contig.p3_dirty": rm_p3_dirty_no_fold},
       "fault-write-remove", "no-lost-write"),
    _m("dirty-no-writeback",
       "the handle_dirty loop clears PG_DIRTY but never puts the page in ptr_store, so "
       "writepage is not called for it",
       {"pm_remove_contig.dirty_test": rm_dirty_test_no_writeback},
       "load-write-remove-load", "no-lost-write"),
    _m("dirty-no-restart",
       "after writeback pm_remove_contig forgets `if (i < index + nr_pgs) goto handle_dirty`:"
       " dirty pages after a full ptr_store are freed unwritten",
       {"pm_remove_contig.relock": rm_relock_no_restart},
       "restart", "no-lost-write"),
    _m("final-ignores-slot-removal",
       "the final loop does not re-check pm_slot_check_removal(slot_val): a page a lookup "
       "took after the mark pass is removed under the lookup's reference",
       {"pm_remove_contig.final_read": rm_final_read_ignores_slot_removal},
       "read-vs-remove", "refcount-accurate"),
    _m("final-no-radix-delete",
       "the final loop forgets radix_delete: the slot keeps pm_slot_set_page(old, 0), "
       "whose ppn field is page2ppn(NULL), and the next lookup decodes it as a page",
       {"pm_remove_contig.final_delete": rm_final_delete_skipped},
       "load-write-remove-load", "no-use-after-free"),
    _m("remove-no-num-pages",
       "pm_remove_contig forgets pm->pm_num_pages -= nr_removed",
       {"pm_remove_contig.final_unlock": rm_final_unlock_no_count},
       "load-write-remove-load", "pm-count"),
]

MUTATIONS: dict[str, Mutation] = {mu.name: mu for mu in _ALL}


def run(replace: Mapping[str, StepFn] | None, scenario: str, word_bits: int = 64,
        max_states: int = 200_000) -> Outcome:
    """Explore ``scenario`` (a stem in tests/mutation_scenarios) on the fixed
    variant with the steps in ``replace`` replaced (None: the real program)."""
    cfg = load(SCENARIO_DIR / f"{scenario}.toml", variant="fixed", word_bits=word_bits)
    return Explorer(cfg, replace=dict(replace or {})).explore(max_states=max_states,
                                                             progress=False)


def scenarios() -> list[str]:
    """Every scenario of tests/mutation_scenarios, by stem."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def table() -> str:
    """The tables of spec/mutations.md, from fresh runs (64-bit; 32-bit states in brackets)."""
    rows = ["| mutation | what it breaks (C) | killing scenario | invariant | states |",
            "| --- | --- | --- | --- | --- |"]
    for mu in MUTATIONS.values():
        outs = [run(mu.replace, mu.scenario, bits) for bits in (64, 32)]
        got = {o.invariant if o.verdict == "violation" else o.verdict for o in outs}
        inv = mu.invariant if got == {mu.invariant} else f"NOT KILLED: {sorted(map(str, got))}"
        rows.append(f"| `{mu.name}` | {mu.description} | `{mu.scenario}` | `{inv}` | "
                    f"{outs[0].states:,} ({outs[1].states:,}) |")
    rows += ["", "| scenario | states, unmutated fixed (64-bit) | seconds |", "| --- | --- | --- |"]
    for stem in scenarios():
        out = run(None, stem)
        rows.append(f"| `{stem}` | {out.states:,} {out.verdict} | {out.seconds:.2f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())

"""The invariants of DESIGN §3, checked on every state the explorer reaches.

Some are checked inside steps, where the violating access happens
(``Machine.touch`` for accesses to freed pages, the lost-write check when the
remover frees a page, the kernel's asserts); the ones here are properties of a
single state.
"""

from __future__ import annotations

from pagemap.codec import make_codec
from pagemap.machine import DONE_PC, Layout, Machine, Violation, tlb_ppn
from pagemap.pageflags import pte2ppn

# The invariants are the checker's own judgement, not the model under test:
# they decode slot words with the undecorated codec (same code, no checks).
_RAW = make_codec(contracts=False)
pm_slot_check_refcnt = _RAW.pm_slot_check_refcnt
pm_slot_check_removal = _RAW.pm_slot_check_removal
pm_slot_get_page = _RAW.pm_slot_get_page

#: Stable invariant ids (DESIGN §3).  The traceability test checks that each
#: appears in spec/.
INVARIANTS = {
    "no-use-after-free": "no access, PTE, TLB entry, slot or held reference reaches a freed page",
    "no-lost-write": "at quiescence the last value written to each file page is in its cached "
    "page or, if uncached, in the backing store; no page is freed holding data the store lacks",
    "refcount-accurate": "a slot's refcount equals the number of threads holding a reference "
    "through it",
    "removal-unreferenced": "a slot with the removal flag set has refcount 0",
    "pm-count": "pm_num_pages equals the number of pages present in the map (when pm_lock is free)",
    "kernel-assert": "an assert of the C code would fire",
    "contract": "an icontract condition failed",
    "deadlock": "some thread unfinished, none can step",
}


def _pool_page(m: Machine, w: int) -> int | None:
    """The pool page a slot word names, or None (empty, or the transient word
    pm_slot_set_page(old, NULL) leaves before radix_delete, whose ppn field is
    not a real page: see spec/slot.md)."""
    page = pm_slot_get_page(w, m.bits)
    if page is None or not m.in_pool(page):
        return None
    return page


def check_state(layout: Layout, state: tuple[int, ...]) -> Violation | None:
    m = Machine(layout, state)
    cfg = layout.cfg
    holders = [0] * cfg.file_pages
    for t in range(len(cfg.threads)):
        h = m.thread(t)["holds"]
        if h:
            holders[h - 1] += 1
    occupied = 0
    for i in range(cfg.file_pages):
        w = m.slot(i)
        page = _pool_page(m, w)
        if page is None:
            if holders[i]:
                return Violation("refcount-accurate", f"a thread holds a ref on empty slot {i}")
            continue
        occupied += 1
        if m.page_free(page):
            return Violation("no-use-after-free", f"slot {i} names freed page {page}")
        count = pm_slot_check_refcnt(w, m.bits)
        if count != holders[i]:
            return Violation(
                "refcount-accurate", f"slot {i} counts {count} refs, {holders[i]} thread(s) hold one"
            )
        if pm_slot_check_removal(w, m.bits) and count:
            return Violation("removal-unreferenced", f"slot {i} has REMOVAL set and count {count}")
    if m.get("pm_lock") == 0 and m.get("pm_num_pages") != occupied:
        return Violation(
            "pm-count", f"pm_num_pages = {m.get('pm_num_pages')}, {occupied} page(s) in the map"
        )
    for v, vmr in enumerate(cfg.vmrs):
        for k in range(vmr.npages):
            pte = m.pte(v, k)
            if pte and m.in_pool(pte2ppn(pte)) and m.page_free(pte2ppn(pte)):
                return Violation(
                    "no-use-after-free", f"{vmr.name}+{k}'s PTE names freed page {pte2ppn(pte)}"
                )
    for (t, v), base in layout.tlb0.items():
        for k in range(cfg.vmrs[v].npages):
            e = m.v[base + k]
            if e and m.page_free(tlb_ppn(e)):
                return Violation(
                    "no-use-after-free",
                    f"{cfg.threads[t].name}'s TLB maps {cfg.vmrs[v].name}+{k} to freed page "
                    f"{tlb_ppn(e)}",
                )
    if all(m.thread(t)["pc"] == DONE_PC for t in range(len(cfg.threads))):
        return check_quiescent(m)
    return None


def check_quiescent(m: Machine) -> Violation | None:
    """no-lost-write at quiescence: every file page's last write survives."""
    for i in range(m.cfg.file_pages):
        last = m.last(i)
        page = _pool_page(m, m.slot(i))
        where, value = (f"cached page {page}", m.pg(page, "data")) if page else (
            "backing store", m.store(i))
        if value != last:
            return Violation(
                "no-lost-write", f"file page {i}: last write {last}, but {where} holds {value}"
            )
    return None

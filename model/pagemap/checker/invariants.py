"""The invariants of spec/invariants.md, checked on every state the explorer reaches.

Some are checked inside steps, where the violating access happens
(``Machine.touch`` for accesses to freed pages, the lost-write check when the
remover frees a page, the kernel's asserts); the ones here are properties of a
single state.
"""

from __future__ import annotations

from pagemap.machine import DONE_PC, Layout, Violation, tlb_ppn
from pagemap.pageflags import PGSHIFT
from pagemap.slot import flags_shift, refcnt_shift

#: Stable invariant ids (spec/invariants.md).  The traceability test checks that each
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
    "sleep-holding-spinlock": "a thread sleeps (sem_down: lock_page, a blocking readpage) "
    "while it holds a spinlock",
    "livelock": "a thread can go on forever without finishing and without any other "
    "thread's help",
    "removal-effective": "when pm_remove_contig returns, every page of its range that nothing "
    "referenced, pinned or reloaded while it ran is gone from the page map",
}


class _Plan:
    """Offsets into the state vector, computed once per layout: the per-state
    check reads the tuple directly (it runs on every state).  The invariants
    are the checker's own judgement, not the model under test, so they decode
    slot words with plain bit arithmetic, not the contracted codec."""

    def __init__(self, layout: Layout) -> None:
        cfg = layout.cfg
        self.n = cfg.file_pages
        self.pool = cfg.pool_pages
        self.slot0 = layout.slot0
        self.holds = [b + layout.fixed_reg["holds"] for b in layout.thread0]
        self.pcs = list(layout.thread0)
        self.kref = [0] + [layout.page_off(p, "kref") for p in range(1, cfg.pool_pages + 1)]
        self.pm_lock = layout.off["pm_lock"]
        self.num_pages = layout.off["pm_num_pages"]
        self.mask = (1 << flags_shift(cfg.word_bits)) - 1
        self.rshift = refcnt_shift(cfg.word_bits)
        self.removal = 1 << flags_shift(cfg.word_bits)
        self.ptes = [
            (off, f"{cfg.processes[p].name}'s PTE of {layout.page_name(p, vpn)}")
            for p, offs in enumerate(layout.pte_off) for vpn, off in offs.items()
        ]
        self.store0 = layout.store0
        self.last0 = layout.last0
        self.data = [0] + [layout.page_off(p, "data") for p in range(1, cfg.pool_pages + 1)]
        self.tlbs = [
            (off, f"core {cfg.cores[c].name}'s TLB maps {layout.page_name(cfg.cores[c].proc, vpn)}")
            for c, offs in enumerate(layout.tlb_off) for vpn, off in offs.items()
        ]


def _plan(layout: Layout) -> _Plan:
    plan = layout.invariant_plan
    if not isinstance(plan, _Plan):
        plan = layout.invariant_plan = _Plan(layout)
    return plan


def check_state(layout: Layout, state: tuple[int, ...]) -> Violation | None:
    """The single-state invariants, on the raw tuple (see _Plan)."""
    P = _plan(layout)
    s = state
    holders = [0] * P.n
    for off in P.holds:
        h = s[off]
        if h:
            holders[h - 1] += 1
    kref = P.kref
    pool = P.pool
    occupied = 0
    for i in range(P.n):
        w = s[P.slot0 + i]
        page = w & P.mask
        if w == 0 or not 1 <= page <= pool:
            if holders[i]:
                return Violation("refcount-accurate", f"a thread holds a ref on empty slot {i}")
            continue
        occupied += 1
        if s[kref[page]] == 0:
            return Violation("no-use-after-free", f"slot {i} names freed page {page}")
        count = w >> P.rshift
        if count != holders[i]:
            return Violation(
                "refcount-accurate", f"slot {i} counts {count} refs, {holders[i]} thread(s) hold one"
            )
        if w & P.removal and count:
            return Violation("removal-unreferenced", f"slot {i} has REMOVAL set and count {count}")
    if s[P.pm_lock] == 0 and s[P.num_pages] != occupied:
        return Violation(
            "pm-count", f"pm_num_pages = {s[P.num_pages]}, {occupied} page(s) in the map"
        )
    for off, what in P.ptes:
        pte = s[off]
        if pte:
            ppn = pte >> PGSHIFT
            if 1 <= ppn <= pool and s[kref[ppn]] == 0:
                return Violation("no-use-after-free", f"{what} names freed page {ppn}")
    for off, what in P.tlbs:
        e = s[off]
        if e and s[kref[tlb_ppn(e)]] == 0:
            return Violation("no-use-after-free", f"{what} to freed page {tlb_ppn(e)}")
    for off in P.pcs:
        if s[off] != DONE_PC:
            return None
    return check_quiescent(P, s)


def check_quiescent(P: _Plan, s: tuple[int, ...]) -> Violation | None:
    """no-lost-write at quiescence: every file page's last write survives.

    A slot whose word names no pool page (empty, or the transient word
    pm_slot_set_page(old, NULL) leaves before radix_delete: spec/slot.md) is
    uncached: the backing store must hold the last write."""
    for i in range(P.n):
        last = s[P.last0 + i]
        w = s[P.slot0 + i]
        page = w & P.mask
        if w and 1 <= page <= P.pool:
            where, value = f"cached page {page}", s[P.data[page]]
        else:
            where, value = "backing store", s[P.store0 + i]
        if value != last:
            return Violation(
                "no-lost-write", f"file page {i}: last write {last}, but {where} holds {value}"
            )
    return None

"""What the C code assumes at the entry and exit of its functions, as predicates
over a Machine and a thread, for the icontract conditions on the steps
(contracts are the spec in the code: spec/model.md).

Each modelled C function's first step carries ``@icontract.require`` (what the
caller must have established) and the steps through which it returns carry
``@icontract.ensure`` (what it guarantees); ``result is BLOCKED`` means the
step did not run, so an ensure holds vacuously then.  The predicates read
the state directly, never through the model's own helpers for the same
thing, so that a contract is a second statement of the protocol, not a copy of
the step it guards.  With ``--contracts off`` the steps run without them
(pagemap.machine.Layout).
"""

from __future__ import annotations

from pagemap.machine import BLOCKED, Machine, ThreadView
from pagemap.pageflags import PGSHIFT, PTE_P
from pagemap.slot import slot_check_refcnt, slot_check_removal, slot_is_null, slot_page_field
from pagemap.word import int_word


def blocked(result: object) -> bool:
    return result is BLOCKED


def spinlocks_held(m: Machine, t: ThreadView) -> list[str]:
    return [m.L.names[off] for off in m.L.spinlocks if m.v[off] == t.owner]


def no_spinlock(m: Machine, t: ThreadView) -> bool:
    """The thread holds no spinlock (entry of a syscall or fault path)."""
    return not spinlocks_held(m, t)


def holds(m: Machine, t: ThreadView, lock: str) -> bool:
    """The thread holds pm_lock, or its own process's vmr_lock / pte_lock."""
    off = m.L.off["pm_lock"] if lock == "pm_lock" else m.L.proc_off(t.proc, lock)
    return m.v[off] == t.owner


def holds_pte_lock_of(m: Machine, t: ThreadView, p: int) -> bool:
    return m.v[m.L.proc_off(p, "pte_lock")] == t.owner


def no_ref(t: ThreadView) -> bool:
    """The thread holds no slot reference (the ghost ``holds``)."""
    return t["holds"] == 0


def _w(m: Machine) -> object:
    return int_word(m.bits)


def slot_refs(m: Machine, i: int) -> int:
    return int(slot_check_refcnt(_w(m), m.slot(i)))


def slot_marked(m: Machine, i: int) -> bool:
    return bool(slot_check_removal(_w(m), m.slot(i)))


def slot_page(m: Machine, i: int) -> int | None:
    w = m.slot(i)
    return None if slot_is_null(_w(m), w) else int(slot_page_field(_w(m), w))


def holds_ref_on(m: Machine, t: ThreadView, i: int, page: int) -> bool:
    """t holds a slot reference through slot i, and the slot names ``page``,
    whose pg_tree_slot names the slot (pm_find_page's assert)."""
    return (t["holds"] == i + 1 and slot_refs(m, i) >= 1 and slot_page(m, i) == page
            and m.pg(page, "tslot") == i + 1 and m.pg(page, "kref") >= 1)


def in_map(m: Machine, page: int) -> bool:
    """Some slot names ``page``."""
    return any(slot_page(m, i) == page for i in range(m.cfg.file_pages))


def page_private(m: Machine, page: int, flags: int) -> bool:
    """A page fresh from the allocator that only its allocator knows."""
    return m.in_pool(page) and m.pg(page, "kref") == 1 and m.pg(page, "flags") == flags


def vmrs_overlapping(m: Machine, p: int, lo: int, hi: int) -> list[int]:
    """The live VMRs of process p that intersect [lo, hi) (bytes)."""
    return [r for r in m.L.proc_recs[p] if m.vf(r, "alive")
            and m.vf(r, "base") < hi and lo < m.vf(r, "end")]


def ptes_zero(m: Machine, p: int, lo: int, hi: int) -> bool:
    """Every PTE of p in [lo, hi) (bytes) is 0."""
    return all(m.pte(p, vpn) == 0 for vpn in m.L.pte_off[p] if lo <= vpn << PGSHIFT < hi)


def no_straddle(m: Machine, p: int, va: int) -> bool:
    """No VMR of p has va strictly inside it (isolate_vmrs' result)."""
    return all(not m.vf(r, "base") < va < m.vf(r, "end")
               for r in m.L.proc_recs[p] if m.vf(r, "alive"))


def covered(m: Machine, p: int, lo: int, hi: int) -> bool:
    """Every page of [lo, hi) lies in some live VMR of p."""
    recs = [r for r in m.L.proc_recs[p] if m.vf(r, "alive")]
    return all(any(m.vf(r, "base") <= va < m.vf(r, "end") for r in recs)
               for va in range(lo, hi, 1 << PGSHIFT))


def marked_pages_in(m: Machine, index: int, end: int) -> list[tuple[int, int]]:
    """(i, page) for the pages of [index, end) that carry PG_REMOVAL."""
    from pagemap.pageflags import PG_REMOVAL
    out = []
    for i in range(index, end):
        p = slot_page(m, i)
        if p is not None and m.in_pool(p) and m.pg(p, "flags") & PG_REMOVAL:
            out.append((i, p))
    return out


def present_ptes_naming(m: Machine, page: int) -> list[str]:
    """The present PTEs, of any process, that name ``page``."""
    return [m.L.names[off] for offs in m.L.pte_off for off in offs.values()
            if m.v[off] & PTE_P and m.v[off] >> PGSHIFT == page]


def ptes_naming(m: Machine, page: int) -> list[str]:
    """The non-zero PTEs, of any process, that name ``page``."""
    return [m.L.names[off] for offs in m.L.pte_off for off in offs.values()
            if m.v[off] and m.v[off] >> PGSHIFT == page]


# -- pm_remove_contig's phases ------------------------------------------------------------

#: The fixes under which the remover's passes reach every PTE of a page they mark:
#: every PTE naming a page-map page belongs to a VMR on pm_vmrs, every VMR
#: overlapping the range is visited, and no VMR changes under the passes.  The
#: phase postconditions are claimed under these only (F3, F10, F13, F14 are the
#: ways the seed breaks them; the invariants report what follows).
SEES_ALL_PTES = ("removal-vmr-overlap", "split-vmr-under-pm-lock", "mmap-foff-first",
                 "populate-unmap-on-error")


def sees_all_ptes(m: Machine) -> bool:
    return all(m.cfg.fix(f) for f in SEES_ALL_PTES)


def shootdown_lands(m: Machine) -> bool:
    """The remover's shootdown has reached every core by the time it goes on:
    waited for (or synchronous), and to the core a single-core process runs on."""
    return sees_all_ptes(m) and m.cfg.fix("shootdown-scp-remote") and (
        m.cfg.shootdown == "sync" or m.cfg.fix("removal-shootdown-wait"))


def tlbs_naming(m: Machine, page: int) -> list[str]:
    """The TLB entries, of any core, that map ``page``."""
    return [m.L.names[off] for offs in m.L.tlb_off for off in offs.values()
            if m.v[off] and m.v[off] >> 2 == page]


def marked_clean_of(m: Machine, index: int, end: int, what: str) -> bool:
    """Of the range's pages still marked (PG_REMOVAL), none has a PTE (what="ptes"),
    a present PTE ("present") or a TLB entry ("tlbs")."""
    find = {"ptes": ptes_naming, "present": present_ptes_naming, "tlbs": tlbs_naming}[what]
    return not any(find(m, p) for _, p in marked_pages_in(m, index, end))

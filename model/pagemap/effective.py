"""The ghost record behind the invariant ``removal-effective`` (spec/invariants.md).

pm_remove_contig's postcondition: when a remover that won the ``pm_removal``
swap returns, every page of its range that nothing referenced, pinned or
reloaded while it ran is gone from the page map.  Whether something did is
history, so the checker keeps it: ``rm_disturbed`` is a bitmask over file
indices, cleared when a removal begins and set, for index i, by

* a reference held when the removal begins (the slot's count is not 0),
* pm_find_page taking a reference, or pm_insert_page loading a page, at i
  while the removal runs,
* a MAP_LOCKED VMR on pm_vmrs mapping i when the remover scans for them,
* the file system refusing to write the page back (KFS's writepage),

and cleared again for i when the remover marks or frees the page at i: what
happened before no longer decides whether the page may stay (which keeps
equal futures equal states).

The bits are set by the steps where those events happen (the C does nothing
there: this is the observer, as ``last_write`` is for ``no-lost-write``).  A
remover that loses the swap returns 0 at once, which the C documents ("There
can only be one remover at a time per PM - others will return 0"): the
postcondition is about the winner (spec/findings.md, O6).
"""

from __future__ import annotations

from pagemap.machine import Machine, Violation
from pagemap.vmr import MAP_LOCKED

GHOST = "rm_disturbed"


def disturb(m: Machine, i: int) -> None:
    """Index i was referenced, loaded, pinned or kept while a removal runs."""
    if m.get("pm_removal"):
        m.set(GHOST, m.get(GHOST) | (1 << i))


def settle(m: Machine, i: int) -> None:
    """The remover marked (or freed) the page at i: earlier history is moot."""
    m.set(GHOST, m.get(GHOST) & ~(1 << i))


def removal_begins(m: Machine) -> None:
    """The swap is won: only what happens from now on counts, and what is held now."""
    held = 0
    for i in range(m.cfg.file_pages):
        if m.slot(i) and m.c.pm_slot_check_refcnt(m.slot(i), m.bits):
            held |= 1 << i
    m.set(GHOST, held)


def pinned_now(m: Machine) -> None:
    """The MAP_LOCKED VMRs on pm_vmrs, as pm_remove_contig scans them (its own
    test is per index; this one looks at every locked VMR's whole range)."""
    for r in m.pm_vmrs():
        if m.vf(r, "flags") & MAP_LOCKED:
            vmr = m.vmr(r)
            for i in range(vmr.first_idx, min(m.cfg.file_pages, vmr.first_idx + vmr.npages)):
                disturb(m, i)


def removal_ends(m: Machine, index: int, nr: int) -> None:
    """removal-effective, then the record is cleared."""
    ghost = m.get(GHOST)
    for i in range(index, index + nr):
        w = m.slot(i)
        if ghost >> i & 1 or not w:
            continue
        p = m.c.pm_slot_get_page(w, m.bits)
        if p is not None and m.in_pool(p):
            raise Violation("removal-effective", f"pm_remove_contig({index}, {nr}) returns "
                            f"with page {p} still at index {i}, though nothing referenced, "
                            "pinned or reloaded it while the removal ran")
    m.set(GHOST, 0)

"""The page allocator (kern/src/page_alloc.c): kpage_alloc, upage_alloc,
page_decref, as helpers that run inside one step.

Every allocator call and every kref_put runs under the free-list lock
(irqsave), so each is one atomic step of its caller.  A free page is one whose
kref is 0.  The allocator hands out the lowest-numbered free page: physical
pages are interchangeable, so which free page comes back does not change what
can happen, and a canonical choice keeps equal states equal (spec/deviations.md).
"""

from __future__ import annotations

from pagemap.machine import Machine, ScenarioTooSmall

ENOMEM = 12


def page_alloc(m: Machine, zero: bool, what: str) -> int:
    """kpage_alloc / upage_alloc then __page_init: kref 1, struct zeroed,
    semaphore count 0.  The frame's data is kept (kpage_alloc does not zero
    it) unless ``zero`` (upage_alloc(p, &pg, TRUE))."""
    for ppn in range(1, m.cfg.pool_pages + 1):
        if m.pg(ppn, "kref") == 0:
            m.set_pg(ppn, "kref", 1)
            for f in ("flags", "tslot", "index", "sem", "semq"):
                m.set_pg(ppn, f, 0)
            if zero:
                m.set_pg(ppn, "data", 0)
            m.note(f"{what} -> page {ppn}")
            return ppn
    # Without [faults] enomem an allocation is meant to succeed: an empty
    # pool means the scenario is mis-sized, not that the kernel is wrong.
    raise ScenarioTooSmall(
        f"{what} found no free page: pool_pages = {m.cfg.pool_pages} is too small for this "
        "scenario (raise pool_pages)"
    )


def page_decref(m: Machine, ppn: int, what: str) -> bool:
    """page_decref: kref_put under the free-list lock.  True when freed."""
    m.touch(ppn, what)
    k = m.pg(ppn, "kref")
    m.set_pg(ppn, "kref", k - 1)
    if k - 1 == 0:
        # page_release: free_bhs when PG_BUFFER (buffer heads are not
        # modeled), then onto the free list; the other fields stay as they are.
        m.note(f"page {ppn} freed")
        return True
    return False

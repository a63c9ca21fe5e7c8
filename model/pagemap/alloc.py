"""The page allocator (kern/src/page_alloc.c): kpage_alloc, upage_alloc,
page_decref, as helpers that run inside one step.

Every allocator call and every kref_put runs under the free-list lock
(irqsave), so each is one atomic step of its caller.  A free page is one whose
kref is 0.  The allocator hands out the lowest-numbered free page: physical
pages are interchangeable, so which free page comes back does not change what
can happen, and a canonical choice keeps equal states equal (spec/deviations.md).

Failure (-ENOMEM).  Without ``[faults] enomem`` the scenario's pool is meant
to be big enough: running out means the scenario is mis-sized
(``ScenarioTooSmall``, bad input).  With it, every allocation may fail: the
step that allocates has two outcomes, which the explorer runs as two
transitions (``Machine.branch`` 0: success, 1: -ENOMEM; the step sets
``Machine.chose`` when it made the choice), and an empty pool fails too.
"""

from __future__ import annotations

from pagemap.machine import Machine, ScenarioTooSmall, Violation

ENOMEM = 12


def may_fail(m: Machine, what: str) -> bool:
    """An allocation that [faults] enomem lets fail: True on the failing branch."""
    if not m.cfg.enomem:
        return False
    assert not m.chose, "one allocation per step"
    m.chose = True
    if m.branch:
        m.note(f"{what}: -ENOMEM (allocation fails)")
        return True
    return False


def page_alloc(m: Machine, zero: bool, what: str) -> int | None:
    """kpage_alloc / upage_alloc then __page_init: kref 1, struct zeroed,
    semaphore count 0.  The frame's data is kept (kpage_alloc does not zero
    it) unless ``zero`` (upage_alloc(p, &pg, TRUE)).  None is -ENOMEM."""
    for ppn in range(1, m.cfg.pool_pages + 1):
        if m.pg(ppn, "kref") == 0:
            break
    else:
        if m.cfg.enomem:
            m.note(f"{what}: -ENOMEM (no free page)")
            return None
        raise ScenarioTooSmall(
            f"{what}: no free page: pool_pages = {m.cfg.pool_pages} is too small for this "
            "scenario (add pages, or set [faults] enomem = true to explore -ENOMEM)")
    if may_fail(m, what):
        return None
    m.set_pg(ppn, "kref", 1)
    for f in ("flags", "tslot", "index", "sem", "semq"):
        m.set_pg(ppn, f, 0)
    if zero:
        m.set_pg(ppn, "data", 0)
    m.note(f"{what} -> page {ppn}")
    return ppn


def page_decref(m: Machine, ppn: int, what: str) -> bool:
    """page_decref: kref_put under the free-list lock.  True when freed."""
    m.touch(ppn, what)
    k = m.pg(ppn, "kref")
    if k <= 0:
        raise Violation("kernel-assert", f"{what}: kref_put of page {ppn} with count {k}")
    m.set_pg(ppn, "kref", k - 1)
    if k - 1 == 0:
        # page_release: free_bhs when PG_BUFFER (buffer heads are not
        # modeled), then onto the free list; the other fields stay as they are.
        m.note(f"page {ppn} freed")
        return True
    return False

"""The page map used by one kernel thread: a sequential API with contracts.

Each function below runs the modeled C function of the concurrent model (the
``CODE`` steps registered in pm.py and sync.py, through the layout's step
table) to completion with a single kernel thread and no process.  Nothing here
re-implements the page map: a ``PageMap`` is a Layout and one state tuple of
the concurrent machine, and each call is the same sequence of steps the
explorer would take if that thread ran alone.  The icontract conditions state
what the C code of kern/src/pagemap.c assumes from its callers and guarantees
to them when no other thread interferes (spec/sequential.md).

Sequentially nothing may block: the page-map lock is always free between
calls and nobody could wake a sleeper.  The driver fails loudly
(``SequentialBlocked``) if a step blocks anyway; a ``Violation`` raised by a
step propagates unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import icontract

from pagemap.alloc import page_alloc
from pagemap.alloc import page_decref as _page_decref
from pagemap.config import Config, Process, Thread
from pagemap.machine import BLOCKED, DONE_PC, PAGE_FIELDS, Layout, Machine
from pagemap.pageflags import PG_BUFFER, PG_LOCKED, PG_PAGEMAP, PG_UPTODATE
from pagemap.program import build_layout, initial_state, initial_value
from pagemap.radix import EEXIST, RADIX_SLOTS
from pagemap.slot import pm_slot_check_refcnt, pm_slot_check_removal, pm_slot_get_page, refcnt_max
from pagemap.vmr import VMR, vmr_ok
from pagemap.word import WORD_SIZES

#: The only thread: a kernel thread with no ops of its own.
KTHREAD = 0
#: More steps than any sequential call takes (pm_load_page takes 14).
STEP_LIMIT = 200
MAX_POOL = 62  # as the scenario parser allows


class SequentialError(RuntimeError):
    """A modeled function did not run to completion on the single thread."""


class SequentialBlocked(SequentialError):
    """A step blocked: with one thread it would wait forever."""


# -- configuration and the driver ---------------------------------------------------


def seq_config(file_pages: int, pool_pages: int, word_bits: int, vmrs: tuple[VMR, ...]) -> Config:
    """The concurrent model's configuration for a sequential page map: one
    kernel thread "k" without ops, no preloaded pages, the VMRs (and a process
    per vm_proc number, for their locks; no user threads, so no TLBs)."""
    nproc = max((v.proc for v in vmrs), default=-1) + 1
    procs = tuple(
        Process(f"p{p}", tuple(k for k, v in enumerate(vmrs) if v.proc == p)) for p in range(nproc)
    )
    return Config(
        name="sequential",
        fixes=frozenset(),
        word_bits=word_bits,
        file_pages=file_pages,
        pool_pages=pool_pages,
        preload=(),
        shootdown="sync",
        processes=procs,
        vmrs=vmrs,
        prefault=(False,) * len(vmrs),
        threads=(Thread("k", -1, ()),),
    )


@lru_cache(maxsize=32)
def seq_layout(cfg: Config) -> Layout:
    """The (shared, contracted) layout of a configuration."""
    return build_layout(cfg, contracts=True)


def run_call(
    layout: Layout, state: tuple[int, ...], entry: str, **regs: int
) -> tuple[tuple[int, ...], int, tuple[str, ...]]:
    """Run the modeled function at step ``entry`` on the kernel thread alone.

    The call is pushed exactly as ``program.dispatch`` starts a top-level op
    (return address OP_DONE); when it returns, dispatch finds no op left and
    parks the thread at DONE_PC, which is how the driver sees the return.
    Returns the new state (thread idle again: the return value, op counter and
    ghost ``holds`` register cleared), the return value, and the steps run."""
    m = Machine(layout, state)
    t = m.thread(KTHREAD)
    if t["pc"] != DONE_PC or t["sp"] != 0:
        raise SequentialError(f"{entry}: the kernel thread is not idle")
    t.call(entry, None, **regs)
    ran: list[str] = []
    while t["pc"] != DONE_PC:
        if len(ran) >= STEP_LIMIT:
            raise SequentialError(f"{entry}: no return after {STEP_LIMIT} steps: {ran[-5:]}")
        st = layout.steps[t["pc"]]
        assert st is not None
        ran.append(f"{st.func}.{st.label}")
        if st.fn(m, t) is BLOCKED:
            raise SequentialBlocked(f"{entry}: step {ran[-1]} ({st.c}) blocks with one thread")
    rv = t["rv"]
    # A sequential caller may hold many slot references; they are counted in
    # the slot words, not in the one-reference ghost of a thread.
    t["rv"] = t["op"] = t["holds"] = 0
    return m.freeze(), rv, tuple(ran)


# -- the value ----------------------------------------------------------------------


def _slot_name(i: int) -> frozenset[str]:
    return frozenset({f"slot[{i}]"})


def page_fields(p: int) -> frozenset[str]:
    """The state names of struct page ``p``'s fields."""
    return frozenset(f"page{p}.{f}" for f in PAGE_FIELDS)


def well_formed(pm: PageMap) -> bool:
    """What holds between calls when one thread uses the map alone."""
    return _well_formed(pm.layout, pm.state)


# icontract checks a class invariant around every public method call; the
# value is immutable, so the answer for a state is computed once.
@lru_cache(maxsize=1 << 14)
def _well_formed(L: Layout, s: tuple[int, ...]) -> bool:
    if len(s) != L.size:
        return False
    m = Machine(L, s)
    base = L.thread0[KTHREAD]
    if any(s[base : base + L.thread_size]):  # idle: no pc, frame, register
        return False
    if m.get("pm_lock") or m.get("pm_removal") or m.get("radix_depth") not in (0, 1):
        return False
    bits, cfg = m.bits, m.cfg
    in_map: list[int] = []
    for i in range(cfg.file_pages):
        w = m.slot(i)
        if w == 0:
            continue
        p = pm_slot_get_page(w, bits)
        if (
            m.get("radix_depth") != 1
            or pm_slot_check_removal(w, bits)
            or p is None
            or not m.in_pool(p)
            or m.pg(p, "kref") != 1
            or m.pg(p, "tslot") != i + 1
            or m.pg(p, "index") != i
        ):
            return False
        # An up-to-date page holds the file's data (nobody writes in this API).
        if m.pg(p, "flags") & PG_UPTODATE and m.pg(p, "data") != m.store(i):
            return False
        in_map.append(p)
    if len(set(in_map)) != len(in_map) or m.get("pm_num_pages") != len(in_map):
        return False
    for p in range(1, cfg.pool_pages + 1):
        # Only the map or the caller that allocated a page holds its kref; no
        # thread sleeps on a page lock.
        if m.pg(p, "kref") not in (0, 1) or m.pg(p, "sem") not in (0, 1) or m.pg(p, "semq"):
            return False
    return all(
        m.store(i) == m.last(i) == initial_value(i) for i in range(cfg.file_pages)
    ) and all(m.alive(r) for r in m.L.decl_rec.values())


@icontract.invariant(lambda self: well_formed(self))
@dataclass(frozen=True, eq=False)
class PageMap:
    """A page map (struct page_map, its radix tree, the pages of the pool and
    the backing store) as one immutable value of the concurrent model's state.

    Equal values hash equal: equality is by configuration and state tuple."""

    layout: Layout
    state: tuple[int, ...]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PageMap):
            return NotImplemented
        return self.state == other.state and self.layout.cfg == other.layout.cfg

    def __hash__(self) -> int:
        return hash((self.layout.cfg, self.state))

    def __repr__(self) -> str:
        slots = ", ".join(
            f"{i}:pg{self.page_at(i)}x{self.refcnt(i)}"
            for i in range(self.file_pages)
            if self.word(i)
        )
        vmrs = ",".join(v.name for v in self.pm_vmrs())
        return f"PageMap({self.bits}-bit; {{{slots}}}; free={list(self.free_pages())}; vmrs=[{vmrs}])"

    def _pg(self, page: int, field: str) -> int:
        if not self.is_page(page):
            raise IndexError(f"no page {page} in a pool of {self.pool_pages}")
        return self.state[self.layout.page_off(page, field)]

    # -- read-only accessors ------------------------------------------------------
    @property
    def cfg(self) -> Config:
        return self.layout.cfg

    @property
    def bits(self) -> int:
        return self.layout.cfg.word_bits

    @property
    def file_pages(self) -> int:
        return self.layout.cfg.file_pages

    @property
    def pool_pages(self) -> int:
        return self.layout.cfg.pool_pages

    def pm_num_pages(self) -> int:
        """pm->pm_num_pages."""
        return self.state[self.layout.off["pm_num_pages"]]

    def word(self, i: int) -> int:
        """The slot word of file page i (0 when absent or beyond the tree)."""
        if not 0 <= i < self.file_pages:
            raise IndexError(f"no file page {i} in a file of {self.file_pages}")
        return self.state[self.layout.slot0 + i]

    def page_at(self, i: int) -> int | None:
        """pm_slot_get_page of slot i: the page's ppn, or None."""
        return pm_slot_get_page(self.word(i), self.bits)

    def refcnt(self, i: int) -> int:
        """pm_slot_check_refcnt of slot i: slot references outstanding."""
        return pm_slot_check_refcnt(self.word(i), self.bits)

    def removal(self, i: int) -> bool:
        return pm_slot_check_removal(self.word(i), self.bits)

    def contains(self, page: int) -> bool:
        """Whether some slot names ``page``."""
        return any(self.page_at(i) == page for i in range(self.file_pages))

    def is_page(self, page: int) -> bool:
        return 1 <= page <= self.pool_pages

    def kref(self, page: int) -> int:
        return self._pg(page, "kref")

    def flags(self, page: int) -> int:
        """page->pg_flags."""
        return self._pg(page, "flags")

    def data(self, page: int) -> int:
        """The contents of the page's frame (one int stands for 4 KiB)."""
        return self._pg(page, "data")

    def sem(self, page: int) -> int:
        """page->pg_sem.nr_signals."""
        return self._pg(page, "sem")

    def pg_index(self, page: int) -> int:
        return self._pg(page, "index")

    def tree_slot(self, page: int) -> int | None:
        """The slot page->pg_tree_slot points to (its index), or None when
        unset (0) or poisoned."""
        ts = self._pg(page, "tslot")
        return ts - 1 if ts > 0 else None

    def is_free(self, page: int) -> bool:
        return self.kref(page) == 0

    def free_pages(self) -> tuple[int, ...]:
        """The pages on the allocator's free lists, ascending."""
        return tuple(p for p in range(1, self.pool_pages + 1) if self._pg(p, "kref") == 0)

    def store(self, i: int) -> int:
        """The backing store's contents of file page i."""
        if not 0 <= i < self.file_pages:
            raise IndexError(f"no file page {i} in a file of {self.file_pages}")
        return self.state[self.layout.store0 + i]

    def on_pm_vmrs(self, vmr: VMR) -> bool:
        """Whether vmr is on pm->pm_vmrs."""
        return bool(self.state[self._on_pm_off(vmr)])

    def _on_pm_off(self, vmr: VMR) -> int:
        return self.layout.vmr_off(self.layout.decl_rec[self.cfg.vmrs.index(vmr)], "on_pm")

    def pm_vmrs(self) -> tuple[VMR, ...]:
        """pm->pm_vmrs, in list order."""
        on = [(self.state[self._on_pm_off(v)], v) for v in self.cfg.vmrs]
        return tuple(v for pos, v in sorted(on, key=lambda x: x[0]) if pos)


def changed(a: PageMap, b: PageMap) -> frozenset[str]:
    """The names of the state positions in which two values differ."""
    names = a.layout.names
    return frozenset(names[k] for k, (x, y) in enumerate(zip(a.state, b.state)) if x != y)


def _only(a: PageMap, b: PageMap, allowed: Iterable[str]) -> bool:
    """Frame condition: b differs from a at most in ``allowed``."""
    return changed(a, b) <= frozenset(allowed)


def _call(pm: PageMap, entry: str, **regs: int) -> tuple[PageMap, int]:
    state, rv, _ = run_call(pm.layout, pm.state, entry, **regs)
    return PageMap(pm.layout, state), rv


# -- pm_init ----------------------------------------------------------------------------
# icontract checks preconditions from the bottom decorator up: the domain of
# each argument is the lowest ``require``, so the others may rely on it.


def _vmrs_ok(file_pages: int, vmrs: tuple[VMR, ...]) -> bool:
    return len({v.name for v in vmrs}) == len(vmrs) and all(
        vmr_ok(v) and v.proc >= 0 and v.first_idx + v.npages <= file_pages for v in vmrs
    )


@icontract.require(
    lambda file_pages, vmrs: _vmrs_ok(file_pages, tuple(vmrs)),
    "well-formed VMRs with distinct names, mapping pages of the file",
)
@icontract.require(lambda word_bits: word_bits in WORD_SIZES)
@icontract.require(lambda file_pages: 1 <= file_pages <= RADIX_SLOTS, "one radix leaf")
@icontract.require(lambda pool_pages: 1 <= pool_pages <= MAX_POOL)
@icontract.ensure(lambda result: result.pm_num_pages() == 0)
@icontract.ensure(lambda result: all(result.word(i) == 0 for i in range(result.file_pages)))
@icontract.ensure(lambda result: len(result.free_pages()) == result.pool_pages)
@icontract.ensure(lambda result: result.pm_vmrs() == (), "TAILQ_INIT(&pm->pm_vmrs)")
def pm_init(
    file_pages: int, pool_pages: int, word_bits: int = 64, vmrs: Iterable[VMR] = ()
) -> PageMap:
    """pm_init (pagemap.c): an empty page map over a file of ``file_pages``
    pages, with ``pool_pages`` free physical pages.  ``vmrs`` are the regions
    that may later be added with pm_add_vmr (as mmap does); none is on
    pm_vmrs yet."""
    layout = seq_layout(seq_config(file_pages, pool_pages, word_bits, tuple(vmrs)))
    return pm_init_layout(layout)


@icontract.require(
    lambda layout: len(layout.cfg.threads) == 1 and not layout.cfg.threads[0].ops
    and layout.cfg.threads[0].proc < 0 and not layout.cfg.preload,
    "a configuration of seq_config: one kernel thread, no ops, nothing preloaded",
)
def pm_init_layout(layout: Layout) -> PageMap:
    """pm_init on a given layout (for instance one whose step table has a
    mutated step: tests show the contracts catch it)."""
    m = Machine(layout, initial_state(layout))
    for v in range(len(layout.cfg.vmrs)):
        m.set_vf(layout.decl_rec[v], "on_pm", 0)  # initial_state lists every VMR; pm_init none
    return PageMap(layout, m.freeze())


# -- the allocator's part ----------------------------------------------------------------


@icontract.require(lambda pm: len(pm.free_pages()) > 0, "else kpage_alloc returns -ENOMEM")
@icontract.ensure(lambda pm, result: pm.is_free(result[1]) and result[0].kref(result[1]) == 1)
@icontract.ensure(
    lambda result: result[0].flags(result[1]) == 0
    and result[0].sem(result[1]) == 0
    and result[0].tree_slot(result[1]) is None,
    "__page_init: struct zeroed, semaphore taken (count 0)",
)
@icontract.ensure(lambda pm, result: _only(pm, result[0], page_fields(result[1])))
def kpage_alloc(pm: PageMap) -> tuple[PageMap, int]:
    """kpage_alloc (page_alloc.c), as the model's allocator does it (the
    lowest free page; the frame is not zeroed)."""
    m = Machine(pm.layout, pm.state)
    page = page_alloc(m, zero=False, what="kpage_alloc")
    if page is None:  # only a machine with [faults] enomem fails an allocation
        raise MemoryError("kpage_alloc: -ENOMEM")
    return PageMap(pm.layout, m.freeze()), page


@icontract.require(
    lambda pm, page: not pm.contains(page),
    "only the caller's own kref: the map's is dropped by pm_remove_contig alone",
)
@icontract.require(lambda pm, page: pm.is_page(page) and pm.kref(page) > 0)
@icontract.ensure(lambda pm, page, result: result.kref(page) == pm.kref(page) - 1)
@icontract.ensure(lambda pm, page, result: _only(pm, result, {f"page{page}.kref"}))
def page_decref(pm: PageMap, page: int) -> PageMap:
    """page_decref (page_alloc.c): drop the caller's kref, as pm_load_page
    does with its page after -EEXIST."""
    m = Machine(pm.layout, pm.state)
    _page_decref(m, page, "page_decref")
    return PageMap(pm.layout, m.freeze())


# -- page-map operations ---------------------------------------------------------------


def _find_ok(pm: PageMap, index: int, result: tuple[PageMap, int | None]) -> bool:
    new, page = result
    if page is None:
        return new == pm
    return (
        new.page_at(index) == page
        and new.refcnt(index) == pm.refcnt(index) + 1
        and not new.removal(index)
        and _only(pm, new, _slot_name(index))
    )


@icontract.require(
    lambda pm, index: pm.page_at(index) is None or pm.refcnt(index) < refcnt_max(pm.bits),
    "the 11-bit slot refcount must not overflow (the C does not check)",
)
@icontract.require(lambda pm, index: 0 <= index < pm.file_pages)
@icontract.ensure(lambda pm, index, result: result[1] == pm.page_at(index))
@icontract.ensure(
    lambda pm, index, result: _find_ok(pm, index, result),
    "a found page: one more slot reference, removal flag clear, nothing else changed; "
    "none found: nothing changed",
)
def pm_find_page(pm: PageMap, index: int) -> tuple[PageMap, int | None]:
    """pm_find_page (pagemap.c): the page at ``index`` with one more slot
    reference (to drop with pm_put_page), or None."""
    new, page = _call(pm, "pm_find_page.lock", find_index=index)
    return new, page or None


def _insert_ok(pm: PageMap, index: int, page: int, result: tuple[PageMap, int]) -> bool:
    new, err = result
    own = {f"page{page}.index", f"page{page}.tslot", "radix_depth"}
    if err == EEXIST:
        return (
            new.kref(page) == 1  # the caller keeps its kref
            and not new.contains(page)
            and _only(pm, new, own)
        )
    return (
        err == 0
        and new.page_at(index) == page
        and new.refcnt(index) == 1
        and not new.removal(index)
        and new.tree_slot(page) == index
        and new.pg_index(page) == index
        and new.kref(page) == 1  # passed from the caller to the map
        and new.pm_num_pages() == pm.pm_num_pages() + 1
        and _only(pm, new, own | {f"slot[{index}]", "pm_num_pages"})
    )


@icontract.require(
    lambda pm, page: pm.is_page(page) and pm.kref(page) == 1 and not pm.contains(page),
    "a page the caller allocated: its one kref, not in the map",
)
@icontract.require(lambda pm, index: 0 <= index < pm.file_pages)
@icontract.ensure(lambda pm, index, result: (result[1] == EEXIST) == (pm.word(index) != 0))
@icontract.ensure(
    lambda pm, index, page, result: _insert_ok(pm, index, page, result),
    "0: the slot holds the page with count 1, pm_num_pages + 1; EEXIST: the map unchanged",
)
def pm_insert_page(pm: PageMap, index: int, page: int) -> tuple[PageMap, int]:
    """pm_insert_page (pagemap.c): 0, the caller's kref now the map's and a
    slot reference the caller's; or EEXIST when the slot is not empty."""
    return _call(pm, "pm_insert_page.lock", ins_index=index, ins_page=page)


def _held_slot(pm: PageMap, page: int) -> int | None:
    """The slot ``page`` sits in, if it counts a reference the caller may hold."""
    if not pm.is_page(page) or pm.kref(page) == 0:
        return None
    i = pm.tree_slot(page)
    if i is None or i >= pm.file_pages or pm.page_at(i) != page or pm.refcnt(i) == 0:
        return None
    return i


def _put_ok(pm: PageMap, page: int, new: PageMap) -> bool:
    i = pm.tree_slot(page)
    assert i is not None
    return (
        new.refcnt(i) == pm.refcnt(i) - 1
        and new.page_at(i) == page
        and new.removal(i) == pm.removal(i)
        and new.flags(page) == pm.flags(page)
        and _only(pm, new, _slot_name(i))
    )


@icontract.require(
    lambda pm, page: _held_slot(pm, page) is not None,
    "a live page in the map, pg_tree_slot set (assert(tree_slot)), with a slot reference to drop",
)
@icontract.ensure(
    lambda pm, page, result: _put_ok(pm, page, result),
    "one slot reference fewer; page, removal flag, pg_flags and everything else unchanged",
)
def pm_put_page(pm: PageMap, page: int) -> PageMap:
    """pm_put_page (pagemap.c): drop one slot reference of ``page``."""
    # The ghost ``holds`` says which slot this thread holds a reference
    # through; the precondition established that the caller holds one there.
    i = _held_slot(pm, page)
    assert i is not None
    new, _ = _call(pm, "pm_put_page.add", put_page=page, holds=i + 1)
    return new


def _load_runs_alone(pm: PageMap, index: int) -> bool:
    """pm_load_page will not sleep (nobody would wake it) nor run out of pages."""
    page = pm.page_at(index)
    if page is None:
        return len(pm.free_pages()) > 0
    return pm.refcnt(index) < refcnt_max(pm.bits) and (
        bool(pm.flags(page) & PG_UPTODATE) or pm.sem(page) > 0
    )


def _load_ok(pm: PageMap, index: int, result: tuple[PageMap, int]) -> bool:
    new, page = result
    old = pm.page_at(index)
    filled = old is None or not pm.flags(old) & PG_UPTODATE
    frame = _slot_name(index) | {"pm_num_pages", "radix_depth"} | page_fields(page)
    return (
        (old is None or page == old)
        and new.page_at(index) == page
        and new.tree_slot(page) == index
        and new.refcnt(index) == pm.refcnt(index) + 1
        and not new.removal(index)
        and bool(new.flags(page) & PG_UPTODATE)
        and new.data(page) == new.store(index)
        and new.pm_num_pages() == pm.pm_num_pages() + (old is None)
        and (old is not None or new.flags(page) == PG_UPTODATE | PG_BUFFER | PG_PAGEMAP)
        # The loader that read the page in unlocked it again.
        and (not filled or (not new.flags(page) & PG_LOCKED and new.sem(page) == 1))
        and _only(pm, new, frame if filled else _slot_name(index))
    )


@icontract.require(
    lambda pm, index: _load_runs_alone(pm, index),
    "a cached page is up to date or its lock is free (lock_page would sleep forever); "
    "a missing one finds a free page (else -ENOMEM); the slot count does not overflow",
)
@icontract.require(lambda pm, index: 0 <= index < pm.file_pages)
@icontract.ensure(
    lambda pm, index, result: _load_ok(pm, index, result),
    "the page in the slot, PG_UPTODATE with the file's data, one more slot reference",
)
def pm_load_page(pm: PageMap, index: int) -> tuple[PageMap, int]:
    """pm_load_page (pagemap.c): the up-to-date page at ``index``, loading
    it if needed, with a slot reference for the caller."""
    return _call(pm, "pm_load_page.find", load_index=index)


# -- page locks -------------------------------------------------------------------------


@icontract.require(lambda pm, page: not pm.flags(page) & PG_LOCKED, "lock_page's assert")
@icontract.require(lambda pm, page: pm.sem(page) > 0, "else sem_down sleeps: nobody would wake it")
@icontract.require(lambda pm, page: pm.is_page(page) and pm.kref(page) > 0)
@icontract.ensure(
    lambda pm, page, result: result.flags(page) == pm.flags(page) | PG_LOCKED
    and result.sem(page) == pm.sem(page) - 1
    and _only(pm, result, {f"page{page}.flags", f"page{page}.sem"})
)
def lock_page(pm: PageMap, page: int) -> PageMap:
    """lock_page (page_alloc.c): sem_down, then set PG_LOCKED."""
    new, _ = _call(pm, "lock_page.sem_down", lp_page=page)
    return new


@icontract.require(
    lambda pm, page: pm.sem(page) == 0,
    "the caller holds the page lock: lock_page, or a fresh page (__page_init's count 0)",
)
@icontract.require(lambda pm, page: pm.is_page(page) and pm.kref(page) > 0)
@icontract.ensure(
    lambda pm, page, result: result.flags(page) == pm.flags(page) & ~PG_LOCKED
    and result.sem(page) == 1
    and _only(pm, result, {f"page{page}.flags", f"page{page}.sem"})
)
def unlock_page(pm: PageMap, page: int) -> PageMap:
    """unlock_page (page_alloc.c): clear PG_LOCKED, then sem_up."""
    new, _ = _call(pm, "unlock_page.clear_locked", ul_page=page)
    return new


# -- VMR membership ------------------------------------------------------------------------


def _vmr_flag(pm: PageMap, vmr: VMR) -> frozenset[str]:
    """What pm_add_vmr / pm_remove_vmr may change: list positions (TAILQ links)."""
    return frozenset(f"{name}.on_pm" for name in pm.layout.rec_name)


@icontract.require(
    lambda pm, vmr: not pm.on_pm_vmrs(vmr), "TAILQ_INSERT_TAIL of a listed entry corrupts the list"
)
@icontract.require(lambda pm, vmr: vmr in pm.cfg.vmrs, "a VMR declared at pm_init")
@icontract.ensure(lambda vmr, result: result.on_pm_vmrs(vmr))
@icontract.ensure(lambda pm, vmr, result: result.pm_vmrs() == pm.pm_vmrs() + (vmr,),
                  "TAILQ_INSERT_TAIL: at the end, the others in their order")
@icontract.ensure(lambda pm, vmr, result: changed(pm, result) <= _vmr_flag(pm, vmr))
def pm_add_vmr(pm: PageMap, vmr: VMR) -> PageMap:
    """pm_add_vmr (pagemap.c): put vmr on pm->pm_vmrs, under pm_lock."""
    new, _ = _call(pm, "pm_add_vmr.lock", addv_vmr=pm.layout.decl_rec[pm.cfg.vmrs.index(vmr)] + 1)
    return new


@icontract.require(
    lambda pm, vmr: pm.on_pm_vmrs(vmr), "TAILQ_REMOVE of an unlisted entry corrupts the list"
)
@icontract.require(lambda pm, vmr: vmr in pm.cfg.vmrs, "a VMR declared at pm_init")
@icontract.ensure(lambda vmr, result: not result.on_pm_vmrs(vmr))
@icontract.ensure(
    lambda pm, vmr, result: result.pm_vmrs() == tuple(v for v in pm.pm_vmrs() if v != vmr),
    "TAILQ_REMOVE: the others keep their order")
@icontract.ensure(lambda pm, vmr, result: changed(pm, result) <= _vmr_flag(pm, vmr))
def pm_remove_vmr(pm: PageMap, vmr: VMR) -> PageMap:
    """pm_remove_vmr (pagemap.c): take vmr off pm->pm_vmrs, under pm_lock."""
    new, _ = _call(pm, "pm_remove_vmr.lock", rmv_vmr=pm.layout.decl_rec[pm.cfg.vmrs.index(vmr)] + 1)
    return new

"""The VMR list operations of kern/src/mm.c: split_vmr, isolate_vmrs,
merge_vmr and destroy_vmr, all run with the process's vmr_lock held.

VMR records live in the state vector (pagemap.machine.Layout).  Two readers
look at them: the owner's vmr_lock holders (the page-fault path, mmap,
munmap, mprotect, exit), through the process's VMR list; and
pm_remove_contig, through pm->pm_vmrs, holding only pm_lock.
So a store to a record that is not on pm_vmrs is seen by no thread but the
one holding vmr_lock: it is joined to the step before it (``local``).  A
store to a record on pm_vmrs (split_vmr shrinking the old VMR, merge_vmr
extending the first) is a point of interleaving: the remover may read the
field before or after it.
"""

from __future__ import annotations

import icontract

from pagemap import contracts as C
from pagemap.machine import BLOCKED, CODE, Machine, ThreadView
from pagemap.pageflags import PGSHIFT
from pagemap.pm import pm_lock, pm_unlock, pm_vmrs_insert_tail
from pagemap.vmr import VMR_FIELDS

# Registers hold record numbers + 1 (0: none).

CODE.function("split_vmr", ("sp_old", "sp_new", "sp_va"))
CODE.function("isolate_vmrs", ("iso_addr", "iso_end"))
CODE.function("destroy_vmr", ("dv_vmr",))
CODE.function("merge_vmr", ("mg_first", "mg_second"))


def alloc_record(m: Machine, p: int) -> int:
    """kmem_cache_alloc(vmr_kcache): a spare record of process p (the lowest free
    one: records are interchangeable, as physical pages are)."""
    spare = m.L.proc_recs[p][len(m.cfg.processes[p].vmrs):]
    for r in spare:
        if not m.vf(r, "alive") and not m.vf(r, "on_pm"):
            return r
    raise RuntimeError("no spare VMR record: Config.vmr_records is too small")


def free_record(m: Machine, r: int) -> None:
    """kmem_cache_free: the record's fields are zeroed, so that equal address
    spaces are equal states."""
    for f in VMR_FIELDS:
        m.set_vf(r, f, 0)


# -- split_vmr(old, va) --------------------------------------------------------------------


@CODE.step("split_vmr", "new",
           "new_vmr = kmem_cache_alloc; TAILQ_INSERT_AFTER(old); copy prot, flags, proc; "
           "[va, old->vm_end)", local=True)
@icontract.require(lambda m, t: C.holds(m, t, "vmr_lock")
    and m.vf(t["sp_old"] - 1, "base") < t["sp_va"] < m.vf(t["sp_old"] - 1, "end"),
    "split_vmr(old, va) with va strictly inside old, under vmr_lock")
def split_new(m: Machine, t: ThreadView) -> object:
    # The new record is on no list another thread reads without vmr_lock.
    old, va = t["sp_old"] - 1, t["sp_va"]
    new = alloc_record(m, t.proc)
    for f in ("prot", "flags", "file"):
        m.set_vf(new, f, m.vf(old, f))
    m.set_vf(new, "base", va)
    m.set_vf(new, "end", m.vf(old, "end"))
    m.set_vf(new, "alive", 1)
    t["sp_new"] = new + 1
    if m.cfg.fix("split-vmr-under-pm-lock"):
        _set_foff(m, t)
        t.goto("split_vmr.lock_pm")
    else:
        t.goto("split_vmr.shrink")
    return None


def _set_foff(m: Machine, t: ThreadView) -> None:
    old, new = t["sp_old"] - 1, t["sp_new"] - 1
    m.set_vf(new, "foff", m.vf(old, "foff") + t["sp_va"] - m.vf(old, "base"))


@CODE.step("split_vmr", "shrink", "old_vmr->vm_end = va")
def split_shrink(m: Machine, t: ThreadView) -> object:
    # A store to a VMR that may be on pm_vmrs: pm_remove_contig reads vm_end
    # holding only pm_lock.
    m.set_vf(t["sp_old"] - 1, "end", t["sp_va"])
    t.goto("split_vmr.publish")
    return None


@CODE.step("split_vmr", "lock_pm", "fix split-vmr-under-pm-lock: spin_lock(&pm->pm_lock)",
           lock="pm_lock")
def split_lock_pm(m: Machine, t: ThreadView) -> object:
    if not pm_lock(m, t):
        return BLOCKED
    t.goto("split_vmr.publish_locked")
    return None


@CODE.step("split_vmr", "publish_locked",
           "fix split-vmr-under-pm-lock: TAILQ_INSERT_TAIL(&pm->pm_vmrs, new); "
           "old->vm_end = va; spin_unlock(&pm->pm_lock)")
def split_publish_locked(m: Machine, t: ThreadView) -> object:
    # pm_remove_contig reads pm_vmrs and vm_end under pm_lock, which we hold: the
    # two stores are seen together at the unlock.
    pm_vmrs_insert_tail(m, t["sp_new"] - 1)
    m.set_vf(t["sp_old"] - 1, "end", t["sp_va"])
    pm_unlock(m, t)
    t.ret("split_vmr")
    return None


@CODE.step("split_vmr", "publish",
           "file: kref_get; new_vmr->vm_foff = old foff + (va - old base); pm_add_vmr(new)",
           local=True)
def split_publish(m: Machine, t: ThreadView) -> object:
    _set_foff(m, t)  # the new VMR is still off pm_vmrs
    t.call("pm_add_vmr.lock", "split_vmr.done", addv_vmr=t["sp_new"])
    return None


@CODE.step("split_vmr", "done", "return new_vmr", local=True)
@icontract.ensure(lambda m, t, result: C.blocked(result) or C.no_straddle(m, t.proc, t["iso_addr"])
                  or C.no_straddle(m, t.proc, t["iso_end"]),
                  "split_vmr leaves a VMR boundary at va")
def split_done(m: Machine, t: ThreadView) -> object:
    t.ret("split_vmr")
    return None


# -- isolate_vmrs(p, va, len) ----------------------------------------------------------------


@CODE.step("isolate_vmrs", "first",
           "vmr = find_vmr(p, va); if (vmr && vmr->vm_base != va) split_vmr(vmr, va)", local=True)
def isolate_first(m: Machine, t: ThreadView) -> object:
    _split_at(m, t, t["iso_addr"], "isolate_vmrs.second")
    return None


@CODE.step("isolate_vmrs", "second",
           "vmr = find_vmr(p, va + len); if (vmr && vmr->vm_base != va + len) split_vmr", local=True)
def isolate_second(m: Machine, t: ThreadView) -> object:
    _split_at(m, t, t["iso_end"], "isolate_vmrs.done")
    return None


def _split_at(m: Machine, t: ThreadView, va: int, then: str) -> None:
    r = m.find_vmr(t.proc, va)
    if r is not None and m.vf(r, "base") != va:
        t.call("split_vmr.new", then, sp_old=r + 1, sp_va=va)
    else:
        t.goto(then)


@CODE.step("isolate_vmrs", "done", "return", local=True)
@icontract.snapshot(lambda t: (t["iso_addr"], t["iso_end"]), name="rng")
@icontract.ensure(lambda OLD, m, t, result: C.blocked(result) or C.no_straddle(m, t.proc, OLD.rng[0])
                  and C.no_straddle(m, t.proc, OLD.rng[1]),
                  "isolate_vmrs: no VMR straddles addr or addr + len")
def isolate_done(m: Machine, t: ThreadView) -> object:
    t.ret("isolate_vmrs")
    return None


# -- destroy_vmr(vmr) ---------------------------------------------------------------------------


@CODE.step("destroy_vmr", "start", "if (vmr->vm_file) pm_remove_vmr(f_mapping, vmr)", local=True)
def destroy_start(m: Machine, t: ThreadView) -> object:
    r = t["dv_vmr"] - 1
    if m.vf(r, "file"):
        t.call("pm_remove_vmr.lock", "destroy_vmr.free", rmv_vmr=r + 1)
    else:
        t.goto("destroy_vmr.free")
    return None


@CODE.step("destroy_vmr", "free",
           "kref_put(vm_file); TAILQ_REMOVE(&p->vm_regions, vmr); kmem_cache_free", local=True)
@icontract.snapshot(lambda t: t["dv_vmr"] - 1, name="r")
@icontract.ensure(lambda OLD, m, result: C.blocked(result)
                  or all(m.vf(OLD.r, f) == 0 for f in VMR_FIELDS),
                  "destroy_vmr: the VMR is off every list and freed")
def destroy_free(m: Machine, t: ThreadView) -> object:
    # Off pm_vmrs now: only vmr_lock holders (we are one) can see the record.
    r = t["dv_vmr"] - 1
    assert not m.vf(r, "on_pm"), "destroy_vmr of a VMR still on pm_vmrs"
    free_record(m, r)
    t.ret("destroy_vmr")
    return None


# -- merge_vmr(first, second) --------------------------------------------------------------------


def can_merge(m: Machine, a: int, b: int) -> bool:
    """merge_vmr's requirements: adjacent, the same prot, flags and file, and a
    contiguous file offset."""
    return (m.vf(a, "end") == m.vf(b, "base") and m.vf(a, "prot") == m.vf(b, "prot")
            and m.vf(a, "flags") == m.vf(b, "flags") and m.vf(a, "file") == m.vf(b, "file")
            and m.vf(a, "foff") + m.vf(a, "end") - m.vf(a, "base") == m.vf(b, "foff"))


@CODE.step("merge_vmr", "extend", "first->vm_end = second->vm_end; destroy_vmr(second)")
@icontract.require(lambda m, t: can_merge(m, t["mg_first"] - 1, t["mg_second"] - 1),
                   "merge_vmr(first, second) of adjacent, compatible VMRs")
def merge_extend(m: Machine, t: ThreadView) -> object:
    # A store to a VMR on pm_vmrs: the remover may read vm_end before or after.
    first, second = t["mg_first"] - 1, t["mg_second"] - 1
    m.set_vf(first, "end", m.vf(second, "end"))
    t.call("destroy_vmr.start", "merge_vmr.done", dv_vmr=second + 1)
    return None


@CODE.step("merge_vmr", "done", "return 0", local=True)
def merge_done(m: Machine, t: ThreadView) -> object:
    t.ret("merge_vmr")
    return None


def vpn_range(m: Machine, r: int) -> tuple[int, int]:
    """[vm_base, vm_end) of record r, in virtual pages."""
    return m.vf(r, "base") >> PGSHIFT, m.vf(r, "end") >> PGSHIFT

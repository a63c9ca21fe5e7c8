"""Steps of the page-map operations on slot i (kern/src/pagemap.c, kern/src/vfs.c).

pm_find_page and pm_insert_page run under pm_lock, so at most one of them
works on slot i at a time, and never while the remover holds the lock; the
slot references they hand out are counted in ``holders``.  Threads that hold
pm_lock for anything else (lookups of other indices, pm_remove_vmr of other
VMRs, a remover whose range does not cover i) are ``Lock.OTHER``.
"""

from __future__ import annotations

from typing import Any

import z3

from proofs.removal.state import Find, Ins, Lock
from proofs.removal.system import FREE, Alt, System, b2i, plain_holder, step

And, Not = z3.And, z3.Not

# -- pm_find_page(pm, i) -----------------------------------------------------------------


@step("find_lock", ["pm_find_page.lock"])
def find_lock(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """spin_lock(&pm->pm_lock) by a lookup of index i."""
    return [Alt(And(pre["fpc"] == Find.NONE, pre["lock"] == Lock.FREE),
                {"lock": Lock.FIND, "fpc": Find.READ})]


@step("find_read", ["pm_find_page.read"])
def find_read(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """old_slot_val = ACCESS_ONCE(*tree_slot); NULL page: give up."""
    at = pre["fpc"] == Find.READ
    return [
        Alt(And(at, pre["slot"] == sys.c(0)), {"fpc": Find.MISS}),
        Alt(And(at, pre["slot"] != sys.c(0)), {"fpc": Find.CAS, "f_old": pre["slot"]}),
    ]


@step("find_cas", ["pm_find_page.cas"])
def find_cas(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """atomic_cas_ptr(tree_slot, old, inc_refcnt(clear_removal(old))), or retry.

    The CAS is enabled only below 2047 holders: the 11-bit field's bound,
    stated as an assumption on the environment (spec/removal/index.md)."""
    at = pre["fpc"] == Find.CAS
    new = sys.inc(sys.clear_removal(pre["f_old"]))
    return [
        Alt(And(at, pre["slot"] != pre["f_old"]), {"fpc": Find.READ, "f_old": sys.c(0)}),
        Alt(And(at, pre["slot"] == pre["f_old"], pre["holders"] < sys.max),
            {"fpc": Find.HIT, "f_old": sys.c(0), "slot": new, "holders": pre["holders"] + 1}),
    ]


@step("find_unlock", ["pm_find_page.unlock"])
def find_unlock(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """spin_unlock(&pm->pm_lock); return the page (or NULL)."""
    return [Alt(z3.Or(pre["fpc"] == Find.HIT, pre["fpc"] == Find.MISS),
                {"fpc": Find.NONE, "lock": Lock.FREE})]


# -- pm_insert_page(pm, i, page) ------------------------------------------------------------


@step("insert_lock", ["pm_insert_page.lock"])
def insert_lock(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """spin_lock(&pm->pm_lock) by an insertion at index i."""
    return [Alt(And(pre["ipc"] == Ins.NONE, pre["lock"] == Lock.FREE),
                {"lock": Lock.INS, "ipc": Ins.INS})]


@step("insert", ["pm_insert_page.insert"])
def insert(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """radix_insert of set_page(inc_refcnt(0), page): a fresh, locked, not up-to-date
    page with one slot reference; -EEXIST when the slot is taken; -ENOMEM (a radix
    node allocation fails) with [faults] enomem."""
    at = pre["ipc"] == Ins.INS
    word = sys.set_page(sys.inc(sys.c(0)), post["ppn"])
    return [
        Alt(And(at, pre["slot"] != sys.c(0)), {"ipc": Ins.NONE, "lock": Lock.FREE}),
        Alt(And(at, pre["enomem"]), {"ipc": Ins.NONE, "lock": Lock.FREE}),
        Alt(And(at, pre["slot"] == sys.c(0), sys.valid_ppn(post["ppn"])),
            {"ipc": Ins.UNL, "ppn": FREE, "slot": word, "live": True, "upd": False,
             "rmf": False, "dirty": False, "newer": FREE, "holders": pre["holders"] + 1}),
    ]


@step("insert_unlock", ["pm_insert_page.unlock"])
def insert_unlock(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """pg_tree_slot = tree_slot; pm_num_pages++; spin_unlock(&pm->pm_lock)."""
    return [Alt(pre["ipc"] == Ins.UNL,
                {"ipc": Ins.NONE, "lock": Lock.FREE, "num": pre["num"] + 1})]


# -- holders of a slot reference --------------------------------------------------------------


@step("put", ["pm_put_page.add", "__handle_page_fault.put", "__handle_page_fault.private_put",
              "__handle_page_fault.spurious_put", "__handle_page_fault.stale_put",
              "__handle_page_fault.walk_fail_put",
              "__handle_page_fault.private_fail (ENOMEM for the private copy)", "file_io.put"])
def put(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """pm_put_page: atomic_add(slot, -(1UL << PM_REFCNT_SHIFT)) by a holder (one that
    has its page up to date: every user of pm_load_page's result)."""
    return [Alt(And(pre["upd"], plain_holder(pre)),
                {"slot": sys.dec(pre["slot"]), "holders": pre["holders"] - 1})]


@step("readpage", ["pm_load_page.readpage",
                   "pm_load_page.readpage_io (blocking readpage: the request completes)"])
def readpage(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """readpage by the inserter (it holds PG_LOCKED): copy the store, set PG_UPTODATE."""
    return [Alt(And(pre["live"], Not(pre["upd"]), pre["ipc"] != Ins.UNL, pre["holders"] >= 1),
                {"upd": True, "newer": False})]


@step("file_write_copy", ["file_io.copy"])
def file_write_copy(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """generic_file_write: memcpy into the page of a held reference."""
    return [Alt(And(pre["upd"], plain_holder(pre)), {"fw": pre["fw"] + 1, "newer": True})]


@step("file_write_dirty", ["file_io.dirty"])
def file_write_dirty(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """generic_file_write: atomic_or(&page->pg_flags, PG_DIRTY) after the copy."""
    return [Alt(pre["fw"] >= 1, {"fw": pre["fw"] - 1, "dirty": True})]


# -- everyone else who takes pm_lock ---------------------------------------------------------


# spin_lock(&pm->pm_lock) / spin_unlock by a thread the state does not track at i
@step("other_lock", ["pm_find_page.lock (another index)", "pm_insert_page.lock (another index)",
                     "pm_remove_contig.lock (a remover not covering i)",
                     "pm_remove_contig.relock (a remover not covering i)",
                     "pm_remove_vmr.lock (munmap of another VMR)",
                     "pm_add_vmr.lock (mmap of another VMR)"])
def other_lock(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """pm_lock taken for another index, another VMR, or by a remover not covering i."""
    return [Alt(pre["lock"] == Lock.FREE, {"lock": Lock.OTHER})]


@step("other_insert", ["pm_insert_page.insert (another index)"])
def other_insert(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """A page inserted at another index: one more occupied slot, counted at the unlock."""
    return [Alt(And(pre["lock"] == Lock.OTHER, Not(pre["oins"])),
                {"others": pre["others"] + 1, "oins": True})]


@step("other_free", ["pm_remove_contig.final_decref (another index, remover not covering i)"])
def other_free(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """A remover that does not cover i frees another index's page: nr_removed++."""
    return [Alt(And(pre["lock"] == Lock.OTHER, pre["others"] >= 1),
                {"others": pre["others"] - 1, "removed": pre["removed"] + 1})]


@step("other_unlock", ["pm_find_page.unlock (another index)",
                       "pm_insert_page.unlock (another index)",
                       "pm_insert_page.insert (another index: -EEXIST or -ENOMEM unlock)",
                       "pm_remove_contig.dirty_unlock (a remover not covering i)",
                       "pm_remove_contig.final_unlock (a remover not covering i)",
                       "pm_remove_vmr.unlink (munmap of another VMR)",
                       "pm_add_vmr.link (mmap of another VMR)"])
def other_unlock(sys: System, pre: dict[str, Any], post: dict[str, Any]) -> list[Alt]:
    """The unlock: pm_insert_page's pm_num_pages++, or the remover's -= nr_removed."""
    return [Alt(pre["lock"] == Lock.OTHER,
                {"lock": Lock.FREE, "oins": False, "removed": 0,
                 "num": pre["num"] + b2i(pre["oins"]) - pre["removed"]})]

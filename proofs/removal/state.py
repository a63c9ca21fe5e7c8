"""The symbolic state of the removal proofs: one slot, its page, one PTE, one TLB entry.

The state abstracts the executable model (``pagemap.machine``) around one
distinguished radix slot ``i`` of the page map (file page ``f``), the page ``P``
it holds, one distinguished PTE ``X`` of a shared VMR that maps ``f`` and one
distinguished TLB entry ``E`` (a core of X's process caching X).  Everything
else is counted: the threads holding a slot reference, the other PTEs that
name P by their present/dirty bits, the other occupied slots.  Because X and
E are arbitrary, what the proofs show for them holds for every PTE and every
TLB entry (spec/removal/index.md, section 1).

Every variable is a Z3 constant; a state is a ``dict`` from name to term, one
for the pre-state and one (primed) for the post-state of a step.  Enumerations
are integers with the values below.  The slot word is a bit-vector of the word
size, built and decoded only with ``pagemap.slot``'s generic core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import z3

# -- enumerations ------------------------------------------------------------------


class Lock:
    """Who holds pm_lock (``struct page_map.pm_lock``)."""

    FREE, FIND, INS, RM, MU, OTHER, ADD = range(7)
    NAMES = ("free", "find", "insert", "remover", "munmap", "other", "add_vmr")


class Find:
    """pm_find_page for index i: where the (only) finder holding pm_lock is."""

    NONE, READ, CAS, HIT, MISS = range(5)
    NAMES = ("none", "read", "cas", "hit", "miss")


class Ins:
    """pm_insert_page for index i."""

    NONE, INS, UNL = range(3)
    NAMES = ("none", "insert", "unlock")


class Rm:
    """pm_remove_contig's progress relative to slot i (a remover whose range covers i)."""

    (IDLE, LOCK, MARK, MCAS, MPAGE, P2, P2W, P2WAIT, P3, P3D, P3Z, DL, DRC, DT, DUM, DCL,
     DDONE, WB, FL, FCAS, FUM, FZERO, FDEC, FDEL, FDONE, RDONE) = range(26)
    NAMES = ("idle", "lock", "mark", "mark_cas", "mark_page", "pass2", "p2_write", "p2_wait",
             "pass3", "p3_dirty", "p3_zero", "dirty", "d_recheck", "d_test", "d_unmark",
             "d_clean", "dirty_past_i", "writeback", "final", "final_cas", "final_unmark",
             "final_zero", "final_decref", "final_delete", "final_past_i", "unlocked")
    #: Phases in which the remover holds pm_lock.
    HOLDS = (MARK, MCAS, MPAGE, P2, P2W, P2WAIT, P3, P3D, P3Z, DL, DRC, DT, DUM, DCL, DDONE,
             FL, FCAS, FUM, FZERO, FDEC, FDEL, FDONE)
    #: After the lock step and before `done`: the run's choices (pinned, visited) are set.
    RUN = HOLDS + (WB, RDONE)
    PASS2 = (P2, P2W, P2WAIT)
    PASS3 = (P3, P3D, P3Z)
    DIRTY = (DL, DRC, DT, DUM, DCL, DDONE)
    FINAL = (FL, FCAS, FUM, FZERO, FDEC, FDEL, FDONE)
    #: The slot holds pm_slot_set_page(old, NULL): no real page (spec/slot.md).
    WINDOW = (FZERO, FDEC, FDEL)


class Mu:
    """munmap of X's VMR (__do_munmap, then destroy_vmr -> pm_remove_vmr)."""

    NONE, P1, P1W, P1D, SDW, P2, P2R, P2D, UL, DEAD = range(10)
    NAMES = ("none", "pass1", "p1_write", "p1_done", "sd_wait", "pass2", "p2_zero",
             "p2_done", "unlink", "dead")


class Mx:
    """__do_mmap of X's VMR (kern/src/mm.c), from create_vmr to the point where the VMR
    is an ordinary mapping on pm_vmrs: created (on the process's list only, vmr_lock
    held), in pm_add_vmr holding pm_lock, linked with vm_foff still unset (the seed's
    order: set_file comes after pm_add_vmr)."""

    NONE, CREATED, ADD, LINKED = range(4)
    NAMES = ("none", "created", "add_vmr", "linked")


#: Other PTEs that name P, counted by class and by (present, dirty):
#: class ``a`` -- in VMRs the remover's passes visit (all of them when no
#: remover runs); class ``b`` -- in VMRs they skip (MAP_LOCKED, or on seed the
#: ones that do not map ``index``).
OTHER_STATES = ("pc", "pd", "nc", "nd")  # present clean, present dirty, !P clean, !P dirty
OTHERS = tuple(f"{c}_{s}" for c in "ab" for s in OTHER_STATES)


@dataclass(frozen=True)
class Var:
    name: str
    sort: str  # "bool", "nat", "int", "enum", "bv"
    size: int = 0  # enum: number of values
    const: bool = False  # never changes (a parameter of the run)
    doc: str = ""


VARS: tuple[Var, ...] = (
    # parameters
    Var("null", "bv", const=True, doc="page2ppn(NULL): any word (spec/slot.md F-SLOT-NULL)"),
    Var("sync", "bool", const=True, doc="shootdown = sync (the ideal TLB service)"),
    Var("x_w", "bool",
        doc="X's VMR has PROT_WRITE in vm_prot (mprotect's set_prot writes it; a variable "
            "since mprotect, it was a constant that also stood for X's PTE_W)"),
    Var("x_locked", "bool", const=True, doc="X's VMR is MAP_LOCKED"),
    Var("scp", "bool", const=True, doc="X's process is an SCP (PROC_RUNNING_S when it runs)"),
    Var("enomem", "bool", const=True, doc="allocations may fail ([faults] enomem)"),
    Var("kfs", "bool", const=True,
        doc="the file system's writepage fails and writes nothing ([filesystem] writepage = kfs)"),
    # the slot and its page
    Var("slot", "bv", doc="the slot word of index i"),
    Var("ppn", "bv", doc="P's page number (0 when there is no page)"),
    Var("live", "bool", doc="P exists: from pm_insert_page until the remover's page_decref"),
    Var("upd", "bool", doc="PG_UPTODATE"),
    Var("rmf", "bool", doc="PG_REMOVAL"),
    Var("dirty", "bool", doc="PG_DIRTY"),
    Var("newer", "bool", doc="P's data differs from the backing store"),
    # slot references
    Var("holders", "nat", doc="threads holding a slot reference through i"),
    Var("fw", "nat", doc="generic_file_write holders between the copy and PG_DIRTY"),
    # pm_lock and who holds it
    Var("lock", "enum", len(Lock.NAMES)),
    Var("fpc", "enum", len(Find.NAMES), doc="pm_find_page(i)"),
    Var("f_old", "bv", doc="pm_find_page's old_slot_val"),
    Var("ipc", "enum", len(Ins.NAMES), doc="pm_insert_page(i)"),
    Var("num", "int", doc="pm_num_pages"),
    Var("others", "nat", doc="occupied slots other than i (see abstraction.py)"),
    Var("removed", "nat", doc="the running remover's nr_removed"),
    Var("oins", "bool", doc="a pm_insert_page of another index between insert and unlock"),
    # the remover
    Var("rm", "enum", len(Rm.NAMES)),
    Var("rm_old", "bv", doc="pm_remove_contig's old_slot_val for i"),
    Var("pinned", "bool", doc="a MAP_LOCKED VMR on pm_vmrs maps i (this run)"),
    Var("wb", "bool", doc="P is in ptr_store, not yet written back"),
    Var("dl_before", "bool", doc="writeback: the dirty loop resumes at or before i"),
    Var("ord", "bool", doc="remover's register holds another PTE's D, fold pending (xchg)"),
    # X and the remover's work on it
    Var("xn", "bool", doc="X is non-zero (it names P)"),
    Var("xp", "bool", doc="X has PTE_P"),
    Var("xd", "bool", doc="X has PTE_D"),
    Var("x_linked", "bool", doc="X's VMR is on pm_vmrs"),
    Var("x_alive", "bool", doc="X's VMR is on its process's VMR list"),
    Var("dead", "bool", doc="X's process is PROC_DYING or PROC_DEAD: no user code runs"),
    Var("x_hasidx", "bool", doc="vmr_has_page_idx(X's VMR, index) (this run)"),
    Var("x_vis", "bool", doc="the remover's passes visit X's VMR (this run)"),
    Var("x_v2", "bool", doc="pass 2 has visited X"),
    Var("x_sent", "bool", doc="the remover shot down X's process since visiting X"),
    Var("x_v3", "bool", doc="pass 3 has visited X"),
    Var("rr_n", "bool", doc="remover's register: the PTE value of X it read"),
    Var("rr_d", "bool"),
    # munmap of X's VMR
    Var("mu", "enum", len(Mu.NAMES)),
    Var("mu_need", "bool", doc="__do_munmap's shootdown_needed"),
    Var("mr_n", "bool", doc="munmap's register: the PTE value of X it read"),
    Var("mr_d", "bool"),
    # E
    Var("e", "bool", doc="E exists and caches P"),
    Var("ed", "bool", doc="E's dirty bit"),
    Var("ep", "bool", doc="a TLB flush is pending on E's core"),
    # other PTEs naming P, and munmap registers holding their D bit
    *(Var(name, "nat") for name in OTHERS),
    Var("omd", "nat", doc="munmap threads holding another PTE's D, fold pending (xchg)"),
    # mmap of X's VMR (appended last: the other state variables keep their places)
    Var("mx", "enum", len(Mx.NAMES), doc="__do_mmap of X's VMR"),
    Var("x_foff", "bool",
        doc="X's VMR has vm_file and vm_foff set (false only from __do_mmap's create_vmr "
            "to its set_file)"),
    # mprotect (F11) and what it splits off x_w: X's own PTE_W, E's, pass 3's choice
    Var("x_pte_w", "bool", doc="X names P and has PTE_W (mprotect rewrites it)"),
    Var("ew", "bool", doc="E is writable: the W bit the fill cached (a store needs it)"),
    Var("rm_x3", "bool", doc="pass 3 holds pte_lock of X's VMR (p3_lock to p3_unlock)"),
    Var("rm_w", "bool", doc="pass 3's fold choice for X's VMR, read at its p3_lock"),
    Var("mp_rmw", "bool", doc="mprotect between the load and the store of X (seed)"),
    Var("mp_d", "bool", doc="mprotect's register: the D bit of the value of X it read"),
)

BY_NAME = {v.name: v for v in VARS}


def make(bits: int, suffix: str = "") -> dict[str, Any]:
    """Fresh Z3 constants for one state (``suffix`` "'" for a post-state)."""
    out: dict[str, Any] = {}
    for v in VARS:
        name = v.name + suffix
        if v.sort == "bool":
            out[v.name] = z3.Bool(name)
        elif v.sort == "bv":
            out[v.name] = z3.BitVec(name, bits)
        else:
            out[v.name] = z3.Int(name)
    return out


def domain(s: dict[str, Any]) -> list[Any]:
    """Typing constraints: enumerations in range, counters non-negative."""
    out = []
    for v in VARS:
        if v.sort == "nat":
            out.append(s[v.name] >= 0)
        elif v.sort == "enum":
            out.append(z3.And(s[v.name] >= 0, s[v.name] < v.size))
    return out


def enum_names(var: str) -> tuple[str, ...] | None:
    """The value names of an enumeration variable, for witnesses."""
    return {"lock": Lock.NAMES, "fpc": Find.NAMES, "ipc": Ins.NAMES, "rm": Rm.NAMES,
            "mu": Mu.NAMES, "mx": Mx.NAMES}.get(var)

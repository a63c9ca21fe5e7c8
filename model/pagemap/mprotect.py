"""mprotect (kern/src/mm.c: __do_mprotect), run with the process's vmr_lock
held:

    pte_prot     RW, RO or 0 from the new prot
    isolate_vmrs split at both ends of [addr, addr + len)
    loop         from find_first_vmr while vm_base < addr + len:
                   vm_prot == prot already: `continue` -- without moving on to
                   the next VMR (a loop that never ends: the fix
                   ``mprotect-advance`` moves on);
                   vm_prot = prot; under pte_lock, for each *present* PTE of the
                   VMR replace the W/U bits with pte_prot, keeping P, D and the
                   ppn (a plain read-modify-write: the fix ``atomic-pte-update``
                   makes it a compare-and-swap loop); shootdown needed
    shootdown    proc_tlbshootdown(p, addr, addr + len), vmr_lock still held
"""

from __future__ import annotations

import icontract

from pagemap import contracts as C
from pagemap.fault import _lock, _unlock, pte_prot
from pagemap.machine import BLOCKED, CODE, Machine, ThreadView
from pagemap.pageflags import PTE_P, PTE_PERM
from pagemap.proc import proc_tlbshootdown
from pagemap.vmrs import vpn_range

CODE.function("mprotect", ("mp_addr", "mp_end", "mp_prot", "mp_vmr", "mp_vpn", "mp_pte",
                           "mp_needed"))


@CODE.step("mprotect", "lock_vmr", "spin_lock(&p->vmr_lock); isolate_vmrs(p, addr, len)",
           lock="vmr_lock")
@icontract.require(lambda m, t: C.no_spinlock(m, t) and C.no_ref(t))
def mp_lock_vmr(m: Machine, t: ThreadView) -> object:
    if not _lock(m, t, "vmr_lock"):
        return BLOCKED
    t.call("isolate_vmrs.first", "mprotect.first", iso_addr=t["mp_addr"], iso_end=t["mp_end"])
    return None


@CODE.step("mprotect", "first", "vmr = find_first_vmr(p, addr)", local=True)
def mp_first(m: Machine, t: ThreadView) -> object:
    r = m.find_first_vmr(t.proc, t["mp_addr"])
    t["mp_vmr"] = 0 if r is None else r + 1
    t.goto("mprotect.loop")
    return None


@CODE.step("mprotect", "loop",
           "while (vmr && vmr->vm_base < addr + len): if (vmr->vm_prot == prot) continue",
           local=True,
           fixed={"mprotect-advance":
                  "while (vmr && vmr->vm_base < addr + len): vm_prot == prot? "
                  "next VMR"})
def mp_loop(m: Machine, t: ThreadView) -> object:
    # VMR fields change only under vmr_lock, which we hold.
    r = t["mp_vmr"] - 1
    if r < 0 or m.vf(r, "base") >= t["mp_end"]:
        t["mp_vmr"] = 0
        t.goto("mprotect.done")
        return None
    if m.vf(r, "prot") == t["mp_prot"]:
        if m.cfg.fix("mprotect-advance"):
            _advance(m, t)
        else:
            t.goto("mprotect.loop")  # `continue`: the same VMR again
        return None
    t.goto("mprotect.set_prot")
    return None


def _advance(m: Machine, t: ThreadView) -> None:
    nxt = m.next_vmr(t.proc, t["mp_vmr"] - 1)
    t["mp_vmr"] = 0 if nxt is None else nxt + 1
    t.goto("mprotect.loop")


@CODE.step("mprotect", "set_prot", "vmr->vm_prot = prot")
def mp_set_prot(m: Machine, t: ThreadView) -> object:
    # A store pm_remove_contig may observe: it reads vm_prot holding only pm_lock.
    m.set_vf(t["mp_vmr"] - 1, "prot", t["mp_prot"])
    t.goto("mprotect.lock_pte")
    return None


@CODE.step("mprotect", "lock_pte", "spin_lock(&p->pte_lock); for each page of the VMR",
           lock="pte_lock")
def mp_lock_pte(m: Machine, t: ThreadView) -> object:
    if not _lock(m, t, "pte_lock"):
        return BLOCKED
    t["mp_vpn"] = vpn_range(m, t["mp_vmr"] - 1)[0]
    t.goto("mprotect.pte_read")
    return None


def _next_pte(m: Machine, t: ThreadView) -> None:
    t["mp_pte"] = 0
    if t["mp_vpn"] + 1 < vpn_range(m, t["mp_vmr"] - 1)[1]:
        t["mp_vpn"] += 1
        t.goto("mprotect.pte_read")
    else:
        t["mp_vpn"] = 0
        t.goto("mprotect.unlock_pte")


def _new_pte(t: ThreadView, old: int) -> int:
    return (old & ~PTE_PERM) | pte_prot(t["mp_prot"])


@CODE.step("mprotect", "pte_read",
           "pte = pgdir_walk(va, 0); if (pte && PAGE_PRESENT(*pte)) ... (load)",
           fixed={"atomic-pte-update":
                  ("if PAGE_PRESENT: do { old = *pte } while (!cmpxchg(pte, old, "
                   "(old & ~PTE_PERM) | pte_prot))")})
def mp_pte_read(m: Machine, t: ThreadView) -> object:
    p, k = t.proc, t["mp_vpn"]
    pte = m.pte(p, k)
    if not pte & PTE_P:
        _next_pte(m, t)
        return None
    t["mp_needed"] = 1
    if m.cfg.fix("atomic-pte-update"):
        m.set_pte(p, k, _new_pte(t, pte))  # the CAS loop: a D bit set since is kept
        _next_pte(m, t)
        return None
    t["mp_pte"] = pte
    t.goto("mprotect.pte_write")
    return None


@CODE.step("mprotect", "pte_write", "*pte = (*pte & ~PTE_PERM) | pte_prot (store)")
def mp_pte_write(m: Machine, t: ThreadView) -> object:
    # The store half of a plain read-modify-write: a D bit the CPU set since the
    # load is overwritten.
    m.set_pte(t.proc, t["mp_vpn"], _new_pte(t, t["mp_pte"]))
    _next_pte(m, t)
    return None


@CODE.step("mprotect", "unlock_pte", "spin_unlock(&p->pte_lock); vmr = TAILQ_NEXT(vmr)")
def mp_unlock_pte(m: Machine, t: ThreadView) -> object:
    _unlock(m, t, "pte_lock")
    _advance(m, t)
    return None


@CODE.step("mprotect", "done", "if (shootdown_needed) proc_tlbshootdown(p, addr, addr + len)",
           local=True)
def mp_done(m: Machine, t: ThreadView) -> object:
    t.goto("mprotect.shootdown" if t["mp_needed"] else "mprotect.unlock_vmr")
    return None


@CODE.step("mprotect", "shootdown", "proc_tlbshootdown(p, addr, addr + len)")
def mp_shootdown(m: Machine, t: ThreadView) -> object:
    proc_tlbshootdown(m, t, t.proc)
    t["mp_needed"] = 0
    t.goto("mprotect.unlock_vmr")
    return None


@CODE.step("mprotect", "unlock_vmr", "spin_unlock(&p->vmr_lock); return 0")
@icontract.snapshot(lambda t: (t["mp_addr"], t["mp_end"], t["mp_prot"]), name="arg")
@icontract.ensure(lambda OLD, m, t, result: C.blocked(result) or all(
                  m.vf(r, "prot") == OLD.arg[2]
                  for r in C.vmrs_overlapping(m, t.proc, OLD.arg[0], OLD.arg[1])),
                  "every VMR of the range has the new protection")
@icontract.ensure(lambda OLD, m, t, result: C.blocked(result) or all(
                  m.pte(t.proc, vpn) & PTE_PERM == pte_prot(OLD.arg[2])
                  for vpn in m.L.pte_off[t.proc]
                  if OLD.arg[0] <= vpn << 12 < OLD.arg[1] and m.pte(t.proc, vpn) & PTE_P),
                  "every present PTE of the range has the new permission bits")
def mp_unlock_vmr(m: Machine, t: ThreadView) -> object:
    _unlock(m, t, "vmr_lock")
    t.ret("mprotect")
    return None

"""The abstraction function: a concrete state of the executable model, seen from one
slot, one PTE and one TLB entry, as values of the symbolic state (proofs/removal/state.py).

A *focus* picks the slot index ``i``, the PTE ``X`` of a shared declared VMR
``v`` mapping file page ``i`` at its page ``k`` (process ``p``'s PTE for that
virtual page; or none: a phantom X whose VMR is already gone) and the core
``c`` of p whose TLB entry for X is ``E`` (or none).  X's VMR is the record of
p that maps X's address now (``View.xrec``; of two, inside a split or a merge, the
one that held X before): the declared record of ``v`` (mmap creates it there) until a
partial munmap's split_vmr moves X into the new record or merge_vmr into the grown
one, or none once X's piece is destroyed (a phantom X whose VMR is gone).  Every
other thread, PTE and TLB entry is summarised exactly as the symbolic state
counts it.  Registers are read only where the symbolic state has a copy of
them (``rm_old`` at i, the remover's and munmap's PTE registers at X, ...).

``AbstractionError`` means a concrete state the symbolic state cannot
represent (X or E naming a page that is not P): the refinement check reports
it as a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pagemap.codec import make_codec
from pagemap.machine import (
    DONE_PC,
    PROC_DEAD,
    PROC_DYING,
    PROC_RUNNING_S,
    PROC_WAITING,
    Layout,
    Machine,
    ThreadView,
    tlb_dirty,
    tlb_ppn,
    tlb_writable,
)
from pagemap.pageflags import PG_DIRTY, PG_REMOVAL, PG_UPTODATE, PTE_D, PTE_P, PTE_W, pte2ppn
from pagemap.removal import _visits, store_get
from pagemap.slot import PAGE2PPN_NULL
from pagemap.vmr import MAP_LOCKED, MAP_SHARED, PGSHIFT, PROT_WRITE

from proofs.removal.state import OTHERS, Find, Ins, Lock, Mu, Mx, Rm

_RAW = make_codec(contracts=False)


class AbstractionError(Exception):
    pass


@dataclass(frozen=True)
class Focus:
    i: int  # slot index (file page)
    v: int | None  # X's declared VMR (index into Config.vmrs)
    k: int  # X's page within the VMR
    c: int | None  # E's core

    def describe(self, layout: Layout) -> str:
        cfg = layout.cfg
        x = f"{cfg.vmrs[self.v].name}+{self.k}" if self.v is not None else "-"
        e = cfg.cores[self.c].name if self.c is not None else "-"
        return f"slot {self.i}, X {x}, E {e}"

    def rec(self, layout: Layout) -> int:
        """The record of X's declared VMR (X's VMR until a split moves X: View.xrec)."""
        assert self.v is not None
        return layout.decl_rec[self.v]

    def proc(self, layout: Layout) -> int:
        assert self.v is not None
        return layout.cfg.vmrs[self.v].proc

    def vpn(self, layout: Layout) -> int:
        assert self.v is not None
        return layout.cfg.vmrs[self.v].base_vpn + self.k


def foci(layout: Layout) -> Iterator[Focus]:
    """Every choice of (slot, X, E) a configuration offers."""
    cfg = layout.cfg
    for i in range(cfg.file_pages):
        found = False
        for v, vmr in enumerate(cfg.vmrs):
            if not vmr.vm_flags & MAP_SHARED or not vmr.first_idx <= i < vmr.first_idx + vmr.npages:
                continue
            found = True
            cores: list[int | None] = list(cfg.proc_cores(vmr.proc))
            for c in cores or [None]:
                yield Focus(i, v, i - vmr.first_idx, c)
        if not found:
            yield Focus(i, None, 0, None)


def holder(m: Machine, p: int, va: int) -> int | None:
    """The VMR record of process p that a PTE at va belongs to.  Two records contain va
    only inside split_vmr (seed: the new record covers [va, end) from split_new on,
    the old one until it shrinks) and merge_vmr (the grown record and the one it grew
    over, until destroy_vmr unlinks that one).  Then the PTE belongs to the record that
    held it before: of those on pm_vmrs the smallest (a merge's grown record contains
    the other), else the lower, as find_vmr finds it (a split's old record).  The
    remover's walk of a record reads its range once, so a walk of the grown record begun
    before the extend may stop short of va; the walk of the record va was in covers it."""
    maps = [r for r in m.proc_vmrs(p) if m.vf(r, "base") <= va < m.vf(r, "end")]
    linked = [r for r in maps if m.on_pm(r)]
    if linked:
        return min(linked, key=lambda r: m.vf(r, "end") - m.vf(r, "base"))
    return maps[0] if maps else None


def _label(layout: Layout, t: ThreadView) -> str | None:
    pc = t["pc"]
    if pc == DONE_PC:
        return None
    st = layout.steps[pc]
    assert st is not None
    return f"{st.func}.{st.label}"


class View:
    """One concrete state, with the per-thread facts every focus needs."""

    def __init__(self, layout: Layout, state: tuple[int, ...]) -> None:
        self.L = layout
        self.cfg = layout.cfg
        self.m = Machine(layout, state)
        self.threads = [self.m.thread(t) for t in range(len(self.cfg.threads))]
        self.labels = [_label(layout, t) for t in self.threads]
        self._visits: dict[tuple[int, int], bool] = {}
        #: what the foci of this state share (per slot, per page), computed once
        self.memo: dict[tuple[Any, ...], Any] = {}
        self._pm: list[int] | None = None

    @property
    def pm(self) -> list[int]:
        """pm_vmrs in list order."""
        if self._pm is None:
            self._pm = self.m.pm_vmrs()
        return self._pm

    def xrec(self, f: Focus) -> int | None:
        """X's VMR: the record of X's process that holds X's address (``holder``); None
        once X's piece is freed."""
        if f.v is None:
            return None
        key = ("xrec", f.v, f.k)
        if key not in self.memo:
            self.memo[key] = holder(self.m, f.proc(self.L), f.vpn(self.L) << PGSHIFT)
        return self.memo[key]  # type: ignore[no-any-return]

    def visits(self, r: ThreadView, rec: int) -> bool:
        """The remover's passes visit VMR record rec (its fields as they are now);
        shared by the foci of the state."""
        key = (r.id, rec)
        hit = self._visits.get(key)
        if hit is None:
            hit = self._visits[key] = _visits(self.m, r, rec) is not None
        return hit

    def remover(self, i: int) -> ThreadView | None:
        """The remover past its swap whose range covers i."""
        for t, lab in zip(self.threads, self.labels, strict=True):
            if lab is None or lab == "pm_remove_contig.swap":
                continue
            if lab.split(".")[0] in ("pm_remove_contig", "shootdown_and_reset") and \
                    t["rm_index"] <= i < t["rm_index"] + t["rm_nr"]:
                return t
        return None


def _ret(t: ThreadView) -> int:
    """The innermost return address."""
    return t[f"ret{t['sp'] - 1}"]


def _at(view: View, t: ThreadView, f: Focus) -> bool:
    """The remover's walk is at X's PTE (rm_vmr is a record + 1, rm_k a virtual page):
    by process and page, not by record, since on seed a split_vmr may move X to another
    record while the walk, whose range was computed before, goes on over it."""
    return f.v is not None and t["rm_vmr"] != 0 and \
        view.L.rec_proc[t["rm_vmr"] - 1] == f.proc(view.L) and t["rm_k"] == f.vpn(view.L)


def _pos(view: View, reg: int) -> int:
    """The position on pm_vmrs of the VMR record ``reg - 1`` (-1: before the first)."""
    order = view.pm
    return order.index(reg - 1) if reg and reg - 1 in order else -1


def _rm_phase(view: View, r: ThreadView | None, f: Focus) -> int:
    """pm_remove_contig's phase relative to i (state.Rm)."""
    if r is None:
        return Rm.IDLE
    lab = view.labels[r.id]
    assert lab is not None
    func, label = lab.split(".")
    i, ri = f.i, r["rm_i"]
    rel = -1 if ri < i else (0 if ri == i else 1)
    if label == "lock":
        return Rm.LOCK
    if label == "mark_read":
        return Rm.MARK if rel <= 0 else Rm.P2
    if label in ("mark_cas", "mark_page"):
        return {-1: Rm.MARK, 1: Rm.P2}.get(rel, Rm.MCAS if label == "mark_cas" else Rm.MPAGE)
    if func == "shootdown_and_reset":
        if label == "wait" and _x_v2(view, r, f) and f.v is not None and \
                store_get(r, r["sd_j"]) == f.proc(view.L) + 1:
            return Rm.P2WAIT
        return Rm.P2
    if label.startswith("p2_"):
        return Rm.P2W if label == "p2_write" and _at(view, r, f) else Rm.P2
    if label.startswith("p3_"):
        if label == "p3_dirty" and _at(view, r, f):
            return Rm.P3D
        if label == "p3_zero" and _at(view, r, f):
            return Rm.P3Z
        return Rm.P3
    if label == "dirty_start":
        return Rm.DL
    if label in ("dirty_read", "dirty_unlock"):
        return Rm.DL if rel <= 0 else Rm.DDONE
    if label in ("dirty_recheck", "dirty_test", "dirty_unmark", "dirty_clean"):
        at = {"dirty_recheck": Rm.DRC, "dirty_test": Rm.DT, "dirty_unmark": Rm.DUM,
              "dirty_clean": Rm.DCL}[label]
        return {-1: Rm.DL, 1: Rm.DDONE}.get(rel, at)
    if label in ("writepage", "relock"):
        return Rm.WB
    if label == "final_read":
        return Rm.FL if rel <= 0 else Rm.FDONE
    if label in ("final_cas", "final_unmark", "final_zero_flags", "final_decref", "final_delete"):
        at = {"final_cas": Rm.FCAS, "final_unmark": Rm.FUM, "final_zero_flags": Rm.FZERO,
              "final_decref": Rm.FDEC, "final_delete": Rm.FDEL}[label]
        return {-1: Rm.FL, 1: Rm.FDONE}.get(rel, at)
    if label == "final_unlock":
        return Rm.FDONE
    if label == "done":
        return Rm.RDONE
    raise AbstractionError(f"remover at an unknown step {lab}")


def _x_vis(view: View, r: ThreadView | None, f: Focus) -> bool:
    """The remover's passes visit X's VMR: it is on pm_vmrs and not skipped."""
    rec = view.xrec(f)
    if r is None or rec is None or view.labels[r.id] == "pm_remove_contig.lock":
        return False
    return view.m.on_pm(rec) and view.visits(r, rec)


def _xrec(view: View, f: Focus) -> int:
    """X's VMR where the remover's passes visit it (so it exists)."""
    rec = view.xrec(f)
    assert rec is not None
    return rec


def _x_v2(view: View, r: ThreadView, f: Focus) -> bool:
    """Pass 2 has visited X."""
    if not _x_vis(view, r, f):
        return False
    v, k = _pos(view, _xrec(view, f) + 1), f.vpn(view.L)
    lab = view.labels[r.id]
    assert lab is not None
    func, label = lab.split(".")
    vm, rk = _pos(view, r["rm_vmr"]), r["rm_k"]
    if func == "shootdown_and_reset":
        if _ret(r) == view.L.code.pc("pm_remove_contig.p3_start"):
            return True
        return vm >= v  # called from p2_unlock: rm_vmr is the VMR just walked
    # rm_vmr is the VMR last walked until p2_vmr picks the next one (-1: none yet)
    if label in ("p2_vmr", "p2_push"):
        return vm >= v
    if label == "p2_lock":
        return vm > v
    if label == "p2_read":
        return vm > v or (vm == v and rk > k)
    if label == "p2_write":
        return vm > v or (vm == v and rk >= k)
    if label == "p2_unlock":
        return vm >= v
    return label == "p2_done"


def _x_owed(view: View, r: ThreadView, f: Focus) -> bool:
    """X's process is in the current batch (or about to join it), not yet shot down."""
    proc = f.proc(view.L) + 1
    lab = view.labels[r.id]
    assert lab is not None
    label = lab.split(".")[1]
    if label in ("p2_read", "p2_write", "p2_unlock") and r["rm_vmr"] == _xrec(view, f) + 1:
        return True
    if r["rm_after"] == proc:
        return True
    start = 0
    if lab == "shootdown_and_reset.send":
        start = r["sd_j"]
    elif lab == "shootdown_and_reset.wait":
        start = r["sd_j"] + 1
    return any(store_get(r, j) == proc for j in range(start, r["rm_n"]))


def _x_v3(view: View, r: ThreadView, f: Focus) -> bool:
    if not _x_vis(view, r, f):
        return False
    v, k = _pos(view, _xrec(view, f) + 1), f.vpn(view.L)
    lab = view.labels[r.id]
    assert lab is not None
    label = lab.split(".")[1]
    vm, rk = _pos(view, r["rm_vmr"]), r["rm_k"]
    if label in ("p3_start",):
        return False
    if label == "p3_vmr":
        return vm >= v
    if label == "p3_lock":
        return vm > v
    if label == "p3_read":
        return vm > v or (vm == v and rk > k)
    if label in ("p3_dirty", "p3_zero"):
        return vm > v or (vm == v and rk >= k)
    if label == "p3_unlock":
        return vm >= v
    return False


#: munmap's steps and __vmr_free_pgs's, by where they leave X (state.Mu): before the
#: walk reaches X, at X, past it; None: decided by the walk's position.
_MU_AT = {
    "munmap.lock_vmr": Mu.NONE, "isolate_vmrs.first": Mu.P1, "isolate_vmrs.second": Mu.P1,
    "isolate_vmrs.done": Mu.P1, "munmap.lock_pte1": Mu.P1, "munmap.unlock_pte1": Mu.P1D,
    "munmap.shootdown": Mu.P1D, "munmap.shootdown_wait": Mu.SDW, "munmap.p2_start": Mu.P2,
    "munmap.unlock_pte2": Mu.P2D, "destroy_vmr.start": Mu.UL, "pm_remove_vmr.lock": Mu.UL,
    "pm_remove_vmr.unlink": Mu.UL, "destroy_vmr.free": Mu.DEAD,
    # isolate_vmrs's split_vmr (and the seed's pm_add_vmr of the new VMR): before pass 1
    **{f"split_vmr.{lab}": Mu.P1 for lab in ("new", "shrink", "lock_pm", "publish_locked",
                                             "publish", "done")},
    "pm_add_vmr.lock": Mu.P1, "pm_add_vmr.link": Mu.P1,
}


def _mu_phase(view: View, f: Focus) -> tuple[int, ThreadView | None]:
    """munmap of X's VMR: its phase (state.Mu) and its thread.  The munmap is the
    running op of a thread of X's process that names X's page, or an mmap of X's VMR
    on its MAP_POPULATE error path (the same steps, from destroy_vmr or from pass 1);
    once destroy_vmr has freed the record, X's VMR is gone and the phase is NONE again."""
    rec = view.xrec(f)
    if rec is None:  # no VMR maps X's address: X's VMR is gone (or there is no X)
        return Mu.NONE, None
    L, vpn = view.L, f.vpn(view.L)
    for t, lab in zip(view.threads, view.labels, strict=True):
        if lab is None or t.proc != f.proc(L):
            continue
        if _tearing_down(t, lab):
            # __proc_free waits for every other thread: before it takes vmr_lock, a
            # munmap of X's VMR may still be finishing (another thread's phase counts)
            phase, who = _td_phase(view, t, lab, rec, vpn)
            if phase != Mu.NONE:
                return phase, who
            continue
        ops = view.cfg.threads[t.id].ops
        op = ops[t["op"]] if t["op"] < len(ops) else None
        if op is None:
            continue
        if op.op == "mmap":
            # __do_mmap's MAP_POPULATE failed (mm_err): its error path destroys the whole
            # VMR, by destroy_vmr (seed) or by __do_munmap over it (populate-unmap-on-
            # error) -- the record merge_me left it, which after a merge into the VMR
            # before is that VMR's, X's whichever of the two declared VMRs X is in
            if not t["mm_err"] or t["mm_vmr"] != rec + 1:
                continue
        elif op.op != "munmap" or op.vmr != f.v or not op.page <= f.k < op.page + op.pages:
            continue
        func = lab.split(".")[0]
        if func not in ("munmap", "isolate_vmrs", "split_vmr", "pm_add_vmr", "__vmr_free_pgs",
                        "destroy_vmr", "pm_remove_vmr"):
            continue
        if func in ("destroy_vmr", "pm_remove_vmr") or lab == "munmap.unlock_pte2":
            reg = t["dv_vmr"] if func == "destroy_vmr" else (
                t["rmv_vmr"] if func == "pm_remove_vmr" else t["mu_vmr"])
            if reg != rec + 1:
                # another VMR of the range: X's is before it (done) or after it (pass 2)
                done = not view.m.alive(rec)
                return (Mu.NONE if done else Mu.P2), (None if done else t)
        if lab in _MU_AT:
            if not view.m.alive(rec) and _MU_AT[lab] in (Mu.P2, Mu.P2D):
                return Mu.NONE, None
            return _MU_AT[lab], t
        if not view.m.alive(rec):
            return Mu.NONE, None
        base = view.m.vf(rec, "base")
        if func == "munmap" and lab in ("munmap.p1_read", "munmap.p1_write"):
            mr, mk = t["mu_vmr"] - 1, t["mu_vpn"]
            before = mr != rec and view.m.vf(mr, "base") < base
            after = mr != rec and not before
            if lab == "munmap.p1_read":
                phase = Mu.P1 if before or (not after and mk <= vpn) else Mu.P1D
            else:
                phase = Mu.P1W if mr == rec and mk == vpn else (
                    Mu.P1 if before or (mr == rec and mk < vpn) else Mu.P1D)
        elif lab in ("munmap.lock_pte2", "munmap.p2_next", "munmap.unlock_vmr"):
            phase = Mu.P2
        elif func == "__vmr_free_pgs":
            fr, fk = t["fp_vmr"] - 1, t["fp_vpn"]
            if fr != rec or lab == "__vmr_free_pgs.start":
                phase = Mu.P2
            elif lab == "__vmr_free_pgs.read":
                phase = Mu.P2 if fk <= vpn else Mu.P2D
            else:
                phase = Mu.P2R if fk == vpn else (Mu.P2 if fk < vpn else Mu.P2D)
        else:
            raise AbstractionError(f"munmap at an unknown step {lab}")
        return phase, t
    return Mu.NONE, None


_TD = ("__proc_free", "unmap_and_destroy_vmrs")


def _tearing_down(t: ThreadView, lab: str) -> bool:
    """t runs __proc_free's unmap_and_destroy_vmrs (or a function it called)."""
    func = lab.split(".")[0]
    return func in _TD or (func in ("__vmr_free_pgs", "destroy_vmr", "pm_remove_vmr")
                           and "ud_vmr" in t.reg and t["ud_vmr"] != 0)


def _td_phase(view: View, t: ThreadView, lab: str, rec: int, vpn: int
              ) -> tuple[int, ThreadView | None]:
    """The teardown of X's dying process as munmap's phases of X's VMR: from vmr_lock
    on, pass 2 (no pass 1, no shootdown) while __vmr_free_pgs walks the VMRs in
    address order, done once it passed X's; then destroy_vmr of each in turn."""
    m = view.m
    if lab in ("__proc_free.wait", "unmap_and_destroy_vmrs.lock_vmr") or not m.alive(rec):
        return Mu.NONE, None
    base = m.vf(rec, "base")

    def done(other: int) -> bool:  # X's VMR comes before `other` in p->vm_regions
        return other != rec and base < m.vf(other, "base")

    func = lab.split(".")[0]
    if lab == "unmap_and_destroy_vmrs.lock_pte":
        return Mu.P2, t
    if func == "__vmr_free_pgs":
        fr, fk = t["fp_vmr"] - 1, t["fp_vpn"]
        if fr != rec:
            return (Mu.P2D if done(fr) else Mu.P2), t
        if lab == "__vmr_free_pgs.start":
            return Mu.P2, t
        if lab == "__vmr_free_pgs.read":
            return (Mu.P2 if fk <= vpn else Mu.P2D), t
        return (Mu.P2R if fk == vpn else (Mu.P2 if fk < vpn else Mu.P2D)), t
    if lab == "unmap_and_destroy_vmrs.freed":
        return (Mu.P2D if t["ud_vmr"] - 1 == rec or done(t["ud_vmr"] - 1) else Mu.P2), t
    if lab in ("unmap_and_destroy_vmrs.unlock_pte", "unmap_and_destroy_vmrs.destroyed"):
        return Mu.P2D, t
    if func in ("destroy_vmr", "pm_remove_vmr"):
        reg = t["dv_vmr"] if func == "destroy_vmr" else t["rmv_vmr"]
        if reg != rec + 1:
            return Mu.P2D, t  # X's VMR is destroyed after this one (it is still alive)
        return _MU_AT[lab], t
    raise AbstractionError(f"teardown at an unknown step {lab}")


#: __do_mmap's steps by where they leave X's VMR (state.Mx): the step named is the next
#: one the thread runs, so at pm_add_vmr.lock create_vmr has run.
_MX_AT = {"pm_add_vmr.lock": Mx.CREATED, "pm_add_vmr.link": Mx.ADD,
          "mmap.set_file": Mx.LINKED}


def _mx_phase(view: View, f: Focus) -> tuple[int, ThreadView | None]:
    """__do_mmap of X's VMR: its phase (state.Mx) and its thread -- the running op of
    a thread of X's process that maps X's declared VMR, up to set_file (or, with
    mmap-foff-first, up to the link)."""
    if f.v is None:
        return Mx.NONE, None
    rec = f.rec(view.L)
    for t, lab in zip(view.threads, view.labels, strict=True):
        if lab not in _MX_AT or t.proc != f.proc(view.L):
            continue
        ops = view.cfg.threads[t.id].ops
        op = ops[t["op"]] if t["op"] < len(ops) else None
        if op is None or op.op != "mmap" or op.vmr != f.v or t["mm_vmr"] != rec + 1:
            continue
        return _MX_AT[lab], t
    return Mx.NONE, None


def _names(pte: int, page: int | None) -> bool:
    return pte != 0 and page is not None and pte2ppn(pte) == page


#: pass 3's steps at which it holds the pte_lock it took at p3_lock for rm_vmr
_P3_LOCKED = ("pm_remove_contig.p3_read", "pm_remove_contig.p3_dirty",
              "pm_remove_contig.p3_zero", "pm_remove_contig.p3_unlock")


def _mp_regs(view: View, f: Focus, page: int | None) -> dict[str, bool]:
    """mprotect between its plain load and store of X (__do_mprotect's PTE loop, seed):
    the thread of X's process at mprotect.pte_write on X, and the D bit it read.  X is
    found by process and page, not by record: a partial mprotect walks the record its
    split_vmr cut, which may be X's since the split."""
    if f.v is not None:
        vpn = f.vpn(view.L)
        for t, lab in zip(view.threads, view.labels, strict=True):
            if lab == "mprotect.pte_write" and t.proc == f.proc(view.L) and \
                    t["mp_vpn"] == vpn:
                return {"mp_rmw": True,
                        "mp_d": _names(t["mp_pte"], page) and bool(t["mp_pte"] & PTE_D)}
    return {"mp_rmw": False, "mp_d": False}


def _refs(view: View, i: int) -> tuple[int, int, ThreadView | None, ThreadView | None,
                                      bool, int]:
    """Slot i's references (holders, file writers among them), its lookup and insertion
    threads, whether another index's insertion holds pm_lock, and nr_removed not yet
    subtracted: the same for every focus on i."""
    key = ("refs", i)
    hit = view.memo.get(key)
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    holders = fw = 0
    finder = inserter = None
    oins = False
    removed = 0
    for t, lab in zip(view.threads, view.labels, strict=True):
        if t["holds"] == i + 1:
            holders += 1
            fw += lab == "file_io.dirty"
        if lab in ("pm_find_page.read", "pm_find_page.cas", "pm_find_page.unlock") and \
                t["find_index"] == i:
            finder = t
        if lab in ("pm_insert_page.insert", "pm_insert_page.unlock"):
            if t["ins_index"] == i:
                inserter = t
            elif lab == "pm_insert_page.unlock":
                oins = True
        # nr_removed not yet subtracted from pm_num_pages (final_unlock does that;
        # the register lives on until `done`).  Only removers carry the register.
        if "rm_removed" in t.reg and lab != "pm_remove_contig.done":
            removed += t["rm_removed"]
    out = view.memo[key] = (holders, fw, finder, inserter, oins, removed)
    return out


def _others(view: View, i: int) -> int:
    """Occupied slots other than i, and pages the final loop frees at another index."""
    key = ("others", i)
    hit = view.memo.get(key)
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    m, cfg = view.m, view.cfg
    others = 0
    for j in range(cfg.file_pages):
        if j == i:
            continue
        p = _RAW.pm_slot_get_page(m.slot(j), cfg.word_bits)
        others += p is not None and m.in_pool(p)
    for t, lab in zip(view.threads, view.labels, strict=True):
        if lab in ("pm_remove_contig.final_zero_flags", "pm_remove_contig.final_decref") and \
                t["rm_i"] != i:
            others += 1
    view.memo[key] = others
    return others


def _ptes_naming(view: View, page: int | None, r: ThreadView | None, run: bool
                 ) -> list[tuple[tuple[int, int], str]]:
    """Every PTE naming P: ((process, vpn), its counter in state.OTHERS), the class by
    whether the remover's passes visit its VMR."""
    key = ("ptes", page, None if r is None else r.id, run)
    hit = view.memo.get(key)
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    m, cfg = view.m, view.cfg
    out = []
    for p in range(len(cfg.processes)):
        for vpn in cfg.aspace[p]:
            pte = m.pte(p, vpn)
            if not _names(pte, page):
                continue
            w = holder(m, p, vpn << PGSHIFT)
            cls = "b" if run and r is not None and (
                w is None or not m.on_pm(w) or not view.visits(r, w)) else "a"
            state = ("p" if pte & PTE_P else "n") + ("d" if pte & PTE_D else "c")
            out.append(((p, vpn), f"{cls}_{state}"))
    view.memo[key] = out
    return out


def abstract(layout: Layout, state: tuple[int, ...], f: Focus,
             view: View | None = None) -> dict[str, Any]:
    """The symbolic state's values (unprimed names) for one concrete state
    (``view``: the state's View, shared by the foci of one state)."""
    view = view or View(layout, state)
    m, cfg, bits = view.m, view.cfg, view.cfg.word_bits
    i = f.i
    r = view.remover(i)
    rm = _rm_phase(view, r, f)
    run = rm in Rm.RUN

    # P: the slot's page, or the page the final loop is freeing.
    page: int | None = None
    if r is not None and rm in (Rm.FZERO, Rm.FDEC):
        page = r["rm_page"]
    else:
        p = _RAW.pm_slot_get_page(m.slot(i), bits)
        if p is not None and m.in_pool(p):
            page = p
    live = page is not None
    flags = m.pg(page, "flags") if page is not None else 0
    a: dict[str, Any] = {
        "null": PAGE2PPN_NULL[bits] & ((1 << bits) - 1),
        "sync": cfg.shootdown == "sync", "enomem": cfg.enomem,
        "kfs": cfg.writepage == "kfs",
        "scp": f.v is not None and cfg.processes[f.proc(layout)].mode == "scp",
        "slot": m.slot(i), "ppn": page or 0, "live": live,
        "upd": bool(flags & PG_UPTODATE), "rmf": bool(flags & PG_REMOVAL),
        "dirty": bool(flags & PG_DIRTY),
        "newer": live and m.pg(page, "data") != m.store(i),
    }

    # Slot references and who holds pm_lock.
    holders, fw, finder, inserter, oins, removed = _refs(view, i)
    a.update(holders=holders, fw=fw, oins=oins, removed=removed)
    fpc, f_old = Find.NONE, 0
    if finder is not None:
        lab = view.labels[finder.id]
        fpc = {"pm_find_page.read": Find.READ, "pm_find_page.cas": Find.CAS}.get(
            lab or "", Find.HIT if finder["find_page"] else Find.MISS)
        f_old = finder["find_old"] if fpc == Find.CAS else 0
    ipc = Ins.NONE
    if inserter is not None:
        ipc = Ins.INS if view.labels[inserter.id] == "pm_insert_page.insert" else Ins.UNL
    mu, mt = _mu_phase(view, f)
    mx, xt = _mx_phase(view, f)
    owner = m.get("pm_lock") - 1
    lock = Lock.FREE
    if owner >= 0:
        lock = Lock.OTHER
        if finder is not None and owner == finder.id:
            lock = Lock.FIND
        elif inserter is not None and owner == inserter.id:
            lock = Lock.INS
        elif r is not None and owner == r.id and rm in Rm.HOLDS:
            lock = Lock.RM
        elif mt is not None and owner == mt.id and mu == Mu.UL:
            lock = Lock.MU
        elif xt is not None and owner == xt.id and mx == Mx.ADD:
            lock = Lock.ADD
    a.update(lock=lock, fpc=fpc, f_old=f_old, ipc=ipc, num=m.get("pm_num_pages"))

    a["others"] = _others(view, i)

    # The remover.
    a["rm"] = rm
    a["rm_old"] = r["rm_old"] if r is not None and rm in (
        Rm.MCAS, Rm.MPAGE, Rm.FCAS, Rm.FUM, Rm.FZERO, Rm.FDEC, Rm.FDEL) else 0
    a["pinned"] = bool(run and r is not None and r["rm_pinned"] and any(
        m.vf(w, "flags") & MAP_LOCKED and _RAW.vmr_has_page_idx(m.vmr(w), i)
        for w in view.pm))
    wb = False
    if r is not None and rm in Rm.DIRTY + (Rm.WB,) and view.labels[r.id] != \
            "pm_remove_contig.relock":
        start = r["rm_j"] if view.labels[r.id] == "pm_remove_contig.writepage" else 0
        wb = page is not None and any(store_get(r, j) == page for j in range(start, r["rm_n"]))
    a["wb"] = wb
    a["dl_before"] = rm == Rm.WB and r is not None and r["rm_i"] <= i
    a["ord"] = bool(
        r is not None and cfg.fix("atomic-pte-update")
        and view.labels[r.id] == "pm_remove_contig.p3_dirty" and not _at(view, r, f)
        and _names(r["rm_pte"], page) and r["rm_pte"] & PTE_D)

    # X.
    if f.v is not None:
        vmr = cfg.vmrs[f.v]
        rec = view.xrec(f)
        pte = m.pte(f.proc(layout), f.vpn(layout))
        if pte and not _names(pte, page):
            raise AbstractionError(f"X = {pte:#x} names page {pte2ppn(pte)}, not P = {page}")
        xn = _names(pte, page)
        # vm_prot of X's VMR record (mprotect's set_prot writes it; freed with the record)
        a.update(xn=xn, xp=xn and bool(pte & PTE_P), xd=xn and bool(pte & PTE_D),
                 x_pte_w=xn and bool(pte & PTE_W),
                 x_w=rec is not None and m.alive(rec) and bool(m.vf(rec, "prot") & PROT_WRITE),
                 x_locked=bool(vmr.vm_flags & MAP_LOCKED),
                 x_linked=rec is not None and m.on_pm(rec),
                 x_alive=rec is not None and m.alive(rec),
                 dead=m.pstate(f.proc(layout)) in (PROC_DYING, PROC_DEAD))
    else:
        a.update(xn=False, xp=False, xd=False, x_pte_w=False, x_w=False, x_locked=False,
                 x_linked=False, x_alive=False, dead=False)
    xrec = view.xrec(f)
    a["x_hasidx"] = bool(run and xrec is not None and r is not None and
                         _RAW.vmr_has_page_idx(m.vmr(xrec), r["rm_index"]))
    a["x_vis"] = run and _x_vis(view, r, f)
    x_v2 = rm in Rm.PASS2 and r is not None and _x_v2(view, r, f)
    a["x_v2"] = x_v2
    a["x_sent"] = x_v2 and r is not None and not _x_owed(view, r, f)
    a["x_v3"] = rm in Rm.PASS3 and r is not None and _x_v3(view, r, f)
    rr_n = rr_d = False
    if rm in (Rm.P2W, Rm.P3D, Rm.P3Z) and r is not None:
        rr_n, rr_d = _names(r["rm_pte"], page), bool(r["rm_pte"] & PTE_D)
    a.update(rr_n=rr_n, rr_d=rr_d)
    # pass 3 holds pte_lock of X's VMR, the record that maps X now (p3_lock done,
    # p3_unlock not yet): its choice rm_w
    rm_x3 = bool(rm in Rm.PASS3 and r is not None and xrec is not None
                 and r["rm_vmr"] == xrec + 1 and view.labels[r.id] in _P3_LOCKED)
    a.update(rm_x3=rm_x3, rm_w=rm_x3 and r is not None and bool(r["rm_w"]))
    a.update(_mp_regs(view, f, page))

    # munmap of X's VMR.
    a["mu"] = mu
    a["mu_need"] = bool(mt is not None and mu in (Mu.P1, Mu.P1W, Mu.P1D) and mt["mu_needed"])
    mr_n = mr_d = False
    if mu in (Mu.P1W, Mu.P2R) and mt is not None:
        reg = mt["mu_pte"] if mu == Mu.P1W else mt["fp_pte"]
        mr_n, mr_d = _names(reg, page), bool(reg & PTE_D)
    a.update(mr_n=mr_n, mr_d=mr_d)

    # E.
    e = ed = ew = ep = False
    if f.c is not None and f.v is not None:
        entry = m.tlb(f.c, f.vpn(layout))
        if entry and tlb_ppn(entry) != page:
            raise AbstractionError(f"E maps page {tlb_ppn(entry)}, not P = {page}")
        e = bool(entry)
        ed = e and tlb_dirty(entry)
        ew = e and tlb_writable(entry)
        ep = m.flush_pending(f.c)
    a.update(e=e, ed=ed, ew=ew, ep=ep)

    # Other PTEs naming P, and munmap registers holding their D bit.
    counts = dict.fromkeys(OTHERS, 0)
    x_at = (f.proc(layout), f.vpn(layout)) if f.v is not None else None
    for at, cls in _ptes_naming(view, page, r, run):
        if at != x_at:
            counts[cls] += 1
    a.update(counts)
    omd = 0
    if cfg.fix("munmap-fold-dirty"):
        for t, lab in zip(view.threads, view.labels, strict=True):
            if lab == "__vmr_free_pgs.zero" and (t.proc, t["fp_vpn"]) != x_at and \
                    _names(t["fp_pte"], page) and t["fp_pte"] & PTE_D:
                omd += 1
    a["omd"] = omd

    # mmap of X's VMR: the record's own vm_file (0 from create_vmr to set_file on seed)
    a["mx"] = mx
    a["x_foff"] = f.v is None or not m.alive(f.rec(layout)) or bool(m.vf(f.rec(layout), "file"))
    return a


def core_leaves(layout: Layout, pre: tuple[int, ...], post: tuple[int, ...], c: int) -> bool:
    """Core c abandons its process's address space in this transition (its TLB is
    emptied without a flush): the last thread homed on it ran its last op
    (sched.finish), or its SCP blocked and is PROC_WAITING now (sched.sleep)."""
    core = layout.cfg.cores[c]
    threads = core.threads
    if any(pre[layout.thread0[t]] != DONE_PC for t in threads) and \
            all(post[layout.thread0[t]] == DONE_PC for t in threads):
        return True
    if core.proc < 0 or layout.cfg.processes[core.proc].mode != "scp":
        return False
    off = layout.proc_off(core.proc, "state")
    return pre[off] == PROC_RUNNING_S and post[off] == PROC_WAITING

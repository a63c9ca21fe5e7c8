"""The modeled machine: shared memory, cores, threads, and the steps they take.

The whole state of a run is one flat tuple of ints (SPIN's state vector, in
spirit): compact, hashable, cheap to compare.  ``Layout`` names every
position; ``Machine`` is a short-lived mutable view used to compute one
successor; ``Code`` is the table of atomic steps the kernel modules
(pm.py, fault.py, mm.py, munmap.py, mmap.py, mprotect.py, proc.py, fileio.py,
hardware.py, removal.py) register.

Each step is one shared-memory access, atomic operation or lock operation of
the 2014 C code, plus the thread-local computation that follows it
(spec/steps.md).  A step returns ``BLOCKED`` without writing anything when it cannot run
(a spinlock held by another thread, a sleeping semaphore waiter).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pagemap.config import FIXES, Config
from pagemap.pageflags import PGSHIFT
from pagemap.vmr import VMR, VMR_FIELDS

BLOCKED = "blocked"
DONE_PC = 0
OP_DONE = -1  # return address of a thread's top-level op: start the next op
STACK_DEPTH = 6

# Fields of struct page the model keeps, per physical page.
PAGE_FIELDS = ("kref", "flags", "tslot", "index", "sem", "semq", "data")
TSLOT_POISON = -1  # pg_tree_slot = 0xdeadbeef in pm_insert_page

#: Process states of kern/include/process.h that matter to proc_tlbshootdown.
PROC_RUNNING_S, PROC_WAITING, PROC_RUNNING_M, PROC_DYING, PROC_DEAD = 1, 2, 3, 4, 5
PROC_STATE_NAMES = {PROC_RUNNING_S: "RUNNING_S", PROC_WAITING: "WAITING",
                    PROC_RUNNING_M: "RUNNING_M", PROC_DYING: "DYING", PROC_DEAD: "freed"}
PROC_FIELDS = ("vmr_lock", "pte_lock", "state", "inkern")

#: Page-table pages (PML1) cover 512 virtual pages each.
PT_SHIFT = 9


class Violation(Exception):
    """Raised by a step (or an invariant) that breaks an invariant of spec/invariants.md."""

    def __init__(self, invariant: str, message: str) -> None:
        super().__init__(f"{invariant}: {message}")
        self.invariant = invariant
        self.message = message


class ScenarioTooSmall(Exception):
    """The page pool ran out while `[faults] enomem` is off: the scenario is
    mis-sized (pool_pages), which is bad input, not a finding."""


@dataclass(frozen=True)
class Step:
    pc: int
    func: str  # the C function the step belongs to
    label: str  # this step's name inside the function
    c: str  # the C statement it models, in words
    fn: Callable[[Machine, ThreadView], object]
    # True: touches no shared state, runs right after the step before it;
    # "static-vmrs": the same in runs where no op changes a VMR on pm_vmrs.
    local: bool | str
    lock: str | None = None  # the spinlock this step acquires (pm_lock, vmr_lock, pte_lock)
    user: bool = False  # runs in user mode (a load or store); every other step is kernel code
    fixed: tuple[tuple[str, str], ...] = ()  # (fix, what the step does with that fix on)

    def text(self, fixes: frozenset[str]) -> str:
        """The C statement this step models in a variant with ``fixes`` on."""
        for fix, text in self.fixed:
            if fix in fixes:
                return text
        return self.c


class Code:
    """The program text: every step of every modeled C function, by pc.

    Modules register their steps at import time with ``@code.step(...)``;
    after ``pagemap.program`` has imported them all, the table is only read.
    """

    def __init__(self) -> None:
        self.steps: list[Step | None] = [None]  # pc 0 is DONE
        self.by_name: dict[str, int] = {}
        self.registers: list[str] = []
        self.frame_regs: dict[str, tuple[str, ...]] = {}

    def function(self, func: str, regs: tuple[str, ...]) -> None:
        """Declare the registers (locals) a function keeps across its steps."""
        self.frame_regs[func] = regs
        for r in regs:
            if r not in self.registers:
                self.registers.append(r)

    def step(
        self, func: str, label: str, c: str, local: bool | str = False, lock: str | None = None,
        user: bool = False, fixed: dict[str, str] | None = None,
    ) -> Callable:
        """Register a step.  ``local`` marks thread-local computation (a test
        of a returned value, a call): it reads and writes only the thread's
        own registers, commutes with every other step, and so runs at once
        after the step before it instead of being a point of interleaving.
        ``lock`` names the spinlock the step acquires ("pm_lock", or the
        thread's own process's "vmr_lock" / "pte_lock"): the explorer then
        knows without running it that the step is blocked while another
        thread holds that lock.  ``user``: the step runs in user mode (the
        explorer enters the kernel for every other step, see sched.py).
        ``fixed``: what the step does instead when a fix is on, for traces."""
        assert lock in (None, "pm_lock", "vmr_lock", "pte_lock")
        assert local in (True, False, "static-vmrs")

        def deco(fn: Callable) -> Callable:
            name = f"{func}.{label}"
            assert name not in self.by_name, name
            pc = len(self.steps)
            alt = tuple((fixed or {}).items())
            assert all(f in FIXES for f, _ in alt), alt
            self.steps.append(Step(pc, func, label, c, fn, local, lock, user, alt))
            self.by_name[name] = pc
            return fn

        return deco

    def pc(self, name: str) -> int:
        return self.by_name[name]


CODE = Code()


class Layout:
    """Names every position of the state vector for one configuration."""

    def __init__(
        self,
        cfg: Config,
        code: Code,
        contracts: bool = True,
        replace: dict[str, Callable[[Machine, ThreadView], object]] | None = None,
        thread_funcs: list[frozenset[str]] | None = None,
    ) -> None:
        from pagemap.codec import make_codec

        self.cfg = cfg
        self.code = code
        self.codec = make_codec(contracts)
        # The step table this run executes: the program's, with any step
        # replaced by a mutant for this run only.  With contracts off, each step
        # runs without its icontract conditions (icontract keeps the plain
        # function in __wrapped__): the same code, no checks.
        self.steps: list[Step | None] = [
            st if st is None or contracts else _uncontracted(st) for st in code.steps]
        for name, fn in (replace or {}).items():
            old = self.steps[code.pc(name)]
            assert old is not None
            self.steps[old.pc] = Step(old.pc, old.func, old.label, old.c + " [MUTATED]", fn,
                                      old.local, old.lock, old.user, old.fixed)
        #: Whether no op of this run changes the fields of a VMR on pm_vmrs (mmap,
        #: a partial munmap's split, mprotect): then reading them is local.
        self.vmrs_static = not any(
            op.op in ("mmap", "mprotect")
            or (op.op == "munmap" and (op.page, op.pages) != (0, cfg.vmrs[op.vmr].npages))
            for th in cfg.threads for op in th.ops)
        #: per pc: the step runs at once after the step before it (see Code.step)
        self.local = [False] + [
            st is not None and (st.local is True or (st.local == "static-vmrs"
                                                     and self.vmrs_static))
            for st in self.steps[1:]]
        self.names: list[str] = []
        self.off: dict[str, int] = {}

        def add(name: str) -> int:
            self.off[name] = len(self.names)
            self.names.append(name)
            return self.off[name]

        for name in ("pm_lock", "pm_removal", "pm_num_pages", "radix_depth", "rm_disturbed"):
            add(name)
        n = cfg.file_pages
        self.slot0 = len(self.names)
        for i in range(n):
            add(f"slot[{i}]")
        self.store0 = len(self.names)
        for i in range(n):
            add(f"store[{i}]")
        self.last0 = len(self.names)
        for i in range(n):
            add(f"last_write[{i}]")
        self.page0 = len(self.names)  # page ppn's field f at page0 + (ppn-1)*NF + f
        for ppn in range(1, cfg.pool_pages + 1):
            for f in PAGE_FIELDS:
                add(f"page{ppn}.{f}")
        # Processes: locks, state; VMR records; page tables; PTEs.
        self.proc0 = len(self.names)
        for pr in cfg.processes:
            for f in PROC_FIELDS:
                add(f"{pr.name}.{f}")
        # Page-table (PML1) presence: only with [faults] enomem can pgdir_walk fail.
        self.pt_off: list[dict[int, int]] = []
        for p, proc in enumerate(cfg.processes):
            tables = sorted({vpn >> PT_SHIFT for vpn in cfg.aspace[p]}) if cfg.enomem else []
            self.pt_off.append({tb: add(f"{proc.name}.pt[{tb}]") for tb in tables})
        # VMR records: the declared VMRs first (record v of process p is its v-th
        # declared VMR), then spare records for the pieces split_vmr cuts.
        self.rec_proc: list[int] = []
        self.rec_name: list[str] = []
        self.proc_recs: list[tuple[int, ...]] = []
        self.decl_rec: dict[int, int] = {}  # declared VMR -> its record
        for p, proc in enumerate(cfg.processes):
            recs = []
            for j in range(cfg.vmr_records[p]):
                r = len(self.rec_proc)
                name = cfg.vmrs[proc.vmrs[j]].name if j < len(proc.vmrs) else \
                    f"{proc.name}.vmr{j - len(proc.vmrs) + 1}"
                if j < len(proc.vmrs):
                    self.decl_rec[proc.vmrs[j]] = r
                self.rec_proc.append(p)
                self.rec_name.append(name)
                recs.append(r)
            self.proc_recs.append(tuple(recs))
        self.vmr0 = len(self.names)
        for name in self.rec_name:
            for f in VMR_FIELDS:
                add(f"{name}.{f}")
        self.nrec = len(self.rec_name)
        self.pte_off: list[dict[int, int]] = []
        for p, proc in enumerate(cfg.processes):
            names = cfg.page_names[p]
            self.pte_off.append({vpn: add(f"{proc.name}.pte[{names[vpn]}]")
                                 for vpn in cfg.aspace[p]})
        # Cores: who runs kernel code on it, a pending flush IPI, its TLB.
        self.core0 = len(self.names)
        self.occ: list[int] = []
        self.flush: dict[int, int] = {}  # core -> offset of its flush_pending
        self.tlb_off: list[dict[int, int]] = []
        for c, core in enumerate(cfg.cores):
            self.occ.append(add(f"{core.name}.occ"))
            if core.proc >= 0:
                self.flush[c] = add(f"{core.name}.flush_pending")
                names = cfg.page_names[core.proc]
                self.tlb_off.append({vpn: add(f"{core.name}.tlb[{names[vpn]}]")
                                     for vpn in cfg.aspace[core.proc]})
            else:
                self.tlb_off.append({})
        # Per thread, the core its kernel code runs on (core + 1; 0 in user mode):
        # shared, because a waker redirects a sleeper to its own core (sched.py).
        self.cpu = [add(f"{th.name}.cpu") for th in cfg.threads]
        self.home = cfg.home
        # Threads: pc, stack pointer, return stack, op index, held slot, then the
        # registers of the functions this thread can run (``thread_funcs``; all
        # of them when not given): a thread that never removes pages carries no
        # pm_remove_contig locals, which keeps states short.
        self.thread0: list[int] = []
        self.treg: list[dict[str, int]] = []  # per thread: register -> offset in its region
        self.thread_sizes: list[int] = []
        self.pcs = code.by_name
        fixed = ("pc", "sp") + tuple(f"ret{k}" for k in range(STACK_DEPTH)) + ("op", "holds")
        self.fixed_reg = {r: k for k, r in enumerate(fixed)}
        for t, th in enumerate(cfg.threads):
            funcs = None if thread_funcs is None else thread_funcs[t]
            regs = list(fixed)
            for f, rs in code.frame_regs.items():
                if funcs is None or f in funcs:
                    regs += [r for r in rs if r not in regs]
            self.thread0.append(len(self.names))
            self.treg.append({r: k for k, r in enumerate(regs)})
            self.thread_sizes.append(len(regs))
            for reg in regs:
                add(f"{th.name}.{reg}")
        self.thread_size = max(self.thread_sizes, default=len(fixed))
        self.size = len(self.names)
        #: per thread, the state offset of each lock a Step.lock may name
        self.lock_off: list[dict[str, int]] = []
        for th in cfg.threads:
            offs = {"pm_lock": self.off["pm_lock"]}
            if th.proc >= 0:
                offs["vmr_lock"] = self.proc_off(th.proc, "vmr_lock")
                offs["pte_lock"] = self.proc_off(th.proc, "pte_lock")
            self.lock_off.append(offs)
        #: every spinlock word (sleep-holding-spinlock looks at all of them)
        self.spinlocks = [self.off["pm_lock"]] + [
            self.proc_off(p, f) for p in range(len(cfg.processes)) for f in ("vmr_lock", "pte_lock")]
        self._page_field = {f: k for k, f in enumerate(PAGE_FIELDS)}
        self._vmr_field = {f: k for k, f in enumerate(VMR_FIELDS)}
        self.dispatch: Callable[[ThreadView], None] = _no_dispatch
        #: The invariants' offsets for this layout (pagemap.checker.invariants), made
        #: on first use; a declared field, so that a compiled Layout can hold it.
        self.invariant_plan: object = None
        self.frame_offsets = [
            {f: tuple(reg[r] for r in rs if r in reg) for f, rs in code.frame_regs.items()}
            for reg in self.treg
        ]
        # Per thread: its process, and for an SCP the offset of the process's
        # `inkern` word (the uthread in the kernel, see sched.py), else -1.
        self.scp_inkern = [
            self.proc_off(th.proc, "inkern")
            if th.proc >= 0 and cfg.processes[th.proc].mode == "scp" else -1
            for th in cfg.threads]
        self.pstate_off = [self.proc_off(th.proc, "state") if th.proc >= 0 else -1
                           for th in cfg.threads]

    def proc_off(self, p: int, which: str) -> int:
        """Where a field of process p (vmr_lock, pte_lock, state, inkern) lies."""
        return self.proc0 + len(PROC_FIELDS) * p + PROC_FIELDS.index(which)

    def proc_lock_off(self, p: int, which: str) -> int:
        return self.proc_off(p, which)

    def page_off(self, ppn: int, field: str) -> int:
        return self.page0 + (ppn - 1) * len(PAGE_FIELDS) + self._page_field[field]

    def vmr_off(self, r: int, field: str) -> int:
        return self.vmr0 + r * len(VMR_FIELDS) + self._vmr_field[field]

    def page_name(self, p: int, vpn: int) -> str:
        return self.cfg.page_names[p][vpn]


def _uncontracted(st: Step) -> Step:
    fn = st.fn
    while hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    return Step(st.pc, st.func, st.label, st.c, fn, st.local, st.lock, st.user, st.fixed)


def _no_dispatch(t: ThreadView) -> None:
    raise RuntimeError("Layout.dispatch not set: build layouts with pagemap.program")


class Machine:
    """A mutable copy of one state, for computing one successor."""

    __slots__ = ("L", "bits", "branch", "c", "cfg", "chose", "events", "v")

    def __init__(self, layout: Layout, state: tuple[int, ...]) -> None:
        self.L = layout
        self.cfg = layout.cfg
        self.c = layout.codec  # the contracted pure functions (pagemap.codec)
        self.v = list(state)
        self.bits = layout.cfg.word_bits
        self.events: list[str] = []  # notes for the trace ("page 2 freed")
        # A step with two outcomes (an allocation that may fail under [faults]
        # enomem) reads ``branch`` and sets ``chose``; the explorer then runs it
        # again with the other branch (pagemap.alloc).
        self.branch = 0
        self.chose = False

    def freeze(self) -> tuple[int, ...]:
        return tuple(self.v)

    # -- named scalars ---------------------------------------------------------
    def get(self, name: str) -> int:
        return self.v[self.L.off[name]]

    def set(self, name: str, value: int) -> None:
        self.v[self.L.off[name]] = value

    # -- radix slots, backing store, ghost ---------------------------------------
    def slot(self, i: int) -> int:
        return self.v[self.L.slot0 + i]

    def set_slot(self, i: int, w: int) -> None:
        self.v[self.L.slot0 + i] = w

    def store(self, i: int) -> int:
        return self.v[self.L.store0 + i]

    def set_store(self, i: int, d: int) -> None:
        self.v[self.L.store0 + i] = d

    def last(self, i: int) -> int:
        return self.v[self.L.last0 + i]

    def set_last(self, i: int, d: int) -> None:
        self.v[self.L.last0 + i] = d

    # -- struct page -----------------------------------------------------------
    def pg(self, ppn: int, field: str) -> int:
        return self.v[self.L.page_off(ppn, field)]

    def set_pg(self, ppn: int, field: str, value: int) -> None:
        self.v[self.L.page_off(ppn, field)] = value

    def in_pool(self, ppn: int) -> bool:
        return 1 <= ppn <= self.cfg.pool_pages

    def page_free(self, ppn: int) -> bool:
        return self.pg(ppn, "kref") == 0

    def touch(self, ppn: int, what: str) -> None:
        """An access to page ppn's frame or struct: it must not be free."""
        if not self.in_pool(ppn):
            raise Violation("no-use-after-free", f"{what}: page {ppn} is not a real page")
        if self.page_free(ppn):
            raise Violation("no-use-after-free", f"{what}: page {ppn} was freed")

    # -- processes -------------------------------------------------------------------
    def proc_lock(self, p: int, which: str) -> int:
        return self.v[self.L.proc_off(p, which)]

    def set_proc_lock(self, p: int, which: str, value: int) -> None:
        self.v[self.L.proc_off(p, which)] = value

    def pstate(self, p: int) -> int:
        return self.v[self.L.proc_off(p, "state")]

    def set_pstate(self, p: int, s: int) -> None:
        self.v[self.L.proc_off(p, "state")] = s

    # -- VMR records ---------------------------------------------------------------------
    def vf(self, r: int, field: str) -> int:
        return self.v[self.L.vmr_off(r, field)]

    def set_vf(self, r: int, field: str, value: int) -> None:
        self.v[self.L.vmr_off(r, field)] = value

    def vmr(self, r: int) -> VMR:
        """Record r's fields as a thread reads them, for the pagemap.vmr helpers."""
        b = self.L.vmr_off(r, "base")
        v = self.v
        return VMR(self.L.rec_name[r], self.L.rec_proc[r], v[b], v[b + 1], v[b + 2], v[b + 3],
                   v[b + 4])

    def alive(self, r: int) -> bool:
        return bool(self.vf(r, "alive"))

    def on_pm(self, r: int) -> bool:
        return bool(self.vf(r, "on_pm"))

    def pm_vmrs(self) -> list[int]:
        """pm->pm_vmrs in list order (TAILQ_FOREACH)."""
        recs = [(self.vf(r, "on_pm"), r) for r in range(self.L.nrec) if self.vf(r, "on_pm")]
        return [r for _, r in sorted(recs)]

    def proc_vmrs(self, p: int) -> list[int]:
        """p->vm_regions: the process's VMRs in address order."""
        recs = [(self.vf(r, "base"), r) for r in self.L.proc_recs[p] if self.vf(r, "alive")]
        return [r for _, r in sorted(recs)]

    def find_vmr(self, p: int, va: int) -> int | None:
        """find_vmr(p, va): the VMR of p containing va (a linear search)."""
        for r in self.proc_vmrs(p):
            if self.vf(r, "base") <= va < self.vf(r, "end"):
                return r
        return None

    def find_first_vmr(self, p: int, va: int) -> int | None:
        """find_first_vmr(p, va): the VMR containing va or the first one above it."""
        for r in self.proc_vmrs(p):
            if va < self.vf(r, "end"):
                return r
        return None

    def next_vmr(self, p: int, r: int) -> int | None:
        """TAILQ_NEXT(vmr, vm_link): the next VMR of p in address order."""
        recs = self.proc_vmrs(p)
        k = recs.index(r) if r in recs else -1
        return recs[k + 1] if 0 <= k < len(recs) - 1 else None

    # -- page tables, PTEs -----------------------------------------------------------------
    def pte(self, p: int, vpn: int) -> int:
        return self.v[self.L.pte_off[p][vpn]]

    def set_pte(self, p: int, vpn: int, w: int) -> None:
        self.v[self.L.pte_off[p][vpn]] = w

    def pt_present(self, p: int, vpn: int) -> bool:
        """Whether vpn's page-table page exists (always, unless [faults] enomem)."""
        off = self.L.pt_off[p].get(vpn >> PT_SHIFT)
        return True if off is None else bool(self.v[off])

    def set_pt_present(self, p: int, vpn: int) -> None:
        off = self.L.pt_off[p].get(vpn >> PT_SHIFT)
        if off is not None:
            self.v[off] = 1

    # -- cores, TLBs -----------------------------------------------------------------------
    def tlb(self, c: int, vpn: int) -> int:
        return self.v[self.L.tlb_off[c][vpn]]

    def set_tlb(self, c: int, vpn: int, e: int) -> None:
        self.v[self.L.tlb_off[c][vpn]] = e

    def flush_tlb(self, c: int) -> None:
        """tlbflush() on core c: every entry of its TLB goes."""
        for off in self.L.tlb_off[c].values():
            self.v[off] = 0

    def tlb_nonempty(self, c: int) -> bool:
        return any(self.v[off] for off in self.L.tlb_off[c].values())

    def flush_pending(self, c: int) -> bool:
        off = self.L.flush.get(c)
        return off is not None and bool(self.v[off])

    def set_flush_pending(self, c: int, b: bool) -> None:
        off = self.L.flush.get(c)
        if off is not None:
            self.v[off] = int(b)

    def cpu(self, t: int) -> int:
        """The core thread t's kernel code runs on; its home core in user mode."""
        k = self.v[self.L.cpu[t]]
        return k - 1 if k else self.L.home[t]

    def thread(self, t: int) -> ThreadView:
        return ThreadView(self, t)

    def note(self, text: str) -> None:
        self.events.append(text)


# TLB entry encoding: 0 = none, else (ppn << 2) | dirty << 1 | writable.
def tlb_entry(ppn: int, dirty: bool, writable: bool) -> int:
    return (ppn << 2) | (int(dirty) << 1) | int(writable)


def tlb_ppn(e: int) -> int:
    return e >> 2


def tlb_dirty(e: int) -> bool:
    return bool(e & 2)


def tlb_writable(e: int) -> bool:
    return bool(e & 1)


def vpn_of(va: int) -> int:
    return va >> PGSHIFT


class ThreadView:
    """One thread's program counter, return stack and registers in a Machine."""

    __slots__ = ("base", "cfg", "id", "m", "reg")

    def __init__(self, m: Machine, t: int) -> None:
        self.m = m
        self.id = t
        self.base = m.L.thread0[t]
        self.reg = m.L.treg[t]
        self.cfg = m.cfg.threads[t]

    def __getitem__(self, r: str) -> int:
        return self.m.v[self.base + self.reg[r]]

    def __setitem__(self, r: str, value: int) -> None:
        self.m.v[self.base + self.reg[r]] = value

    @property
    def owner(self) -> int:
        """The value a lock holds while this thread owns it."""
        return self.id + 1

    @property
    def proc(self) -> int:
        return self.cfg.proc

    @property
    def core(self) -> int:
        """The core this thread runs on now (sched.py)."""
        return self.m.cpu(self.id)

    def goto(self, name: str) -> None:
        self.m.v[self.base] = self.m.L.pcs[name]  # pc is a thread's first register

    def call(self, entry: str, ret: str | None, **args: int) -> None:
        """Call a modeled function: push the return pc, pass args in registers.

        ``ret=None`` is a thread's top-level op: returning starts the next op."""
        sp = self["sp"]
        if sp >= STACK_DEPTH:
            raise RuntimeError("model call stack overflow")
        self[f"ret{sp}"] = OP_DONE if ret is None else self.m.L.code.pc(ret)
        self["sp"] = sp + 1
        for k, val in args.items():
            self[k] = val
        self.goto(entry)

    def ret(self, func: str, value: int = 0) -> None:
        """Return from ``func``: clear its registers, pass ``value`` in rv."""
        base = self.base
        for off in self.m.L.frame_offsets[self.id][func]:
            self.m.v[base + off] = 0
        self["rv"] = value
        sp = self["sp"] - 1
        target = self[f"ret{sp}"]
        self[f"ret{sp}"] = 0
        self["sp"] = sp
        if target == OP_DONE:
            self["op"] += 1
            self.m.L.dispatch(self)
        else:
            self["pc"] = target


CODE.function("thread", ("rv",))

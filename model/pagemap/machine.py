"""The modeled machine: shared memory, threads, and the steps they take.

The whole state of a run is one flat tuple of ints (SPIN's state vector, in
spirit): compact, hashable, cheap to compare.  ``Layout`` names every
position; ``Machine`` is a short-lived mutable view used to compute one
successor; ``Code`` is the table of atomic steps the kernel modules
(pm.py, fault.py, munmap.py, fileio.py, hardware.py, removal.py) register.

Each step is one shared-memory access, atomic operation or lock operation of
the 2014 C code, plus the thread-local computation that follows it (DESIGN
§2.2).  A step returns ``BLOCKED`` without writing anything when it cannot run
(a spinlock held by another thread, a sleeping semaphore waiter).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pagemap.config import Config

BLOCKED = "blocked"
DONE_PC = 0
OP_DONE = -1  # return address of a thread's top-level op: start the next op
STACK_DEPTH = 5

# Fields of struct page the model keeps, per physical page.
PAGE_FIELDS = ("kref", "flags", "tslot", "index", "sem", "semq", "data")
TSLOT_POISON = -1  # pg_tree_slot = 0xdeadbeef in pm_insert_page


class ScenarioTooSmall(Exception):
    """A page allocation found the pool empty in a scenario without
    ``[faults] enomem``: the scenario is mis-sized (too few ``pool_pages``),
    which says nothing about the kernel.  `pagemap check` reports it as bad
    input (exit 2), not as a finding."""


class Violation(Exception):
    """Raised by a step (or an invariant) that breaks an invariant of DESIGN §3."""

    def __init__(self, invariant: str, message: str) -> None:
        super().__init__(f"{invariant}: {message}")
        self.invariant = invariant
        self.message = message


@dataclass(frozen=True)
class Step:
    pc: int
    func: str  # the C function the step belongs to
    label: str  # this step's name inside the function
    c: str  # the C statement it models, in words
    fn: Callable[[Machine, ThreadView], object]
    local: bool  # touches no shared state: runs right after the step before it
    lock: str | None = None  # the spinlock this step acquires (pm_lock, vmr_lock, pte_lock)
    #: (fix name, C text) pairs: what the step does instead when that fix is on
    #: (the first pair whose fix the running variant has wins).
    fixed: tuple[tuple[str, str], ...] = ()

    def text(self, fixes: frozenset[str] | set[str] = frozenset()) -> str:
        """The C statement this step performs under the given fixes."""
        for fix, c in self.fixed:
            if fix in fixes:
                return c
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
        self, func: str, label: str, c: str, local: bool = False, lock: str | None = None,
        fixed: tuple[tuple[str, str], ...] = (),
    ) -> Callable:
        """Register a step.  ``local`` marks thread-local computation (a test
        of a returned value, a call): it reads and writes only the thread's
        own registers, commutes with every other step, and so runs at once
        after the step before it instead of being a point of interleaving.
        ``lock`` names the spinlock the step acquires ("pm_lock", or the
        thread's own process's "vmr_lock" / "pte_lock"): the explorer then
        knows without running it that the step is blocked while another
        thread holds that lock.  ``fixed`` gives, per fix, the C text of what
        the step does when that fix is on (``Step.text``)."""
        assert lock in (None, "pm_lock", "vmr_lock", "pte_lock")

        def deco(fn: Callable) -> Callable:
            name = f"{func}.{label}"
            assert name not in self.by_name, name
            pc = len(self.steps)
            self.steps.append(Step(pc, func, label, c, fn, local, lock, tuple(fixed)))
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
        # replaced by a mutant (pagemap.checker.mutations) for this run only.
        self.steps: list[Step | None] = list(code.steps)
        for name, fn in (replace or {}).items():
            old = self.steps[code.pc(name)]
            assert old is not None
            self.steps[old.pc] = Step(old.pc, old.func, old.label, old.c + " [MUTATED]", fn,
                                      old.local, old.lock,
                                      tuple((f, c + " [MUTATED]") for f, c in old.fixed))
        self.names: list[str] = []
        self.off: dict[str, int] = {}

        def add(name: str) -> int:
            self.off[name] = len(self.names)
            self.names.append(name)
            return self.off[name]

        for name in ("pm_lock", "pm_removal", "pm_num_pages", "radix_depth"):
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
        self.proc0 = len(self.names)
        for p in cfg.processes:
            add(f"{p.name}.vmr_lock")
            add(f"{p.name}.pte_lock")
        self.vmr_on_pm0 = len(self.names)
        for vmr in cfg.vmrs:
            add(f"{vmr.name}.on_pm_vmrs")
        self.vmr_alive0 = len(self.names)
        for vmr in cfg.vmrs:
            add(f"{vmr.name}.alive")
        self.pte0: list[int] = []
        for vmr in cfg.vmrs:
            self.pte0.append(len(self.names))
            for k in range(vmr.npages):
                add(f"{vmr.name}.pte[{k}]")
        # TLBs: one per user thread (its core), entries for its process's VMRs.
        self.tlb0: dict[tuple[int, int], int] = {}
        self.flush: dict[int, int] = {}
        for t, th in enumerate(cfg.threads):
            if th.proc < 0:
                continue
            for v in cfg.processes[th.proc].vmrs:
                self.tlb0[(t, v)] = len(self.names)
                for k in range(cfg.vmrs[v].npages):
                    add(f"{th.name}.tlb[{cfg.vmrs[v].name}+{k}]")
            self.flush[t] = add(f"{th.name}.flush_pending")
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
            for r in regs:
                add(f"{th.name}.{r}")
        self.thread_size = max(self.thread_sizes, default=len(fixed))
        self.size = len(self.names)
        #: per thread, the state offset of each lock a Step.lock may name
        self.lock_off: list[dict[str, int]] = []
        for th in cfg.threads:
            offs = {"pm_lock": self.off["pm_lock"]}
            if th.proc >= 0:
                offs["vmr_lock"] = self.proc_lock_off(th.proc, "vmr_lock")
                offs["pte_lock"] = self.proc_lock_off(th.proc, "pte_lock")
            self.lock_off.append(offs)
        self._page_field = {f: k for k, f in enumerate(PAGE_FIELDS)}
        self.dispatch: Callable[[ThreadView], None] = _no_dispatch
        self.frame_offsets = [
            {f: tuple(reg[r] for r in rs if r in reg) for f, rs in code.frame_regs.items()}
            for reg in self.treg
        ]

    def proc_lock_off(self, p: int, which: str) -> int:
        """Where process p's vmr_lock or pte_lock word lies in the state."""
        return self.proc0 + 2 * p + (0 if which == "vmr_lock" else 1)

    def page_off(self, ppn: int, field: str) -> int:
        return self.page0 + (ppn - 1) * len(PAGE_FIELDS) + self._page_field[field]


def _no_dispatch(t: ThreadView) -> None:
    raise RuntimeError("Layout.dispatch not set: build layouts with pagemap.program")


class Machine:
    """A mutable copy of one state, for computing one successor."""

    __slots__ = ("L", "bits", "c", "cfg", "events", "v")

    def __init__(self, layout: Layout, state: tuple[int, ...]) -> None:
        self.L = layout
        self.cfg = layout.cfg
        self.c = layout.codec  # the contracted pure functions (pagemap.codec)
        self.v = list(state)
        self.bits = layout.cfg.word_bits
        self.events: list[str] = []  # notes for the trace ("page 2 freed")

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

    # -- processes, VMRs, PTEs, TLBs ------------------------------------------------
    def proc_lock(self, p: int, which: str) -> int:
        return self.v[self.L.proc_lock_off(p, which)]

    def set_proc_lock(self, p: int, which: str, value: int) -> None:
        self.v[self.L.proc_lock_off(p, which)] = value

    def on_pm(self, v: int) -> bool:
        return bool(self.v[self.L.vmr_on_pm0 + v])

    def set_on_pm(self, v: int, b: bool) -> None:
        self.v[self.L.vmr_on_pm0 + v] = int(b)

    def alive(self, v: int) -> bool:
        return bool(self.v[self.L.vmr_alive0 + v])

    def set_alive(self, v: int, b: bool) -> None:
        self.v[self.L.vmr_alive0 + v] = int(b)

    def pte(self, v: int, k: int) -> int:
        return self.v[self.L.pte0[v] + k]

    def set_pte(self, v: int, k: int, w: int) -> None:
        self.v[self.L.pte0[v] + k] = w

    def tlb(self, t: int, v: int, k: int) -> int:
        return self.v[self.L.tlb0[(t, v)] + k]

    def set_tlb(self, t: int, v: int, k: int, e: int) -> None:
        self.v[self.L.tlb0[(t, v)] + k] = e

    def flush_tlb(self, t: int) -> None:
        """tlbflush() on thread t's core: every entry of its TLB goes."""
        th = self.cfg.threads[t]
        for v in self.cfg.processes[th.proc].vmrs:
            base = self.L.tlb0[(t, v)]
            for k in range(self.cfg.vmrs[v].npages):
                self.v[base + k] = 0

    def flush_pending(self, t: int) -> bool:
        return bool(self.v[self.L.flush[t]])

    def set_flush_pending(self, t: int, b: bool) -> None:
        self.v[self.L.flush[t]] = int(b)

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

"""Mutation tests of the protocol: deliberate, realistic errors in the C, as
mutations of the model's real source.

Each ``Mutation`` is a named list of source patches (``Patch``: in one function of
one module, replace one exact piece of text by another) that makes one mistake a
programmer could have made in kern/src/pagemap.c, kern/src/mm.c, kern/src/vfs.c or
kern/src/kthread.c, with the scenario of ``tests/mutation_scenarios`` and the
invariant that must catch it.  ``Mutation.replace()`` applies the patches to the
real functions (``pagemap.checker.patch``) and returns the rebuilt steps, for
``Explorer(cfg, replace=...)``.  Nothing here copies a step: a patch whose text is
no longer in the real function fails at once (``PatchError``), so a change of the
real code cannot leave a mutant testing an old body.

The explorer runs the named scenario on the ``fixed`` variant: without the
mutation it must pass, with it the checker must report a violation of the named
invariant.  The mutations no scenario can tell from the real code are argued in
spec/mutations.md and kept in ``SURVIVORS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pagemap.checker.explore import Explorer, Outcome
from pagemap.checker.patch import Patch, apply
from pagemap.checker.scenario import load
from pagemap.machine import Machine, ThreadView

StepFn = Callable[[Machine, ThreadView], object]

#: The scenarios the mutations name (owned by the mutation tests).
SCENARIO_DIR = Path(__file__).resolve().parents[3] / "tests" / "mutation_scenarios"


@dataclass(frozen=True)
class Mutation:
    name: str
    description: str  # the protocol error, in terms of the C code
    patches: tuple[Patch, ...]
    scenario: str  # stem of a file in tests/mutation_scenarios
    invariant: str  # the invariant the checker must report (contracts on, as it runs)
    #: with the contracts off, if not the same: what the invariant checks alone report
    #: ("survives": they pass, only a contract tells)
    bare: str = ""
    #: for a kill by a contract: the start of its description (which contract it is)
    contract: str = ""

    @property
    def bare_invariant(self) -> str:
        return self.bare or self.invariant

    @property
    def scenario_path(self) -> Path:
        return SCENARIO_DIR / f"{self.scenario}.toml"

    def replace(self) -> dict[str, StepFn]:
        """The steps the patches change, rebuilt from the patched source."""
        return apply(self.patches)


@dataclass(frozen=True)
class Survivor:
    """A mutation no scenario kills, and why (spec/mutations.md)."""

    name: str
    description: str
    patches: tuple[Patch, ...]
    #: "equivalent": no run can tell; "liveness": only progress differs; "gap": a check
    #: is missing (spec/mutations.md says which); "open": why it survives is not known
    kind: str
    reason: str
    #: the scenarios it is checked to survive (empty: every mutation scenario)
    checked: tuple[str, ...] = ()

    def replace(self) -> dict[str, StepFn]:
        return apply(self.patches)


def P(where: str, old: str, new: str) -> Patch:
    """A patch of ``module:function`` (module relative to ``pagemap``)."""
    module, _, function = where.partition(":")
    return Patch(f"pagemap.{module}", function, old, new)


_ALL = [
    Mutation("find-keeps-removal",
       "pm_find_page's CAS installs inc_refcnt(old) without pm_slot_clear_removal: a lookup "
       "during removal leaves the slot marked while it holds a reference",
       (P("pm:find_cas", "m.c.pm_slot_inc_refcnt(m.c.pm_slot_clear_removal(old, m.bits), m.bits)",
          "m.c.pm_slot_inc_refcnt(old, m.bits)"),),
       "read-vs-remove", "removal-unreferenced"),
    Mutation("find-plain-store",
       "pm_find_page replaces atomic_cas_ptr with a plain store of inc(clear(old)): a "
       "concurrent pm_put_page between the read and the store is undone",
       (P("pm:find_cas", "if m.slot(i) != old:", "if False:"),),
       "two-readers", "refcount-accurate"),
    Mutation("find-cas-fail-returns-page",
       "pm_find_page returns the page it read when atomic_cas_ptr fails (a concurrent "
       "pm_put_page changed the word) instead of reading the slot again: the caller gets a "
       "page without a slot reference",
       (P("pm:find_cas", 't["find_page"] = 0\n        t.goto("pm_find_page.read")',
          't.goto("pm_find_page.unlock")'),),
       "two-readers", "contract", "kernel-assert",
       contract="a page comes with a slot reference"),
    Mutation("find-without-pm-lock",
       "pm_find_page walks the tree and CASes the slot without pm_lock: it can read the "
       "pm_slot_set_page(old, 0) word the final loop leaves before radix_delete",
       (P("pm:find_lock", "if not pm_lock(m, t):\n        return BLOCKED\n", ""),
        P("pm:find_unlock", "pm_unlock(m, t)\n", "")),
       "read-vs-remove", "contract", "no-use-after-free",
       contract="after the mark pass"),
    Mutation("insert-no-count",
       "pm_insert_page forgets pm->pm_num_pages++",
       (P("pm:insert_unlock", 'm.set("pm_num_pages", m.get("pm_num_pages") + 1)\n', ""),),
       "load-write-remove-load", "pm-count"),
    Mutation("put-wrong-shift",
       "pm_put_page subtracts 1UL << PM_FLAGS_SHIFT instead of 1UL << PM_REFCNT_SHIFT: the "
       "borrow sets the removal bit of a slot that still has references",
       # PM_FLAGS_SHIFT is bits - 12 on both word sizes (52, 20); a plain add mod 2**bits
       (P("pm:put_slot_ref", "m.c.pm_slot_dec_refcnt(m.slot(i), m.bits)",
          "(m.slot(i) - (1 << (m.bits - 12))) % (1 << m.bits)"),),
       "two-readers", "removal-unreferenced"),
    Mutation("readpage-no-copy",
       "pm_load_page's readpage sets PG_UPTODATE without copying the backing store into "
       "the frame (the page keeps whatever kpage_alloc left in it)",
       (P("pm:_fill", 'm.set_pg(page, "data", m.store(i))\n', ""),),
       "two-loaders", "no-lost-write"),
    Mutation("readpage-no-uptodate",
       "readpage fills the frame but never sets PG_UPTODATE: the assert after readpage fires",
       (P("pm:_fill", 'flags = m.c.pg_set(m.pg(page, "flags"), PG_UPTODATE)',
          'flags = m.pg(page, "flags")'),),
       "load-write-remove-load", "kernel-assert"),
    Mutation("lock-page-no-sleep",
       "lock_page skips sem_down(&page->pg_sem) and sets PG_LOCKED on a page another "
       "loader holds locked",
       (P("sync:lock_page_sem_down", "if n > 0:", "if True:"),
        P("sync:lock_page_sem_down", 'm.set_pg(page, "sem", n - 1)\n', "")),
       "two-loaders", "kernel-assert"),
    Mutation("unlock-page-no-sem-up",
       "unlock_page clears PG_LOCKED but forgets sem_up: a loader asleep in lock_page "
       "never wakes",
       (P("sync:unlock_page_sem_up", 'm.set_pg(page, "sem", n + 1)\n    if n < 0:',
          "if False:"),),
       "two-loaders", "deadlock"),
    Mutation("fault-put-before-pte",
       "__handle_page_fault calls pm_put_page(a_page) before it takes pte_lock and stores "
       "the PTE: the remover can free the page the PTE then names",
       (P("fault:hpf_loaded", '    t.goto("__handle_page_fault.lock_pte")',
          '    put_slot_ref(m, t, got)\n        t.goto("__handle_page_fault.lock_pte")'),
        P("fault:hpf_unlock_pte", 't.goto("__handle_page_fault.put")',
          't.goto("__handle_page_fault.out")'),
        # the spurious and error paths: a page-map page was put already, a private one not
        P("fault:hpf_spurious_put", "__put_page(m, t, t[\"hpf_page\"])",
          "m.pg(t[\"hpf_page\"], \"flags\") & PG_PAGEMAP or __put_page(m, t, t[\"hpf_page\"])"),
        P("fault:hpf_walk_fail_put", "__put_page(m, t, t[\"hpf_page\"])",
          "m.pg(t[\"hpf_page\"], \"flags\") & PG_PAGEMAP or __put_page(m, t, t[\"hpf_page\"])"),),
       "fault-write-remove", "contract", "no-use-after-free",
       contract="a_page is kept alive"),
    Mutation("munmap-no-pte-lock",
       "__do_munmap walks and zeroes the PTEs without p->pte_lock: the remover's pass 3 "
       "sees the PTE already zeroed before munmap folded its PTE_D into PG_DIRTY",
       (P("munmap:mu_lock_pte1", 'if not _lock(m, t, "pte_lock"):\n        return BLOCKED\n',
          ""),
        P("munmap:mu_unlock_pte1", '_unlock(m, t, "pte_lock")\n', ""),
        P("munmap:mu_lock_pte2", 'if not _lock(m, t, "pte_lock"):\n        return BLOCKED\n',
          ""),
        P("munmap:mu_unlock_pte2", '_unlock(m, t, "pte_lock")\n', "")),
       "munmap-vs-remove", "contract", "no-lost-write",
       contract="__vmr_free_pgs walks the page table under pte_lock"),
    Mutation("free-pgs-skips-first-pte",
       "__vmr_free_pgs starts its walk at vm_base + PGSIZE (an off-by-one in the range it "
       "hands env_user_mem_walk): the VMR's first PTE is left mapped",
       (P("munmap:fp_start", 't["fp_vpn"], t["fp_end"] = vpn_range(m, t["fp_vmr"] - 1)',
          't["fp_vpn"], t["fp_end"] = vpn_range(m, t["fp_vmr"] - 1)\n    t["fp_vpn"] += 1'),),
       "munmap-two-pages", "contract", "survives",
       contract="after __vmr_free_pgs every PTE of the VMR is 0"),
    Mutation("munmap-first-vmr-only",
       "__do_munmap's pass 2 forgets `vmr = next` and stops after the first VMR of the "
       "range: a VMR split off inside [addr, addr + len) stays mapped",
       (P("munmap:mu_p2_next", "_p2_at(m, t, nxt if nxt >= 0 else None)", "_p2_at(m, t, None)"),),
       "munmap-two-vmrs-cold", "contract", "survives",
       contract="munmap leaves no VMR and no PTE"),
    Mutation("munmap-no-free-pgs",
       "__do_munmap's pass 2 destroys each VMR of the range without env_user_mem_walk("
       "__vmr_free_pgs): the PTEs stay, PTE_P clear, naming the pages",
       (P("munmap:mu_lock_pte2", 't.call("__vmr_free_pgs.start", "munmap.unlock_pte2", '
          'fp_vmr=t["mu_vmr"])', 't.goto("munmap.unlock_pte2")'),),
       "munmap-two-pages", "contract", "survives",
       contract="munmap leaves no VMR and no PTE"),
    Mutation("file-write-no-dirty",
       "generic_file_write copies into the page but never sets PG_DIRTY: the remover frees "
       "it without writepage",
       (P("fileio:fio_dirty", 'm.set_pg(page, "flags", m.c.pg_set(m.pg(page, "flags"), PG_DIRTY))\n',
          ""),),
       "load-write-remove-load", "contract", "no-lost-write",
       contract="PG_DIRTY is set while the slot reference"),
    Mutation("file-io-no-put",
       "generic_file_read and generic_file_write return without pm_put_page: the page "
       "keeps a slot reference nobody holds, and the next read() starts holding one",
       (P("fileio:fio_put", 'put_slot_ref(m, t, t["fio_page"])\n', ""),),
       "load-write-remove-load", "contract", "refcount-accurate",
       contract="read() and write() end holding nothing"),
    Mutation("load-insert-fail-no-error",
       "pm_load_page's default case (pm_insert_page failed with -ENOMEM) drops the page "
       "but returns 0, success, with no page for *pp",
       (P("pm:load_insert_fail", 't.ret("pm_load_page", -ENOMEM)', 't.ret("pm_load_page", 0)'),),
       "fileio-enomem", "contract", "survives",
       contract="an error comes with no reference"),
    Mutation("file-write-put-before-dirty",
       "generic_file_write calls pm_put_page before atomic_or(PG_DIRTY) as well as after it: "
       "once the reference is gone the remover may free the page the flag is then set on",
       (P("fileio:fio_dirty", 'm.touch(page, "generic_file_write")',
          'put_slot_ref(m, t, page)\n    m.touch(page, "generic_file_write")'),),
       "load-write-remove-load", "contract", "refcount-accurate",
       contract="PG_DIRTY is set while the slot reference"),
    Mutation("remove-two-removers",
       "pm_remove_contig ignores the old value of atomic_swap(&pm->pm_removal, 1): a second "
       "remover runs while the first has dropped pm_lock for writeback",
       (P("removal:rm_swap", "if old:", "if False:"),),
       "two-removers", "contract", "removal-effective",
       contract="after the mark pass"),
    Mutation("remove-ignores-pinned",
       "pm_remove_contig never sets pm_has_pinned_vmrs: pages of a MAP_LOCKED VMR are "
       "marked and freed, while passes 2 and 3 skip that VMR's PTEs",
       (P("removal:rm_lock", 'int(any(m.vf(r, "flags") & MAP_LOCKED for r in m.pm_vmrs()))',
          "0"),),
       "pinned", "contract", "no-use-after-free",
       contract="after pass 2"),
    Mutation("mark-ignores-refcnt",
       "the mark pass drops `if (pm_slot_check_refcnt(slot_val)) continue`: a slot with "
       "references gets the removal flag",
       (P("removal:rm_mark_read", "if page is None or m.c.pm_slot_check_refcnt(old, m.bits):",
          "if page is None:"),),
       "read-vs-remove", "removal-unreferenced"),
    Mutation("remove-no-shootdown",
       "shootdown_and_reset_ptrstore resets the batch without calling proc_tlbshootdown: "
       "a TLB entry keeps mapping the page the remover frees (and there is no flush to wait "
       "for either)",
       (P("removal:sd_send", "proc_tlbshootdown(m, t, proc)\n    if m.cfg.fix(\"removal-shootdown-wait\") "
          "and m.cfg.shootdown == \"async\":", "if False:"),),
       "fault-write-remove", "contract", "no-use-after-free",
       contract="after the shootdowns"),
    Mutation("pass3-no-fold-dirty",
       "__pm_mark_dirty_pgs_unmap zeroes a PTE with PTE_D set without atomic_or(PG_DIRTY): "
       "a store through the mapping is never written back",
       (P("removal:rm_p3_dirty",
          'm.set_pg(page, "flags", m.c.pg_set(m.pg(page, "flags"), PG_DIRTY))\n', ""),),
       "fault-write-remove", "no-lost-write"),
    Mutation("dirty-no-writeback",
       "the handle_dirty loop clears PG_DIRTY but never puts the page in ptr_store, so "
       "writepage is not called for it",
       (P("removal:rm_dirty_test", "store_push(t, page)\n", ""),),
       "load-write-remove-load", "no-lost-write"),
    Mutation("dirty-no-restart",
       "after writeback pm_remove_contig forgets `if (i < index + nr_pgs) goto handle_dirty`:"
       " dirty pages after a full ptr_store are freed unwritten",
       (P("removal:rm_relock", 'if t["rm_i"] < _end(t):', "if False:"),),
       "restart", "no-lost-write"),
    Mutation("final-ignores-slot-removal",
       "the final loop does not re-check pm_slot_check_removal(slot_val): a page a lookup "
       "took after the mark pass is removed under the lookup's reference",
       (P("removal:rm_final_read", "if not m.c.pm_slot_check_removal(old, m.bits):",
          "if False:"),),
       "read-vs-remove", "refcount-accurate"),
    Mutation("final-no-radix-delete",
       "the final loop forgets radix_delete: the slot keeps pm_slot_set_page(old, 0), "
       "whose ppn field is page2ppn(NULL), and the next lookup decodes it as a page",
       (P("removal:rm_final_delete", "m.set_slot(i, tree.slots[i])\n", ""),),
       "load-write-remove-load", "no-use-after-free"),
    Mutation("remove-no-num-pages",
       "pm_remove_contig forgets pm->pm_num_pages -= nr_removed",
       (P("removal:rm_final_unlock",
          'm.set("pm_num_pages", m.get("pm_num_pages") - t["rm_removed"])\n', ""),),
       "load-write-remove-load", "pm-count"),
    Mutation("final-unmark-skipped",
       "the final loop leaves PG_REMOVAL on a page it lost to a lookup",
       (P("removal:rm_final_unmark",
          'm.set_pg(page, "flags", m.c.pg_clear(m.pg(page, "flags"), PG_REMOVAL))\n', ""),),
       # a stale PG_REMOVAL breaks no safety invariant (the next remover's loops
       # re-check the slot flag); rm_final_unlock's postcondition tells
       "read-vs-remove", "contract", "survives",
       contract="after the final loop"),
    Mutation("mark-page-skipped",
       "the mark pass sets the slot's removal flag but forgets atomic_or(PG_REMOVAL): "
       "every later phase skips the page, so the removal removes nothing",
       (P("removal:rm_mark_page",
          'm.set_pg(page, "flags", m.c.pg_set(m.pg(page, "flags"), PG_REMOVAL))\n', ""),),
       "load-write-remove-load", "removal-effective"),

    # -- the kernel around the protocol: shootdown reach by process state (proc.py)
    Mutation("shootdown-scp-caller-only",
       "proc_tlbshootdown of a PROC_RUNNING_S process only flushes the calling core (the "
       "commit's code, undone fix shootdown-scp-remote): the process's own core keeps the "
       "TLB entry of a page the remover frees",
       (P("proc:proc_tlbshootdown", 'if m.cfg.fix("shootdown-scp-remote"):', "if False:"),),
       "scp-writer-vs-remove", "contract", "no-use-after-free",
       contract="after the shootdowns"),
    Mutation("shootdown-scp-no-local-flush",
       "proc_tlbshootdown of a PROC_RUNNING_S process forgets tlbflush() on the calling "
       "core: an SCP's own munmap leaves its core's TLB mapping the private copy it frees",
       (P("proc:proc_tlbshootdown", "m.flush_tlb(here)  # tlbflush() on the calling core\n",
          ""),),
       "scp-munmap-private", "no-use-after-free"),
    Mutation("shootdown-mcp-none",
       "proc_tlbshootdown forgets the PROC_RUNNING_M case: an MCP's cores are never flushed",
       (P("proc:proc_tlbshootdown", "elif state == PROC_RUNNING_M:", "elif False:"),),
       "mprotect-then-remove", "contract", "no-use-after-free",
       contract="after the shootdowns"),
    Mutation("shootdown-mcp-remote-skipped",
       "proc_tlbshootdown of an MCP flushes the calling core but sends no __tlbshootdown "
       "message to the process's other cores",
       (P("proc:proc_tlbshootdown", "            else:\n                _send(m, c)\n",
          "            else:\n                pass\n"),),
       "munmap-async-private", "no-use-after-free"),
    Mutation("shootdown-mcp-self-skipped",
       "proc_tlbshootdown of an MCP sends the messages but forgets tlbflush() on the "
       "calling core, which is one of the process's",
       (P("proc:proc_tlbshootdown", "            if c == here:\n                m.flush_tlb(c)\n",
          "            if c == here:\n                pass\n"),),
       "mprotect-then-remove", "contract", "no-use-after-free",
       contract="after the shootdowns"),
    Mutation("shootdown-async-not-pending",
       "the asynchronous __tlbshootdown message is never marked pending on its target core: "
       "the waits of the fixes return at once and the core flushes too late",
       (P("proc:_send", "m.set_flush_pending(c, True)\n", ""),),
       "munmap-async-private", "no-use-after-free"),
    # -- exit (proc_destroy, __proc_free)
    Mutation("destroy-no-flush",
       "proc_destroy marks the process PROC_DYING but its cores keep their TLB entries "
       "(no __death flush): a remover's shootdown of a dying process does nothing for them",
       (P("proc:destroy_kill", "m.flush_tlb(c)\n", ""),),
       "exit-vs-remove", "contract", "no-use-after-free",
       contract="after the shootdowns"),
    Mutation("destroy-not-dying",
       "proc_destroy forgets p->state = PROC_DYING: __proc_free tears down a process whose "
       "state says it still runs",
       (P("proc:destroy_kill", "m.set_pstate(p, PROC_DYING)\n", ""),),
       "exit-sibling", "contract", "survives",
       contract="unmap_and_destroy_vmrs runs in __proc_free"),
    Mutation("proc-free-no-wait",
       "__proc_free runs while a sibling thread still runs (proc_decref's last reference "
       "ignored): the address space goes under a running thread",
       (P("proc:free_wait", "return BLOCKED\n", ""),),
       "exit-sibling", "contract", "survives",
       contract="__proc_free: every other thread"),
    Mutation("proc-free-no-unmap",
       "__proc_free forgets unmap_and_destroy_vmrs: the dead process keeps its VMRs on "
       "pm_vmrs",
       (P("proc:free_wait", 't.call("unmap_and_destroy_vmrs.lock_vmr", "__proc_free.done")',
          't.goto("__proc_free.done")'),),
       "exit-sibling", "contract", "survives",
       contract="__proc_free: the process has no VMR left"),
    # -- sleeping and waking (sched.py)
    Mutation("sleep-keeps-tlb",
       "an SCP whose kthread sleeps becomes PROC_WAITING, but its core keeps the address "
       "space (no lcr3 to the kernel's page table): the TLB entry outlives the shootdown "
       "that does nothing for a waiting process",
       (P("sched:sleep", "m.flush_tlb(pc)\n", ""),),
       "scp-tlb-across-sleep", "contract", "no-use-after-free",
       contract="after the shootdowns"),
    Mutation("resume-stays-waiting",
       "a woken SCP kthread runs again but the process stays PROC_WAITING: "
       "proc_tlbshootdown then skips a process that runs",
       (P("sched:resume", "m.set_pstate(p, PROC_RUNNING_S)\n", ""),),
       "scp-sleeper-vs-remove", "contract", "no-use-after-free",
       contract="after the shootdowns"),
    Mutation("leave-kernel-keeps-core",
       "returning to user space does not free the core for kernel work: the routine message "
       "that wakes a sleeper on that core never runs",
       (P("sched:leave_kernel", "m.v[m.L.occ[c]] = 0\n", ""),),
       "scp-sleeper-vs-remove", "deadlock"),
    # -- ENOMEM paths (fault.py, fileio.py)
    Mutation("private-fail-no-put",
       "upage_alloc fails in __handle_page_fault and the -ENOMEM path forgets "
       "__put_page(cache_page): the page-map page keeps a reference nobody holds",
       (P("fault:hpf_private_fail", '__put_page(m, t, t["hpf_cache"])\n', ""),),
       "enomem-private", "contract", "refcount-accurate",
       contract="__handle_page_fault returns with vmr_lock"),
    Mutation("walk-fail-no-put",
       "pgdir_walk fails to allocate a page table and the -ENOMEM path forgets "
       "__put_page(a_page)",
       (P("fault:hpf_walk_fail_put", '__put_page(m, t, t["hpf_page"])\n', ""),),
       "enomem-fault", "contract", "refcount-accurate",
       contract="__handle_page_fault returns with vmr_lock"),
    Mutation("private-no-cache-put",
       "after copying a private page __handle_page_fault forgets __put_page(cache_page)",
       (P("fault:hpf_private_put", '__put_page(m, t, t["hpf_cache"])', "None"),),
       "enomem-private", "contract", "refcount-accurate",
       contract="__handle_page_fault returns with vmr_lock"),
    Mutation("fault-ignores-load-error",
       "__handle_page_fault does not check pm_load_page's return value and maps the "
       "-ENOMEM as a page",
       (P("fault:hpf_loaded", "    if got <= 0:", "    if False:"),),
       "enomem-fault", "contract", "no-use-after-free",
       contract="ppn >= 0 and 0 <= bits <= 0xFFF"),
    Mutation("fileio-enomem-assert",
       "generic_file_read/write keeps the commit's assert(!error) after pm_load_page "
       "(undone fix fileio-enomem): an allocation failure panics the kernel",
       (P("fileio:fio_loaded", 'if not m.cfg.fix("fileio-enomem"):', "if True:"),),
       "fileio-enomem", "kernel-assert"),
    # -- split, merge, mmap, mprotect, munmap
    Mutation("split-new-off-pm",
       "split_vmr never puts the new VMR on pm->pm_vmrs: the remover's passes miss the "
       "PTEs of the piece cut off",
       (P("vmrs:split_publish_locked", 'pm_vmrs_insert_tail(m, t["sp_new"] - 1)\n', ""),),
       "munmap-partial-vs-remove", "contract", "no-use-after-free",
       contract="after pass 2"),
    Mutation("split-no-shrink",
       "split_vmr forgets old_vmr->vm_end = va: the two pieces overlap",
       (P("vmrs:split_publish_locked", 'm.set_vf(t["sp_old"] - 1, "end", t["sp_va"])\n', ""),),
       "munmap-partial-vs-remove", "contract", "survives",
       contract="isolate_vmrs: no VMR straddles"),
    Mutation("mmap-file-after-add",
       "mmap puts the VMR on pm_vmrs before it sets vm_file and vm_foff (the commit's "
       "order, undone fix mmap-foff-first): the remover reads a VMR without its offset",
       (P("mmap:mm_create", 'if m.cfg.fix("mmap-foff-first"):', "if False:"),),
       "mmap-merge-vs-remove", "kernel-assert"),
    Mutation("mprotect-no-advance",
       "mprotect's loop `continue`s on a VMR that already has the protection without "
       "moving to the next (undone fix mprotect-advance)",
       (P("mprotect:mp_loop", 'if m.cfg.fix("mprotect-advance"):', "if False:"),),
       "mprotect-same-prot", "livelock"),
    Mutation("mprotect-drops-dirty",
       "mprotect rewrites a present PTE without its PTE_D: a store before the mprotect is "
       "never folded into PG_DIRTY",
       (P("mprotect:_new_pte", "(old & ~PTE_PERM)", "(old & ~PTE_PERM & ~0x040)"),),  # PTE_D
       "mprotect-then-remove", "no-lost-write"),
    Mutation("mprotect-first-pte-only",
       "mprotect's PTE walk takes its end from the wrong VMR and stops after the first "
       "page: the other PTEs keep the old permissions",
       (P("mprotect:_next_pte", 'vpn_range(m, t["mp_vmr"] - 1)[1]', 'vpn_range(m, t["mp_vmr"])[1]'),),
       "mprotect-two-pages", "contract", "survives",
       contract="every present PTE of the range"),
    Mutation("store-dirty-carry",
       "the locked update of a PTE's D bit on a store adds PTE_D instead of or-ing it: "
       "when another core set D first, the carry clears it and the store is lost",
       (P("hardware:access_try", "m.set_pte(p, vpn, pte | PTE_D)", "m.set_pte(p, vpn, pte + PTE_D)"),),
       "two-cores-clean-tlb", "no-lost-write"),
    Mutation("mprotect-no-pte",
       "mprotect changes vm_prot but leaves the present PTEs as they are",
       (P("mprotect:mp_pte_read", "m.set_pte(p, k, _new_pte(t, pte))  # the CAS loop: a D bit "
          "set since is kept\n", ""),),
       "mprotect-then-remove", "contract", "survives",
       contract="every present PTE of the range"),
    Mutation("munmap-no-shootdown",
       "__do_munmap zeroes the PTEs but never calls proc_tlbshootdown before freeing the "
       "private pages",
       (P("munmap:mu_shootdown", "proc_tlbshootdown(m, t, t.proc)\n", ""),),
       "munmap-async-private", "no-use-after-free"),
    Mutation("munmap-no-wait",
       "__do_munmap frees the private pages without waiting for the asynchronous "
       "shootdown (undone fix munmap-shootdown-wait)",
       (P("munmap:mu_shootdown",
          'if m.cfg.fix("munmap-shootdown-wait") and m.cfg.shootdown == "async":',
          "if False:"),),
       "munmap-async-private", "no-use-after-free"),
    Mutation("munmap-drops-dirty",
       "__vmr_free_pgs zeroes a page-map PTE with PTE_D set without atomic_or(PG_DIRTY) "
       "(undone fix munmap-fold-dirty): the store is lost",
       (P("munmap:fp_zero", 'elif m.cfg.fix("munmap-fold-dirty") and pte & PTE_D:',
          "elif False:"),),
       "exit-vs-remove", "no-lost-write"),
    # -- mmap: MAP_POPULATE's error path (F13)
    Mutation("populate-no-unmap",
       "a failed MAP_POPULATE destroys the VMR without unmapping the PTEs already filled "
       "(undone fix populate-unmap-on-error)",
       (P("mmap:mm_populate_failed", 'elif m.cfg.fix("populate-unmap-on-error"):',
          "elif False:"),),
       "populate-error", "contract", "no-use-after-free",
       contract="after pass 2: no present PTE names a marked page"),
    Mutation("populate-unmap-no-shootdown",
       "a failed MAP_POPULATE zeroes the PTEs already filled and destroys the VMR "
       "(__do_munmap's pass 2) without pass 1 and proc_tlbshootdown: a sibling core's TLB "
       "keeps a populated PTE the remover no longer reaches",
       (P("mmap:mm_populate_failed", 't.call("munmap.lock_pte1", "mmap.unlock_vmr"',
          't.call("munmap.p2_start", "mmap.unlock_vmr"'),),
       "populate-error-sibling-tlb", "contract", "no-use-after-free",
       contract="after the shootdowns: no TLB maps a marked page"),
    # -- removal: KFS writepage, which VMRs the passes visit, pass 3's fold
    Mutation("kfs-writeback-error-ignored",
       "pm_remove_contig ignores writepage's -1 (KFS; undone fix removal-writeback-error): "
       "the page, never written, is freed",
       (P("removal:rm_writepage", 'if m.cfg.fix("removal-writeback-error"):', "if False:"),),
       "kfs-two-removals", "no-lost-write"),
    Mutation("kfs-no-redirty",
       "on writepage's failure pm_remove_contig unmarks the page but forgets to set "
       "PG_DIRTY again: the next removal frees it unwritten",
       (P("removal:rm_writepage", 'flags = m.c.pg_set(m.pg(page, "flags"), PG_DIRTY)',
          'flags = m.pg(page, "flags")'),),
       "kfs-two-removals", "no-lost-write"),
    Mutation("removal-vmr-index-only",
       "the passes visit only VMRs that map the range's first index (vmr_has_page_idx; "
       "undone fix removal-vmr-overlap): a VMR that maps a later page of the range is "
       "never unmapped",
       (P("removal:_visits", 'if m.cfg.fix("removal-vmr-overlap"):', "if False:"),),
       "munmap-partial-vs-remove", "contract", "no-use-after-free",
       contract="after pass 2"),
    Mutation("removal-fold-writable-only",
       "pass 3 folds PTE_D only in VMRs with PROT_WRITE (undone fix removal-fold-always): "
       "a store before mprotect(PROT_READ) is lost",
       (P("removal:rm_p3_lock", ' or m.cfg.fix("removal-fold-always")', ""),),
       "mprotect-then-remove", "no-lost-write"),
]

MUTATIONS: dict[str, Mutation] = {mu.name: mu for mu in _ALL}

SURVIVORS: dict[str, Survivor] = {s.name: s for s in [
    Survivor("fault-drops-dirty",
       "__handle_page_fault writes the PTE without preserving the old PTE_D",
       (P("fault:hpf_write_pte", " | (old & PTE_D)", ""),), "equivalent",
       "a PTE is !P with PTE_D only between the remover's pass 2 and pass 3, which run "
       "under pm_lock; the fault's pm_find_page needs pm_lock, so it cannot refill such "
       "a PTE (killed once lookups may run in that window: LOCKLESS_WINDOW)"),
    Survivor("mark-blind-store",
       "the mark pass replaces atomic_cas_ptr with a plain store",
       (P("removal:rm_mark_cas", 'if m.slot(i) != t["rm_old"]:', "if False:"),), "equivalent",
       "the remover marks only a slot with refcount 0 and holds pm_lock: no holder can "
       "pm_put_page and no lookup can CAS, so the word cannot change between read and store"),
    Survivor("final-cas-blind-store",
       "the final loop replaces atomic_cas_ptr with a plain store",
       (P("removal:rm_final_cas", 'if m.slot(i) != t["rm_old"]:', "if False:"),),
       "equivalent",
       "a slot still flagged for removal has refcount 0 (removal-unreferenced) and "
       "pm_lock is held: nobody else can write the word"),
    Survivor("file-write-dirty-before-copy",
       "generic_file_write sets PG_DIRTY before copying into the page",
       (P("fileio:fio_copy", 'm.touch(page, "generic_file_write copy")\n',
          'm.touch(page, "generic_file_write copy")\n'
          '        m.set_pg(page, "flags", m.pg(page, "flags") | PG_DIRTY)\n'),
        P("fileio:fio_copy", 't.goto("file_io.dirty")', 't.goto("file_io.put")')),
       "equivalent",
       "the writer holds a slot reference across both; the remover clears PG_DIRTY only "
       "of pages whose slot is still flagged, i.e. with no holder"),
    Survivor("dirty-no-recheck",
       "the handle_dirty loop does not re-check the slot's removal flag",
       (P("removal:rm_dirty_recheck", 'if m.c.pm_slot_check_removal(m.slot(t["rm_i"]), m.bits):',
          "if True:"),), "equivalent",
       "it only adds writebacks (clear PG_DIRTY, then write the current data); the final "
       "loop re-checks the flag before it frees anything"),
    Survivor("dirty-unmark-skipped",
       "the handle_dirty loop leaves PG_REMOVAL on a page it lost to a lookup",
       (P("removal:rm_dirty_unmark",
          'm.set_pg(page, "flags", m.c.pg_clear(m.pg(page, "flags"), PG_REMOVAL))\n', ""),), "equivalent",
       "the final loop makes the same test and clears PG_REMOVAL itself"),
    Survivor("final-zero-flags-skipped",
       "the final loop frees the page without atomic_set(&page->pg_flags, 0)",
       (P("removal:rm_final_zero_flags", 'm.set_pg(page, "flags", 0)\n', ""),), "equivalent",
       "a debugging aid: the allocator resets pg_flags, and any access to the freed page "
       "is no-use-after-free already"),
    # -- the kernel around the protocol
    Survivor("sleep-stays-running",
       "an SCP whose kthread sleeps stays PROC_RUNNING_S (its core still abandons the "
       "address space)",
       (P("sched:sleep", "m.set_pstate(p, PROC_WAITING)\n", ""),), "equivalent",
       "the core's TLB is emptied at the sleep and no uthread of the SCP runs while its "
       "kthread is in the kernel, so a shootdown meanwhile flushes an empty TLB where the "
       "real code does nothing: only flushes are added",
       ("scp-tlb-across-sleep", "scp-sleeper-vs-remove", "scp-uthreads-sleep")),
    Survivor("finish-keeps-tlb",
       "a core whose last thread is done keeps its TLB (no context switch away from the "
       "address space)",
       (P("sched:finish", "m.flush_tlb(c)\n", ""),), "equivalent",
       "the core stays one of the process's cores, so every later shootdown of the "
       "process (a removal's, a munmap's) still flushes it before a page is freed",
       ("scp-munmap-private", "munmap-async-private", "exit-vs-remove", "fault-write-remove")),
    Survivor("wake-on-home-core",
       "sem_up's routine message goes to the sleeper's home core instead of the waker's",
       (P("sched:wake", "waker.core + 1", "m.L.home[sleeper] + 1"),), "gap",
       "on fixed no kthread sleeps holding a spinlock, so the waker never waits for the "
       "sleeper; where the sleeper restarts matters for the seed's sleep-with-spinlock "
       "deadlock, which no mutation scenario (they run on fixed) contains",
       ("scp-sleeper-vs-remove", "scp-uthreads-sleep", "two-loaders")),
    Survivor("sleep-keeps-core",
       "a sleeping kthread keeps its core busy (the core does not go to smp_idle)",
       (P("sched:sleep", "m.v[m.L.occ[c]] = 0\n", ""),), "gap",
       "the sleeper is woken on the waker's core, and no mutation scenario has a second "
       "kernel path on the sleeper's core that would wait for it (a progress property)",
       ("scp-sleeper-vs-remove", "scp-uthreads-sleep", "two-loaders")),
    Survivor("leave-kernel-keeps-inkern",
       "a kernel path of an SCP that returns to user space leaves the process marked as "
       "in the kernel",
       (P("sched:leave_kernel", "m.v[ik] = 0\n", ""),), "open",
       "expected to block the SCP's other uthread in scp-uthreads-sleep; it does not, and "
       "why (another path clearing the mark, or the scenario's order) is not established",
       ("scp-uthreads-sleep", "scp-sleeper-vs-remove")),
    Survivor("split-foff-unchanged",
       "split_vmr gives the new VMR the old one's vm_foff instead of foff + (va - base)",
       (P("vmrs:_set_foff", ' + t["sp_va"] - m.vf(old, "base")', ""),), "gap",
       "a user access goes wherever its VMR maps it and the write ghost follows the same "
       "VMR: no invariant says which file page an address must reach",
       ("munmap-partial-vs-remove",)),
    Survivor("split-no-flags",
       "split_vmr does not copy vm_flags to the new VMR",
       (P("vmrs:split_new", 'for f in ("prot", "flags", "file"):', 'for f in ("prot", "file"):'),),
       "gap", "the piece loses MAP_SHARED (becomes private-like in name only) and nothing "
       "checks the flags a piece keeps; the split piece is written only through its PTE",
       ("munmap-partial-vs-remove",)),
    Survivor("merge-ignores-foff",
       "merge_vmr merges VMRs whose file offsets are not contiguous",
       (P("vmrs:can_merge", '\n            and m.vf(a, "foff") + m.vf(a, "end") - m.vf(a, "base") '
          '== m.vf(b, "foff"))', ")"),), "gap",
       "as split-foff-unchanged: no invariant says which file page an address must reach "
       "(mmap-merge-vs-remove's VMRs are contiguous anyway)",
       ("mmap-merge-vs-remove",)),
    Survivor("merge-ignores-prot",
       "merge_vmr merges VMRs of different protections",
       (P("vmrs:can_merge", ' and m.vf(a, "prot") == m.vf(b, "prot")', ""),), "gap",
       "no invariant checks the permissions of an access (a store to a read-only VMR is "
       "rejected by the scenario loader, not modelled as a fault)",
       ("mmap-merge-vs-remove",)),
    Survivor("merge-no-extend",
       "merge_vmr destroys the second VMR without extending the first over it",
       (P("vmrs:merge_extend", 'm.set_vf(first, "end", m.vf(second, "end"))\n', ""),), "gap",
       "the access to the lost range finds no VMR and fails, which no invariant treats as "
       "an error",
       ("mmap-merge-vs-remove",)),
    Survivor("mprotect-no-shootdown",
       "mprotect changes the PTEs but never calls proc_tlbshootdown",
       (P("mprotect:mp_shootdown", "proc_tlbshootdown(m, t, t.proc)\n", ""),), "gap",
       "a stale writable TLB entry after mprotect(PROT_READ) lets a store through, and no "
       "invariant checks access permissions; the removal's own shootdown flushes before "
       "any page is freed",
       ("mprotect-then-remove", "mprotect-same-prot")),
    Survivor("munmap-private-no-decref",
       "__vmr_free_pgs zeroes a private page's PTE without page_decref",
       (P("munmap:fp_zero", 'page_decref(m, page, "__vmr_free_pgs")\n', ""),), "gap",
       "the private copy leaks; no invariant checks for pages nobody owns",
       ("scp-munmap-private", "munmap-async-private", "exit-sibling")),
    Survivor("private-copy-skipped",
       "__handle_page_fault maps the private copy without copying the cache page into it",
       (P("fault:hpf_private_copy", 'm.set_pg(page, "data", m.pg(cache, "data"))\n', ""),),
       "gap", "nothing checks what a read returns (the gap of the tool's survivors below)",
       ("scp-munmap-private", "munmap-async-private", "enomem-private", "exit-sibling")),
]}


#: The race the C comment above __pm_mark_not_present describes ({remover
#: marks !P, fault finds the page and rewrites the PTE, remover clears the
#: PTE}) needs a lookup between pass 2 and pass 3.  At the commit
#: pm_find_page takes pm_lock, which the remover holds there; this context
#: (not a mutation of the commit) opens that window, as the RCU lookup the code
#: plans for would: the remover drops pm_lock after the pass 2 shootdown and
#: retakes it for pass 3 (rm_j = 1 marks "retake for pass 3" in rm_lock).
LOCKLESS_WINDOW: tuple[Patch, ...] = (
    P("removal:rm_p3_start", 't["rm_vmr"] = 0\n    t.goto("pm_remove_contig.p3_vmr")',
      'pm_unlock(m, t)\n    t["rm_j"] = 1\n    t.goto("pm_remove_contig.lock")'),
    P("removal:rm_lock", "    # The VMR list is stable",
      '    if t["rm_j"] == 1:\n        t["rm_j"] = 0\n        t["rm_vmr"] = 0\n'
      '        t.goto("pm_remove_contig.p3_vmr")\n        return None\n'
      "    # The VMR list is stable"),
)


def protocol_mutants() -> list[tuple[str, dict[str, StepFn], Path, str]]:
    """Every protocol mutant as (name, replaced steps, killing scenario, invariant): the
    small API for other tests (reduction, ...), each built from the real source."""
    return [(m.name, m.replace(), m.scenario_path, m.invariant) for m in MUTATIONS.values()]


def run(replace: Mapping[str, StepFn] | None, scenario: str, word_bits: int = 64,
        max_states: int = 200_000, contracts: bool = True, merge_local: bool = True) -> Outcome:
    """Explore ``scenario`` (a stem in tests/mutation_scenarios) on the fixed
    variant with the steps in ``replace`` replaced (None: the real program), with
    the steps' icontract conditions checked or not, local steps merged or not."""
    cfg = load(SCENARIO_DIR / f"{scenario}.toml", variant="fixed", word_bits=word_bits)
    steps = {n: fn if contracts else unwrap(fn) for n, fn in (replace or {}).items()}
    return Explorer(cfg, contracts=contracts, merge_local=merge_local, replace=steps).explore(
        max_states=max_states, progress=False)


def unwrap(fn: StepFn) -> StepFn:
    """A rebuilt step without its icontract conditions, as the explorer runs the real
    steps with contracts off (icontract keeps the plain function in ``__wrapped__``)."""
    while hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    return fn


def scenarios() -> list[str]:
    """Every scenario of tests/mutation_scenarios, by stem."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def table() -> str:
    """The tables of spec/mutations.md, from fresh runs (64-bit; 32-bit states in brackets)."""
    rows = [("| mutation | what it breaks (C) | killing scenario | invariant | contracts off "
             "| states |"), "| --- | --- | --- | --- | --- | --- |"]
    for mu in MUTATIONS.values():
        outs = [run(mu.replace(), mu.scenario, bits) for bits in (64, 32)]
        got = {o.invariant if o.verdict == "violation" else o.verdict for o in outs}
        inv = mu.invariant if got == {mu.invariant} else f"NOT KILLED: {sorted(map(str, got))}"
        bare = run(mu.replace(), mu.scenario, contracts=False)
        off = bare.invariant if bare.verdict == "violation" else "survives"
        off = off if off == mu.bare_invariant else f"NOT AS CLAIMED: {off}"
        rows.append(f"| `{mu.name}` | {mu.description} | `{mu.scenario}` | `{inv}` | `{off}` | "
                    f"{outs[0].states:,} ({outs[1].states:,}) |")
    rows += ["", "| scenario | states, unmutated fixed (64-bit) | seconds |", "| --- | --- | --- |"]
    for stem in scenarios():
        out = run(None, stem)
        rows.append(f"| `{stem}` | {out.states:,} {out.verdict} | {out.seconds:.2f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())

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
    kind: str  # "equivalent": no run can tell; "liveness": only progress differs
    reason: str

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
    Mutation("find-without-pm-lock",
       "pm_find_page walks the tree and CASes the slot without pm_lock: it can read the "
       "pm_slot_set_page(old, 0) word the final loop leaves before radix_delete",
       (P("pm:find_lock", "if not pm_lock(m, t):\n        return BLOCKED\n", ""),
        P("pm:find_unlock", "pm_unlock(m, t)\n", "")),
       "read-vs-remove", "contract", "no-use-after-free"),
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
       "fault-write-remove", "contract", "no-use-after-free"),
    Mutation("munmap-no-pte-lock",
       "__do_munmap walks and zeroes the PTEs without p->pte_lock: the remover's pass 3 "
       "sees the PTE already zeroed before munmap folded its PTE_D into PG_DIRTY",
       (P("munmap:mu_lock_pte1", 'if not _lock(m, t, "pte_lock"):\n        return BLOCKED\n',
          ""),
        P("munmap:mu_unlock_pte1", '_unlock(m, t, "pte_lock")\n', ""),
        P("munmap:mu_lock_pte2", 'if not _lock(m, t, "pte_lock"):\n        return BLOCKED\n',
          ""),
        P("munmap:mu_unlock_pte2", '_unlock(m, t, "pte_lock")\n', "")),
       "munmap-vs-remove", "contract", "no-lost-write"),
    Mutation("file-write-no-dirty",
       "generic_file_write copies into the page but never sets PG_DIRTY: the remover frees "
       "it without writepage",
       (P("fileio:fio_dirty", 'm.set_pg(page, "flags", m.c.pg_set(m.pg(page, "flags"), PG_DIRTY))\n',
          ""),),
       "load-write-remove-load", "contract", "no-lost-write"),
    Mutation("remove-two-removers",
       "pm_remove_contig ignores the old value of atomic_swap(&pm->pm_removal, 1): a second "
       "remover runs while the first has dropped pm_lock for writeback",
       (P("removal:rm_swap", "if old:", "if False:"),),
       "two-removers", "contract", "removal-effective"),
    Mutation("remove-ignores-pinned",
       "pm_remove_contig never sets pm_has_pinned_vmrs: pages of a MAP_LOCKED VMR are "
       "marked and freed, while passes 2 and 3 skip that VMR's PTEs",
       (P("removal:rm_lock", 'int(any(m.vf(r, "flags") & MAP_LOCKED for r in m.pm_vmrs()))',
          "0"),),
       "pinned", "contract", "no-use-after-free"),
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
       "fault-write-remove", "contract", "no-use-after-free"),
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
       "read-vs-remove", "contract", "survives"),
    Mutation("mark-page-skipped",
       "the mark pass sets the slot's removal flag but forgets atomic_or(PG_REMOVAL): "
       "every later phase skips the page, so the removal removes nothing",
       (P("removal:rm_mark_page",
          'm.set_pg(page, "flags", m.c.pg_set(m.pg(page, "flags"), PG_REMOVAL))\n', ""),),
       "load-write-remove-load", "removal-effective"),
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
        max_states: int = 200_000, contracts: bool = True) -> Outcome:
    """Explore ``scenario`` (a stem in tests/mutation_scenarios) on the fixed
    variant with the steps in ``replace`` replaced (None: the real program), with
    the steps' icontract conditions checked or not."""
    cfg = load(SCENARIO_DIR / f"{scenario}.toml", variant="fixed", word_bits=word_bits)
    steps = {n: fn if contracts else unwrap(fn) for n, fn in (replace or {}).items()}
    return Explorer(cfg, contracts=contracts, replace=steps).explore(
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
    rows = ["| mutation | what it breaks (C) | killing scenario | invariant | states |",
            "| --- | --- | --- | --- | --- |"]
    for mu in MUTATIONS.values():
        outs = [run(mu.replace(), mu.scenario, bits) for bits in (64, 32)]
        got = {o.invariant if o.verdict == "violation" else o.verdict for o in outs}
        inv = mu.invariant if got == {mu.invariant} else f"NOT KILLED: {sorted(map(str, got))}"
        rows.append(f"| `{mu.name}` | {mu.description} | `{mu.scenario}` | `{inv}` | "
                    f"{outs[0].states:,} ({outs[1].states:,}) |")
    rows += ["", "| scenario | states, unmutated fixed (64-bit) | seconds |", "| --- | --- | --- |"]
    for stem in scenarios():
        out = run(None, stem)
        rows.append(f"| `{stem}` | {out.states:,} {out.verdict} | {out.seconds:.2f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())

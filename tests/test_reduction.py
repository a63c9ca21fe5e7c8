"""The state-space reduction changes no verdict.

The explorer runs a thread's local steps (registers only) at once after the
step before them (``merge_local``).  For every scenario of the suite on both
variants, and every mutation on its killing scenario, the verdict and the
invariant must be the same with the reduction off, and the reduced run must
store no more states than the full one.

The search on several processes (``workers=2``) is the same search: same
verdict, counts, depth and shortest trace as on one."""

from __future__ import annotations

import pytest
from pagemap.checker import footprint as fp
from pagemap.checker import mutations as mut
from pagemap.checker.explore import Explorer
from pagemap.checker.scenario import load
from pagemap.checker.suite import scenario_files
from pagemap.program import initial_state

SCENARIOS = scenario_files()


def _digest(out):  # type: ignore[no-untyped-def]
    """Everything an outcome says, traces included, in comparable form."""
    def mv(m):  # type: ignore[no-untyped-def]
        return None if m is None else (m.actor, m.flush, tuple(m.pcs), m.branch, tuple(m.notes))
    return (out.verdict, out.invariant, out.message, out.states, out.transitions, out.max_depth,
            out.limit, [(st, mv(m)) for st, m in out.path], (out.final[0], mv(out.final[1])))


def _parallel_same(cfg, replace=None, **kw):  # type: ignore[no-untyped-def]
    one = Explorer(cfg, contracts=False, replace=replace).explore(progress=False, **kw)
    two = Explorer(cfg, contracts=False, replace=replace).explore(progress=False, workers=2,
                                                                  **kw)
    assert _digest(two) == _digest(one)
    return one


def _pair(cfg, replace=None):  # type: ignore[no-untyped-def]
    on = Explorer(cfg, merge_local=True, replace=replace).explore(progress=False)
    off = Explorer(cfg, merge_local=False, replace=replace).explore(progress=False)
    return on, off


@pytest.mark.parametrize("variant", ["seed", "fixed"])
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_same_verdict_without_reduction(path, variant) -> None:  # type: ignore[no-untyped-def]
    on, off = _pair(load(path, variant))
    assert (on.verdict, on.invariant) == (off.verdict, off.invariant)
    if on.verdict == "pass":
        assert on.states <= off.states


@pytest.mark.parametrize("name", sorted(mut.MUTATIONS))
def test_mutation_same_verdict_without_reduction(name: str) -> None:
    m = mut.MUTATIONS[name]
    cfg, replace = load(m.scenario_path, "fixed"), m.replace()
    on, off = _pair(cfg, replace)
    assert (on.verdict, on.invariant) == (off.verdict, off.invariant) == ("violation", m.invariant)
    _parallel_same(cfg, replace)  # the workers run the mutant's steps too


#: Enough states for several rounds of chunks (the parallel search hands out up
#: to 200 states a chunk), few enough to keep the test quick.
PARALLEL_CAP = 600


@pytest.mark.parametrize("variant", ["seed", "fixed"])
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_parallel_search_is_the_same_search(path, variant) -> None:  # type: ignore[no-untyped-def]
    """Verdict, state and transition counts, depth and the shortest trace are
    those of one process, whether the run completes or stops at the cap."""
    _parallel_same(load(path, variant), max_states=PARALLEL_CAP)


def test_parallel_search_decides_a_whole_space() -> None:
    """A pass over a space of thousands of states, decided on two workers."""
    one = _parallel_same(load(SCENARIOS[0], "fixed"))
    assert one.verdict == "pass" and one.states > PARALLEL_CAP


def test_reduction_reduces_something() -> None:
    """Not a vacuous switch: some scenario stores fewer states with it."""
    cfg = load(SCENARIOS[0], "fixed")
    on, off = _pair(cfg)
    assert on.states < off.states


# -- the bound on static-footprint ample sets (pagemap.checker.footprint) ---------------

#: Small passing scenarios: where the exact table lets the reduced search drop
#: states, and two where it drops none but a search without C1 (independence of
#: the other threads' future steps) loses combinations of visible values.
AMPLE_SCENARIOS = ("locked-inside-range", "vmr-after-range", "mprotect-vs-remove",
                   "enomem-fault-vs-remove", "private-write-vs-remove",
                   "finding-munmap-async-private")


def _scenario(stem: str):  # type: ignore[no-untyped-def]
    return next(p for p in SCENARIOS if p.stem == stem)


def test_footprints_see_the_remover_write_its_slots() -> None:
    """The tracked run records the slot word pm_remove_contig's CAS writes."""
    cfg = load(_scenario("two-removers"), "fixed")
    table, _ = fp.footprint_table(cfg)
    ex = Explorer(cfg, contracts=False)
    pc = ex.layout.pcs["pm_remove_contig.mark_cas"]
    slots = fp.bits(range(ex.layout.slot0, ex.layout.slot0 + cfg.file_pages))
    wrote = [table.writes[key] & slots for key in table.writes if key[1] == pc]
    assert wrote and all(wrote)
    read = [table.reads[key] & slots for key in table.reads if key[1] == pc]
    assert read and all(read)


def _reduced_vs_full(stem: str, ample: type[fp.StaticAmple], lock_aware: bool):  # type: ignore[no-untyped-def]
    """The full search, the reduced one, and whether the reduced one reached every
    combination of the values the invariants read (and of finished threads)."""
    cfg = load(_scenario(stem), "fixed")
    table, _ = fp.footprint_table(cfg)
    full = Explorer(cfg, contracts=False)
    whole = full.explore(progress=False)
    ex = Explorer(cfg, contracts=False)
    out = ex.explore(progress=False, ample=ample(ex.layout, table, lock_aware))
    amp = fp.StaticAmple(ex.layout, table)
    seen = [off for off in range(ex.layout.size) if amp.visible >> off & 1]
    done = ex.layout.thread0

    def view(states):  # type: ignore[no-untyped-def]
        return {(tuple(s[o] for o in seen), tuple(s[o] == 0 for o in done)) for s in states}
    return (whole, full, out, ex), view(ex.stored_states()) == view(full.stored_states())


@pytest.mark.parametrize("lock_aware", (False, True))
@pytest.mark.parametrize("stem", AMPLE_SCENARIOS)
def test_static_ample_sets_keep_the_verdict(stem: str, lock_aware: bool) -> None:
    """With the exact footprints the reduced search passes, stores no more states,
    every state it stores is one the full search stores, and it reaches every
    combination of the values the invariants read (what C2 preserves); with the
    lock-aware futures too."""
    (whole, full, out, ex), same_view = _reduced_vs_full(stem, fp.StaticAmple, lock_aware)
    assert (out.verdict, whole.verdict) == ("pass", "pass")
    assert out.states <= whole.states
    assert set(ex.stored_states()) <= set(full.stored_states())
    assert same_view


def test_lock_aware_futures_save_states_the_static_table_cannot() -> None:
    """On enomem-fault-vs-remove the lock-aware futures let a thread inside a
    critical section be ample alone where the plain table does not."""
    (whole, _, plain, _), _ = _reduced_vs_full("enomem-fault-vs-remove", fp.StaticAmple, False)
    (_, _, locked, _), same_view = _reduced_vs_full("enomem-fault-vs-remove", fp.StaticAmple, True)
    assert locked.states < plain.states < whole.states and same_view


class _EveryAcquireSpins(fp.StaticAmple):
    """A mutant: the other threads' futures stop at every spinlock acquire, held by
    the candidate or not (a thread may then be taken alone before a lock is free)."""

    def future(self, u: int, pc: int, held: frozenset[int]) -> tuple[int, int]:
        return super().future(u, pc, frozenset(self.layout.spinlocks))


class _HoldingStopsEveryAcquire(fp.StaticAmple):
    """A subtler mutant: while the candidate holds some spinlock, the others'
    futures stop at every acquire, of that lock or another."""

    def future(self, u: int, pc: int, held: frozenset[int]) -> tuple[int, int]:
        return super().future(u, pc, frozenset(self.layout.spinlocks) if held else held)


@pytest.mark.parametrize("mutant, stem", ((_EveryAcquireSpins, "finding-munmap-async-private"),
                                          (_HoldingStopsEveryAcquire,
                                           "mprotect-vs-munmap-vs-remove")))
def test_lock_aware_futures_must_stop_only_at_locks_the_thread_holds(
        mutant: type[fp.StaticAmple], stem: str) -> None:
    """Each mutant loses combinations of visible values: the view check sees it."""
    (_, _, out, _), same_view = _reduced_vs_full(stem, mutant, True)
    assert out.verdict == "pass" and not same_view


def test_static_ample_sets_need_their_conditions() -> None:
    """A table that claims every step touches nothing makes every thread ample
    alone: far fewer states than with the exact footprints (C1 and C2 are what
    keeps them)."""
    cfg = load(_scenario("mprotect-vs-remove"), "fixed")
    table, full = fp.footprint_table(cfg)
    lie = fp.Table({k: 0 for k in table.reads}, {k: 0 for k in table.writes}, set(),
                   table.nexts)
    ex = Explorer(cfg, contracts=False)
    exact = ex.explore(progress=False, ample=fp.StaticAmple(ex.layout, table)).states
    lying = ex.explore(progress=False, ample=fp.StaticAmple(ex.layout, lie)).states
    assert lying < exact < full


# -- what a Lipton reduction could merge (pagemap.checker.footprint.movers) ------------

def test_movers_are_the_steps_on_protected_or_private_slots() -> None:
    """On two-removers: the removers' CAS of a slot word (read and written by
    both, under no lock) is never a mover; the final unlock (pm_num_pages, under
    pm_lock, and the lock word) is; the share is strictly between 0 and 1."""
    cfg = load(_scenario("two-removers"), "fixed")
    table, _ = fp.footprint_table(cfg)
    layout = Explorer(cfg, contracts=False).layout
    mv = fp.movers(layout, table)
    pcs = {key[1] for key in mv["keys"]}
    assert layout.pcs["pm_remove_contig.mark_cas"] not in pcs
    assert layout.pcs["pm_remove_contig.final_unlock"] in pcs
    assert 0 < mv["movers"] < mv["transitions"]
    assert any(name.startswith("slot[") for name, _ in mv["blame"])


def test_a_slot_no_other_thread_writes_makes_no_conflict() -> None:
    """On mprotect-vs-remove, mprotect's vmr_lock acquire is a mover only thanks
    to the rule that a slot read here and written by no other thread makes no
    conflict (without it the count there drops from 185 to 68 movers)."""
    cfg = load(_scenario("mprotect-vs-remove"), "fixed")
    table, _ = fp.footprint_table(cfg)
    layout = Explorer(cfg, contracts=False).layout
    pcs = {key[1] for key in fp.movers(layout, table)["keys"]}
    assert layout.pcs["mprotect.lock_vmr"] in pcs


def test_a_sleep_check_reading_the_lock_words_makes_no_conflict() -> None:
    """On file-write-vs-user-write-vs-remove, lock_page.sem_down reads every lock
    word without holding it (sleep-holding-spinlock); with lock words counted
    as protected, some of the transitions are movers."""
    cfg = load(_scenario("file-write-vs-user-write-vs-remove"), "fixed")
    table, _ = fp.footprint_table(cfg)
    assert fp.movers(Explorer(cfg, contracts=False).layout, table)["movers"] > 0


def test_lock_aware_futures_keep_a_death_at_the_acquire() -> None:
    """A thread at an acquire of a lock the candidate holds is skipped up to it,
    but if its process can die there (proc_death runs instead of the step, in
    user mode, whatever the lock), what the death touches still conflicts.  A
    hand-made table on two-removers: r1 holds pm_lock and reads slot X; r2 is
    at an acquire of pm_lock whose step writes X."""
    cfg = load(_scenario("two-removers"), "fixed")
    layout = Explorer(cfg, contracts=False).layout
    k, r1, r2 = range(3)
    pt = layout.pcs["pm_remove_contig.final_unlock"]
    pu = next(pc for pc, st in enumerate(layout.steps)
              if st is not None and st.func == "pm_remove_contig" and st.lock == "pm_lock")
    x = fp.bits({layout.thread0[r2]})
    s = list(initial_state(layout))
    s[layout.thread0[k]], s[layout.thread0[r1]], s[layout.thread0[r2]] = 0, pt, pu
    s[layout.off["pm_lock"]] = r1 + 1
    state = tuple(s)

    def table() -> fp.Table:
        return fp.Table({(r1, pt): x, (r2, pu): 0}, {(r1, pt): 0, (r2, pu): x}, set(), {})
    assert r1 not in set(fp.StaticAmple(layout, table())(state))
    assert r1 in set(fp.StaticAmple(layout, table(), lock_aware=True)(state))
    dying = table()
    dying.death_writes[(r2, pu)] = x
    assert r1 not in set(fp.StaticAmple(layout, dying, lock_aware=True)(state))


def test_the_table_records_what_a_death_touches() -> None:
    """On exit-stops-siblings the sibling's death is recorded at the pcs it is
    taken from, and it clears the sibling's pc."""
    cfg = load(_scenario("exit-stops-siblings"), "fixed")
    table, _ = fp.footprint_table(cfg)
    layout = Explorer(cfg, contracts=False).layout
    assert table.death_writes
    assert all(w >> layout.thread0[u] & 1 for (u, _), w in table.death_writes.items())


def test_states_after_movers_count_the_states_a_lipton_reduction_may_skip() -> None:
    """On vmr-after-range the VMR misses the range, every transition is a mover,
    and so every state but the initial one is reached by a mover; on
    two-removers only part of them are."""
    for stem, everything in (("vmr-after-range", True), ("two-removers", False)):
        searched = fp.searched(load(_scenario(stem), "fixed"))
        full = searched.progress_so_far()[0]
        mv = fp.movers(searched.layout, fp.table_of(searched))
        after = fp.states_after_movers(searched, mv["keys"])
        assert (after == full - 1) if everything else (0 < after < full - 1)

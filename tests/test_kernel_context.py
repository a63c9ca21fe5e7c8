"""The kernel around the protocol (pagemap.sched, pagemap.proc, pagemap.alloc): which
cores proc_tlbshootdown reaches for each process state, sleeping and routine-message
wake-ups, the deadlock and livelock checks, failing allocations, and a pool too small.
Each test drives the real steps on a small configuration and asserts what the C of
the commit does."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pagemap.checker.explore import BRANCH, Explorer
from pagemap.checker.scenario import parse
from pagemap.machine import (
    PROC_DYING,
    PROC_RUNNING_M,
    PROC_RUNNING_S,
    PROC_WAITING,
    Machine,
    ScenarioTooSmall,
    ThreadView,
    tlb_entry,
)
from pagemap.proc import proc_tlbshootdown
from pagemap.program import build_layout, initial_state
from pagemap.sched import sleep, wake


def _scenario(mode: str = "mcp", shootdown: str = "async", users: int = 2,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "file_pages": 1, "pool_pages": 3, "preload": [0],
        "hardware": {"shootdown": shootdown},
        "process": [{"name": "p1", "mode": mode, "vmr": [
            {"name": "v1", "file_page": 0, "pages": 1, "flags": ["shared"],
             "prot": ["read", "write"], "prefault": True}]}],
        "thread": [{"name": f"u{k + 1}", "process": "p1",
                    "ops": [{"op": "read", "vmr": "v1", "page": 0}]} for k in range(users)]
        + [{"name": "k", "ops": [{"op": "file_read", "index": 0}]}],
    }
    d.update(extra or {})
    return d


def _machine(d: dict[str, Any], variant: str = "seed") -> tuple[Machine, list[int]]:
    cfg = parse(copy.deepcopy(d), "t", variant)
    layout = build_layout(cfg)
    m = Machine(layout, initial_state(layout))
    vpn = cfg.vmrs[0].base_vpn
    for c in cfg.proc_cores(0):  # every core of p1 caches v1+0
        m.set_tlb(c, vpn, tlb_entry(1, True, True))
    return m, list(cfg.proc_cores(0))


def _tlbs(m: Machine, cores: list[int]) -> list[bool]:
    return [m.tlb_nonempty(c) for c in cores]


def test_running_m_flushes_own_core_now_and_queues_the_others() -> None:
    m, cores = _machine(_scenario("mcp"))
    assert m.pstate(0) == PROC_RUNNING_M and len(cores) == 2
    u1 = m.thread(0)
    proc_tlbshootdown(m, u1, 0)
    assert _tlbs(m, cores) == [False, True]  # the caller's core at once
    assert [m.flush_pending(c) for c in cores] == [False, True]  # the other: an IPI pending


def test_running_m_sync_flushes_every_core() -> None:
    m, cores = _machine(_scenario("mcp", "sync"))
    proc_tlbshootdown(m, m.thread(2), 0)  # from the kernel thread's core
    assert _tlbs(m, cores) == [False, False]
    assert not any(m.flush_pending(c) for c in cores)


def test_running_s_flushes_only_the_calling_core() -> None:
    m, cores = _machine(_scenario("scp"))
    assert m.pstate(0) == PROC_RUNNING_S and len(cores) == 1
    proc_tlbshootdown(m, m.thread(2), 0)  # a kernel thread on a core of its own
    assert _tlbs(m, cores) == [True] and not m.flush_pending(cores[0])
    proc_tlbshootdown(m, m.thread(1), 0)  # a uthread of the SCP, on its core
    assert _tlbs(m, cores) == [False]


def test_running_s_with_the_fix_reaches_the_scp_core() -> None:
    m, cores = _machine(_scenario("scp"), "shootdown-scp-remote")
    proc_tlbshootdown(m, m.thread(2), 0)
    assert m.flush_pending(cores[0])


@pytest.mark.parametrize("state", [PROC_WAITING, PROC_DYING])
def test_other_states_get_nothing(state: int) -> None:
    m, cores = _machine(_scenario("mcp", "sync"))
    m.set_pstate(0, state)
    proc_tlbshootdown(m, m.thread(0), 0)
    assert _tlbs(m, cores) == [True, True]


def test_an_scp_that_sleeps_is_waiting_and_its_core_abandoned() -> None:
    m, cores = _machine(_scenario("scp"))
    u1 = m.thread(0)
    m.v[m.L.cpu[0]] = cores[0] + 1  # u1 is in the kernel, on the SCP's core
    m.v[m.L.occ[cores[0]]] = 1
    sleep(m, u1)
    assert m.pstate(0) == PROC_WAITING
    assert _tlbs(m, cores) == [False] and m.v[m.L.occ[cores[0]]] == 0


def test_a_woken_sleeper_restarts_on_the_wakers_core() -> None:
    m, _ = _machine(_scenario("mcp"))
    k = m.thread(2)
    m.v[m.L.cpu[2]] = m.L.home[2] + 1  # the waker is in the kernel, on its core
    wake(m, k, 0)
    assert m.cpu(0) == m.L.home[2]


def _kfs_loader_scenario() -> dict[str, Any]:
    """u1 faults on page 0 while k's read() loads it: u1 sleeps in lock_page."""
    d = _scenario("mcp", users=1)
    d["preload"] = []
    d["process"][0]["vmr"][0]["prefault"] = False
    return d


def test_the_sleeper_waits_for_the_wakers_core_and_a_spinning_waker_deadlocks() -> None:
    """A waker that, after sem_up, spins on a lock the sleeper holds keeps its core
    busy, so the routine message that restarts the sleeper never runs: deadlock.
    (On seed the fault sleeps holding vmr_lock, F7; with [kernel] spinlock_debug =
    false, as in config-default, sem_down does not assert and the sleep goes ahead.)"""
    from pagemap.fileio import fio_copy
    from pagemap.machine import BLOCKED

    def spin_on_vmr_lock(m: Machine, t: ThreadView) -> object:
        # file_io.copy, mutated: before its copy the waker spins until p1's vmr_lock is
        # free (spin_lock; spin_unlock), without leaving the kernel.
        if m.v[m.L.proc_off(0, "vmr_lock")]:
            return BLOCKED
        return fio_copy(m, t)

    d = _kfs_loader_scenario()
    cfg = parse(copy.deepcopy(d), "t", "seed")
    assert Explorer(cfg).explore(progress=False).invariant == "sleep-holding-spinlock"
    d["kernel"] = {"spinlock_debug": False}
    cfg = parse(copy.deepcopy(d), "t", "seed")
    assert Explorer(cfg).explore(progress=False).verdict == "pass"
    out = Explorer(cfg, replace={"file_io.copy": spin_on_vmr_lock}).explore(progress=False)
    assert (out.verdict, out.invariant) == ("violation", "deadlock")
    last = out.path[-1][0]
    layout = build_layout(cfg)
    u1, k = 0, 1
    assert last[layout.cpu[u1]] == layout.home[k] + 1  # u1 is to run on k's core
    assert last[layout.occ[layout.home[k]]] == k + 1  # which k keeps, spinning


def test_a_step_that_leaves_the_state_as_it_was_is_a_livelock() -> None:
    def no_progress(m: Machine, t: ThreadView) -> object:
        return None  # pm_remove_contig.swap, mutated: a loop that changes nothing

    d = _scenario("mcp", users=0)
    d["thread"] = [{"name": "r", "ops": [{"op": "remove", "index": 0, "count": 1}]}]
    cfg = parse(d, "t", "fixed")
    assert Explorer(cfg).explore(progress=False).verdict == "pass"
    out = Explorer(cfg, replace={"pm_remove_contig.swap": no_progress}).explore(progress=False)
    assert (out.verdict, out.invariant) == ("violation", "livelock")


def test_an_allocation_under_enomem_has_two_outcomes() -> None:
    d = _kfs_loader_scenario()
    d["thread"] = [{"name": "k", "ops": [{"op": "file_read", "index": 0}]}]
    cfg = parse(dict(d, faults={"enomem": True}), "t", "fixed")
    ex = Explorer(cfg)
    s = initial_state(ex.layout)
    codes = []
    while True:
        succ = [(a, n) for a, n, v in ex.successors(s) if n is not None]
        codes += [a for a, _ in succ]
        if len(succ) != 1:
            break
        s = succ[0][1]
    assert sorted(a for a, _ in succ) == [0, BRANCH]  # kpage_alloc: succeeds or fails
    out = ex.explore(progress=False)
    assert out.verdict == "pass"
    seed = Explorer(parse(dict(d, faults={"enomem": True}), "t", "seed")).explore(progress=False)
    assert (seed.verdict, seed.invariant) == ("violation", "kernel-assert")  # F9


def test_a_pool_too_small_without_enomem_is_bad_input() -> None:
    d = _kfs_loader_scenario()
    d["pool_pages"] = 1
    d["thread"] = [{"name": "k", "ops": [{"op": "file_read", "index": 0}]},
                   {"name": "k2", "ops": [{"op": "file_write", "index": 0}]}]
    d["file_pages"] = 1
    d["process"] = []
    d["thread"][0]["ops"].append({"op": "remove", "index": 0, "count": 1})
    d["thread"][1]["ops"] = [{"op": "file_read", "index": 0}]
    d["preload"] = []
    # two loaders of one page with one pool page: the second kpage_alloc finds none
    with pytest.raises(ScenarioTooSmall):
        Explorer(parse(d, "t", "fixed")).explore(progress=False)
    d["faults"] = {"enomem": True}
    assert Explorer(parse(d, "t", "fixed")).explore(progress=False).verdict == "pass"

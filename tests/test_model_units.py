"""Pointed checks of small pieces of the model that no scenario tells apart from a
slightly wrong version (cosmic-ray survivors, spec/mutations.md): each test drives the
real function on a machine built from a small scenario, or pins what the C computes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pagemap import fault, pm, removal
from pagemap.checker.explore import Explorer
from pagemap.checker.mutations import SCENARIO_DIR
from pagemap.checker.scenario import load, parse
from pagemap.machine import BLOCKED, DONE_PC, Machine, ThreadView
from pagemap.pageflags import PTE_USER_RO, PTE_USER_RW, pte2ppn
from pagemap.program import build_layout, initial_state, initial_value
from pagemap.vmr import PROT_EXEC, PROT_NONE, PROT_READ, PROT_WRITE


def _machine(d: dict[str, Any]) -> Machine:
    layout = build_layout(parse(copy.deepcopy(d), "t", "fixed"))
    return Machine(layout, initial_state(layout))


def _vmr(name: str, file_page: int, flag: str = "shared") -> dict[str, Any]:
    return {"name": name, "file_page": file_page, "pages": 1, "flags": [flag],
            "prot": ["read", "write"]}


def _drive(m: Machine, tid: int, until: str | None = None) -> list[str]:
    """Run thread ``tid`` alone, step by step, until it is done or reaches step
    ``until``; the steps it ran."""
    t = m.thread(tid)
    ran: list[str] = []
    stop = None if until is None else m.L.code.pc(until)
    while t["pc"] not in (DONE_PC, stop):
        st = m.L.steps[t["pc"]]
        assert st is not None and len(ran) < 2000, ran[-6:]
        ran.append(f"{st.func}.{st.label}")
        assert st.fn(m, t) is not BLOCKED, ran
    return ran


THREE_VMRS = {
    "file_pages": 3, "pool_pages": 3,
    "process": [{"name": "p1", "mode": "mcp", "vmr": [_vmr(f"v{k}", k) for k in range(3)]}],
    "thread": [{"name": "u1", "process": "p1", "ops": [{"op": "read", "vmr": "v0", "page": 0}]},
               {"name": "r", "ops": [{"op": "remove", "index": 0, "count": 0}]}],
}


def test_pte_prot_is_the_c_mapping() -> None:
    """__handle_page_fault: PROT_WRITE gives PTE_USER_RW, else PROT_READ or PROT_EXEC
    gives PTE_USER_RO, else nothing (a read-only VMR's PTE must still be user-readable)."""
    for prot in range(8):
        want = (PTE_USER_RW if prot & PROT_WRITE
                else PTE_USER_RO if prot & (PROT_READ | PROT_EXEC) else 0)
        assert fault.pte_prot(prot) == want, prot
    assert fault.pte_prot(PROT_READ) == fault.pte_prot(PROT_EXEC) == PTE_USER_RO != 0
    assert fault.pte_prot(PROT_NONE) == 0


def test_ptr_store_takes_only_items_of_one_digit() -> None:
    """ptr_store packs procs (p + 1) and ppns in base-DIGIT digits: an item of 0 or of
    DIGIT or more would corrupt its neighbours, so store_push refuses it."""
    t: dict[str, int] = {"rm_store": 0, "rm_n": 0}
    for item in (1, removal.DIGIT - 1):
        removal.store_push(t, item)  # type: ignore[arg-type]
    assert [removal.store_get(t, j) for j in range(2)] == [1, removal.DIGIT - 1]  # type: ignore[arg-type]
    for bad in (0, -1, removal.DIGIT, removal.DIGIT + 1, 2 * removal.DIGIT):
        with pytest.raises(AssertionError):
            removal.store_push(dict(t), bad)  # type: ignore[arg-type]


def test_pm_vmrs_remove_from_the_middle_then_add() -> None:
    """TAILQ_REMOVE of the middle VMR of pm_vmrs moves the ones behind it up a place,
    and TAILQ_INSERT_TAIL puts a VMR after the last: the positions stay 1..n."""
    m = _machine(THREE_VMRS)
    recs = [m.L.decl_rec[k] for k in range(3)]
    assert [m.vf(r, "on_pm") for r in recs] == [1, 2, 3]
    pm.pm_vmrs_remove(m, recs[1])
    assert [m.vf(r, "on_pm") for r in recs] == [1, 0, 2]
    pm.pm_vmrs_insert_tail(m, recs[1])
    assert [m.vf(r, "on_pm") for r in recs] == [1, 3, 2]
    assert m.pm_vmrs() == [recs[0], recs[2], recs[1]]
    pm.pm_vmrs_remove(m, recs[0])
    assert [m.vf(r, "on_pm") for r in recs] == [0, 2, 1]


def test_a_removal_of_no_pages_returns_at_once() -> None:
    """pm_remove_contig: `if (!nr_pgs) return 0` comes before atomic_swap(&pm_removal):
    a removal of zero pages must not make a concurrent remover give up."""
    m = _machine(THREE_VMRS)
    t = ThreadView(m, 1)
    back = m.L.code.pc("pm_remove_contig.lock")
    t.call("pm_remove_contig.swap", "__handle_page_fault.loaded", rm_index=0, rm_nr=0)
    removal.rm_swap(m, t)
    assert m.get("pm_removal") == 0
    assert t["rv"] == 0 and m.v[t.base] == m.L.code.pc("__handle_page_fault.loaded") != back


#: stored states of two mutation scenarios.  They pin the reduction: a step declared
#: local (`local=True`, only thread-local effects) is merged into the one before it, so
#: a step that loses the flag stores more states (the verdicts are the same).  A change
#: of the model or of the explorer's reduction changes them on purpose: update them then.
STORED = {"enomem-private": 43, "exit-sibling": 35}


@pytest.mark.parametrize("stem", sorted(STORED))
def test_stored_states_pin_the_local_steps(stem: str) -> None:
    cfg = load(SCENARIO_DIR / f"{stem}.toml", variant="fixed")
    out = Explorer(cfg).explore(progress=False)
    assert out.verdict == "pass"
    assert out.states == STORED[stem], out.states


def test_pm_load_page_refuses_a_caller_holding_a_spinlock() -> None:
    """pm_load_page takes pm_lock and may sleep in lock_page: its precondition refuses a
    caller holding a spinlock (but the fault path's vmr_lock, on seed).  No scenario
    calls it so, so only this test sees the precondition go."""
    import icontract
    from pagemap import sequential as S
    from pagemap.sequential import KTHREAD
    from pagemap.vmr import MAP_SHARED, VMR

    pm0 = S.pm_init(2, 2, 64, (VMR("va", 0, 0x1000, 0x2000, 0, PROT_READ, MAP_SHARED),))
    m = Machine(pm0.layout, pm0.state)
    owner = m.thread(KTHREAD).owner
    [pte_lock] = [off for off in m.L.spinlocks if m.L.names[off].endswith("pte_lock")]
    m.v[pte_lock] = owner
    with pytest.raises(icontract.ViolationError, match="pm_load_page takes pm_lock"):
        S.run_call(pm0.layout, m.freeze(), "pm_load_page.find", load_index=0)
    m.v[pte_lock] = 0
    _, page, _ = S.run_call(pm0.layout, m.freeze(), "pm_load_page.find", load_index=0)
    assert page > 0


@pytest.mark.parametrize("private", [1, 3])
def test_a_fault_reads_the_flags_of_the_vmr_it_found(private: int) -> None:
    """__handle_page_fault: `if (vmr->vm_flags & MAP_PRIVATE)` of the VMR of the fault.
    A store to record 1 (one of a MAP_PRIVATE/MAP_SHARED pair at records 1 and 3) gets a
    private copy exactly when record 1 is private; the file page sees the store exactly
    when it is shared."""
    vmrs = [_vmr(f"v{k}", k, "private" if k == private else "shared") for k in range(4)]
    m = _machine({"file_pages": 4, "pool_pages": 4, "preload": [1],
                  "process": [{"name": "p1", "mode": "mcp", "vmr": vmrs}],
                  "thread": [{"name": "u1", "process": "p1",
                              "ops": [{"op": "write", "vmr": "v1", "page": 0}]}]})
    assert [m.L.decl_rec[k] for k in range(4)] == [0, 1, 2, 3]
    ran = _drive(m, 0)
    assert ("__handle_page_fault.private_copy" in ran) == (private == 1)
    page = pte2ppn(m.pte(0, m.vf(1, "base") >> 12))
    assert (m.pg(page, "tslot") == 0) == (private == 1)
    assert (m.last(1) == initial_value(1)) == (private == 1)


def test_a_fault_revalidates_the_vmr_after_the_unlocked_load() -> None:
    """Fix hpf-load-unlocked: vmr_lock is dropped around pm_load_page, so once it is
    taken again the fault must look the VMR up again.  An mprotect to read-only in that
    window turns the store into a fault that kills the process; the store never lands."""
    m = _machine({"file_pages": 2, "pool_pages": 3, "hardware": {"shootdown": "sync"},
                  "process": [{"name": "p1", "mode": "mcp", "vmr": [_vmr("v1", 1)]}],
                  "thread": [{"name": "u1", "process": "p1",
                              "ops": [{"op": "write", "vmr": "v1", "page": 0}]},
                             {"name": "u2", "process": "p1",
                              "ops": [{"op": "mprotect", "vmr": "v1", "prot": ["read"]}]}]})
    assert "pm_load_page.readpage" in _drive(m, 0, "__handle_page_fault.relock")
    assert "mprotect.set_prot" in _drive(m, 1)
    ran = _drive(m, 0)
    assert ran[:2] == ["__handle_page_fault.relock", "__handle_page_fault.stale_put"], ran
    assert "user_access.faulted" in ran and "proc_destroy.kill" in ran
    assert m.last(1) == initial_value(1)


@pytest.mark.parametrize("shootdown", ["async", "sync"])
def test_a_shootdown_batch_reaches_every_process_in_turn(shootdown: str) -> None:
    """shootdown_and_reset_ptrstore: `for (i = 0; i < *arr_idx; i++)
    proc_tlbshootdown(ptr_store[i], ...)`, with the fix removal-shootdown-wait waiting
    for each on asynchronous hardware (only there: a synchronous shootdown has flushed
    when it returns).  Three processes map the page the removal frees: the batch sends
    to each once, and the removal ends (it does not loop on one of them)."""
    procs = [{"name": f"p{k}", "mode": "mcp",
              "vmr": [_vmr(f"v{k}", 0) | {"prefault": True}]} for k in range(3)]
    m = _machine({"file_pages": 1, "pool_pages": 2, "preload": [0],
                  "hardware": {"shootdown": shootdown}, "process": procs,
                  "thread": [{"name": "r", "ops": [{"op": "remove", "index": 0, "count": 1}]}]})
    ran = _drive(m, 0)
    assert ran.count("shootdown_and_reset.send") == 3
    assert ran.count("shootdown_and_reset.wait") == (3 if shootdown == "async" else 0)
    assert m.get("pm_removal") == 0


@pytest.mark.parametrize("prefault", [False, True])
def test_munmap_shoots_down_only_after_clearing_a_present_pte(prefault: bool) -> None:
    """__munmap_mark_not_present: `if (!PAGE_PRESENT(*pte)) return 0;` before it clears
    PTE_P and sets shootdown_needed: munmap of a VMR nobody touched sends no shootdown,
    of a mapped one it does."""
    m = _machine({"file_pages": 2, "pool_pages": 3, "preload": [0, 1],
                  "process": [{"name": "p1", "mode": "mcp", "vmr": [
                      {**_vmr("v1", 0), "pages": 2, "prefault": prefault}]}],
                  "thread": [{"name": "u1", "process": "p1",
                              "ops": [{"op": "munmap", "vmr": "v1"}]}]})
    ran = _drive(m, 0)
    assert ran.count("munmap.p1_read") == 2
    assert ("munmap.shootdown" in ran) == prefault

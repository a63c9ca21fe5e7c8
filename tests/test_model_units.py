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
from pagemap.machine import Machine, ThreadView
from pagemap.pageflags import PTE_USER_RO, PTE_USER_RW
from pagemap.program import build_layout, initial_state
from pagemap.vmr import PROT_EXEC, PROT_NONE, PROT_READ, PROT_WRITE


def _machine(d: dict[str, Any]) -> Machine:
    layout = build_layout(parse(copy.deepcopy(d), "t", "fixed"))
    return Machine(layout, initial_state(layout))


def _vmr(name: str, file_page: int) -> dict[str, Any]:
    return {"name": name, "file_page": file_page, "pages": 1, "flags": ["shared"],
            "prot": ["read", "write"]}


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
STORED = {"fault-write-remove": 2139, "exit-sibling": 35}


@pytest.mark.parametrize("stem", sorted(STORED))
def test_stored_states_pin_the_local_steps(stem: str) -> None:
    cfg = load(SCENARIO_DIR / f"{stem}.toml", variant="fixed")
    out = Explorer(cfg).explore(progress=False)
    assert out.verdict == "pass"
    assert out.states == STORED[stem], out.states

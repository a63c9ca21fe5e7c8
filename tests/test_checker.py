"""The explorer itself: determinism, deadlock detection, limits, contracts
switch, and trace replay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pagemap.checker.explore import Explorer
from pagemap.checker.scenario import load
from pagemap.checker.trace import build, render_table
from pagemap.machine import BLOCKED, Machine, ThreadView

ROOT = Path(__file__).resolve().parents[1]
F1 = ROOT / "scenarios" / "finding-dirty-bit-rmw.toml"
F2 = ROOT / "scenarios" / "finding-async-shootdown.toml"


def _check_json(path: Path, *extra: str, hashseed: str = "0") -> dict:
    env = dict(os.environ, PYTHONHASHSEED=hashseed)
    r = subprocess.run(
        [sys.executable, "-m", "pagemap.cli", "check", str(path), "--json", *extra],
        capture_output=True, text=True, env=env, check=False,
    )
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout)


def test_same_counts_and_trace_under_any_hash_seed() -> None:
    a = _check_json(F2, "--variant", "seed", hashseed="1")
    b = _check_json(F2, "--variant", "seed", hashseed="4242")
    for key in ("verdict", "invariant", "states", "transitions", "trace"):
        assert a[key] == b[key], key
    assert a["verdict"] == "violation" and len(a["trace"]) > 5


def test_trace_is_a_shortest_path_and_replays() -> None:
    cfg = load(F1, "seed")
    ex = Explorer(cfg)
    out = ex.explore(progress=False)
    assert out.verdict == "violation"
    steps = build(ex.layout, out)
    # BFS depth of the violating state is the trace length.
    assert len(steps) == len(out.path) - 1 + (1 if out.final[1] else 0)
    assert steps[-1].violation and "no-lost-write" in steps[-1].violation
    table = render_table(ex.layout, steps)
    assert "pm_remove_contig.p2_write" in table and "VIOLATION" in table


def test_relocking_a_held_spinlock_is_a_kernel_assert() -> None:
    """A mutant pm_find_page that returns with pm_lock held: the same thread's
    next spin_lock(&pm->pm_lock) (in pm_insert_page) would hang the core."""

    def unlock_never(m: Machine, t: ThreadView) -> object:
        t.ret("pm_find_page", t["find_page"])  # returns with pm_lock still held
        return None

    cfg = load(ROOT / "scenarios" / "concurrent-load.toml", "fixed")
    out = Explorer(cfg, replace={"pm_find_page.unlock": unlock_never}).explore(progress=False)
    assert (out.verdict, out.invariant) == ("violation", "kernel-assert")
    assert "already holds" in (out.message or "")


def test_deadlock_is_reported() -> None:
    """A remover whose first step can never run: the others finish, it cannot."""
    def always_blocked(m: Machine, t: ThreadView) -> object:
        return BLOCKED

    cfg = load(F1, "fixed")
    out = Explorer(cfg, replace={"pm_remove_contig.swap": always_blocked}).explore(progress=False)
    assert (out.verdict, out.invariant) == ("violation", "deadlock")


def test_limits_give_incomplete() -> None:
    cfg = load(F2, "fixed")
    out = Explorer(cfg).explore(max_states=20, progress=False)
    assert out.verdict == "incomplete" and out.limit and out.states >= 20


def test_contracts_off_same_verdicts_and_says_so() -> None:
    on = _check_json(F2, "--variant", "seed")
    off = _check_json(F2, "--variant", "seed", "--contracts", "off")
    assert off["contracts"] == "off" and on["contracts"] == "on"
    assert (on["verdict"], on["invariant"], on["states"]) == (
        off["verdict"], off["invariant"], off["states"])


def test_contract_violation_is_reported_as_contract() -> None:
    """A put that drops a reference it does not hold breaks pm_slot_dec_refcnt's
    precondition (count > 0): with contracts on, the checker says 'contract'."""
    from pagemap.pm import put_slot_ref

    def put_twice(m: Machine, t: ThreadView) -> object:
        page = t["hpf_page"]
        put_slot_ref(m, t, page)
        t["holds"] = page and m.pg(page, "tslot")  # pretend to still hold it
        put_slot_ref(m, t, page)
        t.goto("__handle_page_fault.out")
        return None

    cfg = load(F1, "fixed")
    out = Explorer(cfg, replace={"__handle_page_fault.put": put_twice}).explore(progress=False)
    assert (out.verdict, out.invariant) == ("violation", "contract")
    off = Explorer(cfg, contracts=False, replace={"__handle_page_fault.put": put_twice})
    out2 = off.explore(progress=False)
    assert out2.verdict == "violation" and out2.invariant != "contract"

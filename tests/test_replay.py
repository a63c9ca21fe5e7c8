"""Saved traces: `pagemap check --save-trace`, `pagemap replay`, and the
one-line regression test of ``pagemap.testing``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pagemap.checker.schedule import Actor, load_saved
from pagemap.testing import check_replay, replay_test

ROOT = Path(__file__).resolve().parents[1]
F2 = ROOT / "scenarios" / "finding-async-shootdown.toml"
F2_VARIANT = "fixed-without-removal-shootdown-wait"
SAVED = Path(__file__).with_name("traces") / "f2-async-shootdown.json"

# The helper as a user writes it: one line each.
test_saved_f2_trace_still_violates = replay_test("traces/f2-async-shootdown.json")
test_saved_f2_trace_is_fixed = replay_test("traces/f2-async-shootdown.json", variant="fixed",
                                           violates=False)


def _run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pagemap.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trace saved by `pagemap check`, then moved away from any scenario file."""
    tmp = tmp_path_factory.mktemp("saved")
    path = tmp / "f2.json"
    proc = _run("check", F2, "--variant", F2_VARIANT, "--save-trace", path, "--trace", "none")
    assert proc.returncode == 1, proc.stderr
    assert "trace saved to" in proc.stderr
    alone = tmp_path_factory.mktemp("elsewhere") / "f2.json"
    shutil.move(path, alone)
    return alone


def test_saved_file_is_self_contained_and_replays(saved: Path) -> None:
    d = json.loads(saved.read_text())
    assert d["format"] == "pagemap-trace" and d["variant"] == F2_VARIANT
    assert d["scenario"]["name"] == "finding-async-shootdown"  # the TOML data itself
    assert {"thread"} <= set(d["schedule"][0]) and d["invariant"] == "no-use-after-free"
    proc = _run("replay", saved, cwd=saved.parent)  # no scenarios/ directory here
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "REPRODUCED: no-use-after-free" in proc.stdout
    assert "initial state" in proc.stdout
    assert max(len(line) for line in proc.stdout.splitlines()) <= 100


def test_replay_under_a_fix_says_where_the_schedule_stops(saved: Path) -> None:
    proc = _run("replay", saved, "--variant", "fixed")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "STOPPED at step 25 of 39" in proc.stdout
    assert "shootdown_and_reset.wait" in proc.stdout


def test_replay_json_and_state_at(saved: Path) -> None:
    proc = _run("replay", saved, "--json", "--state-at", "6")
    assert proc.returncode == 1, proc.stderr
    d = json.loads(proc.stdout)
    assert d["verdict"] == "violation" and d["invariant"] == "no-use-after-free"
    assert d["replay"]["reproduced"] is True and d["replay"]["steps_run"] == 39
    assert d["state_at"]["step"] == 6
    assert d["state_at"]["values"]["slot[0]"] == "ref=1 page1"  # u1 took its reference at step 6
    assert d["initial"]["slot[0]"] == "ref=0 page1"
    assert [s["id"] for s in d["trace"]][:2] == ["user_access.try", "handle_page_fault.lock_vmr"]
    text = _run("replay", saved, "--state-at", "0").stdout
    assert "initial state:\n  pm_lock = free" in text
    every = json.loads(_run("replay", saved, "--json", "--state-at", "all").stdout)["state_at"]
    assert [s["step"] for s in every] == list(range(40))  # 0 .. 39, the last one violating
    assert every[6] == d["state_at"]
    assert _run("replay", saved, "--state-at", "99").returncode == 2


def test_a_schedule_that_completes_exits_0(tmp_path: Path) -> None:
    d = json.loads(SAVED.read_text())
    d["schedule"] = d["schedule"][:5]  # a prefix: no violation yet
    path = tmp_path / "prefix.json"
    path.write_text(json.dumps(d))
    proc = _run("replay", path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "COMPLETED without a violation: all 5 steps ran" in proc.stdout


def test_branch_numbers_are_read_and_checked(tmp_path: Path) -> None:
    """A schedule may name a step's outcome; today every step has only outcome 0."""
    assert Actor.from_json({"thread": "u1", "branch": 1}, 1) == Actor("u1", branch=1)
    assert Actor("u1", branch=1).to_json() == {"thread": "u1", "branch": 1}
    d = json.loads(SAVED.read_text())
    d["schedule"][2]["branch"] = 1
    path = tmp_path / "branch.json"
    path.write_text(json.dumps(d))
    proc = _run("replay", path)
    assert proc.returncode == 4 and "has no outcome 1" in proc.stdout, proc.stdout


@pytest.mark.parametrize("text, why", [("{", "not JSON"), ('{"format": "x"}', "format"),
                                       ('{"format": "pagemap-trace", "version": 9}', "version")])
def test_bad_trace_file_exits_2(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    proc = _run("replay", path)
    assert proc.returncode == 2 and why in proc.stderr and "Traceback" not in proc.stderr


def test_helper_fails_when_the_outcome_is_not_the_expected_one() -> None:
    check_replay(SAVED)
    with pytest.raises(AssertionError, match="no-use-after-free"):
        check_replay(SAVED, violates=False)
    with pytest.raises(AssertionError, match="stopped at step 25"):
        check_replay(SAVED, variant="fixed")
    assert load_saved(SAVED).schedule[-1] == Actor("r", id="pm_remove_contig.final_decref")


def test_a_flush_in_the_schedule_lands(tmp_path: Path) -> None:
    """Let the flush that F2's remover queued land before it frees the page:
    u1's TLB entry goes, and the use-after-free of the saved run is gone."""
    d = json.loads(SAVED.read_text())
    send = next(i for i, a in enumerate(d["schedule"]) if a.get("id") == "shootdown_and_reset.send")
    d["schedule"].insert(send + 1, {"thread": "u1", "flush": True})
    path = tmp_path / "flushed.json"
    path.write_text(json.dumps(d))
    proc = _run("replay", path, "--json")
    out = json.loads(proc.stdout)
    flush = out["trace"][send + 1]
    assert flush["thread"] == "u1" and flush["id"] == "tlbflush"
    assert flush["changes"]["u1.tlb[v1+0]"]["after"] == "-"
    assert out["verdict"] != "violation" and proc.returncode in (0, 4), proc.stdout
    d["schedule"].insert(send + 1, {"thread": "u1", "flush": True})  # a second one: none pending
    path.write_text(json.dumps(d))
    proc = _run("replay", path)
    assert proc.returncode == 4 and "no TLB flush is pending on u1's core" in proc.stdout


def test_a_step_with_two_outcomes_replays_the_one_saved(tmp_path: Path) -> None:
    """Under [faults] enomem an allocation has two outcomes; the schedule names one."""
    path = tmp_path / "enomem.json"
    scenario = ROOT / "scenarios" / "finding-fileio-enomem.toml"
    proc = _run("check", scenario, "--variant", "seed", "--save-trace", path, "--trace", "none")
    assert proc.returncode == 1, proc.stderr
    d = json.loads(path.read_text())
    failing = [a for a in d["schedule"] if a.get("branch") == 1]
    assert failing and failing[0]["id"] == "pm_load_page.alloc"
    assert _run("replay", path).returncode == 1
    failing[0]["branch"] = 0  # the allocation succeeds: the assert after it does not fire
    path.write_text(json.dumps(d))
    proc = _run("replay", path, "--json")
    assert json.loads(proc.stdout)["verdict"] != "violation", proc.stdout

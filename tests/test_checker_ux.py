"""`pagemap check` for people: the initial state and one numbering in traces,
fix-aware step texts, structured JSON, 100 columns, several files, help and
error messages, coverage, random simulation, SVG, a pool too small, Ctrl-C
and what an incomplete search guarantees."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from pagemap import cli
from pagemap.checker.command import guaranteed_depth
from pagemap.checker.coverage import possible_branches
from pagemap.checker.explore import Explorer
from pagemap.checker.scenario import load
from pagemap.checker.trace import build
from pagemap.config import FIXES
from pagemap.machine import CODE, ScenarioTooSmall, Violation

ROOT = Path(__file__).resolve().parents[1]
SC = ROOT / "scenarios"
F1 = SC / "finding-dirty-bit-rmw.toml"
F2 = SC / "finding-async-shootdown.toml"
THREE = SC / "shootdown-batching.toml"  # three threads, fails on seed quickly
BIG = SC / "bench" / "two-rounds.toml"  # too big to exhaust in a test

TOO_SMALL = """name = "too-small"
file_pages = 2
pool_pages = 1
[[process]]
name = "p1"
  [[process.vmr]]
  name = "v1"
  file_page = 0
  pages = 2
  flags = ["shared"]
  prot = ["read"]
[[thread]]
name = "u1"
process = "p1"
ops = [ { op = "read", vmr = "v1", page = 0 }, { op = "read", vmr = "v1", page = 1 } ]
"""


def check(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = cli.main(["check", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def trace_of(path: Path, variant: str):  # type: ignore[no-untyped-def]
    ex = Explorer(load(path, variant))
    out = ex.explore(progress=False)
    return ex, out, build(ex.layout, out)


# -- traces ------------------------------------------------------------------------------


def test_text_trace_shows_initial_state_numbering_and_fits_100_columns(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(capsys, THREE, "--variant", "seed")
    assert code == 1
    assert len(load(THREE).threads) == 3
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "initial state (before step 1):" in out and "names:" in out
    assert "pageN: physical page N" in out and "v1+k: page k of VMR v1" in out
    code, out, _ = check(capsys, SC / "read-vs-remove.toml", "--variant", "seed")
    assert "p1.pte[v1+0] = page1 P|W (prefaulted, TLBs cold)" in out
    assert "page1: file page 0 in the page cache" in out


def test_values_that_need_it_are_explained(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = check(capsys, F1, "--variant", "fixed-without-atomic-pte-update")
    assert "-> ref=157 REMOVAL page2ppn(NULL)" in out  # the word set_page(old, NULL) leaves
    assert "page2ppn(NULL): the slot word pm_slot_set_page(old, NULL) leaves" in out
    assert "file page i holds -(i+1) (so -1 is page 0's)" in out


def test_step_text_follows_the_running_variant() -> None:
    p2 = CODE.steps[CODE.pc("pm_remove_contig.p2_read")]
    assert p2 is not None and "atomic_and" in p2.text({"atomic-pte-update"})
    assert "atomic_and" not in p2.text(set())
    for name, fix, word in (("pm_remove_contig.p3_read", "atomic-pte-update", "xchg"),
                            ("munmap.p1_read", "atomic-pte-update", "atomic_and"),
                            ("__vmr_free_pgs.read", "munmap-fold-dirty", "xchg")):
        st = CODE.steps[CODE.pc(name)]
        assert st is not None and word in st.text({fix}) and word not in st.text(set()), name
    # in a trace: F2's isolated run has atomic-pte-update on, the seed run has not
    _, _, steps = trace_of(F2, "fixed-without-removal-shootdown-wait")
    reads = [s for s in steps if s.where == "pm_remove_contig.p2_read"]
    assert reads and all("atomic_and(pte, ~PTE_P)" in s.step for s in reads)
    _, _, steps = trace_of(F1, "seed")
    reads = [s for s in steps if s.where == "pm_remove_contig.p2_read"]
    assert reads and all("atomic_and" not in s.step for s in reads)


def test_json_has_initial_step_ids_and_structured_changes(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(capsys, F1, "--variant", "seed", "--json")
    assert code == 1
    d = json.loads(out)
    assert d["initial"]["store[0]"] == "-1" and d["initial"]["slot[0]"] == "ref=0 page1"
    assert "u1.pc" not in d["initial"]  # registers are not state a reader needs
    for st in d["trace"]:
        assert {"thread", "id", "step", "changed", "changes"} <= set(st)
        assert st["step"].startswith(st["id"].split(".")[0] + ":")
        for name, ch in st["changes"].items():
            assert st["changed"][name] == f"{ch['before']} -> {ch['after']}"
            assert isinstance(ch["before_value"], int) and ch["before_value"] != ch["after_value"]
    assert d["trace"][0]["id"] == "pm_remove_contig.swap"


def test_trace_json_without_json_prints_only_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(capsys, F1, "--variant", "seed", "--trace", "json")
    assert code == 1 and json.loads(out)["verdict"] == "violation"


# -- the command line -----------------------------------------------------------------------


def test_help_lists_fixes_and_the_without_form(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(capsys, "--help")
    assert code == 0
    flat = " ".join(out.split())
    assert "fixed-without-FIX" in flat and "exit codes" in flat
    for fix in FIXES:
        assert fix in flat, fix


def test_bad_variant_is_blamed_on_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check(capsys, F1, "--variant", "no-such-fix")
    assert code == 2 and out == ""
    assert err.startswith("pagemap check: --variant: unknown variant 'no-such-fix'")
    assert str(F1) not in err and len(err.strip().splitlines()) == 1


def test_several_files_most_severe_code(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    fast_pass = SC / "munmap-private-sync.toml"
    code, out, _ = check(capsys, fast_pass, F1, "--variant", "seed", "--trace", "none")
    assert code == 1 and out.count("variant seed") == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("file_pages = = 1")
    code, out, err = check(capsys, fast_pass, bad, "--variant", "fixed")
    assert code == 2 and "PASS" in out and "bad.toml" in err
    code, out, _ = check(capsys, fast_pass, F1, "--variant", "fixed", "--json")
    assert code == 0 and [d["verdict"] for d in json.loads(out)] == ["pass", "pass"]


def test_svg_of_a_trace(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    svg = tmp_path / "t.svg"
    code, _, err = check(capsys, THREE, "--variant", "seed", "--svg", svg, "--trace", "none")
    assert code == 1 and "swimlane written" in err
    root = ET.fromstring(svg.read_text())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = svg.read_text()
    assert 'class="initial-state"' in text and "VIOLATED INVARIANT" in text
    assert text.count('class="step ') == len(trace_of(THREE, "seed")[2])


# -- coverage -------------------------------------------------------------------------------


def test_coverage_names_unreached_steps_and_branches(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(capsys, F1, "--variant", "fixed", "--coverage", "--json")
    assert code == 0
    r = json.loads(out)["coverage"]["threads"]["r"]
    # with atomic-pte-update pass 2 never takes the plain store
    assert "pm_remove_contig.p2_write" in r["unreached"]
    assert "pm_remove_contig.p2_read -> pm_remove_contig.p2_write" in r["unreached_branches"]
    assert r["steps"]["pm_remove_contig.swap"] > 0
    code, out, _ = check(capsys, F1, "--variant", "seed", "--coverage", "--json")
    r = json.loads(out)["coverage"]["threads"]["r"]
    assert r["steps"]["pm_remove_contig.p2_write"] > 0
    assert "shootdown_and_reset.wait" in r["unreached"]  # only a fix runs it
    code, out, _ = check(capsys, F1, "--variant", "fixed", "--coverage")
    assert "r (kernel: remove(0, 1)):" in out and "never reached: pm_remove_contig.{" in out


def test_possible_branches_come_from_the_step_code() -> None:
    assert possible_branches("pm_remove_contig.p3_read") >= {
        "pm_remove_contig.p3_dirty", "pm_remove_contig.p3_zero", "pm_remove_contig.p3_unlock"}
    # t.call(entry, ret): the entry is a branch, the return point is not
    assert possible_branches("pm_remove_contig.p2_done") == {"shootdown_and_reset.enter"}


# -- simulation -------------------------------------------------------------------------------


def test_simulation_finds_what_the_search_cannot_finish(capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    code, out, _ = check(capsys, BIG, "--variant", "seed", "--max-states", "3000", "--json")
    assert code == 4 and json.loads(out)["verdict"] == "incomplete"
    saved = tmp_path / "sim.json"
    code, out, _ = check(capsys, BIG, "--variant", "seed", "--simulate", "20", "--seed", "1",
                         "--json", "--save-trace", saved)
    assert code == 1
    a = json.loads(out)
    assert a["verdict"] == "violation" and a["simulate"]["seed"] == 1 and a["trace"]
    _, again, _ = check(capsys, BIG, "--variant", "seed", "--simulate", "20", "--seed", "1",
                        "--json")
    b = json.loads(again)
    assert [s["id"] for s in a["trace"]] == [s["id"] for s in b["trace"]]  # reproducible
    assert cli.main(["replay", str(saved)]) == 1
    assert "REPRODUCED" in capsys.readouterr().out


def test_simulation_without_a_violation_is_incomplete(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(capsys, F1, "--variant", "fixed", "--simulate", "5")
    assert code == 4 and "INCOMPLETE" in out and "prove nothing" in out


# -- limits, a pool too small, Ctrl-C --------------------------------------------------------


def test_incomplete_search_states_a_true_depth_guarantee(
        capsys: pytest.CaptureFixture[str]) -> None:
    _, full, steps = trace_of(F2, "seed")
    assert full.verdict == "violation"
    cut = Explorer(load(F2, "seed")).explore(max_states=full.states - 1, progress=False)
    assert cut.verdict == "incomplete"
    assert guaranteed_depth(cut) < len(steps)  # the shortest violation is deeper
    code, out, _ = check(capsys, F2, "--variant", "seed", "--max-states", "50")
    flat = " ".join(out.split())
    assert code == 4 and "every interleaving of up to" in flat and "no violation in any" in flat


def test_a_pool_too_small_is_bad_input_not_a_finding(capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    path = tmp_path / "small.toml"
    path.write_text(TOO_SMALL)
    for extra in ((), ("--simulate", "2")):
        code, out, err = check(capsys, path, *extra)
        assert code == 2 and out == "", extra
        assert "scenario too small" in err and "pool_pages = 1" in err
        assert "kernel-assert" not in err
    ex = Explorer(load(path))
    with pytest.raises(ScenarioTooSmall):
        ex.explore(progress=False)
    assert not issubclass(ScenarioTooSmall, Violation)


def test_ctrl_c_prints_what_was_explored_and_exits_4() -> None:
    # a shell's background job starts with SIGINT ignored, and Python then never raises
    # KeyboardInterrupt: the child restores Python's handler before running the command
    restore = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler);"
               " sys.argv[0] = 'pagemap'; runpy.run_module('pagemap.cli', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", restore, "check", str(BIG), str(F1),
                             "--variant", "fixed"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while "states/s" not in proc.stderr.readline():  # the search has started (progress line)
        assert time.monotonic() < deadline and proc.poll() is None
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, out + err
    assert "Traceback" not in err
    flat = " ".join(out.split())
    assert "interrupted (Ctrl-C)" in flat and "states" in flat
    assert "every interleaving of up to" in flat
    assert F1.stem not in out  # Ctrl-C stops the run: the second file is not checked

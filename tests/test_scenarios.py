"""The scenario suite (scenarios/*.toml) and the `pagemap check` contract of
spec/scenarios-format.md: every scenario parses and states what seed and fixed must give; a
quick subset is run here on both variants; bad input, --json, a wrong
expectation and a state limit give the documented exit codes and output.

The whole suite runs under `pagemap verify` (pagemap.checker.suite); this file
keeps to the scenarios that finish fastest (measured: each pair of runs takes
well under 0.1 s), so that `make test` stays quick.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pagemap.checker import suite
from pagemap.checker.command import EXIT_BAD_INPUT, EXIT_INCOMPLETE, EXIT_UNEXPECTED, run
from pagemap.checker.invariants import INVARIANTS
from pagemap.checker.scenario import load
from pagemap.config import resolve_variant

SCENARIOS = suite.scenario_files()
SCENARIO_DIR = suite.SCENARIO_DIR

#: The quickest scenarios by measured time (seed + fixed), covering pass on
#: both variants, violations of both invariant kinds on seed, sync and async
#: shootdown, MAP_LOCKED, munmap, the spurious fault and both word sizes.
FAST = (
    "munmap-private-sync",
    "munmap-vs-write-sync",
    "spurious-fault",
    "locked-inside-range",
    "vmr-before-range",
    "read-vs-remove",
    "write-vs-remove-sync",
    "vmr-overlap-end",
    "write-vs-remove-32",
)

#: A scenario that fails on seed quickly: used for the command-line tests.
QUICK_VIOLATION = SCENARIO_DIR / "vmr-inside-range.toml"


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


# -- the files ----------------------------------------------------------------------


def test_suite_is_large_enough() -> None:
    assert len(SCENARIOS) >= 26, [p.name for p in SCENARIOS]


@pytest.mark.parametrize("path", SCENARIOS, ids=_ids(SCENARIOS))
def test_scenario_parses_and_states_expectations(path: Path) -> None:
    data = tomllib.loads(path.read_text())
    assert data.get("name") == path.stem, "name should be the file's stem"
    assert isinstance(data.get("description"), str) and len(data["description"].split()) >= 8
    cfg = load(path)  # raises ScenarioError if invalid
    assert cfg.threads
    for variant in ("seed", "fixed"):
        exp = cfg.expect.get(variant)
        assert exp is not None, f"no [expect.{variant}]"
        assert exp["verdict"] in ("pass", "violation")
        if exp["verdict"] == "violation":
            assert exp.get("invariant") in INVARIANTS
        else:
            assert "invariant" not in exp
    for key, exp in cfg.expect.items():
        resolve_variant(key)  # every [expect.X] names a variant `--variant X` accepts
        assert set(exp) <= {"verdict", "invariant"}
        assert load(path, key).variant == key


def test_fast_subset_exists() -> None:
    names = {p.stem for p in SCENARIOS}
    assert set(FAST) <= names
    words = {load(SCENARIO_DIR / f"{n}.toml").word_bits for n in FAST}
    assert words == {32, 64}


@pytest.mark.parametrize("variant", ["seed", "fixed"])
@pytest.mark.parametrize("name", FAST)
def test_fast_scenario_meets_expectation(name: str, variant: str) -> None:
    cfg = load(SCENARIO_DIR / f"{name}.toml", variant)
    exp = cfg.expect[variant]
    _, out = run(cfg, progress=False)
    assert out.verdict == exp["verdict"], out.message
    assert out.invariant == exp.get("invariant")
    assert out.states > 1


def test_findings_differ_between_variants() -> None:
    """The suite documents findings: some scenario fails on seed and passes
    on fixed for each invariant the findings break."""
    broken: set[str] = set()
    for path in SCENARIOS:
        cfg = load(path)
        if cfg.expect["seed"]["verdict"] == "violation" and cfg.expect["fixed"]["verdict"] == "pass":
            broken.add(cfg.expect["seed"]["invariant"])
    assert {"no-lost-write", "no-use-after-free"} <= broken


def test_suite_run_one_reports_expected_result() -> None:
    """pagemap.checker.suite.run_one, as `pagemap verify` calls it."""
    rec = suite.run_one(SCENARIO_DIR / "read-vs-remove.toml", "seed")
    assert rec.kind == "scenario" and rec.variant == "seed"
    assert rec.result == rec.expected == "violation"
    assert rec.witness["invariant"] == "no-use-after-free"
    rec = suite.run_one(SCENARIO_DIR / "read-vs-remove.toml", "fixed")
    assert rec.result == rec.expected == "pass"


# -- pagemap check: exit codes and output --------------------------------------------


def _check(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pagemap.cli", "check", *map(str, args)],
        capture_output=True, text=True, timeout=120, check=False,
    )


def _variant_of(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


GOOD = (SCENARIO_DIR / "write-vs-remove.toml").read_text()


@pytest.mark.parametrize(
    "case, text",
    [
        ("unknown-op", _variant_of(GOOD, 'op = "remove"', 'op = "truncate"')),
        ("unknown-vmr", _variant_of(GOOD, 'vmr = "v1", page = 0 }', 'vmr = "v9", page = 0 }')),
        ("bad-toml", _variant_of(GOOD, "file_pages = 1", "file_pages = = 1")),
    ],
)
def test_bad_scenario_exits_2_with_one_line(tmp_path: Path, case: str, text: str) -> None:
    path = tmp_path / f"{case}.toml"
    path.write_text(text)
    proc = _check(path)
    _assert_bad_input(proc)


def test_unknown_variant_exits_2() -> None:
    proc = _check(QUICK_VIOLATION, "--variant", "no-such-fix")
    _assert_bad_input(proc)
    assert "no-such-fix" in proc.stderr


def test_missing_file_exits_2(tmp_path: Path) -> None:
    proc = _check(tmp_path / "nowhere.toml")
    _assert_bad_input(proc)
    assert "nowhere.toml" in proc.stderr


def _assert_bad_input(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_json_has_design_keys() -> None:
    proc = _check(QUICK_VIOLATION, "--variant", "seed", "--word-bits", "32", "--json")
    assert proc.returncode == 1, proc.stderr
    d = json.loads(proc.stdout)
    assert d["verdict"] == "violation"
    assert d["invariant"] == "no-use-after-free"
    assert d["variant"] == "seed" and d["word_bits"] == 32
    assert isinstance(d["states"], int) and d["states"] > 0
    assert isinstance(d["transitions"], int) and d["transitions"] >= d["states"] - 1
    assert isinstance(d["seconds"], int | float) and d["seconds"] >= 0
    assert d["trace"], "a violation comes with its trace"
    for step in d["trace"]:
        assert {"thread", "step", "changed"} <= set(step)
        assert isinstance(step["changed"], dict)
    assert "r" in {s["thread"] for s in d["trace"]}
    assert any(s["step"].startswith("pm_remove_contig") for s in d["trace"])
    assert any(k.startswith("slot[") for s in d["trace"] for k in s["changed"])


def test_matching_expectation_keeps_its_code() -> None:
    assert _check(QUICK_VIOLATION, "--variant", "seed", "--trace", "none").returncode == 1
    assert _check(QUICK_VIOLATION, "--variant", "fixed").returncode == 0


@pytest.mark.parametrize(
    "old, new, variant",
    [
        ('[expect.fixed]\nverdict = "pass"',
         '[expect.fixed]\nverdict = "violation"\ninvariant = "no-lost-write"', "fixed"),
        ('invariant = "no-use-after-free"', 'invariant = "no-lost-write"', "seed"),
    ],
)
def test_wrong_expectation_exits_3(tmp_path: Path, old: str, new: str, variant: str) -> None:
    path = tmp_path / "wrong.toml"
    path.write_text(_variant_of(QUICK_VIOLATION.read_text(), old, new))
    proc = _check(path, "--variant", variant, "--trace", "none")
    assert proc.returncode == EXIT_UNEXPECTED, proc.stdout + proc.stderr
    assert "UNEXPECTED" in proc.stdout


def test_state_limit_exits_4_incomplete() -> None:
    proc = _check(QUICK_VIOLATION, "--variant", "fixed", "--max-states", "10", "--json")
    assert proc.returncode == EXIT_INCOMPLETE, proc.stderr
    d = json.loads(proc.stdout)
    assert d["verdict"] == "incomplete"
    assert "invariant" not in d
    assert d["states"] >= 10

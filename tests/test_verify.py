"""`pagemap verify` and the `pagemap` command line (README).

Collectors are injected (fakes written to a temporary module), so these tests
never run the project's own pytest suite from inside itself.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from pagemap import cli, verify
from pagemap.results import KINDS, RESULTS, CheckResult
from pagemap.verify import NESTED_ENV, Collector

FAKE = "pagemap_fake_collectors"

FAKE_SOURCE = '''
from pagemap.results import CheckResult


def proofs_ok():
    return [
        CheckResult(kind="proof", name="slot-roundtrip", result="proved", expected="proved",
                    seconds=0.01, word_bits=64),
        CheckResult(kind="proof", name="refcnt-overflow", result="counterexample",
                    expected="counterexample", seconds=0.02, word_bits=32,
                    witness={"slot": 5}, detail="documents a finding"),
    ]


def scenario_ok():
    return [CheckResult(kind="scenario", name="remove-vs-writer", result="violation",
                        expected="violation", seconds=0.5, variant="seed", word_bits=64,
                        witness={"invariant": "no-lost-write"})]


def scenario_unexpected():
    return [CheckResult(kind="scenario", name="remove-vs-writer", result="pass",
                        expected="violation", seconds=0.5, variant="seed", word_bits=64,
                        detail="expected the lost write")]


def crosshair_ok():
    return [CheckResult(kind="crosshair", name="pm_slot_get_ref", result="pass",
                        expected="pass", seconds=1.0)]


def tests_ok():
    return [CheckResult(kind="test", name="pytest", result="pass", expected="pass",
                        seconds=2.0, detail="7 passed in 2.00s")]


def raises():
    raise RuntimeError("boom")


def returns_empty():
    return []


def returns_junk():
    return ["not a record"]


def returns_invalid():
    return [CheckResult(kind="proof", name="odd", result="fine", expected="fine", seconds=0.0)]


def chatty():
    print("noise from a collector")
    return proofs_ok()
'''


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The name of an importable module holding fake collectors."""
    d = tmp_path_factory.mktemp("fakes")
    (d / f"{FAKE}.py").write_text(FAKE_SOURCE)
    sys.path.insert(0, str(d))
    try:
        yield FAKE
    finally:
        sys.path.remove(str(d))
        sys.modules.pop(FAKE, None)


def c(kind: str, func: str) -> Collector:
    return Collector(kind, f"{FAKE}:{func}")


def run(collectors: list[Collector], as_json: bool = False) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = verify.run_verify(as_json=as_json, collectors=collectors, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


# -- the registry ----------------------------------------------------------------


def test_registry_is_a_tuple_of_the_collectors_in_kind_order() -> None:
    assert isinstance(verify.COLLECTORS, tuple)
    kinds = [c.kind for c in verify.COLLECTORS]
    assert sorted(set(kinds), key=kinds.index) == list(KINDS)
    assert kinds == sorted(kinds, key=KINDS.index)
    assert [c.target for c in verify.COLLECTORS] == [
        "proofs.__main__:run_all",
        "proofs.removal.refinement:collect",
        "proofs.crosshair_checks:run",
        "pagemap.checker.suite:run",
        "proofs.backends:run",
        "pagemap.verify:run_pytest",
    ]


# -- table and JSON --------------------------------------------------------------


def test_table_has_a_row_per_check_and_the_summary_line(fake: str) -> None:
    code, out, err = run([c("proof", "proofs_ok"), c("scenario", "scenario_ok")])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["kind", "name", "variant", "bits", "result", "expected", "seconds"]
    rows = [ln.split() for ln in lines[2:5]]
    assert rows[0][:6] == ["proof", "slot-roundtrip", "-", "64", "proved", "proved"]
    assert rows[1][:6] == ["proof", "refcnt-overflow", "-", "32", "counterexample",
                           "counterexample"]
    assert rows[2][:6] == ["scenario", "remove-vs-writer", "seed", "64", "violation", "violation"]
    assert rows[2][6] == "0.50"
    assert verify.MARK not in out
    assert "3 checks, 3 as expected, 0 unexpected, " in out
    assert out.rstrip().endswith(" s")
    assert err.count("pagemap verify [") == 2


def test_json_is_one_object_with_typed_records(fake: str) -> None:
    code, out, _ = run([c("proof", "proofs_ok"), c("scenario", "scenario_ok")], as_json=True)
    assert code == 0
    doc = json.loads(out)  # the whole of stdout is one JSON object
    assert set(doc) == {"ok", "checks"}
    assert doc["ok"] is True
    assert len(doc["checks"]) == 3
    for rec in doc["checks"]:
        assert {"kind", "name", "variant", "word_bits", "result", "expected", "seconds",
                "detail"} <= set(rec)
        assert rec["kind"] in KINDS and rec["result"] in RESULTS and rec["expected"] in RESULTS
        assert isinstance(rec["name"], str) and isinstance(rec["detail"], str)
        assert isinstance(rec["seconds"], float)
        assert isinstance(rec["word_bits"], int)
        assert rec["variant"] is None or isinstance(rec["variant"], str)
    proved, cex, viol = doc["checks"]
    assert "witness" not in proved
    assert cex["witness"] == {"slot": 5}
    assert cex["detail"] == "documents a finding"
    assert viol["witness"] == {"invariant": "no-lost-write"}
    assert viol["variant"] == "seed"


def test_one_unexpected_result_exits_1_and_is_marked(fake: str) -> None:
    code, out, _ = run([c("proof", "proofs_ok"), c("scenario", "scenario_unexpected")])
    assert code == 1
    row = next(ln for ln in out.splitlines() if ln.startswith("scenario"))
    assert row.split()[4:6] == ["pass", "violation"]
    assert row.endswith(verify.MARK)
    assert "3 checks, 2 as expected, 1 unexpected, " in out
    assert "expected the lost write" in out  # the mismatch's detail is shown

    code, out, _ = run([c("proof", "proofs_ok"), c("scenario", "scenario_unexpected")],
                       as_json=True)
    assert code == 1
    assert json.loads(out)["ok"] is False


def test_collector_output_goes_to_stderr_not_into_the_json(fake: str) -> None:
    code, out, err = run([c("proof", "chatty")], as_json=True)
    assert code == 0
    assert len(json.loads(out)["checks"]) == 2
    assert "noise from a collector" in err and "noise" not in out


# -- collectors that fail --------------------------------------------------------


def test_import_failure_is_an_error_record_not_a_skip(fake: str) -> None:
    missing = Collector("crosshair", "pagemap_no_such_module:run")
    code, out, _ = run([c("proof", "proofs_ok"), missing], as_json=True)
    assert code == 1
    rec = json.loads(out)["checks"][-1]
    assert rec["kind"] == "crosshair"
    assert rec["name"] == "pagemap_no_such_module:run"
    assert rec["result"] == "error" and rec["expected"] == "pass"
    assert "cannot import pagemap_no_such_module" in rec["detail"]
    assert "ModuleNotFoundError" in rec["detail"]


@pytest.mark.parametrize(
    ("func", "words"),
    [
        ("raises", ["RuntimeError: boom", f"{FAKE}.py:"]),
        ("returns_empty", ["returned no checks"]),
        ("returns_junk", ["not a CheckResult"]),
        ("returns_invalid", ["invalid record", "result='fine'"]),
        ("no_such_function", ["no callable 'no_such_function'"]),
    ],
)
def test_broken_collector_becomes_one_error_record(fake: str, func: str, words: list[str]) -> None:
    [rec] = verify.collect(c("proof", func))
    assert rec.kind == "proof"
    assert rec.result == "error" and rec.expected == "proved" and not rec.ok
    for w in words:
        assert w in rec.detail
    assert "\n" not in rec.detail


# -- ordering, --only and nesting -----------------------------------------------


def test_collectors_run_in_kind_order(fake: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NESTED_ENV, raising=False)
    cols = [c("test", "tests_ok"), c("scenario", "scenario_ok"), c("crosshair", "crosshair_ok"),
            c("proof", "proofs_ok")]
    records = verify.verify(cols, err=io.StringIO())
    assert [r.kind for r in records] == ["proof", "proof", "crosshair", "scenario", "test"]


def test_only_filters_by_kind_through_the_cli(
    fake: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(NESTED_ENV, raising=False)
    monkeypatch.setattr(verify, "COLLECTORS", (
        c("proof", "proofs_ok"), c("crosshair", "crosshair_ok"), c("scenario", "scenario_ok"),
        c("test", "tests_ok"),
    ))
    assert cli.main(["verify", "--json", "--only", "scenario", "--only", "crosshair"]) == 0
    captured = capsys.readouterr()
    assert [r["kind"] for r in json.loads(captured.out)["checks"]] == ["crosshair", "scenario"]
    assert "proofs_ok" not in captured.err and "tests_ok" not in captured.err

    assert cli.main(["verify", "--only", "test", "proof"]) == 0
    out = capsys.readouterr().out
    kinds = [ln.split()[0] for ln in out.splitlines()[2:] if ln and ln.split()[0] in KINDS]
    assert kinds == ["proof", "proof", "test"]


def test_nested_run_skips_the_test_collector(
    fake: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(NESTED_ENV, "1")
    err = io.StringIO()
    records = verify.verify([c("proof", "proofs_ok"), c("test", "tests_ok")], err=err)
    assert [r.kind for r in records] == ["proof", "proof"]
    assert "skipped" in err.getvalue()
    [refused] = verify.run_pytest()
    assert refused.result == "error" and "refused" in refused.detail

    code, _, err_text = run([c("test", "tests_ok")])
    assert code == 1  # nothing checked is not a pass
    assert "no checks ran" in err_text


# -- the pytest collector --------------------------------------------------------


def test_pytest_summary_line() -> None:
    assert verify.pytest_summary("..\n2 passed in 0.10s\n") == "2 passed in 0.10s"
    ruled = "F.\n=== short test summary info ===\nFAILED t.py::a\n== 1 failed, 1 passed in 1s ==\n"
    assert verify.pytest_summary(ruled) == "1 failed, 1 passed in 1s"
    assert verify.pytest_summary("\nno tests ran in 0.01s\n") == "no tests ran in 0.01s"
    assert verify.pytest_summary("") == "no output"


def _project(root: Path, body: str) -> Path:
    root.mkdir()
    (root / "test_small.py").write_text(textwrap.dedent(body))
    return root


def test_run_pytest_passes_and_marks_its_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(NESTED_ENV, raising=False)
    proj = _project(tmp_path / "ok", f"""
        import os
        def test_child_knows_it_is_nested():
            assert os.environ.get("{NESTED_ENV}") == "1"
        def test_two():
            assert 2 + 2 == 4
    """)
    [rec] = verify.run_pytest(proj, timeout=120)
    assert (rec.kind, rec.name, rec.result, rec.expected) == ("test", "pytest", "pass", "pass")
    assert rec.detail.startswith("2 passed in ")
    assert rec.seconds > 0
    assert not (proj / ".pytest_cache").exists()  # -p no:cacheprovider


def test_run_pytest_hands_its_child_the_proof_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child reads back exactly this run's proof records (witness included) with
    earlier_proofs, and its refinement records with earlier_record; other kinds are
    not handed over; outside verify it gets None."""
    monkeypatch.delenv(NESTED_ENV, raising=False)
    monkeypatch.delenv(verify.PROOFS_ENV, raising=False)
    assert verify.earlier_proofs("removal/", 64) is None
    earlier = [
        CheckResult("proof", "removal/x/step", "counterexample", "counterexample", 1.5,
                    variant="seed", word_bits=64, witness={"pte": 3, "dirty": False}),
        CheckResult("proof", "removal/x/step", "proved", "proved", 0.5, variant="fixed",
                    word_bits=32),
        CheckResult("proof", "encoding/y", "proved", "proved", 0.1, word_bits=64),
        CheckResult("scenario", "removal/s", "pass", "pass", 0.1, word_bits=64),
        CheckResult("refinement", "refinement/totals", "pass", "pass", 0.0,
                    witness={"pairs": 7}),
    ]
    proj = _project(tmp_path / "proofs", """
        from pagemap.verify import earlier_proofs
        def test_reads_back():
            [r] = earlier_proofs("removal/", 64)
            assert (r.name, r.result, r.variant, r.seconds) == (
                "removal/x/step", "counterexample", "seed", 1.5)
            assert r.witness == {"pte": 3, "dirty": False}
            assert [r.word_bits for r in earlier_proofs("removal/", 32)] == [32]
            assert earlier_proofs("layout/", 64) is None
            from pagemap.verify import earlier_record
            assert earlier_record("refinement", "refinement/totals").witness == {"pairs": 7}
            assert earlier_record("scenario", "removal/s") is None  # not handed over
    """)
    [rec] = verify.run_pytest(proj, timeout=120, earlier=earlier)
    assert (rec.result, rec.detail.split(" in ")[0]) == ("pass", "1 passed")
    [rec] = verify.run_pytest(proj, timeout=120)  # no records: the child finds none
    assert rec.result == "error" and "1 failed" in rec.detail


def test_run_pytest_reports_failures_as_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(NESTED_ENV, raising=False)
    proj = _project(tmp_path / "bad", """
        def test_good():
            assert True
        def test_bad():
            assert 1 == 2
    """)
    [rec] = verify.run_pytest(proj, timeout=120)
    assert rec.result == "error" and not rec.ok
    assert rec.detail.startswith("1 failed, 1 passed in ")
    assert "(exit 1)" in rec.detail and "test_small.py::test_bad" in rec.detail


# -- the command line ------------------------------------------------------------


def test_bad_usage_exits_2_with_one_line_and_no_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pagemap.cli", "verify", "--bogus"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1
    assert "unrecognized arguments: --bogus" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        ([], "required: COMMAND"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["verify", "--only", "everything"], "invalid choice: 'everything'"),
        (["verify", "--only"], "expected at least one argument"),
    ],
)
def test_bad_usage_through_main(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert words in captured.err


def test_check_forwards_its_arguments_untouched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[list[str]] = []

    def main_check(argv: list[str]) -> int:
        seen.append(argv)
        return 3

    fake_command = types.ModuleType("pagemap.checker.command")
    fake_command.main_check = main_check  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pagemap.checker.command", fake_command)
    argv = ["s.toml", "--json", "--variant", "fixed", "--word-bits", "32"]
    assert cli.main(["check", *argv]) == 3
    assert cli.main(["check", "--help"]) == 3
    assert seen == [argv, ["--help"]]

    def exits(argv: list[str]) -> int:
        raise SystemExit(2)

    fake_command.main_check = exits  # type: ignore[attr-defined]
    assert cli.main(["check", "missing.toml"]) == 2


def test_check_without_a_checker_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "pagemap.checker.command", None)  # import fails
    assert cli.main(["check", "s.toml"]) == cli.EX_SOFTWARE
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "the checker cannot be loaded" in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--only KIND" in out and "--json" in out

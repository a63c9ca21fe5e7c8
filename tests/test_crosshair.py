"""The CrossHair checks (proofs/crosshair_checks.py): one real target must pass,
one mutant must yield a counterexample, and CrossHair's output is read right."""

from __future__ import annotations

import importlib
from pathlib import Path

import icontract
import pytest
from pagemap import slot

from proofs import crosshair_checks as cc
from proofs import crosshair_mutants as cm

# Captured from `crosshair check --analysis_kind=icontract --report_all` (0.0.113).
MUTANT_LINE = (
    '/work/main/proofs/crosshair_mutants.py:80: error: "@icontract.ensure(lambda t, key, result:'
    " (result[0] == EEXIST) == (t.slots[key] != 0))\" yields false when calling"
    " radix_insert_overwrites(Radix(1, (1,)), 0, 1) (which returns (0, Radix(depth=1, slots=(1,))))"
)
RAISED_LINE = (
    "/work/main/model/pagemap/slot.py:144: error: ValueError: word size 0 is not one of"
    " (64, 32) when calling pm_slot_check_removal(0, 0)"
)
PASS_OUT = (
    "/work/main/model/pagemap/slot.py:181: info: Confirmed over all paths.\n"
    "/work/main/model/pagemap/slot.py:183: info: Not confirmed.\n"
)
VACUOUS_OUT = (
    '/work/main/model/pagemap/slot.py:177: info: Unable to meet precondition (possibly because'
    " it raised \"ValueError('word size 57 is not one of (64, 32)') at   File\n"
    '    raise ValueError(f"word size {bits} is not one of {WORD_SIZES}") from None\n'
    '"?).\n'
    "/work/main/model/pagemap/slot.py:181: info: Not confirmed.\n"
)


def test_parser_reads_a_postcondition_counterexample() -> None:
    out = cc.classify(MUTANT_LINE + "\n", "", 1)
    assert out.result == "counterexample"
    assert out.witness["call"].startswith("radix_insert_overwrites(Radix(1, (1,)), 0, 1)")
    assert out.witness["condition"] == (
        "@icontract.ensure(lambda t, key, result: (result[0] == EEXIST) == (t.slots[key] != 0))"
    )
    assert out.witness["at"] == "crosshair_mutants.py:80"


def test_parser_reads_an_exception_and_a_bare_false(tmp_path: Path) -> None:
    out = cc.classify(RAISED_LINE, "", 1)
    assert out.result == "counterexample"
    assert out.witness["call"] == "pm_slot_check_removal(0, 0)"
    assert out.witness["condition"] == "ValueError: word size 0 is not one of (64, 32)"
    # "false when calling" names no condition: the witness is the source line.
    src = tmp_path / "m.py"
    src.write_text("x = 1\n@icontract.ensure(lambda result: result > 0)\n")
    out = cc.classify(f"{src}:2: error: false when calling f(0) (which returns 0)", "", 1)
    assert out.witness["condition"] == "@icontract.ensure(lambda result: result > 0)"
    assert out.witness["call"] == "f(0) (which returns 0)"


def test_parser_pass_vacuous_and_crash() -> None:
    ok = cc.classify(PASS_OUT, "", 0)
    # Paths not exhausted for every condition: a bounded pass, its own result.
    assert ok.result == "bounded"
    assert ok.detail.startswith("1/2 conditions confirmed over all paths;")
    # A precondition CrossHair could never meet makes a pass vacuous: an error.
    vac = cc.classify(VACUOUS_OUT, "", 0)
    assert vac.result == "error" and "vacuous" in vac.detail
    assert len(cc.parse_messages(VACUOUS_OUT)) == 2  # continuation lines folded in
    assert cc.classify("", "", 0).result == "error"  # no condition examined
    crash = cc.classify("", "Traceback ...\nOSError: could not get source code\n", 1)
    assert crash.result == "error" and "OSError" in crash.detail


def test_pinned_twin_is_the_real_wrapper_for_one_word_size() -> None:
    twin = cc.pm_slot_inc_refcnt_64
    real = slot.pm_slot_inc_refcnt
    assert [c.condition for c in twin.__postconditions__] == [
        c.condition for c in real.__postconditions__
    ]
    assert [c.condition for c in twin.__preconditions__[0][1:]] == [
        c.condition for c in real.__preconditions__[0]
    ]
    v = (5 << 53) | (1 << 52) | 0x1234
    assert twin(v, 64) == real(v, 64) == v + (1 << 53)
    with pytest.raises(icontract.ViolationError):
        twin(5, 32)  # the pin
    with pytest.raises(icontract.ViolationError):
        twin(slot.refcnt_max(64) << 53, 64)  # the real overflow precondition still applies
    assert real.__preconditions__ and len(real.__preconditions__[0]) == 2  # real untouched


def test_targets_resolve_and_every_mutant_must_fail() -> None:
    targets = cc.all_targets()
    keys = [(t.name, t.word_bits) for t in targets]
    assert len(keys) == len(set(keys))
    for t in targets:
        module, _, attr = t.path.rpartition(".")
        fn = getattr(importlib.import_module(module), attr)
        assert hasattr(fn, "__postconditions__"), t.path
        assert t.expected in ("pass", "bounded", "counterexample")
        assert t.expected != "counterexample" or t.reason, t.name
    mutants = cm.mutant_targets()
    assert len(mutants) >= 5 and all(t.expected == "counterexample" for t in mutants)
    assert len([t for t in targets if t.name.startswith("crosshair/pagemap.")]) >= 8


def test_crosshair_passes_a_real_target_and_refutes_its_mutant() -> None:
    real = cc.check_target(
        cc.Target("crosshair/pagemap.slot.pm_slot_inc_refcnt", f"{cc.MODULE}.pm_slot_inc_refcnt_64",
                  "pass", 64),
        per_condition_timeout=4, process_timeout=60,
    )
    assert real.result == "pass", real.detail
    assert real.kind == "crosshair" and real.ok
    assert real.detail == "all 2 conditions confirmed over all paths"
    mutant = cc.check_target(
        cc.Target("crosshair/proofs.crosshair_mutants.inc_refcnt_by_flags_shift",
                  f"{cm.MODULE}.mut_pm_slot_inc_refcnt_64", "counterexample", 64),
        per_condition_timeout=4, process_timeout=60,
    )
    assert mutant.result == "counterexample", mutant.detail
    assert mutant.witness["call"].startswith("inc_refcnt_by_flags_shift(")
    # Adding 1 << 52 breaks both postconditions; CrossHair reports one of them.
    assert any(c in mutant.witness["condition"] for c in (
        "_low(result, bits) == _low(v, bits)", "_refcnt(result, bits) == _refcnt(v, bits) + 1"))


def test_bounded_is_its_own_result_and_meets_only_bounded() -> None:
    """A bounded pass is not a pass: it is reported as such, in the table and the JSON;
    an exhaustive pass meets an expectation of bounded, not the other way round."""
    from pagemap.results import RESULTS, CheckResult
    assert "bounded" in RESULTS and "pass" in RESULTS
    bounded = CheckResult("crosshair", "x", "bounded", "bounded", 1.0)
    assert bounded.ok and bounded.to_json()["result"] == "bounded"
    assert CheckResult("crosshair", "x", "pass", "bounded", 1.0).ok
    assert not CheckResult("crosshair", "x", "bounded", "pass", 1.0).ok
    expected = {(t.path, t.word_bits): t.expected for t in cc.real_targets()}
    assert set(expected.values()) == {"pass", "bounded"}
    assert expected[(f"{cc.MODULE}.pm_slot_inc_refcnt_64", 64)] == "pass"
    assert expected[("pagemap.radix.radix_insert", None)] == "bounded"


# The issue's three weak postconditions: each mutant passed CrossHair before the
# postcondition pinned the result (or framed what the function must not touch).
ISSUE_MUTANTS = [
    ("mut_pm_slot_check_refcnt_halved_64", 64, "(result << refcnt_shift(bits))"),
    ("mut_make_pte", None, "every flag bit is kept"),
    ("mut_radix_insert_fresh_leaf", None, "_same_except(t.slots, result[1].slots, key)"),
]


@pytest.mark.parametrize(("attr", "bits", "condition"), ISSUE_MUTANTS)
def test_strong_postconditions_catch_the_issue_mutants(attr: str, bits: int | None,
                                                       condition: str) -> None:
    target = cc.Target(f"crosshair/{attr}", f"{cm.MODULE}.{attr}", "counterexample", bits)
    r = cc.check_target(target, per_condition_timeout=5, process_timeout=200)
    assert r.result == "counterexample", r.detail
    assert condition in r.witness["condition"] + r.witness["message"]

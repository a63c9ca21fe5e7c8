"""The Z3 encoding proofs meet their expectations, and the framework cannot pass vacuously."""

from __future__ import annotations

from collections import Counter

import pytest
import z3
from pagemap.results import CheckResult
from pagemap.slot import PAGE2PPN_NULL, flags_shift, pm_slot_dec_refcnt, refcnt_shift
from pagemap.word import WORD_SIZES, int_word

from proofs import encoding
from proofs.z3kit import COUNTEREXAMPLE, ERROR, PROVED, Theorem, Twin, prove, prove_all

FINDINGS = {
    "encoding/remove-final-set-page-null",
    "encoding/get-page-null-only-for-zero-word",
    "encoding/inc-overflow-wraps-count",
    "encoding/dec-underflow-wraps-count",
    "encoding/set-page-oversized-ppn-corrupts-flags",
}


@pytest.fixture(scope="module")
def results() -> list[CheckResult]:
    return encoding.run()


def by_name(results: list[CheckResult], name: str, bits: int) -> CheckResult:
    [r] = [r for r in results if r.name == name and r.word_bits == bits]
    return r


def test_every_result_is_expected(results: list[CheckResult]) -> None:
    bad = [(r.name, r.word_bits, r.result, r.detail) for r in results if not r.ok]
    assert not bad
    assert all(r.kind == "proof" and r.name.startswith("encoding/") for r in results)
    assert {r.word_bits for r in results} == set(WORD_SIZES)


def test_enough_lemmas_per_word_size(results: list[CheckResult]) -> None:
    proved = Counter(r.word_bits for r in results if r.result == PROVED)
    for bits in WORD_SIZES:
        assert proved[bits] >= 6


def test_findings_are_counterexamples_with_witnesses(results: list[CheckResult]) -> None:
    for bits in WORD_SIZES:
        found = {r.name for r in results if r.word_bits == bits and r.expected == COUNTEREXAMPLE}
        assert found == FINDINGS
        for name in FINDINGS:
            r = by_name(results, name, bits)
            assert r.result == COUNTEREXAMPLE and r.variant == "seed"
            assert r.witness and any(k.startswith("twin.") for k in r.witness)
            assert all(v.startswith("0x") or v in ("true", "false") for v in r.witness.values())


@pytest.mark.parametrize("bits", WORD_SIZES)
def test_witness_values_show_the_findings(results: list[CheckResult], bits: int) -> None:
    over = by_name(results, "encoding/inc-overflow-wraps-count", bits).witness
    assert (over["count"], over["count_after"]) == ("0x7ff", "0x0")
    under = by_name(results, "encoding/dec-underflow-wraps-count", bits).witness
    assert (under["count"], under["count_after"]) == ("0x0", "0x7ff")

    null = by_name(results, "encoding/remove-final-set-page-null", bits).witness
    assert null["twin.page2ppn_null"] == hex(PAGE2PPN_NULL[bits])
    # The model's page2ppn(NULL) changes the refcount on both word sizes.
    assert null["twin.count_after"] != "0x0"

    zero = by_name(results, "encoding/get-page-null-only-for-zero-word", bits).witness
    assert zero["ppn_field"] == "0x0" and int(zero["v"], 16) != 0

    big = by_name(results, "encoding/set-page-oversized-ppn-corrupts-flags", bits).witness
    assert int(big["p"], 16) >> flags_shift(bits) != 0


def test_proofs_use_the_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """Swap in a wrong inc: some proof must notice, so the proofs exercise the core."""
    monkeypatch.setattr(encoding, "slot_inc_refcnt", encoding.mut_inc_flags_shift)
    after = prove_all(encoding.theorems(32))
    assert any(r.name == "encoding/inc-preserves-low-fields" and not r.ok for r in after)


# -- the framework itself ---------------------------------------------------------

X = z3.BitVec("x", 8)


def test_framework_reports_vacuous_assumptions() -> None:
    thm = Theorem("t/vacuous", 64, [z3.ULT(X, 3), z3.UGT(X, 5)], X == 0, Twin("x", X == 1))
    r = prove(thm)
    assert r.result == ERROR and "vacuous" in r.detail and not r.ok


def test_framework_reports_a_surviving_twin() -> None:
    thm = Theorem("t/twin", 64, [X == 4], X & 4 == 4, Twin("weak", X & 1 == 0))
    r = prove(thm)
    assert r.result == ERROR and "twin survived" in r.detail and not r.ok


def test_framework_reports_a_vacuous_twin() -> None:
    thm = Theorem("t/twin-vac", 64, [X == 4], X & 4 == 4, Twin("x", X == 5, [X == 1, X == 2]))
    r = prove(thm)
    assert r.result == ERROR and "vacuous" in r.detail


def test_framework_proves_and_refutes() -> None:
    good = prove(Theorem("t/good", 64, [z3.ULT(X, 4)], z3.ULT(X + 1, 5),
                         Twin("off by one", z3.ULT(X + 1, 4))))
    assert good.result == PROVED and good.ok and not good.witness
    bad = prove(Theorem("t/bad", 64, [z3.ULT(X, 4)], z3.ULT(X + 1, 4),
                        Twin("off by two", z3.ULT(X + 1, 3))))
    assert bad.result == COUNTEREXAMPLE and not bad.ok
    assert bad.witness == {"x": "0x3"}  # the smallest witness


@pytest.mark.parametrize("bits", WORD_SIZES)
def test_put_page_statement_on_concrete_words(bits: int) -> None:
    """The modelled atomic_add, run on ints, is the model's pm_slot_dec_refcnt."""
    w = int_word(bits)
    for v in (1 << refcnt_shift(bits), (1 << bits) - 1, (5 << refcnt_shift(bits)) | 0x1234):
        assert encoding.put_page_atomic_add(w, v) == pm_slot_dec_refcnt(v, bits)
    assert encoding.put_page_atomic_add(w, 0) == (2047 << refcnt_shift(bits))  # the wrap


def test_main_exit_status(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m proofs` exits 0 when all meet expectations, 1 on any surprise."""
    from proofs import __main__ as cli

    # the real modules but the removal proofs, which take minutes and have their own tests
    monkeypatch.setattr(cli, "PROOF_MODULES", ("proofs.encoding", "proofs.layout"))
    assert cli.main(["--word-bits", "32"]) == 0
    assert "encoding/remove-final-set-page-null" in capsys.readouterr().out
    surprise = CheckResult("proof", "t/x", "proved", "counterexample", 0.0, word_bits=64)
    monkeypatch.setattr(cli, "run_all", lambda word_bits=None: [surprise])
    assert cli.main([]) == 1
    assert "<--" in capsys.readouterr().out

"""Back-end agreement (proofs/backends.py) and the pinned layout (proofs/layout.py):
both pass on the real code, and each fails when the code it guards is mutated."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from pagemap import slot
from pagemap.word import IntWord, Z3Word

from proofs import backends, layout
from proofs.z3kit import PROVED


def test_backends_agree() -> None:
    results = backends.run()
    assert len(results) == 2 * len(backends.CORE) == 18
    assert all(r.kind == "test" and r.result == "pass" for r in results), [
        r.detail for r in results if r.result != "pass"]


def test_every_core_function_is_compared() -> None:
    core = {n for n in dir(slot) if n.startswith("slot_") and callable(getattr(slot, n))}
    assert core == {c.name for c in backends.CORE}


def test_edge_words_include_field_boundaries() -> None:
    for bits in (64, 32):
        ws = set(backends.edge_words(bits))
        fs = slot.flags_shift(bits)
        assert {1 << fs, (1 << fs) - 1, 1 << (fs + 1), (1 << bits) - 1, 0} <= ws


def test_intword_const_dropping_the_top_bit_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's mutation: IntWord.const drops the top bit; every proof still passed."""
    def const(self: IntWord, c: int) -> int:
        return c & (self.mask >> 1)

    monkeypatch.setattr(IntWord, "const", const)
    bad = [r for r in backends.run() if r.result != "pass"]
    assert {r.word_bits for r in bad} == {64, 32}
    assert any(r.name == "backends/slot_clear_removal" for r in bad)
    assert all(r.result == "counterexample" and r.witness["args"] for r in bad)


def test_z3word_arithmetic_shift_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Z3's >> is arithmetic: a Z3Word.lshr written with it disagrees with C's."""
    monkeypatch.setattr(Z3Word, "lshr", lambda self, v, n: v >> n)
    bad = {r.name for r in backends.run(64) if r.result != "pass"}
    assert bad == {"backends/slot_check_refcnt"}


def test_layout_proved_against_the_c() -> None:
    results = layout.run()
    assert len(results) >= 16
    assert all(r.result == PROVED and r.ok for r in results), [
        (r.name, r.detail) for r in results if not r.ok]


@pytest.mark.parametrize(("bits", "shift"), [(64, 51), (32, 19), (64, 53)])
def test_changed_flags_shift_fails_the_layout(monkeypatch: pytest.MonkeyPatch, bits: int,
                                             shift: int) -> None:
    """The issue's mutation: FLAGS_SHIFT 51/19; before, only literals in tests noticed."""
    monkeypatch.setitem(slot.FLAGS_SHIFT, bits, shift)
    results = layout.run(bits)
    failed = {r.name for r in results if not r.ok}
    assert "layout/pm-slot-check-removal" in failed
    assert "layout/picture-fields" in failed


def test_layout_does_not_read_the_codec_constants() -> None:
    """One source of truth each: the C's numbers are written in proofs/layout.py, not
    taken from pagemap.slot (else changing the codec would change the reference).
    It imports only the core functions it checks."""
    tree = ast.parse(Path(layout.__file__).read_text())
    imported = {a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module == "pagemap.slot" for a in node.names}
    assert imported and all(n.startswith("slot_") for n in imported), imported
    assert not any(isinstance(node, ast.Import) and any(a.name == "pagemap.slot"
                                                        for a in node.names)
                   for node in ast.walk(tree))
    c: Any = layout.C[64]
    assert (c.PM_FLAGS_SHIFT, c.PM_REFCNT_SHIFT, c.PM_REMOVAL) == (52, 53, 1 << 52)
    assert (layout.C[32].PM_FLAGS_SHIFT, layout.C[32].PPN_MASK) == (20, (1 << 20) - 1)

"""Traceability: the spec names everything the code has, and every finding it
states is reproduced by its scenario."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pagemap.catalog import catalog
from pagemap.checker.explore import Explorer
from pagemap.checker.findings import FINDINGS
from pagemap.checker.invariants import INVARIANTS
from pagemap.checker.scenario import load
from pagemap.config import FIXES

SPEC = Path(__file__).resolve().parents[1] / "spec"


def spec_text() -> str:
    return "\n".join(p.read_text() for p in sorted(SPEC.glob("*.md")))


def test_steps_catalogue_is_current() -> None:
    assert (SPEC / "steps.md").read_text() == catalog(), (
        "spec/steps.md is out of date: run `python -m pagemap.catalog > spec/steps.md`"
    )


@pytest.mark.parametrize("inv", sorted(INVARIANTS))
def test_every_invariant_id_is_in_the_spec(inv: str) -> None:
    assert f"`{inv}`" in (SPEC / "invariants.md").read_text()


@pytest.mark.parametrize("fix", sorted(FIXES))
def test_every_fix_is_described(fix: str) -> None:
    assert f"`{fix}`" in (SPEC / "README.md").read_text()
    assert f"**Fix `{fix}`.**" in (SPEC / "findings.md").read_text()


def test_every_fix_has_a_finding() -> None:
    assert {f.fix for f in FINDINGS} == set(FIXES)


def test_findings_page_names_each_finding_and_its_scenario() -> None:
    text = (SPEC / "findings.md").read_text()
    headings = re.findall(r"^## (F\d+)\. ", text, flags=re.MULTILINE)
    assert headings == [f.id for f in FINDINGS]
    for f in FINDINGS:
        assert f"scenarios/{f.scenario}" in text
        assert f.path.exists(), f.path


@pytest.mark.parametrize("finding", FINDINGS, ids=[f.id for f in FINDINGS])
def test_finding_is_reproduced(finding) -> None:  # type: ignore[no-untyped-def]
    """seed fails, fixed passes, and without its fix the finding's invariant breaks."""
    seed = Explorer(load(finding.path, "seed")).explore(progress=False)
    assert seed.verdict == "violation"
    fixed = Explorer(load(finding.path, "fixed")).explore(progress=False)
    assert fixed.verdict == "pass"
    alone = Explorer(load(finding.path, finding.isolated_variant)).explore(progress=False)
    assert (alone.verdict, alone.invariant) == ("violation", finding.invariant)
    cfg = load(finding.path)
    assert cfg.expect["seed"]["verdict"] == "violation"
    assert cfg.expect[finding.isolated_variant]["invariant"] == finding.invariant


def test_spec_index_links_exist() -> None:
    index = (SPEC / "README.md").read_text()
    for link in re.findall(r"\]\(([a-z_/-]+\.md)\)", index):
        assert (SPEC / link).exists(), link

"""`pagemap report`: the review document, built from a small fake verify JSON
so that no proof, CrossHair run or scenario suite runs here (only the five
finding traces, which take well under a second)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from pagemap import cli
from pagemap.checker.findings import FINDINGS
from pagemap.checker.trace import TraceStep
from pagemap.report import data, swimlane
from pagemap.report.build import run_report
from pagemap.report.markdown import Context, render
from pagemap.results import CheckResult

F1 = FINDINGS[0]
F1_STEM = Path(F1.scenario).stem

FAKE_CHECKS = [
    {"kind": "proof", "name": "encoding/fake-lemma", "result": "proved", "expected": "proved",
     "seconds": 0.01, "word_bits": 64, "detail": "a <lemma> & its twin"},
    {"kind": "proof", "name": "encoding/fake-finding", "result": "counterexample",
     "expected": "counterexample", "seconds": 0.02, "word_bits": 32, "variant": "seed",
     "witness": {"v": "0x1"}, "detail": "documents a finding"},
    {"kind": "crosshair", "name": "crosshair/fake_target", "result": "pass", "expected": "pass",
     "seconds": 1.5, "word_bits": 64, "detail": "2 conditions confirmed"},
    {"kind": "scenario", "name": f"scenario/{F1_STEM}", "result": "violation",
     "expected": "violation", "seconds": 0.3, "variant": "seed", "word_bits": 64,
     "witness": {"invariant": "no-lost-write", "message": "m"},
     "detail": "no-lost-write: m; 96 states, 200 transitions"},
    {"kind": "scenario", "name": f"scenario/{F1_STEM}", "result": "violation",
     "expected": "pass", "seconds": 0.4, "variant": "fixed", "word_bits": 64,
     "witness": {"invariant": "no-use-after-free", "message": "m"},
     "detail": "no-use-after-free: m; 170 states, 300 transitions"},
    {"kind": "test", "name": "pytest", "result": "pass", "expected": "pass", "seconds": 9.0,
     "detail": "12 passed"},
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, str]:
    tmp = tmp_path_factory.mktemp("report")
    src = tmp / "verify.json"
    src.write_text(json.dumps({"ok": False, "checks": FAKE_CHECKS}))
    err = io.StringIO()
    code = run_report(from_json=str(src), out=str(tmp / "out"), err=err)
    page = tmp / "out" / "index.html"
    assert page.exists(), err.getvalue()
    return code, page.read_text(encoding="utf-8"), err.getvalue()


def _sections(html: str) -> dict[str, str]:
    parts = re.split(r'<section class="finding" id="finding-(F\d+)">', html)
    return {fid: body.split("</section>", 1)[0] for fid, body in zip(parts[1::2], parts[2::2])}


def test_report_is_built_and_exit_code_reflects_the_mismatch(built: tuple[int, str, str]) -> None:
    code, html, err = built
    assert code == 1, err  # the fake 'fixed' row differs from its expectation
    assert html.startswith("<!DOCTYPE html>")
    assert f"{len(FINDINGS)}/{len(FINDINGS)} findings with their swimlane" in err


def test_report_is_self_contained(built: tuple[int, str, str]) -> None:
    _, html, _ = built
    low = html.lower()
    for pattern in ("<script", "<link", "<iframe", "<img", "<object", "<embed", "@import",
                    " src="):
        assert pattern not in low, pattern
    assert not re.search(r"url\((?!#)", low)  # only url(#id) of a marker in the same SVG
    # any absolute URL may only be the target of a hyperlink, which loads nothing
    for m in re.finditer(r"https?://", low):
        before = low[max(0, m.start() - 9): m.start()]
        assert before.endswith('href="'), low[m.start() - 40: m.start() + 40]
    assert "<style>" in html


def test_one_swimlane_per_finding_naming_its_invariant(built: tuple[int, str, str]) -> None:
    _, html, _ = built
    assert html.count('<svg class="swimlane"') == len(FINDINGS)
    sections = _sections(html)
    assert list(sections) == [f.id for f in FINDINGS]
    for f in FINDINGS:
        body = sections[f.id]
        svgs = re.findall(r"<svg class=\"swimlane\".*?</svg>", body, flags=re.DOTALL)
        assert len(svgs) == 1, f.id
        svg = svgs[0]
        assert f"VIOLATED INVARIANT: {f.invariant}" in svg
        assert f'data-invariant="{f.invariant}"' in svg
        assert svg.count('class="step step-violation"') == 1
        ET.fromstring(svg)  # well-formed: every text is escaped
        assert f"--variant {f.isolated_variant}" in body


def test_summary_rows_and_seed_result(built: tuple[int, str, str]) -> None:
    _, html, _ = built
    summary = html.split('<section id="summary">', 1)[1].split("</section>", 1)[0]
    for check in FAKE_CHECKS:
        assert f'<td class="name">{check["name"]}</td>' in summary
    assert "6 checks, 5 as expected, 1 unexpected" in summary
    assert summary.count('<tr class="bad">') == 2  # the scenario kind row and the check row
    assert "a &lt;lemma&gt; &amp; its twin" in html  # record text is escaped
    f1 = _sections(html)["F1"]
    assert "pagemap verify" in f1 and "96" in f1  # the seed run's states, from the records


def test_spec_pages_in_index_order(built: tuple[int, str, str]) -> None:
    _, html, _ = built
    pages, _missing = data.spec_pages()
    ids = re.findall(r'<section class="spec-page" id="spec-([\w-]+)">', html)
    assert ids[0] == "readme" and ids == [p.name.lower() for p in pages]
    index = (data.SPEC_DIR / "README.md").read_text()
    linked = [n for n in re.findall(r"\]\(([\w.-]+)\.md\)", index) if n in ids]
    assert ids[1: 1 + len(linked)] == linked
    assert 'href="#spec-slot"' in html  # a link between spec pages became an anchor


def _removal(v: data.Verification) -> data.ProofGroup:
    (group,) = [g for g in data.proof_groups(v, io.StringIO()) if g.name == "removal"]
    return group


def test_removal_proofs_are_reported_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    old = data.Verification([], 0.0, "a test", fresh=False)
    monkeypatch.setattr(data, "REMOVAL_MODULE", "proofs.no_such_module_here")
    group = _removal(old)
    assert not group.records and "cannot be imported" in group.note
    monkeypatch.setattr(data, "REMOVAL_MODULE", "proofs.z3kit")  # importable, no run()
    group = _removal(old)
    assert not group.records and "has no run()" in group.note
    # a module with run() that pagemap verify does not collect: run only by a fresh report
    fake = types.ModuleType("fake_removal_proofs")
    record = CheckResult(kind="proof", name="removal/fake", result="proved", expected="proved",
                         seconds=0.0)
    fake.run = lambda: [record]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_removal_proofs", fake)
    monkeypatch.setattr(data, "REMOVAL_MODULE", "fake_removal_proofs")
    group = _removal(old)
    assert not group.records and "--from-json" in group.note
    group = _removal(data.Verification([], 0.0, "a test", fresh=True))
    assert group.records == [record] and "run by the report" in group.note


def test_bad_json_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"checks": [{"kind": "proof"}]}')
    assert cli.main(["report", "--from-json", str(bad), "--out", str(tmp_path)]) == 2
    assert "lacks" in capsys.readouterr().err
    assert cli.main(["report", "--from-json", str(tmp_path / "none.json")]) == 2


# -- the Markdown converter ---------------------------------------------------------------


def test_markdown_blocks() -> None:
    src = """# Title <b>

Some *italic*, **bold**, `code <x>` and pm_remove_contig_x stay.

| a | b |
| --- | ---: |
| `x \\| y` | 2 |

- one
- two
  - nested
1. first
2. second

```
if (a < b && c) { }
```
"""
    out = render(src, Context(page="demo", pages=["slot"]))
    assert '<h1 id="spec-demo-title-b">Title &lt;b&gt;</h1>' in out
    assert "<em>italic</em>" in out and "<strong>bold</strong>" in out
    assert "<code>code &lt;x&gt;</code>" in out
    assert "pm_remove_contig_x" in out and "<em>remove" not in out
    assert "<table>" in out and "<th>a</th>" in out and "<code>x | y</code>" in out
    assert '<td style="text-align:right">2</td>' in out
    assert re.search(r"<ul><li>one</li><li>two\s*<ul><li>nested</li></ul></li></ul>", out)
    assert "<ol><li>first</li><li>second</li></ol>" in out
    assert "<pre><code>if (a &lt; b &amp;&amp; c) { }</code></pre>" in out


def test_markdown_links_and_escaping() -> None:
    ctx = Context(page="findings", pages=["slot", "findings"])
    out = render("See [slot.md](slot.md), [x](slot.md#layout), [gone](bench.md) "
                 "and <script>alert(1)</script>.", ctx)
    assert '<a href="#spec-slot">slot.md</a>' in out
    assert '<a href="#spec-slot-layout">x</a>' in out
    assert 'class="missing-link"' in out and ctx.missing == ["bench.md"]
    assert "<script>" not in out and "&lt;script&gt;" in out


# -- the swimlane --------------------------------------------------------------------------


def test_swimlane_draws_flushes_and_escapes() -> None:
    steps = [
        TraceStep("r", "shootdown_and_reset.send", "shootdown_and_reset: proc_tlbshootdown()",
                  {"u1.flush_pending": "0 -> 1"}, []),
        TraceStep("u1", swimlane.FLUSH_WHERE, "tlbflush: the IPI lands", {"u1.tlb[v1+0]":
                  "page1 dirty -> -"}, ["tlbflush() on this core"]),
        TraceStep("r", "pm.idle", "pm: a < b && c > d " + "x" * 200, {}, []),
        TraceStep("r", "pm.bad", "pm: free", {"page1.kref": "1 -> 0"}, [],
                  "no-use-after-free: <u1>'s TLB & more"),
    ]
    svg = swimlane.render(steps, [swimlane.Lane("u1", "p1: write v1[0]"), swimlane.Lane("r")],
                          ident="t")
    root = ET.fromstring(svg)
    assert root.tag == "svg"
    assert 'class="step step-flush"' in svg and 'class="step step-shootdown"' in svg
    assert 'marker-end="url(#t-arrow)"' in svg  # the queued flush points at u1's lane
    assert "a &lt; b &amp;&amp; c &gt; d" in svg and "&lt;u1&gt;&#39;s TLB &amp; more" in svg
    assert float(root.get("width", "0")) <= swimlane.TARGET_WIDTH
    texts = [t.text or "" for t in root.iter("text")]
    assert max(len(t) for t in texts) < 90  # long statements are wrapped


def test_wrap_keeps_every_character() -> None:
    text = "atomic_cas_ptr(tree_slot, old, inc_refcnt(clear_removal(old))); retry " + "y" * 50
    lines = swimlane.wrap(text, 24, indent=2)
    assert all(len(line) <= 24 for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")


def test_report_says_it_reuses_a_verification_and_draws_initial_states(
        built: tuple[int, str, str]) -> None:
    _, html, err = built
    assert "reusing the verification results of the JSON file verify.json" in err
    assert "not running pagemap verify" in err
    assert html.count('class="initial-state"') == len(FINDINGS)
    assert "atomic_and(pte, ~PTE_P)" in _sections(html)["F2"]  # F2 runs with atomic-pte-update
    assert "values: page2ppn(NULL): the slot word" in _sections(html)["F1"]


def test_make_report_does_not_verify_unless_asked(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(["make", "-s", "report", f"VERIFY_JSON={tmp_path}/none.json"],
                          cwd=root, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "make verify-json" in proc.stdout and "FRESH=1" in proc.stdout

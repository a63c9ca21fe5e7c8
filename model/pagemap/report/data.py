"""What the review document shows, gathered before any HTML is written.

Not a model of any C function. Sources: a verification run (fresh, through
``pagemap.verify``'s collectors, or the JSON of `pagemap verify --json`),
the findings' shortest traces (``pagemap.checker.findings.isolated_trace``),
the removal proofs when ``proofs.removal`` can be imported, the scenario
files (for their descriptions) and spec/*.md.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import time
import tomllib
import traceback
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TextIO

from pagemap.checker.findings import FINDINGS, Finding
from pagemap.checker.trace import TraceStep
from pagemap.results import KINDS, RESULTS, CheckResult

REPO = Path(__file__).resolve().parents[3]
SPEC_DIR = REPO / "spec"
SCENARIO_DIR = REPO / "scenarios"

#: The module the removal-phase proofs live in (written separately; optional).
REMOVAL_MODULE = "proofs.removal"


class ReportError(Exception):
    """Bad input to the report (e.g. an unreadable --from-json file)."""


@dataclass
class Verification:
    """The records of one `pagemap verify` run and where they come from."""

    records: list[CheckResult]
    seconds: float  # wall time of the run; from JSON: the sum of the records
    source: str  # one line for people
    fresh: bool

    @property
    def ok(self) -> bool:
        return bool(self.records) and all(r.ok for r in self.records)

    def of_kind(self, kind: str) -> list[CheckResult]:
        return [r for r in self.records if r.kind == kind]


def fresh_run(err: TextIO | None = None) -> Verification:
    """Run every collector of `pagemap verify` now (its progress goes to ``err``)."""
    from pagemap.verify import verify

    start = time.perf_counter()
    records = verify(err=sys.stderr if err is None else err)
    seconds = time.perf_counter() - start
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return Verification(records, seconds, f"a fresh run of pagemap verify, {stamp}", True)


_FIELDS = {f.name for f in fields(CheckResult)}


def _record(d: Any, n: int) -> CheckResult:
    if not isinstance(d, dict):
        raise ReportError(f"check #{n} is a {type(d).__name__}, not an object")
    missing = {"kind", "name", "result", "expected", "seconds"} - d.keys()
    if missing:
        raise ReportError(f"check #{n} lacks {', '.join(sorted(missing))}")
    kw = {k: v for k, v in d.items() if k in _FIELDS}
    if kw["kind"] not in KINDS or kw["result"] not in RESULTS or kw["expected"] not in RESULTS:
        raise ReportError(f"check #{n} ({kw['name']}): unknown kind or result")
    kw["seconds"] = float(kw["seconds"])
    kw["witness"] = dict(kw.get("witness") or {})
    kw["detail"] = str(kw.get("detail") or "")
    return CheckResult(**kw)


def load_json(path: Path) -> Verification:
    """The object `pagemap verify --json` printed: ``{"ok": ..., "checks": [...]}``."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("checks"), list):
        raise ReportError(f"{path}: not the output of `pagemap verify --json` (no 'checks' list)")
    records = [_record(d, n) for n, d in enumerate(data["checks"], 1)]
    seconds = sum(r.seconds for r in records)
    return Verification(records, seconds, f"the JSON file {Path(path).name} "
                        f"(an earlier `pagemap verify --json`, {written(Path(path))})", False)


def age(seconds: float) -> str:
    """'5 minutes', '3 hours', '2 days'."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return "less than a minute"


def written(path: Path, now: float | None = None) -> str:
    """When a file was written, and how long ago: 'written 2014-02-27 10:00, 3 hours ago'."""
    mtime = path.stat().st_mtime
    ago = (time.time() if now is None else now) - mtime
    return f"written {time.strftime('%Y-%m-%d %H:%M', time.localtime(mtime))}, {age(ago)} ago"


# -- findings --------------------------------------------------------------------


@dataclass
class FindingView:
    finding: Finding
    steps: list[TraceStep] = field(default_factory=list)
    verdict: str = ""
    invariant: str | None = None
    states: int = 0
    seconds: float = 0.0
    lanes: list[tuple[str, str]] = field(default_factory=list)  # (thread, about)
    initial: list[str] = field(default_factory=list)  # the starting state, for people
    error: str = ""

    @property
    def as_expected(self) -> bool:
        return (not self.error and self.verdict == "violation"
                and self.invariant == self.finding.invariant and bool(self.steps))


def finding_view(f: Finding) -> FindingView:
    """The isolated variant's shortest trace of one finding; errors become text."""
    from pagemap.checker.explore import Explorer
    from pagemap.checker.scenario import load
    from pagemap.checker.trace import build, initial_state_of, picture_lines
    from pagemap.checker.values import thread_lines

    view = FindingView(f)
    start = time.perf_counter()
    try:
        cfg = load(f.path, f.isolated_variant)
        view.lanes = thread_lines(cfg)
        ex = Explorer(cfg)
        out = ex.explore(progress=False)
        view.steps = build(ex.layout, out)
        view.initial = picture_lines(ex.layout, view.steps, initial_state_of(out))
        view.verdict, view.invariant, view.states = out.verdict, out.invariant, out.states
    except Exception as exc:  # noqa: BLE001 -- shown in the document, not fatal
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" (at {Path(last[0].filename).name}:{last[0].lineno})" if last else ""
        view.error = f"{type(exc).__name__}: {exc}{where}"
    view.seconds = time.perf_counter() - start
    return view


def finding_views() -> list[FindingView]:
    return [finding_view(f) for f in FINDINGS]


def finding_prose(text: str) -> dict[str, str]:
    """spec/findings.md's section of each finding (``## F1. ...``), without its
    heading and without the trace table that the swimlane replaces."""
    out: dict[str, str] = {}
    parts = re.split(r"^## (F\d+)\.[^\n]*\n", text, flags=re.MULTILINE)
    for fid, body in zip(parts[1::2], parts[2::2], strict=True):
        body = re.split(r"^## ", body, maxsplit=1, flags=re.MULTILINE)[0]
        body = re.split(r"^\*\*Shortest trace\*\*", body, maxsplit=1, flags=re.MULTILINE)[0]
        out[fid] = body.strip()
    return out


# -- proofs ------------------------------------------------------------------------


@dataclass
class ProofGroup:
    name: str  # e.g. "encoding", "removal"
    records: list[CheckResult]
    note: str = ""  # where they come from, or why there are none


def _group(name: str) -> str:
    return name.split("/", 1)[0] if "/" in name else "other"


def _removal_in_verify() -> bool:
    """Do `pagemap verify`'s collectors already run the removal proofs?"""
    from pagemap.verify import COLLECTORS

    modules = {c.target.partition(":")[0] for c in COLLECTORS}
    if REMOVAL_MODULE in modules:
        return True
    if modules & {"proofs", "proofs.__main__"}:
        try:
            from proofs.__main__ import PROOF_MODULES
        except ImportError:
            return False
        return REMOVAL_MODULE in PROOF_MODULES
    return False


def proof_groups(v: Verification, err: TextIO | None = None) -> list[ProofGroup]:
    """Proof records of the run grouped by name prefix, plus the removal proofs.

    The removal proofs are optional: when ``proofs.removal`` cannot be imported
    the group says so; when it can but `pagemap verify` does not run it, a
    fresh report runs it here (a report from JSON does not). A module without
    ``run`` (still being written) is a note, not an error."""
    groups: dict[str, list[CheckResult]] = {}
    for r in v.of_kind("proof"):
        groups.setdefault(_group(r.name), []).append(r)
    out = [ProofGroup(name, recs, f"from {v.source}") for name, recs in groups.items()]
    if "removal" in groups:
        return out
    try:
        module = importlib.import_module(REMOVAL_MODULE)
    except Exception as exc:  # noqa: BLE001 -- reported in the document
        out.append(ProofGroup("removal", [], f"{REMOVAL_MODULE} cannot be imported "
                              f"({type(exc).__name__}: {exc}), so this report has no "
                              "removal-phase proofs."))
        return out
    if not callable(getattr(module, "run", None)):
        out.append(ProofGroup("removal", [], f"{REMOVAL_MODULE} exists but has no run() "
                              "(yet), so this report has no removal-phase proofs."))
        return out
    if _removal_in_verify():
        out.append(ProofGroup("removal", [], f"{REMOVAL_MODULE} is a collector of pagemap "
                              f"verify, but {v.source} has no record of it."))
        return out
    if not v.fresh:
        out.append(ProofGroup("removal", [], f"{REMOVAL_MODULE} exists but is not run by "
                              f"pagemap verify, and this report was built from {v.source}; "
                              "build it without --from-json to run those proofs."))
        return out
    print(f"pagemap report: running {REMOVAL_MODULE}.run() ...", file=err or sys.stderr)
    start = time.perf_counter()
    try:
        records = list(module.run())
    except Exception as exc:  # noqa: BLE001 -- reported in the document
        records = [CheckResult(kind="proof", name=f"{REMOVAL_MODULE}:run", result="error",
                               expected="proved", seconds=time.perf_counter() - start,
                               detail=f"raised {type(exc).__name__}: {exc}")]
    out.append(ProofGroup("removal", records, f"run by the report itself: {REMOVAL_MODULE} "
                          "is not (yet) a collector of pagemap verify."))
    return out


# -- scenarios and spec pages -----------------------------------------------------------


def scenario_description(stem: str, directory: Path = SCENARIO_DIR) -> str:
    try:
        data = tomllib.loads((directory / f"{stem}.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return ""
    desc = data.get("description", "")
    return " ".join(desc.split()) if isinstance(desc, str) else ""


@dataclass
class SpecPage:
    name: str  # file name without .md
    text: str


def spec_pages(directory: Path = SPEC_DIR) -> tuple[list[SpecPage], list[str]]:
    """README first, then the pages in the order the index links them, then
    any other page; and the index's links to pages that do not exist."""
    present = {p.stem: p for p in sorted(directory.glob("*.md"))}
    order = ["README"] if "README" in present else []
    missing: list[str] = []
    if "README" in present:
        for link in re.findall(r"\]\(([\w.-]+)\.md\)", present["README"].read_text()):
            if link in present and link not in order:
                order.append(link)
            elif link not in present and link not in missing:
                missing.append(link)
    order += [name for name in present if name not in order]
    return [SpecPage(n, present[n].read_text()) for n in order], missing

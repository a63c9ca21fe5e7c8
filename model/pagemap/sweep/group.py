"""Findings by root cause: one per cause, with its smallest scenario, written
as a scenario file that `pagemap check` reproduces.

A cause is the set of fixes of ``pagemap.sweep.run``.  Kinds: ``fix`` (the
named fixes that repair it), ``combination`` (no single fix does; several
missing at once break it), ``new-defect`` (``fixed`` itself violates: no named
fix repairs it; grouped by invariant) and ``undecided`` (a run that decides the
cause reached the state limit; grouped by invariant).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from pagemap.checker.findings import FINDINGS
from pagemap.sweep.run import Result


@dataclass(frozen=True)
class Finding:
    kind: str  # fix | combination | new-defect | undecided
    fixes: tuple[str, ...]
    together: tuple[tuple[str, ...], ...]
    invariant: str
    scenario: dict[str, Any]  # the smallest, canonical
    result: Result
    count: int  # violating scenarios with this cause
    path: Path | None = None

    @property
    def known(self) -> str | None:
        """The id of the finding of spec/findings.md with exactly this cause."""
        if self.kind != "fix":
            return None
        for f in FINDINGS:
            if self.fixes == (f.fix,):
                return f.id
        return None

    @property
    def label(self) -> str:
        """Names the cause: ``a+b`` (each of a, b is needed), ``a&b`` (the
        violation needs a and b missing together)."""
        if self.kind == "fix":
            return "+".join(self.fixes)
        if self.kind == "combination":
            return ",".join("&".join(s) for s in self.together)
        return f"{self.kind}-{self.invariant}"

    @property
    def stem(self) -> str:
        """The file name's stem under --out (no shell metacharacters)."""
        if self.kind == "combination":
            return "sweep-together-" + "+".join(self.fixes)
        return f"sweep-{self.label}"


def kind_of(r: Result) -> str:
    if not r.decided:
        return "undecided"
    if not r.fixes:
        return "new-defect"
    return "combination" if r.together else "fix"


def cause(r: Result) -> tuple[str, tuple[str, ...], str]:
    k = kind_of(r)
    if k in ("fix", "combination"):
        return k, r.fixes, ""
    return k, (), r.run.invariant or ""


def size(s: dict[str, Any], r: Result) -> tuple[Any, ...]:
    """Smaller is better: fewest threads, ops, file pages, then states (then
    fewest VMRs and processes, the default word size, and the canonical key, so
    that ties are broken the same way on every run)."""
    vmrs = sum(len(p["vmr"]) for p in s.get("process", []))
    return (len(s["thread"]), sum(len(t["ops"]) for t in s["thread"]), s["file_pages"],
            r.run.states, vmrs, len(s.get("process", [])), s.get("word_bits", 64) != 64, r.key)


_ORDER = {"new-defect": 0, "undecided": 1, "fix": 2, "combination": 3}


def group(items: list[tuple[dict[str, Any], Result]]) -> list[Finding]:
    best: dict[tuple[str, tuple[str, ...], str], tuple[dict[str, Any], Result]] = {}
    count: dict[tuple[str, tuple[str, ...], str], int] = {}
    for s, r in items:
        if not r.violation:
            continue
        c = cause(r)
        count[c] = count.get(c, 0) + 1
        if c not in best or size(s, r) < size(*best[c]):
            best[c] = (s, r)
    out = []
    for c in sorted(best, key=lambda c: (_ORDER[c[0]], len(c[1]), c)):
        s, r = best[c]
        out.append(Finding(c[0], c[1], r.together, r.run.invariant or "", s, r, count[c]))
    return out


def scenario_file(f: Finding, variant: Any, name: str) -> dict[str, Any]:
    """The finding's scenario as a file: the swept variant, and an [expect]
    entry for every run that decided the cause."""
    r = f.result
    d: dict[str, Any] = {"name": name}
    what = {"fix": f"repaired by {', '.join(f.fixes)}",
            "combination": "seen only with all of " + " or all of ".join(
                " + ".join(s) for s in f.together) + " missing (no single missing fix shows it)",
            "new-defect": "NO named fix repairs it: fixed violates too",
            "undecided": "cause undecided: a run reached the sweep's state limit"}[f.kind]
    d["description"] = (f"Found by pagemap sweep: the smallest of {f.count} scenario(s) whose "
                        f"violation of {f.invariant} on {r.run.variant} is {what}.")
    d["variant"] = variant
    d.update({k: v for k, v in f.scenario.items() if k != "name"})
    expect: dict[str, dict[str, str]] = {}
    for run in (r.run, *r.probes):
        if run.verdict == "pass":
            expect[run.variant] = {"verdict": "pass"}
        elif run.verdict == "violation":
            expect[run.variant] = {"verdict": "violation", "invariant": run.invariant or ""}
    d["expect"] = expect
    return d


def write(findings: list[Finding], variant: Any, out: Path) -> list[Finding]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for f in findings:
        name = f.stem
        path = out / f"{name}.toml"
        path.write_text(tomli_w.dumps(scenario_file(f, variant, name), multiline_strings=True))
        written.append(Finding(f.kind, f.fixes, f.together, f.invariant, f.scenario, f.result,
                               f.count, path))
    return written

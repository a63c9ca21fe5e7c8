"""`pagemap sweep [--variant V] [--bounds FILE.toml] [--workers N | --scheduler ADDRESS]
[--json] [--out DIR]` (README, "Checking every small scenario"): every scenario within the bounds, checked;
findings grouped by root cause.

Exit codes: 0 no finding (and every scenario decided); 1 findings; 2 bad
input; 4 a scenario reached the state limit and nothing was found.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pagemap.checker.scenario import ScenarioError, parse
from pagemap.config import resolve_variant, variant_name
from pagemap.sweep import bounds as bounds_mod
from pagemap.sweep import canon, engine
from pagemap.sweep.enumerate import scenarios
from pagemap.sweep.group import Finding, cause, group, write
from pagemap.sweep.run import Result, check_batch

EXIT_NONE, EXIT_FINDINGS, EXIT_BAD_INPUT, EXIT_INCOMPLETE = 0, 1, 2, 4
#: The cluster failed under us (not 1 or 4: those are results).  sysexits EX_SOFTWARE,
#: as `pagemap` uses when the checker cannot be loaded.
EXIT_ENGINE = 70
BATCH = 8  # scenarios per task


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"pagemap sweep: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pagemap sweep",
                description="Check every scenario within bounds; group findings by root cause.")
    p.add_argument("--variant", default="seed",
                   help="seed | fixed | a fix | fixed-without-FIX | fixes joined by commas")
    p.add_argument("--bounds", help="bounds file (default: scenarios/sweep/default.toml)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="local worker processes (default: one per core)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="a running Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", default="build/sweep",
                   help="where the findings' scenario files go (default build/sweep)")
    p.add_argument("--max-states", type=int, help="override the bounds' per-run state limit")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p


@dataclass
class Plan:
    """The scenarios to check, and how many there were before canonicalisation."""

    enumerated: int = 0  # labelled scenarios in the scopes
    renamed: int = 0  # distinct up to renaming
    todo: dict[str, dict[str, Any]] = field(default_factory=dict)  # canonical key -> scenario
    done: bool = False  # every scope enumerated


def planned(b: bounds_mod.Bounds, variant: Any, pl: Plan, counts: bool = True
            ) -> Iterator[engine.Batch]:
    """Enumerate and canonicalise into ``pl``, yielding the new canonical
    scenarios in batches as they come.  ``counts``: also count the scenarios
    distinct up to renaming alone (a second canonical form, without the skips).
    Raises ScenarioError when the bounds make a scenario the parser rejects."""
    renamed: set[str] = set()
    batch: engine.Batch = []
    for scope in b.scopes:
        for item in scenarios(scope):
            pl.enumerated += item.weight
            if counts:
                rk, k, s = canon.canonical_both(item.scenario)
                renamed.add(rk)
                pl.renamed = len(renamed)
            else:
                k, s = canon.canonical(item.scenario)
            if k not in pl.todo:
                parse(s, f"scope {scope.name}", variant)
                pl.todo[k] = s
                batch.append((k, s))
                if len(batch) == BATCH:
                    yield batch
                    batch = []
    if batch:
        yield batch
    pl.renamed = len(renamed) if counts else len(pl.todo)
    pl.done = True


def plan(b: bounds_mod.Bounds, variant: Any, counts: bool = True) -> Plan:
    """The whole plan at once (no checking)."""
    pl = Plan()
    for _ in planned(b, variant, pl, counts):
        pass
    return pl


def sweep(b: bounds_mod.Bounds, variant: Any, mapper: engine.Mapper, max_states: int | None = None,
          progress: bool = False) -> tuple[Plan, list[Result], list[Finding]]:
    """Plan, check (as the plan goes), group."""
    pl = Plan()
    results: list[Result] = []
    prog = engine.Progress(progress)
    causes: set[Any] = set()
    args = (variant, max_states or b.max_states, b.contracts)
    for rs in mapper(check_batch, planned(b, variant, pl), args):
        results.extend(rs)
        causes.update(cause(r) for r in rs if r.violation)
        prog.update(len(results), len(pl.todo), pl.done, len(causes))
    prog.update(len(results), len(pl.todo), True, len(causes), final=True)
    results.sort(key=lambda r: r.key)
    findings = group([(pl.todo[r.key], r) for r in results])
    return pl, results, findings


def main_sweep(argv: list[str]) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    t0 = time.monotonic()
    variant: Any = args.variant.split(",") if "," in args.variant else args.variant
    try:
        vname = variant_name(resolve_variant(variant))
        b = bounds_mod.load(args.bounds or bounds_mod.DEFAULT_BOUNDS)
        if args.max_states is not None and args.max_states < 1:
            raise bounds_mod.BoundsError("--max-states must be positive")
        if args.workers is not None and args.workers < 1:
            raise bounds_mod.BoundsError("--workers must be positive")
        next(iter(planned(b, variant, Plan(), counts=False)), None)  # bad bounds: before a cluster
    except (ValueError, ScenarioError) as e:  # BoundsError and ScenarioError are ValueErrors
        print(f"pagemap sweep: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.quiet:
        print(f"pagemap sweep: {b.name} on {vname}, "
              f"{engine.worker_count(args.scheduler, args.workers)}", file=sys.stderr)
    try:
        with engine.dask_cluster(args.workers, args.scheduler) as mapper:
            pl, results, findings = sweep(b, variant, mapper, args.max_states, not args.quiet)
    except ScenarioError as e:  # a later scope makes a scenario the parser rejects
        print(f"pagemap sweep: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:  # e.g. no scheduler at that address
        print(f"pagemap sweep: cannot reach the cluster ({e})", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("pagemap sweep: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the engine: a worker lost for good, a scheduler gone
        print(f"pagemap sweep: the cluster failed ({type(e).__name__}: {e}); no result",
              file=sys.stderr)
        return EXIT_ENGINE
    findings = write(findings, variant, Path(args.out))
    seconds = time.monotonic() - t0
    undecided = [r for r in results if not r.decided]
    complete = not undecided
    summary = Summary(b, vname, pl, results, findings, complete, seconds,
                      max_states=args.max_states or b.max_states)
    if args.json:
        print(json.dumps(summary.to_json(), indent=1))
    else:
        print(summary.text())
    if findings:
        return EXIT_FINDINGS
    return EXIT_NONE if complete else EXIT_INCOMPLETE


@dataclass
class Summary:
    bounds: bounds_mod.Bounds
    variant: str
    plan: Plan
    results: list[Result]
    findings: list[Finding]
    complete: bool
    seconds: float
    max_states: int

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "scenarios": len(self.results),
            "complete": self.complete,
            "seconds": round(self.seconds, 1),
            "findings": [finding_json(f) for f in self.findings],
            "bounds": self.bounds.source,
            "enumerated": self.plan.enumerated,
            "renamed": self.plan.renamed,
            "violating": sum(r.violation for r in self.results),
            "undecided": sum(not r.decided for r in self.results),
            "max_states": self.max_states,
            "contracts": "on" if self.bounds.contracts else "off",
        }

    def text(self) -> str:
        p = self.plan
        viol = sum(r.violation for r in self.results)
        und = sum(not r.decided for r in self.results)
        lines = [
            (f"pagemap sweep: {self.bounds.name}, variant {self.variant}, contracts "
            f"{'on' if self.bounds.contracts else 'off'}, {self.seconds:.1f} s"),
            (f"  {p.enumerated:,} scenarios enumerated, {p.renamed:,} distinct up to renaming, "
            f"{len(self.results):,} checked after the skips"),
            f"  {viol:,} violate {self.variant}; "
            + ("every scenario decided: the scope is complete" if self.complete else
               f"{und:,} undecided (state limit {self.max_states:,}): the scope is NOT complete"),
        ]
        if not self.findings:
            lines.append("  no finding")
            return "\n".join(lines)
        lines.append(f"  {len(self.findings)} root cause(s) (a+b: fixed-without-a and "
                     "fixed-without-b both violate; a&b: only fixed without a and b does):")
        rows = [("root cause", "known", "invariant", "threads/ops/pages", "states", "scenarios",
                 "smallest scenario")]
        for f in self.findings:
            s = f.scenario
            shape = (f"{len(s['thread'])}/{sum(len(t['ops']) for t in s['thread'])}/"
                     f"{s['file_pages']}")
            label = {"new-defect": "NEW DEFECT (no named fix repairs it)",
                     "undecided": "undecided (state limit)",
                     "combination": f"{f.label} (only with all of them missing)"}.get(
                         f.kind, f.label)
            rows.append((label, f.known or "-", f.invariant, shape, f"{f.result.run.states:,}",
                         f"{f.count:,}", str(f.path)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            lines.append(("    " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
                         .rstrip())
        defects = [f for f in self.findings if f.kind == "new-defect"]
        if defects:
            lines.append("")
            lines.append(f"!!! {len(defects)} NEW DEFECT(S): fixed violates; no named fix "
                         "repairs them. Reproduce with `pagemap check FILE --variant fixed`:")
            lines.extend(f"!!!   {f.path} ({f.invariant})" for f in defects)
        return "\n".join(lines)


def finding_json(f: Finding) -> dict[str, Any]:
    r = f.result
    d: dict[str, Any] = {
        "invariant": f.invariant,
        "fixes": list(f.fixes),
        "scenario": str(f.path) if f.path else None,
        "states": r.run.states,
        "kind": f.kind,
        "known": f.known,
        "scenarios": f.count,
        "threads": len(f.scenario["thread"]),
        "ops": sum(len(t["ops"]) for t in f.scenario["thread"]),
        "file_pages": f.scenario["file_pages"],
        "runs": {run.variant: {"verdict": run.verdict, "invariant": run.invariant,
                               "states": run.states} for run in (r.run, *r.probes)},
    }
    if f.together:
        d["together"] = [list(s) for s in f.together]
    return d

"""`pagemap check SCENARIO.toml ...` (DESIGN §3): run one scenario, print the
verdict and, for a violation, the shortest trace.

Exit codes: 0 pass; 1 violation; 2 bad input; 3 the result differs from the
scenario's [expect] entry for the variant that ran; 4 a limit was reached
before the state space was exhausted.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pagemap.checker.explore import Explorer, Outcome
from pagemap.checker.scenario import ScenarioError, load
from pagemap.checker.trace import build, render_table
from pagemap.config import Config

EXIT_PASS, EXIT_VIOLATION, EXIT_BAD_INPUT, EXIT_UNEXPECTED, EXIT_INCOMPLETE = 0, 1, 2, 3, 4


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"pagemap check: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pagemap check", description="Explore every interleaving of a scenario.")
    p.add_argument("scenario")
    p.add_argument("--variant", help="seed | fixed | a fix name | fixes joined by commas")
    p.add_argument("--word-bits", type=int, choices=(32, 64))
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--max-states", type=int)
    p.add_argument("--max-seconds", type=float)
    p.add_argument("--contracts", choices=("on", "off"), default="on")
    p.add_argument("--trace", choices=("text", "json", "none"), default="text")
    return p


def parse_variant(text: str | None) -> Any:
    if text is None:
        return None
    return text.split(",") if "," in text else text


def expectation(cfg: Config) -> dict[str, str] | None:
    return cfg.expect.get(cfg.variant)


def differs(cfg: Config, out: Outcome) -> bool:
    exp = expectation(cfg)
    if exp is None or out.verdict == "incomplete":
        return False
    if exp["verdict"] != out.verdict:
        return True
    return "invariant" in exp and out.verdict == "violation" and exp["invariant"] != out.invariant


def run(cfg: Config, contracts: bool = True, max_states: int | None = None,
        max_seconds: float | None = None, progress: bool = True) -> tuple[Explorer, Outcome]:
    ex = Explorer(cfg, contracts=contracts)
    return ex, ex.explore(max_states=max_states, max_seconds=max_seconds, progress=progress)


def exit_code(cfg: Config, out: Outcome) -> int:
    if out.verdict == "incomplete":
        return EXIT_INCOMPLETE
    if differs(cfg, out):
        return EXIT_UNEXPECTED
    return EXIT_VIOLATION if out.verdict == "violation" else EXIT_PASS


def to_json(ex: Explorer, out: Outcome, contracts: bool, with_trace: bool) -> dict[str, Any]:
    cfg = ex.cfg
    d: dict[str, Any] = {
        "scenario": cfg.name,
        "verdict": out.verdict,
        "states": out.states,
        "transitions": out.transitions,
        "seconds": round(out.seconds, 3),
        "variant": cfg.variant,
        "fixes": sorted(cfg.fixes),
        "word_bits": cfg.word_bits,
        "shootdown": cfg.shootdown,
        "contracts": "on" if contracts else "off",
        "max_depth": out.max_depth,
    }
    if out.verdict == "violation":
        d["invariant"] = out.invariant
        d["message"] = out.message
    if out.limit:
        d["limit"] = out.limit
    exp = expectation(cfg)
    if exp is not None:
        d["expected"] = exp
    d["trace"] = [s.to_json() for s in build(ex.layout, out)] if with_trace else []
    return d


def main_check(argv: list[str]) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        cfg = load(args.scenario, parse_variant(args.variant), args.word_bits)
    except ScenarioError as e:
        print(f"pagemap check: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    contracts = args.contracts == "on"
    try:
        ex, out = run(cfg, contracts, args.max_states, args.max_seconds, progress=True)
    except ValueError as e:  # e.g. a pool too small for the preloaded pages
        print(f"pagemap check: {args.scenario}: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    code = exit_code(cfg, out)
    if args.json:
        print(json.dumps(to_json(ex, out, contracts, args.trace != "none"), indent=1))
        return code
    print(f"{cfg.name}: variant {cfg.variant}, {cfg.word_bits}-bit, shootdown {cfg.shootdown}, "
          f"contracts {'on' if contracts else 'off'}")
    verdict = out.verdict.upper()
    if out.verdict == "violation":
        verdict += f" of {out.invariant}: {out.message}"
    print(f"{verdict}  ({out.states:,} states, {out.transitions:,} transitions, "
          f"{out.seconds:.2f} s, depth {out.max_depth})")
    if out.limit:
        print(f"limit reached: {out.limit}; the state space was not exhausted")
    if out.verdict == "violation" and args.trace != "none":
        steps = build(ex.layout, out)
        if args.trace == "json":
            print(json.dumps([s.to_json() for s in steps], indent=1))
        else:
            print(f"shortest trace, {len(steps)} steps:")
            print(render_table(ex.layout, steps))
    if code == EXIT_UNEXPECTED:
        print(f"UNEXPECTED: the scenario expects {expectation(cfg)} for variant {cfg.variant}")
    return code

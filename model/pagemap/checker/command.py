"""`pagemap check SCENARIO.toml ...`: run scenarios, print the verdict and,
for a violation, the shortest trace; optionally save it, draw it, measure
coverage, or walk random interleavings instead of exhausting them.

Exit codes: 0 pass; 1 violation; 2 bad input (also: a scenario too small for
its allocations); 3 the result differs from the scenario's [expect] entry for
the variant that ran; 4 a limit was reached (or Ctrl-C, or a simulation
found nothing) before the state space was exhausted.  With several files,
the most severe code wins, in the order 2, 3, 1, 4, 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pagemap.checker.explore import Explorer, Outcome
from pagemap.checker.scenario import ScenarioError, load
from pagemap.checker.trace import (
    TraceStep,
    build,
    initial_json,
    initial_state_of,
    render_text,
    say,
)
from pagemap.config import FIXES, WITHOUT, Config, resolve_variant
from pagemap.machine import ScenarioTooSmall

EXIT_PASS, EXIT_VIOLATION, EXIT_BAD_INPUT, EXIT_UNEXPECTED, EXIT_INCOMPLETE = 0, 1, 2, 3, 4
#: Which code wins when several scenarios run: the most severe first.
SEVERITY = (EXIT_BAD_INPUT, EXIT_UNEXPECTED, EXIT_VIOLATION, EXIT_INCOMPLETE, EXIT_PASS)

VARIANT_HELP = (
    "seed (the code as written) | fixed (every fix) | a fix name | fixes joined by commas | "
    f"{WITHOUT}FIX (every fix but FIX); the fixes are listed below"
)
FIX_LIST = "fixes (for --variant):\n" + "\n".join(f"  {name}" for name in FIXES) + (
    f"\n  e.g. --variant {next(iter(FIXES))}, --variant {WITHOUT}{next(iter(FIXES))}\n\n")
EPILOG = FIX_LIST + """exit codes: 0 pass (every interleaving explored, no violation); 1 violation;
2 bad input or a scenario too small for its allocations; 3 the result differs from the
scenario's [expect.VARIANT]; 4 a limit, Ctrl-C, or a simulation that found nothing.
Replay a saved trace with 'pagemap replay FILE'."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pagemap check", description="Explore every interleaving of a scenario.",
                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", nargs="+", help="scenario files (TOML); several may be given")
    p.add_argument("--variant", help=VARIANT_HELP)
    p.add_argument("--word-bits", type=int, choices=(32, 64))
    p.add_argument("--json", action="store_true", help="print one JSON object (a list of "
                   "them for several files)")
    p.add_argument("--max-states", type=int)
    p.add_argument("--max-seconds", type=float)
    p.add_argument("--contracts", choices=("on", "off"), default="on")
    p.add_argument("--trace", choices=("text", "json", "none"), default="text",
                   help="how to show a violation's trace; json prints the whole result as "
                   "JSON, as --json does")
    p.add_argument("--save-trace", metavar="FILE", help="write the violation's schedule, with "
                   "the scenario, to FILE (replay it with 'pagemap replay FILE')")
    p.add_argument("--svg", metavar="FILE", help="draw the violation's trace as a swimlane SVG")
    p.add_argument("--coverage", action="store_true", help="say which steps and branches of "
                   "each thread's ops were never reached, and how often each ran")
    p.add_argument("--simulate", type=int, metavar="N", help="instead of the exhaustive "
                   "search, run N random complete interleavings")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="random seed of --simulate (default 0)")
    return p


def parse_variant(text: str | None) -> Any:
    """--variant as a variant name or a list of fixes; ValueError when it names none."""
    if text is None:
        return None
    variant = text.split(",") if "," in text else text
    resolve_variant(variant)
    return variant


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


def guaranteed_depth(out: Outcome) -> int:
    """How deep an incomplete breadth-first search has decided everything: every
    state within this many steps was reached and checked (the deepest stored
    state's depth, less one, since states of that depth may still be coming)."""
    return max(0, out.max_depth - 1)


def to_json(ex: Explorer, out: Outcome, contracts: bool, with_trace: bool,
            steps: list[TraceStep] | None = None) -> dict[str, Any]:
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
    if out.verdict == "incomplete" and out.limit:
        d["complete_depth"] = guaranteed_depth(out)
    exp = expectation(cfg)
    if exp is not None:
        d["expected"] = exp
    init = initial_state_of(out)
    if init is None and out.verdict != "violation":
        from pagemap.program import initial_state

        init = initial_state(ex.layout)
    d["initial"] = initial_json(ex.layout, init)
    if steps is None and with_trace:
        steps = build(ex.layout, out)
    d["trace"] = [s.to_json(ex.layout) for s in steps] if with_trace and steps else []
    return d


@dataclass
class Job:
    """One scenario file and what to do with it."""

    path: str
    args: argparse.Namespace
    interrupted: bool = False  # Ctrl-C: report this file and check no more

    @property
    def contracts(self) -> bool:
        return self.args.contracts == "on"

    @property
    def as_json(self) -> bool:
        return bool(self.args.json or self.args.trace == "json")


def _bad(msg: str) -> int:
    print(f"pagemap check: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main_check(argv: list[str]) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        variant = parse_variant(args.variant)
    except ValueError as e:
        return _bad(f"--variant: {e}")
    several = len(args.scenario) > 1
    if several and (args.save_trace or args.svg):
        return _bad("--save-trace and --svg take one scenario file")
    if args.simulate is not None and args.simulate < 1:
        return _bad("--simulate: N must be at least 1")
    if args.simulate is not None and args.coverage:
        return _bad("--coverage measures the exhaustive search; drop --simulate")
    codes, objects = [], []
    for n, path in enumerate(args.scenario):
        if n and not args.json and args.trace != "json":
            print()
        job = Job(path, args)
        code, obj = check_one(job, variant)
        codes.append(code)
        if obj is not None:
            objects.append(obj)
        if job.interrupted:
            break
    if (args.json or args.trace == "json") and objects:
        print(json.dumps(objects if several else objects[0], indent=1))
    return min(codes, key=SEVERITY.index)


def check_one(job: Job, variant: Any) -> tuple[int, dict[str, Any] | None]:
    """Check one file; returns its exit code and, with --json, its object."""
    args = job.args
    try:
        cfg = load(job.path, variant, args.word_bits)
    except ScenarioError as e:
        return _bad(str(e)), None
    try:
        if args.simulate is not None:
            return _simulate(job, cfg)
        ex = Explorer(cfg, contracts=job.contracts)
        start = time.monotonic()
        try:
            out = ex.explore(max_states=args.max_states, max_seconds=args.max_seconds,
                             progress=True)
        except KeyboardInterrupt:  # what was explored is still a result: exit 4
            job.interrupted = True
            states, depth = ex.progress_so_far()
            out = Outcome("incomplete", states, 0, time.monotonic() - start, depth,
                          limit="interrupted (Ctrl-C)")
        cov = None
        if args.coverage:
            from pagemap.checker.coverage import measure

            cov = measure(ex, ex.stored_states())
    except ScenarioTooSmall as e:
        return _bad(f"{job.path}: scenario too small: {e}; without [faults] enomem every "
                    "allocation must succeed"), None
    except ValueError as e:  # e.g. a pool too small for the preloaded pages
        return _bad(f"{job.path}: {e}"), None
    steps = build(ex.layout, out) if out.verdict == "violation" else []
    extra: dict[str, Any] = {}
    if cov is not None:
        extra["coverage"] = cov.to_json()
    _save_and_draw(job, ex, out, steps)
    return _report(job, ex, out, steps, extra, cov)


def _save_and_draw(job: Job, ex: Explorer, out: Outcome, steps: list[TraceStep],
                   simulate: dict[str, Any] | None = None) -> None:
    args = job.args
    if not (args.save_trace or args.svg):
        return
    if out.verdict != "violation":
        print(f"pagemap check: no violation, so no trace for --save-trace / --svg "
              f"(verdict {out.verdict})", file=sys.stderr)
        return
    if args.save_trace:
        from pagemap.checker.schedule import Saved, save, scenario_data, schedule_of

        extra = {"simulate": simulate} if simulate else {}
        save(args.save_trace, Saved(scenario_data(job.path), job.path, ex.cfg.variant,
                                    ex.cfg.word_bits, schedule_of(ex, out), out.verdict,
                                    out.invariant, out.message, extra))
        print(f"pagemap check: trace saved to {args.save_trace} "
              f"(replay: pagemap replay {args.save_trace})", file=sys.stderr)
    if args.svg:
        write_svg(args.svg, ex, out, steps)
        print(f"pagemap check: swimlane written to {args.svg}", file=sys.stderr)


def write_svg(path: str, ex: Explorer, out: Outcome, steps: list[TraceStep]) -> None:
    from pagemap.checker.trace import picture_lines
    from pagemap.checker.values import thread_lines
    from pagemap.report import swimlane

    lines = picture_lines(ex.layout, steps, initial_state_of(out))
    lanes = [swimlane.Lane(n, a) for n, a in thread_lines(ex.cfg)]
    title = f"{ex.cfg.name}, variant {ex.cfg.variant}"
    Path(path).write_text(swimlane.document(steps, lanes, title, lines), encoding="utf-8")


def _report(job: Job, ex: Explorer, out: Outcome, steps: list[TraceStep],
            extra: dict[str, Any], cov: Any = None) -> tuple[int, dict[str, Any] | None]:
    cfg = ex.cfg
    args = job.args
    code = exit_code(cfg, out)
    if job.as_json:
        d = to_json(ex, out, job.contracts, args.trace != "none", steps)
        d.update(extra)
        return code, d
    say(f"{cfg.name}: variant {cfg.variant}, {cfg.word_bits}-bit, shootdown {cfg.shootdown}, "
          f"contracts {'on' if job.contracts else 'off'}")
    if "simulate" in extra:
        s = extra["simulate"]
        say(f"simulation: {s['walks']} random interleavings (seed {s['seed']}), "
              f"{s['steps']:,} steps, {s['finished']} ran to the end, longest {s['longest']}")
    verdict = out.verdict.upper()
    if out.verdict == "violation":
        verdict += f" of {out.invariant}: {out.message}"
    what = "steps" if "simulate" in extra else "states"
    moves = f"{out.transitions:,} transitions, " if out.transitions else ""
    say(f"{verdict}  ({out.states:,} {what}, {moves}{out.seconds:.2f} s, depth {out.max_depth})")
    if out.limit:
        say(f"limit reached: {out.limit}; the state space was not exhausted. Breadth first, "
              f"so every interleaving of up to {guaranteed_depth(out)} steps was checked: no "
              "violation in any of them")
    elif "simulate" in extra and out.verdict != "violation":
        say("no violation in these interleavings; random walks prove nothing about the "
              "others (an exhaustive run without --simulate does)")
    if out.verdict == "violation" and args.trace != "none":
        print(f"shortest trace, {len(steps)} steps:" if "simulate" not in extra else
              f"trace of walk {extra['simulate']['violation_walk']}, {len(steps)} steps:")
        print(render_text(ex.layout, steps, initial_state_of(out)))
    if cov is not None:
        from pagemap.checker.coverage import render

        print(render(cov))
    if code == EXIT_UNEXPECTED:
        say(f"UNEXPECTED: the scenario expects {expectation(cfg)} for variant {cfg.variant}")
    return code, None


def _simulate(job: Job, cfg: Config) -> tuple[int, dict[str, Any] | None]:
    from pagemap.checker.schedule import run_schedule
    from pagemap.checker.simulate import simulate

    args = job.args
    ex = Explorer(cfg, contracts=job.contracts)
    try:
        sim = simulate(ex, args.simulate, args.seed, args.max_seconds)
    except KeyboardInterrupt:
        job.interrupted = True
        print("pagemap check: interrupted (Ctrl-C) during the simulation", file=sys.stderr)
        return EXIT_INCOMPLETE, None
    info = {"walks": sim.walks, "seed": sim.seed, "steps": sim.steps,
            "finished": sim.finished, "cut": sim.cut, "longest": sim.longest,
            "violation_walk": sim.violation_walk}
    if sim.invariant:
        rep = run_schedule(ex, sim.schedule)
        out = rep.outcome(sim.seconds)
        out.states, out.transitions = sim.steps, sim.steps
        if rep.verdict != "violation":  # cannot happen: the walk ran these very steps
            raise RuntimeError("a simulated walk did not replay")
    else:
        out = Outcome("incomplete", sim.steps, sim.steps, sim.seconds, sim.longest)
    steps = build(ex.layout, out) if out.verdict == "violation" else []
    _save_and_draw(job, ex, out, steps, info)
    return _report(job, ex, out, steps, {"simulate": info})

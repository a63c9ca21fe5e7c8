"""`pagemap replay FILE [--variant V] [--json] [--state-at N] [--svg FILE]`:
run a saved trace (`pagemap check --save-trace FILE`) again, step by step.

Exit codes: 0 the schedule ran to its end without a violation; 1 a
violation (the saved one, or another: the output names it); 2 bad input
(not a saved trace, an unknown variant, a scenario too small); 4 the
schedule stopped applying before its end (under another variant a thread
may be blocked, finished, or have no flush pending where the saved run had
one): the output says at which step and why.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pagemap.checker.command import (
    EXIT_BAD_INPUT,
    EXIT_INCOMPLETE,
    EXIT_PASS,
    EXIT_VIOLATION,
    VARIANT_HELP,
    parse_variant,
    to_json,
    write_svg,
)
from pagemap.checker.explore import Explorer
from pagemap.checker.scenario import ScenarioError
from pagemap.checker.schedule import Replay, Saved, load_saved, run_schedule
from pagemap.checker.trace import build, render_text, say
from pagemap.checker.values import state_values
from pagemap.machine import ScenarioTooSmall


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"pagemap replay: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pagemap replay", description="Run a saved trace again, step by step.",
                epilog="exit codes: 0 the schedule completes without a violation; 1 a "
                "violation; 2 bad input; 4 the schedule stops applying (the output says where)")
    p.add_argument("trace", help="a file written by 'pagemap check --save-trace FILE'")
    p.add_argument("--variant", help="run under this variant instead of the saved one: "
                   + VARIANT_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object, as "
                   "'pagemap check --json' does")
    p.add_argument("--state-at", type=_state_at, metavar="N", help="print every shared value "
                   "of the state after step N (0: the initial state), or after every step "
                   "with 'all'")
    p.add_argument("--svg", metavar="FILE", help="draw the replayed trace as a swimlane SVG")
    p.add_argument("--contracts", choices=("on", "off"), default="on")
    return p


ALL = -1  # --state-at all


def _state_at(text: str) -> int:
    if text == "all":
        return ALL
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a step number or 'all'") from None


def replay(saved: Saved, variant: Any = None, contracts: bool = True
           ) -> tuple[Explorer, Replay]:
    """Replay a saved trace (under ``variant``, or the one it was saved with)."""
    ex = Explorer(saved.config(variant), contracts=contracts)
    return ex, run_schedule(ex, saved.schedule)


def exit_code(rep: Replay) -> int:
    return {"violation": EXIT_VIOLATION, "pass": EXIT_PASS}.get(rep.verdict, EXIT_INCOMPLETE)


def _bad(msg: str) -> int:
    print(f"pagemap replay: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main_replay(argv: list[str]) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        variant = parse_variant(args.variant)
    except ValueError as e:
        return _bad(f"--variant: {e}")
    try:
        saved = load_saved(args.trace)
        ex, rep = replay(saved, variant, args.contracts == "on")
    except ScenarioError as e:
        return _bad(str(e))
    except ScenarioTooSmall as e:
        return _bad(f"{args.trace}: scenario too small: {e}")
    if args.state_at not in (None, ALL) and not 0 <= args.state_at < len(rep.path):
        return _bad(f"--state-at {args.state_at}: the replay has states 0..{len(rep.path) - 1}")
    shown = ([] if args.state_at is None else range(len(rep.path)) if args.state_at == ALL
             else [args.state_at])
    out = rep.outcome()
    steps = build(ex.layout, out)
    if args.svg:
        write_svg(args.svg, ex, out, steps)
    code = exit_code(rep)
    same = (rep.verdict == "violation" and rep.invariant == saved.invariant)
    if args.json:
        d = to_json(ex, out, args.contracts == "on", True, steps)
        d["replay"] = {"file": args.trace, "saved_variant": saved.variant,
                       "saved_invariant": saved.invariant, "schedule": len(saved.schedule),
                       "steps_run": rep.steps, "reproduced": same, "stopped": rep.stopped,
                       "differs_at": rep.differs_at, "finished": rep.finished}
        if rep.stopped:
            d["verdict"] = "incomplete"
        at = [{"step": n, "values": state_values(ex.layout, rep.path[n][0])} for n in shown]
        if args.state_at == ALL:
            d["state_at"] = at
        elif at:
            d["state_at"] = at[0]
        print(json.dumps(d, indent=1))
        return code
    cfg = ex.cfg
    say(f"replay of {args.trace} ({saved.source}, saved under {saved.variant}): "
          f"variant {cfg.variant}, {cfg.word_bits}-bit, {len(saved.schedule)} scheduled steps")
    print(render_text(ex.layout, steps, rep.path[0][0]))
    for n in shown:
        print(f"state after step {n}:" if n else "initial state:")
        for k, v in state_values(ex.layout, rep.path[n][0]).items():
            print(f"  {k} = {v}")
    if rep.differs_at is not None:
        say(f"from step {rep.differs_at} on, the threads run other steps than in the saved "
              f"run ({saved.variant})")
    if rep.verdict == "violation":
        how = "REPRODUCED" if same else f"VIOLATION (the saved trace had {saved.invariant})"
        say(f"{how}: {rep.invariant}: {rep.message} (step {rep.steps})")
    elif rep.stopped:
        say(f"STOPPED at step {rep.steps + 1} of {len(saved.schedule)}: {rep.stopped}; the "
              f"schedule does not apply to variant {cfg.variant} from there on, and no "
              "violation happened before it")
    else:
        end = "every thread finished" if rep.finished else "some threads have steps left"
        say(f"COMPLETED without a violation: all {rep.steps} steps ran ({end})")
    return code

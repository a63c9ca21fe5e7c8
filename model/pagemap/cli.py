"""The `pagemap` command line: `pagemap check`, `pagemap replay`, `pagemap
verify`, `pagemap report` and `pagemap sweep`.

`check` hands its arguments, untouched, to ``pagemap.checker.command.main_check``,
`replay` to ``pagemap.checker.replay.main_replay`` and `sweep` to
``pagemap.sweep.command.main_sweep`` (each imported only when it runs); `verify`
is ``pagemap.verify``; `report` is ``pagemap.report.build``. Bad usage prints
one line to stderr and exits 2, never
a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from pagemap.results import KINDS

#: Exit code when the checker itself cannot be loaded (sysexits EX_SOFTWARE).
#: Not 1 or 2: those mean "violation" and "bad input" to scripts (spec/scenarios-format.md, exit codes).
EX_SOFTWARE = 70


class UsageError(Exception):
    """Raised instead of argparse's print-usage-and-exit, so main() returns 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pagemap",
        description="Checked specification of the Akaros page-cache rewrite of February 2014.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    check = sub.add_parser(
        "check",
        add_help=False,  # `pagemap check --help` belongs to the checker
        help="explore every interleaving of a scenario file (see 'pagemap check --help')",
    )
    check.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    replay = sub.add_parser(
        "replay",
        add_help=False,
        help="run a trace saved by 'pagemap check --save-trace' again (see "
        "'pagemap replay --help')",
    )
    replay.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    sweep = sub.add_parser(
        "sweep",
        add_help=False,  # `pagemap sweep --help` belongs to the sweep
        help="check every scenario within bounds; findings by root cause (see 'pagemap sweep "
        "--help')",
    )
    sweep.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    ver = sub.add_parser(
        "verify",
        help="run every proof, CrossHair check, scenario and test; one summary table",
        description="Run every check of the project; exit 0 iff each met its expectation.",
    )
    ver.add_argument("--json", action="store_true", help="print one JSON object instead")
    ver.add_argument(
        "--only",
        nargs="+",
        action="extend",
        choices=KINDS,
        metavar="KIND",
        help=f"run only these kinds of check ({', '.join(KINDS)})",
    )
    rep = sub.add_parser(
        "report",
        help="build the review document build/report/index.html (runs pagemap verify "
        "unless given --from-json)",
        description="Build the self-contained HTML review document from spec/ and a fresh "
        "verification run.",
    )
    rep.add_argument("--from-json", metavar="FILE",
                     help="reuse the output of 'pagemap verify --json' instead of a fresh run")
    rep.add_argument("--out", metavar="DIR", help="output directory (default build/report)")
    return parser


def _exit_code(exc: SystemExit) -> int:
    """What the shell would see for this SystemExit."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _check(argv: list[str], command: str = "check") -> int:
    try:
        if command == "replay":
            from pagemap.checker.replay import main_replay as main_fn
        else:
            from pagemap.checker.command import main_check as main_fn
    except ImportError as exc:
        print(f"pagemap {command}: error: the checker cannot be loaded "
              f"({type(exc).__name__}: {exc})", file=sys.stderr)
        return EX_SOFTWARE
    try:
        return int(main_fn(argv))
    except SystemExit as exc:  # e.g. the checker's own --help
        return _exit_code(exc)


def _sweep(argv: list[str]) -> int:
    try:
        from pagemap.sweep.command import main_sweep
    except ImportError as exc:
        print(f"pagemap sweep: error: the sweep cannot be loaded ({type(exc).__name__}: {exc})",
              file=sys.stderr)
        return EX_SOFTWARE
    try:
        return int(main_sweep(argv))
    except SystemExit as exc:  # e.g. the sweep's own --help
        return _exit_code(exc)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # before or after a search (the checker reports its own)
        print("pagemap: interrupted (Ctrl-C)", file=sys.stderr)
        return 4
    except BrokenPipeError:
        # `pagemap check ... | head`: the reader left; say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: Sequence[str] | None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["check"], ["replay"]):
        # argparse would reject the checker's options; pass them through as they are
        return _check(args[1:], args[0])
    if args[:1] == ["sweep"]:
        return _sweep(args[1:])
    try:
        ns = build_parser().parse_args(args)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return _exit_code(exc)
    if ns.command in ("check", "replay"):
        return _check(list(ns.args), ns.command)
    if ns.command == "sweep":
        return _sweep(list(ns.args))
    if ns.command == "report":
        from pagemap.report.build import run_report

        return run_report(from_json=ns.from_json, out=ns.out)
    from pagemap.verify import run_verify

    return run_verify(as_json=ns.json, only=ns.only)


if __name__ == "__main__":
    sys.exit(main())

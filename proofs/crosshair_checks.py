"""CrossHair symbolic checks of the model's icontract contracts (`make crosshair`).

CrossHair executes a contracted function on symbolic arguments and asks Z3 for
arguments that meet the preconditions but break a postcondition (or make the
body raise).  Each target below is one ``crosshair check
--analysis_kind=icontract`` process, bounded by ``--per_condition_timeout``
CPU seconds per postcondition; at most ``JOBS`` run at a time.

Results (one ``CheckResult`` of kind "crosshair" per target):

* ``pass`` -- CrossHair found no counterexample within its bound.  That is
  not a proof, unless CrossHair also says "Confirmed over all paths" (it
  explored every path of the function), which ``detail`` reports.
* ``counterexample`` -- CrossHair printed a call that breaks a condition; the
  call and the condition are the witness.
* ``error`` -- CrossHair crashed, timed out as a whole, or could never meet the
  preconditions (a vacuous pass is an error, like an unsatisfiable Z3 premise).

The slot wrappers of ``pagemap.slot`` take the word size ``bits`` as an
argument.  Each is checked as it is, and also as *pinned* twins, one per word
size: the same undecorated body and the very same icontract condition objects
as the real wrapper, plus one first precondition fixing ``bits`` to 64 or to
32, so that each word size is explored on its own.  (CrossHair's first run
found that the wrappers accepted any ``bits``, and that two radix contracts
lacked a precondition; those contracts were fixed: spec/crosshair.md.)  Restating the contracts in a thin wrapper
that calls the real function would not do: CrossHair treats a postcondition
failing inside a callee as "not this function's problem" and drops the path.
"""

from __future__ import annotations

import argparse
import linecache
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import icontract
from pagemap import slot
from pagemap.results import CheckResult, text_table

#: CPU seconds CrossHair may spend on one postcondition before it gives up.
PER_CONDITION_TIMEOUT = 5.0
#: crosshair processes at once (the machine has 2 cores, shared).
JOBS = 2
#: Wall-clock limit for one crosshair process; beyond it the check is an error.
PROCESS_TIMEOUT = 240.0

REPO = Path(__file__).resolve().parents[1]
#: This module's import name, also when it runs as ``__main__``: CrossHair
#: imports the pinned twins from here.
MODULE = "proofs.crosshair_checks"


# -- pinned twins of the slot wrappers ------------------------------------------


def _bits_is_64(bits: int) -> bool:
    return bits == 64


def _bits_is_32(bits: int) -> bool:
    return bits == 32


# Named functions, not lambdas: icontract (and CrossHair through it) re-reads a
# lambda condition's source from its decorator line, which a call-built
# contract does not have.
_PIN_BITS = {64: _bits_is_64, 32: _bits_is_32}


def with_contracts_of(
    real: Any,
    body: Callable[..., Any],
    bits: int | None = None,
    extra: Sequence[Callable[..., bool]] = (),
) -> Any:
    """``body`` under the icontract conditions of the contracted function ``real``.

    The condition objects are reused, not restated, and kept in the order in
    which icontract evaluates them.  ``bits`` adds a first precondition pinning
    the word size; ``extra`` adds further named preconditions (a missing
    precondition, to show it is the only gap).  ``real`` itself is left
    untouched (icontract would append to its checker if it were decorated again)."""
    fn: Any = body
    if bits is not None:
        fn = icontract.require(_PIN_BITS[bits], f"word size {bits}")(fn)
    for cond in extra:
        fn = icontract.require(cond, cond.__doc__ or cond.__name__)(fn)
    for group in real.__preconditions__:
        for contract in group:
            fn = icontract.require(contract.condition, contract.description)(fn)
    for contract in real.__postconditions__:
        fn = icontract.ensure(contract.condition, contract.description)(fn)
    return fn


def pinned(real: Any, bits: int) -> Any:
    """The real wrapper's own body and contracts, for one word size."""
    return with_contracts_of(real, real.__wrapped__, bits)


pm_slot_check_removal_64 = pinned(slot.pm_slot_check_removal, 64)
pm_slot_check_removal_32 = pinned(slot.pm_slot_check_removal, 32)
pm_slot_set_removal_64 = pinned(slot.pm_slot_set_removal, 64)
pm_slot_set_removal_32 = pinned(slot.pm_slot_set_removal, 32)
pm_slot_clear_removal_64 = pinned(slot.pm_slot_clear_removal, 64)
pm_slot_clear_removal_32 = pinned(slot.pm_slot_clear_removal, 32)
pm_slot_check_refcnt_64 = pinned(slot.pm_slot_check_refcnt, 64)
pm_slot_check_refcnt_32 = pinned(slot.pm_slot_check_refcnt, 32)
pm_slot_inc_refcnt_64 = pinned(slot.pm_slot_inc_refcnt, 64)
pm_slot_inc_refcnt_32 = pinned(slot.pm_slot_inc_refcnt, 32)
pm_slot_dec_refcnt_64 = pinned(slot.pm_slot_dec_refcnt, 64)
pm_slot_dec_refcnt_32 = pinned(slot.pm_slot_dec_refcnt, 32)
pm_slot_get_page_64 = pinned(slot.pm_slot_get_page, 64)
pm_slot_get_page_32 = pinned(slot.pm_slot_get_page, 32)
pm_slot_set_page_64 = pinned(slot.pm_slot_set_page, 64)
pm_slot_set_page_32 = pinned(slot.pm_slot_set_page, 32)
pm_slot_set_page_null_64 = pinned(slot.pm_slot_set_page_null, 64)
pm_slot_set_page_null_32 = pinned(slot.pm_slot_set_page_null, 32)

SLOT_FUNCTIONS = (
    "pm_slot_check_removal",
    "pm_slot_set_removal",
    "pm_slot_clear_removal",
    "pm_slot_check_refcnt",
    "pm_slot_inc_refcnt",
    "pm_slot_dec_refcnt",
    "pm_slot_get_page",
    "pm_slot_set_page",
    "pm_slot_set_page_null",
)

# -- targets ---------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One crosshair run: the object it analyses and what the project expects."""

    name: str  # the CheckResult name: "crosshair/<module>.<function>"
    path: str  # dotted path handed to `crosshair check`
    expected: str = "pass"  # "pass" | "bounded" | "counterexample"
    word_bits: int | None = None
    reason: str = ""  # why a counterexample is expected (a finding or a mutant)


#: Targets whose every condition CrossHair confirms over all paths within the bound
#: (measured; spec/crosshair.md): expected ``pass``.  Every other real target is
#: expected ``bounded`` (no counterexample, paths not exhausted), which an
#: exhaustive pass also meets.  (target path, word size or None)
EXHAUSTIVE: frozenset[tuple[str, int | None]] = frozenset({
    *((f"{MODULE}.{fn}_{bits}", bits) for fn in (
        "pm_slot_inc_refcnt", "pm_slot_dec_refcnt", "pm_slot_get_page") for bits in (64, 32)),
    ("pagemap.slot.pm_slot_get_page", None),
    ("pagemap.radix.radix_has_leaf", None),
    ("pagemap.vmr.vmr_has_page_idx", None),
    ("pagemap.vmr.vmr_idx_to_va", None),
    ("pagemap.vmr.vmr_get_end_idx", None),
})


def _real(name: str, path: str, bits: int | None = None) -> Target:
    expected = "pass" if (path, bits) in EXHAUSTIVE else "bounded"
    return Target(name, path, expected, bits)


def real_targets() -> list[Target]:
    """The model's contracted functions, in the order of the table."""
    out: list[Target] = []
    for fn in SLOT_FUNCTIONS:
        for bits in (64, 32):
            out.append(_real(f"crosshair/pagemap.slot.{fn}", f"{MODULE}.{fn}_{bits}", bits))
    for fn in SLOT_FUNCTIONS:
        out.append(_real(f"crosshair/pagemap.slot.{fn}", f"pagemap.slot.{fn}"))
    for fn in ("pg_set", "pg_clear", "make_pte"):
        out.append(_real(f"crosshair/pagemap.pageflags.{fn}", f"pagemap.pageflags.{fn}"))
    for fn in ("radix_has_leaf", "radix_lookup_slot", "radix_insert", "radix_delete"):
        out.append(_real(f"crosshair/pagemap.radix.{fn}", f"pagemap.radix.{fn}"))
    for fn in ("vmr_has_page_idx", "vmr_idx_to_va", "vmr_get_end_idx", "vmr_for_each_range"):
        out.append(_real(f"crosshair/pagemap.vmr.{fn}", f"pagemap.vmr.{fn}"))
    return out


def all_targets() -> list[Target]:
    """Real targets, then the mutants that must fail (proofs.crosshair_mutants)."""
    # Imported here: crosshair_mutants imports with_contracts_of from this module.
    from proofs.crosshair_mutants import mutant_targets

    return real_targets() + mutant_targets()


# -- running crosshair and reading its output --------------------------------------

# `<file>:<line>: <level>: <message>`, CrossHair's machine-readable format.
_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<level>error|warning|info): (?P<msg>.*)$")


_QUOTED = re.compile(r'^"(?P<cond>.*)" yields false when calling ')


@dataclass
class Message:
    file: str
    line: int
    level: str
    text: str

    @property
    def condition(self) -> str:
        """The broken condition: quoted in the message for a postcondition that
        CrossHair locates at the function, the exception for a body that raised,
        else the source line CrossHair points at (the condition's decorator)."""
        quoted = _QUOTED.match(self.text)
        if quoted:
            return quoted["cond"]
        if not self.text.startswith("false when calling"):
            return self.text.split(" when calling ", 1)[0]
        return linecache.getline(self.file, self.line).strip()


def parse_messages(stdout: str) -> list[Message]:
    """CrossHair's messages; a line that is not a message continues the previous one."""
    out: list[Message] = []
    for raw in stdout.splitlines():
        m = _LINE.match(raw)
        if m:
            out.append(Message(m["file"], int(m["line"]), m["level"], m["msg"]))
        elif out and raw.strip():
            out[-1].text += " " + raw.strip()
    return out


@dataclass
class Outcome:
    result: str  # "pass" | "bounded" | "counterexample" | "error"
    detail: str
    witness: dict[str, Any]


def classify(stdout: str, stderr: str, returncode: int) -> Outcome:
    """What one `crosshair check --report_all` run found (exit 0, 1 or 2)."""
    msgs = parse_messages(stdout)
    errors = [m for m in msgs if m.level == "error"]
    infos = [m for m in msgs if m.level == "info"]
    if returncode == 1 and errors and all("when calling" in m.text for m in errors):
        first = errors[0]
        call = first.text.split("when calling ", 1)[1]
        witness = {
            "call": call,
            "condition": first.condition,
            "at": f"{Path(first.file).name}:{first.line}",
            "message": first.text,
        }
        return Outcome("counterexample", f"{first.text} [{witness['at']}]", witness)
    if returncode == 0 and not errors:
        vacuous = [m for m in infos if "Unable to meet precondition" in m.text]
        if vacuous:
            return Outcome("error", "vacuous: " + vacuous[0].text, {})
        if not infos:
            return Outcome("error", "crosshair reported no condition at all", {})
        exhausted = sum("Confirmed over all paths" in m.text for m in infos)
        if exhausted == len(infos):
            return Outcome("pass", f"all {exhausted} conditions confirmed over all paths", {})
        return Outcome(
            "bounded",
            f"{exhausted}/{len(infos)} conditions confirmed over all paths; "
            "no counterexample for the rest within the per-condition bound",
            {},
        )
    lines = [m.text for m in errors] or stderr.strip().splitlines()[-1:] or [stdout.strip()]
    return Outcome("error", f"crosshair exit {returncode}: {lines[0] if lines else ''}", {})


def crosshair_command(path: str, per_condition_timeout: float) -> list[str]:
    return [
        sys.executable, "-m", "crosshair", "check",
        "--analysis_kind=icontract",
        f"--per_condition_timeout={per_condition_timeout}",
        "--report_all",  # one line per postcondition, so a pass can be told from no work
        path,
    ]


def check_target(target: Target, per_condition_timeout: float = PER_CONDITION_TIMEOUT,
                 process_timeout: float = PROCESS_TIMEOUT) -> CheckResult:
    """Run CrossHair on one target and turn its report into a CheckResult."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), str(REPO / "model"), env.get("PYTHONPATH", "")) if p
    )
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            crosshair_command(target.path, per_condition_timeout),
            capture_output=True, text=True, cwd=REPO, env=env, timeout=process_timeout,
            check=False,  # exit 1 means "counterexample", read below
        )
        outcome = classify(proc.stdout, proc.stderr, proc.returncode)
    except subprocess.TimeoutExpired:
        outcome = Outcome("error", f"crosshair ran longer than {process_timeout:.0f} s", {})
    seconds = round(time.perf_counter() - start, 3)
    detail = outcome.detail
    if target.reason and outcome.result == target.expected:
        detail = f"{target.reason} | {detail}"
    return CheckResult(
        kind="crosshair",
        name=target.name,
        result=outcome.result,
        expected=target.expected,
        seconds=seconds,
        word_bits=target.word_bits,
        witness=outcome.witness,
        detail=" ".join(detail.split()),
    )


def run(per_condition_timeout: float = PER_CONDITION_TIMEOUT, jobs: int = JOBS,
        targets: Sequence[Target] | None = None) -> list[CheckResult]:
    """Every target (real functions and mutants), ``jobs`` crosshair processes at a time."""
    chosen = list(all_targets() if targets is None else targets)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(lambda t: check_target(t, per_condition_timeout), chosen))


# -- command line --------------------------------------------------------------------

_COLUMNS = ("name", "bits", "result", "expected", "seconds")


def format_table(results: Sequence[CheckResult]) -> str:
    rows = [
        (r.name, str(r.word_bits or "any"), r.result, r.expected, f"{r.seconds:.2f}")
        for r in results
    ]
    return text_table(_COLUMNS, rows, right=("seconds",),
                      notes=["" if r.ok else f"UNEXPECTED: {r.detail}" for r in results])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proofs.crosshair_checks",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-condition-timeout", type=float, default=PER_CONDITION_TIMEOUT)
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("-k", dest="only", default="", help="only targets whose name contains this")
    parser.add_argument("--witness", action="store_true", help="print counterexample witnesses")
    args = parser.parse_args(argv)

    targets = [t for t in all_targets() if args.only in t.name]
    if not targets:
        print(f"no target matches {args.only!r}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    results = run(args.per_condition_timeout, args.jobs, targets)
    wall = time.perf_counter() - start
    print(format_table(results))
    if args.witness:
        for r in results:
            if r.witness:
                print(f"\n{r.name} [{r.word_bits or 'any'}]: {r.witness['call']}")
                print(f"    condition: {r.witness['condition']}")
    bad = [r for r in results if not r.ok]
    print(
        f"\n{len(results)} crosshair checks, {len(results) - len(bad)} as expected, "
        f"{len(bad)} unexpected; {wall:.1f} s wall, {args.jobs} jobs, "
        f"{args.per_condition_timeout:g} s per condition"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""`pagemap verify`: every check the project has, run in one go, one summary (README, "The two commands").

Not a model of any C function: this is the project's own driver. Each source of
checks is a *collector*, a callable that returns ``list[CheckResult]``, named by
a dotted path in the registry ``COLLECTORS``. They run in the order of
``pagemap.results.KINDS`` (proof, refinement, crosshair, scenario, test). A collector that
cannot be imported, raises, or returns nothing usable is not skipped: it
becomes one ``error`` record, so `verify` fails honestly instead of reporting
fewer checks.

The ``test`` collector runs the pytest suite in a subprocess. It sets
``NESTED_ENV`` in the child so that a test which itself runs `pagemap verify`
does not start pytest again (which would recurse forever). It also hands the
child the proof and refinement records this run has already produced
(``PROOFS_ENV``), so that the tests about the removal proofs and the refinement
check assert on those records instead of running everything a second time
(``earlier_proofs``, ``earlier_record``).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Collection, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from pagemap.results import KINDS, RESULTS, CheckResult, text_table

#: Set (to "1") in the environment of the pytest run that `verify` starts.
NESTED_ENV = "PAGEMAP_VERIFY_NESTED"

#: Set in the same child: a JSON file with the ``proof`` and ``refinement`` records
#: of this run (the kinds in ``HANDED``).
PROOFS_ENV = "PAGEMAP_VERIFY_PROOFS"

#: The kinds of record the pytest child is handed.
HANDED = ("proof", "refinement")

#: The repository root: model/pagemap/verify.py -> ../../
REPO = Path(__file__).resolve().parents[2]


class Collector(NamedTuple):
    """One source of checks: its kind and ``"package.module:function"``; a collector
    with ``earlier`` is called with the records of the collectors that ran before it."""

    kind: str  # one of KINDS
    target: str
    earlier: bool = False


COLLECTORS: tuple[Collector, ...] = (
    Collector("proof", "proofs.__main__:run_all"),
    Collector("refinement", "proofs.removal.refinement:collect"),
    Collector("crosshair", "proofs.crosshair_checks:run"),
    Collector("scenario", "pagemap.checker.suite:run"),
    Collector("test", "proofs.backends:run"),
    Collector("test", "pagemap.verify:run_pytest", earlier=True),
)

#: What the project expects of a collector's checks; used for the record that
#: stands in for a collector that failed to produce its own.
EXPECTED = {"proof": "proved", "refinement": "pass", "crosshair": "pass",
            "scenario": "pass", "test": "pass"}

MARK = "!!"  # marks a row whose result differs from its expectation


# -- running collectors --------------------------------------------------------


def _frame_rank(filename: str) -> int:
    """2: project code, 1: other code (a test's module), 0: importlib, the
    standard library, an installed library or this driver -- not worth showing."""
    if filename.startswith("<") or filename == __file__:
        return 0
    path = Path(filename).resolve()
    if any(path.is_relative_to(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix)):
        return 0
    return 2 if path.is_relative_to(REPO) else 1


def _location(exc: BaseException) -> str:
    """Where the exception was raised: the innermost frame of the best rank."""
    frames = [(_frame_rank(f.filename), i, f)
              for i, f in enumerate(traceback.extract_tb(exc.__traceback__))]
    rank, _, frame = max(frames, default=(0, 0, None), key=lambda t: (t[0], t[1]))
    if frame is None or rank == 0:
        return ""
    path = Path(frame.filename).resolve()
    shown = path.relative_to(REPO) if rank == 2 else path.name
    return f" (at {shown}:{frame.lineno})"


def _describe(exc: BaseException) -> str:
    """One line: exception type, message and where it was raised."""
    text = f"{type(exc).__name__}: {exc}{_location(exc)}"
    return " ".join(text.split())


def _error(collector: Collector, start: float, detail: str, name: str | None = None) -> CheckResult:
    return CheckResult(
        kind=collector.kind,
        name=name or collector.target,
        result="error",
        expected=EXPECTED.get(collector.kind, "pass"),
        seconds=round(time.perf_counter() - start, 3),
        detail=" ".join(detail.split()),
    )


def _checked(collector: Collector, start: float, record: object) -> CheckResult:
    """The record itself when well formed, else an error record saying why."""
    if not isinstance(record, CheckResult):
        return _error(collector, start, f"returned a {type(record).__name__}, not a CheckResult")
    bad = [
        f"{field}={value!r}"
        for field, value, allowed in (
            ("kind", record.kind, KINDS),
            ("result", record.result, RESULTS),
            ("expected", record.expected, RESULTS),
        )
        if value not in allowed
    ]
    if bad:
        return _error(collector, start, "invalid record: " + ", ".join(bad), name=record.name)
    return record


def collect(collector: Collector, earlier: Sequence[CheckResult] = ()) -> list[CheckResult]:
    """Import and call one collector; every failure becomes an ``error`` record."""
    start = time.perf_counter()
    module_name, sep, attr = collector.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 -- any import failure is a reportable error
        return [_error(collector, start, f"cannot import {module_name}: {_describe(exc)}")]
    func = getattr(module, attr, None) if sep else None
    if not callable(func):
        return [_error(collector, start, f"{module_name} has no callable {attr!r}")]
    try:
        records = func(earlier=list(earlier)) if collector.earlier else func()
    except (Exception, SystemExit) as exc:  # noqa: BLE001 -- reported, not propagated
        return [_error(collector, start, f"raised {_describe(exc)}")]
    if not isinstance(records, list | tuple):
        return [_error(collector, start, f"returned a {type(records).__name__}, not a list")]
    if not records:
        # a collector that checks nothing cannot fail, so it must not pass
        return [_error(collector, start, "returned no checks")]
    return [_checked(collector, start, r) for r in records]


def _order(collector: Collector) -> int:
    return KINDS.index(collector.kind) if collector.kind in KINDS else len(KINDS)


#: Kinds whose collectors use one core; CrossHair runs in a forked process beside the
#: other one-core collectors (the machine has two cores). Refinement and pytest use
#: both cores themselves and run alone, after them.
ONE_CORE = frozenset({"proof", "crosshair", "scenario"})
BESIDE = "crosshair"


def _one_core(c: Collector) -> bool:
    return c.kind in ONE_CORE or c.target == "proofs.backends:run"


def _collect_beside(collector: Collector) -> list[CheckResult]:
    """collect() in the forked process: its prints go to stderr, as in the parent."""
    with contextlib.redirect_stdout(sys.stderr):
        return collect(collector)


def verify(
    collectors: Sequence[Collector] | None = None,
    only: Collection[str] | None = None,
    err: TextIO | None = None,
) -> list[CheckResult]:
    """Run the selected collectors; records come back in KINDS order; progress goes to
    ``err``.  The one-core collectors run first, CrossHair in a forked process beside
    the others; then the collectors that use both cores, one at a time.

    Anything a collector prints goes to ``err`` too, so that stdout carries
    only the table or the one JSON object.
    """
    err = sys.stderr if err is None else err
    chosen = [
        c
        for c in sorted(COLLECTORS if collectors is None else collectors, key=_order)
        if only is None or c.kind in only
    ]
    runs = sorted(range(len(chosen)), key=lambda i: (chosen[i].kind != BESIDE,
                                                     not _one_core(chosen[i]), i))
    beside = next((i for i in runs if chosen[i].kind == BESIDE), None)
    if beside is not None and sum(_one_core(c) for c in chosen) < 2:
        beside = None  # nothing to run beside it
    results: dict[int, list[CheckResult]] = {}
    pool: ProcessPoolExecutor | None = None
    future: Future[list[CheckResult]] | None = None
    start = time.perf_counter()

    def join() -> None:
        nonlocal future
        if future is None or beside is None:
            return
        try:
            results[beside] = future.result()
        except Exception as exc:  # noqa: BLE001 -- the forked run died: an error record
            results[beside] = [_error(chosen[beside], start, f"raised {_describe(exc)}")]
        future = None
        assert pool is not None
        pool.shutdown()

    try:
        for n, i in enumerate(runs, 1):
            collector = chosen[i]
            head = f"pagemap verify [{n}/{len(chosen)}] {collector.kind}: {collector.target}"
            if collector.kind == "test" and os.environ.get(NESTED_ENV):
                print(f"{head}: skipped, already inside the pytest run of `pagemap verify`",
                      file=err, flush=True)
                continue
            if i == beside:
                print(f"{head} ... (in a second process, beside the next checks)",
                      file=err, flush=True)
                pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
                future = pool.submit(_collect_beside, collector)
                continue
            if not _one_core(collector):
                join()
            print(f"{head} ...", file=err, flush=True)
            before = [r for j in sorted(results) for r in results[j]] if collector.earlier else []
            with contextlib.redirect_stdout(err):
                results[i] = collect(collector, before)
        join()
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return [r for i in range(len(chosen)) for r in results.get(i, [])]


# -- the test collector --------------------------------------------------------

_SUMMARY = re.compile(
    r"\b\d+ (passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?)\b|no tests ran"
)


def pytest_summary(output: str) -> str:
    """pytest's final summary line (``3 passed in 0.1s``) without the ``=`` rules."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if _SUMMARY.search(line):
            return line.strip("=").strip()
    return lines[-1] if lines else "no output"


def _earlier() -> list[CheckResult] | None:
    path = os.environ.get(PROOFS_ENV)
    if not path:
        return None
    return [CheckResult(**d) for d in json.loads(Path(path).read_text())]


def earlier_proofs(prefix: str, word_bits: int) -> list[CheckResult] | None:
    """Inside the pytest run of `pagemap verify`: the proof records of that run whose
    name starts with ``prefix``, at ``word_bits``; None when there are none (any other
    pytest run, or `verify --only test`), and the caller proves them itself."""
    rows = _earlier() or []
    chosen = [r for r in rows if r.kind == "proof" and r.name.startswith(prefix)
              and r.word_bits == word_bits]
    return chosen or None


def earlier_record(kind: str, name: str) -> CheckResult | None:
    """Inside the pytest run of `pagemap verify`: that run's record of ``kind`` named
    ``name``; None outside it (the caller then runs the check itself)."""
    return next((r for r in _earlier() or [] if (r.kind, r.name) == (kind, name)), None)


def run_pytest(repo: Path | None = None, timeout: float | None = None,
               earlier: Sequence[CheckResult] = ()) -> list[CheckResult]:
    """Run the pytest suite of ``repo`` in a subprocess: one ``test`` record.

    No ``-q`` here: the project's pytest configuration already adds one, and a
    second suppresses the summary line this record reports. The records among
    ``earlier`` of the kinds in ``HANDED`` go to the child in a file named by
    ``PROOFS_ENV``.
    """
    repo = REPO if repo is None else repo
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pagemap-verify-") as tmp:
        proofs = [r.to_json() for r in earlier if r.kind in HANDED]
        extra: dict[str, str] = {}
        if proofs:
            extra[PROOFS_ENV] = str(Path(tmp) / "proofs.json")
            Path(extra[PROOFS_ENV]).write_text(json.dumps(proofs))
        return _run_pytest(repo, timeout, start, extra)


def _run_pytest(repo: Path, timeout: float | None, start: float,
                extra: dict[str, str]) -> list[CheckResult]:
    def record(result: str, detail: str) -> list[CheckResult]:
        seconds = round(time.perf_counter() - start, 3)
        return [CheckResult(kind="test", name="pytest", result=result, expected="pass",
                            seconds=seconds, detail=detail)]

    if os.environ.get(NESTED_ENV):
        return record("error", f"refused: {NESTED_ENV} is set, this is already a nested run")
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--dist",
           "loadfile"]  # as `make test` does
    env = {**os.environ, NESTED_ENV: "1", **extra}
    try:
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return record("error", f"pytest did not finish within {timeout} s")
    summary = pytest_summary(proc.stdout or proc.stderr)
    if proc.returncode == 0:
        return record("pass", summary)
    first = next((ln for ln in proc.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))), "")
    detail = f"{summary} (exit {proc.returncode})" + (f"; first: {first}" if first else "")
    return record("error", detail)


# -- output --------------------------------------------------------------------

HEADERS = ("kind", "name", "variant", "bits", "result", "expected", "seconds", "")


def _row(r: CheckResult) -> tuple[str, ...]:
    return (
        r.kind,
        r.name,
        r.variant or "-",
        "-" if r.word_bits is None else str(r.word_bits),
        r.result,
        r.expected,
        f"{r.seconds:.2f}",
        "" if r.ok else MARK,
    )


def summary_line(records: Sequence[CheckResult], seconds: float) -> str:
    good = sum(r.ok for r in records)
    return (f"{len(records)} checks, {good} as expected, {len(records) - good} unexpected, "
            f"{seconds:.1f} s")


def format_table(records: Sequence[CheckResult], seconds: float) -> str:
    """The table for people, the summary line, then the detail of each mismatch."""
    lines = [text_table(HEADERS, [_row(r) for r in records], right=("bits", "seconds")), ""]
    lines.append(summary_line(records, seconds))
    lines.extend(f"{MARK} {r.kind} {r.name}: {r.result}, expected {r.expected}; {r.detail}"
                 for r in records if not r.ok)
    return "\n".join(lines)


def to_json(records: Sequence[CheckResult], ok: bool) -> dict[str, Any]:
    """The `verify --json` object: ``ok`` and one record per check."""
    checks = []
    for r in records:
        d = r.to_json()
        if r.result in ("counterexample", "violation"):
            d.setdefault("witness", {})  # key always present where a witness belongs
        checks.append(d)
    return {"ok": ok, "checks": checks}


def run_verify(
    as_json: bool = False,
    only: Collection[str] | None = None,
    collectors: Sequence[Collector] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """`pagemap verify`: 0 iff every check met its expectation (and some check ran)."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    start = time.perf_counter()
    records = verify(collectors, only, err)
    ok = bool(records) and all(r.ok for r in records)
    if not records:
        print("pagemap verify: no checks ran", file=err)
    if as_json:
        print(json.dumps(to_json(records, ok), indent=2, default=str), file=out)
    else:
        print(format_table(records, time.perf_counter() - start), file=out)
    return 0 if ok else 1

"""``make mutate``: mutation testing of the model's code with cosmic-ray (spec/mutations.md).

For each module of ``MODULES`` cosmic-ray generates source-level mutants (its
operators minus the exotic replacements of ``EXCLUDE``), and runs that module's
fast check (``tools/mutation_gate.py``) against each, with the mutant applied to
the module file.  cosmic-ray edits the file in place, so everything runs in
throw-away copies of the repository (one per lane, ``--jobs`` lanes at a time),
never in the work tree.  The sessions are kept in ``.mutate/`` for
``cr-report .mutate/<module>.sqlite``; the last line printed is

    mutants: K killed of N (P%)

Re-measuring after a change of the model is this one command (``--modules``
selects modules, ``--limit`` samples each module's mutants for a quick figure).
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".mutate"

GATE = f"{sys.executable} tools/mutation_gate.py"
CODEC_TESTS = "tests/test_slot.py tests/test_backends_layout.py tests/test_encoding_proofs.py"

#: module -> the check a mutant of it must fail (cwd: the copy's root)
MODULES: dict[str, str] = {
    "codec": f"{GATE} --pytest tests/test_contracts.py::test_codec_switches_the_contracts",
    "slot": f"{GATE} --pytest {CODEC_TESTS}",
    "radix": GATE,
    "pm": GATE,
    "fault": GATE,
    "munmap": GATE,
    "fileio": GATE,
    "removal": GATE,
    # the kernel around the protocol
    "sync": GATE,
    "vmrs": GATE,
    "mmap": GATE,
    "mprotect": GATE,
    "proc": GATE,
    "sched": GATE,
    "hardware": f"{GATE} --pytest tests/test_mutations.py::test_write_values_are_fresh",
}

#: cosmic-ray operators left out: replacements no programmer would write for the
#: operator at hand (a bit-mask by a power, an addition by a shift), which only
#: multiply equivalent or trivially killed mutants.
EXCLUDE = (
    r"core/ReplaceBinaryOperator_\w+_(Pow|Div|FloorDiv|Mod|Mul)$",
    (r"core/ReplaceBinaryOperator_(Add|Sub|BitAnd|BitOr|BitXor|Mul|Mod|FloorDiv|Div|Pow)_"
     r"(LShift|RShift)$"),
    r"core/ReplaceComparisonOperator_(Eq|NotEq|Lt|LtE|Gt|GtE)_(Is|IsNot)$",
    r"core/ReplaceUnaryOperator_\w+_(UAdd|USub)$",
)
TIMEOUT_S = 240.0
COPY = ("model", "proofs", "tests", "scenarios", "tools", "pyproject.toml")


def _config(module: str, command: str) -> str:
    excl = ",\n  ".join(f'"{e}"'.replace("\\", "\\\\") for e in EXCLUDE)
    return (f'[cosmic-ray]\nmodule-path = "model/pagemap/{module}.py"\ntimeout = {TIMEOUT_S}\n'
            f'excluded-modules = []\ntest-command = "{command}"\n\n'
            f'[cosmic-ray.distributor]\nname = "local"\n\n'
            f'[cosmic-ray.filters.operators-filter]\nexclude-operators = [\n  {excl},\n]\n')


def _copy(dest: Path) -> None:
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".mutate"))
        else:
            shutil.copy2(src, dest / name)


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _sample(db: Path, limit: int | None, seed: int) -> None:
    """Keep ``limit`` random pending mutants (the rest are marked skipped)."""
    if limit is None:
        return
    con = sqlite3.connect(db)
    ids = [r[0] for r in con.execute(
        "SELECT job_id FROM work_items WHERE job_id NOT IN (SELECT job_id FROM work_results)")]
    drop = set(ids) - set(random.Random(seed).sample(ids, min(limit, len(ids))))
    con.executemany("INSERT INTO work_results (job_id, worker_outcome, output, test_outcome, "
                    "diff) VALUES (?, 'SKIPPED', 'sampled out', NULL, '')",
                    [(j,) for j in drop])
    con.commit()
    con.close()


def annotation_spans(src: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) (line, column) of every annotation of a module that has
    ``from __future__ import annotations``: they are never evaluated, so a mutant
    inside one is equivalent by construction (none otherwise)."""
    tree = ast.parse(src)
    if not any(isinstance(n, ast.ImportFrom) and n.module == "__future__"
               and any(a.name == "annotations" for a in n.names) for n in tree.body):
        return []
    anns: list[ast.expr] = []
    for node in ast.walk(tree):
        ann = (node.returns if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
               else node.annotation if isinstance(node, ast.arg | ast.AnnAssign) else None)
        if ann is not None:
            anns.append(ann)
    return [((a.lineno, a.col_offset), (a.end_lineno or a.lineno, a.end_col_offset or 0))
            for a in anns]


def _skip_annotations(db: Path, src: str) -> None:
    """Mark the mutants inside annotations skipped (see ``annotation_spans``)."""
    spans = annotation_spans(src)
    con = sqlite3.connect(db)
    rows = con.execute("SELECT job_id, start_pos_row, start_pos_col FROM mutation_specs "
                       "WHERE job_id NOT IN (SELECT job_id FROM work_results)").fetchall()
    drop = [j for j, r, c in rows if any(a <= (r, c) < b for a, b in spans)]
    con.executemany("INSERT INTO work_results (job_id, worker_outcome, output, test_outcome, "
                    "diff) VALUES (?, 'SKIPPED', 'in an annotation: never evaluated', NULL, '')",
                    [(j,) for j in drop])
    con.commit()
    con.close()


def run_module(module: str, lane: Path, limit: int | None, seed: int) -> Path:
    cfg, db = lane / f"{module}.toml", OUT / f"{module}.sqlite"
    cfg.write_text(_config(module, MODULES[module]))
    db.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(lane / "model"), str(lane)])}
    for cmd in ([_bin("cosmic-ray"), "init", str(cfg), str(db)],
                [_bin("cr-filter-operators"), str(db), str(cfg)]):
        subprocess.run(cmd, cwd=lane, env=env, check=True, capture_output=True)
    _skip_annotations(db, (lane / "model" / "pagemap" / f"{module}.py").read_text())
    _sample(db, limit, seed)
    subprocess.run([_bin("cosmic-ray"), "exec", str(cfg), str(db)], cwd=lane, env=env,
                   check=True, capture_output=True)
    return db


def tally(db: Path) -> tuple[int, int, list[str]]:
    """(killed, total, survivors) of one session; skipped mutants do not count."""
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT r.test_outcome, r.worker_outcome, m.module_path, m.start_pos_row, "
        "m.operator_name, m.occurrence FROM work_results r JOIN mutation_specs m "
        "ON r.job_id = m.job_id").fetchall()
    con.close()
    killed = total = 0
    survivors = []
    for outcome, worker, path, row, op, occ in rows:
        if worker == "SKIPPED":
            continue
        total += 1
        if outcome in ("KILLED", "INCOMPETENT"):
            killed += 1
        else:
            survivors.append(f"{path}:{row} {op}#{occ}")
    return killed, total, survivors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tools/mutate.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--modules", nargs="*", default=list(MODULES), choices=list(MODULES))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="mutants per module (a sample)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report", action="store_true",
                    help="only tally the sessions in .mutate/ (e.g. of an interrupted run)")
    args = ap.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    start = time.monotonic()
    if args.report:
        order = [m for m in args.modules if (OUT / f"{m}.sqlite").exists()]
        return _report(order, [OUT / f"{m}.sqlite" for m in order], start)
    with tempfile.TemporaryDirectory(prefix="pagemap-mutate-") as tmp:
        lanes = []
        for k in range(max(1, args.jobs)):
            lane = Path(tmp) / f"lane{k}"
            lane.mkdir()
            _copy(lane)
            lanes.append(lane)
        # one module per lane at a time; removal, the largest, first
        order = sorted(args.modules, key=lambda m: m != "removal")
        free = list(lanes)

        def job(module: str) -> Path:
            lane = free.pop()
            try:
                return run_module(module, lane, args.limit, args.seed)
            finally:
                free.append(lane)

        with ThreadPoolExecutor(max_workers=len(lanes)) as pool:
            dbs = list(pool.map(job, order))
    return _report(order, dbs, start)


def _report(order: list[str], dbs: list[Path], start: float) -> int:
    killed = total = 0
    report = []
    for module, db in zip(order, dbs, strict=True):
        k, n, surv = tally(db)
        killed, total = killed + k, total + n
        print(f"{module:8} {k:5} killed of {n:5}" + (f" ({100 * k / n:.1f}%)" if n else ""))
        report += surv
    (OUT / "survivors.txt").write_text("".join(f"{s}\n" for s in report))
    print(f"{len(report)} survivors listed in {OUT / 'survivors.txt'}; "
          f"{time.monotonic() - start:.0f} s")
    pct = 100 * killed / total if total else 0.0
    print(f"mutants: {killed} killed of {total} ({pct:.1f}%)")
    return 0 if total else 1


if __name__ == "__main__":
    sys.exit(main())

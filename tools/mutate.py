"""``make mutate``: mutation testing of the model's code with cosmic-ray (spec/mutations.md).

For each module of ``PROTOCOL`` (or ``--modules``) cosmic-ray generates
source-level mutants (its operators minus the exotic replacements of ``EXCLUDE``,
and none inside an annotation), and runs the gate (``tools/mutation_gate.py``)
against each, with the mutant applied to the module file: the checks that
execute the mutated function, cheapest first, from a map of the checks built
once on the unmutated code.  cosmic-ray edits the file in place, so everything
runs in throw-away copies of the repository (one per lane, ``--jobs`` lanes),
never in the work tree; each module's mutants are dealt to the lanes in turn,
one cosmic-ray session per (module, lane).  The sessions are kept in
``.mutate/`` for ``cr-report .mutate/<module>.<lane>.sqlite``; the last line
printed is

    mutants: K killed of N (P%)

Re-measuring after a change of the model is this one command (``--modules``
selects modules, ``--limit`` samples each module's mutants, ``make mutate``'s default
being ``--limit 30 --seed 1``); after a new check, ``--rerun`` runs only the survivors
again.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import os
import queue
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

#: the modules of the protocol, the mutant set of ``make mutate`` (spec/mutations.md)
PROTOCOL = ("codec", "slot", "radix", "pm", "fault", "munmap", "fileio", "removal")
#: the kernel around the protocol, with ``--modules``
KERNEL = ("sync", "vmrs", "mmap", "mprotect", "proc", "sched", "hardware")
MODULES = (*PROTOCOL, *KERNEL)

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
#: cosmic-ray's own limit per mutant, a backstop: the gate limits each check (mutation_gate)
TIMEOUT_S = 1800.0
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


def _sources_key(modules: list[str]) -> str:
    """A digest of everything the check map depends on (the code and the checks), so
    that a map built for the same sources is reused."""
    h = hashlib.sha256(" ".join(modules).encode())
    for name in COPY:
        for path in sorted((ROOT / name).rglob("*") if (ROOT / name).is_dir() else [ROOT / name]):
            if (path.is_file() and path.suffix in (".py", ".toml") and path.name != "mutate.py"
                    and "__pycache__" not in path.parts):
                h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


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


def _skip(con: sqlite3.Connection, jobs: list[str], why: str) -> None:
    con.executemany("INSERT INTO work_results (job_id, worker_outcome, output, test_outcome, "
                    "diff) VALUES (?, 'SKIPPED', ?, NULL, '')", [(j, why) for j in jobs])
    con.commit()


def _select(db: Path, src: str, shard: int, lanes: int, limit: int | None, seed: int) -> None:
    """Skip the mutants inside annotations (see ``annotation_spans``), sample ``limit``
    of the rest when asked, and keep every ``lanes``-th of those from ``shard`` on:
    the order is by position and operator, the same in every lane's session."""
    spans = annotation_spans(src)
    con = sqlite3.connect(db)
    rows = con.execute("SELECT job_id, start_pos_row, start_pos_col, operator_name, occurrence "
                       "FROM mutation_specs WHERE job_id NOT IN "
                       "(SELECT job_id FROM work_results)").fetchall()
    _skip(con, [j for j, r, c, *_ in rows if any(a <= (r, c) < b for a, b in spans)],
          "in an annotation: never evaluated")
    rows = sorted((r for r in rows if not any(a <= (r[1], r[2]) < b for a, b in spans)),
                  key=lambda r: r[1:])
    keep = rows if limit is None else sorted(
        random.Random(seed).sample(rows, min(limit, len(rows))), key=lambda r: r[1:])
    mine = {r[0] for r in keep[shard::lanes]}
    _skip(con, [r[0] for r in rows if r[0] not in mine and r in keep], "another lane's")
    _skip(con, [r[0] for r in rows if r not in keep], "sampled out")
    con.close()


def run_session(module: str, lane_dir: Path, shard: int, lanes: int, mapfile: Path,
                limit: int | None, seed: int, rerun: bool) -> Path:
    """A new session of ``module``'s mutants of ``shard``, or (``rerun``) the survivors
    of the existing one again, against the gate as it is now."""
    cfg, db = lane_dir / f"{module}.toml", OUT / f"{module}.{shard}.sqlite"
    gate = f"{sys.executable} tools/mutation_gate.py --map {mapfile} --module {module}"
    cfg.write_text(_config(module, gate))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(lane_dir / "model"), str(lane_dir)])}
    if rerun:
        con = sqlite3.connect(db)
        con.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'")
        con.commit()
        con.close()
    else:
        db.unlink(missing_ok=True)
        for cmd in ([_bin("cosmic-ray"), "init", str(cfg), str(db)],
                    [_bin("cr-filter-operators"), str(db), str(cfg)]):
            subprocess.run(cmd, cwd=lane_dir, env=env, check=True, capture_output=True)
        _select(db, (lane_dir / "model" / "pagemap" / f"{module}.py").read_text(), shard,
                lanes, limit, seed)
    subprocess.run([_bin("cosmic-ray"), "exec", str(cfg), str(db)], cwd=lane_dir, env=env,
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
    ap.add_argument("--modules", nargs="*", default=list(PROTOCOL), choices=list(MODULES))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="mutants per module (a sample)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rerun", action="store_true",
                    help="resume the sessions in .mutate/, their survivors again (after a new "
                    "check), and start the missing ones")
    ap.add_argument("--report", action="store_true",
                    help="only tally the sessions in .mutate/ (e.g. of an interrupted run)")
    args = ap.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    start = time.monotonic()
    lanes = max(1, args.jobs)
    if args.report:
        return _report(args.modules, start)
    with tempfile.TemporaryDirectory(prefix="pagemap-mutate-") as tmp:
        dirs = []
        for k in range(lanes):
            lane = Path(tmp) / f"lane{k}"
            lane.mkdir()
            _copy(lane)
            dirs.append(lane)
        if not args.rerun:
            for old in OUT.glob("*.sqlite"):
                old.unlink()
        shards = [(m, k) for m in args.modules for k in range(lanes)]
        mapfile = OUT / "map.json"
        # one map for the protocol modules and any others asked for, reused while the
        # sources are the same
        mapped = sorted({*PROTOCOL, *args.modules})
        key = _sources_key(mapped)
        keyfile = OUT / "map.key"
        if not (mapfile.exists() and keyfile.exists() and keyfile.read_text() == key):
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(dirs[0] / "model"),
                                                                str(dirs[0])])}
            subprocess.run([sys.executable, "tools/mutation_gate.py", "--map", str(mapfile),
                            "--build", *mapped], cwd=dirs[0], env=env, check=True)
            keyfile.write_text(key)
            print(f"check map built: {time.monotonic() - start:.0f} s", flush=True)
        # one session per (module, shard); a lane's copy is mutated by one session at a time
        free: queue.Queue[Path] = queue.Queue()
        for lane in dirs:
            free.put(lane)

        def job(module: str, shard: int) -> Path:
            lane = free.get()
            try:
                rerun = args.rerun and (OUT / f"{module}.{shard}.sqlite").exists()
                return run_session(module, lane, shard, lanes, mapfile, args.limit, args.seed,
                                   rerun)
            finally:
                free.put(lane)

        with ThreadPoolExecutor(max_workers=lanes) as pool:
            futures = [pool.submit(job, m, k) for m, k in shards]
            for f in futures:
                f.result()
    return _report(args.modules, start)


def _report(modules: list[str], start: float) -> int:
    killed = total = 0
    report = []
    for module in modules:
        dbs = sorted(OUT.glob(f"{module}.[0-9]*.sqlite"))
        if not dbs:
            continue
        k = n = 0
        for db in dbs:
            dk, dn, surv = tally(db)
            k, n = k + dk, n + dn
            report += surv
        killed, total = killed + k, total + n
        print(f"{module:8} {k:5} killed of {n:5}" + (f" ({100 * k / n:.1f}%)" if n else ""))
    (OUT / "survivors.txt").write_text("".join(f"{s}\n" for s in sorted(report)))
    print(f"{len(report)} survivors listed in {OUT / 'survivors.txt'}; "
          f"{time.monotonic() - start:.0f} s")
    pct = 100 * killed / total if total else 0.0
    print(f"mutants: {killed} killed of {total} ({pct:.1f}%)")
    return 0 if total else 1


if __name__ == "__main__":
    sys.exit(main())

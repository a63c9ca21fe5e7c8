"""`make bench`: explore each scenarios/bench/*.toml with the reduction on and
off, on one process and on two (pagemap.checker.parallel), and print one line
per run: verdict, states, transitions, wall and CPU seconds, states per wall
and per CPU second, peak memory, bytes per stored state, and SPIN's time for
the configurations SPIN was measured on.

Each run happens in a child process so that its peak memory (ru_maxrss) is
its own; its CPU time includes the workers of a parallel run.  A run may be
cut by --max-seconds; it is then reported as incomplete, and a ratio that
involves it is a bound."""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

from pagemap.checker.suite import SCENARIO_DIR

BENCH_DIR = SCENARIO_DIR / "bench"

#: SPIN 6.5.2 (-DCOLLAPSE, exhaustive, one core of this machine type) on the same
#: configurations written in Promela at statement granularity: (states, seconds).
SPIN = {
    "spin-write-munmap": (81.7e6, 217.0),
    "spin-two-removals": (62.9e6, 159.0),
    "spin-shared-page": (68.3e6, 205.0),
}

#: The runs of each scenario: (local-step merging, workers).
RUNS = ((True, 2), (True, 1), (False, 2))


def _child(path: str, variant: str | None, merge_local: bool, workers: int, contracts: bool,
           max_seconds: float, q: mp.Queue) -> None:
    from pagemap.checker.explore import Explorer
    from pagemap.checker.scenario import load

    cfg = load(path, variant) if variant else load(path)
    ex = Explorer(cfg, contracts=contracts, merge_local=merge_local)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # model loaded
    t0, c0 = time.monotonic(), time.process_time()
    out = ex.explore(max_seconds=max_seconds, progress=False, workers=workers)
    wall = time.monotonic() - t0
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers, once joined
    peak = me.ru_maxrss * 1024
    q.put({
        "verdict": out.verdict,
        "invariant": out.invariant,
        "states": out.states,
        "transitions": out.transitions,
        "depth": out.max_depth,
        "seconds": wall,
        "cpu_seconds": time.process_time() - c0 + kids.ru_utime + kids.ru_stime,
        # The owner's peak plus the largest worker's (a worker holds a replica
        # of the part tables, not the states).
        "peak_mib": (peak + kids.ru_maxrss * 1024) / 2**20,
        # Everything the owner added, per stored state: keys, the index,
        # parent/actor/depth arrays and the interned parts.
        "bytes_per_state": (peak - base) / max(out.states, 1),
        "parts": out.stored_parts,
        # The pagemap modules this run loaded compiled (make bench COMPILED=1).
        "compiled": sorted(name for name, mod in sys.modules.items()
                           if name.startswith("pagemap")
                           and str(getattr(mod, "__file__", "")).endswith(".so")),
    })


def measure(path: Path, merge_local: bool, contracts: bool, max_seconds: float,
            workers: int = 1, variant: str | None = None) -> dict:
    ctx = mp.get_context("spawn")  # a fresh process: its peak memory is this run's
    q: mp.Queue = ctx.Queue()
    p = ctx.Process(target=_child,
                    args=(str(path), variant, merge_local, workers, contracts, max_seconds, q))
    p.start()
    r = q.get()
    p.join()
    r["states_per_s"] = r["states"] / r["seconds"] if r["seconds"] else 0.0
    r["states_per_cpu_s"] = r["states"] / r["cpu_seconds"] if r["cpu_seconds"] else 0.0
    return r


def table(rows: list[dict]) -> list[str]:
    """The bench table: one line per run; the column names stay as they are."""
    hdr = (f"{'scenario':18} {'variant':7} {'reduction':9} {'workers':>7} {'verdict':10} "
           f"{'states':>11} {'transitions':>12} {'seconds':>8} {'cpu s':>7} {'states/s':>9} "
           f"{'st/cpu-s':>9} {'peak MiB':>9} {'B/state':>8} {'SPIN s':>7}")
    out = [hdr, "-" * len(hdr)]
    for r in rows:
        spin = SPIN.get(r["scenario"])
        spin_s = f"{spin[1]:.0f}" if spin and r["variant"] == "fixed" else "-"
        out.append(
            f"{r['scenario']:18} {r['variant']:7} {'local' if r['reduction'] else 'none':9} "
            f"{r['workers']:>7} {r['verdict']:10} {r['states']:>11,} {r['transitions']:>12,} "
            f"{r['seconds']:>8.1f} {r['cpu_seconds']:>7.1f} {r['states_per_s']:>9,.0f} "
            f"{r['states_per_cpu_s']:>9,.0f} {r['peak_mib']:>9,.0f} "
            f"{r['bytes_per_state']:>8,.0f} {spin_s:>7}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="make bench")
    ap.add_argument("files", nargs="*", help="bench scenarios (default: scenarios/bench/*.toml)")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="per run (default: SPIN's time on SPIN's configurations -- a run "
                    "still going then has lost -- and 300 s on the others)")
    ap.add_argument("--contracts", choices=("on", "off"), default="off")
    ap.add_argument("--seed", action="store_true",
                    help="also run the seed variant of each scenario that expects a violation")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    files = [Path(f) for f in args.files] or sorted(BENCH_DIR.glob("*.toml"))
    contracts = args.contracts == "on"
    rows = []
    for f in files:
        runs: list[tuple[str | None, bool, int]] = [(None, ml, w) for ml, w in RUNS]
        if args.seed and "[expect.seed]" in f.read_text():
            runs.append(("seed", True, 1))
        for variant, ml, w in runs:
            print(f"  {f.stem}{' (seed)' if variant else ''}: reduction "
                  f"{'local' if ml else 'none'}, {w} worker(s) ...", file=sys.stderr)
            cap = args.max_seconds or SPIN.get(f.stem, (0, 300.0))[1]
            r = measure(f, ml, contracts, cap, w, variant)
            r.update(scenario=f.stem, variant=variant or "fixed", reduction=ml, workers=w,
                     cap=cap)
            rows.append(r)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    caps = sorted({r["cap"] for r in rows})
    compiled = sorted({m for r in rows for m in r["compiled"]})
    print(f"contracts {args.contracts}; each run limited to "
          f"{' / '.join(f'{c:g}' for c in caps)} s; "
          + (f"compiled with mypyc: {', '.join(compiled)}" if compiled else "interpreted") + "\n")
    print("\n".join(table(rows)))
    print("\nreduction: local = local-step merging, none = every step a point of interleaving;"
          "\nworkers: processes computing successors (1: the single-process search);"
          "\nstates/s: per second of wall time; st/cpu-s: per second of CPU time, workers"
          " included;\npeak MiB: the owner's peak plus the largest worker's; B/state: the"
          " owner's peak memory\nadded by the search, divided by the states it stored;"
          " SPIN s: SPIN's exhaustive run on fixed.\n")
    for r in rows:
        if r["variant"] == "fixed" and r["scenario"] in SPIN and r["reduction"]:
            spin_states, spin_s = SPIN[r["scenario"]]
            if r["verdict"] == "pass":
                what = (f"decided in {r['seconds']:.0f} s against SPIN's {spin_s:.0f} s "
                        f"({r['states']:,} states against {spin_states / 1e6:.1f} M)")
            else:
                what = (f"{r['verdict']} after {r['seconds']:.0f} s ({r['states']:,} states, "
                        f"depth {r['depth']}); SPIN decides it in {spin_s:.0f} s")
            print(f"{r['scenario']}, {r['workers']} worker(s): {what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`make bench`: explore each scenarios/bench/*.toml with and without the
state-space reduction and print states, transitions, seconds, states/s, peak
memory and the reduction ratio.

Each run happens in a child process so that its peak memory (ru_maxrss) is
its own.  A run may be cut by --max-seconds; it is then reported as
incomplete, and its ratio is a lower bound."""

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


def _child(path: str, merge_local: bool, contracts: bool, max_seconds: float, q: mp.Queue) -> None:
    from pagemap.checker.explore import Explorer
    from pagemap.checker.scenario import load

    cfg = load(path)
    ex = Explorer(cfg, contracts=contracts, merge_local=merge_local)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # model loaded
    t0, c0 = time.monotonic(), time.process_time()
    out = ex.explore(max_seconds=max_seconds, progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    q.put({
        "verdict": out.verdict,
        "invariant": out.invariant,
        "states": out.states,
        "transitions": out.transitions,
        "seconds": time.monotonic() - t0,
        "cpu_seconds": time.process_time() - c0,
        "peak_mib": peak / 2**20,
        # Everything the search added, per stored state: keys, the index,
        # parent/actor/depth arrays and the interned parts.
        "bytes_per_state": (peak - base) / max(out.states, 1),
        "parts": out.stored_parts,
    })


def measure(path: Path, merge_local: bool, contracts: bool, max_seconds: float) -> dict:
    ctx = mp.get_context("spawn")  # a fresh process: its peak memory is this run's
    q: mp.Queue = ctx.Queue()
    p = ctx.Process(target=_child, args=(str(path), merge_local, contracts, max_seconds, q))
    p.start()
    r = q.get()
    p.join()
    r["states_per_s"] = r["states"] / r["seconds"] if r["seconds"] else 0.0
    r["states_per_cpu_s"] = r["states"] / r["cpu_seconds"] if r["cpu_seconds"] else 0.0
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="make bench")
    ap.add_argument("files", nargs="*", help="bench scenarios (default: scenarios/bench/*.toml)")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="per run")
    ap.add_argument("--contracts", choices=("on", "off"), default="off")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    files = [Path(f) for f in args.files] or sorted(BENCH_DIR.glob("*.toml"))
    contracts = args.contracts == "on"
    rows = []
    for f in files:
        for reduce in (True, False):
            print(f"  {f.stem}: reduction {'on' if reduce else 'off'} ...", file=sys.stderr)
            r = measure(f, reduce, contracts, args.max_seconds)
            r.update(scenario=f.stem, reduction=reduce)
            rows.append(r)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"contracts {args.contracts}; each run limited to {args.max_seconds:g} s\n")
    hdr = (f"{'scenario':16} {'reduction':9} {'verdict':10} {'states':>10} {'transitions':>11} "
           f"{'seconds':>8} {'cpu s':>7} {'states/s':>9} {'st/cpu-s':>9} {'peak MiB':>9} "
           f"{'B/state':>8}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(f"{r['scenario']:16} {'on' if r['reduction'] else 'off':9} {r['verdict']:10} "
              f"{r['states']:>10,} {r['transitions']:>11,} {r['seconds']:>8.1f} "
              f"{r['cpu_seconds']:>7.1f} {r['states_per_s']:>9,.0f} "
              f"{r['states_per_cpu_s']:>9,.0f} {r['peak_mib']:>9,.0f} "
              f"{r['bytes_per_state']:>8,.0f}")
    print()
    print("\nstates/s: per second of wall time; st/cpu-s: per second of this process's CPU time"
          "\n(the same on an idle machine; lower wall figures mean other jobs took the CPU).")
    print("B/state: peak memory added by the search, divided by the states it stored.\n")
    for on, off in zip(rows[::2], rows[1::2], strict=True):
        bound = "" if off["verdict"] != "incomplete" else " (at least: the run without it was cut)"
        print(f"{on['scenario']}: reduction stores {off['states'] / on['states']:.2f}x fewer "
              f"states{bound}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The fast check ``make mutate`` runs against each mutant of a model module
(tools/mutate.py, spec/mutations.md): exit 1 at the first check that differs from
the project's expectation, 0 when every check holds.

The checks, cheapest first so that most mutants die in a second: every mutation
scenario of tests/mutation_scenarios (each must pass on fixed, both word sizes),
then every protocol mutant of pagemap.checker.mutations (each killed by the check it
names, so that a mutant weakening a contract or an invariant is seen),
then every scenario of scenarios/ on seed and fixed, smallest first, against its
[expect] entry, with contracts on.  ``--pytest FILE...`` runs those test files
first (for the codec, whose tests are quick and pointed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Every mutation scenario, small first: states of the fixed run, measured once (the order
# only, not a check; a scenario missing here still runs, last).
FIRST = ("mprotect-same-prot", "fileio-enomem", "pinned", "scp-munmap-private",
         "mprotect-two-pages", "exit-sibling", "kfs-two-removals",
         "mprotect-then-remove", "enomem-private", "load-write-remove-load", "restart",
         "two-readers", "read-vs-remove", "munmap-async-private", "scp-writer-vs-remove",
         "exit-vs-remove", "two-loaders", "two-removers", "mmap-merge-vs-remove",
         "scp-tlb-across-sleep", "enomem-fault", "munmap-vs-remove", "fault-write-remove",
         "munmap-partial-vs-remove", "scp-sleeper-vs-remove", "scp-uthreads-sleep",
         "two-cores-clean-tlb")


def _protocol_mutant_differs() -> bool:
    """The protocol mutants (pagemap.checker.mutations), each on its scenario (64-bit):
    a mutant of a contract or an invariant shows as a protocol mutant no longer killed
    by the check it names.  A protocol mutant whose patch no longer applies (the
    mutant changed its text) is skipped, not counted as a kill."""
    from pagemap.checker import mutations as mut
    from pagemap.checker.patch import PatchError

    for pm in mut.MUTATIONS.values():
        try:
            replace = pm.replace()
        except PatchError:
            continue
        out = mut.run(replace, pm.scenario)
        if ((out.verdict, out.invariant) != ("violation", pm.invariant)
                or not out.message.startswith(pm.contract)):
            print(f"killed by protocol mutant {pm.name}: {out.verdict} {out.invariant}")
            return True
    return False


def main(argv: list[str]) -> int:
    if argv[:1] == ["--pytest"]:
        files = argv[1:]
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p",
                               "no:cacheprovider", *files], cwd=ROOT, check=False)
        if proc.returncode != 0:
            return 1
    from pagemap.checker.command import run as run_check
    from pagemap.checker.scenario import load

    mutation_dir = ROOT / "tests" / "mutation_scenarios"
    stems = sorted(p.stem for p in mutation_dir.glob("*.toml"))
    for stem in sorted(stems, key=lambda s: FIRST.index(s) if s in FIRST else len(FIRST)):
        for bits in (64, 32):
            cfg = load(mutation_dir / f"{stem}.toml", variant="fixed", word_bits=bits)
            _, out = run_check(cfg, progress=False)
            if out.verdict != "pass":
                print(f"killed by {stem} [{bits}]: {out.verdict} {out.invariant}")
                return 1
    if _protocol_mutant_differs():
        return 1
    runs = []
    for path in sorted((ROOT / "scenarios").glob("*.toml")):
        for variant in ("seed", "fixed"):
            cfg = load(path, variant)
            runs.append((path.stat().st_size, path, variant, cfg))
    for _, path, variant, cfg in sorted(runs, key=lambda r: (r[0], r[1].name)):
        exp = cfg.expect[variant]
        _, out = run_check(cfg, progress=False)
        want = (exp["verdict"], exp.get("invariant", out.invariant))
        if (out.verdict, out.invariant if out.verdict == "violation" else want[1]) != want:
            print(f"killed by {path.stem} [{variant}]: {out.verdict} {out.invariant}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""``python -m proofs``: run every proof module, print one table, exit 1 on a surprise.

A row whose result equals its expected result is fine -- including
``counterexample / counterexample``, which confirms a documented finding.
Any other row (or an ``error``) makes the exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pagemap.results import CheckResult, text_table

#: Modules with ``run(word_bits=None) -> list[CheckResult]``: the slot-encoding
#: lemmas, the codec against the C's layout, and the removal-phase invariants.
PROOF_MODULES: tuple[str, ...] = ("proofs.encoding", "proofs.layout", "proofs.removal")

_COLUMNS = ("theorem", "variant", "bits", "result", "expected", "seconds")


def run_all(word_bits: int | None = None) -> list[CheckResult]:
    results: list[CheckResult] = []
    for name in PROOF_MODULES:
        results.extend(importlib.import_module(name).run(word_bits))
    return results


def format_table(results: Sequence[CheckResult]) -> str:
    rows = [
        (r.name, r.variant or "-", str(r.word_bits or "-"), r.result, r.expected,
         f"{r.seconds:.3f}")
        for r in results
    ]
    return text_table(_COLUMNS, rows, right=("seconds",),
                      notes=["" if r.ok else f"UNEXPECTED: {r.detail}" for r in results])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proofs", description=__doc__)
    parser.add_argument("--word-bits", type=int, choices=(64, 32), default=None)
    parser.add_argument("--witness", action="store_true", help="print counterexample witnesses")
    args = parser.parse_args(argv)

    results = run_all(args.word_bits)
    print(format_table(results))
    if args.witness:
        for r in results:
            if r.witness:
                values = ", ".join(f"{k}={v}" for k, v in r.witness.items())
                print(f"{r.name} [{r.word_bits}]: {values}")
    bad = [r for r in results if not r.ok]
    total = sum(r.seconds for r in results)
    print(f"\n{len(results)} checks, {len(results) - len(bad)} as expected, "
          f"{len(bad)} not, {total:.2f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

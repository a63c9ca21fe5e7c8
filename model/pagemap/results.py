"""The record every check of `pagemap verify` produces (README, "The two commands").

Proofs, CrossHair runs, scenarios and tests all report through this one type,
so that the summary table and `--json` have a single shape."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("proof", "refinement", "crosshair", "scenario", "test")
RESULTS = ("proved", "counterexample", "pass", "violation", "incomplete", "error", "bounded")

#: Results that meet an expectation other than themselves.  ``bounded`` is a
#: search that found nothing within its bound without exhausting the paths (a
#: CrossHair run that is not "confirmed over all paths"); the exhaustive ``pass``
#: is at least as good, so it meets an expected ``bounded``.
ALSO_MEETS = {"bounded": ("pass",)}


@dataclass
class CheckResult:
    kind: str  # one of KINDS
    name: str
    result: str  # one of RESULTS
    expected: str  # the result the project expects
    seconds: float
    variant: str | None = None
    word_bits: int | None = None
    witness: dict[str, Any] = field(default_factory=dict)  # counterexample values
    detail: str = ""  # one line for people: what failed, or what it shows

    @property
    def ok(self) -> bool:
        return self.result == self.expected or self.result in ALSO_MEETS.get(self.expected, ())

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        if not d["witness"]:
            del d["witness"]
        return d


def text_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    right: Sequence[str] = (),
    notes: Sequence[str] | None = None,
) -> str:
    """A plain-text table for people: a header, a rule, one line per row;
    columns named in ``right`` are right-aligned; ``notes[i]``, when given and
    not empty, follows row i on its line (e.g. why a check was unexpected)."""
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
    rset = {headers.index(h) for h in right}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in rset else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths if w).rstrip()]
    for i, row in enumerate(rows):
        note = notes[i] if notes else ""
        out.append(line(row) + (f"  <-- {note}" if note else ""))
    return "\n".join(out)

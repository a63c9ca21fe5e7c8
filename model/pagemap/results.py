"""The record every check of `pagemap verify` produces (DESIGN §3).

Proofs, CrossHair runs, scenarios and tests all report through this one type,
so that the summary table and `--json` have a single shape."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("proof", "crosshair", "scenario", "test")
RESULTS = ("proved", "counterexample", "pass", "violation", "incomplete", "error")


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
        return self.result == self.expected

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        if not d["witness"]:
            del d["witness"]
        return d

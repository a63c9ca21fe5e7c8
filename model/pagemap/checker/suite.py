"""The scenario suite: every scenarios/*.toml, on both variants, as
CheckResult records for `pagemap verify`."""

from __future__ import annotations

import time
from pathlib import Path

from pagemap.checker.command import run as run_check
from pagemap.checker.scenario import load
from pagemap.results import CheckResult

SCENARIO_DIR = Path(__file__).resolve().parents[3] / "scenarios"


def scenario_files(directory: Path = SCENARIO_DIR) -> list[Path]:
    return sorted(directory.glob("*.toml"))


def run_one(path: Path, variant: str) -> CheckResult:
    t0 = time.monotonic()
    cfg = load(path, variant)
    exp = cfg.expect.get(variant)
    if exp is None:
        raise ValueError(f"{path.name} has no [expect.{variant}]")
    _, out = run_check(cfg, progress=False)
    witness = {}
    detail = f"{out.states} states, {out.transitions} transitions"
    result = out.verdict
    if out.verdict == "violation":
        witness = {"invariant": out.invariant, "message": out.message}
        detail = f"{out.invariant}: {out.message}; " + detail
        if exp["verdict"] == "violation" and exp.get("invariant", out.invariant) != out.invariant:
            result = "error"
            detail = f"expected {exp['invariant']}, got " + detail
    return CheckResult(
        kind="scenario",
        name=f"scenario/{path.stem}",
        result=result,
        expected=exp["verdict"],
        seconds=time.monotonic() - t0,
        variant=variant,
        word_bits=cfg.word_bits,
        witness=witness,
        detail=detail,
    )


def run(directory: Path = SCENARIO_DIR) -> list[CheckResult]:
    out = []
    for path in scenario_files(directory):
        for variant in ("seed", "fixed"):
            out.append(run_one(path, variant))
    return out

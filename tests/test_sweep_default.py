"""The default sweep (scenarios/sweep/default.toml), run by `make sweep`, not by
`make test` (it takes minutes): on seed it rediscovers every finding of
``pagemap.checker.findings.FINDINGS``, each alone with its fix; on fixed it
finds nothing and the
scope is complete; and every skip of the canonical form keeps the sweep's
result on every scenario of a small scope."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pagemap.checker.command import main_check
from pagemap.checker.findings import FINDINGS
from pagemap.sweep import bounds, canon, engine
from pagemap.sweep.command import Summary, sweep
from pagemap.sweep.enumerate import scenarios
from pagemap.sweep.group import write
from pagemap.sweep.run import check_batch

pytestmark = [pytest.mark.sweep,
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "sweep"


@pytest.fixture(scope="module")
def mapper():  # type: ignore[no-untyped-def]
    with engine.dask_cluster() as m:
        yield m


def _run(variant: str, mapper: engine.Mapper) -> tuple[Summary, Any]:
    import time
    t0 = time.monotonic()
    b = bounds.load(bounds.DEFAULT_BOUNDS)
    pl, results, findings = sweep(b, variant, mapper, progress=True)
    findings = write(findings, variant, OUT / variant)
    s = Summary(b, variant, pl, results, findings, all(r.decided for r in results),
                time.monotonic() - t0, b.max_states)
    print("\n" + s.text())
    return s, findings


@pytest.fixture(scope="module")
def on_seed(mapper):  # type: ignore[no-untyped-def]
    return _run("seed", mapper)


@pytest.fixture(scope="module")
def on_fixed(mapper):  # type: ignore[no-untyped-def]
    return _run("fixed", mapper)


def test_default_sweep_rediscovers_every_finding_on_seed(on_seed) -> None:  # type: ignore[no-untyped-def]
    s, findings = on_seed
    assert s.complete
    alone = {f.fixes: f for f in findings if f.kind == "fix" and len(f.fixes) == 1}
    missing = [f.id for f in FINDINGS if (f.fix,) not in alone]
    assert not missing, f"the default sweep no longer finds {missing} alone"
    for f in FINDINGS:
        got = alone[(f.fix,)]
        assert got.known == f.id
        # the file reproduces: seed violates, fixed passes, fixed-without-FIX violates
        assert main_check([str(got.path), "--trace", "none"]) == 1
        assert main_check([str(got.path), "--variant", "fixed", "--trace", "none"]) == 0
        assert main_check([str(got.path), "--variant", f.isolated_variant,
                           "--trace", "none"]) == 1


def test_default_sweep_finds_no_new_defect_on_seed(on_seed) -> None:  # type: ignore[no-untyped-def]
    new = [f for f in on_seed[1] if f.kind == "new-defect"]
    assert not new, [f.label for f in new]


def test_default_sweep_on_fixed_is_complete_and_finds_nothing(on_fixed) -> None:  # type: ignore[no-untyped-def]
    s, findings = on_fixed
    assert s.complete
    assert findings == [], [f.label for f in findings]


def test_every_skip_keeps_the_sweep_result(mapper) -> None:  # type: ignore[no-untyped-def]
    """Every scenario of tests/sweep/skips.toml, checked as it is (up to renaming)
    and as the skips make it: the same verdict on seed and fixed, and the same
    root cause on seed."""
    b = bounds.load(Path(__file__).parent / "sweep" / "skips.toml")
    pairs: dict[str, str] = {}
    todo: dict[str, dict[str, Any]] = {}
    for it in (it for scope in b.scopes for it in scenarios(scope)):
        rk, k, s = canon.canonical_both(it.scenario)
        if rk != k:
            pairs[rk] = k
            todo.setdefault(k, s)
            todo.setdefault(rk, canon.canonical(it.scenario, skips=False)[1])
    assert pairs
    batch = 8
    keys = sorted(todo)
    work = [[(k, todo[k]) for k in keys[i:i + batch]] for i in range(0, len(keys), batch)]
    got: dict[str, dict[str, Any]] = {}
    for variant in ("seed", "fixed"):
        for rs in mapper(check_batch, work, (variant, b.max_states, b.contracts)):
            for r in rs:
                got.setdefault(r.key, {})[variant] = (r.run.verdict, r.fixes)
    bad = [(rk, k) for rk, k in pairs.items() if got[rk] != got[k]]
    assert not bad, bad[:3]

"""`pagemap sweep`: enumeration, canonical form, the soundness of the skips,
root causes, the files it writes, and the distributed engine (a real local
Dask cluster of two worker processes)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pagemap.checker.command import main_check
from pagemap.checker.explore import Explorer
from pagemap.checker.scenario import OPS as PARSER_OPS
from pagemap.checker.scenario import parse
from pagemap.config import FIXES, WITHOUT
from pagemap.sweep import bounds, canon, engine
from pagemap.sweep.command import plan, sweep
from pagemap.sweep.enumerate import scenarios
from pagemap.sweep.vocabulary import OPS

HERE = Path(__file__).resolve().parent / "sweep"
TINY = HERE / "tiny.toml"
SKIPS = HERE / "skips.toml"
VARIANTS = ["seed", "fixed", *(WITHOUT + x for x in FIXES)]


def _pagemap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pagemap.cli", *args], capture_output=True,
                          text=True, check=False, timeout=600)


def _verdicts(s: dict[str, Any]) -> list[str]:
    out = []
    for v in VARIANTS:
        o = Explorer(parse(s, "test", v), contracts=False).explore(progress=False)
        out.append(o.verdict)
    return out


# -- the vocabulary and the bounds ------------------------------------------------


def test_every_op_of_the_scenario_format_is_in_the_vocabulary() -> None:
    """A new op in the parser must get an entry in the sweep's op table."""
    assert set(OPS) == set(PARSER_OPS)


def test_bounds_reject_bad_input(tmp_path: Path) -> None:
    cases = {
        "[[scope]]\nthreads = 2\nbogus = 1\n": "unknown key 'bogus'",
        "[[scope]]\nop_kinds = [\"write\", \"fly\"]\n": "unknown op 'fly'",
        "[[scope]]\nfile_pages = [0]\n": "file_pages must be positive",
        "name = \"x\"\n": "at least one [[scope]]",
        "max_states = 0\n[[scope]]\n": "max_states",
        "[[scope]]\nshootdown = \"sync\"\n": "non-empty list",
    }
    for text, msg in cases.items():
        p = tmp_path / "b.toml"
        p.write_text(text)
        with pytest.raises(bounds.BoundsError, match=msg.replace("[", r"\[")):
            bounds.load(p)


def test_sweep_command_bad_input_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[scope]]\nvary = { nonsense = [1] }\n")
    for args, msg in ((["--bounds", str(tmp_path / "missing.toml")], "cannot read"),
                      (["--bounds", str(TINY), "--variant", "nope"], "unknown variant"),
                      (["--bounds", str(bad)], "unknown key 'nonsense'")):
        r = _pagemap("sweep", *args)
        assert r.returncode == 2, r.stderr
        assert msg in r.stderr and "Traceback" not in r.stderr


# -- enumeration and canonical form -----------------------------------------------


def test_enumeration_counts_labelled_scenarios() -> None:
    """Weights count every order of a multiset of threads: here one thread
    kind and two (three orders of a two-kind pair would be wrong)."""
    scope = bounds.parse({"scope": [{"file_pages": [1], "processes": 0, "threads": 2,
                                     "ops_per_thread": 1, "ops": 2,
                                     "op_kinds": ["file_read", "file_write"]}]}).scopes[0]
    items = list(scenarios(scope))
    # kernel threads only: 2 single-op threads; multisets: {a}, {b}, {a,a}, {a,b}, {b,b}
    assert len(items) == 5 * 2  # preload none / all
    assert sum(i.weight for i in items) == (2 + 4) * 2


def _renamed(s: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """s with threads shuffled and every name replaced (a scenario equal up to renaming)."""
    s = json.loads(json.dumps(s))
    pn = {p["name"]: f"proc{rng.randrange(10**6)}" for p in s["process"]}
    vn = {v["name"]: f"map{rng.randrange(10**6)}" for p in s["process"] for v in p["vmr"]}
    for p in s["process"]:
        p["name"] = pn[p["name"]]
        for v in p["vmr"]:
            v["name"] = vn[v["name"]]
    for t in s["thread"]:
        t["name"] = f"th{rng.randrange(10**6)}"
        if "process" in t:
            t["process"] = pn[t["process"]]
        for op in t["ops"]:
            if "vmr" in op:
                op["vmr"] = vn[op["vmr"]]
    rng.shuffle(s["thread"])
    return s


def _two_vmr_scope() -> bounds.Scope:
    return bounds.parse({"scope": [{"file_pages": [1], "processes": 2, "vmrs": 2,
                                    "threads": 2, "ops_per_thread": 1, "ops": 2,
                                    "op_kinds": ["write", "munmap", "remove"]}]}).scopes[0]


def test_canonical_key_ignores_names_and_thread_order() -> None:
    rng = random.Random(7)
    items = list(scenarios(_two_vmr_scope()))
    for it in rng.sample(items, 200):
        k = canon.canonical(it.scenario)[0]
        assert canon.canonical(_renamed(it.scenario, rng))[0] == k


def test_vmr_order_counts_only_when_a_remover_walks_pm_vmrs() -> None:
    """Swapping two processes is a renaming unless some thread runs remove
    (pm_remove_contig visits pm_vmrs in order): then both orders are checked."""
    def two(ops_u: list[dict[str, Any]], remove: bool) -> dict[str, Any]:
        s: dict[str, Any] = {
            "word_bits": 64, "file_pages": 1, "preload": [0], "hardware": {"shootdown": "async"},
            "process": [{"name": "a", "vmr": [{"name": "x", "file_page": 0, "pages": 1,
                                                 "flags": ["shared"], "prot": ["read", "write"]}]},
                        {"name": "b", "vmr": [{"name": "y", "file_page": 0, "pages": 1,
                                                 "flags": ["private"], "prot": ["read", "write"],
                                                 "prefault": True}]}],
            "thread": [{"name": "t", "process": "a", "ops": ops_u}]}
        if remove:
            s["thread"].append({"name": "r", "ops": [{"op": "remove", "index": 0, "count": 1}]})
        return s

    for remove in (False, True):
        s = two([{"op": "write", "vmr": "x", "page": 0}], remove)
        swapped = json.loads(json.dumps(s))
        swapped["process"].reverse()
        same = canon.canonical(s)[0] == canon.canonical(swapped)[0]
        assert same is not remove


def test_canonical_scenarios_parse_and_are_fixed_points() -> None:
    pl = plan(bounds.load(SKIPS), "seed")
    for k, s in pl.todo.items():
        parse(s, "test")
        assert canon.canonical(s)[0] == k


# -- the skips are sound -----------------------------------------------------------

SAMPLE = 6
RULES = canon.SKIPS


def _base(**vmr: Any) -> dict[str, Any]:
    """Two file pages, page 1 cached; p1 maps page 1 (shared unless told
    otherwise); a remover of [1, 2)."""
    v = {"name": "v1", "file_page": 1, "pages": 1, "flags": ["shared"],
         "prot": ["read", "write"], **vmr}
    return {"word_bits": 64, "file_pages": 2, "preload": [1], "hardware": {"shootdown": "sync"},
            "process": [{"name": "p1", "vmr": [v]}],
            "thread": [{"name": "r", "ops": [{"op": "remove", "index": 1, "count": 1}]}]}


def _after(rule, s: dict[str, Any]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    r = canon._copy(s)
    rule(r)
    return r


def test_each_skip_applies_only_where_argued() -> None:
    """What each skip may and may not change (its guards; mutating a guard away
    fails here)."""
    s = _base()
    # idle_vmrs: v1 is idle (not prefaulted, not locked, named by no op, no thread in p1)
    assert _after(canon.idle_vmrs, s)["process"] == []
    for kept in (_base(prefault=True), _base(flags=["shared", "locked"])):
        assert _after(canon.idle_vmrs, kept)["process"] == kept["process"]
    busy = _base()
    busy["thread"].append({"name": "u", "process": "p1", "ops": [{"op": "file_read", "index": 0}]})
    assert _after(canon.idle_vmrs, busy)["process"] == busy["process"]
    many = _base(prefault=True)
    many["process"].append({"name": "p2", "vmr": [{**many["process"][0]["vmr"][0], "name": "v2",
                                                   "prefault": False}]})
    assert len(_after(canon.idle_vmrs, many)["process"]) == 1
    many["ptr_arr_len"] = 1  # more processes than PTR_ARR_LEN: the batch would fill early
    assert len(_after(canon.idle_vmrs, many)["process"]) == 2
    # kernel_threads: all kernel ops in a process -> kernel-only; a user op keeps it there
    assert "process" not in _after(canon.kernel_threads, busy)["thread"][1]
    busy["thread"][1]["ops"].append({"op": "read", "vmr": "v1", "page": 0})
    assert _after(canon.kernel_threads, busy)["thread"][1]["process"] == "p1"
    # compact_pages: page 0 is named by nothing here...
    c = _after(canon.compact_pages, _base())
    assert (c["file_pages"], c["preload"], c["thread"][0]["ops"][0]["index"],
            c["process"][0]["vmr"][0]["file_page"]) == (1, [0], 0, 0)
    # ...but a preloaded page (the radix tree starts with a leaf), a file op or a
    # removal range keeps it
    for s2 in (_base(), _base(), _base()):
        s2["preload"] = [0, 1]
        assert _after(canon.compact_pages, s2)["file_pages"] == 2
    wide = _base()
    wide["thread"][0]["ops"][0].update(index=0, count=2)
    assert _after(canon.compact_pages, wide)["file_pages"] == 2
    # shootdown_unobservable: only with no thread in any process (the kind is
    # then the parser's default, left out)
    assert "shootdown" not in _after(canon.shootdown_unobservable, _base())["hardware"]
    assert _after(canon.shootdown_unobservable, busy)["hardware"] == {"shootdown": "sync"}
    # kernel_threads: not in an SCP (its threads share a core), nor in a process
    # that may die (an exit of a sibling, or [faults] enomem: a failed fault kills it)
    scp = json.loads(json.dumps(busy))
    scp["process"][0]["mode"] = "scp"
    scp["thread"][1]["ops"].pop()
    assert _after(canon.kernel_threads, scp)["thread"][1]["process"] == "p1"
    mortal = json.loads(json.dumps(scp))
    del mortal["process"][0]["mode"]
    assert "process" not in _after(canon.kernel_threads, mortal)["thread"][1]
    mortal["faults"] = {"enomem": True}
    assert _after(canon.kernel_threads, mortal)["thread"][1]["process"] == "p1"
    # a key no skip was argued for (a later extension) turns every skip off
    ext = {**_base(), "swap": {"device": "disk"}}
    assert canon.reduce(ext) == canon.reduce(ext, skips=False)
    # and so does an op no skip was argued for
    odd = _base()
    odd["thread"][0]["ops"].append({"op": "madvise", "vmr": "v1"})
    assert canon.reduce(odd)["file_pages"] == 2


@pytest.fixture(scope="module")
def skips_scope() -> list[dict[str, Any]]:
    return [it.scenario for scope in bounds.load(SKIPS).scopes for it in scenarios(scope)]


@pytest.mark.parametrize("rule", RULES, ids=[r.__name__ for r in RULES])
def test_skip_keeps_every_verdict(rule, skips_scope) -> None:  # type: ignore[no-untyped-def]
    """On scenarios of a small scope that the skip changes, the scenario and
    the one it is skipped for have the same verdict on seed, fixed and every
    fixed-without-FIX (a sample: checking all of them takes minutes)."""
    changed: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for s in skips_scope:
        r = canon._copy(s)
        rule(r)
        if r != canon._copy(s):
            changed.setdefault(canon.key(r), (s, r))  # one per result of the skip
    assert changed, f"{rule.__name__} never applies in {SKIPS.name}"
    rng = random.Random(3)
    for k in rng.sample(sorted(changed), min(SAMPLE, len(changed))):
        before, after = changed[k]
        after["pool_pages"] = before["pool_pages"] = canon.pool_pages(before)
        assert _verdicts(before) == _verdicts(after), (before, after)


def test_pool_size_is_enough() -> None:
    """No scenario runs out of pages (a kernel-assert the sweep would report as a
    new defect): private mappings, where a fault takes two pages, on fixed."""
    b = bounds.parse({"contracts": "off", "scope": [{
        "file_pages": [2], "vmr_pages": [2], "vmr_flags": [["private"]], "preload": "none",
        "threads": 2, "ops_per_thread": 2, "ops": 2,
        "op_kinds": ["write", "read", "file_read"]}]})
    _, results, findings = sweep(b, "fixed", engine.serial)
    assert len(results) > 50 and findings == []


# -- a sweep, in this process ------------------------------------------------------


def test_tiny_sweep_finds_f1_and_f3_with_their_fixes(tmp_path: Path) -> None:
    b = bounds.load(TINY)
    pl, results, findings = sweep(b, "seed", engine.serial)
    assert len(results) == len(pl.todo) and all(r.decided for r in results)
    causes = {(f.kind, f.fixes): f for f in findings}
    f1 = causes[("fix", ("atomic-pte-update",))]
    f3 = causes[("fix", ("removal-vmr-overlap",))]
    assert (f1.known, f1.invariant) == ("F1", "no-lost-write")
    assert (f3.known, f3.invariant) == ("F3", "no-use-after-free")
    # the smallest: F3 needs one remover and a prefaulted VMR inside the range
    assert len(f3.scenario["thread"]) == 1 and f3.scenario["file_pages"] == 2
    from pagemap.sweep.group import write
    for f in write(findings, "seed", tmp_path):
        assert f.path is not None
        assert main_check([str(f.path), "--trace", "none"]) == 1  # reproduces, as expected
        assert main_check([str(f.path), "--variant", "fixed", "--trace", "none"]) == 0


def test_root_causes_agree_with_a_run_of_every_variant() -> None:
    """The runs the cause search leaves out (a fix the passing run never
    consulted) change nothing: each violating scenario's cause is exactly the
    fixes X whose fixed-without-X, explored in full, violates."""
    _, results, _ = sweep(bounds.load(TINY), "seed", engine.serial)
    pl = plan(bounds.load(TINY), "seed")
    violating = [r for r in results if r.violation]
    assert violating and any(r.same_as for r in violating)  # some runs were left out
    for r in violating:
        s = pl.todo[r.key]
        got = tuple(x for x in FIXES if Explorer(parse(s, "test", WITHOUT + x), contracts=False)
                    .explore(progress=False).verdict == "violation")
        assert r.fixes == got, (r.key, r.same_as)


def test_tiny_sweep_on_fixed_is_clean_and_complete() -> None:
    _, results, findings = sweep(bounds.load(TINY), "fixed", engine.serial)
    assert findings == [] and all(r.decided and not r.violation for r in results)


def test_state_limit_leaves_the_scope_incomplete() -> None:
    _, results, _ = sweep(bounds.load(TINY), "fixed", engine.serial, max_states=20)
    assert any(not r.decided for r in results)
    assert all(r.run.verdict != "pass" or r.run.states < 20 for r in results)


def test_root_cause_of_a_new_defect_is_empty() -> None:
    """A violation that fixed shows too is a new defect: no fix in its cause.
    (Here the mutant in which pm_find_page's CAS is a plain store: a concurrent
    pm_put_page is undone, on every variant.  A pool too small, the old example,
    is now a ScenarioTooSmall error of the scenario, not a verdict.)"""
    from pagemap.checker.mutations import MUTATIONS
    from pagemap.sweep.run import check
    s: dict[str, Any] = {"file_pages": 1, "pool_pages": 1, "preload": [0], "thread": [
        {"name": "a", "ops": [{"op": "file_read", "index": 0}]},
        {"name": "b", "ops": [{"op": "file_read", "index": 0}]}]}
    assert not check("k", s, "seed", 10_000, False).violation  # the control: the real code
    broken = MUTATIONS["find-plain-store"].replace()
    r = check("k", s, "seed", 10_000, False, replace=broken)
    assert r.violation and r.new_defect and r.fixes == ()
    assert r.run.invariant == "refcount-accurate"
    assert [p.variant for p in r.probes] == ["fixed"]


# -- the distributed engine --------------------------------------------------------


# distributed leaves a socket of its HTTP endpoint to the garbage collector
_DASK_NOISE = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _json_sweep(tmp_path: Path, workers: int) -> dict[str, Any]:
    out = tmp_path / f"w{workers}"
    r = _pagemap("sweep", "--bounds", str(TINY), "--workers", str(workers), "--json",
                 "--out", str(out), "--quiet")
    assert r.returncode == 1, r.stderr  # findings
    return json.loads(r.stdout)


@_DASK_NOISE
def test_one_worker_and_two_workers_give_the_same_findings(tmp_path: Path) -> None:
    one, two = _json_sweep(tmp_path, 1), _json_sweep(tmp_path, 2)
    for d in (one, two):
        assert d["complete"] is True and d["variant"] == "seed"
        assert {tuple(f["fixes"]) for f in d["findings"]} >= {("atomic-pte-update",),
                                                              ("removal-vmr-overlap",)}
    strip = ("seconds", "bounds")
    assert {k: v for k, v in one.items() if k not in strip and k != "findings"} == \
        {k: v for k, v in two.items() if k not in strip and k != "findings"}
    def same(d: dict[str, Any]) -> list[Any]:
        return [{**f, "scenario": Path(f["scenario"]).read_text()} for f in d["findings"]]
    assert same(one) == same(two)


@_DASK_NOISE
def test_local_cluster_has_two_worker_processes_and_serves_a_scheduler_address(
        tmp_path: Path) -> None:
    """Two real worker processes; the same results as in this process; and
    `--scheduler ADDRESS` sends the same work to that cluster."""
    b = bounds.load(TINY)
    with engine.dask_cluster(workers=2) as mapper:
        pids = mapper.worker_pids()
        _, results, findings = sweep(b, "seed", mapper)
        address = mapper.client.scheduler.address
        r = _pagemap("sweep", "--bounds", str(TINY), "--scheduler", address, "--json",
                     "--out", str(tmp_path), "--quiet")
    assert len(set(pids)) == 2 and os.getpid() not in pids
    _, serial_results, serial_findings = sweep(b, "seed", engine.serial)
    assert results == serial_results
    assert [(f.kind, f.fixes, f.result) for f in findings] == \
        [(f.kind, f.fixes, f.result) for f in serial_findings]
    assert r.returncode == 1, r.stderr
    remote = json.loads(r.stdout)
    assert [(tuple(f["fixes"]), f["states"]) for f in remote["findings"]] == \
        [(f.fixes, f.result.run.states) for f in serial_findings]

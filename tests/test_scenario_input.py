"""Bad input at every level of a scenario file is one clear line (exit code
2): unknown keys anywhere, bad values of the kernel-context sections, and
the address-space ops' own mistakes (a page beyond the VMR, mmap of a mapped
VMR, an unknown prot).  A typo must never make the checker check something
else than what the user wrote."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pagemap.checker.command import EXIT_BAD_INPUT
from pagemap.checker.scenario import ScenarioError, parse

BASE: dict[str, Any] = {
    "name": "base",
    "file_pages": 2,
    "pool_pages": 3,
    "preload": [0],
    "hardware": {"shootdown": "sync"},
    "filesystem": {"writepage": "kfs", "readpage": "ideal"},
    "faults": {"enomem": False},
    "kernel": {"demand_paging": False},
    "process": [{
        "name": "p1", "mode": "scp",
        "vmr": [
            {"name": "v1", "file_page": 0, "pages": 2, "flags": ["shared"],
             "prot": ["read", "write"], "base": 16},
            {"name": "v2", "file_page": 0, "pages": 1, "flags": ["private"], "prot": ["read"],
             "base": 32, "mapped": False},
        ],
    }],
    "thread": [
        {"name": "u1", "process": "p1", "ops": [
            {"op": "write", "vmr": "v1", "page": 1},
            {"op": "munmap", "vmr": "v1", "page": 1, "pages": 1},
            {"op": "mprotect", "vmr": "v1", "prot": ["read"], "page": 0, "pages": 1},
            {"op": "mmap", "vmr": "v2"},
            {"op": "exit"},
        ]},
        {"name": "r", "ops": [{"op": "remove", "index": 0, "count": 2},
                              {"op": "file_write", "index": 1}]},
    ],
    "expect": {"seed": {"verdict": "pass"}, "fixed": {"verdict": "pass"}},
}


def test_the_base_scenario_is_valid() -> None:
    cfg = parse(copy.deepcopy(BASE))
    assert cfg.processes[0].mode == "scp" and cfg.writepage == "kfs"
    assert [op.op for op in cfg.threads[0].ops] == ["write", "munmap", "mprotect", "mmap", "exit"]
    assert cfg.threads[0].ops[1].pages == 1 and cfg.mapped == (True, False)


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(d: dict[str, Any]) -> None:
        for key in path[:-1]:
            d = d[key]
        d[path[-1]] = value
    return edit


def _drop(path: tuple[Any, ...]) -> Callable[[dict[str, Any]], None]:
    def edit(d: dict[str, Any]) -> None:
        for key in path[:-1]:
            d = d[key]
        del d[path[-1]]
    return edit


OP = ("thread", 0, "ops")
V1 = ("process", 0, "vmr", 0)

#: (case, edit, a word the one-line message must contain)
BAD: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    # unknown keys, at every level
    ("top", _set(("file_pagez",), 3), "file_pagez"),
    ("hardware", _set(("hardware", "shootdwon"), "sync"), "shootdwon"),
    ("filesystem", _set(("filesystem", "write_page"), "kfs"), "write_page"),
    ("faults", _set(("faults", "enomen"), True), "enomen"),
    ("kernel", _set(("kernel", "demandpaging"), True), "demandpaging"),
    ("process", _set(("process", 0, "modes"), "scp"), "modes"),
    ("vmr", _set((*V1, "prefualt"), True), "prefualt"),
    ("thread", _set(("thread", 0, "proc"), "p1"), "proc"),
    ("op", _set((*OP, 0, "pages"), 1), "pages"),
    ("op-munmap", _set((*OP, 1, "index"), 0), "index"),
    ("op-exit", _set((*OP, 4, "vmr"), "v1"), "vmr"),
    ("op-remove", _set(("thread", 1, "ops", 0, "page"), 0), "page"),
    ("expect", _set(("expect", "seed", "invariants"), "x"), "invariants"),
    # bad values of the kernel-context sections
    ("mode", _set(("process", 0, "mode"), "mpc"), "mode"),
    ("writepage", _set(("filesystem", "writepage"), "ext4"), "writepage"),
    ("readpage", _set(("filesystem", "readpage"), "slow"), "readpage"),
    ("enomem-type", _set(("faults", "enomem"), "yes"), "enomem"),
    ("demand-paging-type", _set(("kernel", "demand_paging"), 1), "demand_paging"),
    ("shootdown", _set(("hardware", "shootdown"), "lazy"), "shootdown"),
    ("flag", _set((*V1, "flags"), ["shared", "populat"]), "populat"),
    ("base-overlap", _set(("process", 0, "vmr", 1, "base"), 17), "overlap"),
    ("base-zero", _set((*V1, "base"), 0), "base"),
    ("prefault-unmapped", _set(("process", 0, "vmr", 1, "prefault"), True), "mapped"),
    ("mapped-type", _set((*V1, "mapped"), "yes"), "mapped"),
    # the address-space ops
    ("write-beyond", _set((*OP, 0, "page"), 2), "beyond"),
    ("munmap-beyond", _set((*OP, 1, "pages"), 2), "beyond"),
    ("munmap-negative", _set((*OP, 1, "page"), -1), "beyond"),
    ("mprotect-beyond", _set((*OP, 2, "page"), 2), "beyond"),
    ("mprotect-unknown-prot", _set((*OP, 2, "prot"), ["read", "wrtie"]), "wrtie"),
    ("mprotect-no-prot", _drop((*OP, 2, "prot")), "prot"),
    ("mmap-mapped", _set((*OP, 3, "vmr"), "v1"), "already mapped"),
    ("mmap-twice", _set((*OP, 4), {"op": "mmap", "vmr": "v2"}), "twice"),
    ("exit-kernel-thread", _set(("thread", 1, "ops", 0), {"op": "exit"}), "process"),
    ("mmap-unknown-vmr", _set((*OP, 3, "vmr"), "v9"), "v9"),
    ("unknown-op", _set((*OP, 0, "op"), "madvise"), "madvise"),
]


@pytest.mark.parametrize("case, edit, word", BAD, ids=[c for c, _, _ in BAD])
def test_bad_input_is_one_line(case: str, edit: Callable[[dict[str, Any]], None],
                               word: str) -> None:
    data = copy.deepcopy(BASE)
    edit(data)
    with pytest.raises(ScenarioError) as err:
        parse(data, "t.toml")
    text = str(err.value)
    assert "\n" not in text and text.startswith("t.toml")
    assert word in text, text


def test_unknown_key_exits_2_from_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text("""
file_pages = 1
pool_pages = 1
[[process]]
name = "p1"
  [[process.vmr]]
  name = "v1"
  file_page = 0
  pages = 1
  flags = ["shared"]
  prot = ["read"]
  prefualt = true
[[thread]]
name = "u1"
process = "p1"
ops = [ { op = "read", vmr = "v1", page = 0 } ]
""")
    proc = subprocess.run([sys.executable, "-m", "pagemap.cli", "check", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == EXIT_BAD_INPUT, proc.stdout + proc.stderr
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1
    assert "prefualt" in proc.stderr and "Traceback" not in proc.stderr

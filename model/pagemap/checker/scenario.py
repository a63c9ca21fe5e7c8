"""Scenario files (TOML, DESIGN §3) to a validated ``Config``.

Every problem is reported as one ``ScenarioError`` line naming the key at
fault, so that ``pagemap check`` can exit 2 without a traceback."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pagemap.config import Config, Op, Process, Thread, resolve_variant
from pagemap.vmr import (
    MAP_LOCKED,
    MAP_PRIVATE,
    MAP_SHARED,
    PGSHIFT,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    VMR,
)

OPS = ("write", "read", "munmap", "file_write", "file_read", "remove")
TOP_KEYS = {
    "name", "variant", "word_bits", "file_pages", "pool_pages", "preload", "hardware",
    "process", "thread", "expect", "ptr_arr_len", "description",
}
VMR_SPACING = 0x100  # pages between the bases of a process's VMRs
FLAG_BITS = {"shared": MAP_SHARED, "private": MAP_PRIVATE, "locked": MAP_LOCKED}
PROT_BITS = {"read": PROT_READ, "write": PROT_WRITE, "exec": PROT_EXEC}


class ScenarioError(ValueError):
    """An unreadable or invalid scenario: one line for people."""


def _req(d: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise ScenarioError(f"{where}: missing key '{key}'")
    v = d[key]
    if not isinstance(v, typ) or isinstance(v, bool) and typ is int:
        raise ScenarioError(f"{where}: '{key}' has the wrong type ({type(v).__name__})")
    return v


def load(path: str | Path, variant: Any = None, word_bits: int | None = None) -> Config:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ScenarioError(f"{p}: cannot read ({e.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{p}: not valid TOML ({e})") from None
    return parse(data, str(p), variant, word_bits)


def parse(
    data: dict[str, Any], where: str = "scenario", variant: Any = None, word_bits: int | None = None
) -> Config:
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ScenarioError(f"{where}: unknown key '{min(unknown)}'")
    name = str(data.get("name", where))
    var = variant if variant is not None else data.get("variant", "seed")
    try:
        fixes = resolve_variant(var)
    except ValueError as e:
        raise ScenarioError(f"{where}: {e}") from None
    bits = word_bits if word_bits is not None else data.get("word_bits", 64)
    if bits not in (32, 64):
        raise ScenarioError(f"{where}: word_bits must be 32 or 64, not {bits!r}")
    file_pages = _req(data, "file_pages", int, where)
    if not 1 <= file_pages <= 64:
        raise ScenarioError(f"{where}: file_pages must be 1..64")
    pool_pages = _req(data, "pool_pages", int, where)
    if not 1 <= pool_pages <= 62:
        raise ScenarioError(f"{where}: pool_pages must be 1..62")
    preload = data.get("preload", [])
    if not isinstance(preload, list) or any(
        not isinstance(i, int) or not 0 <= i < file_pages for i in preload
    ) or len(set(preload)) != len(preload):
        raise ScenarioError(f"{where}: preload must list distinct indices in 0..file_pages-1")
    hw = data.get("hardware", {})
    shootdown = hw.get("shootdown", "async") if isinstance(hw, dict) else None
    if shootdown not in ("async", "sync") or set(hw) - {"shootdown"}:
        raise ScenarioError(f"{where}: [hardware] takes shootdown = \"async\" | \"sync\"")
    ptr_arr_len = data.get("ptr_arr_len", 10)
    if not isinstance(ptr_arr_len, int) or ptr_arr_len < 1:
        raise ScenarioError(f"{where}: ptr_arr_len must be a positive integer")

    processes: list[Process] = []
    vmrs: list[VMR] = []
    prefault: list[bool] = []
    vmr_names: dict[str, int] = {}
    proc_names: dict[str, int] = {}
    for pi, pd in enumerate(data.get("process", [])):
        pw = f"{where}: process #{pi + 1}"
        pname = _req(pd, "name", str, pw)
        if pname in proc_names:
            raise ScenarioError(f"{pw}: duplicate process name '{pname}'")
        proc_names[pname] = pi
        mine = []
        for vi, vd in enumerate(pd.get("vmr", [])):
            vw = f"{pw}: vmr #{vi + 1}"
            vname = _req(vd, "name", str, vw)
            if vname in vmr_names:
                raise ScenarioError(f"{vw}: duplicate vmr name '{vname}'")
            foff = _req(vd, "file_page", int, vw)
            npages = _req(vd, "pages", int, vw)
            if foff < 0 or npages < 1 or foff + npages > file_pages:
                raise ScenarioError(f"{vw}: pages [{foff}, {foff + npages}) outside the file")
            fl = 0
            for f in _req(vd, "flags", list, vw):
                fl |= _lookup(FLAG_BITS, f, vw, "flags")
            if bool(fl & MAP_SHARED) == bool(fl & MAP_PRIVATE):
                raise ScenarioError(f"{vw}: flags need exactly one of \"shared\", \"private\"")
            prot = 0
            for f in _req(vd, "prot", list, vw):
                prot |= _lookup(PROT_BITS, f, vw, "prot")
            base = (VMR_SPACING * (vi + 1)) << PGSHIFT
            vmrs.append(VMR(vname, pi, base, base + (npages << PGSHIFT), foff << PGSHIFT, prot, fl))
            prefault.append(bool(vd.get("prefault", False)))
            vmr_names[vname] = len(vmrs) - 1
            mine.append(len(vmrs) - 1)
        processes.append(Process(pname, tuple(mine)))

    threads: list[Thread] = []
    seen: set[str] = set()
    for ti, td in enumerate(data.get("thread", [])):
        tw = f"{where}: thread #{ti + 1}"
        tname = _req(td, "name", str, tw)
        if tname in seen:
            raise ScenarioError(f"{tw}: duplicate thread name '{tname}'")
        seen.add(tname)
        proc = -1
        if "process" in td:
            if td["process"] not in proc_names:
                raise ScenarioError(f"{tw}: unknown process '{td['process']}'")
            proc = proc_names[td["process"]]
        ops = []
        for oi, od in enumerate(_req(td, "ops", list, tw)):
            ops.append(_op(od, f"{tw} ({tname}): op #{oi + 1}", proc, processes, vmrs, vmr_names,
                           file_pages))
        threads.append(Thread(tname, proc, tuple(ops)))
    if not threads:
        raise ScenarioError(f"{where}: no [[thread]]")
    # Preloaded and prefaulted pages, plus one page per possible allocation,
    # must fit: a too-small pool shows up as kernel-assert (ENOMEM) otherwise.
    need = len(preload) + sum(
        vmrs[v].npages for v in range(len(vmrs)) if prefault[v] and vmrs[v].vm_flags & MAP_PRIVATE)
    if need > pool_pages:
        raise ScenarioError(f"{where}: pool_pages {pool_pages} < {need} pages needed at start")
    for v, vmr in enumerate(vmrs):
        if prefault[v] and any(vmr.first_idx + k not in preload for k in range(vmr.npages)):
            raise ScenarioError(f"{where}: vmr '{vmr.name}' is prefaulted: preload its pages")
    expect = data.get("expect", {})
    for key, entry in expect.items():
        if not isinstance(entry, dict) or entry.get("verdict") not in ("pass", "violation"):
            raise ScenarioError(f"{where}: [expect.{key}] needs verdict = \"pass\" | \"violation\"")
    return Config(
        name=name,
        fixes=fixes,
        word_bits=bits,
        file_pages=file_pages,
        pool_pages=pool_pages,
        preload=tuple(preload),
        shootdown=shootdown,
        processes=tuple(processes),
        vmrs=tuple(vmrs),
        prefault=tuple(prefault),
        threads=tuple(threads),
        ptr_arr_len=ptr_arr_len,
        expect=expect,
    )


def _lookup(table: dict[str, int], value: Any, where: str, key: str) -> int:
    if value not in table:
        raise ScenarioError(f"{where}: unknown {key} value {value!r}")
    return table[value]


def _op(od: Any, where: str, proc: int, processes: list[Process], vmrs: list[VMR],
        vmr_names: dict[str, int], file_pages: int) -> Op:
    if not isinstance(od, dict) or od.get("op") not in OPS:
        raise ScenarioError(f"{where}: unknown op {od.get('op') if isinstance(od, dict) else od!r}")
    kind = od["op"]
    if kind in ("write", "read", "munmap"):
        if proc < 0:
            raise ScenarioError(f"{where}: '{kind}' needs the thread to have a process")
        vname = _req(od, "vmr", str, where)
        if vname not in vmr_names or vmr_names[vname] not in processes[proc].vmrs:
            raise ScenarioError(f"{where}: unknown vmr '{vname}' in the thread's process")
        v = vmr_names[vname]
        if kind == "munmap":
            return Op(kind, vmr=v)
        page = _req(od, "page", int, where)
        if not 0 <= page < vmrs[v].npages:
            raise ScenarioError(f"{where}: page {page} outside vmr '{vname}'")
        if kind == "write" and not vmrs[v].vm_prot & PROT_WRITE:
            raise ScenarioError(f"{where}: write to vmr '{vname}', which is not writable")
        if kind == "read" and not vmrs[v].vm_prot & PROT_READ:
            raise ScenarioError(f"{where}: read from vmr '{vname}', which is not readable")
        return Op(kind, vmr=v, page=page)
    index = _req(od, "index", int, where)
    if kind == "remove":
        count = _req(od, "count", int, where)
        if index < 0 or count < 0 or index + count > file_pages:
            raise ScenarioError(f"{where}: remove range [{index}, {index + count}) outside the file")
        return Op(kind, index=index, count=count)
    if not 0 <= index < file_pages:
        raise ScenarioError(f"{where}: index {index} outside the file")
    return Op(kind, index=index)

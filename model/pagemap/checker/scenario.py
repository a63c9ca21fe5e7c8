"""Scenario files (TOML, spec/scenarios-format.md) to a validated ``Config``.

Every problem is reported as one ``ScenarioError`` line naming the key at
fault, so that ``pagemap check`` can exit 2 without a traceback.  A key the
format does not know, at any level, is such a problem: a typo must not make
the checker check something else than what the user wrote."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pagemap.config import MODES, Config, Op, Process, Thread, resolve_variant
from pagemap.vmr import (
    MAP_LOCKED,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    PGSHIFT,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    VMR,
)

TOP_KEYS = {
    "name", "variant", "word_bits", "file_pages", "pool_pages", "preload", "hardware",
    "filesystem", "faults", "kernel", "process", "thread", "expect", "ptr_arr_len", "description",
}
PROCESS_KEYS = {"name", "mode", "vmr"}
VMR_KEYS = {"name", "file_page", "pages", "flags", "prot", "prefault", "base", "mapped"}
THREAD_KEYS = {"name", "process", "ops"}
EXPECT_KEYS = {"verdict", "invariant"}
#: Each op and the keys it takes besides "op" (required, optional).
OP_KEYS: dict[str, tuple[set[str], set[str]]] = {
    "write": ({"vmr", "page"}, set()),
    "read": ({"vmr", "page"}, set()),
    "munmap": ({"vmr"}, {"page", "pages"}),
    "mprotect": ({"vmr", "prot"}, {"page", "pages"}),
    "mmap": ({"vmr"}, set()),
    "exit": (set(), set()),
    "file_write": ({"index"}, set()),
    "file_read": ({"index"}, set()),
    "remove": ({"index", "count"}, set()),
}
OPS = tuple(OP_KEYS)
SECTIONS: dict[str, dict[str, tuple[Any, ...]]] = {
    # [section]: key -> allowed values (the first is the default)
    "hardware": {"shootdown": ("async", "sync")},
    "filesystem": {"writepage": ("ideal", "kfs"), "readpage": ("ideal", "blocking")},
    "faults": {"enomem": (False, True)},
    "kernel": {"demand_paging": (False, True), "spinlock_debug": (True, False)},
}
VMR_SPACING = 0x100  # pages between the default bases of a process's VMRs
#: The lowest user address is MMAP_LOWEST_VA (4096), the highest below UMAPTOP.
VPN_MIN, VPN_MAX = 1, 1 << 35
FLAG_BITS = {"shared": MAP_SHARED, "private": MAP_PRIVATE, "locked": MAP_LOCKED,
             "populate": MAP_POPULATE}
PROT_BITS = {"read": PROT_READ, "write": PROT_WRITE, "exec": PROT_EXEC}


class ScenarioError(ValueError):
    """An unreadable or invalid scenario: one line for people."""


def _req(d: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise ScenarioError(f"{where}: missing key '{key}'")
    return _typed(d, key, typ, where)


def _typed(d: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    v = d[key]
    if not isinstance(v, typ) or isinstance(v, bool) and typ is int:
        raise ScenarioError(f"{where}: '{key}' has the wrong type ({type(v).__name__})")
    return v


def _opt(d: dict[str, Any], key: str, typ: type, default: Any, where: str) -> Any:
    return _typed(d, key, typ, where) if key in d else default


def _keys(d: Any, allowed: set[str], where: str) -> None:
    if not isinstance(d, dict):
        raise ScenarioError(f"{where}: expected a table, got {type(d).__name__}")
    unknown = set(d) - allowed
    if unknown:
        raise ScenarioError(f"{where}: unknown key '{min(unknown)}' (known: "
                            f"{', '.join(sorted(allowed))})")


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


def _section(data: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    spec = SECTIONS[name]
    d = data.get(name, {})
    _keys(d, set(spec), f"{where}: [{name}]")
    out = {}
    for key, allowed in spec.items():
        v = d.get(key, allowed[0])
        if v not in allowed or type(v) is not type(allowed[0]):
            shown = " | ".join(f'"{a}"' if isinstance(a, str) else str(a).lower()
                               for a in allowed)
            raise ScenarioError(f"{where}: [{name}] {key} must be {shown}, not {v!r}")
        out[key] = v
    return out


def parse(
    data: dict[str, Any], where: str = "scenario", variant: Any = None, word_bits: int | None = None
) -> Config:
    _keys(data, TOP_KEYS, where)
    name = str(data.get("name", where))
    var = variant if variant is not None else data.get("variant", "seed")
    try:
        fixes = resolve_variant(var)
    except ValueError as e:
        raise ScenarioError(f"{where}: {e}") from None
    bits = word_bits if word_bits is not None else data.get("word_bits", 64)
    if bits not in (32, 64) or isinstance(bits, bool):
        raise ScenarioError(f"{where}: word_bits must be 32 or 64, not {bits!r}")
    file_pages = _req(data, "file_pages", int, where)
    if not 1 <= file_pages <= 64:
        raise ScenarioError(f"{where}: file_pages must be 1..64")
    pool_pages = _req(data, "pool_pages", int, where)
    if not 1 <= pool_pages <= 62:
        raise ScenarioError(f"{where}: pool_pages must be 1..62")
    preload = data.get("preload", [])
    if not isinstance(preload, list) or any(
        not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < file_pages for i in preload
    ) or len(set(preload)) != len(preload):
        raise ScenarioError(f"{where}: preload must list distinct indices in 0..file_pages-1")
    hw = _section(data, "hardware", where)
    fs = _section(data, "filesystem", where)
    faults = _section(data, "faults", where)
    kernel = _section(data, "kernel", where)
    ptr_arr_len = data.get("ptr_arr_len", 10)
    if not isinstance(ptr_arr_len, int) or isinstance(ptr_arr_len, bool) or ptr_arr_len < 1:
        raise ScenarioError(f"{where}: ptr_arr_len must be a positive integer")
    if "description" in data and not isinstance(data["description"], str):
        raise ScenarioError(f"{where}: 'description' must be a string")

    processes: list[Process] = []
    vmrs: list[VMR] = []
    prefault: list[bool] = []
    mapped: list[bool] = []
    vmr_names: dict[str, int] = {}
    proc_names: dict[str, int] = {}
    procs = data.get("process", [])
    if not isinstance(procs, list):
        raise ScenarioError(f"{where}: 'process' must be an array of tables ([[process]])")
    for pi, pd in enumerate(procs):
        pw = f"{where}: process #{pi + 1}"
        _keys(pd, PROCESS_KEYS, pw)
        pname = _req(pd, "name", str, pw)
        if pname in proc_names:
            raise ScenarioError(f"{pw}: duplicate process name '{pname}'")
        proc_names[pname] = pi
        mode = _opt(pd, "mode", str, "mcp", pw)
        if mode not in MODES:
            raise ScenarioError(f"{pw}: mode must be \"mcp\" or \"scp\", not {mode!r}")
        mine = []
        spans: list[tuple[int, int, str]] = []
        vlist = pd.get("vmr", [])
        if not isinstance(vlist, list):
            raise ScenarioError(f"{pw}: 'vmr' must be an array of tables ([[process.vmr]])")
        for vi, vd in enumerate(vlist):
            vw = f"{pw}: vmr #{vi + 1}"
            _keys(vd, VMR_KEYS, vw)
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
            base = _opt(vd, "base", int, VMR_SPACING * (vi + 1), vw)
            if not VPN_MIN <= base or base + npages > VPN_MAX:
                raise ScenarioError(f"{vw}: base {base} outside the user address space")
            for a, b, other in spans:
                if base < b and a < base + npages:
                    raise ScenarioError(f"{vw}: pages [{base}, {base + npages}) overlap "
                                        f"vmr '{other}'")
            spans.append((base, base + npages, vname))
            is_mapped = _opt(vd, "mapped", bool, True, vw)
            pre = _opt(vd, "prefault", bool, False, vw)
            if pre and not is_mapped:
                raise ScenarioError(f"{vw}: prefault = true needs mapped = true")
            vb = base << PGSHIFT
            vmrs.append(VMR(vname, pi, vb, vb + (npages << PGSHIFT), foff << PGSHIFT, prot, fl))
            prefault.append(pre)
            mapped.append(is_mapped)
            vmr_names[vname] = len(vmrs) - 1
            mine.append(len(vmrs) - 1)
        processes.append(Process(pname, tuple(mine), mode))

    threads: list[Thread] = []
    seen: set[str] = set()
    tlist = data.get("thread", [])
    if not isinstance(tlist, list):
        raise ScenarioError(f"{where}: 'thread' must be an array of tables ([[thread]])")
    mmapped: set[int] = set()
    for ti, td in enumerate(tlist):
        tw = f"{where}: thread #{ti + 1}"
        _keys(td, THREAD_KEYS, tw)
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
            op = _op(od, f"{tw} ({tname}): op #{oi + 1}", proc, processes, vmrs, vmr_names,
                     file_pages)
            if op.op == "mmap":
                if mapped[op.vmr]:
                    raise ScenarioError(f"{tw} ({tname}): op #{oi + 1}: mmap of vmr "
                                        f"'{vmrs[op.vmr].name}', which is already mapped "
                                        "(declare it with mapped = false)")
                if op.vmr in mmapped:
                    raise ScenarioError(f"{tw} ({tname}): op #{oi + 1}: vmr "
                                        f"'{vmrs[op.vmr].name}' is mmapped twice")
                mmapped.add(op.vmr)
            ops.append(op)
        threads.append(Thread(tname, proc, tuple(ops)))
    if not threads:
        raise ScenarioError(f"{where}: no [[thread]]")
    # Preloaded and prefaulted pages must fit; running out later is a
    # mis-sized scenario too (pagemap.alloc), unless [faults] enomem.
    need = len(preload) + sum(
        vmrs[v].npages for v in range(len(vmrs)) if prefault[v] and vmrs[v].vm_flags & MAP_PRIVATE)
    if need > pool_pages:
        raise ScenarioError(f"{where}: pool_pages {pool_pages} < {need} pages needed at start")
    for v, vmr in enumerate(vmrs):
        if prefault[v] and any(vmr.first_idx + k not in preload for k in range(vmr.npages)):
            raise ScenarioError(f"{where}: vmr '{vmr.name}' is prefaulted: preload its pages")
    expect = data.get("expect", {})
    if not isinstance(expect, dict):
        raise ScenarioError(f"{where}: [expect] must be a table of [expect.VARIANT] tables")
    for key, entry in expect.items():
        ew = f"{where}: [expect.{key}]"
        _keys(entry, EXPECT_KEYS, ew)
        if entry.get("verdict") not in ("pass", "violation"):
            raise ScenarioError(f"{ew} needs verdict = \"pass\" | \"violation\"")
        try:
            resolve_variant(key)
        except ValueError as e:
            raise ScenarioError(f"{ew}: {e}") from None
    return Config(
        name=name,
        fixes=fixes,
        word_bits=bits,
        file_pages=file_pages,
        pool_pages=pool_pages,
        preload=tuple(preload),
        shootdown=hw["shootdown"],
        processes=tuple(processes),
        vmrs=tuple(vmrs),
        prefault=tuple(prefault),
        threads=tuple(threads),
        ptr_arr_len=ptr_arr_len,
        mapped=tuple(mapped),
        writepage=fs["writepage"],
        readpage=fs["readpage"],
        enomem=faults["enomem"],
        demand_paging=kernel["demand_paging"],
        spinlock_debug=kernel["spinlock_debug"],
        expect=expect,
    )


def _lookup(table: dict[str, int], value: Any, where: str, key: str) -> int:
    if value not in table:
        raise ScenarioError(f"{where}: unknown {key} value {value!r} (known: "
                            f"{', '.join(table)})")
    return table[value]


def _op(od: Any, where: str, proc: int, processes: list[Process], vmrs: list[VMR],
        vmr_names: dict[str, int], file_pages: int) -> Op:
    if not isinstance(od, dict) or od.get("op") not in OPS:
        raise ScenarioError(f"{where}: unknown op {od.get('op') if isinstance(od, dict) else od!r}"
                            f" (known: {', '.join(OPS)})")
    kind = od["op"]
    required, optional = OP_KEYS[kind]
    _keys(od, {"op"} | required | optional, f"{where} ({kind})")
    for key in sorted(required):
        if key not in od:
            raise ScenarioError(f"{where}: '{kind}' needs '{key}'")
    if kind in ("write", "read", "munmap", "mprotect", "mmap", "exit") and proc < 0:
        raise ScenarioError(f"{where}: '{kind}' needs the thread to have a process")
    if kind == "exit":
        return Op(kind)
    if "vmr" in required:
        vname = _req(od, "vmr", str, where)
        if vname not in vmr_names or vmr_names[vname] not in processes[proc].vmrs:
            raise ScenarioError(f"{where}: unknown vmr '{vname}' in the thread's process")
        v = vmr_names[vname]
        npages = vmrs[v].npages
        if kind == "mmap":
            return Op(kind, vmr=v)
        if kind in ("munmap", "mprotect"):
            page = _opt(od, "page", int, 0, where)
            pages = _opt(od, "pages", int, npages - page, where)
            if page < 0 or pages < 1 or page + pages > npages:
                raise ScenarioError(f"{where}: pages [{page}, {page + pages}) beyond vmr "
                                    f"'{vname}' ({npages} pages)")
            prot = 0
            if kind == "mprotect":
                for f in _req(od, "prot", list, where):
                    prot |= _lookup(PROT_BITS, f, where, "prot")
            return Op(kind, vmr=v, page=page, pages=pages, prot=prot)
        page = _req(od, "page", int, where)
        if not 0 <= page < npages:
            raise ScenarioError(f"{where}: page {page} beyond vmr '{vname}' ({npages} pages)")
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

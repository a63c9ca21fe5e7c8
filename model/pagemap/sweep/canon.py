"""Canonical form of a scenario: defaults left out, the sound skips, then renaming.

Two scenarios with the same canonical key are checked once.  ``normalise``
leaves out every value equal to the parser's default (the same Config either
way).  ``reduce`` applies the skips, each of which turns a scenario into a no
larger one with the same verdict on every variant (the argument for each is
in spec/sweep.md; `make sweep` checks them on every scenario of a small scope):

* ``after_exit``: the ops after an exit never run: they are dropped;
* ``kernel_threads``: a thread that runs no user op, in an MCP process that
  cannot die, is a kernel-only thread;
* ``idle_vmrs``: a VMR that is not prefaulted, not MAP_LOCKED, named by no op,
  in a process with no thread, keeps every PTE 0: it is dropped (and its
  process, when that has no VMR left);
* ``unmapped_vmrs``: a VMR declared ``mapped = false`` that no op names is
  never mapped: it is dropped;
* ``compact_pages``: file pages nothing refers to are dropped, the others
  renumbered in order;
* ``shootdown_unobservable``: with no thread in any process, no flush is ever
  sent, so the shootdown kind is the default.

Each skip applies only to scenarios whose keys it was argued for (``KNOWN_*``):
a key a later extension adds turns every skip off until someone checks the
argument still holds and adds the key here.

``canonical`` then names everything by position (processes p1.., VMRs v1..,
threads u1.. in a process and k1.. kernel-only, threads sorted) and, when no op
walks a VMR list, tries every order of the processes and of each process's
VMRs and keeps the least.
"""

from __future__ import annotations

import json
from itertools import permutations, product
from typing import Any

from pagemap.checker.scenario import SECTIONS, VMR_SPACING
from pagemap.sweep.vocabulary import OPS, World

#: Keys each skip was argued for; anything else switches the skips off.
KNOWN_TOP = frozenset({"name", "variant", "word_bits", "file_pages", "pool_pages", "preload",
                       "hardware", "filesystem", "faults", "kernel", "process", "thread",
                       "ptr_arr_len", "description"})
KNOWN_SECTIONS = {"hardware": frozenset({"shootdown"}),
                  "filesystem": frozenset({"writepage", "readpage"}),
                  "faults": frozenset({"enomem"}),
                  "kernel": frozenset({"demand_paging", "spinlock_debug"})}
KNOWN_PROCESS = frozenset({"name", "mode", "vmr"})
KNOWN_VMR = frozenset({"name", "file_page", "pages", "flags", "prot", "prefault", "mapped",
                       "base"})
KNOWN_THREAD = frozenset({"name", "process", "ops"})
KNOWN_OPS = frozenset(OPS)

#: The most process and VMR orders ``canonical`` tries (beyond, it keeps the
#: declared order: still sound, only fewer duplicates found).
MAX_ORDERS = 720


def _plain(s: dict[str, Any]) -> bool:
    """Only keys every skip was argued for."""
    return (set(s) <= KNOWN_TOP
            and all(set(s.get(sec, {})) <= keys for sec, keys in KNOWN_SECTIONS.items())
            and all(set(p) <= KNOWN_PROCESS for p in s.get("process", []))
            and all(set(v) <= KNOWN_VMR for p in s.get("process", []) for v in p.get("vmr", []))
            and all(set(t) <= KNOWN_THREAD for t in s["thread"])
            and all(op["op"] in KNOWN_OPS for t in s["thread"] for op in t["ops"]))


def _section(s: dict[str, Any], sec: str, key: str) -> Any:
    return s.get(sec, {}).get(key, SECTIONS[sec][key][0])


def normalise(s: dict[str, Any]) -> None:
    """Leave out what equals the parser's default (the same Config): word size
    64, no preload, PTR_ARR_LEN 10, section values, mode mcp, mapped, not
    prefaulted, the default bases; flags and protections in a fixed order."""
    if s.get("word_bits") == 64:
        del s["word_bits"]
    if s.get("preload") == []:
        del s["preload"]
    if s.get("ptr_arr_len") == 10:
        del s["ptr_arr_len"]
    for sec, spec in SECTIONS.items():
        if sec in s:
            s[sec] = {k: v for k, v in s[sec].items() if v != spec.get(k, (None,))[0]}
            if not s[sec]:
                del s[sec]
    for p in s.get("process", []):
        if p.get("mode") == "mcp":
            del p["mode"]
        vmrs = p.get("vmr", [])
        if all(v.get("base", VMR_SPACING * (i + 1)) == VMR_SPACING * (i + 1)
               for i, v in enumerate(vmrs)):
            for v in vmrs:
                v.pop("base", None)
        for v in vmrs:
            if v.get("mapped") is True:
                del v["mapped"]
            if v.get("prefault") is False:
                del v["prefault"]
            v["flags"], v["prot"] = sorted(v["flags"]), sorted(v["prot"])
    for t in s["thread"]:
        for op in t["ops"]:
            if "prot" in op:
                op["prot"] = sorted(op["prot"])


def after_exit(s: dict[str, Any]) -> None:
    """exit (proc_destroy) ends the thread that calls it (proc_destroy.stop,
    also when the process is already dying): the ops after it never run."""
    for t in s["thread"]:
        ops = t["ops"]
        for i, op in enumerate(ops):
            if op["op"] == "exit":
                del ops[i + 1:]
                break


#: Ops of a process's threads through which it may die or change its VMRs.
_DEADLY = frozenset({"exit", "munmap", "mprotect", "mmap"})


def _immortal(s: dict[str, Any], proc: dict[str, Any]) -> bool:
    """The process cannot die during a run: no exit, no page fault that can
    fail (no -ENOMEM, every VMR mapped from the start and never unmapped or
    made read-only: the parser rejects an access the protection forbids)."""
    if _section(s, "faults", "enomem"):
        return False
    if any(v.get("mapped") is False for v in proc.get("vmr", [])):
        return False
    return not any(op["op"] in _DEADLY for t in s["thread"] if t.get("process") == proc["name"]
                   for op in t["ops"])


def kernel_threads(s: dict[str, Any]) -> None:
    """A thread placed in an MCP process whose ops are all kernel ops runs the
    same steps as a kernel-only thread on a core of its own; its core only adds
    flush events that flush an empty TLB.  Not in an SCP (its threads share a
    core and take turns in the kernel) nor in a process that may die (its
    threads stop when it does)."""
    procs = {p["name"]: p for p in s.get("process", [])}
    movable = {n for n, p in procs.items() if p.get("mode", "mcp") == "mcp" and _immortal(s, p)}
    for t in s["thread"]:
        if t.get("process") in movable and not any(OPS[op["op"]].user for op in t["ops"]):
            del t["process"]


def idle_vmrs(s: dict[str, Any]) -> None:
    """Drop the VMRs whose PTEs stay 0 in every run.  Only the fault path,
    munmap, mprotect, mmap and exit of the VMR's own process's threads, and
    prefaulting, make a PTE non-zero or change the VMR; the remover's visit of
    such a VMR takes a pte_lock no thread of its own uses, reads zeros and
    shoots down a process with no cores.  (The remover batches processes
    PTR_ARR_LEN at a time; with no more processes than that the batch never
    fills early.  The shootdown of a PROC_RUNNING_S process flushes the
    *calling* core: so an SCP's VMRs are dropped only when every remover is a
    kernel-only thread, whose core has no user TLB.)"""
    procs = s.get("process", [])
    if len(procs) > s.get("ptr_arr_len", 10):
        return
    named = {op["vmr"] for t in s["thread"] for op in t["ops"] if "vmr" in op}
    busy = {t["process"] for t in s["thread"] if "process" in t}
    user_removers = any("process" in t and op["op"] == "remove"
                        for t in s["thread"] for op in t["ops"])
    for p in procs:
        if p["name"] in busy or (p.get("mode") == "scp" and user_removers):
            continue
        p["vmr"] = [v for v in p["vmr"] if v.get("prefault") or "locked" in v["flags"]
                    or v["name"] in named]
    s["process"] = [p for p in procs if p["vmr"] or p["name"] in busy]


def unmapped_vmrs(s: dict[str, Any]) -> None:
    """Drop the VMRs declared ``mapped = false`` that no op names: no mmap maps
    them, so they are on no list and no PTE of theirs is ever set.  Dropping one
    moves the default bases of the VMRs after it, which only [faults] enomem
    observes (VMRs far apart either way; with enomem which of them share a
    page-table page changes): with enomem only the process's last VMR goes."""
    named = {op["vmr"] for t in s["thread"] for op in t["ops"] if "vmr" in op}
    enomem = _section(s, "faults", "enomem")
    for p in s.get("process", []):
        vmrs = p["vmr"]
        explicit = all("base" in v for v in vmrs)
        keep = []
        for i, v in enumerate(vmrs):
            unused = v.get("mapped") is False and v["name"] not in named
            if unused and (not enomem or explicit or i == len(vmrs) - 1):
                continue
            keep.append(v)
        p["vmr"] = keep


def compact_pages(s: dict[str, Any]) -> None:
    """Drop the file pages that no VMR maps, no op names and nothing preloads;
    renumber the rest in order (every range stays contiguous)."""
    w = World.of(s)
    touched = set(s.get("preload", []))
    for _, v in w.vmrs:
        touched.update(range(v["file_page"], v["file_page"] + v["pages"]))
    for t in s["thread"]:
        for op in t["ops"]:
            touched.update(OPS[op["op"]].pages(op, w))
    touched = touched or {0}  # a file has a page (the parser's rule), named or not
    if len(touched) == s["file_pages"]:
        return
    new = {old: i for i, old in enumerate(sorted(touched))}
    s["file_pages"] = len(new)
    s["preload"] = [new[i] for i in s.get("preload", [])]
    for p in s.get("process", []):
        for v in p.get("vmr", []):
            v["file_page"] = new[v["file_page"]]
    for t in s["thread"]:
        for op in t["ops"]:
            if "index" in op:
                op["index"] = new[op["index"]]


def shootdown_unobservable(s: dict[str, Any]) -> None:
    """proc_tlbshootdown flushes the cores of a process's threads: with none,
    sync and async send nothing, and the fixes' waits return at once."""
    if not any("process" in t for t in s["thread"]):
        s.get("hardware", {}).pop("shootdown", None)


SKIPS = (after_exit, kernel_threads, idle_vmrs, unmapped_vmrs, compact_pages,
         shootdown_unobservable)


def _copy(s: dict[str, Any]) -> dict[str, Any]:
    """A copy the skips may change (what they change is copied, the rest shared)."""
    out = dict(s)
    out["preload"] = list(s.get("preload", []))
    for sec in SECTIONS:
        if sec in s:
            out[sec] = dict(s[sec])
    out["process"] = [{**p, "vmr": [{**v, "flags": list(v["flags"]), "prot": list(v["prot"])}
                                    for v in p.get("vmr", [])]}
                      for p in s.get("process", [])]
    out["thread"] = [{**t, "ops": [dict(op) for op in t["ops"]]} for t in s["thread"]]
    return out


def reduce(s: dict[str, Any], skips: bool = True) -> dict[str, Any]:
    """The skips: an equivalent scenario, no larger (s itself is unchanged)."""
    s = _copy(s)
    if skips and _plain(s):
        # Until nothing changes: one skip can enable another (unmapped_vmrs
        # empties a process, which then cannot die, so kernel_threads applies).
        # Each makes the scenario no larger and some part smaller, so this ends.
        while True:
            before = _copy(s)
            for rule in SKIPS:
                rule(s)
            if s == before:
                break
    normalise(s)
    return s


def pool_pages(s: dict[str, Any]) -> int:
    """Enough physical pages that no allocation can fail: the preloaded pages,
    the private copies of prefaulted VMRs, and what each op may allocate and
    keep.  A larger pool changes nothing (the allocator takes the lowest free
    page; with [faults] enomem every allocation may fail anyway), so the sweep
    sets this one."""
    w = World.of(s)
    need = len(s.get("preload", []))
    need += sum(v["pages"] for _, v in w.vmrs if v.get("prefault") and "private" in v["flags"])
    need += sum(OPS[op["op"]].allocs(op, w) for t in s["thread"] for op in t["ops"])
    return max(1, need)


def _order_free(s: dict[str, Any]) -> bool:
    """No op walks a VMR list, and the default bases that a reorder moves are
    unobservable: without [faults] enomem VMRs far apart are alike wherever
    they are; with it, which VMRs share a page-table page could change once a
    process has three VMRs at default bases."""
    if not _plain(s) or not all(OPS[op["op"]].order_free for t in s["thread"]
                                for op in t["ops"]):
        return False
    return not _section(s, "faults", "enomem") or all(
        len(p["vmr"]) <= 2 or all("base" in v for v in p["vmr"]) for p in s.get("process", []))


def _orders(s: dict[str, Any]) -> list[tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]]:
    procs = s.get("process", [])
    ident = (tuple(range(len(procs))), tuple(tuple(range(len(p["vmr"]))) for p in procs))
    if not _order_free(s):
        return [ident]
    out = []
    for pi in permutations(range(len(procs))):
        for sigma in product(*(list(permutations(range(len(procs[p]["vmr"])))) for p in pi)):
            out.append((pi, sigma))
            if len(out) > MAX_ORDERS:
                return [ident]
    return out


def _label(s: dict[str, Any], pi: tuple[int, ...], sigma: tuple[tuple[int, ...], ...]
           ) -> dict[str, Any]:
    """s with processes in order pi, process pi[j]'s VMRs in order sigma[j],
    everything named by position and the threads sorted."""
    pname: dict[str, str] = {}
    vname: dict[str, str] = {}
    procs = []
    for j, p in enumerate(pi):
        old = s["process"][p]
        pname[old["name"]] = f"p{j + 1}"
        vmrs = []
        for i in sigma[j]:
            v = dict(old["vmr"][i])
            vname[v["name"]] = f"v{len(vname) + 1}"
            v["name"] = vname[v["name"]]
            vmrs.append(v)
        procs.append({**old, "name": pname[old["name"]], "vmr": vmrs})
    ths = []
    for t in s["thread"]:
        nt = {k: v for k, v in t.items() if k != "name"}
        if "process" in t:
            nt["process"] = pname[t["process"]]
        nt["ops"] = [{**op, "vmr": vname[op["vmr"]]} if "vmr" in op else dict(op)
                     for op in t["ops"]]
        ths.append(nt)
    ths.sort(key=lambda t: json.dumps(t, sort_keys=True))
    nu = nk = 0
    named = []
    for t in ths:
        if "process" in t:
            nu += 1
            named.append({"name": f"u{nu}", **t})
        else:
            nk += 1
            named.append({"name": f"k{nk}", **t})
    out = {k: v for k, v in s.items() if k not in ("name", "process", "thread", "pool_pages")}
    out["process"] = procs
    out["thread"] = named
    out["pool_pages"] = pool_pages(out)
    return out


def key(s: dict[str, Any]) -> str:
    return json.dumps(s, sort_keys=True, separators=(",", ":"))


def _least(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    best: tuple[str, dict[str, Any]] | None = None
    for pi, sigma in _orders(r):
        c = _label(r, pi, sigma)
        k = key(c)
        if best is None or k < best[0]:
            best = (k, c)
    assert best is not None
    return best


def canonical(s: dict[str, Any], skips: bool = True) -> tuple[str, dict[str, Any]]:
    """(key, canonical scenario): equal keys for scenarios equal up to
    renaming and (``skips``) the skips."""
    return _least(reduce(s, skips))


def canonical_both(s: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(key up to renaming alone, key, canonical scenario), computing the
    labelling once when no skip applies."""
    plain = reduce(s, skips=False)
    r = reduce(s)
    k, c = _least(r)
    if r == plain:
        return k, k, c
    return _least(plain)[0], k, c

"""Canonical form of a scenario: the sound skips, then renaming.

Two scenarios with the same canonical key are checked once.  ``reduce``
applies the skips, each of which turns a scenario into a no larger one with
the same verdict on every variant (the argument for each is in spec/sweep.md,
and tests/test_sweep.py checks it on every scenario of a small scope):

* ``kernel_threads``: a thread of an MCP process that runs no user op is a
  kernel-only thread;
* ``compact_pages``: file pages nothing refers to are dropped, the others
  renumbered in order;
* ``idle_vmrs``: a VMR that is not prefaulted, not MAP_LOCKED, named by no op,
  in a process with no thread, keeps every PTE 0: it is dropped (and its
  process, when that has no VMR left);
* ``shootdown_unobservable``: with no thread in any process, no flush is ever
  sent, so the shootdown kind is the default.

Each skip applies only to scenarios whose keys it was argued for (``KNOWN_*``):
a key a later extension adds (a process mode, a filesystem, faults) turns it
off until someone checks the argument still holds and adds the key here.

``canonical`` then names everything by position (processes p1.., VMRs v1..,
threads u1.. in a process and k1.. kernel-only, threads sorted) and, when no op
walks a VMR list, tries every order of the processes and of each process's
VMRs and keeps the least.
"""

from __future__ import annotations

import json
from itertools import permutations, product
from typing import Any

from pagemap.sweep.vocabulary import OPS, World

#: Keys each skip was argued for; anything else switches the skip off.
KNOWN_TOP = frozenset({"name", "variant", "word_bits", "file_pages", "pool_pages", "preload",
                       "hardware", "process", "thread", "ptr_arr_len", "description"})
KNOWN_HARDWARE = frozenset({"shootdown"})
KNOWN_PROCESS = frozenset({"name", "vmr"})
KNOWN_VMR = frozenset({"name", "file_page", "pages", "flags", "prot", "prefault"})
KNOWN_THREAD = frozenset({"name", "process", "ops"})

#: The most process and VMR orders ``canonical`` tries (beyond, it keeps the
#: declared order: still sound, only fewer duplicates found).
MAX_ORDERS = 720


def _plain(s: dict[str, Any]) -> bool:
    """Only keys every skip was argued for."""
    return (set(s) <= KNOWN_TOP and set(s.get("hardware", {})) <= KNOWN_HARDWARE
            and all(set(p) <= KNOWN_PROCESS for p in s.get("process", []))
            and all(set(v) <= KNOWN_VMR for p in s.get("process", []) for v in p.get("vmr", []))
            and all(set(t) <= KNOWN_THREAD for t in s["thread"]))


def kernel_threads(s: dict[str, Any]) -> None:
    """A thread placed in an MCP process whose ops are all kernel ops runs the
    same steps as a kernel-only thread; its core only adds flush events that
    flush an empty TLB."""
    for t in s["thread"]:
        if "process" in t and not any(OPS[op["op"]].user for op in t["ops"]):
            del t["process"]


def compact_pages(s: dict[str, Any]) -> None:
    """Drop the file pages that no VMR maps, no op names and nothing preloads;
    renumber the rest in order (every range stays contiguous)."""
    w = World.of(s)
    touched = set(s.get("preload", []))
    for _, v in w.vmrs:
        touched.update(range(v["file_page"], v["file_page"] + v["pages"]))
    for t in s["thread"]:
        for op in t["ops"]:
            if not OPS[op["op"]].user:
                touched.update(OPS[op["op"]].pages(op, w))
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


def idle_vmrs(s: dict[str, Any]) -> None:
    """Drop the VMRs whose PTEs stay 0 in every run.  Only the fault path and
    munmap of the VMR's own process's threads, and prefaulting, make a PTE non-zero;
    the remover's visit of such a VMR takes a pte_lock no thread of its own
    uses, reads zeros and shoots down a process with no cores.  (The remover
    batches processes PTR_ARR_LEN at a time; with no more processes than that
    the batch never fills early, so the other processes' shootdowns come when
    they did.)"""
    procs = s.get("process", [])
    if len(procs) > s.get("ptr_arr_len", 10):
        return
    named = {op["vmr"] for t in s["thread"] for op in t["ops"] if "vmr" in op}
    busy = {t["process"] for t in s["thread"] if "process" in t}
    for p in procs:
        if p["name"] not in busy:
            p["vmr"] = [v for v in p["vmr"] if v.get("prefault") or "locked" in v["flags"]
                        or v["name"] in named]
    s["process"] = [p for p in procs if p["vmr"] or p["name"] in busy]


def shootdown_unobservable(s: dict[str, Any]) -> None:
    """proc_tlbshootdown flushes the cores of a process's threads: with none,
    sync and async send nothing, and the fixes' waits return at once."""
    if not any("process" in t for t in s["thread"]):
        s["hardware"] = {"shootdown": "async"}


def _copy(s: dict[str, Any]) -> dict[str, Any]:
    """A copy the skips may change (what they change is copied, the rest shared)."""
    out = dict(s)
    out["preload"] = list(s.get("preload", []))
    out["process"] = [{**p, "vmr": [dict(v) for v in p["vmr"]]} for p in s.get("process", [])]
    out["thread"] = [{**t, "ops": [dict(op) for op in t["ops"]]} for t in s["thread"]]
    return out


def reduce(s: dict[str, Any], skips: bool = True) -> dict[str, Any]:
    """The skips: an equivalent scenario, no larger (s itself is unchanged)."""
    if not skips:
        return s
    s = _copy(s)
    if _plain(s):
        kernel_threads(s)
        idle_vmrs(s)
        compact_pages(s)
        shootdown_unobservable(s)
    return s


def pool_pages(s: dict[str, Any]) -> int:
    """Enough physical pages that no allocation can fail: the preloaded pages,
    the private copies of prefaulted VMRs, and what each op may allocate and
    keep.  A larger pool changes nothing (the allocator takes the lowest free
    page), so the sweep sets this one."""
    w = World.of(s)
    need = len(s.get("preload", []))
    need += sum(v["pages"] for _, v in w.vmrs if v.get("prefault") and "private" in v["flags"])
    need += sum(OPS[op["op"]].allocs for t in s["thread"] for op in t["ops"])
    return max(1, need)


def _order_free(s: dict[str, Any]) -> bool:
    return _plain(s) and all(OPS[op["op"]].order_free for t in s["thread"] for op in t["ops"])


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
    r = reduce(s)
    k, c = _least(r)
    if r == s:
        return k, k, c
    return _least(reduce(s, skips=False))[0], k, c

"""Every scenario within a scope, as the dict a scenario file parses to.

The enumeration is a plain product, so that it is evidently complete: every
world (word size, kernel sections, PTR_ARR_LEN, file size, preloaded pages,
processes with their modes and VMRs, in every order, and every value of the
``vary`` keys), times every multiset of threads, each thread a placement (a
process, or none) and a sequence of ops.  Threads are generated as multisets
rather than sequences (a scenario's threads in another order are the same
scenario renamed); each multiset stands for the k!/(m1! m2! ...) labelled
scenarios that order its threads, and ``Item.weight`` says how many, so that
the count of scenarios enumerated is the count of labelled scenarios.  The
only scenarios left out are those the parser rejects (an mmap of one VMR
twice).  Everything else -- renaming of processes and VMRs, and the skips --
is ``pagemap.sweep.canon``'s job.

Values equal to the parser's defaults are left out of the dict, as a person
writing the file would leave them out (``canon.normalise`` does the same for
any scenario), so that one scenario has one form.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations, product
from math import factorial
from typing import Any

from pagemap.checker.scenario import SECTIONS, VMR_SPACING
from pagemap.sweep.bounds import SECTION_OF, Scope
from pagemap.sweep.vocabulary import OPS, Op, World, instances, runs_in


@dataclass(frozen=True)
class Item:
    scenario: dict[str, Any]
    weight: int  # labelled scenarios it stands for (orders of its threads)


def _combos(table: tuple[tuple[str, tuple[Any, ...]], ...]) -> Iterator[dict[str, Any]]:
    keys = [k for k, _ in table]
    for values in product(*(vs for _, vs in table)):
        yield dict(zip(keys, values, strict=True))


def _preloads(scope: Scope, n: int) -> Iterator[tuple[int, ...]]:
    if scope.preload in ("none", "any"):
        yield ()
    if scope.preload == "all":
        yield tuple(range(n))
    if scope.preload == "any":
        for k in range(1, n + 1):
            yield from combinations(range(n), k)


def vmr_shapes(scope: Scope, n: int, preload: tuple[int, ...]) -> list[dict[str, Any]]:
    """Every VMR (without its name and base) a scope admits in a file of n pages."""
    out = []
    for pages in scope.vmr_pages:
        for fp in range(n - pages + 1):
            covered = all(fp + k in preload for k in range(pages))
            for flags, prot, mapped, pre, extra in product(
                    scope.vmr_flags, scope.vmr_prot, scope.mapped, scope.prefault,
                    _combos(scope.vmr_vary)):
                # A prefaulted VMR is mapped, and its pages are cached (the parser's rules).
                if pre and (not covered or not mapped):
                    continue
                v: dict[str, Any] = {"file_page": fp, "pages": pages, "flags": list(flags),
                                     "prot": list(prot)}
                if pre:
                    v["prefault"] = True
                if not mapped:
                    v["mapped"] = False
                v.update(extra)
                out.append(v)
    return out


def _layouts(scope: Scope, shapes: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Every list of processes: 0..processes of them, each with a mode and at
    least one VMR, at most ``vmrs`` VMRs in all, processes and VMRs in every
    order, in every address layout."""
    procs = [{**({"mode": m} if m != "mcp" else {}), **extra}
             for m in scope.modes for extra in _combos(scope.process_vary)]
    for np in range(scope.processes + 1):
        for counts in product(range(1, scope.vmrs + 1), repeat=np):
            if sum(counts) > scope.vmrs:
                continue
            for choice in product(shapes, repeat=sum(counts)):
                for extras in product(procs, repeat=np):
                    for layout in scope.vmr_layout if np else ("apart",):
                        yield _processes(counts, choice, extras, layout)


def _processes(counts: tuple[int, ...], choice: tuple[dict[str, Any], ...],
               extras: tuple[dict[str, Any], ...], layout: str) -> list[dict[str, Any]]:
    out, j = [], 0
    for p, c in enumerate(counts):
        vmrs = []
        base = VMR_SPACING
        for i in range(c):
            v = {"name": f"v{j + i + 1}", **choice[j + i]}
            if layout == "adjacent":  # back to back: mmap may merge neighbours
                v["base"] = base
                base += v["pages"]
            vmrs.append(v)
        j += c
        out.append({"name": f"p{p + 1}", **extras[p], "vmr": vmrs})
    return out


def _sections(scope: Scope) -> Iterator[dict[str, dict[str, Any]]]:
    """Every combination of the scope's kernel-section values, as the sections
    of a scenario (values equal to the parser's default left out)."""
    for combo in _combos(scope.sections):
        out: dict[str, dict[str, Any]] = {}
        for key, value in combo.items():
            sec = SECTION_OF[key]
            if value != SECTIONS[sec][key][0]:
                out.setdefault(sec, {})[key] = value
        yield out


def worlds(scope: Scope) -> Iterator[dict[str, Any]]:
    """Every scenario of the scope without its threads."""
    for bits, secs, arr, n, extra in product(scope.word_bits, _sections(scope),
                                             scope.ptr_arr_len, scope.file_pages,
                                             _combos(scope.vary)):
        for preload in _preloads(scope, n):
            for procs in _layouts(scope, vmr_shapes(scope, n, preload)):
                w: dict[str, Any] = {"file_pages": n}
                if bits != 64:
                    w["word_bits"] = bits
                if preload:
                    w["preload"] = list(preload)
                if arr != 10:
                    w["ptr_arr_len"] = arr
                w.update({k: dict(v) for k, v in secs.items()})
                w.update(extra)
                w["process"] = procs
                yield w


def _once(ops: tuple[Op, ...]) -> list[str]:
    return [json.dumps(op, sort_keys=True) for op in ops if OPS[op["op"]].once]


def threads(scope: Scope, world: dict[str, Any]) -> list[tuple[str | None, tuple[Op, ...]]]:
    """Every thread a world admits: a placement (process name, or None for a
    kernel-only thread) and 1..ops_per_thread ops it can run there."""
    w = World.of(world)
    ops = instances(w, scope.op_kinds, scope.choices)
    out: list[tuple[str | None, tuple[Op, ...]]] = []
    for place in [None] + [p["name"] for p in world["process"]]:
        allowed = [op for op in ops if runs_in(op, w, place)]
        for length in range(1, scope.ops_per_thread + 1):
            for seq in product(allowed, repeat=length):
                once = _once(seq)
                if len(set(once)) == len(once):
                    out.append((place, seq))
    return out


def _multisets(sizes: list[int], max_count: int, max_total: int) -> Iterator[tuple[int, ...]]:
    """Non-decreasing index tuples into ``sizes`` (1..max_count of them) whose
    sizes add up to at most max_total."""
    def rec(start: int, left: int, count: int, acc: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
        if acc:
            yield acc
        if count == max_count:
            return
        for i in range(start, len(sizes)):
            if sizes[i] <= left:
                yield from rec(i, left - sizes[i], count + 1, acc + (i,))
    yield from rec(0, max_total, 0, ())


def _weight(idx: tuple[int, ...]) -> int:
    w = factorial(len(idx))
    for m in Counter(idx).values():
        w //= factorial(m)
    return w


def scenarios(scope: Scope) -> Iterator[Item]:
    """Every scenario of the scope (threads named t1.. in multiset order)."""
    for world in worlds(scope):
        ths = threads(scope, world)
        once = [_once(ops) for _, ops in ths]
        for idx in _multisets([len(ops) for _, ops in ths], scope.threads, scope.ops):
            if any(once[i] for i in idx):
                used = [k for i in idx for k in once[i]]
                if len(set(used)) != len(used):  # an mmap of one VMR twice: not a scenario
                    continue
            s = dict(world)
            s["thread"] = []
            for n, i in enumerate(idx):
                place, ops = ths[i]
                t: dict[str, Any] = {"name": f"t{n + 1}"}
                if place is not None:
                    t["process"] = place
                t["ops"] = [dict(op) for op in ops]
                s["thread"].append(t)
            yield Item(s, _weight(idx))

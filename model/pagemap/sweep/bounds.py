"""The bounds file of `pagemap sweep` (TOML; format in spec/sweep.md).

A bounds file is a list of ``[[scope]]`` tables; the sweep checks the union of
their scenarios, each canonical scenario once.  Every dimension of the
scenario format has a key: the kernel sections' keys (``shootdown``,
``writepage``, ``readpage``, ``enomem``, ``demand_paging``, ``spinlock_debug``:
whatever ``pagemap.checker.scenario.SECTIONS`` lists, with the values it
allows), process modes, VMR geometry, flags, protection, prefaulting and
mapping, the address layout, and the ops.  Every problem is one
``BoundsError`` line naming the key at fault (exit 2)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pagemap.checker.scenario import FLAG_BITS, PROT_BITS, SECTIONS
from pagemap.config import MODES
from pagemap.sweep.vocabulary import OPS, Choices

DEFAULT_BOUNDS = Path(__file__).resolve().parents[3] / "scenarios" / "sweep" / "default.toml"

#: Each key of a kernel section ([hardware], [filesystem], [faults], [kernel]),
#: with its section; a scope lists the values to try (default: the parser's).
SECTION_OF: dict[str, str] = {k: s for s, keys in SECTIONS.items() for k in keys}
#: How a process's VMRs are placed in its address space: "apart" (the parser's
#: default bases, far from each other) or "adjacent" (back to back in
#: declaration order, so that mmap can merge them).
LAYOUTS = ("apart", "adjacent")


class BoundsError(ValueError):
    """An unreadable or invalid bounds file: one line for people."""


@dataclass(frozen=True)
class Scope:
    """One [[scope]] table: the scenarios it admits are every combination of
    the values listed, up to the maxima."""

    name: str
    word_bits: tuple[int, ...] = (64,)
    #: Kernel-section keys and the values to try, in SECTIONS order; a key not
    #: listed keeps the parser's default.
    sections: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    ptr_arr_len: tuple[int, ...] = (10,)
    file_pages: tuple[int, ...] = (1,)
    preload: str = "any"  # none | all | any (every subset)
    processes: int = 1  # at most
    modes: tuple[str, ...] = ("mcp",)
    vmrs: int = 1  # at most, in all; each process has at least one
    vmr_pages: tuple[int, ...] = (1,)
    vmr_flags: tuple[tuple[str, ...], ...] = (("shared",), ("private",))
    vmr_prot: tuple[tuple[str, ...], ...] = (("read", "write"),)
    prefault: tuple[bool, ...] = (False,)
    mapped: tuple[bool, ...] = (True,)
    vmr_layout: tuple[str, ...] = ("apart",)
    threads: int = 2  # at most
    ops_per_thread: int = 2  # at most
    ops: int = 3  # at most, all threads together
    op_kinds: tuple[str, ...] = tuple(OPS)
    ranges: str = "any"  # munmap / mprotect: "whole" VMRs only, or "any" part too
    mprotect_prot: tuple[tuple[str, ...], ...] = Choices().mprotect_prot
    #: More keys of the scenario, its processes and its VMRs, each with the
    #: values to try (passed to the scenario file as they are).
    vary: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    process_vary: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    vmr_vary: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    @property
    def choices(self) -> Choices:
        return Choices(self.ranges, self.mprotect_prot)


@dataclass(frozen=True)
class Bounds:
    name: str
    scopes: tuple[Scope, ...]
    max_states: int = 200_000  # per run of one scenario on one variant
    contracts: bool = True
    description: str = ""
    source: str = field(default="", compare=False)


_LISTS: dict[str, type] = {"word_bits": int, "file_pages": int, "vmr_pages": int,
                           "prefault": bool, "mapped": bool, "ptr_arr_len": int,
                           "modes": str, "vmr_layout": str}
_ALLOWED: dict[str, tuple[Any, ...]] = {"word_bits": (32, 64), "modes": MODES,
                                        "vmr_layout": LAYOUTS}
_MAXIMA = ("processes", "vmrs", "threads", "ops_per_thread", "ops")
_NAMES = {"vmr_flags": FLAG_BITS, "vmr_prot": PROT_BITS, "mprotect_prot": PROT_BITS}
_CHOICE = {"preload": ("none", "all", "any"), "ranges": ("whole", "any")}
_VARY = ("vary", "process_vary", "vmr_vary")
_TOP = {"name", "description", "max_states", "contracts", "scope"}


def load(path: str | Path) -> Bounds:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except OSError as e:
        raise BoundsError(f"{p}: cannot read ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise BoundsError(f"{p}: not valid TOML ({e})") from None
    return parse(data, str(p))


def parse(data: dict[str, Any], where: str = "bounds") -> Bounds:
    unknown = set(data) - _TOP
    if unknown:
        raise BoundsError(f"{where}: unknown key '{min(unknown)}'")
    max_states = data.get("max_states", 200_000)
    if not isinstance(max_states, int) or isinstance(max_states, bool) or max_states < 1:
        raise BoundsError(f"{where}: max_states must be a positive integer")
    contracts = data.get("contracts", "on")
    if contracts not in ("on", "off"):
        raise BoundsError(f"{where}: contracts must be \"on\" or \"off\"")
    scopes = data.get("scope")
    if not isinstance(scopes, list) or not scopes:
        raise BoundsError(f"{where}: needs at least one [[scope]]")
    out = tuple(_scope(s, f"{where}: scope #{i + 1}") for i, s in enumerate(scopes))
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise BoundsError(f"{where}: scope names must differ")
    return Bounds(str(data.get("name", where)), out, max_states, contracts == "on",
                  str(data.get("description", "")), where)


def _scope(d: Any, where: str) -> Scope:
    if not isinstance(d, dict):
        raise BoundsError(f"{where}: must be a table")
    known = {"name", "op_kinds", *_LISTS, *_MAXIMA, *_NAMES, *_CHOICE, *_VARY, *SECTION_OF}
    unknown = set(d) - known
    if unknown:
        raise BoundsError(f"{where}: unknown key '{min(unknown)}'")
    kw: dict[str, Any] = {"name": str(d.get("name", where))}
    for key, typ in _LISTS.items():
        if key in d:
            kw[key] = _list(d[key], typ, f"{where}: {key}", _ALLOWED.get(key))
    sections = []
    for key in SECTION_OF:  # SECTIONS order: the same scenario whatever the file's order
        if key in d:
            allowed = SECTIONS[SECTION_OF[key]][key]
            sections.append((key, _list(d[key], type(allowed[0]), f"{where}: {key}", allowed)))
    kw["sections"] = tuple(sections)
    for key in _MAXIMA:
        if key in d:
            v = d[key]
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise BoundsError(f"{where}: {key} must be a non-negative integer")
            kw[key] = v
    for key, names in _NAMES.items():
        if key in d:
            v = d[key]
            if not isinstance(v, list) or not v or not all(
                    isinstance(x, list) and all(isinstance(y, str) for y in x) for x in v):
                raise BoundsError(f"{where}: {key} must be a list of lists of names")
            bad = [y for x in v for y in x if y not in names]
            if bad:
                raise BoundsError(f"{where}: {key}: unknown name '{bad[0]}' "
                                  f"(known: {', '.join(names)})")
            kw[key] = tuple(tuple(x) for x in v)
    for key, allowed in _CHOICE.items():
        if key in d:
            if d[key] not in allowed:
                raise BoundsError(f"{where}: {key} must be "
                                  + " or ".join(f'"{a}"' for a in allowed))
            kw[key] = d[key]
    if "op_kinds" in d:
        kinds = _list(d["op_kinds"], str, f"{where}: op_kinds")
        bad = [k for k in kinds if k not in OPS]
        if bad:
            raise BoundsError(f"{where}: unknown op '{bad[0]}' (known: {', '.join(OPS)})")
        kw["op_kinds"] = kinds
    for key in _VARY:
        if key in d:
            t = d[key]
            if not isinstance(t, dict) or not all(isinstance(v, list) and v for v in t.values()):
                raise BoundsError(f"{where}: [{key}] maps keys to non-empty lists of values")
            kw[key] = tuple((k, tuple(t[k])) for k in sorted(t))
    for key in ("file_pages", "vmr_pages", "ptr_arr_len"):
        if key in kw and any(n < 1 for n in kw[key]):
            raise BoundsError(f"{where}: {key} must be positive")
    if any(n > 64 for n in kw.get("file_pages", ())):
        raise BoundsError(f"{where}: file_pages must be at most 64")
    return Scope(**kw)


def _list(v: Any, typ: type, where: str, allowed: tuple[Any, ...] | None = None
          ) -> tuple[Any, ...]:
    if not isinstance(v, list) or not v or not all(
            isinstance(x, typ) and (typ is bool or not isinstance(x, bool)) for x in v):
        raise BoundsError(f"{where}: must be a non-empty list of {typ.__name__}")
    if len(set(v)) != len(v):
        raise BoundsError(f"{where}: lists a value twice")
    if allowed is not None:
        bad = [x for x in v if x not in allowed]
        if bad:
            raise BoundsError(f"{where}: {bad[0]!r} is not one of "
                              + ", ".join(repr(a) for a in allowed))
    return tuple(v)

"""The bounds file of `pagemap sweep` (TOML; format in spec/sweep.md).

A bounds file is a list of ``[[scope]]`` tables; the sweep checks the union of
their scenarios, each canonical scenario once.  Every problem is one
``BoundsError`` line naming the key at fault (exit 2)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pagemap.sweep.vocabulary import OPS

DEFAULT_BOUNDS = Path(__file__).resolve().parents[3] / "scenarios" / "sweep" / "default.toml"


class BoundsError(ValueError):
    """An unreadable or invalid bounds file: one line for people."""


@dataclass(frozen=True)
class Scope:
    """One [[scope]] table: the scenarios it admits are every combination of
    the values listed, up to the maxima."""

    name: str
    word_bits: tuple[int, ...] = (64,)
    shootdown: tuple[str, ...] = ("async",)
    file_pages: tuple[int, ...] = (1,)
    preload: str = "any"  # none | all | any (every subset)
    processes: int = 1  # at most
    vmrs: int = 1  # at most, in all; each process has at least one
    vmr_pages: tuple[int, ...] = (1,)
    vmr_flags: tuple[tuple[str, ...], ...] = (("shared",), ("private",))
    vmr_prot: tuple[tuple[str, ...], ...] = (("read", "write"),)
    prefault: tuple[bool, ...] = (False,)
    threads: int = 2  # at most
    ops_per_thread: int = 2  # at most
    ops: int = 3  # at most, all threads together
    op_kinds: tuple[str, ...] = tuple(OPS)
    #: More keys of the scenario, its processes and its VMRs, each with the
    #: values to try (passed to the scenario file as they are).
    vary: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    process_vary: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    vmr_vary: tuple[tuple[str, tuple[Any, ...]], ...] = ()


@dataclass(frozen=True)
class Bounds:
    name: str
    scopes: tuple[Scope, ...]
    max_states: int = 200_000  # per run of one scenario on one variant
    contracts: bool = True
    description: str = ""
    source: str = field(default="", compare=False)


_LISTS: dict[str, type] = {"word_bits": int, "shootdown": str, "file_pages": int,
                           "vmr_pages": int, "prefault": bool}
_MAXIMA = ("processes", "vmrs", "threads", "ops_per_thread", "ops")
_NAMES = ("vmr_flags", "vmr_prot")
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
    known = {"name", "preload", "op_kinds", *_LISTS, *_MAXIMA, *_NAMES, *_VARY}
    unknown = set(d) - known
    if unknown:
        raise BoundsError(f"{where}: unknown key '{min(unknown)}'")
    kw: dict[str, Any] = {"name": str(d.get("name", where))}
    for key, typ in _LISTS.items():
        if key in d:
            kw[key] = _list(d[key], typ, f"{where}: {key}")
    for key in _MAXIMA:
        if key in d:
            v = d[key]
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise BoundsError(f"{where}: {key} must be a non-negative integer")
            kw[key] = v
    for key in _NAMES:
        if key in d:
            v = d[key]
            if not isinstance(v, list) or not v or not all(
                    isinstance(x, list) and all(isinstance(y, str) for y in x) for x in v):
                raise BoundsError(f"{where}: {key} must be a list of lists of names")
            kw[key] = tuple(tuple(x) for x in v)
    if "preload" in d:
        if d["preload"] not in ("none", "all", "any"):
            raise BoundsError(f"{where}: preload must be \"none\", \"all\" or \"any\"")
        kw["preload"] = d["preload"]
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
    for key in ("file_pages", "vmr_pages"):
        if key in kw and any(n < 1 for n in kw[key]):
            raise BoundsError(f"{where}: {key} must be positive")
    if any(n > 64 for n in kw.get("file_pages", ())):
        raise BoundsError(f"{where}: file_pages must be at most 64")
    return Scope(**kw)


def _list(v: Any, typ: type, where: str) -> tuple[Any, ...]:
    if not isinstance(v, list) or not v or not all(
            isinstance(x, typ) and (typ is bool or not isinstance(x, bool)) for x in v):
        raise BoundsError(f"{where}: must be a non-empty list of {typ.__name__}")
    if len(set(v)) != len(v):
        raise BoundsError(f"{where}: lists a value twice")
    return tuple(v)

"""Source patches of the model's real steps, for mutation tests (spec/mutations.md).

A ``Patch`` names one function of one module of ``pagemap`` and an exact piece of
its source text to replace.  ``apply`` compiles the patched function from the
real module's source, in a copy of that module's globals, and rebuilds from
their own source every function, in any module of ``pagemap``, that reaches it
through calls by name (its callers, their callers, and functions of other
modules that import one of them), so that the copies call each other.  The
result maps each affected step (``"function.label"``) to its rebuilt function,
for ``Explorer(cfg, replace=...)``.

A rebuilt function keeps every decorator but ``@CODE.step`` (the real step is
registered already; the copy is its body): its icontract conditions are part
of the real code, and a mutant runs with them, as the real step does.  The
modules themselves are never changed, and a patch whose text is not found
exactly once in the real function raises ``PatchError``: a mutant can never go
on testing an old copy of a step.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import sys
import textwrap
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


class PatchError(Exception):
    """A patch does not apply to the real source."""


@dataclass(frozen=True)
class Patch:
    module: str  # e.g. "pagemap.removal"
    function: str  # a module-level function of it
    old: str  # exact text in the function's source (decorators included), once
    new: str  # "" with ``old`` ending in a newline: delete those lines


def _raw(fn: Any) -> Any:
    """The function icontract wraps (it keeps it in ``__wrapped__``)."""
    while hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    return fn


def _module_functions(mod: types.ModuleType) -> dict[str, Any]:
    """The functions defined in ``mod`` (decorated or not), by name, as the module
    binds them."""
    g = vars(mod)
    return {n: f for n, f in g.items()
            if isinstance(f, types.FunctionType) and _raw(f).__globals__ is g}


@functools.cache
def _source(fn: Any) -> tuple[str, int]:
    """The function's source, decorators included, dedented, and its first line."""
    lines, first = inspect.getsourcelines(fn)
    return textwrap.dedent("".join(lines)), first


@functools.cache
def _names(fn: Any) -> frozenset[str]:
    """Every name the function's source uses, its contracts' lambdas included."""
    return frozenset(n.id for n in ast.walk(ast.parse(_source(fn)[0])) if isinstance(n, ast.Name))


def _patched_source(fn: Any, where: str, patches: list[Patch]) -> str:
    src = _source(fn)[0]
    for p in patches:
        n = src.count(p.old)
        if n != 1:
            raise PatchError(f"{where}: the text {p.old!r} occurs {n} times in the real "
                             "function (the code changed: review the mutant)")
        at = src.index(p.old)
        start, new = at, p.new
        if not new and p.old.endswith("\n"):
            # Deleting whole lines: they become one `pass` at their indentation, so
            # that a block left empty stays a block.
            start = src.rindex("\n", 0, at) + 1
            indent = src[start:at]
            if indent.strip():
                raise PatchError(f"{where}: {p.old!r} does not start a line")
            new = f"{indent}pass  # MUTATION: deleted\n"
        src = src[:start] + new + src[at + len(p.old):]
    return src


def _is_step_decorator(d: ast.expr) -> bool:
    return (isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute)
            and d.func.attr == "step" and isinstance(d.func.value, ast.Name)
            and d.func.value.id == "CODE")


def _compile(src: str, line: int, filename: str, name: str, g: dict[str, Any]) -> Any:
    try:
        tree = ast.parse(src)
    except SyntaxError as e:
        raise PatchError(f"{name}: the patched source does not parse: {e}") from e
    [fdef] = tree.body
    if not isinstance(fdef, ast.FunctionDef) or fdef.name != name:
        raise PatchError(f"{name}: the patched source is not one function")
    fdef.decorator_list = [d for d in fdef.decorator_list if not _is_step_decorator(d)]
    ast.increment_lineno(tree, line - 1)
    ns: dict[str, Any] = {}
    exec(compile(tree, filename, "exec"), g, ns)  # noqa: S102 -- the model's own source
    return ns[name]


def _modules() -> list[types.ModuleType]:
    return [m for n, m in sorted(sys.modules.items())
            if m is not None and (n == "pagemap" or n.startswith("pagemap."))
            and not n.startswith("pagemap.checker")]


def apply(patches: Iterable[Patch]) -> dict[str, Callable[..., object]]:
    """The steps the patches affect, rebuilt from the patched real source."""
    from pagemap.machine import CODE
    from pagemap.program import build_layout  # noqa: F401 -- registers every step in CODE

    by_fn: dict[tuple[str, str], list[Patch]] = {}
    for p in patches:
        by_fn.setdefault((p.module, p.function), []).append(p)
    if not by_fn:
        raise PatchError("no patch")
    rebuild: dict[int, tuple[types.ModuleType, str, Any]] = {}  # id(original) -> where
    for module, name in by_fn:
        mod = importlib.import_module(module)
        fn = _module_functions(mod).get(name)
        if fn is None:
            raise PatchError(f"{module} has no function {name}")
        rebuild[id(fn)] = (mod, name, fn)
    # Every function that reaches a rebuilt one by name, in any module, until none is added.
    mods = _modules()
    grew = True
    while grew:
        grew = False
        for mod in mods:
            g = vars(mod)
            bound = {n for n, v in g.items() if id(v) in rebuild}
            if not bound:
                continue
            for name, fn in _module_functions(mod).items():
                if id(fn) not in rebuild and _names(fn) & bound:
                    rebuild[id(fn)] = (mod, name, fn)
                    grew = True
    # Compile each into a copy of its module's globals, then bind every rebuilt name
    # in every copy (globals are looked up at call time, so the order does not matter).
    copies: dict[str, dict[str, Any]] = {}
    new: dict[int, Any] = {}
    for key, (mod, name, fn) in rebuild.items():
        g = copies.setdefault(mod.__name__, dict(vars(mod)))
        ps = by_fn.get((mod.__name__, name))
        src = _patched_source(fn, f"{mod.__name__}:{name}", ps) if ps else _source(fn)[0]
        new[key] = _compile(src, _source(fn)[1], inspect.getfile(mod), name, g)
    for mod_name, g in copies.items():
        for n, v in vars(sys.modules[mod_name]).items():
            if id(v) in new:
                g[n] = new[id(v)]
    out: dict[str, Callable[..., object]] = {}
    for name, pc in CODE.by_name.items():
        st = CODE.steps[pc]
        if st is not None and id(st.fn) in new:
            out[name] = new[id(st.fn)]
    if not out:
        raise PatchError("the patches change no step of the program")
    return out

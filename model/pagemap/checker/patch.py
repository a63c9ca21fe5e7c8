"""Source patches of the model's real steps, for mutation tests (spec/mutations.md).

A ``Patch`` names one function of one module of ``pagemap`` and an exact piece of
its source text to replace.  ``apply`` compiles the patched function from the
real module's source, in a copy of that module's globals, and rebuilds every
function of the module that (directly or through another function of the
module) calls it, so that the copies call each other; functions of other
modules that import a patched helper by name are rebuilt against a copy of
their own globals with that name rebound.  The result maps each affected step
(``"function.label"``) to its rebuilt function, for ``Explorer(cfg, replace=...)``.
The modules themselves are never changed, and a patch whose text is not found
exactly once in the real function raises ``PatchError``: a mutant can never go
on testing an old copy of a step.
"""

from __future__ import annotations

import ast
import importlib
import inspect
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
    old: str  # exact text in the function's source, once
    new: str  # "" with ``old`` ending in a newline: delete those lines


def _patched_source(fn: Callable[..., Any], patches: list[Patch]) -> tuple[str, int]:
    src = textwrap.dedent(inspect.getsource(fn))
    for p in patches:
        n = src.count(p.old)
        if n != 1:
            raise PatchError(f"{p.module}:{p.function}: the text {p.old!r} occurs {n} times "
                             "in the real function (the code changed: review the mutant)")
        at = src.index(p.old)
        start, new = at, p.new
        if not new and p.old.endswith("\n"):
            # Deleting whole lines: they become one `pass` at their indentation, so
            # that a block left empty stays a block.
            start = src.rindex("\n", 0, at) + 1
            indent = src[start:at]
            if indent.strip():
                raise PatchError(f"{p.module}:{p.function}: {p.old!r} does not start a line")
            new = f"{indent}pass  # MUTATION: deleted\n"
        src = src[:start] + new + src[at + len(p.old):]
    return src, inspect.getsourcelines(fn)[1]


def _compile(src: str, line: int, filename: str, name: str, g: dict[str, Any]) -> Any:
    tree = ast.parse(src)
    [fdef] = tree.body
    if not isinstance(fdef, ast.FunctionDef) or fdef.name != name:
        raise PatchError(f"{name}: the patched source is not one function")
    fdef.decorator_list = []  # the real step is registered already; this is its body
    ast.increment_lineno(tree, line - 1)
    ns: dict[str, Any] = {}
    exec(compile(tree, filename, "exec"), g, ns)  # noqa: S102 -- the model's own source
    return ns[name]


def _rebind(fn: Any, g: dict[str, Any]) -> Any:
    new = types.FunctionType(fn.__code__, g, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__qualname__, new.__doc__, new.__module__ = fn.__qualname__, fn.__doc__, fn.__module__
    return new


def _callers(functions: dict[str, Any], changed: set[str]) -> set[str]:
    """Names of the module's functions that reach a changed one through calls by name."""
    out = set(changed)
    grew = True
    while grew:
        grew = False
        for name, fn in functions.items():
            if name not in out and out & set(fn.__code__.co_names):
                out.add(name)
                grew = True
    return out


def _module_functions(mod: types.ModuleType) -> dict[str, Any]:
    return {n: f for n, f in vars(mod).items()
            if isinstance(f, types.FunctionType) and f.__globals__ is vars(mod)}


def apply(patches: Iterable[Patch]) -> dict[str, Callable[..., object]]:
    """The steps the patches affect, rebuilt from the patched real source."""
    from pagemap.machine import CODE
    from pagemap.program import build_layout  # noqa: F401 -- registers every step in CODE

    by_fn: dict[tuple[str, str], list[Patch]] = {}
    for p in patches:
        by_fn.setdefault((p.module, p.function), []).append(p)
    if not by_fn:
        raise PatchError("no patch")
    # originals (function objects) -> their replacements, module by module
    replaced: dict[int, Any] = {}
    rebuilt: dict[int, Any] = {}
    for module in sorted({m for m, _ in by_fn}):
        mod = importlib.import_module(module)
        funcs = _module_functions(mod)
        g = dict(vars(mod))
        new: dict[str, Any] = {}
        for (m, name), ps in by_fn.items():
            if m != module:
                continue
            if name not in funcs:
                raise PatchError(f"{module} has no function {name}")
            src, line = _patched_source(funcs[name], ps)
            new[name] = _compile(src, line, inspect.getfile(mod), name, g)
        for name in _callers(funcs, set(new)) - set(new):
            new[name] = _rebind(funcs[name], g)
        g.update(new)
        for name, fn in new.items():
            replaced[id(funcs[name])] = fn
            rebuilt[id(funcs[name])] = fn
    # other modules that call a replaced function by an imported name
    originals = {id(st.fn): st.fn for st in CODE.steps if st is not None}
    for mod_name in sorted({f.__module__ for f in originals.values()}):
        mod = importlib.import_module(mod_name)
        bound = {n for n, v in vars(mod).items() if id(v) in replaced}
        if not bound:
            continue
        funcs = _module_functions(mod)
        g = dict(vars(mod))
        g.update({n: replaced[id(vars(mod)[n])] for n in bound})
        for name in _callers(funcs, bound) - bound:
            if id(funcs[name]) not in rebuilt:
                rebuilt[id(funcs[name])] = _rebind(funcs[name], g)
    out: dict[str, Callable[..., object]] = {}
    for name, pc in CODE.by_name.items():
        st = CODE.steps[pc]
        if st is not None and id(st.fn) in rebuilt:
            out[name] = rebuilt[id(st.fn)]
    if not out:
        raise PatchError("the patches change no step of the program")
    return out

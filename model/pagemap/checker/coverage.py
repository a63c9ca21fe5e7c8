"""Coverage of a search (`pagemap check --coverage`): which steps of each
thread's ops ran, how often, and which were never reached -- SPIN's
"unreached in proctype" and TLC's per-action counts.

Not a model of any C function.  It is a separate pass over the states the
explorer stored, run only when asked, so the search loop is the same with
coverage off.  From every stored state it runs each thread's transition again,
recorded (the step and the local steps merged after it), and counts:

- a *step* as reached when some transition ran it;
- a *branch* ``A -> B`` as taken when B ran (or was the thread's next step)
  right after A.  The branches a step can take are the step names its code
  jumps to (``t.goto``, the PTE and VMR loop helpers, the entry of a
  ``t.call``), read from its source; returns and the start of the next op are
  counted when taken but are not listed as possible.

The steps of a thread are those of the functions its ops can run (its call
graph, ``pagemap.program.OP_FUNCTIONS``).  Steps only a fix runs (such as
``shootdown_and_reset.wait``) are unreached on variants without that fix, as
they should be.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import textwrap
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pagemap.checker.explore import Explorer
from pagemap.machine import CODE, DONE_PC, Step, Violation
from pagemap.program import thread_functions


@cache
def possible_branches(name: str) -> frozenset[str]:
    """The steps the code of step ``name`` names as where it goes next."""
    st = CODE.steps[CODE.pc(name)]
    assert st is not None
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(st.fn)))
    except (OSError, TypeError, SyntaxError):
        return frozenset()
    out: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        args = node.args
        if isinstance(node.func, ast.Attribute) and node.func.attr == "call":
            args = args[:1]  # t.call(entry, ret): ret runs only after the callee returns
        for a in args:
            if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value in CODE.by_name:
                out.add(a.value)
    return frozenset(out)


def _name(st: Step) -> str:
    return f"{st.func}.{st.label}"


@dataclass
class ThreadCoverage:
    thread: str
    about: str
    steps: dict[str, int]  # every step of the thread's functions -> transitions that ran it
    branches: dict[str, int]  # "A -> B" -> times taken (possible ones listed even when 0)

    @property
    def unreached(self) -> list[str]:
        return [s for s, n in self.steps.items() if n == 0]

    @property
    def untaken(self) -> list[str]:
        return [b for b, n in self.branches.items() if n == 0]

    def to_json(self) -> dict[str, Any]:
        return {"ops": self.about, "steps": self.steps, "unreached": self.unreached,
                "branches": self.branches, "unreached_branches": self.untaken}


@dataclass
class Coverage:
    states: int  # stored states the pass went over
    threads: list[ThreadCoverage]
    flushes: dict[str, int] = field(default_factory=dict)  # core -> flushes landed

    def to_json(self) -> dict[str, Any]:
        return {"states": self.states,
                "threads": {tc.thread: tc.to_json() for tc in self.threads},
                "flushes": self.flushes}


def measure(ex: Explorer, states: Iterable[tuple[int, ...]]) -> Coverage:
    """Coverage of the transitions out of ``states`` (the explorer's stored ones)."""
    from pagemap.checker.values import thread_lines

    layout = ex.layout
    cfg = ex.cfg
    funcs = thread_functions(cfg)
    ran: list[Counter[int]] = [Counter() for _ in cfg.threads]
    took: list[Counter[tuple[int, int]]] = [Counter() for _ in cfg.threads]
    flushes: Counter[int] = Counter()
    n = 0
    for s in states:
        n += 1
        for t in range(len(cfg.threads)):
            base = layout.thread0[t]
            if s[base] == DONE_PC:
                continue
            for branch in (0, 1):  # a step with two outcomes (pagemap.alloc) runs twice
                try:
                    r = ex.run_thread(s, t, branch)
                except Violation:
                    ran[t][s[base]] += 1
                    break
                chose = ex.chose
                if r is not None:
                    nxt, mv = r
                    for pc in mv.pcs:
                        ran[t][pc] += 1
                    for a, b in itertools.pairwise(mv.pcs + [nxt[base]]):
                        if b != DONE_PC:
                            took[t][(a, b)] += 1
                if not chose:
                    break
        for c in layout.flush:
            if ex.run_flush(s, c) is not None:
                flushes[c] += 1
    threads = []
    about = dict(thread_lines(cfg))
    for t, th in enumerate(cfg.threads):
        mine = [st for st in layout.code.steps[1:]
                if st is not None and (funcs is None or st.func in funcs[t])]
        steps = {_name(st): ran[t][st.pc] for st in mine}
        branches: dict[str, int] = {}
        for st in mine:
            for target in sorted(possible_branches(_name(st))):
                branches[f"{_name(st)} -> {target}"] = 0
        for (a, b), k in sorted(took[t].items()):
            sa, sb = layout.steps[a], layout.steps[b]
            assert sa is not None and sb is not None
            branches[f"{_name(sa)} -> {_name(sb)}"] = k
        threads.append(ThreadCoverage(th.name, about[th.name], steps, branches))
    return Coverage(n, threads, {cfg.cores[c].name: k for c, k in sorted(flushes.items())})


def _grouped(names: list[str]) -> str:
    """'f.a, f.b, g.c' as 'f.{a, b}, g.c'."""
    by: dict[str, list[str]] = {}
    for name in names:
        func, _, label = name.partition(".")
        by.setdefault(func, []).append(label)
    return ", ".join(f"{f}.{ls[0]}" if len(ls) == 1 else f"{f}.{{{', '.join(ls)}}}"
                     for f, ls in by.items())


def _branches(branches: list[str]) -> str:
    """'f.a -> f.b; f.a -> g.c' as 'f.a -> {b, g.c}' (a target in the same function
    by its label alone)."""
    by: dict[str, list[str]] = {}
    for b in branches:
        a, _, t = b.partition(" -> ")
        same = t.partition(".")[0] == a.partition(".")[0]
        by.setdefault(a, []).append(t.partition(".")[2] if same else t)
    return "; ".join(f"{a} -> {ts[0]}" if len(ts) == 1 else f"{a} -> {{{', '.join(ts)}}}"
                     for a, ts in by.items())


def render(cov: Coverage, width: int = 100) -> str:
    from pagemap.checker.trace import wrap

    lines = wrap(f"coverage over {cov.states:,} stored states (steps of each thread's ops; a "
                 "step is reached when some transition ran it):", 0, width)
    for tc in cov.threads:
        reached = len(tc.steps) - len(tc.unreached)
        taken = len(tc.branches) - len(tc.untaken)
        lines.append(f"  {tc.thread} ({tc.about}): {reached} of {len(tc.steps)} steps reached, "
                     f"{taken} of {len(tc.branches)} branches taken")
        if tc.unreached:
            lines += wrap("never reached: " + _grouped(tc.unreached), 4, width)
        if tc.untaken:
            lines += wrap("branches never taken: " + _branches(tc.untaken), 4, width)
    if cov.flushes:
        lines.append("  TLB flushes landed: " + ", ".join(
            f"{k} on core {c}" for c, k in cov.flushes.items()))
    return "\n".join(lines)

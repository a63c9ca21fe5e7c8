"""The findings against the 2014 code that the checker reproduces, with the
scenario and variant that show each alone.  spec/findings.md tells each one
in prose; tests/test_spec.py runs every entry here and checks spec/ names it.

`python -m pagemap.checker.findings` prints each finding's shortest trace in
the compact form used in spec/findings.md; with ``--write`` it rewrites those
blocks of spec/findings.md in place (tests/test_spec.py checks they are current)."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from pagemap.checker.explore import Explorer, Outcome
from pagemap.checker.scenario import load
from pagemap.checker.suite import SCENARIO_DIR
from pagemap.checker.trace import TraceStep, build, initial_state_of
from pagemap.checker.values import describe_initial, notes_for, numbering

FINDINGS_MD = SCENARIO_DIR.parent / "spec" / "findings.md"


@dataclass(frozen=True)
class Finding:
    id: str
    title: str
    fix: str  # the named fix (pagemap.config.FIXES) that repairs it
    scenario: str  # file name in scenarios/
    invariant: str  # what the isolated run violates

    @property
    def path(self) -> Path:
        return SCENARIO_DIR / self.scenario

    @property
    def isolated_variant(self) -> str:
        """Every other fix on: the trace shows this finding and nothing else."""
        return f"fixed-without-{self.fix}"


FINDINGS = (
    Finding("F1", "Plain read-modify-write of a PTE loses the CPU's dirty bit",
            "atomic-pte-update", "finding-dirty-bit-rmw.toml", "no-lost-write"),
    Finding("F2", "The remover reads dirty bits before the TLB shootdown has landed",
            "removal-shootdown-wait", "finding-async-shootdown.toml", "no-use-after-free"),
    Finding("F3", "VMRs that map the range but not its first page are skipped",
            "removal-vmr-overlap", "finding-vmr-inside-range.toml", "no-use-after-free"),
    Finding("F4", "munmap drops PTE_D of shared pages",
            "munmap-fold-dirty", "finding-munmap-drops-dirty.toml", "no-lost-write"),
    Finding("F5", "munmap frees private pages before the TLB shootdown has landed",
            "munmap-shootdown-wait", "finding-munmap-async-private.toml", "no-use-after-free"),
    Finding("F6", "The shootdown of a single-core process flushes the remover's core, not the "
            "process's", "shootdown-scp-remote", "finding-scp-shootdown.toml",
            "no-use-after-free"),
    Finding("F7", "The page-fault path sleeps in lock_page holding vmr_lock",
            "hpf-load-unlocked", "finding-hpf-sleeps-holding-vmr-lock.toml",
            "sleep-holding-spinlock"),
    Finding("F8", "pm_remove_contig ignores writepage's failure and frees the dirty page",
            "removal-writeback-error", "finding-kfs-writeback.toml", "no-lost-write"),
    Finding("F9", "read() and write() assert that pm_load_page cannot fail",
            "fileio-enomem", "finding-fileio-enomem.toml", "kernel-assert"),
    Finding("F10", "split_vmr shrinks a VMR that pm_remove_contig is walking",
            "split-vmr-under-pm-lock", "finding-split-unpublished.toml", "kernel-assert"),
    Finding("F11", "The third pass trusts vm_prot, but mprotect keeps PTE_D",
            "removal-fold-always", "finding-mprotect-keeps-dirty.toml", "no-lost-write"),
    Finding("F12", "mprotect to a VMR's own protection loops forever",
            "mprotect-advance", "finding-mprotect-livelock.toml", "livelock"),
    Finding("F13", "A failed MAP_POPULATE leaves the PTEs it filled behind",
            "populate-unmap-on-error", "finding-populate-error.toml", "no-use-after-free"),
    Finding("F14", "mmap puts a VMR on pm_vmrs before its file offset is set",
            "mmap-foff-first", "finding-mmap-foff-window.toml", "kernel-assert"),
)


def isolated_trace(f: Finding) -> tuple[list[TraceStep], Outcome, Explorer]:
    cfg = load(f.path, f.isolated_variant)
    ex = Explorer(cfg)
    out = ex.explore(progress=False)
    return build(ex.layout, out), out, ex


def _cell(text: str) -> str:
    return text.strip().replace("|", "\\|")


def compact(steps: list[TraceStep]) -> str:
    """The steps that changed shared state, as a markdown table."""
    rows = ["| # | thread | step | C statement (as this variant runs it) | changed |",
            "| --- | --- | --- | --- | --- |"]
    for n, st in enumerate(steps, 1):
        if not st.changed and not st.notes and not st.violation:
            continue
        ch = "; ".join(f"{k}: {v}" for k, v in st.changed.items())
        ch += "".join(f" ({x})" for x in st.notes)
        if st.violation:
            ch += f" **{st.violation}**"
        stmt = st.step.split(": ", 1)[-1]
        rows.append(f"| {n} | {st.thread} | `{st.where}` | {_cell(stmt)} | {_cell(ch)} |")
    return "\n".join(rows)


def section(f: Finding) -> str:
    """The "Shortest trace" block of spec/findings.md for one finding."""
    steps, out, ex = isolated_trace(f)
    init = initial_state_of(out)
    head = (f"**Shortest trace** (`pagemap check scenarios/{f.scenario} --variant "
            f"{f.isolated_variant}`: {out.states} states, {len(steps)} steps; rows that change "
            "no shared state are left out; generated by `python -m pagemap.checker.findings "
            "--write`):")
    lines = [head, ""]
    if init is not None:
        lines.append("Initial state: " + "; ".join(describe_initial(ex.layout, init)) + ".")
        lines.append("")
        lines.append("Names: " + "; ".join(numbering(ex.layout)) + ".")
        lines.append("")
    lines.append(compact(steps))
    notes = notes_for(ex.layout, [(k, v) for st in steps for k, ab in st.values.items()
                                  for v in ab])
    if notes:
        lines.append("")
        lines += [f"- {n}." for n in notes]
    return "\n".join(lines)


BLOCK = re.compile(r"^\*\*Shortest trace\*\*.*?(?=\n\n(?!\||- |Initial state|Names)|\Z)",
                   re.MULTILINE | re.DOTALL)


SUMMARY_HEAD = ("| id | finding | fix | scenario | seed | fixed | fixed without the fix |\n"
                "| --- | --- | --- | --- | --- | --- | --- |\n")
SUMMARY = re.compile(re.escape(SUMMARY_HEAD) + r"(?:\|[^\n]*\n)*")


def _result(f: Finding, variant: str) -> str:
    out = Explorer(load(f.path, variant), contracts=False).explore(progress=False)
    inv = f" {out.invariant}" if out.invariant else ""
    return f"{out.verdict}{inv} ({out.states:,} states)"


def summary_table() -> str:
    """The table at the top of spec/findings.md: each finding on seed, fixed and
    fixed-without-its-fix."""
    rows = [f"| {f.id} | {f.title} | `{f.fix}` | `scenarios/{f.scenario}` | "
            f"{_result(f, 'seed')} | {_result(f, 'fixed')} | {_result(f, f.isolated_variant)} |"
            for f in FINDINGS]
    return SUMMARY_HEAD + "\n".join(rows) + "\n"


def rewrite(text: str) -> str:
    """spec/findings.md with the summary table and each finding's trace block
    regenerated."""
    text, n = SUMMARY.subn(lambda _m: summary_table(), text, count=1)
    if n != 1:
        raise ValueError("spec/findings.md has no summary table")
    parts = re.split(r"^(## F\d+\. [^\n]*\n)", text, flags=re.MULTILINE)
    by_id = {f.id: f for f in FINDINGS}
    for i in range(1, len(parts), 2):
        fid = parts[i][3:].split(".", 1)[0]
        if fid in by_id:
            parts[i + 1], n = BLOCK.subn(lambda _m, f=by_id[fid]: section(f), parts[i + 1],
                                         count=1)
            if n != 1:
                raise ValueError(f"spec/findings.md: {fid} has no **Shortest trace** block")
    return "".join(parts)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        FINDINGS_MD.write_text(rewrite(FINDINGS_MD.read_text()))
        print(f"rewrote the summary table and the trace blocks of {FINDINGS_MD}")
    else:
        for f in FINDINGS:
            print(f"### {f.id} ({f.isolated_variant})\n")
            print(section(f))
            print()

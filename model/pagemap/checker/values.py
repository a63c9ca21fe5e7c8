"""How the checker shows the values of a state to people, and what the
numbers in a trace mean.

Not a model of any C function.  One numbering runs through every trace:

- ``slot[i]``, ``store[i]``, ``last_write[i]``: file page i (the page map's
  radix slot of index i, the backing store's copy of page i, the ghost record
  of the last value written to page i);
- ``pageN`` (N = 1 .. pool_pages): physical page N, the page whose ppn is N;
  ``pageN.kref`` ... are the fields of its struct page; a slot word, a PTE and
  a TLB entry name the page they point to the same way (``page2``);
- ``v1+k``: page k of VMR v1, i.e. file page ``v1.file_page + k``;
  ``v1.pte[k]`` is its PTE and ``u1.tlb[v1+k]`` thread u1's core's TLB entry
  for it.
"""

from __future__ import annotations

from pagemap.config import Config, Op
from pagemap.machine import PROC_STATE_NAMES, Layout, tlb_dirty, tlb_ppn, tlb_writable
from pagemap.pageflags import PGSHIFT, PTE_D, PTE_P, PTE_W, pg_names, pte2ppn
from pagemap.slot import PAGE2PPN_NULL, flags_shift, refcnt_shift
from pagemap.vmr import MAP_LOCKED, MAP_POPULATE, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE

#: What a trace's footnotes say about a kind of value, when one appears.
NOTE_NULL = ("page2ppn(NULL): the slot word pm_slot_set_page(old, NULL) leaves in "
             "pm_remove_contig's final loop. page2ppn(NULL) is not 0, so it also sets bits "
             "above the ppn field, which read as a refcount (spec/slot.md, F-SLOT-NULL)")
NOTE_INITIAL = ("negative data: the file's contents before any write; file page i holds "
                "-(i+1) (so -1 is page 0's); every write op stores a fresh positive value")
NOTE_WRITE = ("positive data: the value a write op stored, 100 * thread number + op number "
              "(101: the first thread's first op, 203: the second thread's third op)")


def _null_ppn(bits: int) -> int:
    return PAGE2PPN_NULL[bits] & ((1 << flags_shift(bits)) - 1)


def is_null_word(w: int, bits: int) -> bool:
    """Does the slot word carry page2ppn(NULL) (pm_slot_set_page(old, NULL))?"""
    null = PAGE2PPN_NULL[bits] & ((1 << bits) - 1)
    return w != 0 and w & null == null and w & ((1 << flags_shift(bits)) - 1) == _null_ppn(bits)


def fmt_slot(w: int, bits: int) -> str:
    if w == 0:
        return "0"
    ref = w >> refcnt_shift(bits)
    rm = (w >> flags_shift(bits)) & 1
    ppn = w & ((1 << flags_shift(bits)) - 1)
    page = "page2ppn(NULL)" if is_null_word(w, bits) else f"page{ppn}" if ppn else "no page"
    return f"ref={ref}{' REMOVAL' if rm else ''} {page}"


def fmt_pte(pte: int) -> str:
    """A PTE: 'page3 P|W|D' (the page it maps, its bits), or '0'."""
    if pte == 0:
        return "0"
    bits = [n for b, n in ((PTE_P, "P"), (PTE_W, "W"), (PTE_D, "D")) if pte & b]
    return f"page{pte2ppn(pte)} " + ("|".join(bits) if bits else "!P")


def _bits(value: int, names: tuple[tuple[int, str], ...]) -> str:
    out = [n for b, n in names if value & b]
    return "|".join(out) if out else "0"


_VM_FLAGS = ((MAP_SHARED, "SHARED"), (MAP_PRIVATE, "PRIVATE"), (MAP_LOCKED, "LOCKED"),
             (MAP_POPULATE, "POPULATE"))
_VM_PROT = ((PROT_READ, "READ"), (PROT_WRITE, "WRITE"))


def fmt_value(layout: Layout, name: str, value: int) -> str:
    if name.startswith("slot["):
        return fmt_slot(value, layout.cfg.word_bits)
    owner, _, field = name.rpartition(".")
    if owner in layout.rec_name:  # a VMR record's field
        if field in ("base", "end"):
            return f"vpn {value >> PGSHIFT:#x}" if value else "0"
        if field == "foff":
            return f"file page {value >> PGSHIFT}"
        if field == "flags":
            return _bits(value, _VM_FLAGS)
        if field == "prot":
            return _bits(value, _VM_PROT)
        if field == "on_pm":
            return f"#{value} on pm_vmrs" if value else "not on pm_vmrs"
        return str(value)
    if field == "flags":
        return pg_names(value)
    if ".pte[" in name:
        return fmt_pte(value)
    if ".tlb[" in name:
        if not value:
            return "-"
        return (f"page{tlb_ppn(value)}{' dirty' if tlb_dirty(value) else ''}"
                f"{'' if tlb_writable(value) else ' read-only'}")
    if name.endswith("_lock") or field == "occ" or field == "inkern":
        return "free" if value == 0 else f"held by {layout.cfg.threads[value - 1].name}"
    if field == "cpu":
        return "user mode" if value == 0 else f"kernel on {layout.cfg.cores[value - 1].name}"
    if field == "state" and owner in {p.name for p in layout.cfg.processes}:
        return PROC_STATE_NAMES.get(value, str(value))
    if name.endswith(".holds"):
        return "-" if value == 0 else f"slot {value - 1}"
    return str(value)


def shown(layout: Layout, k: int) -> bool:
    """Shared state and the ghost 'holds'; not program counters or registers."""
    for base, size in zip(layout.thread0, layout.thread_sizes, strict=True):
        if base <= k < base + size:
            return k - base == layout.fixed_reg["holds"]
    return True


def is_data(name: str) -> bool:
    return name.startswith(("store[", "last_write[")) or name.endswith(".data")


def notes_for(layout: Layout, names_values: list[tuple[str, int]]) -> list[str]:
    """The footnotes the values shown call for, in a fixed order."""
    bits = layout.cfg.word_bits
    out = []
    if any(n.startswith("slot[") and is_null_word(v, bits) for n, v in names_values):
        out.append(NOTE_NULL)
    data = [v for n, v in names_values if is_data(n)]
    if any(v < 0 for v in data):
        out.append(NOTE_INITIAL)
    if any(v > 0 for v in data):
        out.append(NOTE_WRITE)
    return out


def state_values(layout: Layout, state: tuple[int, ...]) -> dict[str, str]:
    """Every shared value of a state (and each thread's held slot), by name."""
    return {layout.names[k]: fmt_value(layout, layout.names[k], v)
            for k, v in enumerate(state) if shown(layout, k)}


def numbering(layout: Layout) -> list[str]:
    """How the names of a trace are numbered, for this scenario."""
    cfg = layout.cfg
    out = [(f"slot[i], store[i], last_write[i]: file page i (0..{cfg.file_pages - 1}); "
            f"pageN: physical page N, the one whose ppn is N (1..{cfg.pool_pages}), named so in "
            "slots, PTEs and TLBs")]
    for vmr in cfg.vmrs:
        proc = cfg.processes[vmr.proc].name
        out.append(f"{vmr.name}+k: page k of VMR {vmr.name} as declared ({proc}), file page "
                   f"{vmr.first_idx} + k; {proc}.pte[{vmr.name}+k] is its PTE, "
                   f"CORE.tlb[{vmr.name}+k] a core's TLB entry for it")
    return out


def describe_initial(layout: Layout, state: tuple[int, ...]) -> list[str]:
    """The starting state in a few lines: what is cached where, the file's
    contents, what each VMR maps and which PTEs are present."""
    cfg = layout.cfg
    m = {layout.names[k]: v for k, v in enumerate(state)}
    lines = [f"thread {name}: {about}" for name, about in thread_lines(cfg)]
    store = ", ".join(f"store[{i}] = {m[f'store[{i}]']}" for i in range(cfg.file_pages))
    lines.append(f"file: {cfg.file_pages} page(s), {store} (initial contents -(i+1))")
    cached = [i for i in range(cfg.file_pages) if m[f"slot[{i}]"]]
    if cached:
        parts = [f"slot[{i}] = {fmt_slot(m[f'slot[{i}]'], cfg.word_bits)}" for i in cached]
        lines.append(f"page cache: {', '.join(parts)}; pm_num_pages = {m['pm_num_pages']}")
    else:
        lines.append("page cache: empty")
    used, free = [], []
    for ppn in range(1, cfg.pool_pages + 1):
        if not m[f"page{ppn}.kref"]:
            free.append(f"page{ppn}")
            continue
        flags = m[f"page{ppn}.flags"]
        what = (f"file page {m[f'page{ppn}.index']} in the page cache" if flags
                else "a private copy")
        used.append(f"page{ppn}: {what}, kref {m[f'page{ppn}.kref']}, "
                    f"flags {pg_names(flags)}, data {m[f'page{ppn}.data']}")
    lines += used
    if free:
        lines.append(f"free pages: {', '.join(free)}")
    for r, name in enumerate(layout.rec_name):
        proc = cfg.processes[layout.rec_proc[r]].name
        if not m[f"{name}.alive"]:
            if name in {v.name for v in cfg.vmrs}:
                lines.append(f"{proc}: VMR {name} not mapped yet (an mmap op creates it)")
            continue
        first = m[f"{name}.foff"] >> PGSHIFT
        n = (m[f"{name}.end"] - m[f"{name}.base"]) >> PGSHIFT
        maps = f"file pages {first}..{first + n - 1}" if n > 1 else f"file page {first}"
        kinds = _bits(m[f"{name}.flags"], _VM_FLAGS).lower().replace("|", ", ")
        lines.append(f"{proc}: VMR {name} maps {maps} ({kinds})")
    for p, offs in enumerate(layout.pte_off):
        ptes = [f"{layout.names[off]} = {fmt_pte(state[off])}" for off in offs.values()
                if state[off]]
        if ptes:
            lines.append(f"{cfg.processes[p].name}: " + "; ".join(ptes)
                         + " (prefaulted, TLBs cold)")
    return lines


def op_text(cfg: Config, op: Op) -> str:
    """One op of a thread, as a scenario file would say it."""
    vmr = cfg.vmrs[op.vmr].name if op.vmr >= 0 else ""
    part = f"[{op.page}:{op.page + op.pages}]" if op.pages else ""
    if op.op in ("write", "read"):
        return f"{op.op} {vmr}[{op.page}]"
    if op.op in ("munmap", "mmap"):
        return f"{op.op} {vmr}{part}"
    if op.op == "mprotect":
        return f"mprotect {vmr}{part} {_bits(op.prot, _VM_PROT).lower()}"
    if op.op == "exit":
        return "exit"
    if op.op == "remove":
        return f"remove({op.index}, {op.count})"
    return f"{op.op}({op.index})"


def thread_lines(cfg: Config) -> list[tuple[str, str]]:
    """(thread, "process: its ops") for each thread."""
    out = []
    for th in cfg.threads:
        where = cfg.processes[th.proc].name + ": " if th.proc >= 0 else "kernel: "
        out.append((th.name, where + ", ".join(op_text(cfg, op) for op in th.ops)))
    return out

"""struct page's pg_flags bits (kern/include/page_alloc.h) and the PTE bits
(kern/arch/x86/ros/mmu64.h) the protocol reads, with the pure helpers the model
uses on them."""

from __future__ import annotations

import icontract

PG_LOCKED = 0x001
PG_UPTODATE = 0x002
PG_DIRTY = 0x004
PG_BUFFER = 0x008
PG_PAGEMAP = 0x010
PG_REMOVAL = 0x020  # new in the seed: pm_remove_contig's working mark

PG_ALL = PG_LOCKED | PG_UPTODATE | PG_DIRTY | PG_BUFFER | PG_PAGEMAP | PG_REMOVAL

PG_NAMES = {
    PG_LOCKED: "LOCKED",
    PG_UPTODATE: "UPTODATE",
    PG_DIRTY: "DIRTY",
    PG_BUFFER: "BUFFER",
    PG_PAGEMAP: "PAGEMAP",
    PG_REMOVAL: "REMOVAL",
}

# x86 PTE bits.  The model keeps a PTE as the real word: (ppn << 12) | bits.
PTE_P = 0x001
PTE_W = 0x002
PTE_U = 0x004
PTE_D = 0x040
PGSHIFT = 12
PTE_USER_RW = PTE_W | PTE_U
PTE_USER_RO = PTE_U
PTE_PERM = PTE_W | PTE_U


def is_flags(f: int) -> bool:
    return 0 <= f <= PG_ALL


@icontract.require(lambda flags, bit: is_flags(flags) and bit in PG_NAMES)
@icontract.ensure(lambda bit, result: result & bit)
@icontract.ensure(lambda flags, bit, result: result & ~bit == flags & ~bit)
def pg_set(flags: int, bit: int) -> int:
    """atomic_or(&page->pg_flags, bit), as a pure function of the old value."""
    return flags | bit


@icontract.require(lambda flags, bit: is_flags(flags) and bit in PG_NAMES)
@icontract.ensure(lambda bit, result: not result & bit)
@icontract.ensure(lambda flags, bit, result: result & ~bit == flags & ~bit)
def pg_clear(flags: int, bit: int) -> int:
    """atomic_and(&page->pg_flags, ~bit), as a pure function of the old value."""
    return flags & ~bit


def pg_names(flags: int) -> str:
    """PG flags for people: 'UPTODATE|DIRTY', or '0'."""
    names = [n for b, n in PG_NAMES.items() if flags & b]
    return "|".join(names) if names else "0"


@icontract.require(lambda ppn, bits: ppn >= 0 and 0 <= bits <= 0xFFF)
@icontract.ensure(lambda ppn, result: pte2ppn(result) == ppn)
@icontract.ensure(lambda bits, result: result % (1 << PGSHIFT) == bits, "every flag bit is kept")
def make_pte(ppn: int, bits: int) -> int:
    """PTE(ppn, flags) = (ppn << 12) | (flags & 0xfff)."""
    return (ppn << PGSHIFT) | (bits & 0xFFF)


def pte2ppn(pte: int) -> int:
    """PTE2PPN(pte) = pte >> 12."""
    return pte >> PGSHIFT


def pte_names(pte: int) -> str:
    """A PTE for people: 'ppn3 P|W|D', or '0'."""
    if pte == 0:
        return "0"
    bits = [n for b, n in ((PTE_P, "P"), (PTE_W, "W"), (PTE_D, "D")) if pte & b]
    return f"ppn{pte2ppn(pte)} " + ("|".join(bits) if bits else "!P")

"""struct vm_region (kern/include/mm.h) and the seed's VMR index helpers
(kern/src/pagemap.c: vmr_has_page_idx, vmr_idx_to_va, vmr_get_end_idx, and
the range vmr_for_each walks).

Addresses and the file offset are in bytes, as in the C; PGSHIFT = 12.  A
scenario *declares* VMRs (their geometry); during a run the struct
vm_region instances are records in the state vector whose fields change
under the owning process's vmr_lock (mmap, split_vmr, merge_vmr, mprotect,
destroy_vmr).  The helpers below take a ``VMR`` value: the declared one, or
the fields of a record as a thread reads them (``Machine.vmr``)."""

from __future__ import annotations

from dataclasses import dataclass

import icontract

from pagemap.pageflags import PGSHIFT

PGSIZE = 1 << PGSHIFT

PROT_NONE = 0x0
PROT_READ = 0x1
PROT_WRITE = 0x2
PROT_EXEC = 0x4
MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_LOCKED = 0x2000
MAP_POPULATE = 0x8000

#: The fields of a VMR record in the state vector, in order.  ``alive``: on the
#: process's VMR list; ``on_pm``: its position on pm->pm_vmrs (1 = head), 0 when
#: not on it; ``file``: vm_file is set (``__do_mmap`` sets it after pm_add_vmr).
VMR_FIELDS = ("alive", "on_pm", "base", "end", "foff", "prot", "flags", "file")


def is_page_aligned(x: int) -> bool:
    return x >= 0 and x % PGSIZE == 0


@dataclass(frozen=True)
class VMR:
    """The fields of struct vm_region the protocol reads."""

    name: str
    proc: int  # vm_proc, as a process number
    vm_base: int  # bytes, page aligned
    vm_end: int  # bytes, page aligned, > vm_base
    vm_foff: int  # bytes, page aligned
    vm_prot: int
    vm_flags: int

    @property
    def npages(self) -> int:
        return (self.vm_end - self.vm_base) >> PGSHIFT

    @property
    def first_idx(self) -> int:
        return self.vm_foff >> PGSHIFT

    @property
    def base_vpn(self) -> int:
        return self.vm_base >> PGSHIFT

    @property
    def end_vpn(self) -> int:
        return self.vm_end >> PGSHIFT

    def idx_of(self, vpn: int) -> int:
        """The file page this VMR maps at virtual page ``vpn`` (the page-fault
        path's f_idx = (va - vm_base + vm_foff) >> PGSHIFT)."""
        return ((vpn << PGSHIFT) - self.vm_base + self.vm_foff) >> PGSHIFT


def vmr_ok(vmr: VMR) -> bool:
    return (
        is_page_aligned(vmr.vm_base)
        and is_page_aligned(vmr.vm_end)
        and is_page_aligned(vmr.vm_foff)
        and vmr.vm_base < vmr.vm_end
    )


@icontract.require(lambda vmr: vmr_ok(vmr))
@icontract.require(lambda pg_idx: pg_idx >= 0)
@icontract.ensure(
    lambda vmr, pg_idx, result: result == (vmr.first_idx <= pg_idx < vmr.first_idx + vmr.npages)
)
def vmr_has_page_idx(vmr: VMR, pg_idx: int) -> bool:
    """vmr_has_page_idx: does the VMR map file page pg_idx?"""
    nr_pgs = (vmr.vm_end - vmr.vm_base) >> PGSHIFT
    start_pg = vmr.vm_foff >> PGSHIFT
    return start_pg <= pg_idx < start_pg + nr_pgs


@icontract.require(lambda vmr: vmr_ok(vmr))
@icontract.require(
    lambda vmr, pg_idx: vmr_has_page_idx(vmr, pg_idx),
    "the C asserts va < vm_end; callers pass an index the VMR maps",
)
@icontract.ensure(lambda vmr, result: vmr.vm_base <= result < vmr.vm_end)
@icontract.ensure(lambda result: is_page_aligned(result))
@icontract.ensure(
    lambda vmr, pg_idx, result: (result - vmr.vm_base) >> PGSHIFT == pg_idx - vmr.first_idx,
    "file page pg_idx is as many pages into the VMR as it is past vm_foff",
)
def vmr_idx_to_va(vmr: VMR, pg_idx: int) -> int:
    """vmr_idx_to_va: the user address at which the VMR maps file page pg_idx."""
    va = vmr.vm_base + ((pg_idx << PGSHIFT) - vmr.vm_foff)
    assert va < vmr.vm_end
    return va


@icontract.require(lambda vmr: vmr_ok(vmr))
@icontract.ensure(lambda vmr, result: result == vmr.first_idx + vmr.npages)
def vmr_get_end_idx(vmr: VMR) -> int:
    """vmr_get_end_idx: one past the last file page the VMR maps."""
    return ((vmr.vm_end - vmr.vm_base) + vmr.vm_foff) >> PGSHIFT


@icontract.require(lambda vmr: vmr_ok(vmr))
@icontract.require(lambda vmr, pg_idx: vmr_has_page_idx(vmr, pg_idx))
@icontract.require(lambda max_nr_pgs: max_nr_pgs > 0)
@icontract.ensure(lambda result: len(result) > 0)
@icontract.ensure(
    lambda vmr, pg_idx, max_nr_pgs, result: result == list(
        range(pg_idx, min(pg_idx + max_nr_pgs, vmr.first_idx + vmr.npages))),
    "consecutive pages from pg_idx, to the VMR's end or max_nr_pgs pages",
)
def vmr_for_each_range(vmr: VMR, pg_idx: int, max_nr_pgs: int) -> list[int]:
    """The file page indices vmr_for_each(vmr, pg_idx, max_nr_pgs, cb) visits:
    from vmr_idx_to_va(pg_idx), MIN(vm_end - start, max_nr_pgs pages) long."""
    start_va = vmr_idx_to_va(vmr, pg_idx)
    length = min(vmr.vm_end - start_va, max_nr_pgs << PGSHIFT)
    return [pg_idx + k for k in range(length >> PGSHIFT)]

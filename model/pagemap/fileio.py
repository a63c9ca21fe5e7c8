"""generic_file_read and generic_file_write of one page (kern/src/vfs.c).

Per page: pm_load_page (a slot reference), the copy, for a write then
atomic_or(PG_DIRTY), then pm_put_page.  The user buffer on the other side of
the copy is the caller's own memory and is not modeled."""

from __future__ import annotations

from pagemap.hardware import write_value
from pagemap.machine import CODE, Machine, ThreadView, Violation
from pagemap.pageflags import PG_DIRTY
from pagemap.pm import put_slot_ref

CODE.function("file_io", ("fio_index", "fio_page", "fio_write"))


@CODE.step("file_io", "load", "pm_load_page(f_mapping, idx, &page)", local=True)
def fio_load(m: Machine, t: ThreadView) -> object:
    t.call("pm_load_page.find", "file_io.loaded", load_index=t["fio_index"])
    return None


@CODE.step("file_io", "loaded", "assert(!error)", local=True,
           fixed={"fileio-enomem": "if (error) return error"})
def fio_loaded(m: Machine, t: ThreadView) -> object:
    got = t["rv"]
    t["rv"] = 0
    if got <= 0:  # pm_load_page's -ENOMEM
        if not m.cfg.fix("fileio-enomem"):
            raise Violation("kernel-assert", "generic_file_read/write: assert(!error) after "
                            "pm_load_page returned -ENOMEM")
        m.note("pm_load_page failed: the read()/write() returns -ENOMEM")
        t.ret("file_io", -got)
        return None
    t["fio_page"] = got
    t.goto("file_io.copy")
    return None


@CODE.step("file_io", "copy", "memcpy to/from the page (memcpy_from_user / memcpy_to_user)")
def fio_copy(m: Machine, t: ThreadView) -> object:
    page, i = t["fio_page"], t["fio_index"]
    if t["fio_write"]:
        m.touch(page, "generic_file_write copy")
        value = write_value(t)
        m.set_pg(page, "data", value)
        m.set_last(i, value)
        t.goto("file_io.dirty")
    else:
        m.touch(page, "generic_file_read copy")
        t.goto("file_io.put")
    return None


@CODE.step("file_io", "dirty", "atomic_or(&page->pg_flags, PG_DIRTY)")
def fio_dirty(m: Machine, t: ThreadView) -> object:
    page = t["fio_page"]
    m.touch(page, "generic_file_write")
    m.set_pg(page, "flags", m.c.pg_set(m.pg(page, "flags"), PG_DIRTY))
    t.goto("file_io.put")
    return None


@CODE.step("file_io", "put", "pm_put_page(page)")
def fio_put(m: Machine, t: ThreadView) -> object:
    put_slot_ref(m, t, t["fio_page"])
    t.ret("file_io")
    return None

"""attrs: the one builder, and readdir's reused attributes, agree field by field."""

from __future__ import annotations

import stat

import pyfuse3
import pytest

from metafs.attrs import Ownership, ReaddirAttrs, dir_attrs, file_attrs, negative_entry
from metafs.s3.model import ObjectMeta

OWN = Ownership(uid=1000, gid=100, file_mode=0o444, dir_mode=0o555, dir_mtime=1_700_000_000)
FIELDS = ("st_ino", "generation", "entry_timeout", "attr_timeout", "st_mode", "st_nlink",
          "st_uid", "st_gid", "st_rdev", "st_size", "st_blksize", "st_blocks",
          "st_atime_ns", "st_mtime_ns", "st_ctime_ns")


def fields(a: pyfuse3.EntryAttributes) -> dict:
    return {f: getattr(a, f) for f in FIELDS}


def test_file_attrs_fields() -> None:
    a = file_attrs(7, ObjectMeta("k", 1025, 1_600_000_000, '"e"'), OWN, 12.5)
    assert a.st_mode == stat.S_IFREG | 0o444 and a.st_nlink == 1
    assert (a.st_size, a.st_blocks, a.st_blksize) == (1025, 3, 4096)
    assert a.st_mtime_ns == a.st_ctime_ns == a.st_atime_ns == 1_600_000_000 * 10**9
    assert a.entry_timeout == a.attr_timeout == 12.5 and (a.st_uid, a.st_gid) == (1000, 100)


def test_dir_attrs_fields() -> None:
    a = dir_attrs(9, OWN, 3.0)
    assert a.st_mode == stat.S_IFDIR | 0o555 and a.st_nlink == 2 and a.st_size == 0
    assert a.st_mtime_ns == OWN.dir_mtime * 10**9


@pytest.mark.parametrize("size,mtime,timeout", [(0, 0, 0.0), (1, 5, 60.0), (10**12, 1_700_000_123, 0.25)])
def test_readdir_attrs_equal_the_builder_after_reuse(size: int, mtime: int, timeout: float) -> None:
    r = ReaddirAttrs(OWN)
    # Fill the reused objects with other values first: nothing may leak through.
    r.file(99, ObjectMeta("x", 777, 123, None), 999.0)
    r.dir(98, 999.0)
    meta = ObjectMeta("k", size, mtime, '"e"')
    assert fields(r.file(42, meta, timeout)) == fields(file_attrs(42, meta, OWN, timeout))
    assert fields(r.dir(43, timeout)) == fields(dir_attrs(43, OWN, timeout))


def test_negative_entry_has_no_inode() -> None:
    a = negative_entry(4.0)
    assert a.st_ino == 0 and a.entry_timeout == 4.0 and a.attr_timeout == 0

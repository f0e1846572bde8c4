"""Metadata -> ``pyfuse3.EntryAttributes``, every field set in one place.

pyfuse3's defaults bite (``entry_timeout = attr_timeout = 300``), so no
other module builds EntryAttributes.  The timeouts passed in are the
*remaining* trust of the cache entry the attributes came from, so the
kernel never caches longer than metafs does.
"""

from __future__ import annotations

import dataclasses
import stat

import pyfuse3

from .s3.model import ObjectMeta

BLKSIZE = 4096
_NS = 1_000_000_000


@dataclasses.dataclass(frozen=True)
class Ownership:
    uid: int
    gid: int
    file_mode: int  # permission bits only
    dir_mode: int
    dir_mtime: int  # seconds; directories have no mtime in S3: the mount time


def _entry(ino: int, mode: int, nlink: int, size: int, mtime: int, own: Ownership,
           timeout: float) -> pyfuse3.EntryAttributes:
    """Every field, set: the one place EntryAttributes are filled."""
    a = pyfuse3.EntryAttributes()
    a.st_ino = ino
    a.generation = 0
    a.entry_timeout = timeout
    a.attr_timeout = timeout
    a.st_mode = mode
    a.st_nlink = nlink
    a.st_uid = own.uid
    a.st_gid = own.gid
    a.st_rdev = 0
    a.st_size = size
    a.st_blksize = BLKSIZE
    a.st_blocks = (size + 511) // 512  # 512-byte units, so du works
    ns = mtime * _NS
    a.st_atime_ns = ns
    a.st_mtime_ns = ns
    a.st_ctime_ns = ns
    return a


def file_attrs(ino: int, meta: ObjectMeta, own: Ownership, timeout: float) -> pyfuse3.EntryAttributes:
    return _entry(ino, stat.S_IFREG | own.file_mode, 1, meta.size, meta.mtime, own, timeout)


def dir_attrs(ino: int, own: Ownership, timeout: float) -> pyfuse3.EntryAttributes:
    return _entry(ino, stat.S_IFDIR | own.dir_mode, 2, 0, own.dir_mtime, own, timeout)


class ReaddirAttrs:
    """Attributes for readdir's hot loop: one object per kind, refilled per entry.

    ``pyfuse3.readdir_reply`` copies the attributes into the reply buffer
    before it returns, so a readdir call can reuse one EntryAttributes for
    every entry and rewrite only the fields that differ between entries;
    building a fresh object per entry was the largest share of a warm
    ``ls -l`` of 100,000 entries.  The values equal those of
    :func:`file_attrs` / :func:`dir_attrs` (``test_attrs.py`` compares every
    field).  A returned object is valid until the next call.
    """

    __slots__ = ("_file", "_dir")

    def __init__(self, own: Ownership) -> None:
        self._file = file_attrs(0, ObjectMeta("", 0, 0, None), own, 0.0)
        self._dir = dir_attrs(0, own, 0.0)

    def file(self, ino: int, meta: ObjectMeta, timeout: float) -> pyfuse3.EntryAttributes:
        return self.file_row(ino, meta.size, meta.mtime, timeout)

    def file_row(self, ino: int, size: int, mtime: int, timeout: float) -> pyfuse3.EntryAttributes:
        """A file of ``size`` bytes modified at ``mtime`` (a listing's columns, no ObjectMeta)."""
        a = self._file
        a.st_ino = ino
        a.entry_timeout = timeout
        a.attr_timeout = timeout
        a.st_size = size
        a.st_blocks = (size + 511) // 512
        ns = mtime * _NS
        a.st_atime_ns = ns
        a.st_mtime_ns = ns
        a.st_ctime_ns = ns
        return a

    def dir(self, ino: int, timeout: float) -> pyfuse3.EntryAttributes:
        a = self._dir
        a.st_ino = ino
        a.entry_timeout = timeout
        a.attr_timeout = timeout
        return a


def negative_entry(timeout: float) -> pyfuse3.EntryAttributes:
    """A cacheable "no such name": st_ino 0 lets the kernel remember it."""
    a = pyfuse3.EntryAttributes()
    a.st_ino = 0
    a.entry_timeout = timeout
    a.attr_timeout = 0
    return a

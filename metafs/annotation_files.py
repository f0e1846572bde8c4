"""``.metafs/annotations/``: every S3 annotation as a read-only file, the large ones included.

An xattr holds at most 64 KiB under a name of at most 255 bytes, and a
``listxattr`` answer at most 64 KiB; an annotation may have a 512-byte
name and a 1 MiB payload, and an object 1,000 of them.  Those that do not
fit are left out of the xattrs (``user.s3.annotations-elsewhere`` says how
many, and names this directory); here every annotation is a file:

* ``<control dir>/annotations/<key path>/`` is the directory of the object
  at ``<key path>`` (relative to the mount root, as the mount shows it);
  its entries are the object's annotations, one file each, with the size
  and date of the listing.  Reading one sends GetObjectAnnotation (once:
  the payload is kept while its listing ETag stays).
* Any other path below ``annotations/`` is a directory (so that every
  object's path can be walked to), listed empty; a name costs the HEAD
  that tells whether it is an object.  An annotation of the object ``a``
  named ``b`` hides the object ``a/b`` here.

The requests are :class:`~metafs.objects.ObjectMetadata`'s (same cache,
same counts); this module only maps paths to them.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from cachetools import LRUCache

from .control import CtlDir, CtlEntry, CtlFile, Path
from .objects import NoAttr, ObjectMetadata
from .s3.model import Absent, AnnotationEntry, ObjectMeta

SUBTREE = "annotations"

# Payloads over 64 KiB read through here are kept apart, a few at a time:
# a 1 MiB file is read in several FUSE reads, each would be a request otherwise.
_LARGE_KEPT = 8


class AnnotationFiles:
    """The ``annotations`` subtree of the control directory (see the module docstring)."""

    def __init__(self, objects: ObjectMetadata, root_key: str, *, ttl: float) -> None:
        self._objects = objects
        self._root_key = root_key
        self._ttl = ttl
        self._large: LRUCache[tuple[str, str, str | None], bytes] = LRUCache(_LARGE_KEPT)

    @staticmethod
    def where(mountpoint: str, control_dir: str, root_key: str, key: str) -> str:
        """The directory of ``key``'s annotation files, as a path under ``mountpoint``."""
        return posixpath.join(mountpoint, control_dir, SUBTREE, key[len(root_key):]) + "/"

    def _key(self, path: Path) -> str:
        return self._root_key + "/".join(path)

    async def _entries(self, path: Path) -> list[AnnotationEntry] | None:
        """The annotations of the object at ``path``; None if no object is there."""
        if not path:
            return None
        found = await self._objects.annotation_entries(self._key(path))
        return None if isinstance(found, Absent) else found

    def _file(self, path: Path, e: AnnotationEntry) -> CtlFile:
        return CtlFile(ObjectMeta(self._key(path) + "\0" + e.name, e.size, e.mtime, e.etag, {}),
                       self._ttl)

    async def entry(self, path: Path) -> CtlEntry | None:
        if len(path) >= 2:
            parent = await self._entries(path[:-1])
            if parent is not None:
                e = next((a for a in parent if a.name == path[-1]), None)
                if e is not None:
                    return self._file(path[:-1], e)
        return CtlDir(self._ttl)

    async def listdir(self, path: Path) -> Sequence[tuple[str, CtlEntry]]:
        entries = await self._entries(path)
        return [(e.name, self._file(path, e)) for e in entries or []]

    async def read(self, path: Path, first: int, last: int) -> bytes:
        if len(path) < 2:
            return b""
        key, name = self._key(path[:-1]), path[-1]
        entries = await self._entries(path[:-1]) or []
        e = next((a for a in entries if a.name == name), None)
        if e is None:
            return b""
        held = self._large.get((key, name, e.etag))
        if held is None:
            got = await self._objects.annotation_payload(key, name)
            if isinstance(got, Absent | NoAttr):
                return b""
            held = got
            if len(held) > 65536:
                self._large[(key, name, e.etag)] = held
        return held[first:last + 1]

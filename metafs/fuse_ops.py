"""The pyfuse3 ``Operations``: a thin translation from FUSE to the metadata layer.

No HTTP here and no policy: each handler resolves inodes, asks
:class:`~metafs.meta.Metadata`, builds attributes through :mod:`attrs`,
and keeps the kernel's lookup counts in :class:`~metafs.inodes.InodeTable`.

Errors are translated once, by :func:`_boundary` around every handler:
``FUSEError`` passes, a :class:`~metafs.errors.MetafsError` becomes its
errno (table in ``errors.py``), anything else is logged with its
traceback and becomes EIO.  Nothing else may leave a handler, because an
exception escaping a pyfuse3 worker ends ``pyfuse3.main()`` and with it
the mount.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
from typing import Any, Awaitable, Callable, Sequence, TypeVar

import pyfuse3
from pyfuse3 import FUSEError

from . import errors
from .attrs import Ownership, ReaddirAttrs, dir_attrs, file_attrs, negative_entry
from .dirlist import Listing, invalid_reason
from .inodes import InodeTable, Node
from .meta import Found, Metadata
from .s3.client import S3Client
from .xattrs import USER_NS, SYSTEM_NS, is_foreign, object_xattrs

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
_XATTR_PREFIXES = (USER_NS.encode(), SYSTEM_NS.encode())
READ_CHUNK = 1 << 20  # one ranged GET serves this much of a sequential read


def _boundary(fn: F) -> F:
    """The one place where exceptions become errno (see the module docstring)."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except FUSEError:
            raise
        except errors.MetafsError as e:
            level = logging.DEBUG if e.errno == errno.ENOENT else logging.WARNING
            log.log(level, "%s: %s", fn.__name__, e)
            raise FUSEError(e.errno) from None
        except Exception:
            log.exception("%s failed unexpectedly", fn.__name__)
            raise FUSEError(errno.EIO) from None

    return wrapper  # type: ignore[return-value]


def _split_key(key: str) -> tuple[str, str]:
    """``a/b/c`` or ``a/b/c/`` -> (``a/b/``, ``c``)."""
    stem = key[:-1] if key.endswith("/") else key
    i = stem.rfind("/")
    return stem[:i + 1], stem[i + 1:]


class _DirHandle:
    __slots__ = ("node", "listing")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.listing: Listing | None = None


class _FileHandle:
    __slots__ = ("key", "etag", "size", "buf_start", "buf")

    def __init__(self, key: str, etag: str | None, size: int) -> None:
        self.key = key
        self.etag = etag
        self.size = size
        self.buf_start = 0
        self.buf = b""


class Operations(pyfuse3.Operations):
    """metafs's FUSE handlers.  Read-only; every handler's contract is in its docstring."""

    supports_dot_lookup = True
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, meta: Metadata, client: S3Client, own: Ownership, *,
                 root_key: str, root_xattrs: dict[bytes, bytes],
                 percent_decode_values: bool = False,
                 invalidate: Callable[[int, bytes], None] | None = None) -> None:
        super().__init__()
        self.meta = meta
        self.client = client
        self.own = own
        self._readdir_attrs = ReaddirAttrs(own)
        self.inodes = InodeTable(root_key)
        self.root_xattrs = root_xattrs
        self.percent_decode_values = percent_decode_values
        self._dirs: dict[int, _DirHandle] = {}
        self._files: dict[int, _FileHandle] = {}
        self._next_fh = 1
        # Names to drop go to the kernel from another thread (notify.py):
        # from a handler, the call could deadlock.
        self._invalidate = invalidate
        self.invalidations = 0

    # -- helpers ----------------------------------------------------------
    def _node(self, ino: int) -> Node:
        node = self.inodes.get(ino)
        if node is None:
            # The kernel asked about an inode it had forgotten: stale handle.
            raise FUSEError(errno.ESTALE)
        return node

    def _fh(self) -> int:
        fh = self._next_fh
        self._next_fh += 1
        return fh

    def _attrs(self, node: Node, found: Found) -> pyfuse3.EntryAttributes:
        timeout = self.meta.cache.remaining(found.expires)
        if node.is_dir:
            return dir_attrs(node.ino, self.own, timeout)
        assert found.meta is not None
        return file_attrs(node.ino, found.meta, self.own, timeout)

    # -- names ------------------------------------------------------------------
    @_boundary
    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
                     ) -> pyfuse3.EntryAttributes:
        """Resolve ``name`` in a directory.

        Counts one lookup on the returned inode.  A name that does not
        exist is answered with ``st_ino == 0`` and an ``entry_timeout`` of
        the negative entry's remaining trust, so the kernel caches it too.
        Raises ENOTDIR if the parent is a file, ESTALE if it was forgotten,
        and the S3 error's errno if the server cannot say.
        """
        parent = self._node(parent_inode)
        if not parent.is_dir:
            raise FUSEError(errno.ENOTDIR)
        if name in (b".", b".."):
            node = parent if name == b"." else self._node(parent.parent)
            self.inodes.remember(node)
            return dir_attrs(node.ino, self.own, self.meta.cache.ttl)
        try:
            sname = name.decode("utf-8")
        except UnicodeDecodeError:
            raise FUSEError(errno.ENOENT) from None  # S3 keys are UTF-8
        if invalid_reason(sname) is not None:
            raise FUSEError(errno.ENOENT)
        found = await self.meta.lookup(parent.key, sname)
        if not isinstance(found, Found):
            return negative_entry(self.meta.cache.remaining(found.expires))
        node = self.inodes.ensure(parent, sname, found.is_dir)
        attrs = self._attrs(node, found)
        self.inodes.remember(node)
        return attrs

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        """Drop kernel references.  Must not raise (pyfuse3's contract)."""
        try:
            self.inodes.forget(inode_list)
        except Exception:  # a bug here must not end the mount
            log.exception("forget failed")

    @_boundary
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        """Attributes of an inode; does not count a lookup.

        A file's attributes are revalidated with a conditional HEAD once
        their TTL has passed; ENOENT if the object is gone.
        """
        node = self._node(inode)
        if node.is_dir:
            return dir_attrs(node.ino, self.own, self.meta.cache.ttl)
        cached = await self.meta.file(node.key)
        return file_attrs(node.ino, cached.meta, self.own, self.meta.cache.remaining(cached.expires))

    @_boundary
    async def setattr(self, inode: int, attr: Any, fields: Any, fh: Any, ctx: Any) -> Any:
        """Read-only: EROFS (the kernel normally refuses first, because of ``ro``)."""
        raise FUSEError(errno.EROFS)

    # -- directories ----------------------------------------------------------------
    @_boundary
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        """Open a directory handle; the listing is taken at the first readdir."""
        node = self._node(inode)
        if not node.is_dir:
            raise FUSEError(errno.ENOTDIR)
        fh = self._fh()
        self._dirs[fh] = _DirHandle(node)
        return fh

    @_boundary
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        """Reply entries from index ``start_id`` of the handle's listing.

        ``start_id`` 0 (re)starts: the handle takes the directory's current
        listing (fresh from cache, shared while in progress, or new).
        ``.`` and ``..`` come first; ``next_id`` of listing entry *i* is
        *i + 3*, so repeated or rewound offsets
        re-serve the same entries, each counted again.  Each entry whose
        ``readdir_reply`` returned True counts one lookup.

        Pages are fetched only when the kernel asks past what is listed; a
        call that already replied some entries returns instead of waiting
        for the next page, so the first entries of a huge directory reach
        the reader after the first LIST page.  A listing error is raised
        only if this call replied nothing (replied entries were counted).
        """
        h = self._dirs.get(fh)
        if h is None:
            raise FUSEError(errno.EBADF)
        if start_id == 0 or h.listing is None:
            h.listing = self.meta.listing(h.node.key)
        lst = h.listing
        parent = h.node
        cache = self.meta.cache
        # Positions 0 and 1 are '.' and '..' (not counted as lookups, as
        # libfuse documents); position p >= 2 is entries[p - 2].
        pos = start_id
        while pos < 2:
            node = parent if pos == 0 else self.inodes.get(parent.parent) or parent
            attrs = dir_attrs(node.ino, self.own, cache.ttl)
            if not pyfuse3.readdir_reply(token, b"." * (pos + 1), attrs, pos + 1):
                return
            pos += 1
        i = pos - 2
        replied = 0
        # The hot loop of `ls -l`: no await between entries, so the clock is
        # read once, one EntryAttributes per kind is refilled (ReaddirAttrs),
        # and the object table (HEAD-level metadata that may be fresher than
        # the listing) is consulted only if it holds anything at all.
        reuse = self._readdir_attrs
        ensure, entries = self.inodes.ensure, lst.entries
        now = cache.now()
        heads = len(cache.objects) > 0
        while True:
            if i >= len(entries):
                if lst.complete or replied:
                    return
                await self.meta.fill(lst, i)
                if i >= len(entries):
                    return
                entries, now = lst.entries, cache.now()
                heads = len(cache.objects) > 0
            e = entries[i]
            if e.is_dir:
                node = ensure(parent, e.name, True)
                attrs = reuse.dir(node.ino, max(0.0, lst.expires - now))
            else:
                meta = e.meta
                node = ensure(parent, e.name, False, meta.key)
                expires = lst.expires
                if heads:
                    meta, expires = self.meta.entry_meta(lst, e)
                attrs = reuse.file(node.ino, meta, max(0.0, expires - now))
            if not pyfuse3.readdir_reply(token, e.name.encode("utf-8"), attrs, i + 3):
                self.inodes.discard_if_unused(node)
                return
            node.nlookup += 1  # InodeTable.remember, inlined in this loop
            replied += 1
            i += 1

    @_boundary
    async def releasedir(self, fh: int) -> None:
        """Free the handle and its reference to the listing.

        If the cache keeps no listing of this directory (it was larger than
        the bound, or evicted meanwhile), the names this handle gave the
        kernel are backed by nothing: the kernel is told to drop them.
        """
        h = self._dirs.pop(fh, None)
        if h is not None and h.listing is not None and h.listing.entries \
                and self.meta.cache.get_listing(h.listing.dir_key) is None:
            self.evicted("listings", h.listing.dir_key, h.listing)

    # -- the cache bound ------------------------------------------------------------
    def evicted(self, table: str, key: str, value: Any) -> None:
        """The cache's bound dropped an entry: tell the kernel to drop its names too.

        Called by :class:`~metafs.cache.MetaCache` (``on_evict``) and by
        :meth:`releasedir`.  Without this the kernel would keep the names
        (and metafs their inodes) until it forgot them on its own, so the
        inode table would grow with everything ever listed.  The kernel's
        entries are invalidated, never given shorter attributes: it re-asks
        on next use, and FORGETs what it drops, which frees the inodes.
        Must not raise (it runs inside cache operations).
        """
        try:
            if table == "listings":
                pairs = self.inodes.dentries_for(key, (e.name for e in value.entries))
            else:
                dir_key, name = _split_key(key)
                # A negative entry has no node but the kernel may cache it.
                pairs = self.inodes.dentries_for(dir_key, (name,),
                                                 known_only=table != "negatives")
            if self._invalidate is not None:
                for parent_ino, name in pairs:
                    self._invalidate(parent_ino, name.encode("utf-8"))
            self.invalidations += len(pairs)
        except Exception:
            log.exception("invalidating evicted %s entry failed", table)

    # -- extended attributes ------------------------------------------------------------
    def _dir_xattrs(self, node: Node) -> dict[bytes, bytes]:
        table = {b"s3.prefix": node.key.encode("utf-8")}
        if node.ino == pyfuse3.ROOT_INODE:
            table.update(self.root_xattrs)
            table.update(self._stats())
        return table

    def _stats(self) -> dict[bytes, bytes]:
        """``metafs.*`` on the root: live sizes of the tables, for operators and tests."""
        c = self.meta.cache
        figures = {
            "inodes": len(self.inodes),
            "cache.objects": len(c.objects),
            "cache.negatives": len(c.negatives),
            "cache.prefixes": len(c.prefixes),
            "cache.listings": len(c.listings),
            "cache.listed-entries": int(c.listings.currsize),
            "open-dirs": len(self._dirs),
            "invalidations": self.invalidations,
        }
        return {f"metafs.{k}".encode(): str(v).encode() for k, v in figures.items()}

    @_boundary
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        """Value of one xattr (see xattrs.py for names).

        ``security.*``, ``system.*``, ``trusted.*``: ENOTSUP, no request.
        Other names outside ``user.``/``s3.``: ENOATTR, no request.  For a
        file, the first access sends HEAD (cached, revalidated after the
        TTL); pyfuse3's size probe and the real call share that answer.
        """
        if is_foreign(name):
            raise FUSEError(errno.ENOTSUP)
        node = self._node(inode)
        if node.is_dir:
            table = self._dir_xattrs(node)
        elif not name.startswith(_XATTR_PREFIXES):
            raise FUSEError(pyfuse3.ENOATTR)
        else:
            cached = await self.meta.file(node.key, full=True)
            table = object_xattrs(cached.meta.headers or (),
                                  percent_decode_values=self.percent_decode_values)
        try:
            return table[name]
        except KeyError:
            raise FUSEError(pyfuse3.ENOATTR) from None

    @_boundary
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> Sequence[bytes]:
        """Names of all xattrs: for a file, one HEAD (cached) on first access."""
        node = self._node(inode)
        if node.is_dir:
            return list(self._dir_xattrs(node))
        cached = await self.meta.file(node.key, full=True)
        return list(object_xattrs(cached.meta.headers or (),
                                  percent_decode_values=self.percent_decode_values))

    @_boundary
    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: Any) -> None:
        """Read-only: EROFS."""
        raise FUSEError(errno.EROFS)

    @_boundary
    async def removexattr(self, inode: int, name: bytes, ctx: Any) -> None:
        """Read-only: EROFS."""
        raise FUSEError(errno.EROFS)

    # -- file contents ----------------------------------------------------------------------
    @_boundary
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        """Open a file for reading (EROFS for writing, EISDIR for a directory).

        Reads are pinned to the ETag seen at open: if the object changes
        while open, reads fail with ESTALE instead of mixing versions.
        """
        node = self._node(inode)
        if node.is_dir:
            raise FUSEError(errno.EISDIR)
        if flags & os.O_ACCMODE != os.O_RDONLY:
            raise FUSEError(errno.EROFS)
        cached = await self.meta.file(node.key)
        fh = self._fh()
        self._files[fh] = _FileHandle(node.key, cached.meta.etag, cached.meta.size)
        return pyfuse3.FileInfo(fh=fh)

    @_boundary
    async def read(self, fh: int, off: int, size: int) -> bytes:
        """Bytes ``off..off+size`` through ranged GETs of at least 1 MiB."""
        h = self._files.get(fh)
        if h is None:
            raise FUSEError(errno.EBADF)
        if off >= h.size or size <= 0:
            return b""
        end = min(off + size, h.size)
        if not (h.buf_start <= off and end <= h.buf_start + len(h.buf)):
            want = min(max(size, READ_CHUNK), h.size - off)
            h.buf = await self.client.get_range(h.key, off, off + want - 1, h.etag)
            h.buf_start = off
        return h.buf[off - h.buf_start:end - h.buf_start]

    @_boundary
    async def release(self, fh: int) -> None:
        self._files.pop(fh, None)

    @_boundary
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        """Constant figures: a bucket has no fixed size, and nothing is free to write."""
        s = pyfuse3.StatvfsData()
        s.f_bsize = 4096
        s.f_frsize = 4096
        s.f_blocks = s.f_bfree = s.f_bavail = 0
        s.f_files = s.f_ffree = s.f_favail = 0
        s.f_namemax = 255
        return s

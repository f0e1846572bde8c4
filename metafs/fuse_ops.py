"""The pyfuse3 ``Operations``: a thin translation from FUSE to the metadata layer.

No HTTP here and no policy: each handler resolves inodes, asks the
metadata layer (:mod:`namespace` for names, :mod:`objects` for what an
object says, :mod:`listings` for readdir's pages, :mod:`contents` for
bytes), builds attributes through :mod:`attrs`, and keeps the kernel's
lookup counts in :class:`~metafs.inodes.InodeTable`.

Errors are translated once, by :func:`_boundary` around every handler:
``FUSEError`` passes, a :class:`~metafs.errors.MetafsError` becomes its
errno (table in ``errors.py``), anything else is logged with its
traceback and becomes EIO.  Nothing else may leave a handler, because an
exception escaping a pyfuse3 worker ends ``pyfuse3.main()`` and with it
the mount.

The boundary also bounds every handler in time (``Operations.bound``, see
:func:`handler_bound`): pyfuse3 has no FUSE INTERRUPT support, so a
handler that never returns keeps its caller in uninterruptible sleep for
good.  Past the bound the handler is cancelled and the request fails with
EIO and one log line.  Cancellation strikes only at an ``await``, and
every handler does its bookkeeping (lookup counts, handles) after its
last one, so nothing is counted that the kernel did not get; a cancelled
single flight or listing page is taken over by the next caller (see
:mod:`metafs.flight`, :meth:`metafs.listings.Listings.fill`).
"""

from __future__ import annotations

import bisect
import errno
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import pyfuse3
import trio
from pyfuse3 import FUSEError

from . import errors, exact, metrics
from .attrs import Ownership, ReaddirAttrs, dir_attrs, file_attrs, negative_entry
from .contents import FileHandle, FileReader
from .control import ControlRoot, CtlDir, CtlEntry
from .dirlist import NAME_MAX, FileEntry, Listing, invalid_reason, key_bytes, name_of
from .inodes import InodeTable, Node
from .invalidate import KernelInvalidation
from .listings import Listings
from .namespace import FoundDir, FoundFile, Namespace
from .objects import NoAttr, ObjectMetadata, TooLarge
from .s3.model import Absent
from .walks import Walks
from .xattrs import (
    FIGURES_NS,
    LEGACY_SYSTEM_NS,
    PARTS_COUNT,
    SYSTEM_NS,
    USER_NS,
    is_foreign,
    legacy_name,
    lookup,
)

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
# Names a file may have: user.*, and the previous release's s3.* (read by name only);
# the root's previous metafs.* names are a directory's, answered from its table.
_XATTR_PREFIXES = (USER_NS.encode(), LEGACY_SYSTEM_NS.encode())


# A handler may wait on two requests in turn (a lookup waits for a listing
# page in progress, then probes; a known name's HEAD says 404, then its LIST
# runs), each bounded by the client's request budget; a handler that outlives
# that is waiting on something no single request bounds: an endless listing,
# pages that hold no name.
REQUESTS_PER_HANDLER = 2


def handler_bound(request_budget: float) -> float:
    """The longest a FUSE handler may run: two requests' budgets (see above).

    With the defaults (``--retries 2 --request-timeout 10``): 2 * 30.6 = 61.2 s.
    """
    return REQUESTS_PER_HANDLER * request_budget


def _boundary(fn: Callable[Concatenate[Operations, P], Awaitable[R]]
              ) -> Callable[Concatenate[Operations, P], Coroutine[Any, Any, R]]:
    """The one place where exceptions become errno, and time is bounded (see the module docstring).

    The wrapper keeps ``fn``'s parameters, and returns a coroutine (not just an
    awaitable) because that is what pyfuse3.Operations' async handlers return.
    """

    @functools.wraps(fn)
    async def wrapper(self: Operations, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with trio.move_on_after(self.bound):
                result = await fn(self, *args, **kwargs)
                metrics.recorder.fuse_op(fn.__name__)
                return result
            log.warning("%s: no answer within %g s, the bound of one FUSE request: EIO",
                        fn.__name__, self.bound)
            raise FUSEError(errno.EIO)
        except FUSEError as e:
            metrics.recorder.fuse_op(fn.__name__, e.errno)
            raise
        except errors.MetafsError as e:
            # A failure already reported (a handle's refused read again, see contents.py): debug only.
            level = logging.DEBUG if e.errno == errno.ENOENT or e.repeated else logging.WARNING
            log.log(level, "%s: %s", fn.__name__, e)
            metrics.recorder.fuse_op(fn.__name__, e.errno)
            raise FUSEError(e.errno) from None
        except Exception:
            log.exception("%s failed unexpectedly", fn.__name__)
            metrics.recorder.fuse_op(fn.__name__, errno.EIO)
            raise FUSEError(errno.EIO) from None

    return wrapper


class _DirHandle:
    __slots__ = ("node", "listing", "control")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.listing: Listing | None = None
        self.control: Sequence[tuple[str, CtlEntry]] | None = None  # a control directory's entries


class Operations(pyfuse3.Operations):
    """metafs's FUSE handlers.  Read-only; every handler's contract is in its docstring.

    It talks to the metadata layer only: :class:`Namespace` (which names
    exist), :class:`ObjectMetadata` (what an object says), :class:`Listings`
    (readdir's pages), and the :class:`FileReader` for contents.  ``clock``
    is the cache's: it turns each answer's ``expires`` into the kernel's
    remaining timeout.  ``dir_ttl`` is the kernel timeout of directories,
    ``.`` and ``..`` (synthetic, so the full TTL).  ``bound`` is the
    longest any handler may run (:func:`handler_bound`), in seconds.
    """

    supports_dot_lookup = True
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, namespace: Namespace, objects: ObjectMetadata, listings: Listings,
                 reader: FileReader, inodes: InodeTable, own: Ownership, *,
                 clock: Callable[[], float], dir_ttl: float, bound: float,
                 root_xattrs: dict[bytes, bytes] | None = None,
                 invalidation: KernelInvalidation | None = None,
                 figures: Callable[[], dict[str, int]] | None = None,
                 control: ControlRoot | None = None,
                 walks: Walks | None = None) -> None:
        super().__init__()
        self.namespace = namespace
        self.objects = objects
        self.listings = listings
        self.reader = reader
        self.inodes = inodes
        self.own = own
        self._clock = clock
        self._dir_ttl = dir_ttl
        self.bound = bound
        self._readdir_attrs = ReaddirAttrs(own)
        self.root_xattrs = root_xattrs or {}
        self._invalidation = invalidation
        self._figures = figures
        self.walks = walks  # tree walks served from flat listings (walks.py)
        self._dirs: dict[int, _DirHandle] = {}
        self._files: dict[int, FileHandle] = {}
        self._control_files: dict[int, str] = {}  # fh -> control file's key
        self._next_fh = 1
        # The reserved control directory (control.py); None: not wired (kernel-free tests).
        self.control = control

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

    def _remaining(self, expires: float) -> float:
        return max(0.0, expires - self._clock())

    # -- the control directory (control.py): its nodes' keys start with NUL ------------
    def _control_attrs(self, ino: int, entry: CtlEntry) -> pyfuse3.EntryAttributes:
        if isinstance(entry, CtlDir):
            return dir_attrs(ino, self.own, entry.timeout)
        return file_attrs(ino, entry.meta, self.own, entry.timeout)

    async def _control_lookup(self, parent: Node, name: str) -> pyfuse3.EntryAttributes | None:
        """Lookup in the control tree, or of the control directory itself; None: not ours."""
        ctl = self.control
        if ctl is None:
            return None
        if parent.ino == pyfuse3.ROOT_INODE and name == ctl.name:
            entry: CtlEntry | None = await ctl.entry(ctl.root_key())
            key: str | None = ctl.root_key()
        elif ctl.owns(parent.key):
            entry, key = await ctl.child(parent.key, name), None
        else:
            return None
        if entry is None:
            return negative_entry(ctl.dir_ttl)
        node = self.inodes.ensure(parent, name, isinstance(entry, CtlDir), key)
        attrs = self._control_attrs(node.ino, entry)
        self.inodes.remember(node)
        return attrs

    async def _control_entry(self, node: Node) -> CtlEntry:
        assert self.control is not None
        entry = await self.control.entry(node.key)
        if entry is None:
            raise FUSEError(errno.ENOENT)
        return entry

    async def _control_readdir(self, h: _DirHandle, start_id: int, token: pyfuse3.ReaddirToken
                               ) -> None:
        assert self.control is not None
        if start_id == 0 or h.control is None:
            h.control = await self.control.listdir(h.node.key)
        entries = [(b".", None), (b"..", None)] + [
            (n.encode("utf-8", "surrogateescape"), e) for n, e in h.control]
        for pos in range(start_id, len(entries)):
            name, entry = entries[pos]
            if entry is None:
                node = h.node if pos == 0 else self.inodes.get(h.node.parent) or h.node
                attrs = dir_attrs(node.ino, self.own, self._dir_ttl)
                if not pyfuse3.readdir_reply(token, name, attrs, pos + 1):
                    return
                continue
            node = self.inodes.ensure(h.node, h.control[pos - 2][0], isinstance(entry, CtlDir))
            if not pyfuse3.readdir_reply(token, name, self._control_attrs(node.ino, entry), pos + 1):
                self.inodes.discard_if_unused(node)
                return
            self.inodes.remember(node)

    # -- names ------------------------------------------------------------------
    @_boundary
    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
                     ) -> pyfuse3.EntryAttributes:
        """Resolve ``name`` in a directory.

        Counts one lookup on the returned inode.  A name that does not
        exist is answered with ``st_ino == 0`` and an ``entry_timeout`` of
        the negative entry's remaining trust, so the kernel caches it too.
        A name longer than 255 bytes is ENAMETOOLONG, one that cannot be a
        key component (empty, ``/``, NUL) ENOENT, both with no request.  Any
        other bytes are a name, UTF-8 or not (:func:`~metafs.dirlist.name_of`),
        so a key that is not UTF-8 can be looked up as ``readdir`` showed it.
        Raises ENOTDIR if the parent is a file, ESTALE if it was forgotten,
        and the S3 error's errno if the server cannot say.
        """
        parent = self._node(parent_inode)
        if not parent.is_dir:
            raise FUSEError(errno.ENOTDIR)
        if len(name) > NAME_MAX:
            raise FUSEError(errno.ENAMETOOLONG)
        if name in (b".", b".."):
            node = parent if name == b"." else self._node(parent.parent)
            self.inodes.remember(node)
            return dir_attrs(node.ino, self.own, self._dir_ttl)
        sname = name_of(name)
        if invalid_reason(sname) is not None:
            raise FUSEError(errno.ENOENT)
        if (ctl_attrs := await self._control_lookup(parent, sname)) is not None:
            return ctl_attrs
        found = await self.namespace.lookup(parent.key, sname)
        match found:
            case FoundFile(meta, expires):
                node = self.inodes.ensure(parent, sname, False)
                attrs = file_attrs(node.ino, meta, self.own, self._remaining(expires))
            case FoundDir(expires):
                node = self.inodes.ensure(parent, sname, True)
                attrs = dir_attrs(node.ino, self.own, self._remaining(expires))
            case _:
                return negative_entry(self._remaining(found.expires))
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
        their TTL has passed; ENOENT if the object is gone, ESTALE if the
        inode was forgotten.
        """
        node = self._node(inode)
        if ControlRoot.owns(node.key):
            return self._control_attrs(node.ino, await self._control_entry(node))
        if node.is_dir:
            return dir_attrs(node.ino, self.own, self._dir_ttl)
        found = await self.objects.stat(node.key)
        if isinstance(found, Absent):
            raise FUSEError(errno.ENOENT)
        return file_attrs(node.ino, found.meta, self.own, self._remaining(found.expires))

    @_boundary
    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields,
                      fh: int | None, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        """Read-only: EROFS (the kernel normally refuses first, because of ``ro``)."""
        raise FUSEError(errno.EROFS)

    # -- directories ----------------------------------------------------------------
    @_boundary
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        """Open a directory handle; the listing is taken at the first readdir.

        ENOTDIR for a file, ESTALE for a forgotten inode.  Sends nothing;
        tells the walk detector which process opened what (walks.py).
        """
        node = self._node(inode)
        if not node.is_dir:
            raise FUSEError(errno.ENOTDIR)
        if self.walks is not None and not ControlRoot.owns(node.key):
            self.walks.opened(node.key, getattr(ctx, "pid", None))
        fh = self._fh()
        self._dirs[fh] = _DirHandle(node)
        return fh

    @_boundary
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        """Reply entries from index ``start_id`` of the handle's listing.

        ``start_id`` 0 (re)starts: the handle takes the directory's current
        listing (fresh from cache, shared while in progress, or new, with
        its first page; the previous one if that page cannot be had, see
        listings.py), so ``rewinddir`` sees the directory as it is now.  ``.`` and ``..``
        come first; ``next_id`` of listing entry *i* is *i + 3*, so
        repeated or rewound offsets re-serve the same entries, each counted
        again.  Each entry whose ``readdir_reply`` returned True counts one
        lookup.  EBADF for an unknown handle.

        Pages are fetched only when the kernel asks past what is listed; a
        call that already replied some entries returns instead of waiting
        for the next page, so the first entries of a huge directory reach
        the reader after the first LIST page.  A listing error is raised
        only if this call replied nothing (replied entries were counted);
        the only ``await`` is that page fetch, so the handler's bound can
        only cancel a call that counted nothing either.
        """
        h = self._dirs.get(fh)
        if h is None:
            raise FUSEError(errno.EBADF)
        if ControlRoot.owns(h.node.key):
            return await self._control_readdir(h, start_id, token)
        if start_id == 0 or h.listing is None:
            if self.walks is not None:
                # A walk's flat listing may list it, within one request's share of the
                # bound; what is left is the ordinary listing's.
                with trio.move_on_after(self.bound / REQUESTS_PER_HANDLER):
                    await self.walks.serve(h.node.key)
            h.listing = await self.listings.open(h.node.key)
        lst = h.listing
        parent = h.node
        # Positions 0 and 1 are '.' and '..' (not counted as lookups, as
        # libfuse documents); position p >= 2 is entries[p - 2].
        pos = start_id
        while pos < 2:
            node = parent if pos == 0 else self.inodes.get(parent.parent) or parent
            attrs = dir_attrs(node.ino, self.own, self._dir_ttl)
            if not pyfuse3.readdir_reply(token, b"." * (pos + 1), attrs, pos + 1):
                return
            pos += 1
        i = pos - 2
        replied = 0
        # The hot loop of `ls -l`: no await between entries, so the clock is
        # read once and each page's remaining trust computed once, one
        # EntryAttributes per kind is refilled (ReaddirAttrs), entries are read
        # from the listing's columns (no entry object), inodes are offered
        # without a Node (InodeTable.offer), and per-key entries (HEAD-level
        # metadata that may be fresher than the listing) are consulted only if
        # any exist at all.
        reuse = self._readdir_attrs
        inodes = self.inodes
        offer, took = inodes.offer, inodes.took
        names, flags, sizes, mtimes, odd = lst.names, lst.dir_flags, lst.sizes, lst.mtimes, lst.odd
        now = self._clock()
        overridden = self.listings.overridden()
        # The root's entry of the control directory's name is hidden (control.py).
        hidden = self.control.name if self.control is not None and parent.ino == pyfuse3.ROOT_INODE \
            else None
        page_end = 0  # entries[i] belongs to a page that ends before page_end...
        page_ttl = 0.0  # ...and is trusted for page_ttl more seconds
        while True:
            if i >= len(names):
                if lst.complete or replied:
                    return
                await self.listings.fill(lst, i)
                if i >= len(names):
                    return
                now = self._clock()
                overridden = self.listings.overridden()
                page_end = 0
            if i >= page_end:
                k = bisect.bisect_right(lst.page_ends, i)
                page_end, page_ttl = lst.page_ends[k], max(0.0, lst.page_expires[k] - now)
            name = names[i]
            assert name is not None  # a listing never clears a name
            if name == hidden and self.control is not None and self.control.hides(name):
                i += 1
                continue
            if flags[i]:
                attrs = reuse.dir(offer(parent, name, True), page_ttl)
            elif overridden or (odd and i in odd):
                e = lst.entry_at(i)
                assert isinstance(e, FileEntry)
                meta, timeout = e.meta, page_ttl
                if overridden:
                    # A fresher HEAD updates the attributes; the name's trust stays its
                    # page's (an open handle's older listing may show a name that is a
                    # directory by now).
                    meta, expires = self.listings.entry_meta(e, now + page_ttl)
                    timeout = min(page_ttl, max(0.0, expires - now))
                attrs = reuse.file(offer(parent, name, False), meta, timeout)
            else:
                attrs = reuse.file_row(offer(parent, name, False), sizes[i], mtimes[i], page_ttl)
            # dirlist.key_bytes, inlined in this loop: names that are not UTF-8 keep their bytes.
            if not pyfuse3.readdir_reply(token, name.encode("utf-8", "surrogateescape"), attrs,
                                         i + 3):
                inodes.untaken()
                return
            took()
            replied += 1
            i += 1

    @_boundary
    async def releasedir(self, fh: int) -> None:
        """Free the handle and its reference to the listing.  Never fails.

        If the cache keeps no listing of this directory (it was larger than
        the bound, or evicted meanwhile), the kernel's entries for the names
        this handle's listing shows are backed by nothing: the kernel is
        told to drop them.
        """
        h = self._dirs.pop(fh, None)
        if (h is not None and h.listing is not None and self._invalidation is not None
                and not self.listings.backed(h.listing.dir_key)):
            self._invalidation.released(h.listing)

    # -- extended attributes ------------------------------------------------------------
    def _dir_xattrs(self, node: Node) -> dict[bytes, bytes]:
        table = {(SYSTEM_NS + "prefix").encode(): key_bytes(node.key)}
        if node.ino == pyfuse3.ROOT_INODE:
            table.update(self.root_xattrs)
            table.update(self._stats())
        elif (self.control is not None and exact.SUBTREE in self.control.subtrees
              and self.namespace.shadows_object(node.key)):
            # The directory hides an object of its name: where to find it (exact.py).
            root = self._node(pyfuse3.ROOT_INODE).key
            name, value = exact.shadow_xattr(self.control.name, node.key[len(root):-1])
            table[name] = value
        return table

    def _stats(self) -> dict[bytes, bytes]:
        """``user.metafs.*`` on the root: live sizes of the tables, for operators and tests.

        Under ``user.`` like everything listed, so ``rsync -aX`` of the whole
        mount can copy the root's xattrs; ``metafs.*`` stays readable by name.
        """
        figures = {"inodes": len(self.inodes), "open-dirs": len(self._dirs)}
        if self._figures is not None:
            figures.update(self._figures())
        return {f"{FIGURES_NS}{k}".encode(): str(v).encode() for k, v in figures.items()}

    async def _control_xattrs(self, node: Node, name: bytes | None = None) -> Mapping[bytes, bytes]:
        assert self.control is not None
        table = await self.control.xattrs(node.key, name)
        if table is None:
            raise FUSEError(errno.ENOENT)
        return table

    @_boundary
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        """Value of one xattr (see xattrs.py for names).

        ``security.*``, ``system.*``, ``trusted.*``: ENOTSUP, no request,
        before anything else (even for a forgotten inode).
        Other names outside ``user.`` (and the previous release's ``s3.``;
        ``metafs.`` on the root): ENOATTR, no request.  For a file, the first access
        sends HEAD (cached, revalidated after the TTL), and a tag or
        annotation name the one request of its channel (see objects.py);
        pyfuse3's size probe and the real call share those answers.  An
        annotation too large for an xattr: E2BIG, no request (its file is
        named by ``user.s3.annotations-elsewhere``).  ENOENT if the object
        is gone, ESTALE for a forgotten inode.  The part count
        (``PARTS_COUNT``, never listed) costs its own request, once per ETag
        (ENOATTR: not uploaded in parts).
        """
        if is_foreign(name):
            raise FUSEError(errno.ENOTSUP)
        node = self._node(inode)
        if ControlRoot.owns(node.key) or node.is_dir:
            # The control tree is told the current name (s3.X asks for user.s3.X).
            table = await self._control_xattrs(node, legacy_name(name) or name) \
                if ControlRoot.owns(node.key) else self._dir_xattrs(node)
            value = lookup(table, name)
            if value is None:
                raise FUSEError(pyfuse3.ENOATTR)
            return value
        if not name.startswith(_XATTR_PREFIXES):
            raise FUSEError(pyfuse3.ENOATTR)
        if (legacy_name(name) or name) == PARTS_COUNT:
            count = await self.objects.parts_count(node.key)
            if isinstance(count, Absent):
                raise FUSEError(errno.ENOENT)
            if count is None:
                raise FUSEError(pyfuse3.ENOATTR)
            return str(count).encode()
        found = await self.objects.xattr(node.key, name)
        match found:
            case Absent():
                raise FUSEError(errno.ENOENT)
            case NoAttr():
                raise FUSEError(pyfuse3.ENOATTR)
            case TooLarge():
                raise FUSEError(errno.E2BIG)
            case bytes():
                return found
        raise AssertionError(found)  # unreachable: the cases above are the whole union

    @_boundary
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> Sequence[bytes]:
        """Names of all xattrs: for a file, one HEAD (cached) on first access,
        then one request per enabled channel, concurrently (see objects.py).

        ENOENT if the object is gone, ESTALE for a forgotten inode.
        """
        node = self._node(inode)
        if ControlRoot.owns(node.key):
            return list(await self._control_xattrs(node))
        if node.is_dir:
            return list(self._dir_xattrs(node))
        found = await self.objects.xattr_names(node.key)
        if isinstance(found, Absent):
            raise FUSEError(errno.ENOENT)
        return found

    @_boundary
    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext) -> None:
        """Read-only: EROFS."""
        raise FUSEError(errno.EROFS)

    @_boundary
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        """Read-only: EROFS."""
        raise FUSEError(errno.EROFS)

    # -- file contents ----------------------------------------------------------------------
    @_boundary
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        """Open a file for reading (EROFS for writing, EISDIR for a directory).

        Reads are pinned to the ETag seen at open: if the object changes
        while open, reads fail with ESTALE instead of mixing versions.
        ENOENT if the object is gone.
        """
        node = self._node(inode)
        if node.is_dir:
            raise FUSEError(errno.EISDIR)
        if flags & os.O_ACCMODE != os.O_RDONLY:
            raise FUSEError(errno.EROFS)
        if ControlRoot.owns(node.key):
            await self._control_entry(node)
            fh = self._fh()
            self._control_files[fh] = node.key
            return pyfuse3.FileInfo(fh=fh)
        found = await self.objects.stat(node.key)
        if isinstance(found, Absent):
            raise FUSEError(errno.ENOENT)
        fh = self._fh()
        self._files[fh] = FileHandle(node.key, found.meta.etag, found.meta.size)
        return pyfuse3.FileInfo(fh=fh)

    @_boundary
    async def read(self, fh: int, off: int, size: int) -> bytes:
        """Bytes ``off..off+size`` of an open file (see contents.py).

        EBADF for an unknown handle; ESTALE if the object changed since
        open; the S3 error's errno otherwise.
        """
        h = self._files.get(fh)
        if h is None:
            ctl_key = self._control_files.get(fh)
            if ctl_key is None or self.control is None:
                raise FUSEError(errno.EBADF)
            return await self.control.read(ctl_key, off, off + size - 1) if size > 0 else b""
        data = await self.reader.read(h, off, size)
        metrics.recorder.bytes_read(len(data))
        return data

    @_boundary
    async def release(self, fh: int) -> None:
        """Free a file handle.  Never fails."""
        self._files.pop(fh, None)
        self._control_files.pop(fh, None)

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

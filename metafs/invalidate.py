"""Kernel invalidation: telling the kernel to drop directory entries metafs no longer backs.

:class:`KernelInvalidation` decides *which* entries: when the cache's
bound evicts an entry (the cache calls :meth:`KernelInvalidation.evicted`)
or a directory handle is released whose listing was not kept, the names
they backed are invalidated.  Without this the kernel would keep the names
(and metafs their inodes) until it forgot them on its own, so the inode
table would grow with everything ever listed.  The kernel's entries are
invalidated, never given shorter attributes: it re-asks on next use, and
FORGETs what it drops, which frees the inodes.

:class:`Invalidator` sends them, off the request path:

``fuse_lowlevel_notify_inval_entry`` may block until FUSE requests on the
same directory finish, and it may make the kernel send FORGETs; called from
a request handler it can deadlock.  So, like pyfuse3's own
``invalidate_entry_async``, entries are queued and a single thread submits
them.  Unlike pyfuse3's queue, this one is drained at unmount: entries still
queued when the mount ends are dropped, not sent to a session that is gone
(which would log a traceback for each).

The submit function is injected, so the ordering and shutdown rules are
tested without a kernel (``tests/test_notify.py``).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable

from . import metrics
from .dirlist import Listing, key_bytes, split_key
from .inodes import InodeTable

log = logging.getLogger(__name__)

Submit = Callable[[int, bytes], None]
SubmitInode = Callable[[int], None]


def _kernel_submit(parent_ino: int, name: bytes) -> None:
    import pyfuse3

    pyfuse3.invalidate_entry(parent_ino, name)


def _kernel_submit_inode(ino: int) -> None:
    import pyfuse3

    pyfuse3.invalidate_inode(ino, attr_only=False)  # attributes and cached data


class Invalidator:
    """A queue of (parent inode, name) to invalidate, served by one daemon thread."""

    def __init__(self, submit: Submit = _kernel_submit,
                 submit_inode: SubmitInode = _kernel_submit_inode) -> None:
        self._submit = submit
        self._submit_inode = submit_inode
        self._queue: queue.SimpleQueue[tuple[int, bytes | None] | threading.Event | None] = (
            queue.SimpleQueue())
        self._thread: threading.Thread | None = None
        self._closed = False
        self.sent = 0
        self.failed = 0

    def invalidate(self, parent_ino: int, name: bytes) -> None:
        """Queue one entry; returns at once.  Ignored after :meth:`close`."""
        self._put((parent_ino, name))

    def invalidate_inode(self, ino: int) -> None:
        """Queue one inode (its attributes and cached data, a forced refresh); returns at once."""
        self._put((ino, None))

    def barrier(self) -> threading.Event:
        """An event set once everything queued before it was sent (or dropped at close)."""
        done = threading.Event()
        if self._thread is None or self._closed:
            done.set()
        else:
            self._queue.put(done)
        return done

    def _put(self, item: tuple[int, bytes | None]) -> None:
        if self._closed:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="metafs-invalidate",
                                            daemon=True)
            self._thread.start()
        self._queue.put(item)

    def close(self, timeout: float = 1.0) -> None:
        """Drop what is still queued and stop the thread (before the session closes)."""
        self._closed = True
        try:
            while True:
                item = self._queue.get_nowait()
                if isinstance(item, threading.Event):
                    item.set()
        except queue.Empty:
            pass
        if self._thread is not None:
            self._queue.put(None)
            # The thread may be inside the kernel waiting on a request that
            # will now never be answered; unmounting releases it, and it is
            # a daemon thread, so do not wait long.
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, threading.Event):
                item.set()
                continue
            if item is None or self._closed:
                return
            try:
                if item[1] is None:
                    self._submit_inode(item[0])
                else:
                    self._submit(item[0], item[1])
                self.sent += 1
                metrics.recorder.kernel_invalidation("entry" if item[1] else "inode", "sent")
            except FileNotFoundError:
                # the kernel no longer holds that name: nothing to drop
                metrics.recorder.kernel_invalidation("entry" if item[1] else "inode", "unknown")
            except Exception as e:  # noqa: BLE001 - a failed hint must not end the thread
                metrics.recorder.kernel_invalidation("entry" if item[1] else "inode", "failed")
                self.failed += 1
                if not self._closed:
                    log.warning("could not invalidate %s of inode %d: %s",
                                "it" if item[1] is None else f"entry {item[1]!r}", item[0], e)


class KernelInvalidation:
    """Which kernel entries to drop when metafs stops backing names (see the module docstring)."""

    def __init__(self, inodes: InodeTable, submit: Submit | None = None) -> None:
        self._inodes = inodes
        self._submit = submit
        self.count = 0

    def evicted(self, table: str, key: str, value: object) -> None:
        """The cache's bound dropped an entry.  Must not raise (it runs inside cache operations)."""
        try:
            if table == "listings":
                assert isinstance(value, Listing)
                self._send(self._inodes.dentries_for(key, (n for n in value.names if n is not None)))
            else:
                dir_key, name = split_key(key)
                # A negative entry has no node but the kernel may cache it.
                self._send(self._inodes.dentries_for(dir_key, (name,),
                                                     known_only=table != "negatives"))
        except Exception:
            log.exception("invalidating evicted %s entry failed", table)

    def released(self, listing: Listing) -> None:
        """A directory handle let go of a listing the cache does not keep: drop its names."""
        if listing.entries:
            self.evicted("listings", listing.dir_key, listing)

    def _send(self, pairs: Iterable[tuple[int, str]]) -> None:
        n = 0
        for parent_ino, name in pairs:
            if self._submit is not None:
                self._submit(parent_ino, key_bytes(name))
            n += 1
        self.count += n

"""Telling the kernel to drop directory entries, off the request path.

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
from typing import Callable

log = logging.getLogger(__name__)

Submit = Callable[[int, bytes], None]


def _kernel_submit(parent_ino: int, name: bytes) -> None:
    import pyfuse3

    pyfuse3.invalidate_entry(parent_ino, name)


class Invalidator:
    """A queue of (parent inode, name) to invalidate, served by one daemon thread."""

    def __init__(self, submit: Submit = _kernel_submit) -> None:
        self._submit = submit
        self._queue: queue.SimpleQueue[tuple[int, bytes] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.sent = 0
        self.failed = 0

    def invalidate(self, parent_ino: int, name: bytes) -> None:
        """Queue one entry; returns at once.  Ignored after :meth:`close`."""
        if self._closed:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="metafs-invalidate",
                                            daemon=True)
            self._thread.start()
        self._queue.put((parent_ino, name))

    def close(self, timeout: float = 1.0) -> None:
        """Drop what is still queued and stop the thread (before the session closes)."""
        self._closed = True
        try:
            while True:
                self._queue.get_nowait()
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
            if item is None or self._closed:
                return
            try:
                self._submit(*item)
                self.sent += 1
            except FileNotFoundError:
                pass  # the kernel no longer holds that name: nothing to drop
            except Exception as e:  # noqa: BLE001 - a failed hint must not end the thread
                self.failed += 1
                if not self._closed:
                    log.warning("could not invalidate entry %r of inode %d: %s", item[1], item[0], e)

"""metafs.notify: invalidations leave the caller at once, in order, and stop cleanly."""

from __future__ import annotations

import threading
import time

from metafs.notify import Invalidator
from tests.conftest import wait_until as wait_for


def test_entries_are_submitted_in_order_from_another_thread() -> None:
    seen: list[tuple[int, bytes, str]] = []
    inv = Invalidator(lambda ino, name: seen.append((ino, name, threading.current_thread().name)))
    for i in range(5):
        inv.invalidate(2, b"f%d" % i)
    assert wait_for(lambda: len(seen) == 5)
    assert [s[:2] for s in seen] == [(2, b"f%d" % i) for i in range(5)]
    assert {s[2] for s in seen} == {"metafs-invalidate"}
    inv.close()
    assert inv.sent == 5


def test_caller_never_blocks_on_a_blocked_kernel_and_close_drops_the_rest() -> None:
    release = threading.Event()
    seen: list[bytes] = []

    def submit(ino: int, name: bytes) -> None:
        seen.append(name)
        release.wait(5)  # the kernel waits for a request on that directory

    inv = Invalidator(submit)
    t0 = time.monotonic()
    for i in range(100):
        inv.invalidate(1, b"n%d" % i)
    assert time.monotonic() - t0 < 0.5
    assert wait_for(lambda: seen == [b"n0"])
    inv.close(timeout=0.1)   # the unmount: pending entries are dropped
    release.set()
    assert wait_for(lambda: not inv._thread.is_alive())
    assert seen == [b"n0"]
    inv.invalidate(1, b"late")  # after close: ignored
    assert seen == [b"n0"]


def test_failures_are_counted_and_enoent_is_not_a_failure() -> None:
    def submit(ino: int, name: bytes) -> None:
        if name == b"gone":
            raise FileNotFoundError(2, "no such entry")
        raise OSError(22, "Invalid argument")

    inv = Invalidator(submit)
    inv.invalidate(1, b"gone")
    inv.invalidate(1, b"bad")
    assert wait_for(lambda: inv.failed == 1)
    inv.close()
    assert inv.sent == 0

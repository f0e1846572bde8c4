"""metafs.invalidate: which entries to drop, and invalidations that leave the caller at once."""

from __future__ import annotations

import threading
import time

from metafs.dirlist import Listing
from metafs.inodes import InodeTable
from metafs.invalidate import Invalidator, KernelInvalidation
from metafs.s3.model import ListPage, ObjectMeta
from tests.helpers import wait_until as wait_for


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


def _tree() -> tuple[InodeTable, int]:
    """The kernel holds d/ (as a directory) and d/a, d/b."""
    t = InodeTable("")
    root = t.get(1)
    assert root is not None
    d = t.ensure(root, "d", True)
    t.remember(d)
    for n in ("a", "b"):
        t.remember(t.ensure(d, n, False))
    return t, d.ino


def test_evicted_object_invalidates_its_name_if_the_kernel_holds_it() -> None:
    t, d = _tree()
    sent: list[tuple[int, bytes]] = []
    k = KernelInvalidation(t, lambda ino, name: sent.append((ino, name)))
    k.evicted("objects", "d/a", None)
    k.evicted("objects", "d/zz", None)       # no node: the kernel holds no entry
    k.evicted("objects", "other/a", None)    # the directory itself is unknown
    assert sent == [(d, b"a")] and k.count == 1


def test_evicted_negative_invalidates_even_without_a_node() -> None:
    t, d = _tree()
    sent: list[tuple[int, bytes]] = []
    k = KernelInvalidation(t, lambda ino, name: sent.append((ino, name)))
    k.evicted("negatives", "d/zz", 0.0)      # the kernel may cache a negative entry
    k.evicted("prefixes", "d/a/", 0.0)       # a prefix key names its directory
    assert sent == [(d, b"zz"), (d, b"a")]


def test_evicted_or_released_listing_invalidates_every_name_it_gave() -> None:
    t, d = _tree()
    sent: list[tuple[int, bytes]] = []
    k = KernelInvalidation(t, lambda ino, name: sent.append((ino, name)))
    lst = Listing("d/", 0.0)
    lst.add_page(ListPage([ObjectMeta("d/a", 1, 0, None), ObjectMeta("d/b", 1, 0, None),
                           ObjectMeta("d/c", 1, 0, None)], [], False, None))
    k.evicted("listings", "d/", lst)
    assert sent == [(d, b"a"), (d, b"b")] and k.count == 2
    k.released(Listing("d/", 0.0))           # an empty listing gave nothing
    k.released(lst)
    assert k.count == 4


def test_a_failing_submit_never_leaves_evicted() -> None:
    t, _ = _tree()

    def submit(ino: int, name: bytes) -> None:
        raise RuntimeError("boom")

    KernelInvalidation(t, submit).evicted("objects", "d/a", None)  # logged, not raised

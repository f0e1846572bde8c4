"""Readahead of a scan's HEADs (issue 12, target 3): exact request counts, kernel-free.

The ramp (metafs.objects.Readahead): after n files read, at most n // 2 are
sent ahead of the reader, up to the window (32), in walk order across
directories.  So a scan that stops after n files costs exactly
n + min(32, n // 2) HEADs when enough files follow: <= 1.5 x n at any length.
"""

from __future__ import annotations

import pytest
import trio

from metafs.listings import Listings
from metafs.objects import Readahead
from tests.fakes import Bucket, list_all, run_layers

WINDOW = 32


def tree_bucket(dirs: int, per_dir: int) -> tuple[Bucket, list[str], list[str]]:
    """``t/dNN/fNNN`` files and the directories, in walk order (depth first, listing order)."""
    b = Bucket()
    files = [f"t/d{d:02d}/f{i:04d}" for d in range(dirs) for i in range(per_dir)]
    for k in files:
        b.put(k, b"x")
    return b, files, ["", "t/"] + [f"t/d{d:02d}/" for d in range(dirs)]


def scan(b: Bucket, dirs: list[str], keys: list[str], *, repeat: int = 2) -> int:
    """HEADs sent while reading the xattrs of ``keys`` in order, each ``repeat`` times, plus readahead."""

    async def body(env) -> int:
        for d in dirs:
            await list_all(env, d)
        b.reset()
        async with trio.open_nursery() as n:
            env.objects.start_background(n)
            for k in keys:
                for _ in range(repeat):  # listxattr, then getxattr: one access
                    assert not isinstance(await env.objects.head(k), type(None))
                await trio.sleep(0)
        return len(b.heads())

    return run_layers(b, body)


@pytest.mark.parametrize("n", [1, 10, 50, 200, 2000])
def test_a_scan_of_n_files_in_one_directory_costs_n_plus_at_most_half(n):
    b, files, dirs = tree_bucket(1, 2100)
    heads = scan(b, dirs, files[:n])
    assert heads == n + min(WINDOW, n // 2)
    assert heads <= 1.5 * n


@pytest.mark.parametrize("n", [1, 10, 50, 200, 2000])
def test_a_scan_across_directories_reads_ahead_in_walk_order(n):
    b, files, dirs = tree_bucket(60, 40)  # 2,400 files in 60 directories
    heads = scan(b, dirs, files[:n])
    assert heads == n + min(WINDOW, n // 2)
    # What was sent ahead is what the walk reads next, across directory ends.
    sent = [r.url.path.removeprefix("/bkt/") for r in b.heads()]
    assert set(sent) == set(files[:n + min(WINDOW, n // 2)])


def test_a_lone_access_sends_exactly_its_own_head():
    b, files, dirs = tree_bucket(2, 40)
    assert scan(b, dirs, [files[41]], repeat=5) == 1


def test_random_accesses_send_nothing_ahead():
    b, files, dirs = tree_bucket(1, 200)
    assert scan(b, dirs, files[::7]) == len(files[::7])


def test_skipped_files_count_against_the_window():
    b, files, dirs = tree_bucket(1, 400)
    keys = files[::2][:100]  # every other file: each step skips one (the slack)
    heads = scan(b, dirs, keys)
    assert heads <= 1.5 * len(keys)


def test_the_walk_stops_at_a_directory_not_listed():
    """Readahead sends no LIST: past the end of what is listed, nothing is guessed."""
    b, files, dirs = tree_bucket(3, 10)
    heads = scan(b, dirs[:3], files[:10])  # only t/d00/ listed: its 10 files, nothing after
    assert heads == 10
    assert not b.lists()


def test_files_after_follows_depth_first_listing_order():
    b = Bucket()
    for k in ["a/x", "a/y/1", "a/y/2", "a/y/z/3", "a/yy", "a/z", "b"]:
        b.put(k)

    async def body(env) -> list[str]:
        for d in ["", "a/", "a/y/", "a/y/z/"]:
            await list_all(env, d)
        ls: Listings = env.listings
        return list(ls.files_after("a/x"))

    assert run_layers(b, body) == ["a/y/1", "a/y/2", "a/y/z/3", "a/yy", "a/z", "b"]


def test_the_ramp_alone():
    ra = Readahead(max_window=4)
    order = [f"k{i}" for i in range(20)]

    def after(k: str):
        return lambda: iter(order[order.index(k) + 1:])

    got = [ra.access(k, after(k)) for k in order[:10]]
    assert got[0] == [] and got[1] == ["k2"]  # 2 read: 1 ahead
    assert ra.access("k9", after("k9")) == []  # the same file again
    sent = [k for g in got for k in g]
    # k0..k9 read; sent ahead: k2..k9 as the ramp grew, then k10..k13 (the window, 4).
    assert sent == [f"k{i}" for i in range(2, 14)]
    assert [len(g) for g in got] == [0, 1, 1, 2, 1, 2, 1, 2, 1, 1]

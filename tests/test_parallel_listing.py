"""Huge directories listed in parallel key ranges, on real mounts (metafs/ranges.py).

The proof that ranges list exactly what the sequential listing lists is
tests/test_ranges.py's; here the same through the kernel, by request counts.
"""

from __future__ import annotations

import itertools

import pytest

from tests.helpers import put_many, xattr

pytestmark = pytest.mark.mount

N = 10_000
# Files, a directory amid them that shadows a file of its name (the directory
# wins across ranges too), a name that sorts between "f05000" and "f05000/".
KEYS = ([f"huge/f{i:05d}" for i in range(N)] + ["huge/f05000/x", "huge/f05000/y", "huge/f05000!b",
                                                 "huge/f07777/z", "huge/zz/deep/er"])
SEQUENTIAL_LISTS = 11  # 10,004 items at 1,000 a page
SMALLER = [f"huge/f{i:05d}" for i in range(4_000)] + ["huge/f01000/x"]  # 4 pages


def lists(s3, prefix: str = "huge/") -> list:
    """The listings of ``prefix`` (the lookup's flat probe page is the listing's first page)."""
    return [r for r in s3.log("LIST") if r.query.get("prefix") == prefix]


def overlapping(recs) -> int:
    recs = sorted(recs, key=lambda r: r.started)
    return sum(1 for a, b in itertools.pairwise(recs) if b.started < a.finished)


def test_ls_of_a_huge_directory_lists_ranges_in_parallel_with_the_sequential_result(
        mount, bucket, s3):
    put_many(bucket, KEYS)
    seq = mount(bucket, "--max-connections", "1")  # one connection: no ranges at all
    s3.reset()
    expected = seq.run("ls -f huge").stdout
    assert len(lists(s3)) == SEQUENTIAL_LISTS
    # (Only page 2 starts after a key: the probe's flat first page's last one.)
    assert sum("start-after" in r.query for r in lists(s3)) <= 1
    assert xattr(seq, ".", "metafs.range-requests") == b"0"
    seq.unmount()

    m = mount(bucket)
    s3.reset()
    s3.delay = 0.02
    out = m.run("ls -l huge").stdout
    s3.delay = 0.0
    assert out.count("\n") == N - 1 + 3 + 1  # "total", N - 1 files, 3 directories, f05000!b
    recs = lists(s3)
    ranged = [r for r in recs if "start-after" in r.query]
    # Three sequential pages, then ranges: about what the sequential listing costs.
    assert SEQUENTIAL_LISTS <= len(recs) <= SEQUENTIAL_LISTS + 8
    assert len(ranged) >= 4
    assert overlapping(recs) >= 4  # in flight together
    assert int(xattr(m, ".", "metafs.range-requests")) == len(recs) - 3
    s3.reset()
    assert m.run("ls -f huge").stdout == expected  # readdir order, entry for entry
    assert s3.log("LIST") == []  # (served from the listing just made)


def test_a_reader_that_stops_early_sends_no_burst(mount, bucket, s3):
    put_many(bucket, SMALLER)
    m = mount(bucket)
    s3.reset()
    m.run("python3 -c \"import os, itertools; "
          "print(len(list(itertools.islice(os.scandir('huge'), 20))))\"")
    assert len(lists(s3)) == 1
    assert xattr(m, ".", "metafs.range-requests") == b"0"
    s3.reset()
    m.run("ls -f huge | head -3")  # unsorted: ls stops at the broken pipe
    assert len(lists(s3)) <= 1
    assert xattr(m, ".", "metafs.range-requests") == b"0"
    m.run("ls huge | head -3")  # sorted: ls reads it all, so ranges now
    assert int(xattr(m, ".", "metafs.range-requests")) >= 1


def test_a_server_that_ignores_start_after_is_listed_sequentially(mount, bucket, s3):
    put_many(bucket, SMALLER + [f"other/k{i:05d}" for i in range(3_000)])
    seq = mount(bucket, "--max-connections", "1")
    expected = seq.run("ls -f huge").stdout
    expected_other = seq.run("ls -f other").stdout
    seq.unmount()

    s3.ignore_start_after = True
    m = mount(bucket)
    s3.reset()
    assert m.run("ls -f huge").stdout == expected  # found out, finished sequentially
    assert any("start-after" in r.query for r in lists(s3))
    s3.reset()
    before = xattr(m, ".", "metafs.range-requests")
    assert m.run("ls -f other").stdout == expected_other
    recs = lists(s3, "other/")
    # 3,000 keys: no ranges for this endpoint from now on.  (Page 2 starts after the probe's
    # flat page's last key, which this server ignores too: one page more, not the ranges'.)
    assert len(recs) <= 4
    assert xattr(m, ".", "metafs.range-requests") == before

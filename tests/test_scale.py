"""Behaviour that keeps metafs cheap at scale, on real mounts, by request counts.

Times are the benchmark's business (scripts/bench.py); these tests pin the
request counts and memory bookkeeping that the times rest on.
"""

from __future__ import annotations

import itertools
import time

import pytest

from tests.helpers import put_many, wait_until, xattr

pytestmark = pytest.mark.mount


def stat_int(m, name: str) -> int:
    return int(xattr(m, ".", f"metafs.{name}"))


def test_forget_releases_inodes(mount, bucket):
    put_many(bucket, [f"many/{i:04d}" for i in range(2000)])
    m = mount(bucket)
    m.run("ls -l many >/dev/null")
    assert stat_int(m, "inodes") >= 2001  # readdirplus handed every entry to the kernel
    # Make the kernel evict its unused dentries and inodes: it sends FORGET.
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")
    deadline = time.monotonic() + 10
    while stat_int(m, "inodes") > 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stat_int(m, "inodes") <= 10
    # Still correct after forgetting: names resolve again from the cached listing.
    assert m.run("stat -c %s many/1999").stdout.strip() == "1"


def test_sequential_getfattr_reads_ahead_with_bounded_overshoot(mount, bucket, s3):
    put_many(bucket, [f"scan/f{i:03d}" for i in range(300)])
    m = mount(bucket)
    m.run("ls scan >/dev/null")
    s3.reset()
    m.run("getfattr -d scan/f150")  # a lone access: exactly its own HEAD
    assert s3.counts()["HEAD"] == 1
    s3.reset()
    s3.delay = 0.02
    m.run("for f in scan/f0* scan/f1[0-4]*; do getfattr -d \"$f\" >/dev/null; done")  # 150 files
    s3.delay = 0.0
    heads = s3.counts()["HEAD"]
    assert 150 <= heads <= 150 * 1.5 - 1
    # The scan ran ahead: HEADs were in flight together.
    recs = sorted(s3.log("HEAD"), key=lambda r: r.started)
    overlapping = sum(1 for a, b in itertools.pairwise(recs) if b.started < a.finished)
    assert overlapping > 50


def test_getfattr_of_ten_files_in_one_process_sends_at_most_fifteen_heads(mount, bucket, s3):
    """Issue 12: readahead ramps on what the reader read (1 read: 0 ahead; n read: n // 2)."""
    put_many(bucket, [f"ten/f{i:03d}" for i in range(100)])
    m = mount(bucket, "--no-tags", "--no-annotations")
    m.run("ls ten >/dev/null")
    s3.reset()
    out = m.run("getfattr -d " + " ".join(f"ten/f{i:03d}" for i in range(10))).stdout
    assert out.count("# file: ") == 10
    time.sleep(0.5)  # readahead in flight is counted too
    heads = [r.path.rsplit("/", 1)[1] for r in s3.log("HEAD")]
    assert len(heads) == 10 + 10 // 2  # exactly: the 10 read, and 5 ahead
    assert set(heads) == {f"f{i:03d}" for i in range(15)}


def test_getfattr_R_reads_ahead_across_directories_within_the_bound(mount, bucket, s3):
    put_many(bucket, [f"tree/d{d}/f{i:02d}" for d in range(6) for i in range(20)])
    m = mount(bucket, "--no-tags", "--no-annotations")
    s3.reset()
    out = m.run("getfattr -R -d tree").stdout
    assert out.count("# file: tree/d") == 6 + 120
    time.sleep(0.5)
    heads = [r.path.split("/", 2)[2] for r in s3.log("HEAD")]
    files = [h for h in heads if "/f" in h]
    # Every file once; readahead ran across directory ends (the walk reads all 120, so
    # nothing sent ahead is wasted: exactly one HEAD per file).
    assert sorted(files) == sorted(f"tree/d{d}/f{i:02d}" for d in range(6) for i in range(20))


def test_relisted_unchanged_directory_keeps_head_metadata(mount, boto, bucket, s3):
    for i in range(20):
        boto.put_object(Bucket=bucket, Key=f"bulk/f{i:02d}", Body=b"x", Metadata={"n": str(i)})
    m = mount(bucket, "--metadata-ttl", "1")
    m.run("ls bulk >/dev/null; for f in bulk/*; do getfattr -d \"$f\" >/dev/null; done")
    time.sleep(1.2)
    boto.put_object(Bucket=bucket, Key="bulk/f07", Body=b"changed", Metadata={"n": "seven"})
    s3.reset()
    m.run("ls -l bulk >/dev/null")
    # The revalidation of the name 'bulk' is the flat first page of bulk/ (20 keys),
    # which lists it: no delimiter page (was: that LIST max-keys=1, then one page).
    assert [("delimiter" in r.query, r.query["prefix"]) for r in s3.log("LIST")] == [
        (False, "bulk/")]
    out = m.run("for f in bulk/*; do getfattr -n user.n --only-values \"$f\"; echo; done").stdout
    assert out.split() == [str(i) if i != 7 else "seven" for i in range(20)]
    c = s3.counts()
    assert c["HEAD"] == 1 and c["HEAD_COND"] == 0  # only the changed one


def test_first_entries_arrive_after_the_first_page(mount, bucket, s3):
    put_many(bucket, [f"huge/entry-{i:06d}-padding" for i in range(3500)])
    m = mount(bucket)
    out = m.run("ls -f huge | head -3").stdout.split()
    assert len(out) == 3
    # The lookup of huge: its probe's flat page (the first 1,000 keys) is the listing's
    # first page; ls stopped (SIGPIPE) before anyone asked for page 2.
    (probe,) = s3.log("LIST")
    assert probe.query["prefix"] == "huge/" and "delimiter" not in probe.query
    s3.reset()
    assert int(m.run("ls -f huge | wc -l").stdout) == 3502
    pages = [r for r in s3.log("LIST") if "delimiter" in r.query]
    # The listing in progress is shared and continued, never restarted: page 2 after the
    # flat page's last key, page 3 by continuation token, then the rest in parallel ranges
    # (metafs/ranges.py: one range ahead, so one request more than pages 2 to 4).
    assert 3 <= len(pages) <= 4 and len(s3.log("LIST")) == len(pages)
    assert pages[0].query["start-after"] == "huge/entry-000999-padding"
    assert pages[1].query.get("continuation-token")
    assert all(p.query.get("continuation-token") or p.query.get("start-after") for p in pages)


def test_concurrent_stats_of_distinct_files_overlap(mount, bucket, s3):
    """Lookups in *different* directories run together.

    (Lookups within one directory are serialized by the kernel: Debian's
    libfuse 3.14 never sends FUSE_PARALLEL_DIROPS in its INIT reply, a bug
    fixed in libfuse 3.17.1, so fuse_lookup() takes the directory's mutex.
    See SEMANTICS.md.)
    """
    import subprocess

    put_many(bucket, [f"par{i}/f" for i in range(8)])
    m = mount(bucket)
    m.run("ls >/dev/null")  # the par* directories are known; their files are not
    s3.reset()
    s3.delay = 0.2
    procs = [subprocess.Popen(["stat", f"par{i}/f"], cwd=m.path, stdout=subprocess.DEVNULL)
             for i in range(8)]
    assert all(p.wait(30) == 0 for p in procs)
    s3.delay = 0.0
    heads = s3.log("HEAD")
    assert len(heads) == 8
    first_done = min(r.finished for r in heads)
    assert sum(1 for r in heads if r.started < first_done) >= 6  # in flight together


def test_missing_name_storm_converges_on_one_listing(mount, bucket, s3):
    put_many(bucket, [f"d/f{i:04d}" for i in range(1500)])  # two LIST pages
    m = mount(bucket)
    m.run("stat d >/dev/null")
    s3.reset()
    names = " ".join(f"d/zz-missing{i:03d}" for i in range(60))  # all sort after every f*
    r = m.run(f"stat {names}", check=False)
    assert r.stderr.count("No such file") == 60
    pages = [x for x in s3.log("LIST") if "delimiter" in x.query]
    # The directory was listed once, page by page: its first page was the probe of d
    # (the flat page of its first 1,000 keys), the second is asked for after it.
    assert len(pages) == 1 and pages[0].query["start-after"] == "d/f0999"
    assert s3.counts()["HEAD"] <= 4  # only the misses before the listing covered them
    s3.reset()
    assert m.run(f"stat {names}", check=False).stderr.count("No such file") == 60
    assert sum(s3.counts().values()) == 0


def test_cache_bound_holds_for_listings(mount, bucket, s3):
    put_many(bucket, [f"big/f{i:04d}" for i in range(2000)])
    m = mount(bucket, "--cache-entries", "500")
    assert len(m.run("ls -f big").stdout.split()) == 2002
    # A listing larger than the bound is served to its reader, not kept.
    assert stat_int(m, "cache.listed-entries") <= 500
    assert stat_int(m, "cache.objects") <= 500
    # The kernel was told to drop the names nothing backs: it FORGETs them.
    assert wait_until(lambda: stat_int(m, "inodes") <= 500)
    assert stat_int(m, "invalidations") == 2000
    s3.reset()
    assert len(m.run("ls -f big").stdout.split()) == 2002
    assert len([x for x in s3.log("LIST") if "delimiter" in x.query]) == 2


def test_evicted_listings_are_invalidated_in_the_kernel(mount, bucket, s3):
    """The bound holds for inodes too: evicted names are invalidated, then forgotten."""
    put_many(bucket, [f"d{d}/f{i:03d}" for d in range(3) for i in range(300)])
    m = mount(bucket, "--cache-entries", "500")
    for d in range(3):  # each listing weighs 301: listing d1 evicts d0, d2 evicts d1
        assert len(m.run(f"ls -l d{d}").stdout.splitlines()) == 301
    assert wait_until(lambda: stat_int(m, "inodes") <= 1 + 3 + 300)
    assert stat_int(m, "invalidations") == 600
    assert stat_int(m, "cache.listed-entries") == 301 + 4  # d2 and the root (d0, d1, d2)
    # Nothing is lost: an invalidated name is asked for again, and answered.
    s3.reset()
    out = m.run("stat --format=%s d0/f007").stdout
    assert out.strip() == "1"
    assert s3.counts()["HEAD"] + s3.counts()["LIST"] >= 1  # the kernel did re-ask


def test_find_sends_one_flat_listing_and_no_head(mount, bucket, s3):
    """find . over 13 directories: the root's page, then one flat page for the tree (walks.py)."""
    keys = [f"t/a{a}/b{b}/f{f}" for a in range(3) for b in range(3) for f in range(4)]
    put_many(bucket, keys)
    m = mount(bucket)
    found = m.run("find . -type f").stdout.split()
    assert sorted(found) == sorted("./" + k for k in keys)
    pages = [r for r in s3.log("LIST") if "delimiter" in r.query]
    assert [r.query.get("prefix", "") for r in pages] == [""]  # the root, by delimiter
    flat = [r for r in s3.log("LIST") if "delimiter" not in r.query]
    assert [(r.query.get("prefix", ""), r.query.get("start-after")) for r in flat] == [("", "t/")]
    assert s3.counts()["HEAD"] == 0
    assert s3.counts()["LIST"] == 2  # no probe: every name came from a listing

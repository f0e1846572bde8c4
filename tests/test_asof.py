"""``--as-of TIME``: a point-in-time mount (metafs.asof), on moto for S3, kernel-free and real."""

from __future__ import annotations

import datetime as dt
import errno
import os

import pytest

from metafs.asof import collapse, moment_text, parse_moment
from metafs.config import parse_args
from metafs.errors import ConfigError
from metafs.s3.model import Version, VersionsPage
from tests.helpers import put_versions, run_metafs, stat_fields, version_times, xattr

T = [dt.datetime(2026, 1, 1, h, tzinfo=dt.UTC) for h in range(12)]
AT = "2026-01-01T05:00:00Z"  # between T[4] and T[6]


def _v(key: str, hour: int, marker: bool = False, vid: str = "v") -> Version:
    return Version(key, f"{vid}{hour}", False, marker, int(T[hour].timestamp()) * 1000, hour,
                   f'"{key}{hour}"')


# -- pure ---------------------------------------------------------------------------------------

def test_moment_forms_and_refusals():
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert parse_moment("2026-11-01", now) == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert parse_moment("2026-11-01T00:00:00Z", now) == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert parse_moment("2026-11-01T02:00:00+02:00", now) == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert parse_moment("2026-11-01 00:00:00.250", now).microsecond == 250_000
    for bad in ("yesterday", "2026-13-01", ""):
        with pytest.raises(ConfigError, match="ISO 8601"):
            parse_moment(bad, now)
    with pytest.raises(ConfigError, match="future"):
        parse_moment("2026-12-02", now)
    assert moment_text(1_767_225_600_250) == "2026-01-01T00:00:00.250Z"
    assert parse_args(["bkt", "/mnt", "--as-of", "2026-01-01"]).as_of_ms == 1_767_225_600_000
    assert parse_args(["bkt", "/mnt", "-o", "as-of=2026-01-01T00:00:00Z,ro"]).as_of_ms == \
        1_767_225_600_000
    with pytest.raises(ConfigError, match="directory bucket"):
        parse_args(["b--usw2-az1--x-s3", "/mnt", "--region", "us-west-2", "--as-of", "2026-01-01"])


def test_collapse_keeps_the_newest_version_at_the_moment_across_pages():
    moment = int(T[5].timestamp()) * 1000
    p1 = VersionsPage([_v("a", 7), _v("a", 4), _v("a", 2),  # a: the 4 o'clock version
                       _v("b", 6, marker=True), _v("b", 3),  # b: deleted after the moment
                       _v("c", 4, marker=True), _v("c", 1),  # c: deleted before it
                       _v("d", 8)], [], True, "d", "v8")  # d: written after it...
    shown, decided = collapse(p1, moment, None)
    assert [(s.meta.key, s.version_id, s.meta.size) for s in shown] == [("a", "v4", 4), ("b", "v3", 3)]
    assert decided == "c"
    # ...and its older version on the next page is the one at the moment; a
    # key decided on the last page skips its older versions on this one.
    p2 = VersionsPage([_v("d", 3), _v("e", 5), _v("e", 1)], [], False, None, None)
    shown, decided = collapse(p2, moment, decided)
    assert [(s.meta.key, s.version_id) for s in shown] == [("d", "v3"), ("e", "v5")]
    p3 = VersionsPage([_v("e", 0)], [], False, None, None)
    assert collapse(p3, moment, "e")[0] == []


# -- real mounts on moto ------------------------------------------------------------------------

def _history(boto, bucket: str) -> dict[str, list[str]]:
    """A bucket with a history around AT; returns each key's version ids, oldest first."""
    boto.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    plan = {
        "a.txt": [(b"old", T[1]), (b"newer!", T[6])],       # shows the old bytes
        "gone.txt": [(b"g", T[1]), (None, T[3])],           # deleted before: hidden
        "late.txt": [(b"late", T[7])],                      # written after: hidden
        "kept.txt": [(b"kept", T[2]), (None, T[8])],        # deleted after: shown
        "dead/x": [(b"x", T[1]), (None, T[2])],             # every key deleted: no dir
        "future/y": [(b"y", T[9])],                         # every key after: no dir
        "dir/z": [(b"zz", T[2])],
        "dir/sub/w": [(b"w", T[3]), (b"w2", T[4]), (None, T[5])],
    }
    ids = {}
    for key, steps in plan.items():
        for body, _ in steps:
            if body is None:
                boto.delete_object(Bucket=bucket, Key=key)
            else:
                boto.put_object(Bucket=bucket, Key=key, Body=body)
        ids[key] = version_times(bucket, key, *(t for _, t in steps))
    return ids


@pytest.mark.mount
def test_as_of_mount_shows_the_bucket_at_the_moment(mount, boto, bucket, s3):
    ids = _history(boto, bucket)
    # The TTL does not matter: nothing in an as-of mount expires.
    m = mount(bucket, "--as-of", AT, "--metadata-ttl", "0")
    out = m.run("ls -l --time-style=+%s").stdout
    assert sorted(line.split()[-1] for line in out.splitlines()[1:]) == ["a.txt", "dir", "kept.txt"]
    c = s3.counts()
    # One versions-listing page of the root, one check of each of its 3 prefixes, no HEAD.
    assert (c["LIST"], c["HEAD"], c["GET"]) == (4, 0, 0), c
    assert sorted(r.query["prefix"] for r in s3.log("LIST")[1:]) == ["dead/", "dir/", "future/"]
    assert stat_fields(m, "a.txt") == ["regular file", "3", str(int(T[1].timestamp()))]
    # dir/sub/w was deleted at 05:00:00 exactly: LastModified <= TIME, so deleted at TIME.
    assert sorted(os.listdir(m.path / "dir")) == ["z"]
    s3.reset()
    # A re-stat, a re-listing: nothing, whatever the TTL.
    m.run("ls -lR . && stat a.txt kept.txt dir/z && ! stat dir/sub")
    assert sum(s3.counts().values()) == 0
    # Metadata and bytes are those of the version at the moment.
    assert (m.path / "a.txt").read_bytes() == b"old"
    assert xattr(m, "a.txt", "s3.version-id") == ids["a.txt"][0].encode()
    c = s3.counts()
    assert (c["LIST"], c["HEAD"], c["GET"]) == (0, 1, 1), c
    assert all(r.query.get("versionId") == ids["a.txt"][0] for r in s3.log("HEAD", "GET"))
    assert xattr(m, ".", "s3.as-of") == b"2026-01-01T05:00:00.000Z"
    # Names are absent for good.
    for name in ("gone.txt", "late.txt", "dead", "future"):
        assert not os.path.exists(m.path / name)
    s3.reset()
    assert not os.path.exists(m.path / "gone.txt")
    assert sum(s3.counts().values()) == 0


@pytest.mark.mount
def test_as_of_lookup_by_name_without_a_listing(mount, boto, bucket, s3):
    ids = _history(boto, bucket)
    m = mount(bucket, "--as-of", AT)
    assert stat_fields(m, "kept.txt", "%s") == ["4"]
    assert xattr(m, "kept.txt", "s3.version-id") == ids["kept.txt"][0].encode()
    assert not os.path.exists(m.path / "gone.txt")
    assert not os.path.exists(m.path / "late.txt")
    assert not os.path.exists(m.path / "dead")
    assert os.path.isdir(m.path / "dir")
    heads = s3.log("HEAD")
    assert heads and all("versionId" in r.query for r in heads)
    with pytest.raises(OSError) as ei:
        os.stat(m.path / "dead/x")
    assert ei.value.errno == errno.ENOENT


@pytest.mark.mount
def test_as_of_paging_keeps_a_keys_versions_together(mount, boto, bucket, s3, monkeypatch):
    """Pages of 4 entries: versions of one key span pages, and a whole page can be skipped."""
    monkeypatch.setenv("MOTO_S3_DEFAULT_MAX_KEYS", "4")  # moto's server is in this process
    boto.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for key, n in (("a", 2), ("b", 9), ("c", 3)):
        for i in range(n):
            boto.put_object(Bucket=bucket, Key=key, Body=b"%s%d" % (key.encode(), i))
    version_times(bucket, "a", T[1], T[2])
    version_times(bucket, "b", *T[1:10])  # b4 at 4:00 is the one at 5:00
    version_times(bucket, "c", T[8], T[9], T[10])  # all after the moment
    m = mount(bucket, "--as-of", AT)
    assert os.listdir(m.path) == ["a", "b"]
    lists = s3.log("LIST")
    assert len(lists) == 4  # 2 + 9 + 3 = 14 entries, 4 a page
    assert lists[1].query["key-marker"] == "b"
    assert (m.path / "b").read_bytes() == b"b4"
    assert (m.path / "a").read_bytes() == b"a1"


@pytest.mark.mount
def test_unversioned_bucket_mounts_with_one_warning(mount, boto, bucket, s3):
    boto.put_object(Bucket=bucket, Key="now.txt", Body=b"n")
    m = mount(bucket, "--as-of", dt.datetime.now(dt.UTC).isoformat())
    assert os.listdir(m.path) == ["now.txt"]
    assert m.log_text().count("never had versioning") == 1
    assert (m.path / "now.txt").read_bytes() == b"n"


@pytest.mark.mount
def test_as_of_refusals_are_one_line(bucket):
    r = run_metafs("--as-of", "last tuesday", bucket, "/tmp")
    assert r.returncode != 0 and "ISO 8601" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_metafs("--as-of", "2026-01-01", "--region", "us-west-2", "b--usw2-az1--x-s3", "/tmp")
    assert r.returncode != 0 and "keeps no versions" in r.stderr


@pytest.mark.mount
def test_figure_as_of_ls_of_2000_objects_with_3_versions(mount, boto, bucket, s3):
    """Closing-note figure: ``ls -l`` of 2,000 objects, 3 versions each, as of a moment."""
    boto.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    put_versions(bucket, [f"f{i:04d}" for i in range(2000)], 3, T[1])
    m = mount(bucket, "--as-of", AT)
    out = m.run("ls -l").stdout
    assert len(out.splitlines()) == 2001
    c = s3.counts()
    assert (c["LIST"], c["HEAD"], c["GET"]) == (6, 0, 0), c  # 6,000 versions, 1,000 a page
    s3.reset()
    m.run("ls -l && stat f0000 f1999")
    assert sum(s3.counts().values()) == 0


@pytest.mark.mount
def test_as_of_prefix_mount_with_the_versions_view(mount, boto, bucket, s3):
    ids = _history(boto, bucket)
    m = mount(f"{bucket}/dir", "--as-of", AT, "--versions")
    assert os.listdir(m.path) == ["z"]
    assert (m.path / "z").read_bytes() == b"zz"
    # The view shows every version under the prefix, whatever the moment.
    assert sorted(os.listdir(m.path / ".metafs/versions")) == ["sub", "z"]
    assert len(os.listdir(m.path / ".metafs/versions/sub/w")) == 3
    assert os.listdir(m.path / ".metafs/versions/z") == [
        f"2026-01-01T02:00:00.000Z_{ids['dir/z'][0]}"]

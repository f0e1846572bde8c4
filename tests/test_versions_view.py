"""``--versions``: every version of every object under ``.metafs/versions/`` (metafs.versions),
on real mounts of moto (S3) and of the vendor fakes, and its names and xattrs kernel-free."""

from __future__ import annotations

import datetime as dt
import errno
import os

import pytest

from metafs.s3.model import Version
from metafs.versions import version_file, version_name
from tests.helpers import put_versions, version_times, xattr

T = [dt.datetime(2026, 1, 1, h, tzinfo=dt.UTC) for h in range(12)]


def test_version_names_sort_by_time_and_carry_the_id():
    a = Version("k", "v/1%", True, False, 1_767_225_600_123, 5, '"e"', "STANDARD")
    b = Version("k", "zz", False, True, 1_767_225_599_999)
    assert version_name(a) == "2026-01-01T00:00:00.123Z_v%2F1%25"
    assert version_name(b) == "2025-12-31T23:59:59.999Z_zz"
    assert sorted([version_name(a), version_name(b)]) == [version_name(b), version_name(a)]
    f = version_file(a, 7.0)
    assert f.meta.size == 5 and f.timeout == 7.0
    assert f.meta.xattrs is not None
    assert f.meta.xattrs[b"user.s3.version-id"] == b"v/1%" and f.meta.xattrs[b"user.s3.is-latest"] == b"true"
    assert f.meta.xattrs[b"user.s3.delete-marker"] == b"false" and f.meta.xattrs[b"user.s3.etag"] == b"e"
    m = version_file(b, 7.0)
    assert m.meta.size == 0 and m.meta.xattrs and m.meta.xattrs[b"user.s3.delete-marker"] == b"true"


def _history(boto, bucket: str) -> dict[str, list[str]]:
    boto.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"1", b"22", b"333"):
        boto.put_object(Bucket=bucket, Key="a.txt", Body=body, Metadata={"rev": str(len(body))})
    boto.put_object(Bucket=bucket, Key="deleted.txt", Body=b"was")
    boto.delete_object(Bucket=bucket, Key="deleted.txt")
    boto.put_object(Bucket=bucket, Key="dir/b", Body=b"b")
    return {"a.txt": version_times(bucket, "a.txt", T[1], T[2], T[3]),
            "deleted.txt": version_times(bucket, "deleted.txt", T[1], T[4]),
            "dir/b": version_times(bucket, "dir/b", T[5])}


@pytest.mark.mount
def test_versions_view_on_a_live_mount(mount, boto, bucket, s3):
    ids = _history(boto, bucket)
    plain = mount(bucket)
    plain.run("ls -l")
    without = s3.counts()
    m = mount(bucket, "--versions")
    # A plain ls -l costs what it costs without the view, and does not show it.
    assert sorted(os.listdir(m.path)) == ["a.txt", "dir"]
    m.run("ls -l")
    assert s3.counts() == without == {**without, "LIST": 1, "HEAD": 0}
    s3.reset()
    # annotations: on by default on S3
    assert sorted(os.listdir(m.path / ".metafs")) == ["annotations", "objects", "versions"]
    assert sum(s3.counts().values()) == 0
    # The view mirrors the tree, the deleted object's history included.
    assert sorted(os.listdir(m.path / ".metafs/versions")) == ["a.txt", "deleted.txt", "dir"]
    assert s3.counts()["LIST"] == 1
    assert all("versions" in r.query for r in s3.log("LIST"))
    names = m.run("ls -l .metafs/versions/a.txt").stdout.splitlines()[1:]
    assert [ln.split()[4] for ln in names] == ["1", "2", "3"]  # sorted by time: sizes 1, 2, 3
    assert [ln.split()[-1] for ln in names] == [
        f"2026-01-01T0{h}:00:00.000Z_{vid}" for h, vid in zip((1, 2, 3), ids["a.txt"], strict=True)]
    assert s3.counts()["LIST"] == 1 and s3.counts()["HEAD"] == 0  # the same listing answered
    first = f".metafs/versions/a.txt/2026-01-01T01:00:00.000Z_{ids['a.txt'][0]}"
    assert (m.path / first).read_bytes() == b"1"
    assert [r.query.get("versionId") for r in s3.log("GET")] == [ids["a.txt"][0]]
    assert xattr(m, first, "s3.version-id") == ids["a.txt"][0].encode()
    assert xattr(m, first, "s3.is-latest") == b"false"
    assert xattr(m, first, "s3.delete-marker") == b"false"
    assert s3.counts()["HEAD"] == 0  # the listing's names cost nothing
    # Any other name costs one HEAD of that version, once: its metadata as it was.
    assert xattr(m, first, "user.rev") == b"1"
    assert "user.rev" in os.listxattr(m.path / first)
    assert [r.query.get("versionId") for r in s3.log("HEAD")] == [ids["a.txt"][0]]
    latest = f".metafs/versions/a.txt/2026-01-01T03:00:00.000Z_{ids['a.txt'][2]}"
    assert xattr(m, latest, "s3.is-latest") == b"true"
    assert int(os.stat(m.path / latest).st_mtime) == int(T[3].timestamp())
    marker = f".metafs/versions/deleted.txt/2026-01-01T04:00:00.000Z_{ids['deleted.txt'][1]}"
    assert os.stat(m.path / marker).st_size == 0
    assert xattr(m, marker, "s3.delete-marker") == b"true"
    assert (m.path / marker).read_bytes() == b""
    old = f".metafs/versions/deleted.txt/2026-01-01T01:00:00.000Z_{ids['deleted.txt'][0]}"
    assert (m.path / old).read_bytes() == b"was"
    assert m.run("find .metafs/versions/dir -type f").stdout.split() == [
        f".metafs/versions/dir/b/2026-01-01T05:00:00.000Z_{ids['dir/b'][0]}"]
    assert not os.path.exists(m.path / ".metafs/versions/nothing")
    with pytest.raises(OSError) as ei:
        os.open(m.path / first, os.O_WRONLY)
    assert ei.value.errno == errno.EROFS
    # The view needs the option.
    assert os.listdir(plain.path / ".metafs") == ["annotations", "objects"]  # no versions without --versions


@pytest.mark.mount
def test_figure_versions_view_of_one_object_with_50_versions(mount, boto, bucket, s3):
    """Closing-note figure: ``ls -l`` of one object's 50 versions in the view."""
    boto.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    put_versions(bucket, ["obj"], 50, T[1])
    m = mount(bucket, "--versions")
    out = m.run("ls -l .metafs/versions/obj").stdout.splitlines()
    assert len(out) == 51
    c = s3.counts()
    assert (c["LIST"], c["HEAD"], c["GET"]) == (1, 0, 0), c
    s3.reset()
    m.run("ls -l .metafs/versions/obj && getfattr -n s3.version-id .metafs/versions/obj/*")
    assert sum(s3.counts().values()) == 0
    m.run("getfattr -d -m - .metafs/versions/obj/*")  # all names: one HEAD per version
    assert s3.counts()["HEAD"] == 50 and s3.counts()["LIST"] == 0


@pytest.mark.mount
def test_versions_view_looks_up_one_name_without_listing_its_directory(mount, boto, bucket, s3,
                                                                        monkeypatch):
    monkeypatch.setenv("MOTO_S3_DEFAULT_MAX_KEYS", "10")  # moto's server is in this process
    boto.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    put_versions(bucket, [f"big/k{i:02d}" for i in range(30)], 2, T[1])
    # "big/k07" is also a prefix (the directory wins), with "big/k07-x" between the two.
    put_versions(bucket, ["big/k07-x", "big/k07/inner"], 1, T[2])
    m = mount(bucket, "--versions")
    assert len(os.listdir(m.path / ".metafs/versions/big/k05")) == 2
    lists = s3.log("LIST")
    # "big" is decided by one request of prefix=big, "k05" by one of prefix=big/k05:
    # the directory's 62 entries (7 pages) are not listed.
    assert [r.query["prefix"] for r in lists] == ["big", "big/k05"]
    assert os.listdir(m.path / ".metafs/versions/big/k07") == ["inner"]
    assert os.path.isdir(m.path / ".metafs/versions/big/k07/inner")
    s3.reset()
    assert len(os.listdir(m.path / ".metafs/versions/big")) == 31  # 30 keys (k07 a dir), k07-x
    assert len(s3.log("LIST")) == 7

"""Real mounts on moto: the as-of view and the versions view show each version's own tags
and annotations (issue 11 §2, version-aware), every request with that ``versionId``."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from tests.helpers import version_times

pytestmark = pytest.mark.mount

T = [dt.datetime(2026, 1, 1, h, tzinfo=dt.UTC) for h in range(12)]
AT = "2026-01-01T05:00:00Z"  # between the two versions
KINDS = ("HEAD", "HEAD_COND", "TAGGING", "ANNOTATIONS", "ANNOTATION", "GET")


def xattrs_of(path: Path) -> dict[str, bytes]:
    return {n: os.getxattr(path, n) for n in os.listxattr(path)}


def channel_names(table: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in table.items() if k.startswith(("user.s3.tag.", "user.s3.annotation."))}


def two_versions(boto, bucket: str) -> list[str]:
    """a.txt: version 1 (T1) tagged rev=one, annotated note=first; version 2 (T6) otherwise."""
    boto.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    boto.put_object(Bucket=bucket, Key="a.txt", Body=b"one")
    boto.put_object_tagging(Bucket=bucket, Key="a.txt",
                            Tagging={"TagSet": [{"Key": "rev", "Value": "one"}]})
    boto.put_object_annotation(Bucket=bucket, Key="a.txt", AnnotationName="note",
                               AnnotationPayload=b"first")
    boto.put_object(Bucket=bucket, Key="a.txt", Body=b"two!")
    boto.put_object_tagging(Bucket=bucket, Key="a.txt", Tagging={"TagSet": [
        {"Key": "rev", "Value": "two"}, {"Key": "extra", "Value": "x"}]})
    for name, payload in (("note", b"second"), ("more", b"m")):
        boto.put_object_annotation(Bucket=bucket, Key="a.txt", AnnotationName=name,
                                   AnnotationPayload=payload)
    return version_times(bucket, "a.txt", T[1], T[6])


V1 = {"user.s3.tag.rev": b"one", "user.s3.annotation.note": b"first"}
V2 = {"user.s3.tag.rev": b"two", "user.s3.tag.extra": b"x",
      "user.s3.annotation.note": b"second", "user.s3.annotation.more": b"m"}


def test_as_of_mount_shows_the_tags_and_annotations_of_the_version_shown(mount, boto, bucket, s3):
    ids = two_versions(boto, bucket)
    live = mount(bucket)
    assert channel_names(xattrs_of(live.path / "a.txt")) == V2
    m = mount(bucket, "--as-of", AT)
    m.run("ls -l >/dev/null")
    s3.reset()
    got = xattrs_of(m.path / "a.txt")
    assert channel_names(got) == V1
    assert got["user.xdg.origin.url"].endswith(f"/a.txt?versionId={ids[0]}".encode())
    c = s3.counts()
    assert {k: c[k] for k in KINDS} == {"HEAD": 1, "HEAD_COND": 0, "TAGGING": 1,
                                        "ANNOTATIONS": 1, "ANNOTATION": 1, "GET": 0}
    reqs = s3.log("HEAD", "TAGGING", "ANNOTATIONS", "ANNOTATION")
    assert len(reqs) == 4 and all(r.query.get("versionId") == ids[0] for r in reqs)
    s3.reset()
    assert channel_names(xattrs_of(m.path / "a.txt")) == V1  # kept: a version never changes
    assert sum(s3.counts().values()) == 0
    # The version's annotations as files too.
    assert (m.path / ".metafs" / "annotations" / "a.txt" / "note").read_bytes() == b"first"


def test_versions_view_shows_each_versions_tags_and_annotations(mount, boto, bucket, s3):
    ids = two_versions(boto, bucket)
    m = mount(bucket, "--versions")
    d = m.path / ".metafs" / "versions" / "a.txt"
    names = sorted(os.listdir(d))
    assert [n.rsplit("_", 1)[1] for n in names] == ids
    s3.reset()
    assert channel_names(xattrs_of(d / names[0])) == V1
    assert channel_names(xattrs_of(d / names[1])) == V2
    c = s3.counts()
    # Per version: one HEAD, one tag set, one annotations listing, one GET per payload.
    assert {k: c[k] for k in KINDS} == {"HEAD": 2, "HEAD_COND": 0, "TAGGING": 2,
                                        "ANNOTATIONS": 2, "ANNOTATION": 3, "GET": 0}
    by_version = sorted(r.query.get("versionId") for r in s3.log("TAGGING", "ANNOTATIONS", "ANNOTATION"))
    assert by_version == sorted([ids[0]] * 3 + [ids[1]] * 4)
    s3.reset()
    assert os.getxattr(d / names[0], "user.s3.tag.rev") == b"one"
    assert xattrs_of(d / names[1])["user.s3.annotation.more"] == b"m"
    assert sum(s3.counts().values()) == 0  # versions never change: every answer kept


def test_versions_view_asks_only_the_channel_of_the_name_read(mount, boto, bucket, s3):
    ids = two_versions(boto, bucket)
    m = mount(bucket, "--versions")
    d = m.path / ".metafs" / "versions" / "a.txt"
    name = next(n for n in os.listdir(d) if n.endswith(ids[1]))
    s3.reset()
    assert os.getxattr(d / name, "user.s3.tag.extra") == b"x"
    c = s3.counts()
    assert {k: c[k] for k in KINDS} == {"HEAD": 1, "HEAD_COND": 0, "TAGGING": 1,
                                        "ANNOTATIONS": 0, "ANNOTATION": 0, "GET": 0}
    m2 = mount(bucket, "--versions", "--no-tags", "--no-annotations")
    s3.reset()
    assert channel_names(xattrs_of(m2.path / ".metafs" / "versions" / "a.txt" / name)) == {}
    c = s3.counts()
    assert (c["HEAD"], c["TAGGING"], c["ANNOTATIONS"], c["ANNOTATION"]) == (1, 0, 0, 0)

"""Real mounts: every metadata channel as xattrs (issue 11), and copies that carry them.

Object tags and S3 annotations against the dev server (moto stores tags;
annotations are the dev server's own, proven in ``tests/test_devserver.py``),
request counts asserted from the server's log; ``cp -a``, ``cp
--preserve=xattr``, ``rsync -aX`` and ``tar --xattrs`` from a mount to tmpfs.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO, base_env, wait_until, xattr

pytestmark = pytest.mark.mount

XATTR_SIZE_MAX = 65536


@pytest.fixture
def shm() -> Iterator[Path]:
    """A fresh directory on tmpfs (which takes user.* xattrs), removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="metafs-copy-", dir="/dev/shm"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def xattrs_of(path: Path) -> dict[str, bytes]:
    """Every listed xattr of ``path`` with its value (os.getxattr: no size limit of getfattr's)."""
    return {n: os.getxattr(path, n) for n in os.listxattr(path)}


def tag(boto, bucket: str, key: str, tags: dict[str, str]) -> None:
    boto.put_object_tagging(Bucket=bucket, Key=key,
                            Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})


def annotate(boto, bucket: str, key: str, anns: dict[str, bytes]) -> None:
    for name, payload in anns.items():
        boto.put_object_annotation(Bucket=bucket, Key=key, AnnotationName=name, AnnotationPayload=payload)


def kinds(s3, *names: str) -> dict[str, int]:
    c = s3.counts()
    return {k: c[k] for k in names}


CHANNEL_KINDS = ("HEAD", "HEAD_COND", "TAGGING", "ANNOTATIONS", "ANNOTATION", "GET", "LIST")


def test_getfattr_d_shows_tags_and_annotations_for_head_plus_one_request_per_channel(mount, boto, bucket, s3):
    boto.put_object(Bucket=bucket, Key="photo.jpg", Body=b"jpeg", ContentType="image/jpeg",
                    Metadata={"owner": "ana", "s3.odd": "shadowed-name"})
    tag(boto, bucket, "photo.jpg", {"project": "blue", "stage": "raw", "team:x/y": "a b=c@d"})
    annotate(boto, bucket, "photo.jpg", {"ml.labels": b'{"labels":["cat"]}',
                                          "note": "größe 日本".encode()})
    m = mount(bucket)
    # ls -l and stat cost what they cost before channels existed: no tag or annotation request.
    m.run("ls -l && stat photo.jpg")
    assert kinds(s3, *CHANNEL_KINDS) == {**dict.fromkeys(CHANNEL_KINDS, 0), "LIST": 1}
    s3.reset()
    s3.delay = 0.1  # every answer takes a while: requests sent together overlap on the server
    got = xattrs_of(m.path / "photo.jpg")
    s3.delay = 0.0
    # A lone getfattr -d: HEAD, then one request per channel (sent concurrently).
    assert kinds(s3, *CHANNEL_KINDS) == {**dict.fromkeys(CHANNEL_KINDS, 0), "HEAD": 1, "TAGGING": 1,
                                         "ANNOTATIONS": 1, "ANNOTATION": 2}
    tagging, annotations = s3.log("TAGGING")[0], s3.log("ANNOTATIONS")[0]
    head = s3.log("HEAD")[0]
    assert head.finished <= min(tagging.started, annotations.started)  # HEAD says whether to ask
    assert tagging.started < annotations.finished and annotations.started < tagging.finished  # concurrent
    assert got["user.s3.tag.project"] == b"blue"
    assert got["user.s3.tag.stage"] == b"raw"
    assert got["user.s3.tag.team:x/y"] == b"a b=c@d"
    assert got["user.s3.annotation.ml.labels"] == b'{"labels":["cat"]}'
    assert got["user.s3.annotation.note"] == "größe 日本".encode()
    assert got["user.owner"] == b"ana"
    assert got["user.s3.meta.s3.odd"] == b"shadowed-name"  # a key beginning "s3." never takes a system name
    assert got["user.mime_type"] == b"image/jpeg"
    assert got["user.xdg.origin.url"] == f"{s3.url}/{bucket}/photo.jpg".encode()
    assert got["user.s3.tagging-count"] == b"3"
    assert all(n.startswith("user.") for n in got)
    assert not any(n.startswith("user.s3.meta.") and n != "user.s3.meta.s3.odd" for n in got)
    # Readable by name, not listed: user.s3.meta.<key> of every key, and last release's s3.<name>.
    assert xattr(m, "photo.jpg", "user.s3.meta.owner") == b"ana"
    assert xattr(m, "photo.jpg", "s3.content-type") == b"image/jpeg"
    # Warm: everything cached, no request at all.
    s3.reset()
    assert xattrs_of(m.path / "photo.jpg") == got
    m.run("getfattr -d -m - photo.jpg")
    assert sum(s3.counts().values()) == 0


def test_channels_are_revalidated_after_the_ttl_payloads_by_their_etags(mount, boto, bucket, s3):
    boto.put_object(Bucket=bucket, Key="f", Body=b"x")
    tag(boto, bucket, "f", {"k": "v1"})
    annotate(boto, bucket, "f", {"a": b"one", "b": b"two", "c": b"three"})
    m = mount(bucket, "--metadata-ttl", "1")
    assert xattrs_of(m.path / "f")["user.s3.annotation.b"] == b"two"
    # Tags and annotations change without the object's ETag changing.
    tag(boto, bucket, "f", {"k": "v2"})
    annotate(boto, bucket, "f", {"b": b"TWO"})
    time.sleep(1.2)
    s3.reset()
    got = xattrs_of(m.path / "f")
    assert got["user.s3.tag.k"] == b"v2"
    assert got["user.s3.annotation.b"] == b"TWO"
    assert (got["user.s3.annotation.a"], got["user.s3.annotation.c"]) == (b"one", b"three")
    # A conditional HEAD (304), the tags again, the listing again, and only the changed payload.
    assert kinds(s3, *CHANNEL_KINDS) == {**dict.fromkeys(CHANNEL_KINDS, 0), "HEAD_COND": 1,
                                         "TAGGING": 1, "ANNOTATIONS": 1, "ANNOTATION": 1}
    assert s3.log("ANNOTATION")[0].query["annotationName"] == "b"


def test_no_tags_no_annotations_cost_head_only(mount, boto, bucket, s3):
    boto.put_object(Bucket=bucket, Key="f", Body=b"x", Metadata={"a": "1"})
    tag(boto, bucket, "f", {"k": "v"})
    annotate(boto, bucket, "f", {"n": b"p"})
    m = mount(bucket, "--no-tags", "--no-annotations")
    m.run("ls")
    s3.reset()
    got = xattrs_of(m.path / "f")
    assert kinds(s3, *CHANNEL_KINDS) == {**dict.fromkeys(CHANNEL_KINDS, 0), "HEAD": 1}
    assert got["user.a"] == b"1" and not any(n.startswith(("user.s3.tag.", "user.s3.annotation"))
                                             for n in got)
    s3.reset()
    with pytest.raises(OSError) as e:
        os.getxattr(m.path / "f", "user.s3.tag.k")
    assert e.value.errno == errno.ENODATA
    assert sum(s3.counts().values()) == 0


def test_annotations_of_every_size_and_the_ones_too_large_for_xattrs(mount, boto, bucket, s3):
    boto.put_object(Bucket=bucket, Key="big", Body=b"x")
    long_name = "n" * 400
    anns = {"small": b"ok", "limit": b"L" * XATTR_SIZE_MAX, "over": b"O" * (XATTR_SIZE_MAX + 1),
            "mib": ("é" * (512 * 1024)).encode(), long_name: b"long name",
            "ünï.cødé": "日本語テキスト ✓".encode()}
    annotate(boto, bucket, "big", anns)
    m = mount(bucket)
    names = os.listxattr(m.path / "big")
    shown = {n for n in names if n.startswith("user.s3.annotation.")}
    assert shown == {"user.s3.annotation.small", "user.s3.annotation.limit", "user.s3.annotation.ünï.cødé"}
    assert "user.s3.annotations-elsewhere" in names
    note = os.getxattr(m.path / "big", "user.s3.annotations-elsewhere").decode()
    assert note.startswith("3 annotations too large for xattrs: read ")
    assert os.getxattr(m.path / "big", "user.s3.annotation.limit") == anns["limit"]
    assert os.getxattr(m.path / "big", "user.s3.annotation.ünï.cødé") == anns["ünï.cødé"]
    s3.reset()
    for too_large in ("over", "mib"):
        with pytest.raises(OSError) as e:
            os.getxattr(m.path / "big", "user.s3.annotation." + too_large)
        assert e.value.errno == errno.E2BIG
    assert s3.counts()["ANNOTATION"] == 0  # refused from the listing's sizes, nothing fetched
    # getfattr -d (which reads every listed name) succeeds.
    m.run("getfattr -d -m - big")
    # Every annotation, in full, as a file of the control directory's annotations view.
    view = m.path / ".metafs" / "annotations" / "big"
    assert note == f"3 annotations too large for xattrs: read {view}/"
    assert sorted(os.listdir(view)) == sorted(anns)
    s3.reset()
    for name, payload in anns.items():
        assert (view / name).stat().st_size == len(payload)
        assert (view / name).read_bytes() == payload, name
    # Payloads already read as xattrs are not fetched again; each other one once.
    assert s3.counts()["ANNOTATION"] == 3  # over, mib and the long name
    assert ".metafs" not in os.listdir(m.path)  # hidden from the root's readdir


def test_a_thousand_annotations_one_listing(mount, boto, bucket, s3):
    boto.put_object(Bucket=bucket, Key="many", Body=b"x")
    annotate(boto, bucket, "many", {f"a{i:04d}": f"v{i}".encode() for i in range(1000)})
    m = mount(bucket, "--no-tags")
    m.run("ls")
    s3.reset()
    names = [n for n in os.listxattr(m.path / "many") if n.startswith("user.s3.annotation.")]
    assert len(names) == 1000
    assert kinds(s3, "HEAD", "ANNOTATIONS", "ANNOTATION") == {"HEAD": 1, "ANNOTATIONS": 1, "ANNOTATION": 0}
    assert os.getxattr(m.path / "many", "user.s3.annotation.a0999") == b"v999"
    assert s3.counts()["ANNOTATION"] == 1


def test_cp_rsync_tar_to_tmpfs_carry_every_value_that_fits(mount, boto, bucket, s3, shm):
    boto.put_object(Bucket=bucket, Key="d/doc.json", Body=b"{}", ContentType="application/json",
                    CacheControl="max-age=60", Metadata={"owner": "ana", "s3.x": "y"})
    tag(boto, bucket, "d/doc.json", {"project": "blue", "stage": "raw", "team": "data"})
    annotate(boto, bucket, "d/doc.json", {"ml.labels": b'["cat"]', "note": "größe".encode(),
                                          "huge": b"H" * (XATTR_SIZE_MAX + 1)})
    boto.put_object(Bucket=bucket, Key="d/plain", Body=b"p")
    m = mount(bucket)
    src = m.path / "d" / "doc.json"
    want = xattrs_of(src)
    assert {"user.s3.etag", "user.s3.tag.stage", "user.s3.annotation.note", "user.owner",
            "user.s3.meta.s3.x", "user.s3.annotations-elsewhere"} <= set(want)
    commands = {
        "cp-a": f"cp -a {m.path}/d {shm}/cp-a",
        "cp-preserve": f"mkdir {shm}/cp-preserve && cp -r --preserve=xattr {m.path}/d/. {shm}/cp-preserve/",
        "rsync": f"rsync -aX {m.path}/ {shm}/rsync/ && mv {shm}/rsync/d {shm}/rsync-d && "
                 f"rm -r {shm}/rsync && mv {shm}/rsync-d {shm}/rsync",
        "tar": f"mkdir {shm}/tar && tar --xattrs --xattrs-include='user.*' -C {m.path}/d -cf - . | "
               f"tar --xattrs --xattrs-include='user.*' -C {shm}/tar -xf -",
    }
    for name, cmd in commands.items():
        r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (name, r.returncode, r.stderr)
        assert xattrs_of(shm / name / "doc.json") == want, name
        assert (shm / name / "plain").read_bytes() == b"p"
    # The whole mount, root included: the root's xattrs are all user.* too.
    r = subprocess.run(["rsync", "-aX", f"{m.path}/", f"{shm}/all/"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert os.getxattr(shm / "all", "user.s3.bucket") == bucket.encode()


def test_readahead_fetches_the_channels_the_reader_uses(mount, boto, bucket, s3):
    for i in range(12):
        boto.put_object(Bucket=bucket, Key=f"scan/f{i:02d}", Body=b"x")
        tag(boto, bucket, f"scan/f{i:02d}", {"i": str(i)})
    m = mount(bucket, "--no-annotations")
    m.run("ls scan")
    s3.reset()
    for i in range(4):  # a sequential scan, as for f in scan/*; do getfattr -d "$f"; done
        assert xattrs_of(m.path / "scan" / f"f{i:02d}")["user.s3.tag.i"] == str(i).encode()

    def tagged_ahead() -> set[str]:
        return {r.path.rsplit("/", 1)[1] for r in s3.log("TAGGING")} - {f"f{i:02d}" for i in range(4)}

    # The tags of the files after f03 were fetched in the background, beside their HEADs.
    assert wait_until(lambda: {"f04", "f05"} <= tagged_ahead())
    s3.reset()
    for i in range(4, 6):
        assert xattrs_of(m.path / "scan" / f"f{i:02d}")["user.s3.tag.i"] == str(i).encode()
    # Reading them sent neither their HEAD nor their tags again (the scan goes on reading ahead).
    sent = {r.path.rsplit("/", 1)[1] for r in s3.log("TAGGING", "HEAD", "HEAD_COND")}
    assert not sent & {"f04", "f05"}


def test_metafs_refresh_revalidates_tags_and_annotations_too(mount, boto, bucket, s3):
    boto.put_object(Bucket=bucket, Key="f", Body=b"x")
    tag(boto, bucket, "f", {"k": "v1"})
    annotate(boto, bucket, "f", {"a": b"one"})
    m = mount(bucket)
    assert xattrs_of(m.path / "f")["user.s3.tag.k"] == b"v1"
    tag(boto, bucket, "f", {"k": "v2"})
    annotate(boto, bucket, "f", {"a": b"ONE"})
    r = subprocess.run([sys.executable, "-m", "metafs", "refresh", str(m.path / "f")], env=base_env(),
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr
    s3.reset()
    got = xattrs_of(m.path / "f")
    assert (got["user.s3.tag.k"], got["user.s3.annotation.a"]) == (b"v2", b"ONE")
    assert kinds(s3, *CHANNEL_KINDS) == {**dict.fromkeys(CHANNEL_KINDS, 0), "HEAD_COND": 1,
                                         "TAGGING": 1, "ANNOTATIONS": 1, "ANNOTATION": 1}


def test_a_scan_that_reads_annotations_has_the_next_payloads_read_ahead(mount, boto, bucket, s3):
    for i in range(10):
        boto.put_object(Bucket=bucket, Key=f"scan/f{i:02d}", Body=b"x")
        annotate(boto, bucket, f"scan/f{i:02d}", {"a": f"a{i}".encode(), "b": f"b{i}".encode()})
    m = mount(bucket, "--no-tags")
    m.run("ls scan")
    s3.reset()
    for i in range(4):
        assert xattrs_of(m.path / "scan" / f"f{i:02d}")["user.s3.annotation.b"] == f"b{i}".encode()

    def read_ahead() -> list[tuple[str, str]]:
        return [(r.path.rsplit("/", 1)[1], r.query["annotationName"]) for r in s3.log("ANNOTATION")
                if r.path.rsplit("/", 1)[1] >= "f04"]

    assert wait_until(lambda: {("f04", "a"), ("f04", "b")} <= set(read_ahead()))
    s3.reset()
    assert xattrs_of(m.path / "scan" / "f04")["user.s3.annotation.a"] == b"a4"
    assert not [r for r in s3.log("ANNOTATION", "ANNOTATIONS", "HEAD") if r.path.endswith("/f04")]
    assert len(read_ahead()) == len(set(read_ahead()))  # each payload at most once

"""Object tags and annotations in the metadata layer, without a kernel (issue 11).

:class:`metafs.objects.ObjectMetadata` over the real S3 client and
:class:`~metafs.views.LiveView`, against a small hand-written S3 answering
HEAD, ``GET ?tagging`` and ``GET ?annotation``: when each channel is asked,
what a 403 or an endpoint without annotations does, and the naming rules.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
import trio

from metafs import xattrs
from metafs.cache import MetaCache
from metafs.channels import ANNOTATIONS, TAGS
from metafs.listings import Listings
from metafs.objects import NoAttr, ObjectMetadata, TooLarge
from metafs.s3.model import parse_annotations, parse_tagging
from metafs.views import LiveView
from tests.fakes import Clock, run

ETAG = '"e1"'


class Store:
    """Objects with HEAD headers, tags and annotations; every request recorded by kind."""

    def __init__(self) -> None:
        self.head: dict[str, dict[str, str]] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.anns: dict[str, dict[str, bytes]] = {}
        self.tag_status = 200
        self.ann_body: bytes | None = None  # answer every annotation listing with this
        self.kinds: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        key = request.url.path.split("/", 2)[2]
        q = dict(request.url.params)
        if request.method == "HEAD":
            self.kinds.append("HEAD")
            return httpx.Response(200, headers={"etag": ETAG, "content-length": "1",
                                                **self.head.get(key, {})})
        if "tagging" in q:
            self.kinds.append("TAGGING")
            if self.tag_status != 200:
                return httpx.Response(self.tag_status, content=b"<Error><Code>AccessDenied</Code></Error>")
            tags = "".join(f"<Tag><Key>{k}</Key><Value>{v}</Value></Tag>"
                           for k, v in self.tags.get(key, {}).items())
            return httpx.Response(200, content=f"<Tagging><TagSet>{tags}</TagSet></Tagging>".encode())
        if "annotationName" in q:
            self.kinds.append("ANNOTATION")
            return httpx.Response(200, content=self.anns[key][q["annotationName"]])
        assert "annotation" in q
        self.kinds.append("ANNOTATIONS")
        if self.ann_body is not None:
            return httpx.Response(200, content=self.ann_body)
        entries = "".join(f"<AnnotationEntry><AnnotationName>{n}</AnnotationName><Size>{len(p)}</Size>"
                          f'<ETag>"{n}"</ETag><LastModified>2026-07-01T12:00:00.000Z</LastModified>'
                          "</AnnotationEntry>" for n, p in self.anns.get(key, {}).items())
        return httpx.Response(200, content=f"<R><Annotations>{entries}</Annotations></R>".encode())


def with_objects(store: Store, fn: Any, channels: frozenset[str] = frozenset({TAGS, ANNOTATIONS})) -> Any:
    async def go(client: Any) -> Any:
        clock = Clock()
        view = LiveView(client)
        cache = MetaCache(60.0, 60.0, clock=clock)
        objects = ObjectMetadata(view, cache, Listings(view, cache), channels=channels,
                                 annotations_dir=lambda key: f"/mnt/.metafs/annotations/{key}/")
        return await fn(objects)

    return run(store, go, endpoint_url="http://127.0.0.1:9000", force_path_style=True)


def test_a_zero_count_spares_the_tag_request_an_absent_count_does_not():
    store = Store()
    store.head = {"zero": {"x-amz-tagging-count": "0"}, "two": {"x-amz-tagging-count": "2"}}
    store.tags = {"two": {"a": "1", "b": "2"}, "none": {}}

    async def go(objects: ObjectMetadata) -> None:
        for key in ("zero", "two", "none"):
            await objects.xattr_names(key)

    with_objects(store, go, frozenset({TAGS}))
    assert store.kinds == ["HEAD", "HEAD", "TAGGING", "HEAD", "TAGGING"]


def test_sse_c_objects_are_not_asked_for_annotations():
    store = Store()
    store.head = {"k": {"x-amz-server-side-encryption-customer-algorithm": "AES256"}}

    async def go(objects: ObjectMetadata) -> Any:
        return await objects.xattr_names("k"), await objects.xattr("k", b"user.s3.annotation.x")

    names, value = with_objects(store, go, frozenset({ANNOTATIONS}))
    assert store.kinds == ["HEAD"] and isinstance(value, NoAttr)
    assert b"user.s3.server-side-encryption-customer-algorithm" in names


def test_no_tag_permission_other_metadata_and_one_log_line(caplog: pytest.LogCaptureFixture):
    store = Store()
    store.head = {k: {"x-amz-meta-owner": "ana"} for k in ("a", "b")}
    store.tag_status = 403

    async def go(objects: ObjectMetadata) -> list[Any]:
        return [await objects.xattr_names(k) for k in ("a", "b")]

    with caplog.at_level(logging.DEBUG, logger="metafs.objects"):
        names = with_objects(store, go, frozenset({TAGS}))
    assert all(b"user.owner" in n and not any(x.startswith(b"user.s3.tag.") for x in n) for n in names)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "no permission to read the tags" in warnings[0].getMessage()


def test_an_endpoint_without_annotations_turns_the_channel_off_once(caplog: pytest.LogCaptureFixture):
    store = Store()
    store.ann_body = b"the object's own bytes: a server that ignores ?annotation"

    async def go(objects: ObjectMetadata) -> None:
        for key in ("a", "b", "c"):
            await objects.xattr_names(key)

    with caplog.at_level(logging.WARNING, logger="metafs.objects"):
        with_objects(store, go, frozenset({ANNOTATIONS}))
    assert store.kinds == ["HEAD", "ANNOTATIONS", "HEAD", "HEAD"]
    assert [r.getMessage()[:39] for r in caplog.records] == ["annotations are not shown: the endpoint"]


def test_names_values_and_what_does_not_fit():
    store = Store()
    big = b"x" * (xattrs.XATTR_SIZE_MAX + 1)
    store.anns = {"k": {"small": b"s", "big": big, "n" * 300: b"long"}}

    async def go(objects: ObjectMetadata) -> Any:
        names = await objects.xattr_names("k")
        return (names, await objects.xattr("k", b"user.s3.annotation.small"),
                await objects.xattr("k", b"user.s3.annotation.big"),
                await objects.xattr("k", xattrs.ANNOTATIONS_ELSEWHERE.encode()),
                await objects.annotation_payload("k", "big"))

    names, small, too_big, note, payload = with_objects(store, go, frozenset({ANNOTATIONS}))
    assert [n for n in names if n.startswith(b"user.s3.annotation")] == [
        b"user.s3.annotation.small", b"user.s3.annotations-elsewhere"]
    assert small == b"s" and isinstance(too_big, TooLarge) and payload == big
    assert note == b"2 annotations too large for xattrs: read /mnt/.metafs/annotations/k/"
    assert store.kinds == ["HEAD", "ANNOTATIONS", "ANNOTATION", "ANNOTATION"]


# -- naming (metafs.xattrs), pure -----------------------------------------------------------------

def test_user_metadata_keys_never_take_a_system_name():
    assert xattrs.user_meta_name("owner") == "user.owner"
    assert xattrs.user_meta_name("s3.etag") == "user.s3.meta.s3.etag"
    table = xattrs.object_xattrs([("x-amz-meta-s3.etag", "mine"), ("etag", '"abc"'),
                                  ("x-amz-meta-owner", "ana"), ("content-type", "text/plain")])
    assert table[b"user.s3.etag"] == b"abc" and table[b"user.s3.meta.s3.etag"] == b"mine"
    head = xattrs.head_xattrs(table, "http://h/b/k")
    assert head[b"user.mime_type"] == b"text/plain" and head[b"user.xdg.origin.url"] == b"http://h/b/k"
    # Readable by name, listed once: user.s3.meta.<key>; last release's s3.<name>.
    assert xattrs.head_value(table, None, b"user.s3.meta.owner") == b"ana"
    assert b"user.s3.meta.owner" not in head
    assert xattrs.head_value(table, None, b"s3.etag") == b"abc"
    assert xattrs.head_value(table, None, b"user.s3.meta.mime_type") is None  # an alias is no key
    assert xattrs.lookup({b"user.metafs.inodes": b"1"}, b"metafs.inodes") == b"1"


def test_user_metadata_wins_over_the_freedesktop_names():
    table = xattrs.object_xattrs([("x-amz-meta-mime_type", "text/x-mine"), ("content-type", "a/b"),
                                  ("x-amz-meta-xdg.origin.url", "https://origin.example/f")])
    head = xattrs.head_xattrs(table, "http://h/b/k")
    assert head[b"user.mime_type"] == b"text/x-mine"
    assert head[b"user.xdg.origin.url"] == b"https://origin.example/f"


def test_tag_names_over_the_xattr_limit_are_left_out(caplog: pytest.LogCaptureFixture):
    out = xattrs.tag_xattrs({"ok": "1", "é" * 200: "2"}, "k")
    assert out == {b"user.s3.tag.ok": b"1"}
    assert "exceed 255 bytes" in caplog.text


def test_annotations_are_placed_within_every_linux_limit():
    fits, elsewhere = xattrs.place_annotations(
        [("a", 1), ("b" * 237, 1), ("c" * 237, 1), ("d", xattrs.XATTR_SIZE_MAX),
         ("e", xattrs.XATTR_SIZE_MAX + 1)], used=0)
    # user.s3.annotation. is 19 bytes: a 236-byte name is the longest that fits 255.
    assert fits == ["a", "d"] and elsewhere == ["b" * 237, "c" * 237, "e"]
    assert xattrs.place_annotations([("b" * 236, 1)], 0)[0] == ["b" * 236]
    many = [(f"n{i:05d}", 1) for i in range(5000)]  # 25 bytes each: ~2,600 fit 64 KiB
    fits, elsewhere = xattrs.place_annotations(many, used=1000)
    listed = xattrs.listed_size([xattrs.annotation_name(n) for n in fits]) + 1000 + len(
        xattrs.ANNOTATIONS_ELSEWHERE) + 1
    assert listed <= xattrs.XATTR_LIST_MAX and fits + elsewhere == [n for n, _ in many]


def test_channel_routing():
    assert xattrs.channel_of(b"user.s3.tag.x") == "tags"
    assert xattrs.channel_of(b"user.s3.annotation.x") == "annotations"
    assert xattrs.channel_of(b"user.s3.annotations-elsewhere") == "annotations"
    assert xattrs.channel_of(b"user.s3.etag") == xattrs.channel_of(b"user.tag") == "head"


def test_wire_parsers():
    assert parse_tagging(b'<Tagging xmlns="http://obs/doc/2015-06-30/"><TagSet><Tag><Key>a</Key>'
                         b"<Value/></Tag><Tag><Key>b c</Key><Value>d=e</Value></Tag></TagSet></Tagging>"
                         ) == {"a": "", "b c": "d=e"}
    page = parse_annotations(
        b'<ListObjectAnnotationsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<NextContinuationToken>tok</NextContinuationToken><Annotations><AnnotationEntry>"
        b"<AnnotationName>ml.labels</AnnotationName><LastModified>2026-07-01T12:00:00.000Z</LastModified>"
        b"<ETag>&quot;38&quot;</ETag><ChecksumAlgorithm>CRC32</ChecksumAlgorithm><Size>18</Size>"
        b"</AnnotationEntry></Annotations></ListObjectAnnotationsResult>")
    assert page.next_token == "tok"
    assert [(e.name, e.size, e.etag) for e in page.entries] == [("ml.labels", 18, '"38"')]


def test_trio_nursery_runs_both_channel_requests_together():
    """HEAD first (it says whether to ask), then the tag and annotation requests at once."""
    store = Store()
    order: list[str] = []
    gate = trio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        kind = "TAGGING" if "tagging" in request.url.params else (
            "HEAD" if request.method == "HEAD" else "ANNOTATIONS")
        order.append("start " + kind)
        if kind != "HEAD":
            if len([o for o in order if o.startswith("start") and "HEAD" not in o]) == 2:
                gate.set()
            await gate.wait()  # neither answers until both were sent
        order.append("end " + kind)
        return store(request)

    async def go(client: Any) -> Any:
        view = LiveView(client)
        cache = MetaCache(60.0, 60.0, clock=Clock())
        objects = ObjectMetadata(view, cache, Listings(view, cache), channels=frozenset({TAGS, ANNOTATIONS}))
        return await objects.xattr_names("k")

    run(handler, go, endpoint_url="http://127.0.0.1:9000", force_path_style=True)
    assert order[:2] == ["start HEAD", "end HEAD"]
    assert sorted(order[2:4]) == ["start ANNOTATIONS", "start TAGGING"]


def test_client_channel_requests_on_the_wire():
    from metafs.s3.model import Absent, AnnotationPage, Denied, Unsupported
    from tests.fakes import Server

    srv = Server(httpx.Response(200, content=b"<Tagging><TagSet/></Tagging>"),
                 httpx.Response(404, content=b"<Error><Code>NoSuchTagSet</Code></Error>"),
                 httpx.Response(403, content=b"<Error><Code>AccessDenied</Code></Error>"),
                 httpx.Response(200, content=b"<R><Annotations/></R>"),
                 httpx.Response(501, content=b"<Error><Code>NotImplemented</Code></Error>"),
                 httpx.Response(404, content=b"<Error><Code>NoSuchAnnotation</Code></Error>"))

    async def go(c: Any) -> list[Any]:
        return [await c.get_tagging("d/k", "v1"), await c.get_tagging("d/k"), await c.get_tagging("d/k"),
                await c.list_annotations("d/k", "tok", "v1"), await c.list_annotations("d/k"),
                await c.get_annotation("d/k", "ml.größe", "v1")]

    got = run(srv, go)
    assert got[0] == {} and isinstance(got[1], Absent) and isinstance(got[2], Denied)
    assert isinstance(got[3], AnnotationPage) and isinstance(got[4], Unsupported) and got[5] is None
    raw = [r.url.raw_path.decode().split("?", 1)[1] for r in srv.requests]
    assert raw[0] == "tagging&versionId=v1"
    assert raw[3] == "annotation&continuation-token=tok&versionId=v1"
    assert raw[5] == "annotation&annotationName=ml.gr%C3%B6%C3%9Fe&versionId=v1"
    # The sub-resource is signed as "annotation=" (SigV4's canonical form of a value-less name).
    assert all("Signature=" in r.headers["authorization"] for r in srv.requests)


def test_the_as_of_view_answers_the_channels_of_its_versions():
    """An as-of mount's view answers tags and annotations (of the version shown)."""
    from metafs.asof import AsOfView

    async def go(client: Any) -> Any:
        view = AsOfView(client, 1_700_000_000_000, max_keys=10)
        cache = MetaCache(60.0, 60.0, clock=Clock())
        objects = ObjectMetadata(view, cache, Listings(view, cache), channels=frozenset({TAGS, ANNOTATIONS}))
        return objects.channels

    got = run(Store(), go, endpoint_url="http://127.0.0.1:9000", force_path_style=True)
    assert got == {TAGS, ANNOTATIONS}


def test_an_annotation_probe_answered_with_the_object_does_not_download_it():
    """A server that ignores ``?annotation`` (Ceph RGW) sends the object: not read past its headers."""
    from metafs.s3.model import AnnotationPage, Unsupported
    from tests.fakes import Server

    chunk = 1 << 20
    sent = [0]

    async def body() -> Any:  # a 64 MiB object (Content-Length says so), counted as it is read
        for _ in range(64):
            sent[0] += chunk
            yield b"\0" * chunk

    srv = Server(httpx.Response(200, content=body(), headers={"content-length": str(64 << 20)}),
                 httpx.Response(200, content=b"<R><Annotations/></R>"))

    async def go(c: Any) -> list[Any]:
        return [await c.list_annotations("big"), await c.list_annotations("small")]

    big, small = run(srv, go)
    assert isinstance(big, Unsupported) and "not read" in big.why
    assert sent[0] == 0  # left on the wire
    assert isinstance(small, AnnotationPage)

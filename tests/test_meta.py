"""metafs.meta: request counts of Metadata over S3Client over an in-memory bucket."""

from __future__ import annotations

import email.utils
from typing import Any, Awaitable, Callable
from urllib.parse import quote, unquote

import httpx
import pytest
import trio
import trio.testing

from metafs import errors
from metafs.cache import MetaCache
from metafs.meta import Found, Metadata, Missing
from metafs.s3.client import S3Client

TTL = 10.0
NEG_TTL = 5.0
MTIME = 1_607_571_450  # 2020-12-10T03:37:30Z


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Bucket:
    """A tiny S3: key -> (body, etag, headers); HEAD and ListObjectsV2 only."""

    def __init__(self, page_size: int = 1000) -> None:
        self.objects: dict[str, tuple[bytes, str, dict[str, str]]] = {}
        self.page_size = page_size
        self.requests: list[httpx.Request] = []
        self.fail: int | None = None
        self.broken = False  # answer with a transport error
        self.gate: trio.Event | None = None

    def put(self, key: str, body: bytes = b"data", etag: str | None = None, **meta: str) -> None:
        etag = etag or f'"{abs(hash((key, body))):x}"'
        self.objects[key] = (body, etag, {f"x-amz-meta-{k}": v for k, v in meta.items()})

    # request log helpers
    def heads(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "HEAD"]

    def lists(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "GET"]

    def reset(self) -> None:
        self.requests.clear()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        if self.broken:
            raise httpx.ConnectError("[Errno 111] Connection refused")
        if self.fail is not None:
            return httpx.Response(self.fail, content=b"<Error><Code>InternalError</Code></Error>")
        path = request.url.raw_path.decode("ascii").partition("?")[0]
        assert path.startswith("/bkt")
        key = unquote(path[len("/bkt/"):])
        if request.method == "HEAD":
            return self._head(key, request)
        assert request.method == "GET" and key == ""
        return self._list(dict(request.url.params))

    def _head(self, key: str, request: httpx.Request) -> httpx.Response:
        if key not in self.objects:
            return httpx.Response(404)
        body, etag, meta = self.objects[key]
        if request.headers.get("if-none-match") == etag:
            return httpx.Response(304, headers={"etag": etag})
        return httpx.Response(200, headers={
            "content-length": str(len(body)), "etag": etag, "content-type": "text/plain",
            "last-modified": email.utils.formatdate(MTIME, usegmt=True), **meta})

    def _list(self, q: dict[str, str]) -> httpx.Response:
        assert q["list-type"] == "2"
        prefix, delim = q.get("prefix", ""), q.get("delimiter")
        max_keys = min(int(q.get("max-keys", "1000")), self.page_size)
        after = q.get("continuation-token", "")
        entries: list[tuple[str, bool]] = []
        for k in sorted(self.objects):
            if not k.startswith(prefix):
                continue
            if delim and delim in k[len(prefix):]:
                cp = k[:k.index(delim, len(prefix)) + 1]
                if not entries or entries[-1] != (cp, True):
                    entries.append((cp, True))
            else:
                entries.append((k, False))
        entries = [e for e in entries if e[0] > after] if after else entries
        page, rest = entries[:max_keys], entries[max_keys:]
        parts = ['<?xml version="1.0" encoding="UTF-8"?>'
                 '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                 f"<Name>bkt</Name><Prefix>{quote(prefix)}</Prefix><KeyCount>{len(page)}</KeyCount>"
                 f"<MaxKeys>{max_keys}</MaxKeys><EncodingType>url</EncodingType>"
                 f"<IsTruncated>{'true' if rest else 'false'}</IsTruncated>"]
        if rest:
            parts.append(f"<NextContinuationToken>{page[-1][0]}</NextContinuationToken>")
        for name, is_prefix in page:
            if is_prefix:
                parts.append(f"<CommonPrefixes><Prefix>{quote(name)}</Prefix></CommonPrefixes>")
            else:
                body, etag, _ = self.objects[name]
                parts.append(f"<Contents><Key>{quote(name)}</Key>"
                             f"<LastModified>2020-12-10T03:37:30.456Z</LastModified>"
                             f"<ETag>{etag.replace(chr(34), '&quot;')}</ETag>"
                             f"<Size>{len(body)}</Size><StorageClass>STANDARD</StorageClass>"
                             f"</Contents>")
        parts.append("</ListBucketResult>")
        return httpx.Response(200, content="".join(parts).encode())


class Env:
    def __init__(self, bucket: Bucket, md: Metadata, clock: Clock) -> None:
        self.bucket, self.md, self.clock = bucket, md, clock


def run(bucket: Bucket, fn: Callable[[Env], Awaitable[Any]], *, negative_ttl: float = NEG_TTL,
        attempts: int = 2, stale_grace: float = 1.0) -> Any:
    clock = Clock()

    async def no_sleep(_: float) -> None:
        return None

    async def main() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(bucket)) as http:
            client = S3Client(http, bucket="bkt", region="us-east-1",
                              endpoint_url="http://127.0.0.1:9000", attempts=attempts,
                              sleep=no_sleep, rng=lambda: 0.5)
            cache = MetaCache(TTL, negative_ttl, clock=clock)
            md = Metadata(client, cache, stale_grace=stale_grace)
            return await fn(Env(bucket, md, clock))

    return trio.run(main)


def is_probe_list(r: httpx.Request, key: str) -> bool:
    p = r.url.params
    return (r.method == "GET" and p.get("prefix") == key + "/" and p.get("max-keys") == "1"
            and "delimiter" not in p)


async def list_all(env: Env, dir_key: str = "") -> None:
    lst = env.md.listing(dir_key)
    await env.md.fill(lst, 10**9)
    assert lst.complete


# -- probing unlisted names ---------------------------------------------------------------

def test_lookup_of_unlisted_file_sends_one_head_and_one_list():
    b = Bucket()
    b.put("dir/f.txt", b"hello", color="blue")

    async def go(env: Env) -> None:
        r = await env.md.lookup("dir/", "f.txt")
        assert isinstance(r, Found) and not r.is_dir
        assert r.meta.size == 5 and r.meta.headers is not None and r.meta.mtime == MTIME
        assert r.expires == 1000.0 + TTL
        assert len(b.requests) == 2
        (h,) = b.heads()
        (lq,) = b.lists()
        assert h.url.raw_path == b"/bkt/dir/f.txt" and "if-none-match" not in h.headers
        assert is_probe_list(lq, "dir/f.txt")
        # Known now: no more requests within the TTL.
        b.reset()
        assert (await env.md.lookup("dir/", "f.txt")).meta.size == 5
        assert b.requests == []

    run(b, go)


def test_lookup_of_unlisted_directory():
    b = Bucket()
    b.put("d/inner")

    async def go(env: Env) -> None:
        r = await env.md.lookup("", "d")
        assert r == Found(True, None, 1000.0 + TTL)
        assert len(b.heads()) == 1 and len(b.lists()) == 1
        b.reset()
        assert (await env.md.lookup("", "d")).is_dir
        assert b.requests == []

    run(b, go)


def test_directory_wins_when_probe_finds_both():
    b = Bucket()
    b.put("a")
    b.put("a/x")

    async def go(env: Env) -> None:
        r = await env.md.lookup("", "a")
        assert isinstance(r, Found) and r.is_dir and r.meta is None
        assert len(b.requests) == 2

    run(b, go)


def test_lookup_of_absent_name_is_remembered_for_the_negative_ttl():
    b = Bucket()

    async def go(env: Env) -> None:
        r = await env.md.lookup("", "nope")
        assert r == Missing(1000.0 + NEG_TTL)
        assert len(b.heads()) == 1 and len(b.lists()) == 1
        b.reset()
        env.clock.t += NEG_TTL - 0.1
        assert isinstance(await env.md.lookup("", "nope"), Missing)
        assert b.requests == []
        env.clock.t += 0.2
        assert isinstance(await env.md.lookup("", "nope"), Missing)
        assert len(b.heads()) == 1 and len(b.lists()) == 1

    run(b, go)


def test_zero_negative_ttl_asks_every_time():
    b = Bucket()

    async def go(env: Env) -> None:
        await env.md.lookup("", "nope")
        await env.md.lookup("", "nope")
        assert len(b.heads()) == 2

    run(b, go, negative_ttl=0)


# -- listings answer lookups -------------------------------------------------------------------

def test_lookup_in_freshly_listed_directory_sends_nothing():
    b = Bucket()
    b.put("d/f1", b"1")
    b.put("d/f2", b"22")
    b.put("d/sub/x")

    async def go(env: Env) -> None:
        await list_all(env, "d/")
        assert len(b.requests) == 1
        b.reset()
        f2 = await env.md.lookup("d/", "f2")
        assert isinstance(f2, Found) and not f2.is_dir and f2.meta.size == 2
        assert f2.meta.headers is None  # listing-level
        assert (await env.md.lookup("d/", "sub")).is_dir
        missing = await env.md.lookup("d/", "nope")
        assert isinstance(missing, Missing) and missing.expires == 1000.0 + TTL
        assert b.requests == []

    run(b, go)


def test_listing_in_progress_answers_only_what_it_has_put_in_the_cache():
    b = Bucket(page_size=2)
    for k in ("d/a", "d/b/x", "d/c", "d/e"):
        b.put(k)

    async def go(env: Env) -> None:
        lst = env.md.listing("d/")
        await env.md.fill(lst, 0)
        assert not lst.complete and [(e.name, e.is_dir) for e in lst.entries] == [
            ("a", False), ("b", True)]
        b.reset()
        assert (await env.md.lookup("d/", "b")).is_dir
        assert not (await env.md.lookup("d/", "a")).is_dir
        assert b.requests == []
        # Not listed yet: an incomplete listing cannot say it is absent.
        r = await env.md.lookup("d/", "e")
        assert isinstance(r, Found) and not r.is_dir
        assert len(b.heads()) == 1 and len(b.lists()) == 1

    run(b, go)


def test_expired_listing_no_longer_answers_negatives():
    b = Bucket()
    b.put("d/f1")

    async def go(env: Env) -> None:
        await list_all(env, "d/")
        env.clock.t += TTL
        b.reset()
        assert isinstance(await env.md.lookup("d/", "nope"), Missing)
        assert len(b.heads()) == 1 and len(b.lists()) == 1

    run(b, go)


# -- revalidation -------------------------------------------------------------------------------

def test_known_file_after_ttl_revalidated_with_one_conditional_head_304_extends():
    b = Bucket()
    b.put("k", b"abc")
    etag = b.objects["k"][1]

    async def go(env: Env) -> None:
        first = await env.md.lookup("", "k")
        env.clock.t += TTL + 1
        b.reset()
        r = await env.md.lookup("", "k")
        assert isinstance(r, Found) and r.meta is first.meta
        assert r.expires == env.clock.t + TTL
        (h,) = b.requests
        assert h.method == "HEAD" and h.headers["if-none-match"] == etag
        b.reset()
        await env.md.lookup("", "k")
        assert b.requests == []

    run(b, go)


def test_listed_file_after_ttl_revalidated_with_conditional_head():
    b = Bucket()
    b.put("d/k", b"abc")

    async def go(env: Env) -> None:
        await list_all(env, "d/")
        env.clock.t += TTL + 1
        b.reset()
        r = await env.md.lookup("d/", "k")
        assert isinstance(r, Found) and r.meta.size == 3
        (h,) = b.requests
        assert h.method == "HEAD" and h.headers["if-none-match"] == b.objects["d/k"][1]

    run(b, go)


def test_changed_object_replaces_the_entry():
    b = Bucket()
    b.put("k", b"abc", etag='"v1"')

    async def go(env: Env) -> None:
        await env.md.lookup("", "k")
        b.put("k", b"longer body", etag='"v2"', color="red")
        env.clock.t += TTL + 1
        b.reset()
        r = await env.md.lookup("", "k")
        assert r.meta.etag == '"v2"' and r.meta.size == 11
        assert ("x-amz-meta-color", "red") in r.meta.headers
        (h,) = b.requests
        assert h.headers["if-none-match"] == '"v1"'
        assert env.md.cache.get_object("k").meta.etag == '"v2"'

    run(b, go)


def test_deleted_object_becomes_missing_for_the_negative_ttl():
    b = Bucket()
    b.put("k")

    async def go(env: Env) -> None:
        await env.md.lookup("", "k")
        del b.objects["k"]
        env.clock.t += TTL + 1
        b.reset()
        r = await env.md.lookup("", "k")
        assert r == Missing(env.clock.t + NEG_TTL)
        # The conditional HEAD says 404; one LIST checks the name is not now a directory.
        assert len(b.heads()) == 1 and len(b.lists()) == 1 and len(b.requests) == 2
        b.reset()
        env.clock.t += NEG_TTL - 1
        assert isinstance(await env.md.lookup("", "k"), Missing)
        assert b.requests == []
        env.clock.t += 2
        assert isinstance(await env.md.lookup("", "k"), Missing)
        assert len(b.heads()) == 1 and len(b.lists()) == 1

    run(b, go)


def test_known_directory_after_ttl_revalidated_with_one_list():
    b = Bucket()
    b.put("d/x")

    async def go(env: Env) -> None:
        await env.md.lookup("", "d")
        env.clock.t += TTL + 1
        b.reset()
        assert (await env.md.lookup("", "d")).is_dir
        (lq,) = b.requests
        assert is_probe_list(lq, "d")

    run(b, go)


# -- file() -------------------------------------------------------------------------------------

def test_file_full_on_listing_level_entry_sends_plain_head():
    b = Bucket()
    b.put("d/k", b"abc", color="blue")

    async def go(env: Env) -> None:
        await list_all(env, "d/")
        b.reset()
        # Listing-level is enough without full.
        c = await env.md.file("d/k")
        assert c.meta.headers is None and b.requests == []
        c = await env.md.file("d/k", full=True)
        (h,) = b.requests
        assert h.method == "HEAD" and "if-none-match" not in h.headers
        assert ("x-amz-meta-color", "blue") in c.meta.headers
        b.reset()
        assert (await env.md.file("d/k", full=True)).meta.headers is not None
        assert b.requests == []

    run(b, go)


def test_file_of_deleted_object_raises_not_found_without_a_negative_entry():
    b = Bucket()

    async def go(env: Env) -> None:
        with pytest.raises(errors.NotFoundError):
            await env.md.file("gone")
        assert len(b.requests) == 1
        b.reset()
        # Not remembered as missing: the name may have become a directory,
        # so the kernel's next lookup probes both (then it is remembered).
        assert isinstance(await env.md.lookup("", "gone"), Missing)
        assert len(b.heads()) == 1 and len(b.lists()) == 1
        b.reset()
        assert isinstance(await env.md.lookup("", "gone"), Missing)
        assert b.requests == []

    run(b, go)


def test_file_replaced_by_directory_is_found_as_directory_after_ttl():
    b = Bucket()
    b.put("x")

    async def go(env: Env) -> None:
        assert not (await env.md.lookup("", "x")).is_dir
        del b.objects["x"]
        b.put("x/inner")
        env.clock.t += TTL + 1
        r = await env.md.lookup("", "x")
        assert isinstance(r, Found) and r.is_dir

    run(b, go)


def test_concurrent_file_calls_share_one_head():
    b = Bucket()
    b.put("k", b"abc")

    async def go(env: Env) -> None:
        b.gate = trio.Event()
        results: list[Any] = []

        async def one() -> None:
            results.append(await env.md.file("k", full=True))

        async with trio.open_nursery() as n:
            for _ in range(10):
                n.start_soon(one)
            await trio.testing.wait_all_tasks_blocked()
            assert len(b.requests) == 1
            b.gate.set()
        assert len(results) == 10
        assert all(r.meta.etag == b.objects["k"][1] and r.meta.headers for r in results)
        assert len(b.requests) == 1

    run(b, go)


def test_full_caller_does_not_take_a_listing_level_answer_from_a_shared_flight():
    b = Bucket()
    b.put("d/k", color="blue")

    async def go(env: Env) -> None:
        await list_all(env, "d/")
        env.clock.t += TTL + 1
        b.reset()
        b.gate = trio.Event()
        out: dict[str, Any] = {}

        async def plain() -> None:
            out["plain"] = await env.md.file("d/k")

        async def full() -> None:
            out["full"] = await env.md.file("d/k", full=True)

        async with trio.open_nursery() as n:
            n.start_soon(plain)
            await trio.testing.wait_all_tasks_blocked()
            n.start_soon(full)
            await trio.testing.wait_all_tasks_blocked()
            assert len(b.requests) == 1  # the full caller waits for the running flight
            b.gate.set()
        assert out["plain"].meta.headers is None  # 304 extended the listing-level entry
        assert ("x-amz-meta-color", "blue") in out["full"].meta.headers
        assert [r.headers.get("if-none-match") for r in b.requests] == [b.objects["d/k"][1], None]

    run(b, go)


def test_concurrent_lookups_share_one_probe():
    b = Bucket()
    b.put("k")

    async def go(env: Env) -> None:
        b.gate = trio.Event()
        results: list[Any] = []

        async def one() -> None:
            results.append(await env.md.lookup("", "k"))

        async with trio.open_nursery() as n:
            for _ in range(10):
                n.start_soon(one)
            await trio.testing.wait_all_tasks_blocked()
            b.gate.set()
        assert len(results) == 10 and all(isinstance(r, Found) for r in results)
        assert len(b.heads()) == 1 and len(b.lists()) == 1

    run(b, go)


# -- stale if error -------------------------------------------------------------------------------

def test_stale_metadata_served_when_revalidation_fails():
    b = Bucket()
    b.put("k", b"abc", color="blue")

    async def go(env: Env) -> None:
        fresh = await env.md.file("k", full=True)
        env.clock.t += TTL + 1
        b.fail = 500
        b.reset()
        c = await env.md.file("k", full=True)
        assert c.meta is fresh.meta
        assert c.expires == env.clock.t + 1.0  # stale_grace
        assert len(b.requests) == 2  # both attempts
        b.reset()
        env.clock.t += 2  # past the grace: the next call tries the server again
        r = await env.md.lookup("", "k")
        assert isinstance(r, Found) and r.meta is fresh.meta and r.expires == env.clock.t + 1.0
        assert len(b.requests) == 2

    run(b, go)


def test_stale_metadata_served_on_transport_errors_too():
    b = Bucket()
    b.put("k", b"abc")

    async def go(env: Env) -> None:
        first = await env.md.lookup("", "k")
        env.clock.t += TTL + 1
        b.broken = True
        r = await env.md.lookup("", "k")
        assert isinstance(r, Found) and r.meta is first.meta and r.expires == env.clock.t + 1.0
        c = await env.md.file("k")
        assert c.meta is first.meta

    run(b, go)


def test_stale_directory_served_when_revalidation_fails():
    b = Bucket()
    b.put("d/x")

    async def go(env: Env) -> None:
        await env.md.lookup("", "d")
        env.clock.t += TTL + 1
        b.fail = 500
        b.reset()
        r = await env.md.lookup("", "d")
        assert r == Found(True, None, env.clock.t + 1.0)
        assert len(b.requests) == 2 and all(is_probe_list(q, "d") for q in b.requests)

    run(b, go)


def test_without_cached_entry_the_error_propagates():
    b = Bucket()
    b.put("k")
    b.fail = 500

    async def go(env: Env) -> None:
        with pytest.raises(errors.ServerError):
            await env.md.file("k")
        with pytest.raises(errors.ServerError):
            await env.md.lookup("", "k")

    run(b, go)


def test_listing_level_stale_entry_cannot_serve_full_metadata():
    b = Bucket()
    b.put("d/k")

    async def go(env: Env) -> None:
        await list_all(env, "d/")
        env.clock.t += TTL + 1
        b.fail = 503
        with pytest.raises(errors.ServerError):
            await env.md.file("d/k", full=True)
        # ...but listing-level metadata is served stale.
        assert (await env.md.file("d/k")).meta.headers is None

    run(b, go)


# -- listings ----------------------------------------------------------------------------------

def test_relisting_with_unchanged_etags_keeps_head_level_headers():
    b = Bucket()
    b.put("d/a", color="blue")
    b.put("d/b")

    async def go(env: Env) -> None:
        lst1 = env.md.listing("d/")
        await env.md.fill(lst1, 10**9)
        await env.md.file("d/a", full=True)
        env.clock.t += TTL + 1
        b.reset()
        lst2 = env.md.listing("d/")
        assert lst2 is not lst1
        await env.md.fill(lst2, 10**9)
        assert len(b.requests) == 1 and b.requests[0].method == "GET"
        b.reset()
        c = await env.md.file("d/a", full=True)
        assert ("x-amz-meta-color", "blue") in c.meta.headers
        assert c.expires == env.clock.t + TTL
        assert b.requests == []

    run(b, go)


def test_relisting_with_changed_etag_needs_a_new_head():
    b = Bucket()
    b.put("d/a", etag='"v1"', color="blue")

    async def go(env: Env) -> None:
        await list_all(env, "d/")
        await env.md.file("d/a", full=True)
        b.put("d/a", etag='"v2"', color="green")
        env.clock.t += TTL + 1
        await list_all(env, "d/")
        b.reset()
        c = await env.md.file("d/a", full=True)
        (h,) = b.requests
        assert "if-none-match" not in h.headers
        assert ("x-amz-meta-color", "green") in c.meta.headers

    run(b, go)


def test_fresh_listing_is_reused_and_expired_one_replaced():
    b = Bucket()
    b.put("f")

    async def go(env: Env) -> None:
        lst = env.md.listing("")
        assert env.md.listing("") is lst  # in progress
        await env.md.fill(lst, 10**9)
        assert env.md.listing("") is lst  # fresh
        env.clock.t += TTL
        assert env.md.listing("") is not lst

    run(b, go)


def test_listing_pages_fetched_lazily():
    b = Bucket(page_size=2)
    for k in "abcde":
        b.put("d/" + k)

    async def go(env: Env) -> None:
        lst = env.md.listing("d/")
        assert b.requests == []
        await env.md.fill(lst, 0)
        assert len(b.requests) == 1
        assert [e.name for e in lst.entries] == ["a"]  # "b" held until a later key
        await env.md.fill(lst, 0)
        assert len(b.requests) == 1
        await env.md.fill(lst, 1)
        assert len(b.requests) == 2
        assert [e.name for e in lst.entries] == ["a", "b", "c"]
        await env.md.fill(lst, 100)
        assert len(b.requests) == 3 and lst.complete
        assert [e.name for e in lst.entries] == ["a", "b", "c", "d", "e"]
        await env.md.fill(lst, 100)
        assert len(b.requests) == 3
        q = [dict(r.url.params) for r in b.requests]
        assert all(p["prefix"] == "d/" and p["delimiter"] == "/" and p["encoding-type"] == "url"
                   for p in q)
        assert "continuation-token" not in q[0]
        assert q[1]["continuation-token"] == "d/b" and q[2]["continuation-token"] == "d/d"
        # Listed entries answer stat by themselves, without a request, and
        # are not copied into the object table (memory of huge directories).
        b.reset()
        assert (await env.md.file("d/e")).meta.size == 4
        assert b.requests == [] and env.md.cache.get_object("d/e") is None

    run(b, go)


def test_listing_directory_wins_across_pages():
    b = Bucket(page_size=1)
    b.put("a")
    b.put("a-b")
    b.put("a/x")

    async def go(env: Env) -> None:
        await list_all(env, "")
        lst = env.md.listing("")
        assert [(e.name, e.is_dir) for e in lst.entries] == [("a-b", False), ("a", True)]
        assert len(b.requests) == 3
        b.reset()
        assert (await env.md.lookup("", "a")).is_dir
        assert b.requests == []

    run(b, go)


def test_concurrent_readers_share_listing_pages():
    b = Bucket(page_size=2)
    for k in "abcde":
        b.put(k)

    async def go(env: Env) -> None:
        lst = env.md.listing("")
        b.gate = trio.Event()
        async with trio.open_nursery() as n:
            for _ in range(5):
                n.start_soon(env.md.fill, lst, 100)
            await trio.testing.wait_all_tasks_blocked()
            assert len(b.requests) == 1
            b.gate.set()
        assert lst.complete and [e.name for e in lst.entries] == list("abcde")
        assert len(b.requests) == 3

    run(b, go)


# Regression (was a bug): Metadata.listing() reuses an abandoned incomplete listing forever, so readdir serves pages fetched long past the TTL
def test_abandoned_incomplete_listing_is_not_served_after_the_ttl():
    b = Bucket(page_size=2)
    for k in "abcde":
        b.put(k)

    async def go(env: Env) -> None:
        old = env.md.listing("")
        await env.md.fill(old, 0)  # a reader stopped after the first page
        assert not old.complete and [e.name for e in old.entries] == ["a"]
        del b.objects["a"]
        env.clock.t += 100 * TTL
        lst = env.md.listing("")
        await env.md.fill(lst, 100)
        assert "a" not in [e.name for e in lst.entries]

    run(b, go)


def test_failed_listing_is_replaced():
    b = Bucket()
    b.put("f")

    async def go(env: Env) -> None:
        b.fail = 500
        lst = env.md.listing("")
        with pytest.raises(errors.ServerError):
            await env.md.fill(lst, 0)
        assert lst.failed
        b.fail = None
        lst2 = env.md.listing("")
        assert lst2 is not lst
        await env.md.fill(lst2, 0)
        assert [e.name for e in lst2.entries] == ["f"]

    run(b, go)

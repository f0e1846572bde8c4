"""Shared fakes of the unit tests (no tests here).

* :class:`Clock`: a settable clock (``clock.t``), injected into
  :class:`~metafs.cache.MetaCache` so a test steps time instead of sleeping.
* :class:`Bucket`: a tiny in-memory S3, an ``httpx.MockTransport`` handler
  that answers HEAD Object (with ``If-None-Match``) and ListObjectsV2
  (delimiter, paging), logs every request it receives, and can be told
  to fail (``fail``: an HTTP status), break (``broken``: a transport
  error) or hold every answer until an event is set (``gate``).
* :func:`run`: wires a real :class:`~metafs.s3.client.S3Client` over a
  :class:`Bucket` into the metadata layer as :func:`metafs.mount.build`
  does (LiveView, MetaCache, Listings, ObjectMetadata, Namespace) and runs
  a test body under trio with an :class:`Env` holding all of them.
"""

from __future__ import annotations

import email.utils
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, unquote

import httpx
import trio

from metafs.cache import MetaCache
from metafs.listings import Listings
from metafs.namespace import Namespace
from metafs.objects import ObjectMetadata
from metafs.s3.client import S3Client
from metafs.views import LiveView

TTL = 10.0
NEG_TTL = 5.0
MTIME = 1_607_571_450  # 2020-12-10T03:37:30Z


class Clock:
    """A clock that moves only when a test sets or advances ``t``."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

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
        parts = [('<?xml version="1.0" encoding="UTF-8"?>'
                  '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                  f"<Name>bkt</Name><Prefix>{quote(prefix)}</Prefix><KeyCount>{len(page)}</KeyCount>"
                  f"<MaxKeys>{max_keys}</MaxKeys><EncodingType>url</EncodingType>"
                  f"<IsTruncated>{'true' if rest else 'false'}</IsTruncated>")]
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
    """What a test body gets: the bucket, the clock and the wired metadata layer."""

    def __init__(self, bucket: Bucket, clock: Clock, cache: MetaCache, listings: Listings,
                 objects: ObjectMetadata, ns: Namespace) -> None:
        self.bucket, self.clock, self.cache = bucket, clock, cache
        self.listings, self.objects, self.ns = listings, objects, ns


def run(bucket: Bucket, fn: Callable[[Env], Awaitable[Any]], *, negative_ttl: float = NEG_TTL,
        attempts: int = 2, stale_grace: float = 1.0, max_entries: int = 100_000) -> Any:
    """Run ``fn(env)`` under trio against ``bucket`` (retries do not sleep)."""
    clock = Clock()

    async def no_sleep(_: float) -> None:
        return None

    async def main() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(bucket)) as http:
            client = S3Client(http, bucket="bkt", region="us-east-1",
                              endpoint_url="http://127.0.0.1:9000", attempts=attempts,
                              sleep=no_sleep, rng=lambda: 0.5)
            view = LiveView(client)
            cache = MetaCache(TTL, negative_ttl, max_entries=max_entries, clock=clock)
            listings = Listings(view, cache)
            objects = ObjectMetadata(view, cache, listings, stale_grace=stale_grace)
            ns = Namespace(view, cache, listings, objects)
            return await fn(Env(bucket, clock, cache, listings, objects, ns))

    return trio.run(main)


def is_probe_list(r: httpx.Request, key: str) -> bool:
    """Whether ``r`` is the directory half of a probe of ``key`` (LIST key/ max-keys=1)."""
    p = r.url.params
    return (r.method == "GET" and p.get("prefix") == key + "/" and p.get("max-keys") == "1"
            and "delimiter" not in p)


async def list_all(env: Env, dir_key: str = "") -> None:
    """List ``dir_key`` to the end through the current listing."""
    lst = env.listings.current(dir_key)
    await env.listings.fill(lst, 10**9)
    assert lst.complete

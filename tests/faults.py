"""A fault-injecting transport for the tests; no tests here.

:class:`Faults` is an ``httpx.MockTransport`` handler around any other
handler (usually :class:`tests.fakes.Bucket`): it passes requests through,
logs each with its *kind*, and makes the n-th request of a kind fail in a
chosen way.  Kinds, as :func:`metafs.devserver.classify` names them:

========== =====================================================
HEAD        HEAD Object (conditional or not)
HEAD_BUCKET HEAD of the bucket itself
LIST        a listing (GET of the bucket with listing parameters)
GET         GET Object (a read)
OTHER       anything else (GET ?location, ?session)
========== =====================================================

``faults.add("LIST", RepeatedToken(), nth=2, times=None)`` fails the 2nd
LIST and every one after it; ``times`` (default 1) says how many in a row,
``None`` forever.  Rules are tried in the order they were added; the first
that applies decides.  ``faults.count("LIST")`` is the number of LIST
requests the *client sent* (the inner handler may have seen fewer).

The faults, each a small class with ``async apply(request, inner)``:

* :class:`Status`: an error answer (optionally with ``Retry-After``);
* :class:`ResetBeforeAnswer`: the connection is reset before any answer;
* :class:`ResetMidBody`: the real answer's headers, then a reset halfway
  through its body (for a HEAD, right after the headers);
* :class:`TruncatedBody`: the real answer cut in half, ended by closing
  the connection (no Content-Length), which the HTTP layer cannot notice;
* :class:`MalformedBody`: a listing that is not XML, a HEAD whose
  Content-Length is not a number, a GET with bytes the answer does not
  announce;
* :class:`Hang`: no answer for ``seconds`` (default: never), with
  ``trio.sleep``, so tests inject a short attempt timeout (and trio's
  ``MockClock``) instead of waiting;
* the listing pathologies that once made ``readdir`` loop forever:
  :class:`TruncatedWithoutToken`, :class:`RepeatedToken`,
  :class:`EmptyTruncatedPages`, and :class:`RepeatedPage` (the first page
  again and again, under a new token each time).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import trio

Inner = Callable[[httpx.Request], Awaitable[httpx.Response]]

KINDS = ("HEAD", "HEAD_BUCKET", "LIST", "GET", "OTHER")
_LIST_PARAMS = {"list-type", "prefix", "delimiter", "marker", "max-keys", "encoding-type",
                "continuation-token", "start-after"}
BROKEN_XML = b"<ListBucketResult><Contents><Key>unterminated"


def classify(request: httpx.Request, bucket: str = "bkt") -> str:
    """The kind of ``request`` (path style ``/bucket/key`` or virtual-hosted ``/key``)."""
    path = request.url.path
    if path == f"/{bucket}" or path.startswith(f"/{bucket}/"):
        path = path[len(bucket) + 1:]
    has_key = path not in ("", "/")
    if request.method == "HEAD":
        return "HEAD" if has_key else "HEAD_BUCKET"
    if request.method == "GET":
        if has_key:
            return "GET"
        if set(request.url.params) <= _LIST_PARAMS:
            return "LIST"
    return "OTHER"


# -- the faults ------------------------------------------------------------------------------

@dataclasses.dataclass
class Status:
    """An error answer: ``code`` (503 by default) with an S3 error body, and ``Retry-After``."""

    code: int = 503
    retry_after: str | None = None
    error_code: str = "SlowDown"

    async def apply(self, request: httpx.Request, inner: Inner) -> httpx.Response:
        headers = {"retry-after": self.retry_after} if self.retry_after is not None else {}
        body = b"" if request.method == "HEAD" else (
            f"<Error><Code>{self.error_code}</Code><Message>injected</Message></Error>".encode())
        return httpx.Response(self.code, headers=headers, content=body)


@dataclasses.dataclass
class ResetBeforeAnswer:
    """The connection is reset before the server answers (the server never saw it through)."""

    async def apply(self, request: httpx.Request, inner: Inner) -> httpx.Response:
        raise httpx.ReadError("[Errno 104] Connection reset by peer", request=request)


class _CutStream(httpx.AsyncByteStream):
    """Yields ``data``, then raises ``error`` (or just ends, if None)."""

    def __init__(self, data: bytes, error: Exception | None) -> None:
        self._data, self._error = data, error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._data:
            yield self._data
        if self._error is not None:
            raise self._error


def _without_length(headers: httpx.Headers) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers.multi_items() if k.lower() != "content-length"]


@dataclasses.dataclass
class ResetMidBody:
    """The real answer's status and headers, half its body, then a connection reset."""

    async def apply(self, request: httpx.Request, inner: Inner) -> httpx.Response:
        r = await inner(request)
        body = await r.aread()
        error = httpx.ReadError("[Errno 104] Connection reset by peer", request=request)
        return httpx.Response(r.status_code, headers=r.headers.multi_items(),
                              stream=_CutStream(body[:len(body) // 2], error))


@dataclasses.dataclass
class TruncatedBody:
    """The real answer with half its body, ended by closing the connection (no Content-Length)."""

    async def apply(self, request: httpx.Request, inner: Inner) -> httpx.Response:
        r = await inner(request)
        body = await r.aread()
        return httpx.Response(r.status_code, headers=_without_length(r.headers),
                              stream=_CutStream(body[:len(body) // 2], None))


@dataclasses.dataclass
class MalformedBody:
    """A 200 no client can use: broken XML (LIST), a bad Content-Length (HEAD), stray bytes (GET)."""

    async def apply(self, request: httpx.Request, inner: Inner) -> httpx.Response:
        kind = classify(request)
        if kind == "HEAD":
            r = await inner(request)
            headers = _without_length(r.headers) + [("content-length", "not-a-number")]
            return httpx.Response(r.status_code, headers=headers)
        if kind == "GET":
            r = await inner(request)
            body = await r.aread()
            return httpx.Response(r.status_code, headers=_without_length(r.headers),
                                  stream=_CutStream(body + b"#stray bytes#", None))
        return httpx.Response(200, content=BROKEN_XML)


@dataclasses.dataclass
class Hang:
    """No answer for ``seconds`` (default: never), then the real one."""

    seconds: float = math.inf

    async def apply(self, request: httpx.Request, inner: Inner) -> httpx.Response:
        await trio.sleep(self.seconds)
        return await inner(request)


# -- listing pathologies ---------------------------------------------------------------------------

_PAGING = re.compile(rb"<(IsTruncated|NextContinuationToken|NextMarker)>[^<]*</\1>")
_ENTRIES = re.compile(rb"<(Contents|CommonPrefixes)>.*?</\1>", re.S)
_ROOT = re.compile(rb"<ListBucketResult[^>]*>")


def _repage(body: bytes, token: str | None, *, empty: bool = False) -> bytes:
    """``body`` (a listing) made truncated, going on with ``token`` (none: no way forward)."""
    body = _PAGING.sub(b"", body)
    if empty:
        body = _ENTRIES.sub(b"", body)
    more = b"<IsTruncated>true</IsTruncated>"
    if token is not None:
        more += b"<NextContinuationToken>" + token.encode() + b"</NextContinuationToken>"
    m = _ROOT.search(body)
    assert m is not None, body
    return body[:m.end()] + more + body[m.end():]


async def _listing(r: httpx.Response) -> bytes:
    body = await r.aread()
    assert r.status_code == 200, (r.status_code, body)
    return body


@dataclasses.dataclass
class TruncatedWithoutToken:
    """The real page, marked truncated, without a continuation token or marker."""

    async def apply(self, request: httpx.Request, inner: Inner) -> httpx.Response:
        return httpx.Response(200, content=_repage(await _listing(await inner(request)), None))


@dataclasses.dataclass
class RepeatedToken:
    """The real page, marked truncated, always going on with the same ``token``."""

    token: str = "again"

    async def apply(self, request: httpx.Request, inner: Inner) -> httpx.Response:
        return httpx.Response(200, content=_repage(await _listing(await inner(request)), self.token))


@dataclasses.dataclass
class EmptyTruncatedPages:
    """An empty page that says more follows, under a new token each time."""

    served: int = 0

    async def apply(self, request: httpx.Request, inner: Inner) -> httpx.Response:
        self.served += 1
        body = _repage(await _listing(await inner(request)), f"empty-{self.served}", empty=True)
        return httpx.Response(200, content=body)


@dataclasses.dataclass
class RepeatedPage:
    """The listing's first page every time, under a new token each time (no progress)."""

    served: int = 0

    async def apply(self, request: httpx.Request, inner: Inner) -> httpx.Response:
        self.served += 1
        params = [(k, v) for k, v in request.url.params.multi_items() if k != "continuation-token"]
        first = httpx.Request(request.method, request.url.copy_with(params=params),
                              headers=request.headers)
        body = _repage(await _listing(await inner(first)), f"again-{self.served}")
        return httpx.Response(200, content=body)


# -- the transport ---------------------------------------------------------------------------------

@dataclasses.dataclass
class Rule:
    kind: str
    fault: Any  # one of the classes above: anything with ``async apply(request, inner)``
    nth: int = 1
    times: int | None = 1
    hits: int = 0  # requests this rule answered

    def applies(self, n: int) -> bool:
        return n >= self.nth and (self.times is None or n < self.nth + self.times)


class Faults:
    """An ``httpx.MockTransport`` handler: ``inner``'s answers, with injected faults."""

    def __init__(self, inner: Callable[[httpx.Request], Any], bucket: str = "bkt") -> None:
        self.inner = inner
        self.bucket = bucket
        self.rules: list[Rule] = []
        self.log: list[tuple[str, httpx.Request]] = []
        self._seen: collections.Counter[str] = collections.Counter()

    def add(self, kind: str, fault: Any, *, nth: int = 1, times: int | None = 1) -> Rule:
        """Fail requests ``nth`` … ``nth + times - 1`` of ``kind`` (counted from the start) with ``fault``."""
        assert kind in KINDS, kind
        rule = Rule(kind, fault, nth, times)
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """No more faults: everything passes through (the server recovered)."""
        self.rules.clear()

    def count(self, *kinds: str) -> int:
        """Requests the client sent, of these kinds (all kinds if none given)."""
        return sum(1 for k, _ in self.log if not kinds or k in kinds)

    def requests(self, kind: str) -> list[httpx.Request]:
        return [r for k, r in self.log if k == kind]

    async def _inner(self, request: httpx.Request) -> httpx.Response:
        r = self.inner(request)
        if hasattr(r, "__await__"):
            r = await r
        assert isinstance(r, httpx.Response)
        return r

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        kind = classify(request, self.bucket)
        self.log.append((kind, request))
        self._seen[kind] += 1
        n = self._seen[kind]
        for rule in self.rules:
            if rule.kind == kind and rule.applies(n):
                rule.hits += 1
                result: httpx.Response = await rule.fault.apply(request, self._inner)
                return result
        return await self._inner(request)

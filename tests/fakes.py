"""Shared fakes and helpers of the tests; no tests here.

The metadata layer over an in-memory bucket:

* :class:`Clock`: a settable clock (``clock.t``), injected into
  :class:`~metafs.cache.MetaCache` so a test steps time instead of sleeping.
* :class:`Bucket`: a tiny in-memory S3, an ``httpx.MockTransport`` handler
  that answers HEAD Bucket, HEAD Object (with ``If-None-Match``), ranged GET
  and ListObjectsV2 (delimiter, paging, in the keys' byte order; keys that
  are not UTF-8 hold lone surrogates, as in metafs), logs every request it
  receives, and can be told
  to fail (``fail``: an HTTP status), break (``broken``: a transport
  error) or hold every answer until an event is set (``gate``).
* :func:`run_layers`: wires a real :class:`~metafs.s3.client.S3Client` over a
  :class:`Bucket` (or a :class:`tests.faults.Faults` around one) into the
  metadata layer as :func:`metafs.mount.build` does (LiveView, MetaCache,
  Listings, ObjectMetadata, Namespace) and runs a test body under trio
  with an :class:`Env` holding all of them.
  ``virtual_time=True`` runs it on trio's :class:`~trio.testing.MockClock`
  (time jumps whenever every task waits), with the cache's clock a
  :class:`TrioClock` following it: a hanging request (``gate``) then costs
  its timeouts and backoff in virtual time, which a test reads and asserts,
  at no real wait.  ``probing=True`` gives the client a nursery, so an
  outage is probed in the background as in a mount.

The S3 client alone:

* :class:`Server` and :class:`ExpressServer`: scripted ``httpx.MockTransport``
  handlers that record what the client sent;
* :func:`run`: one :class:`~metafs.s3.client.S3Client` over such a handler,
  inside ``trio.run``;
* :class:`StaticCredentials`: fixed keys, without the environment or botocore;
* answer bodies (:func:`xml_error`, :func:`listing`, :func:`session_answer`)
  and request readers (:func:`scope_region`, :func:`wire_query`);
* :class:`CaseSpace` and :func:`signing_case`: the random requests the
  signing tests sign both with metafs and with each vendor's SDK.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import httpx
import trio
import trio.testing

from metafs.attrs import Ownership
from metafs.cache import MetaCache
from metafs.contents import READ_CHUNK
from metafs.credentials import CredentialSource
from metafs.fuse_ops import Operations, handler_bound
from metafs.inodes import InodeTable
from metafs.invalidate import KernelInvalidation
from metafs.listings import Listings
from metafs.mount import wire
from metafs.namespace import Namespace
from metafs.objects import ObjectMetadata
from metafs.s3.client import S3Client
from metafs.signing import Credentials
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


def _key_bytes(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")


def _q(key: str) -> str:
    """A key (or token) as S3 writes it with ``encoding-type=url``: its bytes, percent-encoded."""
    return quote(key, errors="surrogateescape")


class TrioClock(Clock):
    """The cache's clock on trio's virtual clock: request timeouts move it, ``t += s`` jumps it.

    Starts at 1000, like :class:`Clock`; time only goes forward.
    """

    def __init__(self, mock: trio.testing.MockClock, t: float = 1000.0) -> None:
        self._mock = mock
        self._offset = t - mock.current_time()

    @property
    def t(self) -> float:
        return self._offset + self._mock.current_time()

    @t.setter
    def t(self, value: float) -> None:
        self._mock.jump(value - self.t)


class Bucket:
    """A tiny S3: key -> (body, etag, headers); HEAD, ListObjectsV2 and ranged GET Object."""

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

    def reads(self) -> list[httpx.Request]:
        """GET Object requests (``lists()`` counts every GET, these included)."""
        return [r for r in self.requests if r.method == "GET"
                and r.url.raw_path.split(b"?")[0] not in (b"/bkt", b"/bkt/")]

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        if self.broken:
            raise httpx.ConnectError("[Errno 111] Connection refused")
        if self.fail is not None:
            return httpx.Response(self.fail, content=b"<Error><Code>InternalError</Code></Error>")
        path, _, query = request.url.raw_path.decode("ascii").partition("?")
        assert path.startswith("/bkt")
        # Keys are bytes: those that are not UTF-8 travel as lone surrogates (metafs.dirlist).
        key = unquote(path[len("/bkt/"):], errors="surrogateescape")
        if request.method == "HEAD" and key == "":
            return httpx.Response(200, headers={"x-amz-bucket-region": "us-east-1"})
        if request.method == "HEAD":
            return self._head(key, request)
        if request.method == "GET" and key:
            return self._get(key, request)
        assert request.method == "GET" and key == ""
        return self._list(dict(parse_qsl(query, keep_blank_values=True, errors="surrogateescape")))

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
        # Our tokens are the last key shown (quoted), so a token and start-after mean the same.
        after = (unquote(q["continuation-token"], errors="surrogateescape")
                 if "continuation-token" in q else q.get("start-after", ""))
        entries: list[tuple[str, bool]] = []
        for k in sorted(self.objects, key=_key_bytes):  # S3's order: the keys' bytes
            if not k.startswith(prefix):
                continue
            if delim and delim in k[len(prefix):]:
                cp = k[:k.index(delim, len(prefix)) + 1]
                if not entries or entries[-1] != (cp, True):
                    entries.append((cp, True))
            else:
                entries.append((k, False))
        entries = [e for e in entries if _key_bytes(e[0]) > _key_bytes(after)] if after else entries
        page, rest = entries[:max_keys], entries[max_keys:]
        parts = [('<?xml version="1.0" encoding="UTF-8"?>'
                  '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                  f"<Name>bkt</Name><Prefix>{_q(prefix)}</Prefix><KeyCount>{len(page)}</KeyCount>"
                  f"<MaxKeys>{max_keys}</MaxKeys><EncodingType>url</EncodingType>"
                  f"<IsTruncated>{'true' if rest else 'false'}</IsTruncated>")]
        if rest:
            parts.append(f"<NextContinuationToken>{_q(page[-1][0])}</NextContinuationToken>")
        for name, is_prefix in page:
            if is_prefix:
                parts.append(f"<CommonPrefixes><Prefix>{_q(name)}</Prefix></CommonPrefixes>")
            else:
                body, etag, _ = self.objects[name]
                parts.append(f"<Contents><Key>{_q(name)}</Key>"
                             f"<LastModified>2020-12-10T03:37:30.456Z</LastModified>"
                             f"<ETag>{etag.replace(chr(34), '&quot;')}</ETag>"
                             f"<Size>{len(body)}</Size><StorageClass>STANDARD</StorageClass>"
                             f"</Contents>")
        parts.append("</ListBucketResult>")
        return httpx.Response(200, content="".join(parts).encode())

    def _get(self, key: str, request: httpx.Request) -> httpx.Response:
        """GET Object: ``Range: bytes=a-b`` (206, 416 past the end), ``If-Match`` (412)."""
        if key not in self.objects:
            return httpx.Response(404, content=b"<Error><Code>NoSuchKey</Code></Error>")
        body, etag, meta = self.objects[key]
        if "if-match" in request.headers and request.headers["if-match"] != etag:
            return httpx.Response(412, content=b"<Error><Code>PreconditionFailed</Code></Error>")
        headers = {"etag": etag, "content-type": "text/plain", **meta}
        rng = request.headers.get("range")
        if rng is None:
            return httpx.Response(200, content=body, headers=headers)
        first_s, _, last_s = rng.removeprefix("bytes=").partition("-")
        first = int(first_s)
        last = min(int(last_s) if last_s else len(body) - 1, len(body) - 1)
        if first >= len(body):
            return httpx.Response(416, headers={"content-range": f"bytes */{len(body)}"})
        return httpx.Response(206, content=body[first:last + 1], headers={
            **headers, "content-range": f"bytes {first}-{last}/{len(body)}"})


class Env:
    """What a test body gets: the bucket, the clock and the wired metadata layer (and its client)."""

    def __init__(self, bucket: Bucket, clock: Clock, cache: MetaCache, listings: Listings,
                 objects: ObjectMetadata, ns: Namespace, client: S3Client | None = None) -> None:
        self.bucket, self.clock, self.cache = bucket, clock, cache
        self.listings, self.objects, self.ns = listings, objects, ns
        self.client = client


def _run_wired(bucket: Bucket, body: Callable[[httpx.AsyncClient, S3Client, Clock], Awaitable[Any]],
               *, attempts: int, attempt_timeout: float, handler: Handler | None = None,
               sleep: Callable[[float], Awaitable[None]] | None = None, mock_clock: bool = False,
               virtual_time: bool = False, probing: bool = False) -> Any:
    """``body(http, client, clock)`` under trio: the client over ``bucket`` (or ``handler``).

    Backoff takes no time unless asked (rng 0.5; no sleep in real time,
    trio's sleep in virtual time, or ``sleep``).  ``mock_clock`` runs trio
    on a MockClock while the cache's clock stays put; ``virtual_time`` also
    moves the cache's clock with trio's.
    """
    mock = trio.testing.MockClock(autojump_threshold=0) if virtual_time or mock_clock else None
    clock: Clock = TrioClock(mock) if mock is not None and virtual_time else Clock()
    backoff = sleep or (trio.sleep if virtual_time else no_sleep)

    async def main() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler or bucket)) as http:
            client = S3Client(http, bucket="bkt", region="us-east-1",
                              endpoint_url="http://127.0.0.1:9000", attempts=attempts,
                              attempt_timeout=attempt_timeout, sleep=backoff, rng=lambda: 0.5)
            if not probing:
                return await body(http, client, clock)
            async with trio.open_nursery() as nursery:
                client.start_background(nursery)
                result = await body(http, client, clock)
                nursery.cancel_scope.cancel()  # the probe loop, if an outage is under way
            return result

    return trio.run(main, clock=mock)


def run_layers(bucket: Bucket, fn: Callable[[Env], Awaitable[Any]], *, negative_ttl: float = NEG_TTL,
               attempts: int = 2, stale_grace: float = 1.0, max_entries: int = 100_000,
               handler: Handler | None = None, attempt_timeout: float = 10.0,
               sleep: Callable[[float], Awaitable[None]] | None = None, mock_clock: bool = False,
               virtual_time: bool = False, probing: bool = False) -> Any:
    """Run ``fn(env)`` under trio against ``bucket`` (see the module docstring).

    The layers are wired by :func:`metafs.mount.wire`, as a mount wires them.
    ``handler`` answers instead of ``bucket`` (a :class:`tests.faults.Faults`
    around it); ``sleep`` replaces the client's backoff sleep (``trio.sleep``
    to let backoff and Retry-After take time); ``mock_clock`` runs trio on a
    :class:`trio.testing.MockClock` that jumps whenever every task waits, so
    timeouts and sleeps take no real time and ``trio.current_time()``
    measures them.
    """
    return run_ops(bucket, fn, negative_ttl=negative_ttl, attempts=attempts,
                   stale_grace=stale_grace, max_entries=max_entries, handler=handler,
                   attempt_timeout=attempt_timeout, sleep=sleep, mock_clock=mock_clock,
                   virtual_time=virtual_time, probing=probing)


def is_probe_list(r: httpx.Request, key: str) -> bool:
    """Whether ``r`` is the directory half of a probe of ``key``: the first flat page of ``key/``.

    (No delimiter, from the start, the server's page size: see :mod:`metafs.namespace`.)
    """
    p = r.url.params
    return (r.method == "GET" and p.get("prefix") == key + "/" and "delimiter" not in p
            and not {"max-keys", "start-after", "continuation-token", "marker"} & set(p))


async def list_all(env: Env, dir_key: str = "") -> None:
    """List ``dir_key`` to the end through the current listing."""
    lst = env.listings.current(dir_key)
    await env.listings.fill(lst, 10**9)
    assert lst.complete


# -- the S3 client alone ------------------------------------------------------------

SECRET = "fake/SECRET+key=never-logged"
TOKEN = "FAKE-TOKEN/never+logged"
NOW = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
UTC = dt.UTC

Handler = Callable[[httpx.Request], Any]


# -- the client over a scripted server ---------------------------------------------------------

class StaticCredentials(CredentialSource):
    """Fixed keys (``SECRET``), without the environment or botocore."""

    def __init__(self, token: str | None = None, key_id: str = "AKID") -> None:
        super().__init__()
        self.token, self.key_id = token, key_id

    async def get(self) -> Credentials | None:
        return Credentials(self.key_id, SECRET, self.token)

    def profile_region(self) -> str | None:  # never the machine's AWS config
        return None


class Server:
    """Answers in turn (the last one repeats); records requests.

    An answer is a response, a status code, an exception to raise, or a
    function of the request returning one of those (or an awaitable of one).
    """

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        a = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if callable(a):
            a = a(request)
            if hasattr(a, "__await__"):
                a = await a
        if isinstance(a, BaseException):
            raise a
        return httpx.Response(a) if isinstance(a, int) else a


async def no_sleep(_: float) -> None:
    return None


def run(handler: Handler, fn: Callable[[S3Client], Awaitable[Any]], *,
        mock_clock: bool = False, **kw: Any) -> Any:
    """``fn(client)`` against ``handler``; ``kw`` are S3Client's arguments.

    Defaults: bucket ``bkt`` in us-east-1 at the provider's endpoint,
    :class:`StaticCredentials`, the clock stopped at ``NOW``, no backoff
    sleeps.  ``mock_clock``: trio's clock jumps whenever all tasks wait.
    """
    kw.setdefault("bucket", "bkt")
    kw.setdefault("region", "us-east-1")
    kw.setdefault("now", lambda: NOW)
    kw.setdefault("sleep", no_sleep)
    kw.setdefault("credentials", StaticCredentials())

    async def main() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            return await fn(S3Client(http, **kw))

    if mock_clock:
        return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return trio.run(main)


def no_secret_in(exc: BaseException) -> None:
    """Neither the secret nor the token may reach an exception's text."""
    for text_ in (str(exc), repr(exc), repr(exc.args), str(exc.__dict__)):
        assert SECRET not in text_ and TOKEN not in text_


# -- answers ------------------------------------------------------------------------------------

def xml_error(code: str, message: str = "msg", **extra: str) -> bytes:
    """An ``<Error>`` document; ``extra`` adds elements (``Region=``, ``Endpoint=``)."""
    more = "".join(f"<{k}>{v}</{k}>" for k, v in extra.items())
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message>{more}<RequestId>R</RequestId></Error>").encode()


def listing(*keys: str, prefixes: tuple[str, ...] = (), truncated: bool = False,
            extra: str = "") -> bytes:
    """A URL-encoded listing page of ``keys`` (size 1, ETag ``"e"``) and ``prefixes``."""
    items = "".join(f"<Contents><Key>{k}</Key><LastModified>2024-01-01T00:00:00.000Z"
                    f"</LastModified><ETag>\"e\"</ETag><Size>1</Size></Contents>" for k in keys)
    cps = "".join(f"<CommonPrefixes><Prefix>{p}</Prefix></CommonPrefixes>" for p in prefixes)
    return (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>b</Name>'
            f"<EncodingType>url</EncodingType><IsTruncated>{str(truncated).lower()}</IsTruncated>"
            f"{extra}{items}{cps}</ListBucketResult>").encode()


# -- requests -----------------------------------------------------------------------------------

def scope_region(req: httpx.Request) -> str:
    """The region a SigV4 (or OSS V4) authorization is scoped to."""
    return req.headers["authorization"].split("Credential=")[1].split("/")[2]


def wire_query(req: httpx.Request) -> list[tuple[str, str]]:
    return parse_qsl(req.url.query.decode(), keep_blank_values=True)


def headers_of(req: httpx.Request) -> dict[str, str]:
    return {k.lower(): v for k, v in req.headers.items()}


# -- S3 directory buckets -----------------------------------------------------------------------

EXPRESS_BUCKET = "logs--usw2-az1--x-s3"


def session_answer(n: int, lifetime: int = 300, date: dt.datetime = NOW) -> httpx.Response:
    """CreateSession's answer: session ``n``, valid ``lifetime`` s from the server's ``date``."""
    exp = (date + dt.timedelta(seconds=lifetime)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = (f'<CreateSessionResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Credentials>'
            f"<SessionToken>SESSION-TOKEN-{n}</SessionToken><SecretAccessKey>SESSION-SECRET-{n}"
            f"</SecretAccessKey><AccessKeyId>SESSIONKEY{n}</AccessKeyId><Expiration>{exp}"
            f"</Expiration></Credentials></CreateSessionResult>")
    return httpx.Response(200, content=body.encode(),
                          headers={"date": date.strftime("%a, %d %b %Y %H:%M:%S GMT")})


class ExpressServer:
    """Answers CreateSession with numbered sessions, everything else with ``other``."""

    def __init__(self, other: Any = 200, lifetime: int = 300) -> None:
        self.other, self.lifetime = other, lifetime
        self.requests: list[httpx.Request] = []
        self.sessions = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.query == b"session":
            self.sessions += 1
            await trio.sleep(0.01)  # let concurrent callers pile up
            return session_answer(self.sessions, self.lifetime)
        other = self.other(request) if callable(self.other) else self.other
        return httpx.Response(other) if isinstance(other, int) else other


# -- the command --------------------------------------------------------------------------------

def text(rng: random.Random, alphabet: Sequence[str], lo: int, hi: int) -> str:
    """``lo`` to ``hi`` pieces drawn from ``alphabet`` (pieces may be longer than a character)."""
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


@dataclasses.dataclass(frozen=True)
class CaseSpace:
    """What one vendor's random requests are drawn from."""

    key_chars: Sequence[str]
    value_chars: Sequence[str]
    params: Sequence[str]  # up to five are drawn per request
    # Parameters whose value is not free text: name -> value ("" is value-less).
    param_values: Mapping[str, Callable[[random.Random], str]]
    # Each group of headers is sent with its probability.
    headers: Sequence[tuple[float, Callable[[random.Random], dict[str, str]]]]
    token_chars: Sequence[str]  # half the requests carry a token
    token_max: int = 80
    zones: Sequence[dt.tzinfo | None] = (None, UTC)  # of ``now``; None: naive UTC
    fractional_time: bool = False  # ``ts`` with a fraction of a second


@dataclasses.dataclass
class SigningCase:
    method: str
    key: str  # '' (a bucket request) one time in ten
    query: list[tuple[str, str]]
    headers: dict[str, str]
    token: str | None
    ts: float  # seconds since the epoch
    now: dt.datetime  # ``ts`` in one of the space's zones


def signing_case(rng: random.Random, space: CaseSpace) -> SigningCase:
    """One random request from ``space``."""
    key = "" if rng.random() < 0.1 else text(rng, space.key_chars, 1, 12)
    query = []
    for name in rng.sample(list(space.params), rng.randint(0, 5)):
        value = space.param_values.get(name)
        query.append((name, value(rng) if value else text(rng, space.value_chars, 0, 10)))
    headers: dict[str, str] = {}
    for probability, group in space.headers:
        if rng.random() < probability:
            headers.update(group(rng))
    token = None if rng.random() < 0.5 else text(rng, space.token_chars, 20, space.token_max)
    ts = (rng.uniform(1.4e9, 2.1e9) if space.fractional_time
          else float(rng.randint(1_400_000_000, 2_100_000_000)))
    zone = rng.choice(list(space.zones))
    now = (dt.datetime.fromtimestamp(ts, UTC).replace(tzinfo=None) if zone is None
           else dt.datetime.fromtimestamp(ts, zone))
    return SigningCase(rng.choice(["GET", "HEAD"]), key, query, headers, token, ts, now)


def valueless(rng: random.Random) -> str:
    return ""


def count(rng: random.Random) -> str:
    return str(rng.randint(1, 1000))


def url_encoding(rng: random.Random) -> str:
    return "url"


# -- the FUSE handlers over the metadata layer ----------------------------------------------

OWN = Ownership(uid=1000, gid=1000, file_mode=0o444, dir_mode=0o555, dir_mtime=MTIME)
ROOT_XATTRS = {b"user.s3.bucket": b"bkt"}


class OpsEnv(Env):
    """:class:`Env` plus the handlers wired on it as :func:`metafs.mount.build` does.

    ``invalidated`` collects what :class:`~metafs.invalidate.KernelInvalidation`
    would send to the kernel, as (parent inode, name).
    """

    def __init__(self, env: Env, inodes: InodeTable, invalidation: KernelInvalidation,
                 invalidated: list[tuple[int, bytes]], ops: Operations) -> None:
        super().__init__(env.bucket, env.clock, env.cache, env.listings, env.objects, env.ns,
                         env.client)
        self.inodes, self.invalidation, self.invalidated, self.ops = (
            inodes, invalidation, invalidated, ops)


def run_ops(bucket: Bucket, fn: Callable[[OpsEnv], Awaitable[Any]], *,
            negative_ttl: float = NEG_TTL, attempts: int = 2, stale_grace: float = 1.0,
            max_entries: int = 100_000, read_chunk: int | None = None,
            handler: Handler | None = None, attempt_timeout: float = 10.0,
            sleep: Callable[[float], Awaitable[None]] | None = None, mock_clock: bool = False,
            bound: float | None = None, virtual_time: bool = False, probing: bool = False
            ) -> Any:
    """Run ``fn(env)`` under trio with :class:`~metafs.fuse_ops.Operations` over ``bucket``.

    The wiring is :func:`metafs.mount.wire`'s, the mount's own: one
    InodeTable, a KernelInvalidation whose submit function collects into
    ``env.invalidated``, the cache's ``on_evict`` wired to it, the cache's
    clock and TTL as the handlers' ``clock`` and ``dir_ttl``, and the
    cache's and invalidation's figures as the root's ``metafs.*`` xattrs,
    and the handlers' bound :func:`~metafs.fuse_ops.handler_bound` of the
    client's budget unless ``bound`` is given.  No background services run
    (no readahead, no list-ahead) but, with ``probing``, the client's outage
    probe.  The other options as for :func:`run_layers`.
    """

    async def body(http: httpx.AsyncClient, client: S3Client, clock: Clock) -> Any:
        invalidated: list[tuple[int, bytes]] = []
        layers = wire(LiveView(client), OWN, ttl=TTL, negative_ttl=negative_ttl,
                      max_entries=max_entries, root_xattrs=dict(ROOT_XATTRS),
                      submit=lambda ino, name: invalidated.append((ino, name)),
                      clock=clock, stale_grace=stale_grace,
                      read_chunk=READ_CHUNK if read_chunk is None else read_chunk,
                      bound=handler_bound(client.budget) if bound is None else bound)
        env = Env(bucket, clock, layers.cache, layers.listings, layers.objects,
                  layers.namespace, client)
        return await fn(OpsEnv(env, layers.inodes, layers.invalidation, invalidated, layers.ops))

    return _run_wired(bucket, body, attempts=attempts, attempt_timeout=attempt_timeout,
                      handler=handler, sleep=sleep, mock_clock=mock_clock,
                      virtual_time=virtual_time, probing=probing)

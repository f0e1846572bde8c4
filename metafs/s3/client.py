"""The object-storage client: bucket check, HEAD Object and listing pages over httpx.

One long-lived ``httpx.AsyncClient`` (created by ``mount``, injected here,
replaced by ``httpx.MockTransport`` in tests) carries every request.  This
module is the request machine and the operations: it prepares and signs
each request, sends it with retries (backoff and jitter, a deadline per
attempt), follows a region redirect and renews an expired directory-bucket
session.  What an answer means is decided in :mod:`~metafs.s3.answers`,
where requests go in :mod:`~metafs.s3.endpoint`, and what differs between
S3, COS, OSS, OBS and S3 directory buckets is data in a
:class:`~metafs.s3.dialects.Dialect`; this module only reads it.

Every request is bounded: each attempt runs under ``trio.move_on_after``
(pyfuse3 has no FUSE INTERRUPT support, so a hung request would pin a
worker and block unmount), there are at most ``attempts`` attempts, and
the whole request, backoff and ``Retry-After`` waits included, ends
within its budget (:func:`request_budget`).  Whether to send at all is
:mod:`~metafs.s3.health`'s answer: once a request got no answer in any
attempt, the endpoint is known down, later requests fail at once, and this
client probes it in the background until it answers.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import email.utils
import logging
import random
import re
from collections.abc import Awaitable, Callable, Mapping

import httpx
import trio

from .. import errors, metrics
from ..credentials import CredentialSource
from ..signing import Credentials, SignableRequest, Signer, uri_encode
from . import answers
from .dialects import Dialect, dialect_for
from .endpoint import Endpoint
from .express import Session, SessionCache
from .health import EndpointHealth
from .model import (
    Absent,
    AnnotationPage,
    Denied,
    Fresh,
    HeadOutcome,
    ListPage,
    NotModified,
    Unsupported,
    VersionsPage,
    decode_headers,
    meta_from_head,
    parse_annotations,
    parse_create_session,
    parse_http_date,
    parse_list,
    parse_location,
    parse_tagging,
    parse_versioning,
    parse_versions,
)
from .ssec import CustomerKeys

log = logging.getLogger(__name__)


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(?:\d+|\*)")
# The longest answer read as one ListObjectAnnotations page: a page of 1,000 entries is
# ~1.5 MB.  A server that ignores ``?annotation`` (Ceph RGW) answers with the object
# itself, which may be gigabytes: it is not downloaded to find that out.
ANNOTATION_PAGE_MAX = 8 << 20
OVER_LIMIT = "metafs.over_limit"  # in a response's extensions: its body was not read (see _send)


async def _read_at_most(r: httpx.Response, request: httpx.Request, limit: int) -> httpx.Response:
    """``r`` read, unless it says its body is longer than ``limit`` bytes: then an empty one, marked.

    The marked answer has ``extensions[OVER_LIMIT]`` true and no body; the
    body is left on the wire (closing ``r`` drops the connection).  An
    answer without Content-Length is read whole (an object's GET always has
    one, which is what this guards against).
    """
    declared = r.headers.get("content-length", "")
    if not (declared.isdigit() and int(declared) > limit):
        await r.aread()
        return r
    headers = [(k, v) for k, v in r.headers.multi_items()
               if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")]
    return httpx.Response(r.status_code, headers=headers, content=b"", request=request,
                          extensions={**r.extensions, OVER_LIMIT: True})


def _whole_body(r: httpx.Response, what: str) -> bytes:
    """The body of a GET, refused if shorter or longer than the answer itself says.

    An answer without Content-Length (ended by closing the connection) that
    is cut short looks complete to the HTTP layer; handing its bytes to a
    reader would silently shorten the file.  Content-Range (206) or
    Content-Length (200) says how many bytes were meant.  A content-encoded
    body is decoded by the HTTP layer, so its length proves nothing.
    """
    body = r.content
    if r.headers.get("content-encoding", "identity").lower() != "identity":
        return body
    expected: int | None = None
    if r.status_code == 206:
        m = _CONTENT_RANGE.fullmatch(r.headers.get("content-range", "").strip())
        if m:
            expected = int(m.group(2)) - int(m.group(1)) + 1
    elif (length := r.headers.get("content-length", "")).isdigit():
        expected = int(length)
    if expected is not None and len(body) != expected:
        raise errors.MalformedResponseError(
            f"{what}: the answer has {len(body)} bytes of the {expected} it announces")
    return body


def request_budget(attempts: int, attempt_timeout: float, backoff_base: float,
                   backoff_cap: float) -> float:
    """The longest one request may take: every attempt timing out, every backoff at its most.

    With the defaults (3 attempts of 10 s, backoff 0.2 s doubling, capped
    at 5 s): 30 + 0.2 + 0.4 = 30.6 s.  The request's deadline (see
    :meth:`S3Client._send`) and the FUSE layer's bound are built on it.
    """
    return attempts * attempt_timeout + sum(
        min(backoff_cap, backoff_base * 2.0 ** i) for i in range(attempts - 1))


@dataclasses.dataclass(slots=True)
class BucketInfo:
    """What the start-up check learned: headers to show, the bucket's region."""

    headers: dict[str, str]
    region: str | None  # as the provider spells it (OSS: ``oss-cn-hangzhou``)


class S3Client:
    """Signed, bounded, retried requests against one bucket, in its provider's dialect.

    ``explicit_region`` says whether ``region`` came from the user (a
    different bucket region is then logged as a warning) or is a default
    (then it is only noted at info level).  ``clock`` is the monotonic
    clock that times directory-bucket sessions and outages (``health``).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        bucket: str,
        region: str,
        endpoint_url: str | None = None,
        force_path_style: bool = False,
        credentials: CredentialSource | None = None,
        attempts: int = 3,
        attempt_timeout: float = 10.0,
        backoff_base: float = 0.2,
        backoff_cap: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = trio.sleep,
        rng: Callable[[], float] = random.random,
        now: Callable[[], _dt.datetime] = _utcnow,
        dialect: Dialect | None = None,
        oss_signature: str = "v4",
        explicit_region: bool = True,
        clock: Callable[[], float] = trio.current_time,
        customer_keys: CustomerKeys | None = None,
        request_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.http = http
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.force_path_style = force_path_style
        self.dialect = dialect or dialect_for("s3", bucket)
        self.endpoint = Endpoint.build(endpoint_url, region, bucket, force_path_style, self.dialect)
        self._region = region
        self.explicit_region = explicit_region
        self._oss_signature = oss_signature
        # Directory buckets: data requests are signed with session keys by
        # the session signer, HEAD Bucket and CreateSession with the IAM
        # credentials by self.signer.
        self.signer, self._session_signer = self._signers(region)
        self._sessions: SessionCache | None = None
        if self._session_signer is not None:
            self._sessions = SessionCache(self._create_session, clock)
        self._clock = clock  # times sessions and each request's deadline
        self.credentials = credentials or CredentialSource(anonymous=True)
        self.attempts = max(1, attempts)
        self.attempt_timeout = attempt_timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self._rng = rng
        self._now = now
        self.health = EndpointHealth(self._where(), clock=clock, wall=now)
        # SSE-C (--sse-c-key-file): the keys, and which one opens each object (s3/ssec.py).
        self.customer_keys = customer_keys
        # Sent on every request (--requester-pays, --expected-bucket-owner).
        self.request_headers = dict(request_headers or {})
        self._nursery: trio.Nursery | None = None
        self._probing = False  # the probe task runs (one at most, whatever the outages)

    def start_background(self, nursery: trio.Nursery) -> None:
        """Where outage probes run (the mount's nursery); without one the breaker is half-open."""
        self._nursery = nursery
        self.health.background = True

    def _where(self) -> str:
        """The endpoint as outage messages name it."""
        return self.endpoint.netloc(self.bucket)

    # -- region ----------------------------------------------------------
    @property
    def region(self) -> str:
        """The region requests are signed (and, by default, addressed) for."""
        return self._region

    def _signers(self, region: str) -> tuple[Signer, Signer | None]:
        """The signer for ``region``, and the session signer if the dialect has sessions.

        A signer is built for one region: switching region builds new ones.
        """
        make_session = self.dialect.make_session_signer
        return (self.dialect.make_signer(region, self._oss_signature),
                make_session(region) if make_session is not None else None)

    def switch_region(self, region: str) -> None:
        """Sign for ``region`` from now on (and follow it on the provider's endpoints).

        The region is remembered for the life of the client, which is one
        bucket's: later requests go straight to it.  One log line, a
        warning if the user named another region.
        """
        if region == self._region:
            return
        level = logging.WARNING if self.explicit_region else logging.INFO
        log.log(level, "bucket %s is in region %s, not %s: using %s",
                self.bucket, region, self._region or "(none)", region)
        self._region = region
        self.signer, self._session_signer = self._signers(region)
        if self.endpoint.from_region:
            self.endpoint = Endpoint.build(None, region, self.bucket, self.force_path_style,
                                           self.dialect)
            self.health.where = self._where()

    def adopt_bucket_region(self, region: str | None) -> None:
        """The bucket check named the bucket's region: use it if the dialect says it matters."""
        if region and self.dialect.adopts_bucket_region:
            self.switch_region(region)

    # -- request machinery -------------------------------------------------
    def _path(self, key: str) -> str:
        """The request path of ``key`` (with the bucket in path style)."""
        # '.' and '..' segments are sent encoded: an HTTP client would
        # otherwise normalise them away and request another key than signed.
        quoted = "/".join(seg if seg not in (".", "..") else seg.replace(".", "%2E")
                          for seg in uri_encode(key, keep_slash=True).split("/"))
        if self.endpoint.path_style:
            return f"/{self.bucket}/{quoted}" if key else f"/{self.bucket}"
        return f"/{quoted}"

    def object_url(self, key: str) -> str:
        """The URL of ``key`` as this client addresses it (``user.xdg.origin.url``)."""
        return f"{self.endpoint.scheme}://{self.endpoint.netloc(self.bucket)}{self._path(key)}"

    def _prepare(self, method: str, key: str, query: list[tuple[str, str]],
                 headers: dict[str, str], signer: Signer, creds: Credentials | None
                 ) -> httpx.Request:
        ep = self.endpoint
        path = self._path(key)
        req = SignableRequest(method, ep.netloc(self.bucket), path, list(query),
                              {**self.request_headers, **headers},
                              bucket=self.bucket, key=key)
        if creds is not None:
            signer.sign(req, creds, self._now())
        qs = req.query_string()
        url = f"{ep.scheme}://{req.host}{path}{'?' + qs if qs else ''}"
        return httpx.Request(method, url, headers=req.headers)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt))."""
        return self._rng() * min(self.backoff_cap, self.backoff_base * 2.0 ** attempt)

    async def _signing(self, auth: str) -> tuple[Signer, Credentials | None, bool]:
        """The signer and keys for a request (``auth`` is "data" or "iam"), and
        whether the keys are a directory-bucket session's.

        Only directory buckets tell the two apart: their data requests use
        the session's keys (creating or renewing the session first).
        """
        creds = await self.credentials.get()
        if creds is None or auth == "iam" or self._sessions is None:
            return self.signer, creds, False
        assert self._session_signer is not None
        return self._session_signer, await self._sessions.get(), True

    @property
    def budget(self) -> float:
        """The longest one request may take, retries included (see :func:`request_budget`)."""
        return request_budget(self.attempts, self.attempt_timeout, self.backoff_base,
                              self.backoff_cap)

    async def _send(self, method: str, key: str, query: list[tuple[str, str]],
                    headers: dict[str, str] | None = None, *, what: str,
                    auth: str = "data", max_body: int | None = None) -> httpx.Response:
        """Send with retries; return the first non-retryable answer.

        Retryable: transport errors, attempt timeouts, 5xx, 408, 429 and
        throttling codes.  After the last attempt a transport failure is a
        :class:`~metafs.errors.TransportError`, a retryable status a
        :class:`~metafs.errors.ServerError`.  A region redirect is followed
        once, immediately, outside the retry budget; so is a directory-bucket
        session the server says has expired (renewed, then retried once).

        The whole request has a deadline, :attr:`budget` after it starts:
        an attempt gets ``attempt_timeout`` or what is left of it.  A 429
        or 503 with ``Retry-After`` is retried no sooner than it asks; one
        that asks to wait past the deadline fails the request at once
        (retrying sooner would ignore the server, waiting would break the
        bound).

        ``max_body``: an answer whose body is longer is not read (see
        :func:`_read_at_most`): it comes back empty, marked ``OVER_LIMIT``.

        During an outage (see :mod:`~metafs.s3.health`) no attempt is sent:
        :class:`~metafs.errors.EndpointDownError` at once, also for an
        attempt on the wire when the outage opens.
        """
        deadline = self._clock() + self.budget
        last: Exception | None = None
        redirected = renewed = answered = probe = False
        attempt = 0
        while attempt < self.attempts:
            limit = min(self.attempt_timeout, deadline - self._clock())
            if limit <= 0:  # a redirect or a renewal used up the deadline
                break
            probe = self.health.admit(what)
            signer, creds, session = await self._signing(auth)
            request = self._prepare(method, key, query, headers or {}, signer, creds)
            response: httpx.Response | None = None
            asked: float | None = None  # Retry-After, in seconds
            with (trio.move_on_after(limit) as scope,
                  self.health.attempt(scope) as on_wire,
                  metrics.recorder.s3_attempt(method, key, query) as counted):
                started: httpx.Response | None = None  # its status line and headers arrived
                try:
                    started = await self.http.send(request, stream=True)
                    if max_body is None:
                        await started.aread()
                        response = started
                    else:
                        response = await _read_at_most(started, request, max_body)
                except httpx.HTTPError as e:
                    last = errors.TransportError(
                        f"{what}: {answers.describe_transport(e, self.endpoint)}")
                    # The server sent something (a status line, or bytes the HTTP
                    # parser refused): it is up, only this answer is unusable, so
                    # no outage; only silence (refused, reset, timed out) is one.
                    if started is not None or isinstance(e, httpx.RemoteProtocolError):
                        answered = True
                        self.health.answered()
                finally:
                    if started is not None:
                        await started.aclose()
                    counted.done(None if response is None else response.status_code, scope.cancel_called)
            if scope.cancelled_caught:
                if on_wire.abandoned:  # another request found the endpoint down meanwhile
                    raise self.health.refusal(what)
                response = None
                # Rounded: a retry cut short by the request's deadline by a few
                # milliseconds of scheduling says 0.5 s, not 0.497948 s.
                last = errors.TransportError(
                    f"{what}: no answer from {self.endpoint.host} within {round(limit, 2):g} s")
            if response is not None:
                answered = True
                self.health.answered()
                region = answers.redirect_region(response, self.dialect, self.endpoint)
                if region and region != self.region and not redirected:
                    redirected = True
                    self.switch_region(region)
                    continue
                if (session and creds is not None and not renewed
                        and response.status_code in (400, 403)
                        and answers.error_code(response) in answers.SESSION_EXPIRED_CODES):
                    renewed = True
                    assert self._sessions is not None
                    log.info("%s: the S3 session expired early: renewing it", what)
                    self._sessions.invalidate(creds)
                    continue
                # Only error answers carry error codes: a 2xx body is data,
                # even when it looks like an <Error> document.
                if response.status_code not in answers.RETRYABLE_STATUS and (
                        response.status_code < 300
                        or answers.error_code(response) not in answers.RETRYABLE_CODES):
                    return response
                last = answers.error_for(response, what, self.dialect)
                asked = answers.retry_after(response, self._now())
            attempt += 1
            if attempt < self.attempts:
                metrics.recorder.s3_retry(method, key, query)
                delay = self._backoff(attempt - 1)
                if asked is not None:
                    if self._clock() + asked >= deadline:
                        what = f"{what} (Retry-After {asked:g} s ends past the request's deadline)"
                        break
                    delay = max(delay, asked)
                log.debug("%s failed (%s), retry %d in %.2f s", what, last, attempt, delay)
                await self._sleep(delay)
        if last is None:
            last = errors.TransportError(f"{what}: no answer within {self.budget:g} s")
        if (not answered and self.health.no_answer(str(last), probe=probe)
                and self._nursery is not None and not self._probing):
            self._probing = True
            self._nursery.start_soon(self._probe_until_answered)
        if isinstance(last, errors.S3Error) and (
                not isinstance(last, errors.ServerError) or last.what != what):
            raise errors.ServerError(last.status, last.code, last.message, what=what)
        raise last

    async def _probe_until_answered(self) -> None:
        """While an outage lasts, probe when due (the schedule is the health's)."""
        try:
            # A request on the wire before the outage may end it first: delay is then None.
            while (delay := self.health.probe_delay()) is not None:
                await trio.sleep(delay)  # trio's clock: the health clock in a mount
                if not self.health.down:
                    return
                try:
                    cause = await self._probe()
                except Exception as e:  # noqa: BLE001 - e.g. no keys to sign with; raising would end the mount
                    cause = f"probe failed: {e}"
                if cause is not None:
                    log.debug("%s", cause)
                    self.health.no_answer(cause, probe=True)  # the next probe waits twice as long
        finally:
            self._probing = False

    async def _probe(self) -> str | None:
        """One HEAD Bucket, one attempt.  Any answer (even 403 or 5xx) ends the outage: None.

        Otherwise, why not.
        """
        with trio.move_on_after(self.attempt_timeout):
            signer, creds, _session = await self._signing("iam")
            request = self._prepare("HEAD", "", [], {}, signer, creds)
            try:
                response = await self.http.send(request)
                await response.aclose()
            except httpx.HTTPError as e:
                return f"probe: {answers.describe_transport(e, self.endpoint)}"
            log.debug("probe of %s: HTTP %d", self.health.where, response.status_code)
            self.health.answered()
            return None
        return f"probe: no answer from {self.endpoint.host} within {self.attempt_timeout:g} s"

    # -- operations -------------------------------------------------------
    async def check_bucket(self) -> BucketInfo:
        """The start-up check, in the dialect's way: the bucket exists and we may read it.

        HEAD Bucket, except for OSS, which documents none: there
        ``GET /?location`` answers, and names the region too.
        """
        if self.dialect.bucket_check == "location":
            return await self._bucket_location()
        headers = await self.head_bucket()
        region = headers.get(self.dialect.region_header) if self.dialect.region_header else None
        return BucketInfo(headers, region)

    async def head_bucket(self) -> dict[str, str]:
        """HEAD Bucket: the response headers, or the error that explains why not.

        HEAD answers have no body, so on 403 and 400 a bodied request
        (an empty listing) is sent to learn the error code: that is what
        tells bad credentials from a denied bucket policy.  Directory
        buckets take HEAD Bucket signed with the IAM credentials only.
        """
        what = f"HEAD Bucket {self.bucket}"
        r = await self._send("HEAD", "", [], what=what, auth="iam")
        if r.status_code == 200:
            return dict(decode_headers(r.headers.raw))
        if r.status_code in (400, 403):
            r2 = await self._send("GET", "", list(self.dialect.bucket_probe), what=what)
            if r2.status_code == 200:  # listing allowed, HEAD Bucket denied: good enough
                return dict(decode_headers(r.headers.raw))
            raise answers.error_for(r2, what, self.dialect, bucket_level=True)
        raise answers.error_for(r, what, self.dialect, bucket_level=True)

    async def _bucket_location(self) -> BucketInfo:
        """OSS: ``GET /?location``; a 403 AccessDenied falls back to a listing.

        GetBucketLocation is allowed to the bucket owner's users by
        default, not to another account's: a user who may list the bucket
        can mount it without.
        """
        what = f"GET Bucket location {self.bucket}"
        r = await self._send("GET", "", [("location", "")], what=what)
        if r.status_code == 200:
            return BucketInfo({}, parse_location(r.content) or None)
        fields = answers.error_document(r)
        if r.status_code == 403 and fields.get("Code") == "AccessDenied" and not fields.get("Endpoint"):
            r2 = await self._send("GET", "", list(self.dialect.bucket_probe), what=what)
            if r2.status_code == 200:
                return BucketInfo({}, None)
            raise answers.error_for(r2, what, self.dialect, bucket_level=True)
        raise answers.error_for(r, what, self.dialect, bucket_level=True)

    async def _create_session(self) -> Session:
        """CreateSession (directory buckets): read-only session keys and their lifetime."""
        what = f"CreateSession {self.bucket}"
        # ReadOnly: metafs never writes, and a read-only session is what a
        # policy that allows only reads lets us create.
        r = await self._send("GET", "", [("session", "")],
                             {"x-amz-create-session-mode": "ReadOnly"}, what=what, auth="iam")
        if r.status_code != 200:
            raise answers.error_for(r, what, self.dialect, bucket_level=True)
        keys = parse_create_session(r.content)
        # Lifetime on the server's clock, so a skewed local clock cannot
        # make us use keys the server already considers expired.  Date is
        # whole seconds, truncated: the server's "now" may be up to 1 s later.
        issued = parse_http_date(r.headers.get("date"))
        lifetime = keys.expiration - issued - 1 if issued else \
            keys.expiration - self._now().timestamp()
        return Session(Credentials(keys.access_key, keys.secret_key, keys.token), float(lifetime))

    async def head_object(self, key: str, etag: str | None = None, mtime: int = 0, *,
                          version_id: str | None = None) -> HeadOutcome:
        """HEAD Object, conditional on ``etag`` (If-None-Match) when given.

        The ETag goes back exactly as the server sent it (OSS's are
        uppercase).  Without an ETag (servers that send none), on ``mtime``
        instead when known: ``If-Modified-Since: <Last-Modified>``, whose
        304 keeps the entry as If-None-Match's does (HTTP dates have whole
        seconds: a change within the second of the last one goes unseen).
        A COS delete-marker version, like a missing key, is 404: :class:`Absent`.
        With ``version_id``, HEAD of that version (``?versionId=``); a delete
        marker's version is 405 on S3 and OSS, 404 on COS: :class:`Absent`
        either way.  An object that needs a customer key (SSE-C) we cannot
        give raises :class:`~metafs.errors.CustomerKeyError`.  Any other
        answer but 200 and 304 raises.
        """
        # S3 returns x-amz-checksum-* only when asked; vendors are not sent
        # a header outside their own namespace.
        headers = {"x-amz-checksum-mode": "ENABLED"} if self.dialect.checksum_mode else {}
        if etag:
            headers["if-none-match"] = etag
        elif mtime > 0:
            headers["if-modified-since"] = email.utils.formatdate(mtime, usegmt=True)
        what = f"HEAD {key}" + (f" version {version_id}" if version_id else "")
        query = [("versionId", version_id)] if version_id else []
        r = await self._send_keyed("HEAD", key, query, headers, what=what)
        if r.status_code == 200:
            try:
                # The raw bytes: values are decoded one by one (see decode_headers).
                return Fresh(meta_from_head(key, r.headers.raw,
                                            percent_decode_values=self.dialect.percent_decode_values))
            except errors.MalformedResponseError as e:  # name the request in its one log line
                raise errors.MalformedResponseError(f"{what}: {e}") from None
        if r.status_code == 304:
            return NotModified()
        if r.status_code == 404 or (r.status_code == 405 and version_id):
            return Absent()
        raise answers.error_for(r, what, self.dialect)

    async def _send_keyed(self, method: str, key: str, query: list[tuple[str, str]],
                          headers: dict[str, str], *, what: str) -> httpx.Response:
        """An object request, with the customer key (SSE-C) that opens the object.

        Without ``--sse-c-key-file`` one request; an answer that says a
        customer key is needed (:func:`answers.customer_key_refusal`) is
        :class:`~metafs.errors.CustomerKeyError`.  With keys, the choices
        are tried in :meth:`CustomerKeys.candidates` order until one is not
        refused; the one that worked is remembered.  Every choice refused:
        CustomerKeyError if any refusal was a 400 (the SSE-C answer), else
        the first answer's own error (a plain 403 is not about keys).
        """
        keys, prefix = self.customer_keys, self.dialect.sse_c_prefix
        if keys is None or prefix is None:
            r = await self._send(method, key, query, headers, what=what)
            if answers.customer_key_refusal(r) and r.status_code == 400:
                raise errors.CustomerKeyError(r.status_code, 0, what=what)
            return r
        first: httpx.Response | None = None
        saw_400 = False
        for choice in keys.candidates(key):
            r = await self._send(method, key, query, {**headers, **keys.headers(choice, prefix)},
                                 what=what)
            if not answers.customer_key_refusal(r):
                if r.status_code < 300 or r.status_code == 304:
                    keys.opened(key, choice)
                return r
            first = first or r
            saw_400 = saw_400 or r.status_code == 400
        assert first is not None
        if saw_400:
            raise errors.CustomerKeyError(first.status_code, len(keys.keys), what=what)
        return first

    async def parts_count(self, key: str, etag: str | None, *,
                          version_id: str | None = None) -> int | None:
        """How many parts ``key`` was uploaded in: HEAD with ``partNumber=1`` (one request).

        None, without a request, when the dialect has no such answer; None
        too for an object not uploaded in parts (the answer has no count).
        Not pinned with If-Match: with ``partNumber`` servers disagree on
        which ETag that compares (moto: the part's), so ``etag`` only names
        the version the caller believes it asks about.  404 is NotFoundError.
        """
        header = self.dialect.parts_count_header
        if header is None:
            return None
        what = f"HEAD {key} (part 1)"
        query = [("partNumber", "1")] + ([("versionId", version_id)] if version_id else [])
        r = await self._send_keyed("HEAD", key, query, {}, what=what)
        if r.status_code in (200, 206):
            value = r.headers.get(header, "").strip()
            return int(value) if value.isdigit() else None
        raise answers.error_for(r, what, self.dialect)

    async def list_versions(self, prefix: str, *, delimiter: str | None = "/",
                            key_marker: str | None = None, version_id_marker: str | None = None,
                            max_keys: int | None = None) -> VersionsPage:
        """One page of the versions listing (``GET /?versions``), in the dialect's query.

        The next page starts at the page's ``next_key_marker`` and
        ``next_version_id_marker``.  Raises a ConfigError-like S3 error
        where the dialect has no versions listing (directory buckets).
        """
        if self.dialect.versions_query is None:
            raise errors.ConfigError(f"{self.dialect.title}s keep no versions")
        query = self.dialect.versions_query(prefix, delimiter, key_marker, version_id_marker,
                                            max_keys)
        what = f"LIST versions {prefix or '/'}"
        r = await self._send("GET", "", query, what=what)
        if r.status_code != 200:
            raise answers.error_for(r, what, self.dialect, bucket_level=True)
        try:
            return parse_versions(r.content, plus_is_space=self.dialect.list_plus_is_space)
        except errors.MalformedResponseError as e:
            raise errors.MalformedResponseError(f"{what}: {e}") from None

    async def bucket_versioning(self) -> str | None:
        """GetBucketVersioning: ``Enabled``, ``Suspended``, or None if versioning was never on."""
        what = f"GET Bucket versioning {self.bucket}"
        r = await self._send("GET", "", [("versioning", "")], what=what)
        if r.status_code != 200:
            raise answers.error_for(r, what, self.dialect, bucket_level=True)
        return parse_versioning(r.content)

    async def list_page(self, prefix: str, *, delimiter: str | None = "/",
                        token: str | None = None, max_keys: int | None = None,
                        start_after: str | None = None) -> ListPage:
        """One listing page: ListObjectsV2 (S3, OSS) or V1 with ``marker`` (COS, OBS).

        ``token`` is the continuation token or the marker, whichever the
        dialect pages with (``ListPage.next_token`` of the previous page).
        ``start_after`` (first page only): keys after this one (V2's
        ``start-after``, V1's ``marker``).  ``encoding-type=url`` always (see model).
        """
        query = self.dialect.list_query(prefix, delimiter, token, max_keys, start_after)
        what = f"LIST {prefix or '/'}"
        r = await self._send("GET", "", query, what=what)
        if r.status_code != 200:
            raise answers.error_for(r, what, self.dialect, bucket_level=True)
        try:
            return parse_list(r.content, version=self.dialect.list_version,
                              plus_is_space=self.dialect.list_plus_is_space)
        except errors.MalformedResponseError as e:  # name the request in its one log line
            raise errors.MalformedResponseError(f"{what}: {e}") from None

    async def get_range(self, key: str, first: int, last: int, etag: str | None, *,
                        version_id: str | None = None) -> bytes:
        """Bytes ``first..last`` (inclusive) of ``key``, pinned to ``etag`` by If-Match
        (of the version ``version_id`` when given)."""
        headers = {"range": f"bytes={first}-{last}"}
        if etag:
            headers["if-match"] = etag
        what = f"GET {key}" + (f" version {version_id}" if version_id else "")
        query = [("versionId", version_id)] if version_id else []
        r = await self._send_keyed("GET", key, query, headers, what=what)
        if r.status_code == 206:
            return _whole_body(r, what)
        if r.status_code == 200:  # a server that ignores Range sends it all
            return _whole_body(r, what)[first:last + 1]
        if r.status_code == 416:
            return b""
        if r.status_code == 412:
            raise errors.ChangedError(412, "PreconditionFailed", "the object changed while open",
                                      what=what)
        raise answers.error_for(r, what, self.dialect)

    # -- metadata channels -------------------------------------------------------
    async def get_tagging(self, key: str, version_id: str | None = None
                          ) -> dict[str, str] | Absent | Denied:
        """GetObjectTagging (``GET /KEY?tagging``, all four providers): the tags, in order.

        A 404 with one of the dialect's "no tags" codes (OBS ``NoSuchTagSet``)
        is no tags; any other 404 is :class:`Absent`; 403 is :class:`Denied`
        (the caller lacks the tag permission, not the object).  ``version_id``:
        that version's tags (all four providers take ``versionId``).
        """
        what = f"GET tagging {key}"
        query = [("tagging", "")] + ([("versionId", version_id)] if version_id else [])
        r = await self._send("GET", key, query, what=what)
        if r.status_code == 200:
            try:
                return parse_tagging(r.content)
            except errors.MalformedResponseError as e:
                raise errors.MalformedResponseError(f"{what}: {e}") from None
        if r.status_code == 404:
            return {} if answers.error_code(r) in self.dialect.no_tags_codes else Absent()
        if r.status_code == 403:
            return Denied()
        raise answers.error_for(r, what, self.dialect)

    async def list_annotations(self, key: str, token: str | None = None, version_id: str | None = None
                               ) -> AnnotationPage | Absent | Denied | Unsupported:
        """One ListObjectAnnotations page (``GET /KEY?annotation``, never with ``annotationName``).

        :class:`Unsupported` when the endpoint does not speak the API: it
        refuses the request (400, 405, 501) or answers something that is no
        annotation listing (a server that ignores the sub-resource sends the
        object itself: Ceph RGW).  An answer longer than ``ANNOTATION_PAGE_MAX``
        is no listing page and is not read: the object may be gigabytes.
        """
        query = [("annotation", "")]
        if token:
            query.append(("continuation-token", token))
        if version_id:
            query.append(("versionId", version_id))
        what = f"LIST annotations {key}"
        r = await self._send("GET", key, query, what=what, max_body=ANNOTATION_PAGE_MAX)
        if r.status_code == 200:
            if r.extensions.get(OVER_LIMIT):
                return Unsupported(f"{what}: the answer is no annotation listing "
                                   f"(longer than {ANNOTATION_PAGE_MAX >> 20} MiB: not read)")
            try:
                return parse_annotations(r.content)
            except errors.MalformedResponseError as e:
                return Unsupported(f"{what}: the answer is no annotation listing ({e})")
        if r.status_code == 404 and answers.error_code(r) in ("NoSuchKey", ""):
            return Absent()
        if r.status_code == 403:
            return Denied()
        if r.status_code in (400, 404, 405, 501):
            return Unsupported(f"{what}: HTTP {r.status_code} {answers.error_code(r)}".rstrip())
        raise answers.error_for(r, what, self.dialect)

    async def get_annotation(self, key: str, name: str, version_id: str | None = None
                             ) -> bytes | Absent | Denied | None:
        """GetObjectAnnotation: the payload of ``name``; None if the object has no such annotation."""
        what = f"GET annotation {name!r} of {key}"
        query = [("annotation", ""), ("annotationName", name)]
        if version_id:
            query.append(("versionId", version_id))
        r = await self._send("GET", key, query, what=what)
        if r.status_code == 200:
            return _whole_body(r, what)
        if r.status_code == 404:
            return None if answers.error_code(r) == "NoSuchAnnotation" else Absent()
        if r.status_code == 403:
            return Denied()
        raise answers.error_for(r, what, self.dialect)

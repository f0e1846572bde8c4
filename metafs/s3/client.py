"""The object-storage client: bucket check, HEAD Object and listing pages over httpx.

One long-lived ``httpx.AsyncClient`` (created by ``mount``, injected here,
replaced by ``httpx.MockTransport`` in tests) carries every request.  This
module owns what is protocol: addressing (path or virtual host), signing,
retries with backoff and jitter, the per-attempt deadline, region
discovery, and turning error answers into :mod:`metafs.errors`.  What
differs between S3, COS, OSS, OBS and S3 directory buckets is data in a
:class:`~metafs.s3.dialects.Dialect`; this module only reads it.

Every request is bounded: each attempt runs under ``trio.move_on_after``
(pyfuse3 has no FUSE INTERRUPT support, so a hung request would pin a
worker and block unmount), and there are at most ``attempts`` attempts.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import ipaddress
import logging
import random
from typing import Awaitable, Callable
from urllib.parse import urlsplit

import httpx
import trio

from .. import errors
from ..credentials import CredentialSource
from ..signing import Credentials, SignableRequest, Signer, uri_encode
from ..signing.sigv4 import SigV4Signer
from .dialects import OSS, S3, Dialect, dialect_for, region_from_host
from .express import Session, SessionCache
from .model import (Absent, Fresh, HeadOutcome, NotModified, ListPage, ObjectMeta, error_fields, meta_from_head, parse_create_session,
                    parse_http_date, parse_list, parse_location)

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
RETRYABLE_CODES = frozenset({"RequestTimeout", "SlowDown", "Throttling", "RequestLimitExceeded",
                             "InternalError", "ServiceUnavailable"})
# COS, OSS and OBS use S3's codes for these; OSS's SecurityTokenExpired and
# InvalidSecurityToken are from its STS documentation (not checked live).
BAD_CREDENTIAL_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
                                  "ExpiredToken", "InvalidSecurity", "TokenRefreshRequired",
                                  "SecurityTokenExpired", "InvalidSecurityToken"})
# A directory-bucket session the server considers over: renew it and retry.
SESSION_EXPIRED_CODES = frozenset({"ExpiredToken", "InvalidToken", "TokenRefreshRequired"})


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def is_ip_or_localhost(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


@dataclasses.dataclass
class Endpoint:
    """Where requests go and how the bucket is addressed."""

    scheme: str
    host: str  # without port
    port: int | None
    path_style: bool
    from_region: bool  # the provider's default for the region, so it follows region discovery

    @classmethod
    def build(cls, endpoint_url: str | None, region: str, bucket: str,
              force_path_style: bool = False, dialect: Dialect = S3) -> "Endpoint":
        if force_path_style and not dialect.path_style_allowed:
            raise errors.ConfigError(f"{dialect.title}: buckets are addressed virtual-hosted "
                                     "only, --force-path-style cannot be used")
        if endpoint_url is None:
            if not region:
                raise errors.ConfigError(f"{dialect.title} needs --region (or --endpoint-url)")
            # Dotted bucket names break the *.s3 wildcard certificate; other
            # vendors are virtual-hosted by default (COS refuses path style).
            path_style = force_path_style or (dialect is S3 and "." in bucket)
            return cls("https", dialect.default_host(region, bucket), None, path_style, True)
        u = urlsplit(endpoint_url if "://" in endpoint_url else "https://" + endpoint_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise errors.ConfigError(f"bad endpoint URL {endpoint_url!r} (expected http(s)://HOST[:PORT])")
        path_style = force_path_style or is_ip_or_localhost(u.hostname)
        if path_style and not dialect.path_style_allowed:
            raise errors.ConfigError(f"{dialect.title}: buckets are addressed virtual-hosted "
                                     f"only, and endpoint {u.hostname} would need path style")
        return cls(u.scheme, u.hostname, u.port, path_style, False)

    def netloc(self, bucket: str) -> str:
        host = self.host if self.path_style else f"{bucket}.{self.host}"
        if ":" in host:  # an IPv6 literal keeps its brackets in URLs and Host
            host = f"[{host}]"
        default = 443 if self.scheme == "https" else 80
        return host if self.port in (None, default) else f"{host}:{self.port}"


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
    clock that times directory-bucket sessions.
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
    ) -> None:
        self.http = http
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.force_path_style = force_path_style
        self.dialect = dialect or dialect_for("s3", bucket)
        self.endpoint = Endpoint.build(endpoint_url, region, bucket, force_path_style, self.dialect)
        self._region = region
        self.explicit_region = explicit_region
        self.signer: Signer = self.dialect.make_signer(region, oss_signature)
        # Directory buckets: data requests are signed with session keys
        # (token in x-amz-s3session-token), HEAD Bucket and CreateSession
        # with the IAM credentials (self.signer).
        self._session_signer: SigV4Signer | None = None
        self._sessions: SessionCache | None = None
        if self.dialect.session_auth:
            self._session_signer = SigV4Signer(region, service="s3express",
                                               token_header="x-amz-s3session-token")
            self._sessions = SessionCache(self._create_session, clock)
        self.credentials = credentials or CredentialSource(anonymous=True)
        self.attempts = max(1, attempts)
        self.attempt_timeout = attempt_timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self._rng = rng
        self._now = now
        self._region_switched = False

    # -- region ----------------------------------------------------------
    @property
    def region(self) -> str:
        """The region requests are signed (and, by default, addressed) for."""
        return self._region

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
        for signer in (self.signer, self._session_signer):
            if signer is not None and hasattr(signer, "region"):
                signer.region = region  # type: ignore[union-attr]
        if self.endpoint.from_region:
            self.endpoint = Endpoint.build(None, region, self.bucket, self.force_path_style,
                                           self.dialect)

    def adopt_bucket_region(self, region: str | None) -> None:
        """The bucket check named the bucket's region: use it if it matters.

        Only SigV4 signs for a region the answer can contradict; COS and
        OBS signatures carry none, and an OSS answer that arrived was
        signed for the right region already.
        """
        if region and self.dialect.provider == "s3":
            self.switch_region(region)

    # -- request machinery -------------------------------------------------
    def _prepare(self, method: str, key: str, query: list[tuple[str, str]],
                 headers: dict[str, str], signer: Signer, creds: Credentials | None
                 ) -> httpx.Request:
        ep = self.endpoint
        # '.' and '..' segments are sent encoded: an HTTP client would
        # otherwise normalise them away and request another key than signed.
        quoted = "/".join(seg if seg not in (".", "..") else seg.replace(".", "%2E")
                          for seg in uri_encode(key, keep_slash=True).split("/"))
        if ep.path_style:
            path = f"/{self.bucket}/{quoted}" if key else f"/{self.bucket}"
        else:
            path = f"/{quoted}"
        req = SignableRequest(method, ep.netloc(self.bucket), path, list(query), dict(headers),
                              bucket=self.bucket, key=key)
        if creds is not None:
            signer.sign(req, creds, self._now())
        qs = req.query_string()
        url = f"{ep.scheme}://{req.host}{path}{'?' + qs if qs else ''}"
        return httpx.Request(method, url, headers=req.headers)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt))."""
        return self._rng() * min(self.backoff_cap, self.backoff_base * (2 ** attempt))

    async def _signing(self, auth: str) -> tuple[Signer, Credentials | None]:
        """The signer and keys for a request: ``auth`` is "data" or "iam".

        Only directory buckets tell them apart: their data requests use the
        session's keys (creating or renewing the session first).
        """
        creds = await self.credentials.get()
        if creds is None or auth == "iam" or self._sessions is None:
            return self.signer, creds
        assert self._session_signer is not None
        return self._session_signer, await self._sessions.get()

    async def _send(self, method: str, key: str, query: list[tuple[str, str]],
                    headers: dict[str, str] | None = None, *, what: str,
                    auth: str = "data") -> httpx.Response:
        """Send with retries; return the first non-retryable answer.

        Retryable: transport errors, attempt timeouts, 5xx, 408, 429 and
        throttling codes.  After the last attempt a transport failure is a
        :class:`~metafs.errors.TransportError`, a retryable status a
        :class:`~metafs.errors.ServerError`.  A region redirect is followed
        once, immediately, outside the retry budget; so is a directory-bucket
        session the server says has expired (renewed, then retried once).
        """
        last: Exception | None = None
        redirected = renewed = False
        attempt = 0
        while attempt < self.attempts:
            signer, creds = await self._signing(auth)
            request = self._prepare(method, key, query, headers or {}, signer, creds)
            response: httpx.Response | None = None
            with trio.move_on_after(self.attempt_timeout) as scope:
                try:
                    response = await self.http.send(request)
                    await response.aread()
                except httpx.HTTPError as e:
                    last = errors.TransportError(f"{what}: {_describe_transport(e, self.endpoint)}")
                finally:
                    if response is not None:
                        await response.aclose()
            if scope.cancelled_caught:
                response = None
                last = errors.TransportError(
                    f"{what}: no answer from {self.endpoint.host} within {self.attempt_timeout:g} s")
            if response is not None:
                region = self._redirect_region(response)
                if region and region != self.region and not redirected:
                    redirected = True
                    self.switch_region(region)
                    continue
                if (signer is self._session_signer and creds is not None and not renewed
                        and response.status_code in (400, 403)
                        and _error_code(response) in SESSION_EXPIRED_CODES):
                    renewed = True
                    assert self._sessions is not None
                    log.info("%s: the S3 session expired early: renewing it", what)
                    self._sessions.invalidate(creds)
                    continue
                if response.status_code not in RETRYABLE_STATUS:
                    # Only error answers carry error codes: a 2xx body is data,
                    # even when it looks like an <Error> document.
                    if response.status_code < 300 or _error_code(response) not in RETRYABLE_CODES:
                        return response
                last = self._error_for(response, what)
            attempt += 1
            if attempt < self.attempts:
                delay = self._backoff(attempt - 1)
                log.debug("%s failed (%s), retry %d in %.2f s", what, last, attempt, delay)
                await self._sleep(delay)
        assert last is not None
        if isinstance(last, errors.S3Error) and not isinstance(last, errors.ServerError):
            raise errors.ServerError(last.status, last.code, last.message, what=what)
        raise last

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
            return {k: v for k, v in r.headers.multi_items()}
        if r.status_code in (400, 403):
            r2 = await self._send("GET", "", self._bucket_probe(), what=what)
            if r2.status_code == 200:  # listing allowed, HEAD Bucket denied: good enough
                return {k: v for k, v in r.headers.multi_items()}
            raise self._error_for(r2, what, bucket_level=True)
        raise self._error_for(r, what, bucket_level=True)

    def _bucket_probe(self) -> list[tuple[str, str]]:
        """The cheapest listing: it exists to carry an error code in its body."""
        if self.dialect.provider == "s3":
            return [("list-type", "2"), ("max-keys", "0")]
        # Not every vendor documents max-keys=0; one key costs the same.
        return self.dialect.list_query("", None, None, 1)

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
        fields = _error_fields(r)
        if r.status_code == 403 and fields.get("Code") == "AccessDenied" and not fields.get("Endpoint"):
            r2 = await self._send("GET", "", self._bucket_probe(), what=what)
            if r2.status_code == 200:
                return BucketInfo({}, None)
            raise self._error_for(r2, what, bucket_level=True)
        raise self._error_for(r, what, bucket_level=True)

    async def _create_session(self) -> Session:
        """CreateSession (directory buckets): read-only session keys and their lifetime."""
        what = f"CreateSession {self.bucket}"
        # ReadOnly: metafs never writes, and a read-only session is what a
        # policy that allows only reads lets us create.
        r = await self._send("GET", "", [("session", "")],
                             {"x-amz-create-session-mode": "ReadOnly"}, what=what, auth="iam")
        if r.status_code != 200:
            raise self._error_for(r, what, bucket_level=True)
        keys = parse_create_session(r.content)
        # Lifetime on the server's clock, so a skewed local clock cannot
        # make us use keys the server already considers expired.  Date is
        # whole seconds, truncated: the server's "now" may be up to 1 s later.
        issued = parse_http_date(r.headers.get("date"))
        lifetime = keys.expiration - issued - 1 if issued else \
            keys.expiration - self._now().timestamp()
        return Session(Credentials(keys.access_key, keys.secret_key, keys.token), float(lifetime))

    async def head_object(self, key: str, etag: str | None = None) -> HeadOutcome:
        """HEAD Object, conditional on ``etag`` (If-None-Match) when given.

        The ETag goes back exactly as the server sent it (OSS's are
        uppercase).  A COS delete-marker version, like a missing key, is 404.
        """
        # S3 returns x-amz-checksum-* only when asked; vendors are not sent
        # a header outside their own namespace.
        headers = {"x-amz-checksum-mode": "ENABLED"} if self.dialect.checksum_mode else {}
        if etag:
            headers["if-none-match"] = etag
        r = await self._send("HEAD", key, [], headers, what=f"HEAD {key}")
        if r.status_code == 200:
            return Fresh(meta_from_head(key, r.headers.multi_items(),
                                        percent_decode_values=self.dialect.percent_decode_values))
        if r.status_code == 304:
            return NotModified()
        if r.status_code == 404:
            return Absent()
        raise self._error_for(r, f"HEAD {key}")

    async def list_page(self, prefix: str, *, delimiter: str | None = "/",
                        token: str | None = None, max_keys: int | None = None) -> ListPage:
        """One listing page: ListObjectsV2 (S3, OSS) or V1 with ``marker`` (COS, OBS).

        ``token`` is the continuation token or the marker, whichever the
        dialect pages with (``ListPage.next_token`` of the previous page).
        ``encoding-type=url`` always (see model).
        """
        query = self.dialect.list_query(prefix, delimiter, token, max_keys)
        what = f"LIST {prefix or '/'}"
        r = await self._send("GET", "", query, what=what)
        if r.status_code != 200:
            raise self._error_for(r, what, bucket_level=True)
        return parse_list(r.content, plus_is_space=self.dialect.list_plus_is_space)

    async def get_range(self, key: str, first: int, last: int, etag: str | None) -> bytes:
        """Bytes ``first..last`` (inclusive) of ``key``, pinned to ``etag`` by If-Match."""
        headers = {"range": f"bytes={first}-{last}"}
        if etag:
            headers["if-match"] = etag
        what = f"GET {key}"
        r = await self._send("GET", key, [], headers, what=what)
        if r.status_code == 206:
            return r.content
        if r.status_code == 200:  # a server that ignores Range sends it all
            return r.content[first:last + 1]
        if r.status_code == 416:
            return b""
        if r.status_code == 412:
            raise errors.ChangedError(412, "PreconditionFailed", "the object changed while open",
                                      what=what)
        raise self._error_for(r, what)

    # -- error answers -----------------------------------------------------
    def _redirect_region(self, r: httpx.Response) -> str | None:
        """The region an answer points to, if it names one.

        S3 (and directory buckets): see the module-level ``_redirect_region``.

        OSS names the right endpoint in the body of a 403; it is followed
        only when the endpoint is OSS's default for a region (a custom
        domain cannot be switched to another region).
        """
        if self.dialect.name == "oss":
            if r.status_code == 403 and self.endpoint.from_region:
                return _oss_endpoint_region(_error_fields(r))
            return None
        if self.dialect.provider == "s3":
            return _redirect_region(r)
        return None

    def _error_for(self, r: httpx.Response, what: str, *, bucket_level: bool = False
                   ) -> errors.S3Error:
        """The exception for an error answer: the dialect's cases, then the common table.

        OSS's wrong-endpoint 403 names the endpoint to use; a COS/OBS
        redirect is not followed (metafs talks only to the endpoint it was
        given or derived), but its Location is named in the error.
        """
        if self.dialect.name == "oss" and r.status_code == 403:
            fields = _error_fields(r)
            if fields.get("Endpoint"):
                return errors.WrongRegionError(
                    403, _oss_endpoint_region(fields) or "", what=what, endpoint=fields["Endpoint"])
        if self.dialect.provider != "s3" and r.status_code in (301, 307):
            return errors.S3Error(r.status_code, "PermanentRedirect",
                                  f"the bucket is served elsewhere ({r.headers.get('location', '?')}):"
                                  " check --region and --endpoint-url", what=what)
        return _error_for(r, what, bucket_level=bucket_level)


def _describe_transport(e: httpx.HTTPError, ep: Endpoint) -> str:
    where = f"{ep.host}{':' + str(ep.port) if ep.port else ''}"
    if isinstance(e, httpx.ConnectError):
        return f"cannot connect to {where} ({_root_cause(e)})"
    if isinstance(e, httpx.TimeoutException):
        return f"timed out talking to {where}"
    return f"{type(e).__name__} talking to {where} ({_root_cause(e)})"


def _root_cause(e: BaseException) -> str:
    """The innermost OS-level reason, e.g. 'Connection refused'."""
    seen = 0
    while seen < 10:
        seen += 1
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
        if isinstance(e, BaseExceptionGroup) and e.exceptions:
            e = e.exceptions[0]
        elif e.__cause__ is not None or e.__context__ is not None:
            e = e.__cause__ or e.__context__  # type: ignore[assignment]
        else:
            break
    return str(e) or type(e).__name__


def _oss_endpoint_region(fields: dict[str, str]) -> str | None:
    """The region of the endpoint an OSS 403 tells us to use (``<Endpoint>``)."""
    return region_from_host(OSS, fields.get("Endpoint"))


def _redirect_region(r: httpx.Response) -> str | None:
    """The region a 301/307/400 answer points to, if it names one (S3)."""
    if r.status_code not in (301, 307, 400):
        return None
    region = r.headers.get("x-amz-bucket-region")
    if region:
        return region
    if r.status_code == 400:
        fields = _error_fields(r)
        if fields.get("Code") in ("AuthorizationHeaderMalformed", "IllegalLocationConstraintException"):
            return fields.get("Region") or None
    return None


def _error_fields(r: httpx.Response) -> dict[str, str]:
    """The error document of an answer: its body, or for a bodiless one the
    base64 XML OSS puts in ``x-oss-err``."""
    fields = error_fields(r.content)
    if not fields and "x-oss-err" in r.headers:
        try:
            fields = error_fields(base64.b64decode(r.headers["x-oss-err"], validate=True))
        except (ValueError, TypeError):
            pass
    return fields


def _error_code(r: httpx.Response) -> str:
    return _error_fields(r).get("Code", "")


def _error_for(r: httpx.Response, what: str, *, bucket_level: bool = False) -> errors.S3Error:
    """The exception for an error answer (one table, by status then code)."""
    fields = _error_fields(r)
    code, message = fields.get("Code", ""), fields.get("Message", "")
    status = r.status_code
    if status == 404:
        if bucket_level or code == "NoSuchBucket":
            return errors.NoSuchBucketError(status, code or "NoSuchBucket",
                                            message or "the bucket does not exist", what=what)
        return errors.NotFoundError(status, code, message, what=what)
    if status == 403:
        if code in BAD_CREDENTIAL_CODES:
            return errors.BadCredentialsError(status, code, message, what=what)
        return errors.AccessDeniedError(status, code or "AccessDenied", message, what=what)
    if status in (301, 307, 400) and (region := _redirect_region(r)):
        return errors.WrongRegionError(status, region, what=what)
    if status in RETRYABLE_STATUS or code in RETRYABLE_CODES:
        return errors.ServerError(status, code, message, what=what)
    return errors.S3Error(status, code, message, what=what)

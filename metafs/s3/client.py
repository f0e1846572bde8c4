"""The S3 client: HEAD Bucket, HEAD Object and listing pages over httpx.

One long-lived ``httpx.AsyncClient`` (created by ``mount``, injected here,
replaced by ``httpx.MockTransport`` in tests) carries every request.  This
module owns what is protocol: addressing (path or virtual host), signing,
retries with backoff and jitter, the per-attempt deadline, region
discovery, and turning error answers into :mod:`metafs.errors`.

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
from ..signing import Credentials, SignableRequest, uri_encode
from ..signing.sigv4 import SigV4Signer
from .model import ListPage, ObjectMeta, meta_from_head, parse_error, parse_list

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
RETRYABLE_CODES = frozenset({"RequestTimeout", "SlowDown", "Throttling", "RequestLimitExceeded",
                             "InternalError", "ServiceUnavailable"})
BAD_CREDENTIAL_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
                                  "ExpiredToken", "InvalidSecurity", "TokenRefreshRequired"})


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
    aws_default: bool  # derived from the region, so it follows region discovery

    @classmethod
    def build(cls, endpoint_url: str | None, region: str, bucket: str,
              force_path_style: bool = False) -> "Endpoint":
        if endpoint_url is None:
            # Dotted bucket names break the *.s3 wildcard certificate.
            return cls("https", aws_host(region), None, force_path_style or "." in bucket, True)
        u = urlsplit(endpoint_url if "://" in endpoint_url else "https://" + endpoint_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise errors.ConfigError(f"bad endpoint URL {endpoint_url!r} (expected http(s)://HOST[:PORT])")
        path_style = force_path_style or is_ip_or_localhost(u.hostname)
        return cls(u.scheme, u.hostname, u.port, path_style, False)

    def netloc(self, bucket: str) -> str:
        host = self.host if self.path_style else f"{bucket}.{self.host}"
        default = 443 if self.scheme == "https" else 80
        return host if self.port in (None, default) else f"{host}:{self.port}"


def aws_host(region: str) -> str:
    return "s3.amazonaws.com" if region == "us-east-1" else f"s3.{region}.amazonaws.com"


@dataclasses.dataclass(slots=True)
class HeadResult:
    """Outcome of a (conditional) HEAD Object."""

    status: str  # "ok", "not_modified", "absent"
    meta: ObjectMeta | None = None


class S3Client:
    """Signed, bounded, retried requests against one bucket."""

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
    ) -> None:
        self.http = http
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.force_path_style = force_path_style
        self.endpoint = Endpoint.build(endpoint_url, region, bucket, force_path_style)
        self.signer = SigV4Signer(region)
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
        return self.signer.region

    def switch_region(self, region: str) -> None:
        """Sign for ``region`` from now on (and follow it on AWS endpoints)."""
        if region == self.signer.region:
            return
        log.warning("bucket %s is in region %s, not %s: using %s",
                    self.bucket, region, self.signer.region, region)
        self.signer.region = region
        if self.endpoint.aws_default:
            self.endpoint = Endpoint.build(None, region, self.bucket, self.force_path_style)

    # -- request machinery -------------------------------------------------
    def _prepare(self, method: str, key: str, query: list[tuple[str, str]],
                 headers: dict[str, str], creds: Credentials | None) -> httpx.Request:
        ep = self.endpoint
        quoted = uri_encode(key, keep_slash=True)
        if ep.path_style:
            path = f"/{self.bucket}/{quoted}" if key else f"/{self.bucket}"
        else:
            path = f"/{quoted}"
        req = SignableRequest(method, ep.netloc(self.bucket), path, list(query), dict(headers),
                              bucket=self.bucket, key=key)
        if creds is not None:
            self.signer.sign(req, creds, self._now())
        qs = req.query_string()
        url = f"{ep.scheme}://{req.host}{path}{'?' + qs if qs else ''}"
        return httpx.Request(method, url, headers=req.headers)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt))."""
        return self._rng() * min(self.backoff_cap, self.backoff_base * (2 ** attempt))

    async def _send(self, method: str, key: str, query: list[tuple[str, str]],
                    headers: dict[str, str] | None = None, *, what: str) -> httpx.Response:
        """Send with retries; return the first non-retryable answer.

        Retryable: transport errors, attempt timeouts, 5xx, 408, 429 and
        throttling codes.  After the last attempt a transport failure is a
        :class:`~metafs.errors.TransportError`, a retryable status a
        :class:`~metafs.errors.ServerError`.  A region redirect is followed
        once, immediately, outside the retry budget.
        """
        last: Exception | None = None
        redirected = False
        attempt = 0
        while attempt < self.attempts:
            creds = await self.credentials.get()
            request = self._prepare(method, key, query, headers or {}, creds)
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
                region = _redirect_region(response)
                if region and region != self.region and not redirected:
                    redirected = True
                    self.switch_region(region)
                    continue
                if response.status_code not in RETRYABLE_STATUS:
                    code = _error_code(response)
                    if code not in RETRYABLE_CODES:
                        return response
                last = _error_for(response, what)
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
    async def head_bucket(self) -> dict[str, str]:
        """HEAD Bucket: the response headers, or the error that explains why not.

        HEAD answers have no body, so on 403 and 400 a bodied request
        (an empty listing) is sent to learn the error code: that is what
        tells bad credentials from a denied bucket policy.
        """
        what = f"HEAD Bucket {self.bucket}"
        r = await self._send("HEAD", "", [], what=what)
        if r.status_code == 200:
            return {k: v for k, v in r.headers.multi_items()}
        if r.status_code in (400, 403):
            r2 = await self._send("GET", "", [("list-type", "2"), ("max-keys", "0")], what=what)
            if r2.status_code == 200:  # listing allowed, HEAD Bucket denied: good enough
                return {k: v for k, v in r.headers.multi_items()}
            raise _error_for(r2, what, bucket_level=True)
        raise _error_for(r, what, bucket_level=True)

    async def head_object(self, key: str, etag: str | None = None) -> HeadResult:
        """HEAD Object, conditional on ``etag`` (If-None-Match) when given."""
        # S3 returns x-amz-checksum-* only when asked; others ignore the header.
        headers = {"x-amz-checksum-mode": "ENABLED"}
        if etag:
            headers["if-none-match"] = etag
        r = await self._send("HEAD", key, [], headers, what=f"HEAD {key}")
        if r.status_code == 200:
            return HeadResult("ok", meta_from_head(key, r.headers.multi_items()))
        if r.status_code == 304:
            return HeadResult("not_modified")
        if r.status_code == 404:
            return HeadResult("absent")
        raise _error_for(r, f"HEAD {key}")

    async def list_page(self, prefix: str, *, delimiter: str | None = "/",
                        token: str | None = None, max_keys: int | None = None) -> ListPage:
        """One ListObjectsV2 page (``encoding-type=url`` always, see model)."""
        query = [("list-type", "2"), ("prefix", prefix), ("encoding-type", "url")]
        if delimiter:
            query.append(("delimiter", delimiter))
        if token:
            query.append(("continuation-token", token))
        if max_keys is not None:
            query.append(("max-keys", str(max_keys)))
        what = f"LIST {prefix or '/'}"
        r = await self._send("GET", "", query, what=what)
        if r.status_code != 200:
            raise _error_for(r, what, bucket_level=True)
        return parse_list(r.content)


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
        raise _error_for(r, what)


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


def _redirect_region(r: httpx.Response) -> str | None:
    """The region a 301/307/400 answer points to, if it names one."""
    if r.status_code not in (301, 307, 400):
        return None
    region = r.headers.get("x-amz-bucket-region")
    if region:
        return region
    if r.status_code == 400:
        code, _, body_region = parse_error(r.content)
        if code in ("AuthorizationHeaderMalformed", "IllegalLocationConstraintException"):
            return body_region
    return None


def _error_code(r: httpx.Response) -> str:
    code, _, _ = parse_error(r.content)
    if not code and "x-oss-err" in r.headers:  # OSS sends bodiless errors base64-encoded here
        try:
            code, _, _ = parse_error(base64.b64decode(r.headers["x-oss-err"]))
        except (ValueError, TypeError):
            pass
    return code


def _error_for(r: httpx.Response, what: str, *, bucket_level: bool = False) -> errors.S3Error:
    """The exception for an error answer (one table, by status then code)."""
    code, message, _ = parse_error(r.content)
    if not code:
        code = _error_code(r)
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

"""What an answer means: retry it, follow it elsewhere, or raise which error.  Pure.

The request machine in :mod:`metafs.s3.client` sends and counts attempts;
every judgement about a response it gets back is made here, from the
response, the :class:`~metafs.s3.dialects.Dialect` and the
:class:`~metafs.s3.endpoint.Endpoint`:

* the code tables: which statuses and error codes are worth a retry,
  which mean bad credentials, which an expired directory-bucket session;
* :func:`redirect_region`: the region an answer sends the client to, when
  the dialect follows it there;
* :func:`error_for`: the :mod:`metafs.errors` exception for an error
  answer, the dialect's cases first, then one table by status and code;
* :func:`describe_transport`: one line for a request that got no usable answer;
* :func:`retry_after`: how long a 429 or 503 asks the client to wait.

Error codes are read from the ``<Error>`` body, or for a bodiless answer
(HEAD) from the base64 XML OSS puts in ``x-oss-err``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import ssl

import httpx

from .. import errors
from .dialects import Dialect, region_from_host
from .endpoint import Endpoint
from .model import error_fields, parse_http_date

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
RETRYABLE_CODES = frozenset({"RequestTimeout", "SlowDown", "Throttling", "RequestLimitExceeded",
                             "InternalError", "ServiceUnavailable"})
# COS, OSS and OBS use S3's codes for these; OSS's SecurityTokenExpired and
# InvalidSecurityToken are from its STS documentation (not checked live).
BAD_CREDENTIAL_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
                                  "ExpiredToken", "InvalidSecurity", "TokenRefreshRequired",
                                  "SecurityTokenExpired", "InvalidSecurityToken"})
# Statuses whose Retry-After is honoured (RFC 9110 §10.2.3 names 503, RFC 6585 429).
RETRY_AFTER_STATUS = frozenset({429, 503})
# A directory-bucket session the server considers over: renew it and retry.
SESSION_EXPIRED_CODES = frozenset({"ExpiredToken", "InvalidToken", "TokenRefreshRequired"})


def error_document(r: httpx.Response) -> dict[str, str]:
    """The error document of an answer: its body, or for a bodiless one the
    base64 XML OSS puts in ``x-oss-err``; ``{}`` if it has none."""
    fields = error_fields(r.content)
    if not fields and "x-oss-err" in r.headers:
        try:
            fields = error_fields(base64.b64decode(r.headers["x-oss-err"], validate=True))
        except (ValueError, TypeError):
            pass
    return fields


def retry_after(r: httpx.Response, now: _dt.datetime) -> float | None:
    """Seconds a 429 or 503 answer asks to wait before the next attempt, or None.

    ``Retry-After`` is delta-seconds or an HTTP date, the latter measured
    against ``now`` (the client's clock, so a date in the past is 0).
    None for other statuses, and for a value that is neither: then the
    client's own backoff applies.
    """
    if r.status_code not in RETRY_AFTER_STATUS:
        return None
    value = r.headers.get("retry-after", "").strip()
    if value.isascii() and value.isdigit():
        return float(value)
    when = parse_http_date(value)
    return max(0.0, when - now.timestamp()) if when else None


def error_code(r: httpx.Response) -> str:
    return error_document(r).get("Code", "")


def named_region(r: httpx.Response) -> str | None:
    """The region a 301/307/400 answer names, if any (S3's way).

    ``x-amz-bucket-region``, else an ``AuthorizationHeaderMalformed`` or
    ``IllegalLocationConstraintException`` body's ``<Region>``.  The body
    is parsed only for a 400 without the header: this runs on every answer.
    """
    if r.status_code not in (301, 307, 400):
        return None
    region: str | None = r.headers.get("x-amz-bucket-region")
    if region:
        return region
    if r.status_code == 400:
        fields = error_document(r)
        if fields.get("Code") in ("AuthorizationHeaderMalformed", "IllegalLocationConstraintException"):
            return fields.get("Region") or None
    return None


def redirect_region(r: httpx.Response, dialect: Dialect, endpoint: Endpoint) -> str | None:
    """The region ``r`` sends the client to, if the dialect follows it there.

    S3 (and directory buckets): :func:`named_region`.  OSS names the right
    endpoint in the body of a 403; it is followed only when the endpoint is
    OSS's default for a region (a custom domain cannot be switched to
    another region).  COS and OBS are never followed (see :func:`error_for`).
    """
    if dialect.follows_region_redirects:
        return named_region(r)
    if dialect.wrong_endpoint_403 and r.status_code == 403 and endpoint.from_region:
        return region_from_host(dialect, error_document(r).get("Endpoint"))
    return None


def error_for(r: httpx.Response, what: str, dialect: Dialect, *, bucket_level: bool = False
              ) -> errors.S3Error:
    """The exception for an error answer: the dialect's cases, then one table by status and code.

    A wrong-endpoint 403 (OSS) names the endpoint to use; a redirect the
    dialect does not follow (COS, OBS) names its ``Location``: metafs talks
    only to the endpoint it was given or derived.  ``bucket_level``: a 404
    means the bucket, not an object, is missing.
    """
    fields = error_document(r)
    code, message = fields.get("Code", ""), fields.get("Message", "")
    status = r.status_code
    if dialect.wrong_endpoint_403 and status == 403 and fields.get("Endpoint"):
        return errors.WrongRegionError(403, region_from_host(dialect, fields["Endpoint"]) or "",
                                       what=what, endpoint=fields["Endpoint"])
    if not dialect.follows_region_redirects and status in (301, 307):
        return errors.S3Error(status, "PermanentRedirect",
                              f"the bucket is served elsewhere ({r.headers.get('location', '?')}):"
                              " check --region and --endpoint-url", what=what)
    if status == 404:
        if bucket_level or code == "NoSuchBucket":
            return errors.NoSuchBucketError(status, code or "NoSuchBucket",
                                            message or "the bucket does not exist", what=what)
        return errors.NotFoundError(status, code, message, what=what)
    if status == 403:
        if code in BAD_CREDENTIAL_CODES:
            return errors.BadCredentialsError(status, code, message, what=what)
        return errors.AccessDeniedError(status, code or "AccessDenied", message, what=what)
    if status in (301, 307, 400) and (region := named_region(r)):
        return errors.WrongRegionError(status, region, what=what)
    if status in RETRYABLE_STATUS or code in RETRYABLE_CODES:
        return errors.ServerError(status, code, message, what=what)
    return errors.S3Error(status, code, message, what=what)


def customer_key_refusal(r: httpx.Response) -> bool:
    """Whether an object's error answer may mean "this request's customer key (SSE-C) is wrong".

    HEAD answers have no body: S3, COS and Ceph RGW answer 400 to a HEAD of
    an SSE-C object without its key (and to customer-key headers on a plain
    object), AWS 403 to a wrong key.  A GET says InvalidRequest or
    InvalidArgument with 400, AccessDenied with 403.  A region answer
    (400 naming the region) is not one.
    """
    if r.status_code not in (400, 403) or named_region(r):
        return False
    code = error_code(r)
    return not code or code in ("InvalidRequest", "InvalidArgument", "AccessDenied")


def describe_transport(e: httpx.HTTPError, ep: Endpoint) -> str:
    """One line for a request that got no usable answer, naming the endpoint and the reason.

    The reason is the OS's, or for an answer the HTTP parser (h11) refused,
    :func:`protocol_fault`.
    """
    where = f"{ep.host}{':' + str(ep.port) if ep.port else ''}"
    if isinstance(e, httpx.ConnectError) and (tls := _tls_failure(e)) is not None:
        hint = (f": https was assumed, as the endpoint URL names no scheme; for a server that speaks "
                f"plain HTTP, write http://{where}" if ep.scheme_assumed else "")
        return f"the TLS handshake with {where} failed ({tls}){hint}"
    if isinstance(e, httpx.ConnectError):
        return f"cannot connect to {where} ({root_cause(e)})"
    if isinstance(e, httpx.TimeoutException):
        return f"timed out talking to {where}"
    if isinstance(e, httpx.RemoteProtocolError):
        return f"unusable HTTP answer from {where}: {protocol_fault(e)}"
    return f"{type(e).__name__} talking to {where} ({root_cause(e)})"


# Longest quote of the server's bytes in a log line: h11 quotes a refused line
# whole, and a header line may be up to the parser's limit (100 KiB).
_QUOTE_LIMIT = 120


def protocol_fault(e: httpx.RemoteProtocolError) -> str:
    """What h11 refused in an answer, in words and on one bounded line.

    h11 names most faults itself ("illegal header line: …", "peer closed
    connection without sending complete message body (received 3 bytes,
    expected 100)"), but says only "Receive buffer too long" when the header
    block outgrows httpcore's 100 KiB limit (thousands of headers, or one
    huge one).
    """
    text = str(e) or type(e).__name__
    if text == "Receive buffer too long":
        return "header block too large for the HTTP parser (over 100 KiB)"
    return text if len(text) <= _QUOTE_LIMIT else text[:_QUOTE_LIMIT] + "…"


def _tls_failure(e: BaseException) -> str | None:
    """OpenSSL's reason when ``e`` comes from a failed TLS handshake (e.g. WRONG_VERSION_NUMBER:
    the server answered in plain HTTP); None otherwise."""
    for _ in range(10):
        if isinstance(e, ssl.SSLError):
            return e.reason or str(e)
        inner = e.__cause__ or e.__context__
        if inner is None:
            return None
        e = inner
    return None


def root_cause(e: BaseException) -> str:
    """The innermost OS-level reason, e.g. 'Connection refused'."""
    for _ in range(10):
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
        if isinstance(e, BaseExceptionGroup) and e.exceptions:
            e = e.exceptions[0]
        elif (inner := e.__cause__ or e.__context__) is not None:
            e = inner
        else:
            break
    return str(e) or type(e).__name__

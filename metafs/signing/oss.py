"""Alibaba Cloud OSS request signing: V4 (``OSS4-HMAC-SHA256``) and V1.

V4 is SigV4 with OSS names::

    CanonicalRequest = METHOD \\n URI \\n Query \\n Headers \\n AdditionalHeaders \\n Payload
    Scope            = {yyyymmdd}/{region}/oss/aliyun_v4_request
    StringToSign     = "OSS4-HMAC-SHA256" \\n {x-oss-date} \\n Scope \\n hex(SHA256(CR))
    SigningKey       = HMAC-SHA256 chain "aliyun_v4"+secret -> date -> region -> "oss"
                       -> "aliyun_v4_request"

where URI is ``/{bucket}/{key}`` encoded (the bucket is in it even for a
virtual-hosted request), Query is sorted encoded pairs with value-less
parameters as a bare ``name`` (not AWS's ``name=``), Headers are every
``x-oss-*`` header plus ``content-type``/``content-md5`` plus the optional
AdditionalHeaders, and Payload is always ``UNSIGNED-PAYLOAD``.

V1 (``OSS ak:sig``, being retired) is AWS SigV2 with ``x-oss-`` headers and
a canonical resource ``/{bucket}/{key}`` (decoded) plus the sub-resources
from the SDK's whitelist.

Both verified against the SDK's published unit-test vectors and against
``alibabacloud_oss_v2.signer`` in ``tests/test_signing_oss.py``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
from collections.abc import Iterable
from email.utils import format_datetime

from . import Credentials, SignableRequest, uri_encode

__all__ = ["OssV4Signer", "OssV1Signer", "canonical_query", "v1_canonical_resource",
           "UNSIGNED_PAYLOAD", "V1_SUBRESOURCES"]

ALGORITHM = "OSS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

# Query parameters that are part of a V1 canonical resource; any other
# parameter (prefix, marker, delimiter, max-keys, list-type, encoding-type,
# ...) is left out.  Copied from alibabacloud-oss-v2 ``SignerV1``: the
# server rejects a signature over a parameter it does not treat as a
# sub-resource just as it rejects one missing a parameter it does.
V1_SUBRESOURCES = frozenset({
    "acl", "bucketInfo", "location", "stat", "delete", "append", "tagging",
    "objectMeta", "uploads", "uploadId", "partNumber", "security-token",
    "position", "response-content-type", "response-content-language",
    "response-expires", "response-cache-control", "response-content-disposition",
    "response-content-encoding", "restore", "callback", "callback-var",
    "versions", "versioning", "versionId", "sequential", "continuation-token",
    "regionList", "cloudboxes", "symlink", "resourceGroup",
})


def _utc(now: _dt.datetime) -> _dt.datetime:
    """``now`` as aware UTC; a naive value is taken to be UTC already."""
    if now.tzinfo is None:
        return now.replace(tzinfo=_dt.UTC)
    return now.astimezone(_dt.UTC)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def _default_signed(name: str) -> bool:
    """Headers V4 always signs (so they never appear in AdditionalHeaders)."""
    return name.startswith("x-oss-") or name in ("content-type", "content-md5")


def _path(bucket: str, key: str) -> str:
    """``/bucket/key``; ``/bucket/`` for a bucket request, ``/`` for none."""
    return "/" + (bucket + "/" if bucket else "") + key


def canonical_query(query: Iterable[tuple[str, str]]) -> str:
    """Encoded, sorted ``k=v``; a value-less parameter is a bare ``k``."""
    pairs = sorted((uri_encode(k), uri_encode(v)) for k, v in query)
    return "&".join(f"{k}={v}" if v else k for k, v in pairs)


class OssV4Signer:
    """OSS V4 header authentication for ``region``.

    ``region`` is the general region id (``cn-hangzhou``); the OSS spelling
    ``oss-cn-hangzhou`` is accepted and normalised, because both appear in
    configuration and in ``GetBucketLocation`` answers.  A signer signs for
    one region: when region discovery finds another, the client builds a
    new signer.
    ``additional_headers`` names extra headers to sign (e.g. ``host``);
    those that are signed anyway or absent from a request are skipped for
    that request, as the SDK does.
    """

    def __init__(self, region: str, additional_headers: Iterable[str] = ()) -> None:
        self.region = region.removeprefix("oss-")
        self.additional_headers = frozenset(n.lower() for n in additional_headers)

    def sign(self, req: SignableRequest, creds: Credentials, now: _dt.datetime) -> None:
        now = _utc(now)
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        date = stamp[:8]
        h = req.headers
        if "host" in self.additional_headers:
            h.setdefault("host", req.host)
        h["x-oss-date"] = stamp
        # Not signed in V4 (x-oss-date is); sent as the official SDK does.
        h["date"] = format_datetime(now, usegmt=True)
        h["x-oss-content-sha256"] = UNSIGNED_PAYLOAD
        if creds.token:
            h["x-oss-security-token"] = creds.token
        additional = sorted(n for n in self.additional_headers
                            if not _default_signed(n) and h.get(n))
        signed = sorted((n, v) for n, v in h.items() if _default_signed(n) or n in additional)
        creq = "\n".join([
            req.method.upper(),
            uri_encode(_path(req.bucket, req.key), keep_slash=True),
            canonical_query(req.query),
            "".join(f"{n}:{v.strip()}\n" for n, v in signed),
            ";".join(additional),
            UNSIGNED_PAYLOAD,
        ])
        scope = f"{date}/{self.region}/oss/aliyun_v4_request"
        sts = "\n".join([ALGORITHM, stamp, scope,
                         hashlib.sha256(creq.encode("utf-8")).hexdigest()])
        key = _hmac(("aliyun_v4" + creds.secret_key).encode("utf-8"), date)
        for part in (self.region, "oss", "aliyun_v4_request"):
            key = _hmac(key, part)
        signature = hmac.new(key, sts.encode("utf-8"), hashlib.sha256).hexdigest()
        auth = f"{ALGORITHM} Credential={creds.access_key}/{scope}"
        if additional:
            auth += f",AdditionalHeaders={';'.join(additional)}"
        h["authorization"] = f"{auth},Signature={signature}"


def v1_canonical_resource(bucket: str, key: str, query: Iterable[tuple[str, str]]) -> str:
    """``/bucket/key`` (decoded) plus sorted whitelisted sub-resources."""
    subs = sorted((k, v) for k, v in query if k in V1_SUBRESOURCES)
    resource = _path(bucket, key)
    if subs:
        resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in subs)
    return resource


class OssV1Signer:
    """OSS V1 (``OSS ak:base64(HMAC-SHA1)``) header authentication.

    A ``date`` header is added from ``now`` unless the request already
    carries ``date`` or ``x-oss-date`` (which then fills the Date slot).
    The STS token goes in ``x-oss-security-token``, where it is signed as
    an ``x-oss-*`` header (as in oss2 and the OSS V1 documentation).
    """

    def sign(self, req: SignableRequest, creds: Credentials, now: _dt.datetime) -> None:
        h = req.headers
        if creds.token:
            h["x-oss-security-token"] = creds.token
        if "date" not in h and "x-oss-date" not in h:
            h["date"] = format_datetime(_utc(now), usegmt=True)
        oss_headers = "".join(f"{n}:{v.strip()}\n" for n, v in sorted(h.items())
                              if n.startswith("x-oss-"))
        sts = "\n".join([
            req.method.upper(),
            h.get("content-md5", ""),
            h.get("content-type", ""),
            h.get("x-oss-date") or h.get("date", ""),
            oss_headers + v1_canonical_resource(req.bucket, req.key, req.query),
        ])
        # The resource is the decoded key: a key that is not UTF-8 is signed as its bytes.
        digest = hmac.new(creds.secret_key.encode("utf-8"), sts.encode("utf-8", "surrogateescape"),
                          hashlib.sha1).digest()
        h["authorization"] = f"OSS {creds.access_key}:{base64.b64encode(digest).decode('ascii')}"

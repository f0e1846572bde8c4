"""Huawei Cloud OBS native request signing (``OBS ak:signature``).

AWS SigV2 with ``x-obs-`` names (OBS API "Authentication of Signature in
a Header", obs_04_0010)::

    StringToSign = VERB \\n Content-MD5 \\n Content-Type \\n Date \\n
                   CanonicalizedHeaders CanonicalizedResource
    Signature    = base64(HMAC-SHA1(SecretKey, StringToSign))

CanonicalizedHeaders are the ``x-obs-*`` headers, lowercase, sorted, one
``name:value\\n`` each; the Date line is empty when ``x-obs-date`` is sent.
CanonicalizedResource is ``/{bucket}/{key}`` with the key percent-encoded
as the official SDK does (everything but ``A-Za-z0-9-_.~/``), then the
whitelisted sub-resources sorted, ``?name=value&name2`` (values raw).
Verified against AWS's SigV2 example and against ``obs.auth.Authentication``
in ``tests/test_signing_obs.py``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from email.utils import format_datetime

from . import Credentials, SignableRequest, uri_encode

__all__ = ["ObsSigner", "SUBRESOURCES", "canonical_resource", "string_to_sign", "signature"]

# Query parameters that belong to the canonical resource (matched
# case-insensitively), copied from esdk-obs-python ``const``; parameters
# named ``x-obs-*`` count too.  List parameters (prefix, marker, ...) don't.
SUBRESOURCES = frozenset({
    "acl", "backtosource", "policy", "torrent", "logging", "location",
    "storageinfo", "quota", "storageclass", "storagepolicy", "requestpayment",
    "versions", "versioning", "versionid", "uploads", "uploadid", "partnumber",
    "website", "notification", "dispolicy", "lifecycle", "deletebucket",
    "delete", "cors", "restore", "tagging", "replication", "metadata",
    "encryption", "publicaccessblock", "bucketstatus", "policystatus",
    "x-obs-accesslabel", "inventory", "obscompresspolicy", "object-lock",
    "retention", "directcoldaccess",
    # file-system (PFS) API
    "append", "position", "truncate", "modify", "rename", "length", "name",
    "fileinterface",
    "response-content-type", "response-content-language", "response-expires",
    "response-cache-control", "response-content-disposition",
    "response-content-encoding", "x-image-save-bucket", "x-image-save-object",
    "x-image-process", "x-oss-process",
    # workflow API
    "x-workflow-prefix", "x-workflow-start", "x-workflow-limit",
    "x-workflow-template-name", "x-workflow-graph-name",
    "x-workflow-execution-state", "x-workflow-execution-type",
    "x-workflow-next-marker", "obsworkflowtriggerpolicy",
    # virtual bucket API
    "obsbucketalias", "obsalias",
})


def _utc(now: _dt.datetime) -> _dt.datetime:
    """``now`` as aware UTC; a naive value is taken to be UTC already."""
    if now.tzinfo is None:
        return now.replace(tzinfo=_dt.UTC)
    return now.astimezone(_dt.UTC)


def canonical_resource(bucket: str, key: str, query: Iterable[tuple[str, str]]) -> str:
    """``/bucket/key`` plus sorted sub-resources (``''`` value = bare name)."""
    resource = "/" + (bucket + "/" if bucket else "") + uri_encode(key, keep_slash=True)
    subs = sorted((k, v) for k, v in query
                  if k.lower() in SUBRESOURCES or k.lower().startswith("x-obs-"))
    if subs:
        resource += "?" + "&".join(
            f"{uri_encode(k, keep_slash=True)}={v}" if v else uri_encode(k, keep_slash=True)
            for k, v in subs)
    return resource


def string_to_sign(method: str, headers: Mapping[str, str], resource: str) -> str:
    """The SigV2-shaped string; ``headers`` has lowercase names."""
    date = "" if "x-obs-date" in headers else headers.get("date", "")
    obs_headers = "".join(f"{n}:{v.strip()}\n" for n, v in sorted(headers.items())
                          if n.startswith("x-obs-"))
    return (f"{method.upper()}\n{headers.get('content-md5', '')}\n"
            f"{headers.get('content-type', '')}\n{date}\n{obs_headers}{resource}")


def signature(secret_key: str, sts: str) -> str:
    digest = hmac.new(secret_key.encode("utf-8"), sts.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


class ObsSigner:
    """OBS native header authentication.

    Sets ``date`` from ``now`` (unless ``x-obs-date`` is sent, as the SDK
    does) because the server rejects a Date more than 15 minutes off, and
    puts an STS token in ``x-obs-security-token`` before signing so that
    it is signed.
    """

    def sign(self, req: SignableRequest, creds: Credentials, now: _dt.datetime) -> None:
        h = req.headers
        if "x-obs-date" not in h:
            h["date"] = format_datetime(_utc(now), usegmt=True)
        if creds.token:
            h["x-obs-security-token"] = creds.token
        sts = string_to_sign(req.method, h, canonical_resource(req.bucket, req.key, req.query))
        h["authorization"] = f"OBS {creds.access_key}:{signature(creds.secret_key, sts)}"

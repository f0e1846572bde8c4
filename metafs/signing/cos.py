"""Tencent COS request signing (``q-sign-algorithm=sha1``).

Algorithm (COS "Request Signature", product/436/7778)::

    KeyTime      = "{start};{end}"                       (Unix seconds)
    SignKey      = hex(HMAC-SHA1(SecretKey, KeyTime))   (hex text is the next key)
    HttpString   = lower(method) \\n Path \\n HttpParameters \\n HttpHeaders \\n
    StringToSign = "sha1\\n" KeyTime "\\n" hex(SHA1(HttpString)) "\\n"
    Signature    = hex(HMAC-SHA1(SignKey, StringToSign))

``HttpParameters``/``HttpHeaders`` are ``k=v`` pairs joined by ``&`` with
names URL-encoded then lowercased, values URL-encoded (only ``A-Za-z0-9-_.~``
literal), sorted by name; the name lists go in ``q-url-param-list`` and
``q-header-list``.  ``Path`` is the *decoded* object path, ``/`` + key.

Which headers are signed is the client's choice (the server checks what
``q-header-list`` names); :class:`CosSigner` signs the same whitelist as
the official Python SDK (``qcloud_cos.cos_auth.filter_headers``), notably
not ``date``.  Verified against COS's published examples and against
``CosS3Auth`` in ``tests/test_signing_cos.py``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
from collections.abc import Iterable

from . import Credentials, SignableRequest, uri_encode

__all__ = ["CosSigner", "cos_sign_key", "cos_http_string", "cos_signature"]

# The SDK's list of non-prefixed headers worth signing: the ones a proxy
# could rewrite to change what the request means.
_SIGNED_HEADERS = frozenset({
    "cache-control", "content-disposition", "content-encoding", "content-type",
    "content-md5", "content-length", "expect", "expires", "host", "if-match",
    "if-modified-since", "if-none-match", "if-unmodified-since", "origin",
    "range", "transfer-encoding", "pic-operations",
})


def _utc(now: _dt.datetime) -> _dt.datetime:
    """``now`` as aware UTC; a naive value is taken to be UTC already."""
    if now.tzinfo is None:
        return now.replace(tzinfo=_dt.UTC)
    return now.astimezone(_dt.UTC)


def _hmac_sha1_hex(key: str, msg: str) -> str:
    return hmac.new(key.encode("utf-8"), msg.encode("utf-8"), hashlib.sha1).hexdigest()


def _canonical(pairs: Iterable[tuple[str, str]]) -> tuple[str, str]:
    """``(k1=v1&k2=v2, k1;k2)``: names encoded then lowercased, sorted."""
    enc = sorted((uri_encode(k).lower(), uri_encode(v)) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in enc), ";".join(k for k, _ in enc)


def cos_sign_key(secret_key: str, key_time: str) -> str:
    """``SignKey``: the lowercase hex HMAC-SHA1 of ``KeyTime``."""
    return _hmac_sha1_hex(secret_key, key_time)


def cos_http_string(method: str, path: str, params: Iterable[tuple[str, str]],
                    headers: Iterable[tuple[str, str]]) -> str:
    """``HttpString`` over *all* the given params and headers (decoded)."""
    http_params, _ = _canonical(params)
    http_headers, _ = _canonical(headers)
    return f"{method.lower()}\n{path}\n{http_params}\n{http_headers}\n"


def cos_signature(secret_key: str, key_time: str, method: str, path: str,
                  params: Iterable[tuple[str, str]], headers: Iterable[tuple[str, str]]) -> str:
    """The ``q-signature`` value; every given param and header is signed."""
    http_string = cos_http_string(method, path, params, headers)
    # The path is the decoded key: a key that is not UTF-8 is signed as its bytes.
    http_bytes = http_string.encode("utf-8", "surrogateescape")
    sts = f"sha1\n{key_time}\n{hashlib.sha1(http_bytes).hexdigest()}\n"
    return _hmac_sha1_hex(cos_sign_key(secret_key, key_time), sts)


class CosSigner:
    """COS header authentication, valid from ``now - 60 s`` to ``now + expires``.

    The 60 s back-dating (as the SDK does) absorbs a client clock that runs
    slightly ahead of the server's.  Only virtual-hosted requests are
    signed correctly: the signed path is ``/`` + the decoded key, which is
    the wire path only when the bucket is in the host name (COS refuses
    path-style for new buckets anyway).  A key that starts with ``/`` is
    signed as ``//...``, like its wire path; the SDK instead drops that
    slash from the URL but not from the signature.
    """

    def __init__(self, expires: int = 3600) -> None:
        self.expires = expires

    def sign(self, req: SignableRequest, creds: Credentials, now: _dt.datetime) -> None:
        h = req.headers
        h.setdefault("host", req.host)
        # The token goes in before signing so that it is itself signed.
        if creds.token:
            h["x-cos-security-token"] = creds.token
        start = int(_utc(now).timestamp())
        key_time = f"{start - 60};{start + self.expires}"
        signed = [(n, v) for n, v in h.items()
                  if n in _SIGNED_HEADERS or n.startswith(("x-cos-", "x-ci-"))]
        path = "/" + req.key
        signature = cos_signature(creds.secret_key, key_time, req.method, path, req.query, signed)
        _, param_list = _canonical(req.query)
        _, header_list = _canonical(signed)
        h["authorization"] = (
            f"q-sign-algorithm=sha1&q-ak={creds.access_key}"
            f"&q-sign-time={key_time}&q-key-time={key_time}"
            f"&q-header-list={header_list}&q-url-param-list={param_list}"
            f"&q-signature={signature}"
        )

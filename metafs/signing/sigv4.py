"""AWS Signature Version 4, S3 flavour (also S3 Express session auth).

Follows the S3 rules that differ from generic SigV4: the canonical URI is
the wire path, encoded once and never normalised (``//`` and ``.`` stay),
and ``x-amz-content-sha256`` is always sent and signed.  Verified against
AWS's published examples and against botocore's ``S3SigV4Auth`` in
``tests/test_signing_sigv4.py``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac

from . import EMPTY_SHA256, Credentials, SignableRequest, uri_encode

ALGORITHM = "AWS4-HMAC-SHA256"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def canonical_query(query: list[tuple[str, str]]) -> str:
    """Encode names and values, sort, and render ``k=v`` (``k=`` when empty)."""
    pairs = sorted((uri_encode(k), uri_encode(v)) for k, v in query)
    return "&".join(f"{k}={v}" for k, v in pairs)


class SigV4Signer:
    """SigV4 for S3-compatible services.

    ``service`` is ``s3`` (or ``s3express`` for directory buckets);
    ``token_header`` is where a session token goes: ``x-amz-security-token``
    for STS credentials, ``x-amz-s3session-token`` for S3 Express sessions.
    A signer signs for one ``region``: when region discovery finds another,
    the client builds a new signer.
    """

    def __init__(
        self,
        region: str,
        service: str = "s3",
        token_header: str = "x-amz-security-token",
        payload_hash: str = EMPTY_SHA256,
    ) -> None:
        self.region = region
        self.service = service
        self.token_header = token_header
        self.payload_hash = payload_hash
        # The signing key of the last (secret, date): it changes once a day, or with the keys,
        # and deriving it costs four HMACs of every request.
        self._key: tuple[str, str, bytes] | None = None

    def signing_key(self, secret_key: str, date: str) -> bytes:
        """The key of ``date`` (YYYYMMDD) for this region and service (kept while it stays)."""
        kept = self._key
        if kept is not None and kept[0] == secret_key and kept[1] == date:
            return kept[2]
        key = _hmac(("AWS4" + secret_key).encode("utf-8"), date)
        for part in (self.region, self.service, "aws4_request"):
            key = _hmac(key, part)
        self._key = (secret_key, date, key)
        return key

    def sign(self, req: SignableRequest, creds: Credentials, now: _dt.datetime) -> None:
        if now.tzinfo is not None:  # the scope date is UTC's, whatever the caller's zone
            now = now.astimezone(_dt.UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        date = amz_date[:8]
        h = req.headers
        h["host"] = req.host
        h["x-amz-date"] = amz_date
        h["x-amz-content-sha256"] = self.payload_hash
        if creds.token:
            h[self.token_header] = creds.token
        # Sign host, every x-amz-* header and the conditional/range headers
        # we send; never user-agent or hop-by-hop headers (as botocore).
        signed = sorted(
            n for n in h
            if n == "host" or n.startswith("x-amz-") or n.startswith("if-")
            or n in ("range", "content-type", "content-md5")
        )
        canonical_headers = "".join(f"{n}:{' '.join(h[n].split())}\n" for n in signed)
        signed_headers = ";".join(signed)
        creq = "\n".join([
            req.method.upper(),
            req.path,
            canonical_query(req.query),
            canonical_headers,
            signed_headers,
            self.payload_hash,
        ])
        scope = f"{date}/{self.region}/{self.service}/aws4_request"
        sts = "\n".join([ALGORITHM, amz_date, scope,
                         hashlib.sha256(creq.encode("utf-8")).hexdigest()])
        key = self.signing_key(creds.secret_key, date)
        signature = hmac.new(key, sts.encode("utf-8"), hashlib.sha256).hexdigest()
        h["authorization"] = (
            f"{ALGORITHM} Credential={creds.access_key}/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={signature}"
        )

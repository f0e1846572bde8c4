"""A loopback server that speaks one vendor dialect: COS, OSS, OBS or S3 Express.

One small threaded ``http.server``, configured per instance, playing the
provider as far as metafs uses it: the bucket check (HEAD Bucket; OSS
``GET /?location``; directory buckets also CreateSession), HEAD Object
with the vendor's headers, conditional HEAD (``If-None-Match`` -> 304),
ranged GET, the vendor's listing (COS/OBS ListObjects V1 with ``marker``,
OSS and S3 Express ListObjectsV2; directory-bucket listings deliberately
out of order), and the vendor's error answers (XML bodies; OSS's
bodiless ``x-oss-err``).

**Addressing.**  The vendors are virtual-hosted, so the bucket must be in
the ``Host`` header: ``BUCKET.ENDPOINT-HOST``.  ``*.localhost`` does not
resolve on this machine (glibc ``files dns``, no nss-myhostname), so the
server is also an HTTP proxy: metafs runs with ``HTTP_PROXY`` pointing at
it and an endpoint such as ``http://cos.ap-guangzhou.vendor.test`` (a
reserved TLD that can never reach the Internet), and httpx sends
``GET http://BUCKET.cos.ap-guangzhou.vendor.test/key`` with that ``Host``.
A request whose host is the bare endpoint (path style) is refused the way
the vendor refuses it (COS ``PathStyleDomainForbidden``...).

**Signatures** are verified, and a wrong one is refused with the vendor's
403 ``SignatureDoesNotMatch`` (unknown key id: ``InvalidAccessKeyId``):

* COS: :func:`metafs.signing.cos.cos_signature` over the parameters and
  headers the request's ``q-url-param-list``/``q-header-list`` name (as a
  COS server does), the function ``tests/test_signing_cos.py`` checks
  against COS's published examples and the official SDK; the lists must
  also cover ``host``, every query parameter and every ``x-cos-*``,
  ``if-*`` and ``range`` header sent;
* OSS: the official SDK, ``alibabacloud_oss_v2.signer.SignerV4`` (or
  ``SignerV1``), re-signing the request as received;
* OBS: the official SDK, ``obs.auth.Authentication.doAuth``;
* S3 Express: :class:`metafs.signing.sigv4.SigV4Signer` (checked against
  botocore in ``tests/test_signing_sigv4.py``) re-signing the wire request,
  service ``s3express``: IAM keys for HEAD Bucket and CreateSession,
  session keys plus ``x-amz-s3session-token`` for everything else.

Every request is recorded (kind, headers, status, error code), so tests
assert request counts as with ``metafs/devserver.py``.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import datetime as dt
import email.utils
import hashlib
import http.server
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit
from xml.sax.saxutils import escape

from metafs.signing import Credentials, SignableRequest, uri_encode
from metafs.signing.cos import cos_signature
from metafs.signing.sigv4 import SigV4Signer

DIALECTS = ("cos", "oss", "obs", "s3express")
KINDS = ("LIST", "HEAD", "HEAD_COND", "HEAD_BUCKET", "LOCATION", "SESSION", "GET", "TAGGING", "OTHER")
_UTC = dt.UTC

# The providers' own error messages, word for word.
_NO_SUCH_OSS_KEY = "The OSS Access Key Id you provided does not exist in our records."
_NO_SUCH_AWS_KEY = "The AWS Access Key Id you provided does not exist in our records."
_SKEWED = "The difference between the request time and the current time is too large."
_MISMATCH = "The request signature we calculated does not match the signature you provided."


def crc64_xz(data: bytes) -> int:
    """CRC-64/XZ (ECMA-182, reflected), what COS/OSS/OBS call crc64ecma."""
    crc = 0xFFFFFFFFFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0xC96C5795D7870F42 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFFFFFFFFFF


@dataclasses.dataclass
class FakeObject:
    key: str
    body: bytes
    etag: str  # as sent, quotes included
    mtime: int
    headers: dict[str, str]  # the vendor's object headers (meta, storage class...)
    tags: dict[str, str] | None = None  # None: never tagged (COS/OSS then send no count on HEAD)


@dataclasses.dataclass
class FakeVersion:
    """One entry of a key's history: a version (``obj``) or a delete marker (``obj`` None)."""

    key: str
    version_id: str
    stamp_ms: int
    obj: FakeObject | None


@dataclasses.dataclass
class Record:
    """One request as the server saw it."""

    kind: str
    method: str
    host: str
    key: str
    query: dict[str, str]
    headers: dict[str, str]  # lowercase names
    status: int = 0
    code: str = ""  # error code answered, if any


@dataclasses.dataclass
class _Session:
    access_key: str
    secret_key: str
    token: str
    expires: float  # server clock


class _Reject(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code)
        self.status, self.code, self.message = status, code, message


class VendorServer:
    """One bucket of one vendor, on 127.0.0.1 (see the module docstring)."""

    def __init__(self, dialect: str, *, bucket: str, endpoint_host: str, access_key: str,
                 secret_key: str, region: str, token: str | None = None,
                 page_size: int = 1000, session_lifetime: int = 300) -> None:
        assert dialect in DIALECTS
        self.dialect = dialect
        self.bucket = bucket
        self.endpoint_host = endpoint_host
        self.access_key = access_key
        self.secret_key = secret_key
        self.token = token
        self.region = region
        self.page_size = page_size
        self.session_lifetime = session_lifetime
        self.objects: dict[str, FakeObject] = {}
        self.denied: set[str] = set()  # keys whose HEAD answers 403 AccessDenied
        self.tags_denied: set[str] = set()  # keys whose GET ?tagging answers 403 AccessDenied
        self.delete_markers: set[str] = set()  # keys whose latest version is a delete marker
        self.history_of: dict[str, list[FakeVersion]] = {}  # key -> versions, oldest first
        self.versioning: str | None = None  # GetBucketVersioning's Status
        self.records: list[Record] = []  # since the last reset()
        self.history: list[Record] = []  # every request, start-up check included
        self.sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"server_ref": self})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle and controls --------------------------------------------
    @property
    def proxy_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.endpoint_host}"

    def start(self) -> VendorServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(5)

    def reset(self) -> None:
        with self._lock:
            self.records.clear()

    def log(self, *kinds: str) -> list[Record]:
        with self._lock:
            return [r for r in self.records if not kinds or r.kind in kinds]

    def counts(self) -> dict[str, int]:
        with self._lock:
            c = collections.Counter(r.kind for r in self.records)
        return {k: c.get(k, 0) for k in KINDS}

    def put(self, key: str, body: bytes = b"", *, meta: dict[str, str] | None = None,
            headers: dict[str, str] | None = None, mtime: int | None = None,
            tags: dict[str, str] | None = None) -> FakeObject:
        """Store an object with the headers this vendor would send for it."""
        md5 = hashlib.md5(body).hexdigest()
        # OSS answers ETags in uppercase hex; the others in lowercase.
        etag = f'"{md5.upper()}"' if self.dialect == "oss" else f'"{md5}"'
        if self.dialect == "s3express":  # directory buckets: not an MD5
            etag = f'"{secrets.token_hex(16)}"'
        p = {"cos": "x-cos-", "oss": "x-oss-", "obs": "x-obs-", "s3express": "x-amz-"}[self.dialect]
        h: dict[str, str] = {}
        if self.dialect in ("cos", "oss"):
            h[p + "hash-crc64ecma"] = str(crc64_xz(body))
        elif self.dialect == "obs":
            h[p + "checksum-crc64ecma"] = str(crc64_xz(body))
        elif self.dialect == "s3express":
            h["x-amz-storage-class"] = "EXPRESS_ONEZONE"
        if self.dialect == "oss":  # OSS sends these even for plain objects
            h["x-oss-object-type"] = "Normal"
            h["x-oss-storage-class"] = "Standard"
        for k, v in (meta or {}).items():
            h[p + "meta-" + k] = v
        h.update(headers or {})
        obj = FakeObject(key, body, etag, int(time.time()) if mtime is None else mtime, h, tags)
        with self._lock:
            self.objects[key] = obj
        return obj

    def new_version_id(self) -> str:
        """A version id in the vendor's style (OSS's hold '+', '/' and '=': they must be encoded)."""
        if self.dialect == "cos":
            return base64.b64encode(secrets.token_hex(10).encode()).decode().rstrip("=")
        if self.dialect == "oss":
            return "CAEQ" + base64.b64encode(b"\xfb\xff" + secrets.token_bytes(16)).decode()
        if self.dialect == "obs":
            return "G001" + secrets.token_hex(14).upper()
        return secrets.token_urlsafe(24)

    def put_version(self, key: str, body: bytes, stamp_ms: int, **kw: Any) -> FakeVersion:
        """A new version of ``key`` (a versioned bucket), written at ``stamp_ms``."""
        self.versioning = "Enabled"
        vid = self.new_version_id()
        headers = dict(kw.pop("headers", None) or {})
        headers[self.version_header] = vid
        obj = self.put(key, body, mtime=stamp_ms // 1000, headers=headers, **kw)
        v = FakeVersion(key, vid, stamp_ms, obj)
        with self._lock:
            self.history_of.setdefault(key, []).append(v)
            self.delete_markers.discard(key)
        return v

    def delete_version(self, key: str, stamp_ms: int) -> FakeVersion:
        """A delete marker on ``key`` at ``stamp_ms``."""
        v = FakeVersion(key, self.new_version_id(), stamp_ms, None)
        with self._lock:
            self.history_of.setdefault(key, []).append(v)
            self.delete_markers.add(key)
        return v

    @property
    def version_header(self) -> str:
        return {"cos": "x-cos-", "oss": "x-oss-", "obs": "x-obs-", "s3express": "x-amz-"}[
            self.dialect] + "version-id"

    # -- request handling ------------------------------------------------------
    def handle(self, method: str, target: str, headers: dict[str, str]
               ) -> tuple[int, list[tuple[str, str]], bytes]:
        u = urlsplit(target)
        raw_path = u.path or "/"
        query_pairs = parse_qsl(u.query, keep_blank_values=True)
        query = dict(query_pairs)
        host = headers.get("host", "")
        if ":" in host and not host.startswith("["):
            host = host.rsplit(":", 1)[0]
        key = unquote(raw_path[1:])
        rec = Record(self._classify(method, key, query, headers), method, host, key, query, headers)
        with self._lock:
            self.records.append(rec)
            self.history.append(rec)
        try:
            self._check_host(host)
            session = self._verify(method, raw_path, u.query, query_pairs, headers, host, key, rec)
            status, out, body = self._serve(method, key, query, headers, rec, session)
        except _Reject as e:
            status, out, body = self._error(e, method, host)
            rec.code = e.code
        rec.status = status
        return status, out, body

    def _classify(self, method: str, key: str, query: dict[str, str], headers: dict[str, str]) -> str:
        if method == "HEAD":
            if not key:
                return "HEAD_BUCKET"
            return "HEAD_COND" if "if-none-match" in headers else "HEAD"
        if method == "GET" and not key:
            if "session" in query:
                return "SESSION"
            if "location" in query:
                return "LOCATION"
            if "versioning" in query:
                return "OTHER"
            return "LIST"
        if method == "GET":
            return "TAGGING" if "tagging" in query else "GET"
        return "OTHER"

    def _check_host(self, host: str) -> None:
        if host == self.endpoint_host:
            code = {"cos": "PathStyleDomainForbidden", "oss": "SecondLevelDomainForbidden",
                    "obs": "VirtualHostDomainRequired", "s3express": "InvalidRequest"}[self.dialect]
            raise _Reject(403, code, "path-style requests are not accepted: use BUCKET.ENDPOINT")
        if host != f"{self.bucket}.{self.endpoint_host}":
            raise _Reject(404, "NoSuchBucket", "The specified bucket does not exist.")

    # -- signatures --------------------------------------------------------------
    def _verify(self, method: str, raw_path: str, raw_query: str,
                query: list[tuple[str, str]], headers: dict[str, str], host: str, key: str,
                rec: Record) -> _Session | None:
        auth = headers.get("authorization")
        if auth is None:
            raise _Reject(403, "AccessDenied", "Anonymous access is forbidden for this operation.")
        if self.dialect == "cos":
            self._verify_cos(method, query, headers, key, auth)
        elif self.dialect == "oss":
            self._verify_oss(method, raw_path, raw_query, headers, key, host, auth)
        elif self.dialect == "obs":
            self._verify_obs(method, query, headers, key, auth)
        else:
            return self._verify_express(method, raw_path, query, headers, host, auth, rec)
        return None

    def _check_token(self, header: str, headers: dict[str, str]) -> None:
        if self.token is not None and headers.get(header) != self.token:
            raise _Reject(403, "InvalidToken" if header in headers else "AccessDenied",
                          "The security token is missing or invalid.")

    def _verify_cos(self, method: str, query: list[tuple[str, str]], headers: dict[str, str],
                    key: str, auth: str) -> None:
        fields = dict(p.partition("=")[::2] for p in auth.split("&"))
        if fields.get("q-sign-algorithm") != "sha1":
            raise _Reject(403, "AccessDenied", "unsupported q-sign-algorithm")
        if fields.get("q-ak") != self.access_key:
            raise _Reject(403, "InvalidAccessKeyId", "The access key Id format you provided is invalid.")
        start, _, end = fields.get("q-key-time", "").partition(";")
        if fields.get("q-sign-time") != fields.get("q-key-time") or not (
                int(start or 0) <= time.time() <= int(end or 0)):
            raise _Reject(403, "AccessDenied", "Request has expired")
        header_list = [h for h in fields.get("q-header-list", "").split(";") if h]
        param_list = [p for p in fields.get("q-url-param-list", "").split(";") if p]
        must_sign = {"host"} | {n for n in headers if n.startswith(("x-cos-", "if-")) or n == "range"}
        if not must_sign <= set(header_list) or {uri_encode(k).lower() for k, _ in query} != set(param_list):
            raise _Reject(403, "SignatureDoesNotMatch", "a header or parameter is not signed")
        signed_headers = [(n, headers.get(n, "")) for n in header_list]
        signed_params = [(k, v) for k, v in query if uri_encode(k).lower() in param_list]
        expected = cos_signature(self.secret_key, fields["q-key-time"], method, "/" + key,
                                 signed_params, signed_headers)
        if fields.get("q-signature") != expected:
            raise _Reject(403, "SignatureDoesNotMatch",
                          "The Signature you specified is invalid.")
        self._check_token("x-cos-security-token", headers)

    def _verify_oss(self, method: str, raw_path: str, raw_query: str, headers: dict[str, str],
                    key: str, host: str, auth: str) -> None:
        from alibabacloud_oss_v2.credentials import StaticCredentialsProvider
        from alibabacloud_oss_v2.signer import SignerV1, SignerV4
        from alibabacloud_oss_v2.types import HttpRequest, SigningContext

        url = f"http://{host}{raw_path}" + (f"?{raw_query}" if raw_query else "")
        sdk_req = HttpRequest(method, url)
        sdk_req.headers.update({k: v for k, v in headers.items() if k != "authorization"})
        # The token is checked as a header the client signed, not re-added by the SDK.
        creds = StaticCredentialsProvider(self.access_key, self.secret_key).get_credentials()
        if auth.startswith("OSS4-HMAC-SHA256 "):
            parts = dict(p.strip().partition("=")[::2] for p in auth[17:].split(","))
            ak = parts.get("Credential", "").partition("/")[0]
            if ak != self.access_key:
                raise _Reject(403, "InvalidAccessKeyId", _NO_SUCH_OSS_KEY)
            when = dt.datetime.strptime(headers.get("x-oss-date", ""), "%Y%m%dT%H%M%SZ").replace(tzinfo=_UTC)
            if abs(time.time() - when.timestamp()) > 900:
                raise _Reject(403, "RequestTimeTooSkewed", _SKEWED)
            extra = {h for h in parts.get("AdditionalHeaders", "").split(";") if h}
            ctx = SigningContext(product="oss", region=self.region.removeprefix("oss-"),
                                 bucket=self.bucket, key=key or None, request=sdk_req,
                                 signing_time=when, additional_headers=extra or None,
                                 credentials=creds)
            SignerV4().sign(ctx)
        elif auth.startswith("OSS "):
            if auth[4:].partition(":")[0] != self.access_key:
                raise _Reject(403, "InvalidAccessKeyId", _NO_SUCH_OSS_KEY)
            when = email.utils.parsedate_to_datetime(headers.get("date", ""))
            ctx = SigningContext(bucket=self.bucket, key=key or None, request=sdk_req,
                                 signing_time=when, credentials=creds)
            SignerV1().sign(ctx)
        else:
            raise _Reject(400, "InvalidArgument", "Authorization header is invalid.")
        if sdk_req.headers["Authorization"] != auth:
            raise _Reject(403, "SignatureDoesNotMatch", _MISMATCH)
        self._check_token("x-oss-security-token", headers)

    def _verify_obs(self, method: str, query: list[tuple[str, str]], headers: dict[str, str],
                    key: str, auth: str) -> None:
        from obs import auth as obs_auth
        from obs.convertor import Adapter

        if not auth.startswith("OBS ") or auth[4:].partition(":")[0] != self.access_key:
            raise _Reject(403, "InvalidAccessKeyId", _NO_SUCH_AWS_KEY)
        date = headers.get("x-obs-date") or headers.get("date", "")
        if abs(time.time() - email.utils.parsedate_to_datetime(date).timestamp()) > 900:
            raise _Reject(403, "RequestTimeTooSkewed", _SKEWED)
        path_args = {k: (v if v != "" else None) for k, v in query}
        signer = obs_auth.Authentication(self.access_key, self.secret_key, False, Adapter("obs"),
                                         self.endpoint_host, False)
        expected = signer.doAuth(method, self.bucket, key, path_args,
                                 {k: v for k, v in headers.items() if k != "authorization"})
        if expected["Authorization"] != auth:
            raise _Reject(403, "SignatureDoesNotMatch", _MISMATCH + " Check your key and signing method.")
        self._check_token("x-obs-security-token", headers)

    def _verify_express(self, method: str, raw_path: str, query: list[tuple[str, str]],
                        headers: dict[str, str], host: str, auth: str, rec: Record) -> _Session | None:
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            raise _Reject(400, "InvalidRequest", "SigV4 only")
        parts = dict(p.strip().partition("=")[::2] for p in auth[17:].split(","))
        ak, _, scope = parts.get("Credential", "").partition("/")
        _date, region, service, _ = (scope.split("/") + ["", "", "", ""])[:4]
        if service != "s3express" or region != self.region:
            raise _Reject(403, "SignatureDoesNotMatch", f"wrong scope {scope}")
        iam_only = rec.kind in ("HEAD_BUCKET", "SESSION")
        session = None
        if iam_only:
            if ak != self.access_key:
                raise _Reject(403, "InvalidAccessKeyId", _NO_SUCH_AWS_KEY)
            if "x-amz-s3session-token" in headers:
                raise _Reject(400, "InvalidRequest", "this operation takes IAM credentials")
            creds = Credentials(ak, self.secret_key, self.token)
            token_header = "x-amz-security-token"
        else:
            with self._lock:
                session = self.sessions.get(ak)
            if session is None:
                raise _Reject(403, "AccessDenied", "data requests need session credentials")
            if "x-amz-security-token" in headers:
                raise _Reject(400, "InvalidRequest", "x-amz-security-token with a session")
            if headers.get("x-amz-s3session-token") != session.token:
                raise _Reject(403, "InvalidToken", "The provided token is malformed or otherwise invalid.")
            if time.time() >= session.expires:
                raise _Reject(400, "ExpiredToken", "The provided token has expired.")
            creds = Credentials(ak, session.secret_key, session.token)
            token_header = "x-amz-s3session-token"
        signed = parts.get("SignedHeaders", "").split(";")
        added = {"host", "x-amz-date", "x-amz-content-sha256", token_header}
        sreq = SignableRequest(method, host, raw_path, query,
                               {n: headers[n] for n in signed if n in headers and n not in added})
        now = dt.datetime.strptime(headers.get("x-amz-date", ""), "%Y%m%dT%H%M%SZ").replace(tzinfo=_UTC)
        SigV4Signer(self.region, service="s3express", token_header=token_header).sign(sreq, creds, now)
        if sreq.headers["authorization"] != auth:
            raise _Reject(403, "SignatureDoesNotMatch", _MISMATCH)
        if iam_only:
            self._check_token("x-amz-security-token", headers)
        return session

    # -- operations ------------------------------------------------------------
    def _request_id(self) -> list[tuple[str, str]]:
        rid = secrets.token_hex(12)
        return {
            "cos": [("x-cos-request-id", rid), ("x-cos-trace-id", rid + "trace")],
            "oss": [("x-oss-request-id", rid.upper()), ("x-oss-server-time", "3")],
            "obs": [("x-obs-request-id", rid), ("x-obs-id-2", rid + "id2")],
            "s3express": [("x-amz-request-id", rid), ("x-amz-id-2", rid + "id2")],
        }[self.dialect]

    def _serve(self, method: str, key: str, query: dict[str, str], headers: dict[str, str],
               rec: Record, session: _Session | None) -> tuple[int, list[tuple[str, str]], bytes]:
        out = self._request_id()
        if rec.kind == "HEAD_BUCKET":
            if self.dialect == "oss":
                raise _Reject(405, "MethodNotAllowed", "use GetBucketLocation")
            if self.dialect == "cos":
                out += [("x-cos-bucket-region", self.region), ("x-cos-bucket-az-type", "MAZ")]
            elif self.dialect == "obs":
                out += [("x-obs-bucket-location", self.region), ("x-obs-version", "3.0"),
                        ("x-obs-storage-class", "STANDARD")]
            else:
                out += [("x-amz-bucket-region", self.region),
                        ("x-amz-bucket-location-type", "AvailabilityZone"),
                        ("x-amz-bucket-location-name", self.bucket.split("--")[1])]
            return 200, out, b""
        if rec.kind == "LOCATION":
            body = (f'<?xml version="1.0" encoding="UTF-8"?>\n'
                    f"<LocationConstraint>oss-{self.region.removeprefix('oss-')}</LocationConstraint>")
            return 200, out + [("content-type", "application/xml")], body.encode()
        if rec.kind == "SESSION":
            return self._create_session(out)
        if rec.kind == "LIST" and "versions" in query:
            return 200, out + [("content-type", "application/xml")], self._list_versions(query)
        if rec.kind == "LIST":
            return 200, out + [("content-type", "application/xml")], self._list(query)
        if rec.kind == "OTHER" and method == "GET" and "versioning" in query:
            status = f"<Status>{self.versioning}</Status>" if self.versioning else ""
            body = ('<?xml version="1.0" encoding="UTF-8"?>\n<VersioningConfiguration '
                    f'xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{status}</VersioningConfiguration>')
            return 200, out + [("content-type", "application/xml")], body.encode()
        if rec.kind in ("HEAD", "HEAD_COND", "GET") and "versionId" in query:
            return self._object_version(method, key, query["versionId"], headers, out)
        if rec.kind in ("HEAD", "HEAD_COND", "GET"):
            return self._object(method, key, headers, out)
        if rec.kind == "TAGGING":
            return self._tagging(key, out)
        raise _Reject(405, "MethodNotAllowed", "The specified method is not allowed.")

    def _create_session(self, out: list[tuple[str, str]]) -> tuple[int, list[tuple[str, str]], bytes]:
        now = int(time.time())
        s = _Session("S3SESSION" + secrets.token_hex(6).upper(), secrets.token_urlsafe(30),
                     "SessionToken/" + secrets.token_urlsafe(40), now + self.session_lifetime)
        with self._lock:
            self.sessions[s.access_key] = s
        exp = dt.datetime.fromtimestamp(s.expires, _UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<CreateSessionResult '
                'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Credentials>'
                f"<SessionToken>{escape(s.token)}</SessionToken>"
                f"<SecretAccessKey>{escape(s.secret_key)}</SecretAccessKey>"
                f"<AccessKeyId>{s.access_key}</AccessKeyId><Expiration>{exp}</Expiration>"
                "</Credentials></CreateSessionResult>")
        # Date from the same clock reading as Expiration (the client measures
        # the lifetime between the two).
        return 200, out + [("content-type", "application/xml"),
                           ("date", email.utils.formatdate(now, usegmt=True))], body.encode()

    def _object_version(self, method: str, key: str, vid: str, headers: dict[str, str],
                        out: list[tuple[str, str]]) -> tuple[int, list[tuple[str, str]], bytes]:
        """HEAD/GET ``?versionId=``: that version's headers and bytes.

        A delete marker's version answers as each vendor documents: COS 404;
        OSS 405 ``MethodNotAllowed``, as S3 does; OBS, which documents no
        answer, the S3 one (405).  A version id the key never had: 404
        ``NoSuchVersion``.
        """
        with self._lock:
            found = next((v for v in self.history_of.get(key, []) if v.version_id == vid), None)
        if found is None:
            raise _Reject(404, "NoSuchVersion", "The specified version does not exist.")
        if found.obj is None:
            marker = [(self.version_header.replace("version-id", "delete-marker"), "true"),
                      (self.version_header, vid)]
            if self.dialect == "cos":
                raise _RejectWith(404, "NoSuchKey", "The specified key does not exist.", marker)
            raise _RejectWith(405, "MethodNotAllowed", "The specified method is not allowed "
                              "against this resource.", marker)
        return self._answer(method, found.obj, headers, out)

    def _object(self, method: str, key: str, headers: dict[str, str], out: list[tuple[str, str]]
                ) -> tuple[int, list[tuple[str, str]], bytes]:
        if key in self.delete_markers:
            # COS (and S3): the latest version is a delete marker -> 404.
            p = {"cos": "x-cos-", "oss": "x-oss-", "obs": "x-obs-", "s3express": "x-amz-"}[self.dialect]
            raise _RejectWith(404, "NoSuchKey", "The specified key does not exist.",
                              [(p + "delete-marker", "true")])
        if key in self.denied:
            raise _Reject(403, "AccessDenied", "You have no right to access this object.")
        with self._lock:
            obj = self.objects.get(key)
        if obj is None:
            raise _Reject(404, "NoSuchKey", "The specified key does not exist.")
        return self._answer(method, obj, headers, out)

    def _answer(self, method: str, obj: FakeObject, headers: dict[str, str],
                out: list[tuple[str, str]]) -> tuple[int, list[tuple[str, str]], bytes]:
        meta = [("etag", obj.etag), ("last-modified", email.utils.formatdate(obj.mtime, usegmt=True)),
                ("content-type", obj.headers.get("content-type", "application/octet-stream"))]
        meta += [(k, v) for k, v in obj.headers.items() if k != "content-type"]
        if obj.tags is not None and self.dialect in ("cos", "oss"):  # OBS sends no count
            meta.append((f"x-{self.dialect}-tagging-count", str(len(obj.tags))))
        if self.dialect == "s3express" and headers.get("x-amz-checksum-mode") == "ENABLED":
            meta.append(("x-amz-checksum-crc32", base64.b64encode(
                (crc64_xz(obj.body) & 0xFFFFFFFF).to_bytes(4, "big")).decode()))
        inm = headers.get("if-none-match")
        if inm is not None and inm == obj.etag:
            return 304, out + [("etag", obj.etag)], b""
        im = headers.get("if-match")
        if im is not None and im != obj.etag:
            raise _Reject(412, "PreconditionFailed",
                          "At least one of the pre-conditions you specified did not hold.")
        if method == "HEAD":
            return 200, out + meta + [("content-length", str(len(obj.body)))], b""
        rng = headers.get("range", "")
        if rng.startswith("bytes="):
            first, _, last = rng[6:].partition("-")
            a, b = int(first), min(int(last or len(obj.body) - 1), len(obj.body) - 1)
            if a >= len(obj.body):
                raise _Reject(416, "InvalidRange", "The requested range is not satisfiable")
            return 206, out + meta + [("content-range", f"bytes {a}-{b}/{len(obj.body)}")], obj.body[a:b + 1]
        return 200, out + meta, obj.body

    def _tagging(self, key: str, out: list[tuple[str, str]]) -> tuple[int, list[tuple[str, str]], bytes]:
        """GetObjectTagging: ``<Tagging><TagSet><Tag>…`` (OBS: with its namespace; no tags is
        404 ``NoSuchTagSet`` there, an empty ``TagSet`` elsewhere).  Directory buckets have none."""
        if self.dialect == "s3express":
            raise _Reject(501, "NotImplemented", "directory buckets do not support object tagging")
        with self._lock:
            obj = self.objects.get(key)
        if obj is None or key in self.delete_markers:
            raise _Reject(404, "NoSuchKey", "The specified key does not exist.")
        if key in self.tags_denied:
            raise _Reject(403, "AccessDenied", "You have no right to access this object's tags.")
        tags = obj.tags or {}
        if not tags and self.dialect == "obs":
            raise _Reject(404, "NoSuchTagSet", "The TagSet does not exist.")
        xmlns = (' xmlns="http://obs.cn-north-4.myhuaweicloud.com/doc/2015-06-30/"'
                 if self.dialect == "obs" else "")
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Tagging{xmlns}><TagSet>'
                + "".join(f"<Tag><Key>{escape(k)}</Key><Value>{escape(v)}</Value></Tag>"
                          for k, v in tags.items())
                + "</TagSet></Tagging>")
        return 200, out + [("content-type", "application/xml")], body.encode()

    def _encode(self, s: str) -> str:
        # How each vendor URL-encodes listed keys, as its SDK's decoder expects:
        # COS and OSS are decoded with unquote ('+' stays '+'; the fake COS leaves
        # '+' unescaped to prove it), OBS and S3 with unquote_plus.
        if self.dialect == "cos":
            return quote(s, safe="/+")
        if self.dialect == "oss":
            return quote(s, safe="/")
        return quote_plus(s, safe="/")

    def _list(self, query: dict[str, str]) -> bytes:
        prefix = query.get("prefix", "")
        delimiter = query.get("delimiter", "")
        max_keys = min(int(query.get("max-keys", "1000")), self.page_size)
        v2 = query.get("list-type") == "2"
        if v2 != (self.dialect in ("oss", "s3express")):
            # COS/OBS are listed with V1 here; OSS and directory buckets with V2.
            raise _Reject(400, "InvalidArgument",
                          f"this fake serves {'V2' if not v2 else 'V1'} listings only")
        with self._lock:
            keys = sorted(k for k in self.objects if k.startswith(prefix) and k not in self.delete_markers)
            objects = dict(self.objects)
        entries: list[tuple[str, bool]] = []  # (name, is_prefix), deduplicated, in key order
        for k in keys:
            rest = k[len(prefix):]
            if delimiter and delimiter in rest:
                cp = prefix + rest.split(delimiter, 1)[0] + delimiter
                if not entries or entries[-1] != (cp, True):
                    entries.append((cp, True))
            else:
                entries.append((k, False))
        if self.dialect == "s3express":
            # Directory buckets: not lexicographic.  A stable scramble, paged by offset.
            entries.sort(key=lambda e: hashlib.sha1(e[0].encode()).hexdigest())
            start = int(base64.urlsafe_b64decode(query["continuation-token"]).decode()) \
                if query.get("continuation-token") else 0
            page, nxt = entries[start:start + max_keys], start + max_keys
            truncated = nxt < len(entries)
            token = base64.urlsafe_b64encode(str(nxt).encode()).decode() if truncated else None
        else:
            after = query.get("marker", "")
            if v2 and query.get("continuation-token"):
                after = base64.urlsafe_b64decode(query["continuation-token"]).decode()
            rest_entries = [e for e in entries if e[0] > after]
            page = rest_entries[:max_keys]
            truncated = len(rest_entries) > max_keys
            token = page[-1][0] if truncated and page else None
        enc = self._encode if query.get("encoding-type") == "url" else (lambda s: s)
        x = ['<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult '
             'xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
             f"<Name>{self.bucket}</Name><Prefix>{escape(enc(prefix))}</Prefix>",
             f"<MaxKeys>{max_keys}</MaxKeys>"]
        if delimiter:
            x.append(f"<Delimiter>{escape(enc(delimiter))}</Delimiter>")
        if query.get("encoding-type") == "url":
            x.append("<EncodingType>url</EncodingType>")
        x.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
        if v2:
            x.append(f"<KeyCount>{len(page)}</KeyCount>")
            if token:
                if self.dialect != "s3express":
                    token = base64.urlsafe_b64encode(token.encode()).decode()
                x.append(f"<NextContinuationToken>{token}</NextContinuationToken>")
        else:
            x.append(f"<Marker>{escape(enc(query.get('marker', '')))}</Marker>")
            # COS always names the next marker; OBS, like S3 V1, only with a delimiter.
            if token and (self.dialect == "cos" or delimiter):
                x.append(f"<NextMarker>{escape(enc(token))}</NextMarker>")
        for name, is_prefix in page:
            if is_prefix:
                x.append(f"<CommonPrefixes><Prefix>{escape(enc(name))}</Prefix></CommonPrefixes>")
                continue
            o = objects[name]
            lm = dt.datetime.fromtimestamp(o.mtime, _UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            sc = {"cos": o.headers.get("x-cos-storage-class", "STANDARD"),
                  "oss": o.headers.get("x-oss-storage-class", "Standard"),
                  "obs": o.headers.get("x-obs-storage-class", "STANDARD"),
                  "s3express": "EXPRESS_ONEZONE"}[self.dialect]
            x.append(f"<Contents><Key>{escape(enc(name))}</Key><LastModified>{lm}</LastModified>"
                     f"<ETag>{escape(o.etag)}</ETag><Size>{len(o.body)}</Size>"
                     f"<StorageClass>{sc}</StorageClass></Contents>")
        x.append("</ListBucketResult>")
        return "".join(x).encode()

    def _list_versions(self, query: dict[str, str]) -> bytes:
        """``GET /?versions``: every key's history, newest first, paged by key-marker and
        version-id-marker, in the vendor's wire form (element names are S3's on all four).

        The vendors' documented quirks are enforced: OBS refuses an empty
        ``version-id-marker`` (400); OSS signs value-less parameters as bare
        names, so none but ``versions`` is sent; COS's version-id-marker may be empty.
        """
        if self.dialect == "s3express":
            raise _Reject(405, "MethodNotAllowed", "directory buckets keep no versions")
        if self.dialect == "obs" and query.get("version-id-marker") == "":
            raise _Reject(400, "InvalidArgument", "version-id-marker must not be empty")
        prefix = query.get("prefix", "")
        delimiter = query.get("delimiter", "")
        max_keys = min(int(query.get("max-keys", "1000")), self.page_size)
        km, vm = query.get("key-marker", ""), query.get("version-id-marker", "")
        with self._lock:
            keys = sorted(k for k in self.history_of if k.startswith(prefix))
            hist = {k: list(reversed(self.history_of[k])) for k in keys}
        # (sort key, key or prefix, version or None), in the server's order
        entries: list[tuple[str, FakeVersion | None]] = []
        for k in keys:
            rest = k[len(prefix):]
            if delimiter and delimiter in rest:
                cp = prefix + rest.split(delimiter, 1)[0] + delimiter
                if not entries or entries[-1] != (cp, None):
                    entries.append((cp, None))
                continue
            entries += [(k, v) for v in hist[k]]
        start = 0
        if km:
            if vm:  # just after that version of that key
                start = next((i + 1 for i, (n, v) in enumerate(entries)
                              if n == km and v is not None and v.version_id == vm), len(entries))
            else:  # after every entry of that key or prefix
                start = next((i for i, (n, _) in enumerate(entries) if n > km), len(entries))
        page = entries[start:start + max_keys]
        truncated = start + max_keys < len(entries)
        enc = self._encode if query.get("encoding-type") == "url" else (lambda s: s)
        # OSS answers without the S3 namespace (its SDK reads un-namespaced elements).
        ns = "" if self.dialect == "oss" else ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
        x = [f'<?xml version="1.0" encoding="UTF-8"?>\n<ListVersionsResult{ns}>',
             f"<Name>{self.bucket}</Name><Prefix>{escape(enc(prefix))}</Prefix>",
             f"<KeyMarker>{escape(enc(km))}</KeyMarker><VersionIdMarker>{escape(vm)}</VersionIdMarker>",
             f"<MaxKeys>{max_keys}</MaxKeys>"]
        if delimiter:
            x.append(f"<Delimiter>{escape(enc(delimiter))}</Delimiter>")
        if query.get("encoding-type") == "url":
            x.append("<EncodingType>url</EncodingType>")
        x.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
        if truncated and page:
            last_name, last_v = page[-1]
            x.append(f"<NextKeyMarker>{escape(enc(last_name))}</NextKeyMarker>")
            x.append(f"<NextVersionIdMarker>{escape(last_v.version_id if last_v else '')}"
                     "</NextVersionIdMarker>")
        owner = "<Owner><ID>1250000000</ID><DisplayName>1250000000</DisplayName></Owner>"
        for name, v in page:
            if v is None:
                x.append(f"<CommonPrefixes><Prefix>{escape(enc(name))}</Prefix></CommonPrefixes>")
                continue
            latest = hist[name][0] is v
            lm = dt.datetime.fromtimestamp(v.stamp_ms / 1000, _UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.") + f"{v.stamp_ms % 1000:03d}Z"
            common = (f"<Key>{escape(enc(name))}</Key><VersionId>{escape(v.version_id)}</VersionId>"
                      f"<IsLatest>{'true' if latest else 'false'}</IsLatest>"
                      f"<LastModified>{lm}</LastModified>")
            if v.obj is None:
                x.append(f"<DeleteMarker>{common}{owner}</DeleteMarker>")
                continue
            sc = {"cos": "STANDARD", "oss": "Standard", "obs": "STANDARD"}[self.dialect]
            typ = "<Type>Normal</Type>" if self.dialect == "oss" else ""
            x.append(f"<Version>{common}<ETag>{escape(v.obj.etag)}</ETag>"
                     f"<Size>{len(v.obj.body)}</Size><StorageClass>{sc}</StorageClass>{typ}"
                     f"{owner}</Version>")
        x.append("</ListVersionsResult>")
        return "".join(x).encode()

    # -- errors ------------------------------------------------------------------
    def _error(self, e: _Reject, method: str, host: str) -> tuple[int, list[tuple[str, str]], bytes]:
        out = self._request_id() + getattr(e, "extra_headers", [])
        rid = out[0][1]
        fields = [("Code", e.code), ("Message", e.message), ("RequestId", rid)]
        if self.dialect == "cos":
            fields += [("Resource", host), ("TraceId", rid + "trace")]
        elif self.dialect == "oss":
            fields += [("HostId", host), ("EC", "0003-00000001")]
        else:
            fields += [("HostId", rid + "host")]
        doc = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
               + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields) + "</Error>").encode()
        if method == "HEAD":
            # HEAD answers have no body; OSS puts the document in x-oss-err.
            if self.dialect == "oss":
                out += [("x-oss-err", base64.b64encode(doc).decode()), ("x-oss-ec", "0003-00000001")]
            return e.status, out, b""
        return e.status, out + [("content-type", "application/xml")], doc


class _RejectWith(_Reject):
    """A rejection that carries extra response headers (e.g. a delete marker's)."""

    def __init__(self, status: int, code: str, message: str, extra_headers: list[tuple[str, str]]) -> None:
        super().__init__(status, code, message)
        self.extra_headers = extra_headers


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_ref: VendorServer

    def log_message(self, *args: Any) -> None:  # one line per request drowns test output
        pass

    def _any(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = int(headers.get("content-length", "0") or 0)
        if length:
            self.rfile.read(length)
        try:
            status, out, body = self.server_ref.handle(self.command, self.path, headers)
        except Exception:  # noqa: BLE001 - a bug in the fake: a 500 the test will notice, not a hang
            import traceback
            traceback.print_exc()
            status, out, body = 500, [], b""
        self.send_response_only(status)
        names = {k.lower() for k, _ in out}
        if "date" not in names:
            self.send_header("Date", self.date_time_string())
        self.send_header("Server", {"cos": "tencent-cos", "oss": "AliyunOSS", "obs": "OBS",
                                    "s3express": "AmazonS3"}[self.server_ref.dialect])
        for k, v in out:
            self.send_header(k, v)
        if self.command == "HEAD" or status == 304:
            if "content-length" not in names:
                self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _any

"""A real S3 server on loopback (moto's server mode) that counts requests.

Used by the test suite, by ``scripts/demo.py`` and by the benchmark, so
that every number quoted anywhere comes from the same instrument.  It is a
development tool, not part of the filesystem: nothing else in ``metafs``
imports it.  The server needs the ``server`` extra (moto, boto3:
``pip install -e '.[server]'``); moto is imported when a server is made, so
this module imports without it and :class:`CountingS3Server` raises an
ImportError that names the extra.

The counting layer is WSGI middleware around moto's own application, not
a proxy process: each request is classified (LIST, HEAD, conditional HEAD,
HEAD Bucket, GET, write), recorded with the headers that matter, and can be
delayed (to emulate a network round trip) or failed (500s, a hang, or a
connection reset without an answer) for fault tests.  Listings can also be
made endless, the three ways a server can keep a client listing forever
(every LIST answered by the fault): ``list-no-token`` (truncated, no
continuation token or marker), ``list-repeated-token`` (truncated, the same
token every time) and ``list-empty-pages`` (truncated and empty, a new token
every time).  (werkzeug closes the connection after every response, so each
request also pays a loopback TCP connect: the same for every client.)
moto stores object tags (``GET ?tagging``, counted as TAGGING) but has no
S3 annotations (2026): this layer implements the four operations itself,
from botocore's service model (``PutObjectAnnotation``,
``GetObjectAnnotation``, ``ListObjectAnnotations`` paged by
``continuation-token``, ``DeleteObjectAnnotation``; the names, sizes,
count and UTF-8 rules and error codes of metadata-channels.md §1), kept in
memory per object version, the object's existence asked of moto by a HEAD
of its own (not recorded).  ``tests/test_devserver.py`` proves the wire
format by round-tripping boto3's own calls.  Counted kinds: ANNOTATIONS
(a listing page), ANNOTATION (one payload); writes are WRITE.
Other processes (s3fs, rclone, the benchmark) reach the same
controls over HTTP under ``/__counter__/``::

    GET  /__counter__/stats            -> {"LIST": 2, "HEAD": 0, ...}
    POST /__counter__/reset            -> clears counts and the request log
    POST /__counter__/config?delay_ms=20&fault=500|hang|reset|list-no-token|...|none

Run standalone: ``python -m metafs.devserver --port 9000``.
"""

from __future__ import annotations

import argparse
import base64
import collections
import dataclasses
import email.utils
import hashlib
import io
import json
import os
import re
import socket
import struct
import threading
import time
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode
from wsgiref.types import StartResponse, WSGIEnvironment
from xml.sax.saxutils import escape

if TYPE_CHECKING:
    from _typeshed import OptExcInfo  # StartResponse's exc_info; _typeshed exists only for checkers

# moto reads its settings at import; keep it off any network but loopback
# and make sure nothing in this process looks for instance metadata.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")


def _moto_server(host: str, port: int, app: Callable[..., Iterable[bytes]]) -> tuple[Any, Any]:
    """moto's S3 WSGI application, and a threaded werkzeug server for ``app`` around it.

    moto (the ``server`` extra) is imported here, not with this module.
    """
    try:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server
    except ImportError as e:
        raise ImportError(f"metafs.devserver needs the 'server' extra (moto): "
                          f"pip install -e '.[server]' ({e})") from e

    class QuietHandler(MotoRequestHandler):
        # werkzeug's WSGIRequestHandler.log_request, silenced: one line per request drowns output.
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass

        def connection_dropped(self, error: BaseException, environ: WSGIEnvironment | None = None
                               ) -> None:
            # werkzeug calls this, silently, for a ConnectionError the application
            # raises.  An injected reset ends the connection with RST and no answer:
            # SO_LINGER 0 makes the close abortive, and the descriptor really closes
            # when werkzeug closes its reader and writer, before socketserver's
            # shutdown(SHUT_WR) could send a FIN (which then fails quietly).
            if isinstance(error, InjectedReset):
                self.close_connection = True
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()

    moto_app = DomainDispatcherApplication(create_backend_app)
    return moto_app, make_server(host, port, app, threaded=True, request_handler=QuietHandler)


class InjectedReset(ConnectionResetError):
    """Raised by the application to make the handler reset the connection (fault "reset")."""


KINDS = ("LIST", "HEAD", "HEAD_COND", "HEAD_BUCKET", "GET", "OTHER", "WRITE", "TAGGING",
         "ANNOTATIONS", "ANNOTATION")
LIST_FAULTS = ("list-no-token", "list-repeated-token", "list-empty-pages")


@dataclasses.dataclass
class Record:
    """One request as the server saw it."""

    kind: str
    method: str
    path: str  # decoded path, e.g. /bucket/key
    query: dict[str, str]
    headers: dict[str, str]  # lowercase names, only those tests look at
    status: int = 0
    started: float = 0.0  # time.monotonic() when the request arrived
    finished: float = 0.0  # ... and when its answer began


_KEPT_HEADERS = ("if-none-match", "if-match", "if-modified-since", "range", "authorization", "host",
                 "x-amz-security-token", "x-amz-request-payer", "x-amz-expected-bucket-owner",
                 "x-amz-checksum-mode")

OWNER = "123456789012"  # moto's default account: the owner of every bucket here
_ETAG_ELEMENT = re.compile(rb"<ETag>[^<]*</ETag>")


_LIST_V1_PARAMS = {"prefix", "delimiter", "marker", "max-keys", "encoding-type"}
# The versions listing (GET /?versions) is a LIST too.
_LIST_VERSIONS_PARAMS = _LIST_V1_PARAMS - {"marker"} | {"versions", "key-marker", "version-id-marker"}


def classify(method: str, path: str, query: dict[str, str], headers: dict[str, str]) -> str:
    """Name the S3 operation of a path-style request."""
    parts = path.lstrip("/").split("/", 1)
    has_key = len(parts) == 2 and parts[1] != ""
    if method in ("PUT", "POST", "DELETE"):
        return "WRITE"
    if method == "HEAD":
        if not has_key:
            return "HEAD_BUCKET"
        conditional = "if-none-match" in headers or "if-modified-since" in headers
        return "HEAD_COND" if conditional else "HEAD"
    if method == "GET":
        if has_key and "tagging" in query:
            return "TAGGING"
        if has_key and "annotation" in query:
            return "ANNOTATION" if "annotationName" in query else "ANNOTATIONS"
        if has_key:
            return "GET"
        if "list-type" in query or not (set(query) - _LIST_V1_PARAMS):
            return "LIST"
        if "versions" in query and not (set(query) - _LIST_VERSIONS_PARAMS):
            return "LIST"
    return "OTHER"


class CountingS3Server:
    """moto's S3 on 127.0.0.1, with a request log and fault injection."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self.records: list[Record] = []
        self.delay = 0.0
        self.fault: str | None = None  # None, "500", "hang", "reset" or one of LIST_FAULTS
        self._fault_pages = 0  # pages served by a listing fault: each empty page's new token
        self.hang_seconds = 30.0
        self._release = threading.Event()
        # What moto does not enforce, enforced here (reset with reset_policies()):
        self.requester_pays: set[str] = set()  # buckets refusing requests without x-amz-request-payer
        self.no_etags = False  # answer like a server that sends no ETag (HEAD, GET, listings)
        self.ignore_start_after = False  # list like a server that ignores start-after / marker
        self.annotations = AnnotationStore()
        self._app, self._server = _moto_server(host, port, self._wsgi)
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.socket.getsockname()[:2]  # = server_address, typed str, not str | bytes
        return f"http://{host}:{port}"

    def start(self) -> CountingS3Server:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        if self._thread:
            self._thread.join(5)

    # -- controls ------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self.records.clear()

    def reset_policies(self) -> None:
        """No requester-pays bucket, ETags sent: moto's own behaviour."""
        self.requester_pays = set()
        self.no_etags = False
        self.ignore_start_after = False

    def set_fault(self, fault: str | None, hang_seconds: float = 30.0) -> None:
        self.fault = fault
        self.hang_seconds = hang_seconds
        if fault is None:
            self._release.set()
        else:
            self._release.clear()

    def log(self, *kinds: str) -> list[Record]:
        with self._lock:
            return [r for r in self.records if not kinds or r.kind in kinds]

    def counts(self) -> dict[str, int]:
        with self._lock:
            c = collections.Counter(r.kind for r in self.records)
        return {k: c.get(k, 0) for k in KINDS}

    def enable_auth(self, on: bool) -> None:
        """Switch moto's signature and IAM checks on or off (process-global)."""
        from moto import settings
        from moto.core.authorization import ActionAuthenticatorMixin

        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0 if on else float("inf")
        ActionAuthenticatorMixin.request_count = 0

    # -- WSGI ----------------------------------------------------------
    def _control(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        action = environ["PATH_INFO"].rsplit("/", 1)[-1]
        q = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        body: Mapping[str, object]
        if action == "stats":
            body = self.counts()
        elif action == "reset":
            self.reset()
            body = {"ok": True}
        elif action == "config":
            if "delay_ms" in q:
                self.delay = float(q["delay_ms"]) / 1000.0
            if "fault" in q:
                self.set_fault(None if q["fault"] in ("", "none") else q["fault"],
                               float(q.get("hang_seconds", 30)))
            body = {"delay_ms": self.delay * 1000, "fault": self.fault}
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"unknown control"]
        data = json.dumps(body).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(data)))])
        return [data]

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path.startswith("/__counter__/"):
            return self._control(environ, start_response)
        method = environ["REQUEST_METHOD"]
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        headers = {
            h: environ[k]
            for h in _KEPT_HEADERS
            if (k := "HTTP_" + h.upper().replace("-", "_")) in environ
        }
        decoded = unquote(path) if "%" in path else path
        rec = Record(classify(method, decoded, query, headers), method, decoded, query, headers,
                     started=time.monotonic())
        if not path.startswith("/moto-api"):
            with self._lock:
                self.records.append(rec)
        if self.delay:
            time.sleep(self.delay)
        if self.fault == "hang" and rec.kind != "WRITE":
            self._release.wait(self.hang_seconds)
        if self.fault == "reset" and rec.kind != "WRITE":
            rec.finished = time.monotonic()  # status 0: no answer
            raise InjectedReset("metafs.devserver: injected connection reset")
        if self.fault == "500" and rec.kind != "WRITE":
            body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
                    b"<Message>We encountered an internal error. Please try again.</Message></Error>")
            rec.status, rec.finished = 500, time.monotonic()
            start_response("500 Internal Server Error",
                           [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
            return [] if method == "HEAD" else [body]
        if self.fault in LIST_FAULTS and rec.kind == "LIST":
            body = self._endless_listing(self.fault, query)
            rec.status, rec.finished = 200, time.monotonic()
            start_response("200 OK", [("Content-Type", "application/xml"),
                                      ("Content-Length", str(len(body)))])
            return [body]

        refusal = self._policy_refusal(rec, environ)
        if refusal is not None:
            rec.status, rec.finished = 403, time.monotonic()
            body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                    b"<Message>" + refusal.encode() + b"</Message></Error>")
            start_response("403 Forbidden", [("Content-Type", "application/xml"),
                                              ("Content-Length", str(len(body)))])
            return [] if method == "HEAD" else [body]

        def recording_start_response(status: str, hdrs: list[tuple[str, str]],
                                     exc_info: OptExcInfo | None = None) -> Callable[[bytes], object]:
            rec.status, rec.finished = int(status.split(" ", 1)[0]), time.monotonic()
            return start_response(status, hdrs, exc_info) if exc_info else start_response(status, hdrs)

        if "annotation" in query and rec.kind != "HEAD_BUCKET" and "/" in decoded.lstrip("/"):
            return self._annotation(environ, method, decoded, query, recording_start_response)
        if self.no_etags and rec.kind != "WRITE":
            return self._without_etags(environ, recording_start_response)
        if self.ignore_start_after and rec.kind == "LIST" and "continuation-token" not in query:
            environ["QUERY_STRING"] = urlencode(
                [(k, v) for k, v in query.items() if k not in ("start-after", "marker")])
        answer: Iterable[bytes] = self._app(environ, recording_start_response)
        return answer

    # -- S3 annotations (not in moto) -----------------------------------------------
    def _object_version(self, environ: WSGIEnvironment, version_id: str | None) -> str | None:
        """The version id of the object the request names ("null" if unversioned), None if absent.

        Asked of moto by a HEAD of our own, not recorded.
        """
        env = {k: v for k, v in environ.items()
               if k not in ("CONTENT_LENGTH", "CONTENT_TYPE", "HTTP_CONTENT_ENCODING",
                            "HTTP_CONTENT_MD5") and not k.startswith("HTTP_X_AMZ_CHECKSUM")}
        env.update({"REQUEST_METHOD": "HEAD", "wsgi.input": io.BytesIO(b""),
                    "QUERY_STRING": f"versionId={quote(version_id)}" if version_id else ""})
        seen: dict[str, Any] = {}

        def start(status: str, hdrs: list[tuple[str, str]],
                  exc_info: OptExcInfo | None = None) -> Callable[[bytes], object]:
            seen["status"], seen["headers"] = int(status.split(" ", 1)[0]), dict(
                (k.lower(), v) for k, v in hdrs)
            return lambda _b: None

        for _chunk in self._app(env, start):
            pass
        if seen.get("status") != 200:
            return None
        return str(seen["headers"].get("x-amz-version-id", "null"))

    def _annotation(self, environ: WSGIEnvironment, method: str, path: str, query: dict[str, str],
                    start_response: StartResponse) -> Iterable[bytes]:
        version_id = query.get("versionId")
        found = self._object_version(environ, version_id)
        if found is None:
            status, headers, body = _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        else:
            obj = (path, found)
            payload = b""
            if method == "PUT":
                payload = _read_body(environ)
            status, headers, body = self.annotations.serve(method, obj, query, payload,
                                                           environ.get("HTTP_X_AMZ_CHECKSUM_MODE"))
            if found != "null":
                headers.append(("x-amz-object-version-id", found))
        headers.append(("Content-Length", str(len(body))))
        start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
        return [body]

    def _policy_refusal(self, rec: Record, environ: WSGIEnvironment) -> str | None:
        """Why AWS would refuse ``rec`` when moto does not: requester pays, expected owner."""
        if rec.kind == "WRITE" or rec.path.startswith("/moto-api"):
            return None
        bucket = rec.path.lstrip("/").split("/", 1)[0]
        if bucket in self.requester_pays and rec.headers.get("x-amz-request-payer") != "requester":
            return "Access Denied"  # AWS's answer to a requester-pays bucket asked without the header
        owner = rec.headers.get("x-amz-expected-bucket-owner")
        if owner is not None and owner != OWNER:
            return "Access Denied"  # AWS's answer to an expected-owner mismatch
        return None

    def _without_etags(self, environ: WSGIEnvironment, start_response: StartResponse
                       ) -> Iterable[bytes]:
        """moto's answer with every ETag header and listing <ETag> element removed."""
        got: list[tuple[str, list[tuple[str, str]]]] = []

        def keep(status: str, hdrs: list[tuple[str, str]],
                 exc_info: OptExcInfo | None = None) -> Callable[[bytes], object]:
            got.append((status, hdrs))
            return lambda data: None

        body = b"".join(self._app(environ, keep))
        status, hdrs = got[-1]
        if environ["REQUEST_METHOD"] == "GET" and b"<ListBucketResult" in body[:400]:
            body = _ETAG_ELEMENT.sub(b"", body)
        hdrs = [(k, v) for k, v in hdrs if k.lower() != "etag"]
        if environ["REQUEST_METHOD"] != "HEAD":
            hdrs = [(k, v) for k, v in hdrs if k.lower() != "content-length"]
            hdrs.append(("Content-Length", str(len(body))))
        start_response(status, hdrs)
        return [body]

    def _endless_listing(self, fault: str, query: dict[str, str]) -> bytes:
        """A listing page that says more follows, in the way ``fault`` names (see the module docstring).

        ListObjectsV2 (``list-type=2``) goes on by NextContinuationToken, V1 by NextMarker.
        """
        with self._lock:
            self._fault_pages += 1
            n = self._fault_pages
        prefix = query.get("prefix", "")
        tag = "NextContinuationToken" if query.get("list-type") == "2" else "NextMarker"
        contents, token = "", None
        if fault == "list-empty-pages":
            token = f"{prefix}empty-{n}"
        else:
            contents = (f"<Contents><Key>{quote(prefix)}looping</Key>"
                        "<LastModified>2020-12-10T03:37:30.000Z</LastModified>"
                        '<ETag>"e"</ETag><Size>1</Size></Contents>')
            token = f"{prefix}looping" if fault == "list-repeated-token" else None
        more = f"<{tag}>{quote(token)}</{tag}>" if token else ""
        return ('<?xml version="1.0" encoding="UTF-8"?>'
                '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<Prefix>{quote(prefix)}</Prefix><EncodingType>url</EncodingType>"
                f"<IsTruncated>true</IsTruncated>{more}{contents}</ListBucketResult>").encode()


_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found",
            415: "Unsupported Media Type"}
ANNOTATION_NAME_MAX = 512  # bytes of UTF-8
ANNOTATION_PAYLOAD_MAX = 1024 * 1024
ANNOTATIONS_MAX = 1000  # per object version
_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"


def _s3_error(status: int, code: str, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error>").encode()
    return status, [("Content-Type", "application/xml")], body


def _read_body(environ: WSGIEnvironment) -> bytes:
    """The request body, decoded from ``aws-chunked`` (how botocore sends PUT payloads)."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw: bytes = environ["wsgi.input"].read(length) if length else b""
    if "aws-chunked" not in environ.get("HTTP_CONTENT_ENCODING", ""):
        return raw
    out, pos = bytearray(), 0
    while True:
        eol = raw.index(b"\r\n", pos)
        size = int(raw[pos:eol].split(b";", 1)[0], 16)
        if size == 0:
            break  # trailers (checksums) follow; not needed here
        out += raw[eol + 2:eol + 2 + size]
        pos = eol + 2 + size + 2
    return bytes(out)


def _valid_annotation_name(name: str) -> bool:
    """Unicode letters, digits, ``_ . -``; not beginning with ``aws`` or ``s3`` (any case)."""
    return (bool(name) and not name.lower().startswith(("aws", "s3"))
            and all(c in "_.-" or unicodedata.category(c)[0] in "LN" for c in name))


@dataclasses.dataclass
class _Annotation:
    payload: bytes
    etag: str  # quoted
    mtime: float


class AnnotationStore:
    """The four annotation operations over an in-memory store, per (path, version id)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str], dict[str, _Annotation]] = {}

    def serve(self, method: str, obj: tuple[str, str], query: dict[str, str], payload: bytes,
              checksum_mode: str | None) -> tuple[int, list[tuple[str, str]], bytes]:
        name = query.get("annotationName")
        with self._lock:
            anns = self._objects.setdefault(obj, {})
            if method == "GET" and name is None:
                return self._list(obj, anns, query)
            if name is None:
                return _s3_error(400, "InvalidRequest", "annotationName is required")
            if method == "GET":
                a = anns.get(name)
                if a is None:
                    return _s3_error(404, "NoSuchAnnotation", "The specified annotation does not exist.")
                headers = [("ETag", a.etag), ("Last-Modified", email.utils.formatdate(a.mtime, usegmt=True)),
                           ("Content-Type", "application/octet-stream")]
                if checksum_mode == "ENABLED":
                    crc = zlib.crc32(a.payload).to_bytes(4, "big")
                    headers += [("x-amz-checksum-crc32", base64.b64encode(crc).decode()),
                                ("x-amz-checksum-type", "FULL_OBJECT")]
                return 200, headers, a.payload
            if method == "DELETE":
                anns.pop(name, None)
                return 204, [], b""
            if method != "PUT":
                return _s3_error(405, "MethodNotAllowed", "The specified method is not allowed.")
            if len(name.encode()) > ANNOTATION_NAME_MAX:
                return _s3_error(400, "AnnotationNameTooLong",
                                 f"annotation names are at most {ANNOTATION_NAME_MAX} bytes")
            if not _valid_annotation_name(name):
                return _s3_error(400, "InvalidAnnotationName", "The annotation name is not valid.")
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError:
                return _s3_error(415, "UnsupportedMediaType", "Annotation payloads must be UTF-8 text.")
            if not 1 <= len(payload) <= ANNOTATION_PAYLOAD_MAX:
                return _s3_error(400, "InvalidRequest",
                                 f"annotation payloads are 1 to {ANNOTATION_PAYLOAD_MAX} bytes")
            if name not in anns and len(anns) >= ANNOTATIONS_MAX:
                return _s3_error(400, "AnnotationLimitExceeded",
                                 f"an object version has at most {ANNOTATIONS_MAX} annotations")
            a = _Annotation(payload, f'"{hashlib.md5(payload).hexdigest()}"', time.time())
            anns[name] = a
            body = (f'<?xml version="1.0" encoding="UTF-8"?><PutObjectAnnotationResult xmlns="{_XMLNS}">'
                    f"<Key>{escape(obj[0].lstrip('/').split('/', 1)[1])}</Key>"
                    f"<AnnotationName>{escape(name)}</AnnotationName></PutObjectAnnotationResult>")
            return 200, [("ETag", a.etag), ("Content-Type", "application/xml")], body.encode()

    def _list(self, obj: tuple[str, str], anns: dict[str, _Annotation], query: dict[str, str]
              ) -> tuple[int, list[tuple[str, str]], bytes]:
        prefix = query.get("annotation-prefix", "")
        try:
            limit = int(query.get("max-annotation-results", "1000"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            return _s3_error(400, "InvalidArgument", "max-annotation-results must be 1 to 1000")
        token = query.get("continuation-token")
        after = base64.urlsafe_b64decode(token.encode()).decode() if token else None
        names = sorted(n for n in anns if n.startswith(prefix) and (after is None or n > after))
        page, more = names[:limit], len(names) > limit
        bucket, _, key = obj[0].lstrip("/").partition("/")
        x = [f'<?xml version="1.0" encoding="UTF-8"?><ListObjectAnnotationsResult xmlns="{_XMLNS}">',
             f"<Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key>"]
        if prefix:
            x.append(f"<AnnotationPrefix>{escape(prefix)}</AnnotationPrefix>")
        x.append(f"<MaxAnnotationResults>{limit}</MaxAnnotationResults>"
                 f"<AnnotationCount>{len(page)}</AnnotationCount>")
        if token:
            x.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
        if more:
            nxt = base64.urlsafe_b64encode(page[-1].encode()).decode()
            x.append(f"<NextContinuationToken>{nxt}</NextContinuationToken>")
        x.append("<Annotations>")
        for n in page:
            a = anns[n]
            lm = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(a.mtime)) + ".000Z"
            x.append(f"<AnnotationEntry><AnnotationName>{escape(n)}</AnnotationName>"
                     f"<LastModified>{lm}</LastModified><ETag>{escape(a.etag)}</ETag>"
                     f"<ChecksumAlgorithm>CRC32</ChecksumAlgorithm><Size>{len(a.payload)}</Size>"
                     "</AnnotationEntry>")
        x.append("</Annotations></ListObjectAnnotationsResult>")
        return 200, [("Content-Type", "application/xml")], "".join(x).encode()


def main() -> None:
    p = argparse.ArgumentParser(description="moto S3 on loopback, with request counting")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    args = p.parse_args()
    srv = CountingS3Server(args.host, args.port).start()
    print(f"listening on {srv.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()

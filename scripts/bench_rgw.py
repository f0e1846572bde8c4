"""Ceph RGW as the benchmark's S3 server (scripts/bench.py --server rgw).

:class:`RgwServer` has the interface bench.py uses of
:class:`metafs.devserver.CountingS3Server` (``url``, ``delay``, ``counts``,
``reset``, ``start``, ``stop``): a one-node RGW from
:mod:`metafs.devrgw`, behind a small HTTP/1.1 keep-alive proxy on
127.0.0.1 that counts each request by kind and adds ``delay`` seconds
before forwarding it (RGW itself has neither).  The proxy passes the Host
header through untouched, so SigV4 signatures made for the proxy's
address verify at RGW.  :func:`load` fills buckets through boto3, many
objects at once, straight to RGW (not counted, not delayed).
"""

from __future__ import annotations

import collections
import concurrent.futures
import http.client
import http.server
import threading
import time
from urllib.parse import urlsplit

from metafs.devrgw import CephRgw

KINDS = ("LIST", "HEAD", "HEAD_COND", "HEAD_BUCKET", "GET", "OTHER", "WRITE")
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}


def kind_of(method: str, path: str, conditional: bool) -> str:
    parts = urlsplit(path)
    key = parts.path.lstrip("/").partition("/")[2]
    if method in ("PUT", "POST", "DELETE"):
        return "WRITE"
    if method == "HEAD":
        if not key:
            return "HEAD_BUCKET"
        return "HEAD_COND" if conditional else "HEAD"
    if method == "GET":
        if not key:
            return "LIST" if "location" not in parts.query else "OTHER"
        return "GET"
    return "OTHER"


class RgwServer:
    """RGW plus a counting, delaying proxy (see the module docstring)."""

    def __init__(self) -> None:
        self.rgw = CephRgw()
        self.delay = 0.0
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()
        self._proxy: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._proxy is not None
        host, port = self._proxy.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def access_key(self) -> str:
        return self.rgw.access_key

    @property
    def secret_key(self) -> str:
        return self.rgw.secret_key

    def start(self) -> RgwServer:
        self.rgw.start()
        upstream = urlsplit(self.rgw.url)
        server = self
        local = threading.local()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _conn(self) -> http.client.HTTPConnection:
                c: http.client.HTTPConnection | None = getattr(local, "conn", None)
                if c is None:
                    c = local.conn = http.client.HTTPConnection(
                        upstream.hostname or "127.0.0.1", upstream.port, timeout=120)
                return c

            def _forward(self) -> None:
                with server._lock:
                    server._counts[kind_of(self.command, self.path,
                                                     bool(self.headers.get("if-none-match")))] += 1
                if server.delay:
                    time.sleep(server.delay)
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                for attempt in (0, 1):
                    c = self._conn()
                    try:
                        c.putrequest(self.command, self.path, skip_host=True,
                                     skip_accept_encoding=True)
                        for k, v in self.headers.items():
                            if k.lower() not in _HOP:
                                c.putheader(k, v)
                        c.endheaders(body)
                        r = c.getresponse()
                        data = r.read()
                        break
                    except (http.client.HTTPException, OSError):
                        c.close()
                        local.conn = None
                        if attempt:
                            raise
                self.send_response(r.status, r.reason)
                for k, v in r.getheaders():
                    if k.lower() not in _HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(
                    int(r.getheader("content-length") or 0) if self.command == "HEAD" else len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

        self._proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._proxy.daemon_threads = True
        self._thread = threading.Thread(target=self._proxy.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._proxy is not None:
            self._proxy.shutdown()
        self.rgw.stop()

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {k: self._counts.get(k, 0) for k in KINDS}


def load(rgw: CephRgw, data: dict[str, list[tuple[str, int, dict[str, str]]]],
         region: str) -> None:
    """Create the buckets and objects (boto3, 32 at a time, straight to RGW)."""
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=rgw.url, region_name=region,
                      aws_access_key_id=rgw.access_key, aws_secret_access_key=rgw.secret_key,
                      config=Config(max_pool_connections=32, s3={"addressing_style": "path"}))
    for bucket in data:
        s3.create_bucket(Bucket=bucket)

    def put(item: tuple[str, tuple[str, int, dict[str, str]]]) -> None:
        bucket, (key, size, meta) = item
        s3.put_object(Bucket=bucket, Key=key, Body=b"x" * size, ContentType="text/plain",
                      Metadata={k.removeprefix("x-amz-meta-"): v for k, v in meta.items()})

    items = [(b, o) for b, objs in data.items() for o in objs]
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        for _ in pool.map(put, items):
            pass

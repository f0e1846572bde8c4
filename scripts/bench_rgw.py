"""Ceph RGW as the benchmark's S3 server (scripts/bench.py --server rgw).

:class:`RgwServer` has the interface bench.py uses of
:class:`metafs.devserver.CountingS3Server` (``url``, ``delay``, ``counts``,
``reset``, ``start``, ``stop``): a one-node RGW from
:mod:`metafs.devrgw`, behind a small HTTP/1.1 keep-alive proxy on
127.0.0.1 that counts each request by kind and adds ``delay`` seconds
before forwarding it (RGW itself has neither).  The proxy passes the Host
header through untouched, so SigV4 signatures made for the proxy's
address verify at RGW.  :func:`load` fills buckets straight at RGW (not
counted, not delayed) with its own small SigV4 client, many PUTs at once.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import hashlib
import hmac
import http.client
import http.server
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from metafs.devrgw import CephRgw
from metafs.devserver import classify

KINDS = ("LIST", "HEAD", "HEAD_COND", "HEAD_BUCKET", "GET", "TAGGING", "ANNOTATIONS", "ANNOTATION",
         "OTHER", "WRITE")
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}


def kind_of(method: str, path: str, headers: Iterable[tuple[str, str]]) -> str:
    """The request's kind as metafs.devserver names it for moto (one vocabulary in every table)."""
    parts = urlsplit(path)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return classify(method, unquote(parts.path), query, {k.lower(): v for k, v in headers})


# Short PG logs: with Ceph's defaults (up to 300,000 log entries per OSD, kept in RAM by the
# memstore OSD) a memstore OSD grew by ~30 KB per object PUT (1.9 GB at 62,000 objects); with
# these, ~9 KB per zero-byte object, so the million objects of --million fit in ~9 GB.
OSD_CONFIG = """osd target pg log entries per osd = 3000
osd min pg log entries = 100
osd max pg log entries = 500
osd pg log dups tracked = 500
osd pg log trim min = 50"""


class RgwServer:
    """RGW plus a counting, delaying proxy (see the module docstring)."""

    def __init__(self, store_bytes: int = 1 << 31) -> None:
        # store_bytes: the memstore OSD's size (RAM, used only as written); 1M objects need more
        self.rgw = CephRgw(store_bytes=store_bytes, osd_config=OSD_CONFIG)
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
                    server._counts[kind_of(self.command, self.path, self.headers.items())] += 1
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
                try:
                    self.send_response(r.status, r.reason)
                    for k, v in r.getheaders():
                        if k.lower() not in _HOP and k.lower() != "content-length":
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(
                        int(r.getheader("content-length") or 0) if self.command == "HEAD" else len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client left (a mount stopped mid-request)

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
         region: str, concurrency: int = 48) -> float:
    """Create the buckets and objects straight at RGW (not counted, not delayed); returns seconds.

    PUTs go ``concurrency`` at a time over keep-alive connections, signed here
    (SigV4 with UNSIGNED-PAYLOAD, the signing key derived once): boto3 spends
    ~2 ms of client CPU per PUT, which made 100,000 objects a five-minute
    wait; this client spends ~0.1 ms, and RGW's own ~1.4 ms of CPU per PUT
    (gateway plus memstore OSD) is the bound (~1,100 PUTs/s on two idle cores).
    """
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=rgw.url, region_name=region,
                      aws_access_key_id=rgw.access_key, aws_secret_access_key=rgw.secret_key,
                      config=Config(s3={"addressing_style": "path"}))
    for bucket in data:
        s3.create_bucket(Bucket=bucket)
    items = ((b, o) for b, objs in data.items() for o in objs)
    t0 = time.perf_counter()
    asyncio.run(_put_all(rgw.port, rgw.access_key, rgw.secret_key, region, items, concurrency))
    return time.perf_counter() - t0


class _Signer:
    """SigV4 for path-style S3 requests with no query and an unsigned payload."""

    def __init__(self, access_key: str, secret_key: str, region: str, host: str) -> None:
        self.access_key, self.host = access_key, host
        self.amz_date = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        day = self.amz_date[:8]
        key = hmac.new(("AWS4" + secret_key).encode(), day.encode(), hashlib.sha256).digest()
        for part in (region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        self.key, self.scope = key, f"{day}/{region}/s3/aws4_request"

    def headers(self, method: str, path: str, extra: list[tuple[str, str]]) -> list[tuple[str, str]]:
        hdrs = sorted([("host", self.host), ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
                       ("x-amz-date", self.amz_date), *extra])
        signed = ";".join(h for h, _ in hdrs)
        canonical = "\n".join([method, path, "", *(f"{h}:{v}" for h, v in hdrs), "", signed,
                               "UNSIGNED-PAYLOAD"])
        to_sign = "\n".join(["AWS4-HMAC-SHA256", self.amz_date, self.scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        sig = hmac.new(self.key, to_sign.encode(), hashlib.sha256).hexdigest()
        return hdrs + [("authorization", f"AWS4-HMAC-SHA256 Credential={self.access_key}/{self.scope}, "
                                         f"SignedHeaders={signed}, Signature={sig}")]


async def _put_all(port: int, access_key: str, secret_key: str, region: str,
                   items: Iterator[tuple[str, tuple[str, int, dict[str, str]]]], concurrency: int) -> None:
    signer = _Signer(access_key, secret_key, region, f"127.0.0.1:{port}")
    failures: list[str] = []

    async def put(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, bucket: str, key: str,
                  size: int, meta: dict[str, str]) -> bytes:
        path = f"/{bucket}/" + quote(key, safe="/~")
        extra = [("content-type", "text/plain"), *((k.lower(), v) for k, v in meta.items())]
        head = "".join(f"{h}: {v}\r\n" for h, v in signer.headers("PUT", path, extra))
        writer.write(f"PUT {path} HTTP/1.1\r\n{head}content-length: {size}\r\n\r\n".encode()
                     + b"x" * size)
        answer = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in answer.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await reader.readexactly(length)
        return answer[9:12]

    done = 0

    async def worker() -> None:
        nonlocal done
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for bucket, (key, size, meta) in items:  # one shared iterator: each item once
            for attempt in range(3):
                try:
                    if conn is None:
                        conn = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
                    status = await asyncio.wait_for(put(*conn, bucket, key, size, meta), 60)
                    if status == b"200":
                        done += 1
                        if done % 100_000 == 0:
                            print(f"  RGW: {done:,} objects PUT", file=sys.stderr, flush=True)
                        break
                    failure = f"{key}: HTTP {status.decode(errors='replace')}"
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                        TimeoutError) as e:
                    failure = f"{key}: {e!r}"
                if conn is not None:
                    conn[1].close()
                    conn = None
                if attempt == 2:
                    failures.append(failure)
        if conn is not None:
            conn[1].close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if failures:
        raise RuntimeError(f"{len(failures)} PUTs failed, e.g. {failures[0]}")

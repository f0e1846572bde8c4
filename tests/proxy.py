"""A fault-injecting TCP proxy, for what only a byte stream can show.

The dev server (:mod:`metafs.devserver`) fails requests the WSGI way: a
status, a delay, a hang.  Some faults live below that, in the bytes of the
answer: a header value that is not UTF-8, bare LF line endings, a header
block of thousands of lines, a connection reset before or in the middle of
the answer, a body cut short.  :class:`FaultProxy` sits on 127.0.0.1 (a
port the OS chooses) in front of the dev server and produces them for the
requests a rule matches; everything else passes through unchanged::

    with FaultProxy(s3.url) as proxy:
        m = mount(bucket, endpoint=proxy.url)
        proxy.inject(add_headers(b"x-amz-meta-bad: \\xff"), when=is_head("f"))
        ...
        proxy.clear()  # back to a clean pass-through

Each client connection carries one request: the proxy reads it, forwards it
(so the dev server sees, counts and answers every request), reads the whole
answer, applies the first matching rule and sends the result, then closes.
The dev server (werkzeug) closes every connection after its answer and says
so (``Connection: close``), so clients expect no more on a connection anyway.

Bounded: every socket has a timeout, every thread is a daemon, ``stop()``
(or leaving the ``with`` block) closes the listener and every live
connection, and the proxy stops by itself after ``lifetime`` seconds even
if nobody calls it.  A plain module: tests import it, it holds no tests.
"""

from __future__ import annotations

import dataclasses
import socket
import struct
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, unquote, urlsplit

HEADER_END = b"\r\n\r\n"
IO_TIMEOUT = 30.0  # per socket operation; a test waits less than this for any answer


@dataclasses.dataclass(frozen=True)
class Request:
    """What a rule matches on: the request as the proxy read it."""

    method: str
    path: str  # decoded, e.g. /bucket/dir/key (path-style, as metafs addresses 127.0.0.1)
    query: dict[str, str]

    @property
    def key(self) -> str:
        """The object key of a path-style request ('' for bucket-level requests)."""
        parts = self.path.lstrip("/").split("/", 1)
        return parts[1] if len(parts) == 2 else ""


@dataclasses.dataclass(frozen=True)
class Answer:
    """An answer from upstream, split where the header block ends."""

    head: bytes  # status line and header lines, without the blank line that ends them
    body: bytes


# A fault turns the upstream answer into what the client gets: bytes to send,
# and how the connection ends ("close": FIN, "reset": RST).
Fault = Callable[[Answer], tuple[bytes, str]]
Match = Callable[[Request], bool]


# -- faults ---------------------------------------------------------------------------------

def rewrite_head(fn: Callable[[bytes], bytes]) -> Fault:
    """Send ``fn(header block)``, the blank line and the body as they are."""
    return lambda a: (fn(a.head) + HEADER_END + a.body, "close")


def add_headers(*lines: bytes) -> Fault:
    """Add raw header lines (any bytes) at the end of the header block."""
    return rewrite_head(lambda head: head + b"".join(b"\r\n" + ln for ln in lines))


def bare_lf(inner: Fault | None = None) -> Fault:
    """Every line of the header block (and the blank line) ends in LF alone."""
    def fault(a: Answer) -> tuple[bytes, str]:
        data, how = inner(a) if inner else (a.head + HEADER_END + a.body, "close")
        head, sep, body = data.partition(HEADER_END)
        return head.replace(b"\r\n", b"\n") + b"\n\n" + body if sep else data, how
    return fault


def many_headers(n: int) -> Fault:
    """Add ``n`` short user-metadata headers (10,000 make a block of ~230 KB)."""
    return add_headers(*(b"x-amz-meta-filler-%d: v" % i for i in range(n)))


def reset(at: str) -> Fault:
    """Reset the connection (RST) at ``at``: "before" any byte of the answer,
    "in-headers" (half the header block sent), or "in-body" (the header
    block and half the body sent)."""
    return _cut(at, "reset")


def truncate(at: str = "in-body") -> Fault:
    """Close the connection cleanly (FIN) at ``at`` (see :func:`reset`): a body cut short."""
    return _cut(at, "close")


def _cut(at: str, how: str) -> Fault:
    if at not in ("before", "in-headers", "in-body"):
        raise ValueError(f"unknown cut point {at!r}")

    def fault(a: Answer) -> tuple[bytes, str]:
        if at == "before":
            return b"", how
        if at == "in-headers":
            return a.head[:len(a.head) // 2], how
        return a.head + HEADER_END + a.body[:len(a.body) // 2], how
    return fault


# -- matches ----------------------------------------------------------------------------------

def is_head(key: str) -> Match:
    return lambda r: r.method == "HEAD" and r.key == key


def is_get(key: str) -> Match:
    return lambda r: r.method == "GET" and r.key == key


def is_listing(prefix: str) -> Match:
    """A delimiter listing of ``prefix`` (the listing of a directory, not a probe)."""
    return lambda r: (r.method == "GET" and r.key == "" and "delimiter" in r.query
                      and r.query.get("prefix", "") == prefix and "max-keys" not in r.query)


def is_flat_listing(prefix: str) -> Match:
    """A lookup probe's LIST of ``prefix`` (``name/``): the first flat page of its subtree."""
    return lambda r: (r.method == "GET" and r.key == "" and "delimiter" not in r.query
                      and r.query.get("prefix", "") == prefix and "max-keys" not in r.query)


# -- the proxy ----------------------------------------------------------------------------------

@dataclasses.dataclass
class Rule:
    fault: Fault
    when: Match
    times: int | None  # how many more requests it applies to; None: until cleared
    hits: int = 0


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream`` (``http://127.0.0.1:PORT``)."""

    def __init__(self, upstream: str, *, lifetime: float = 300.0) -> None:
        u = urlsplit(upstream)
        if u.hostname not in ("127.0.0.1", "localhost") or u.port is None:
            raise ValueError(f"the proxy only fronts a loopback server, not {upstream!r}")
        self._upstream = (u.hostname, u.port)
        self._lifetime = lifetime
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._live: set[socket.socket] = set()
        self._stop = threading.Event()
        self.requests: list[Request] = []  # every request the proxy read, in order
        self.errors: list[str] = []  # the proxy's own failures (a bad request, upstream down)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)  # so the accept loop sees stop() and the lifetime
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            live = list(self._live)
        for s in live:
            _close(s)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- controls --------------------------------------------------------------
    def inject(self, fault: Fault, *, when: Match, times: int | None = None) -> Rule:
        """Apply ``fault`` to the next ``times`` requests ``when`` matches (all, if None).

        Rules are tried in the order they were added; the first match wins.
        """
        rule = Rule(fault, when, times)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Stop injecting: every request passes through unchanged from now on."""
        with self._lock:
            self._rules.clear()

    def seen(self, when: Match) -> int:
        """How many requests the proxy has read that ``when`` matches."""
        with self._lock:
            return sum(1 for r in self.requests if when(r))

    # -- work --------------------------------------------------------------------
    def _accept_loop(self) -> None:
        deadline = time.monotonic() + self._lifetime
        with self._listener:
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    client, _ = self._listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    break
                threading.Thread(target=self._serve, args=(client,), daemon=True).start()
        self._stop.set()

    def _rule_for(self, req: Request) -> Rule | None:
        with self._lock:
            self.requests.append(req)
            for rule in self._rules:
                if (rule.times is None or rule.times > 0) and rule.when(req):
                    rule.hits += 1
                    if rule.times is not None:
                        rule.times -= 1
                    return rule
        return None

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        how = "close"
        try:
            client.settimeout(IO_TIMEOUT)
            self._track(client)
            raw_request = _read_message(client, method=None)
            if not raw_request:
                return
            req = _parse_request(raw_request)
            rule = self._rule_for(req)
            upstream = socket.create_connection(self._upstream, timeout=IO_TIMEOUT)
            self._track(upstream)
            upstream.sendall(_closing(raw_request))
            answer = _read_message(upstream, method=req.method)
            head, _, body = answer.partition(HEADER_END)
            data, how = (rule.fault(Answer(head, body)) if rule is not None
                         else (answer, "close"))
            if data:
                try:
                    client.sendall(data)
                except OSError:
                    pass  # the client hung up first (h11 stops reading an oversized header block)
        except Exception as e:  # noqa: BLE001 - kept for the test to see; a thread's traceback would fail the run
            if not self._stop.is_set():
                with self._lock:
                    self.errors.append(f"{type(e).__name__}: {e}")
        finally:
            if how == "reset":
                try:  # SO_LINGER with a zero timeout: close() sends RST, not FIN
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass  # already closed by stop()
            for s in (client, upstream):
                if s is not None:
                    _close(s)
                    with self._lock:
                        self._live.discard(s)

    def _track(self, s: socket.socket) -> None:
        with self._lock:
            self._live.add(s)
        if self._stop.is_set():
            raise OSError("the proxy is stopping")


def _close(s: socket.socket) -> None:
    try:
        s.close()
    except OSError:
        pass


def _parse_request(raw: bytes) -> Request:
    line = raw.split(b"\r\n", 1)[0].decode("latin-1")
    method, target, _ = line.split(" ", 2)
    path, _, qs = target.partition("?")
    return Request(method, unquote(path), dict(parse_qsl(qs, keep_blank_values=True)))


def _closing(raw: bytes) -> bytes:
    """The request with ``Connection: close``: an upstream that keeps connections open (Ceph
    RGW) then ends a body without a length (chunked) by closing, which is where we stop reading."""
    head, sep, body = raw.partition(HEADER_END)
    lines = [ln for ln in head.split(b"\r\n") if not ln.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"]) + sep + body


def _read_message(s: socket.socket, *, method: str | None) -> bytes:
    """One HTTP message from ``s``: its header block and its body.

    The body is ``Content-Length`` bytes (none for a HEAD answer, 204 or
    304), or everything up to EOF when no length is given; ``method`` is the
    request's, for an answer, and None for a request.
    """
    buf = b""
    while HEADER_END not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return buf
        buf += chunk
    head, _, body = buf.partition(HEADER_END)
    lines = head.split(b"\r\n")
    length: int | None = None
    for ln in lines[1:]:
        name, _, value = ln.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if method is None:  # a request: metafs sends bodies only with a length
        length = length or 0
    else:
        status = int(lines[0].split(b" ", 2)[1])
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            length = 0
    while length is None or len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + HEADER_END + body

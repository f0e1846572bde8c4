"""Every fault a server can throw at one request, through the FUSE handlers (no kernel).

The handlers run wired as :func:`metafs.mount.build` wires them
(:func:`tests.fakes.run_ops`), over :class:`tests.faults.Faults` around the
in-memory :class:`~tests.fakes.Bucket`, on trio's ``MockClock``: attempt
timeouts, backoff and ``Retry-After`` sleeps take no real time, and
``trio.current_time()`` measures them exactly.  Each case asserts the five
things that make "fail clearly, lose nothing" true:

* no crash: the handler raises ``FUSEError`` (the boundary's errno), never
  anything else, and logs no traceback;
* the errno, and one log line;
* the time bound;
* what is still served (with no request);
* recovery on the same mount, with the exact number of requests.
"""

from __future__ import annotations

import email.utils
import errno
import logging
import math
import time
from collections.abc import Awaitable
from typing import Any

import httpx
import pyfuse3
import pytest
import trio
from pyfuse3 import ROOT_INODE, FUSEError

from metafs.dirlist import MAX_EMPTY_PAGES, DirEntry
from metafs.fuse_ops import handler_bound
from metafs.s3.client import request_budget
from tests.fakes import Bucket, OpsEnv, listing, run, run_ops
from tests.faults import (
    EmptyTruncatedPages,
    Faults,
    Hang,
    MalformedBody,
    RepeatedPage,
    RepeatedToken,
    ResetBeforeAnswer,
    ResetMidBody,
    Status,
    TruncatedBody,
    TruncatedWithoutToken,
)

CTX: Any = None  # pyfuse3.RequestContext: the handlers never read it
TOKEN: Any = object()  # pyfuse3.ReaddirToken: passed through to readdir_reply untouched

ATTEMPTS = 3
T = 1.0  # attempt timeout
BUDGET = request_budget(ATTEMPTS, T, 0.2, 5.0)  # 3 + 0.2 + 0.4 = 3.6 s
BACKOFF = (0.1, 0.2)  # full jitter at rng 0.5: half of 0.2 s, then of 0.4 s


class Replies:
    """The kernel's side of readdir: ``readdir_reply`` takes everything, recorded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.got: list[tuple[bytes, int]] = []  # (name, next_id)
        monkeypatch.setattr(pyfuse3, "readdir_reply", self._reply)

    def _reply(self, token: Any, name: bytes, attrs: pyfuse3.EntryAttributes, next_id: int
               ) -> bool:
        assert token is TOKEN
        self.got.append((name, next_id))
        return True


async def ls(env: OpsEnv, replies: Replies, ino: int = ROOT_INODE) -> list[bytes]:
    """Read a directory to its end through one handle (as ``ls`` does), without . and .."""
    fh = await env.ops.opendir(ino, CTX)
    names: list[bytes] = []
    try:
        start = 0
        while True:
            before = len(replies.got)
            await env.ops.readdir(fh, start, TOKEN)
            new = replies.got[before:]
            if not new:
                return [n for n in names if n not in (b".", b"..")]
            names += [n for n, _ in new]
            start = new[-1][1]
    finally:
        await env.ops.releasedir(fh)


async def errno_of(aw: Awaitable[Any]) -> int:
    with pytest.raises(FUSEError) as ei:
        await aw
    return ei.value.errno


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info], "a handler failed unexpectedly"


def layout() -> Bucket:
    """f, g, h at the root; directories d (a, b) and e (c)."""
    b = Bucket()
    for key in ("f", "g", "h", "d/a", "d/b", "e/c"):
        b.put(key, b"data", k="v")
    return b


async def ino(env: OpsEnv, name: bytes, parent: int = ROOT_INODE) -> int:
    return (await env.ops.lookup(parent, name, CTX)).st_ino


async def read_all(env: OpsEnv, node: int) -> bytes:
    fh = (await env.ops.open(node, 0, CTX)).fh
    try:
        return await env.ops.read(fh, 0, 100)
    finally:
        await env.ops.release(fh)


# -- listings that would never end ------------------------------------------------------------

@pytest.mark.parametrize(("fault", "lists", "says"), [
    (TruncatedWithoutToken(), 1, "gives no continuation token or marker"),
    (RepeatedToken(), 2, "gives again the continuation token 'again'"),
    (EmptyTruncatedPages(), MAX_EMPTY_PAGES + 1, f"{MAX_EMPTY_PAGES + 1} truncated pages in a row"),
    (RepeatedPage(), 2, "holds no key after 'd/b'"),
], ids=["truncated-without-token", "repeated-token", "empty-pages-forever", "no-progress"])
def test_endless_listing_is_eio_at_once_and_the_next_listing_works(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        fault: Any, lists: int, says: str):
    b = layout()
    faults = Faults(b)

    async def go(env: OpsEnv) -> None:
        replies = Replies(monkeypatch)
        assert await ls(env, replies) == [b"d", b"e", b"f", b"g", b"h"]
        d, f = await ino(env, b"d"), await ino(env, b"f")
        assert await env.ops.getxattr(f, b"user.k", CTX) == b"v"
        assert faults.count() == 2  # the root's LIST, f's HEAD
        faults.add("LIST", fault, nth=faults.count("LIST") + 1, times=None)

        caplog.clear()
        t0, before = trio.current_time(), faults.count()
        assert await errno_of(ls(env, replies, d)) == errno.EIO
        assert trio.current_time() - t0 == 0  # detected, not timed out
        assert faults.count() - before == faults.count("LIST") - 1 == lists
        # V2 pages never go on with a key in place of a missing token.
        assert not [r for r in faults.requests("LIST")
                    if r.url.params.get("continuation-token") in ("d/a", "d/b")]
        (line,) = warnings(caplog)
        assert line.startswith("readdir: LIST d/: the server's listing would not end") and says in line
        no_traceback(caplog)
        lst = env.listings.current("d/")
        assert lst.pages == 0  # the failed listing is no longer served: a new one waits

        # Still served, with no request: the root's listing, f's metadata and xattrs.
        before = faults.count()
        assert await ls(env, replies) == [b"d", b"e", b"f", b"g", b"h"]
        assert (await env.ops.getattr(f, CTX)).st_size == 4
        assert await env.ops.getxattr(f, b"user.k", CTX) == b"v"
        assert faults.count() == before

        # The server mends: the same mount lists d with one LIST.
        faults.clear()
        assert await ls(env, replies, d) == [b"a", b"b"]
        assert faults.count() - before == faults.count("LIST") - 1 - lists == 1

    run_ops(b, go, handler=faults, attempts=ATTEMPTS, attempt_timeout=T, sleep=trio.sleep,
            mock_clock=True)


def test_a_failed_listing_answers_its_readers_with_no_new_request(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    b = layout()
    faults = Faults(b)
    faults.add("LIST", RepeatedToken(), times=None)

    async def go(env: OpsEnv) -> None:
        Replies(monkeypatch)
        fh = await env.ops.opendir(ROOT_INODE, CTX)
        await env.ops.readdir(fh, 0, TOKEN)  # page 1 (its token 'again' seen once)
        assert faults.count("LIST") == 1
        assert await errno_of(env.ops.readdir(fh, 7, TOKEN)) == errno.EIO  # page 2 repeats it
        assert faults.count("LIST") == 2
        # The handle keeps its failed listing: the same error, no request.
        assert await errno_of(env.ops.readdir(fh, 7, TOKEN)) == errno.EIO
        assert faults.count("LIST") == 2
        await env.ops.releasedir(fh)
        assert len(warnings(caplog)) == 2  # one line per failed FUSE request
        no_traceback(caplog)

    run_ops(b, go, handler=faults, mock_clock=True)


# -- one request, every way it can fail ---------------------------------------------------------

# (kind, fault, times, errno or None for success, requests of that kind, seconds taken)
CASES = [
    ("HEAD", Status(500), 1, None, 2, BACKOFF[0]),
    ("HEAD", Status(503), None, errno.EIO, ATTEMPTS, sum(BACKOFF)),
    ("HEAD", ResetBeforeAnswer(), 1, None, 2, BACKOFF[0]),
    ("HEAD", ResetBeforeAnswer(), None, errno.EIO, ATTEMPTS, sum(BACKOFF)),
    ("HEAD", ResetMidBody(), 1, None, 2, BACKOFF[0]),
    ("HEAD", MalformedBody(), 1, errno.EIO, 1, 0.0),
    ("HEAD", Hang(), 1, None, 2, T + BACKOFF[0]),
    ("HEAD", Hang(), None, errno.EIO, ATTEMPTS, BUDGET - 0.3),
    ("LIST", Status(503), 1, None, 2, BACKOFF[0]),
    ("LIST", ResetBeforeAnswer(), None, errno.EIO, ATTEMPTS, sum(BACKOFF)),
    ("LIST", ResetMidBody(), 1, None, 2, BACKOFF[0]),
    ("LIST", TruncatedBody(), 1, errno.EIO, 1, 0.0),
    ("LIST", MalformedBody(), 1, errno.EIO, 1, 0.0),
    ("LIST", Hang(), 1, None, 2, T + BACKOFF[0]),
    ("LIST", Hang(), None, errno.EIO, ATTEMPTS, BUDGET - 0.3),
    ("GET", Status(500), 1, None, 2, BACKOFF[0]),
    ("GET", ResetBeforeAnswer(), 1, None, 2, BACKOFF[0]),
    ("GET", ResetMidBody(), None, errno.EIO, ATTEMPTS, sum(BACKOFF)),
    ("GET", TruncatedBody(), 1, errno.EIO, 1, 0.0),
    ("GET", MalformedBody(), 1, errno.EIO, 1, 0.0),
    ("GET", Hang(), None, errno.EIO, ATTEMPTS, BUDGET - 0.3),
]


@pytest.mark.parametrize(("kind", "fault", "times", "err", "sent", "seconds"), CASES,
                         ids=[f"{c[0]}-{type(c[1]).__name__}-{'once' if c[2] else 'always'}"
                              for c in CASES])
def test_one_request_fault(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                           kind: str, fault: Any, times: int | None, err: int | None, sent: int,
                           seconds: float):
    b = layout()
    faults = Faults(b)

    async def go(env: OpsEnv) -> None:
        replies = Replies(monkeypatch)
        ops = env.ops
        assert await ls(env, replies) == [b"d", b"e", b"f", b"g", b"h"]
        f, g, h, d, e = [await ino(env, n) for n in (b"f", b"g", b"h", b"d", b"e")]
        assert await ops.getxattr(f, b"user.k", CTX) == b"v"
        start = {k: faults.count(k) for k in ("HEAD", "LIST", "GET")}

        async def op(target: int) -> Any:
            """The handler that sends exactly one request of ``kind`` (when all goes well)."""
            if kind == "HEAD":
                return await ops.getxattr(target, b"user.k", CTX)
            if kind == "LIST":
                return await ls(env, replies, target)
            return await read_all(env, target)

        first, other = (g, h) if kind != "LIST" else (d, e)
        expected = {"HEAD": b"v", "LIST": [b"a", b"b"], "GET": b"data"}[kind]
        faults.add(kind, fault, nth=start[kind] + 1, times=times)
        caplog.clear()
        t0 = trio.current_time()
        if err is None:
            assert await op(first) == expected
            assert not warnings(caplog)
        else:
            assert await errno_of(op(first)) == err
            (line,) = warnings(caplog)
            assert kind in line
        no_traceback(caplog)
        assert trio.current_time() - t0 == pytest.approx(seconds, abs=1e-9)
        assert seconds <= BUDGET < ops.bound
        assert faults.count(kind) - start[kind] == sent
        assert sum(faults.count(k) - start[k] for k in start) == sent  # nothing else was sent

        # Still served, with no request: the root listing, f's attributes and xattrs.
        before = faults.count()
        assert await ls(env, replies) == [b"d", b"e", b"f", b"g", b"h"]
        assert (await ops.getattr(f, CTX)).st_size == 4
        assert await ops.getxattr(f, b"user.k", CTX) == b"v"
        assert faults.count() == before

        # Recovery on the same mount: the failed operation and a new one, one request each.
        faults.clear()
        assert env.client is not None
        if (delay := env.client.health.probe_delay()) is not None:
            # No attempt got an answer: an outage opened (test_health.py), and the
            # next request goes out when its probe is due.
            await trio.sleep(delay)
        if err is not None:
            assert await op(first) == expected
            assert faults.count() - before == faults.count(kind) - start[kind] - sent == 1
        before = faults.count()
        assert await op(other) == ({"LIST": [b"c"]}.get(kind, expected))
        assert faults.count() - before == 1

    run_ops(b, go, handler=faults, attempts=ATTEMPTS, attempt_timeout=T, sleep=trio.sleep,
            mock_clock=True)


@pytest.mark.parametrize(("fault", "times", "ok", "sent"), [
    (Status(503), 1, True, 2),
    (ResetBeforeAnswer(), None, False, ATTEMPTS),
    (Hang(), 1, True, 2),
])
def test_head_bucket_faults(fault: Any, times: int | None, ok: bool, sent: int):
    faults = Faults(Bucket())
    faults.add("HEAD_BUCKET", fault, times=times)

    async def check(c: Any) -> Any:
        try:
            return await c.check_bucket()
        except Exception as e:  # noqa: BLE001 - the test looks at what it is
            return e

    out = run(faults, check, attempts=ATTEMPTS, attempt_timeout=T, mock_clock=True,
              endpoint_url="http://127.0.0.1:9000")
    assert faults.count("HEAD_BUCKET") == sent == faults.count()
    if ok:
        assert out.region == "us-east-1"
    else:
        assert "reset" in str(out) and getattr(out, "errno", None) == errno.EIO


# -- Retry-After ------------------------------------------------------------------------------

def test_retry_after_in_seconds_is_honoured(monkeypatch: pytest.MonkeyPatch):
    b = layout()
    faults = Faults(b)

    async def go(env: OpsEnv) -> None:
        replies = Replies(monkeypatch)
        await ls(env, replies)
        g = await ino(env, b"g")
        faults.add("HEAD", Status(503, retry_after="3"))
        faults.add("HEAD", Status(429, retry_after="2"), nth=2)
        t0 = trio.current_time()
        assert await env.ops.getxattr(g, b"user.k", CTX) == b"v"
        # 3 s after the 503, 2 s after the 429: what the server asked, not the backoff.
        assert trio.current_time() - t0 == pytest.approx(5.0)
        assert faults.count("HEAD") == 3

    run_ops(b, go, handler=faults, attempts=ATTEMPTS, attempt_timeout=10.0, sleep=trio.sleep,
            mock_clock=True)


def test_retry_after_as_an_http_date_is_honoured(monkeypatch: pytest.MonkeyPatch):
    b = layout()
    faults = Faults(b)

    async def go(env: OpsEnv) -> None:
        replies = Replies(monkeypatch)
        await ls(env, replies)
        g = await ino(env, b"g")
        # The client measures the date on the wall clock (trio's is mocked).
        faults.add("HEAD", Status(503, retry_after=email.utils.formatdate(time.time() + 3,
                                                                            usegmt=True)))
        t0 = trio.current_time()
        assert await env.ops.getxattr(g, b"user.k", CTX) == b"v"
        assert 2.0 < trio.current_time() - t0 <= 3.0  # whole seconds on the wire
        assert faults.count("HEAD") == 2

    run_ops(b, go, handler=faults, attempts=ATTEMPTS, attempt_timeout=10.0, sleep=trio.sleep,
            mock_clock=True)


def test_retry_after_past_the_request_deadline_fails_at_once(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    b = layout()
    faults = Faults(b)

    async def go(env: OpsEnv) -> None:
        replies = Replies(monkeypatch)
        await ls(env, replies)
        g = await ino(env, b"g")
        faults.add("HEAD", Status(503, retry_after="120"), times=None)
        caplog.clear()
        t0 = trio.current_time()
        assert await errno_of(env.ops.getxattr(g, b"user.k", CTX)) == errno.EIO
        assert trio.current_time() - t0 == 0
        assert faults.count("HEAD") == 1
        (line,) = warnings(caplog)
        assert "Retry-After 120 s ends past the request's deadline" in line and "503" in line
        # Known names are still served; once the server asks for less, it works.
        assert (await env.ops.getattr(g, CTX)).st_size == 4
        faults.clear()
        faults.add("HEAD", Status(503, retry_after="1"), nth=faults.count("HEAD") + 1)
        assert await env.ops.getxattr(g, b"user.k", CTX) == b"v"
        assert trio.current_time() - t0 == pytest.approx(1.0)
        assert faults.count("HEAD") == 3

    run_ops(b, go, handler=faults, attempts=ATTEMPTS, attempt_timeout=10.0, sleep=trio.sleep,
            mock_clock=True)


# -- the bound of one FUSE request ----------------------------------------------------------------

def test_handler_bound_is_two_request_budgets():
    # --retries 2 --request-timeout 10: 3 attempts of 10 s, backoff 0.2 + 0.4 s.
    assert request_budget(3, 10.0, 0.2, 5.0) == pytest.approx(30.6)
    assert handler_bound(request_budget(3, 10.0, 0.2, 5.0)) == pytest.approx(61.2)
    assert request_budget(1, 10.0, 0.2, 5.0) == 10.0
    assert request_budget(6, 1.0, 0.2, 5.0) == pytest.approx(6 + 0.2 + 0.4 + 0.8 + 1.6 + 3.2)


def test_pages_without_names_forever_are_cut_at_the_bound_and_the_listing_goes_on(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    # Each page brings progress and a new token, so the listing cannot call
    # it a loop; but every key is longer than 255 bytes, so no page gives
    # readdir an entry to reply.  Only the handler's bound ends the wait.
    b = Bucket()
    pages = 0
    endless = True

    async def server(request: httpx.Request) -> httpx.Response:
        nonlocal pages
        if request.method != "GET":
            return await b(request)
        pages += 1
        await trio.sleep(0.25)  # a round trip
        key = f"{pages:06d}" + "x" * 300
        if endless:
            body = listing(key, truncated=True,
                           extra=f"<NextContinuationToken>t{pages}</NextContinuationToken>")
        else:
            body = listing(key, "ok")
        return httpx.Response(200, content=body)

    async def go(env: OpsEnv) -> None:
        nonlocal endless
        replies = Replies(monkeypatch)
        bound = env.ops.bound
        assert bound == handler_bound(request_budget(ATTEMPTS, T, 0.2, 5.0)) == 7.2
        t0 = trio.current_time()
        assert await errno_of(ls(env, replies)) == errno.EIO
        assert trio.current_time() - t0 == pytest.approx(bound)
        assert pages == math.ceil(bound / 0.25)  # the last one cut short
        (line,) = [w for w in warnings(caplog) if "leaving out key" not in w]
        assert line == f"readdir: no answer within {bound:g} s, the bound of one FUSE request: EIO"
        no_traceback(caplog)
        lst = env.listings.current("")
        assert not lst.failed and not lst.fetching()  # cancelled, not broken: the lock is free
        endless = False
        assert await ls(env, replies) == [b"ok"]  # the same listing, on to its end
        assert lst.complete and pages == math.ceil(bound / 0.25) + 1

    run_ops(b, go, handler=server, attempts=ATTEMPTS, attempt_timeout=T, sleep=trio.sleep,
            mock_clock=True)


def test_a_cancelled_page_fetch_is_taken_over_and_nothing_is_counted_twice(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    b = layout()
    faults = Faults(b)
    faults.add("LIST", Hang())  # the first LIST never answers

    async def go(env: OpsEnv) -> None:
        replies = Replies(monkeypatch)
        ops = env.ops
        results: dict[str, Any] = {}

        async def reader(name: str, delay: float) -> None:
            await trio.sleep(delay)
            fh = await ops.opendir(ROOT_INODE, CTX)
            before = len(replies.got)
            try:
                await ops.readdir(fh, 0, TOKEN)
                results[name] = [n for n, _ in replies.got[before:]]
            except FUSEError as e:
                results[name] = e.errno
            results[name + "@"] = trio.current_time()
            await ops.releasedir(fh)

        async with trio.open_nursery() as n:
            n.start_soon(reader, "A", 0.0)  # holds the listing lock while its LIST hangs
            n.start_soon(reader, "B", 1.0)  # waits for that page
        assert results["A"] == errno.EIO and results["A@"] == pytest.approx(2.0)
        # B took the page over once A's bound cancelled A's fetch, and got it.
        assert results["B"] == [b".", b"..", b"d", b"e", b"f", b"g", b"h"]
        assert results["B@"] == pytest.approx(2.0)
        assert faults.count("LIST") == faults.count() == 2
        lst = env.listings.current("")
        assert lst.complete and not lst.failed
        # Each entry counted once: B's replies, none of A's (A replied none).
        counts = {n.name: n.nlookup for n in env.inodes.nodes.values() if n.ino != ROOT_INODE}
        assert counts == {"d": 1, "e": 1, "f": 1, "g": 1, "h": 1}
        assert [w for w in warnings(caplog)] == [
            "readdir: no answer within 2 s, the bound of one FUSE request: EIO"]
        assert isinstance(lst.index["d"], DirEntry)

    run_ops(b, go, handler=faults, attempts=ATTEMPTS, attempt_timeout=10.0, bound=2.0,
            mock_clock=True)


def test_a_cancelled_head_is_taken_over_by_the_caller_that_waited_for_it(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    b = layout()
    faults = Faults(b)

    async def go(env: OpsEnv) -> None:
        replies = Replies(monkeypatch)
        ops = env.ops
        await ls(env, replies)
        g = await ino(env, b"g")
        faults.add("HEAD", Hang())
        results: dict[str, Any] = {}

        async def getxattr(name: str, delay: float) -> None:
            await trio.sleep(delay)
            try:
                results[name] = await ops.getxattr(g, b"user.k", CTX)
            except FUSEError as e:
                results[name] = e.errno
            results[name + "@"] = trio.current_time()

        t0 = trio.current_time()
        async with trio.open_nursery() as n:
            n.start_soon(getxattr, "A", 0.0)  # leads the single flight; its HEAD hangs
            n.start_soon(getxattr, "B", 1.0)  # joins it
        assert results["A"] == errno.EIO and results["A@"] - t0 == pytest.approx(2.0)
        assert results["B"] == b"v" and results["B@"] - t0 == pytest.approx(2.0)
        assert faults.count("HEAD") == faults.count() - 1 == 2
        assert len(warnings(caplog)) == 1

    run_ops(b, go, handler=faults, attempts=ATTEMPTS, attempt_timeout=10.0, bound=2.0,
            mock_clock=True)


@pytest.mark.parametrize(("fault", "outage"), [
    (ResetBeforeAnswer(), True),   # silence: nothing came back from the server
    (Hang(), True),
    (ResetMidBody(), False),       # its status line and headers came: it is up
    (TruncatedBody(), False),      # bytes the HTTP layer refused: it is up
    (Status(503), False),          # an answer, if not a good one
])
def test_only_silence_opens_an_outage(monkeypatch: pytest.MonkeyPatch, fault: Any, outage: bool):
    # Endpoint health (test_health.py) must not take a server that answers,
    # even unusably, for one that is down: that would fail every other request.
    b = layout()
    faults = Faults(b)

    async def go(env: OpsEnv) -> None:
        f = await ino(env, b"f")
        faults.add("GET", fault, times=None)
        assert await errno_of(read_all(env, f)) == errno.EIO
        assert env.client is not None and env.client.health.down is outage

    run_ops(b, go, handler=faults, attempts=ATTEMPTS, attempt_timeout=T, sleep=trio.sleep,
            mock_clock=True)

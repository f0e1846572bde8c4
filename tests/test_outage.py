"""An outage, in process: the FUSE handlers over the metadata layer and a server that hangs.

``run_ops(..., virtual_time=True, probing=True)`` wires the layers as a
mount does, with the client probing in the background, on trio's virtual
clock: a hanging request costs its timeouts and backoff in virtual time,
which each test measures, at no real wait.  Each "command" below is the
sequence of FUSE requests the kernel sends for it (``stat a/b/c`` is one
lookup per component, ``getfattr -d`` a lookup, listxattr and getxattr…).

The settings are those of the target: 2 s per attempt, 3 attempts, so one
request without answer costs 6 s (+ 0.3 s backoff); after that first
failure every command on known names must answer at once.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pyfuse3
import pytest
import trio
from pyfuse3 import ROOT_INODE, FUSEError

from tests.fakes import TTL, Bucket, OpsEnv, run_ops

CTX: Any = None  # pyfuse3.RequestContext: the handlers never read it
TOKEN: Any = object()
ATTEMPTS, TIMEOUT = 3, 2.0
FIRST_FAILURE = ATTEMPTS * TIMEOUT + 1.0  # the budget of one request, backoff included
GRACE = 1.0


def outage_bucket() -> Bucket:
    b = Bucket()
    b.put("f", b"hello", color="blue")
    for k in ("d/a", "d/b", "d/sub/x"):
        b.put(k, b"xy")
    return b


def run_outage(b: Bucket, fn: Callable[[OpsEnv], Awaitable[Any]]) -> Any:
    return run_ops(b, fn, attempts=ATTEMPTS, attempt_timeout=TIMEOUT, stale_grace=GRACE,
                   virtual_time=True, probing=True)


def is_probe(r: httpx.Request) -> bool:
    return r.method == "HEAD" and r.url.path == "/bkt"


def sent(b: Bucket) -> list[httpx.Request]:
    """What the bucket received, probes left out."""
    return [r for r in b.requests if not is_probe(r)]


class Shell:
    """The kernel's FUSE requests for a few commands, each timed on trio's clock."""

    def __init__(self, env: OpsEnv, monkeypatch: pytest.MonkeyPatch) -> None:
        self.env = env
        self.ops = env.ops
        self._names: list[str] | None = None
        monkeypatch.setattr(pyfuse3, "readdir_reply", self._reply)

    def _reply(self, token: Any, name: bytes, attrs: pyfuse3.EntryAttributes, next_id: int
               ) -> bool:
        assert self._names is not None
        self._names.append(name.decode())
        return True

    async def walk(self, path: str) -> pyfuse3.EntryAttributes:
        """One lookup per component, as the kernel resolves a path whose entries expired."""
        ino, attrs = ROOT_INODE, None
        for part in path.split("/"):
            attrs = await self.ops.lookup(ino, part.encode(), CTX)
            if attrs.st_ino == 0:
                raise FUSEError(errno.ENOENT)
            ino = attrs.st_ino
        assert attrs is not None
        return attrs

    async def stat(self, path: str) -> int:
        return (await self.walk(path)).st_size

    async def getfattr_d(self, path: str) -> dict[str, bytes]:
        ino = (await self.walk(path)).st_ino
        # The user metadata of what getfattr -d shows (user.s3.* and the freedesktop aliases left out).
        names = [n for n in (await self.ops.listxattr(ino, CTX)) if n.startswith(b"user.")
                 and not n.startswith((b"user.s3.", b"user.mime_type", b"user.xdg."))]
        return {n.decode(): await self.ops.getxattr(ino, n, CTX) for n in names}

    async def ls_l(self, path: str) -> list[str]:
        ino = (await self.walk(path)).st_ino if path else ROOT_INODE
        fh = await self.ops.opendir(ino, CTX)
        self._names = []
        try:
            await self.ops.readdir(fh, 0, TOKEN)
            names = [n for n in self._names if n not in (".", "..")]
        finally:
            self._names = None
            await self.ops.releasedir(fh)
        for n in names:  # ls -l: lstat of each entry
            await self.ops.lookup(ino, n.encode(), CTX)
        return names

    async def timed(self, aw: Awaitable[Any]) -> tuple[Any, float]:
        t0 = trio.current_time()
        result = await aw
        return result, trio.current_time() - t0

    async def know_everything(self) -> None:
        """What a user did before the outage: listed, stat-ed and read the xattrs of everything."""
        assert await self.ls_l("") == ["d", "f"]
        assert await self.ls_l("d") == ["a", "b", "sub"]
        assert await self.ls_l("d/sub") == ["x"]
        assert await self.getfattr_d("f") == {"user.color": b"blue"}


async def errno_of(aw: Awaitable[Any]) -> int:
    with pytest.raises(FUSEError) as ei:
        await aw
    return ei.value.errno


def test_during_an_outage_known_names_answer_at_once_after_the_first_failure(monkeypatch):
    b = outage_bucket()

    async def go(env: OpsEnv) -> None:
        sh = Shell(env, monkeypatch)
        await sh.know_everything()
        env.clock.t += TTL + 1  # everything expired
        b.gate = trio.Event()  # the server accepts requests and never answers
        b.reset()
        # The first failure costs one request's budget, once: a conditional HEAD, 3 attempts.
        size, spent = await sh.timed(sh.stat("f"))
        assert size == 5 and ATTEMPTS * TIMEOUT <= spent <= FIRST_FAILURE
        assert [(r.method, r.url.path) for r in sent(b)] == [("HEAD", "/bkt/f")] * ATTEMPTS
        assert env.client.health.down
        for _ in range(3):  # and again once every grace is over: still at once
            assert await sh.timed(sh.stat("f")) == (5, 0.0)
            assert await sh.timed(sh.getfattr_d("f")) == ({"user.color": b"blue"}, 0.0)
            assert await sh.timed(sh.stat("d/sub/x")) == (2, 0.0)
            assert await sh.timed(sh.ls_l("d")) == (["a", "b", "sub"], 0.0)
            assert await sh.timed(sh.ls_l("")) == (["d", "f"], 0.0)
            assert len(sent(b)) == ATTEMPTS  # nothing sent: the endpoint is known down
            env.clock.t += 2 * GRACE + TIMEOUT  # probes come and go meanwhile
        assert any(is_probe(r) for r in b.requests)

    run_outage(b, go)


def test_unknown_names_fail_with_eio_within_the_bound(monkeypatch):
    b = outage_bucket()

    async def go(env: OpsEnv) -> None:
        sh = Shell(env, monkeypatch)
        b.gate = trio.Event()
        t0 = trio.current_time()
        assert await errno_of(sh.stat("nope")) == errno.EIO  # HEAD + LIST, concurrently
        assert trio.current_time() - t0 <= FIRST_FAILURE
        assert len(sent(b)) == 2 * ATTEMPTS
        t0 = trio.current_time()
        for name in ("nope", "f", "d/a"):  # never seen: nothing to serve
            assert await errno_of(sh.stat(name)) == errno.EIO
        assert trio.current_time() == t0 and len(sent(b)) == 2 * ATTEMPTS

    run_outage(b, go)


def test_an_expired_listing_is_served_when_its_refresh_gets_no_answer(monkeypatch, caplog):
    b = outage_bucket()

    async def go(env: OpsEnv) -> None:
        sh = Shell(env, monkeypatch)
        await sh.know_everything()
        env.clock.t += TTL + 1
        b.gate = trio.Event()
        b.reset()
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="metafs.listings"):
            fh = await env.ops.opendir(ROOT_INODE, CTX)
            sh._names = []
            t0 = trio.current_time()
            await env.ops.readdir(fh, 0, TOKEN)
            assert trio.current_time() - t0 <= FIRST_FAILURE
            assert sh._names == [".", "..", "d", "f"]
            sh._names = None
            await env.ops.releasedir(fh)
            # One request for the first page of the listing: 3 attempts.
            assert [(r.method, r.url.params["delimiter"]) for r in sent(b)] == [("GET", "/")] * 3
            # Its names and its absences answer for the grace, with no request.
            b.reset()
            assert (await env.ops.lookup(ROOT_INODE, b"zz", CTX)).st_ino == 0
            assert (await sh.timed(sh.ls_l(""))) == (["d", "f"], 0.0)
            env.clock.t += 2 * GRACE  # over the grace: refreshing fails at once, served again
            assert (await sh.timed(sh.ls_l(""))) == (["d", "f"], 0.0)
            assert sent(b) == []
        # One warning line for the listing (later ones are the known outage's: quiet), and
        # one for the outage itself.
        warnings = [(r.name, r.message) for r in caplog.records if r.levelno >= logging.WARNING]
        assert [name for name, _ in warnings] == ["metafs.s3.health", "metafs.listings"]
        assert warnings[1][1].startswith(
            "serving the previous listing of '/' (2 entries): refreshing it failed (LIST /: no answer")

    run_outage(b, go)


def test_the_same_mount_recovers_and_sends_exactly_the_revalidations(monkeypatch):
    b = outage_bucket()

    async def go(env: OpsEnv) -> None:
        sh = Shell(env, monkeypatch)
        await sh.know_everything()
        env.clock.t += TTL + 1
        b.gate = trio.Event()
        await sh.stat("f")  # the first failure opens the outage
        await trio.sleep(30)  # a long outage: probes back off to every 5 s (+ 2 s timeout)
        assert env.client.health.down
        t0 = trio.current_time()
        b.gate.set()  # the server answers again
        while env.client.health.down:
            await trio.sleep(0.01)
        assert trio.current_time() - t0 <= 5.0 + TIMEOUT
        env.clock.t += TTL + 1  # what was served stale, and the rest, is expired
        b.reset()

        async def requests(aw: Awaitable[Any]) -> list[tuple[str, str, str]]:
            before = len(b.requests)
            await aw
            return [(r.method, r.url.path, r.headers.get("if-none-match", r.url.params.get(
                "prefix", ""))) for r in b.requests[before:]]

        etag = b.objects["f"][1]
        assert await requests(sh.stat("f")) == [("HEAD", "/bkt/f", etag)]  # 304
        assert await requests(sh.getfattr_d("f")) == []
        # d: a known prefix, revalidated by the flat first page of d/'s subtree; that page
        # lists d/ (readdir and the lookups of `ls -l` are answered from it) and d/sub/.
        assert await requests(sh.ls_l("d")) == [("GET", "/bkt", "d/")]
        # d/sub/x: d, sub and x are fresh from that page now.
        assert await requests(sh.stat("d/sub/x")) == []

    run_outage(b, go)

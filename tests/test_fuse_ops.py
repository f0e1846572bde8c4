"""metafs.fuse_ops: the FUSE handlers called directly, with no kernel (S3QL's ``t3_fs_api``).

The handlers run over the real metadata layer and S3 client, wired as
:func:`metafs.mount.build` does (``tests.fakes.run_ops``), against the
in-memory :class:`~tests.fakes.Bucket`, whose request log gives exact
request counts.  :class:`Kernel` plays the kernel's side of readdir:
``pyfuse3.readdir_reply`` is replaced by a reply buffer with room for a
given number of entries, and the next call starts at the ``next_id`` of
the last entry the buffer took, as the kernel does.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
from collections.abc import Awaitable
from typing import Any

import httpx
import pyfuse3
import pytest
from pyfuse3 import ROOT_INODE, FUSEError

from metafs.contents import READ_CHUNK
from metafs.dirlist import name_of
from tests.fakes import MTIME, NEG_TTL, OWN, TTL, Bucket, OpsEnv, list_all, run_ops

CTX: Any = None  # pyfuse3.RequestContext: the handlers never read it
TOKEN: Any = object()  # pyfuse3.ReaddirToken: passed through to readdir_reply untouched


@dataclasses.dataclass
class Reply:
    """One ``readdir_reply`` call, with the attributes copied at the time (they are reused)."""

    name: str
    ino: int
    is_dir: bool
    timeout: float
    next_id: int


@dataclasses.dataclass
class Call:
    """One ``readdir`` call: what the buffer took, what it refused, what was sent meanwhile."""

    start: int
    room: int
    accepted: list[Reply] = dataclasses.field(default_factory=list)
    refused: list[Reply] = dataclasses.field(default_factory=list)
    requests: list[httpx.Request] = dataclasses.field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.accepted]


class Kernel:
    """The kernel's side of readdir, over a monkeypatched ``pyfuse3.readdir_reply``."""

    def __init__(self, env: OpsEnv, monkeypatch: pytest.MonkeyPatch) -> None:
        self.env = env
        self._call: Call | None = None
        monkeypatch.setattr(pyfuse3, "readdir_reply", self._reply)

    def _reply(self, token: Any, name: bytes, attrs: pyfuse3.EntryAttributes, next_id: int
               ) -> bool:
        assert token is TOKEN
        call = self._call
        assert call is not None, "readdir_reply outside readdir"
        assert attrs.attr_timeout == attrs.entry_timeout
        r = Reply(name_of(name), attrs.st_ino, stat.S_ISDIR(attrs.st_mode), attrs.entry_timeout,
                  next_id)
        if len(call.accepted) >= call.room:
            call.refused.append(r)
            return False
        call.accepted.append(r)
        return True

    async def readdir(self, fh: int, start: int, room: int = 1000) -> Call:
        before = len(self.env.bucket.requests)
        call = self._call = Call(start, room)
        try:
            await self.env.ops.readdir(fh, start, TOKEN)
        finally:
            self._call = None
        call.requests = self.env.bucket.requests[before:]
        assert len(call.refused) <= 1  # a handler must stop at the first refusal
        return call

    async def readdir_to_end(self, fh: int, room: int = 1000, start: int = 0) -> list[Call]:
        """Read on until a call replies nothing, each call from the last accepted ``next_id``."""
        calls = []
        while True:
            call = await self.readdir(fh, start, room)
            calls.append(call)
            if not call.accepted:
                return calls
            start = next_start(call)


def next_start(call: Call) -> int:
    """Where the kernel's next call starts; it must move on, or a broken offset loops forever."""
    nxt = call.accepted[-1].next_id
    assert nxt > call.start and nxt > max(
        (r.next_id for r in call.accepted[:-1]), default=-1), "next_id does not advance"
    return nxt


def names_of(calls: list[Call]) -> list[str]:
    return [n for c in calls for n in c.names]


async def errno_of(aw: Awaitable[Any]) -> int:
    with pytest.raises(FUSEError) as ei:
        await aw
    return ei.value.errno


def list_params(r: httpx.Request) -> dict[str, str]:
    assert r.method == "GET" and r.url.raw_path.split(b"?")[0] in (b"/bkt", b"/bkt/")
    return dict(r.url.params)


def delimiter_list(prefix: str, token: str | None = None) -> dict[str, str]:
    """The query of one page of readdir's delimiter listing."""
    q = {"list-type": "2", "prefix": prefix, "encoding-type": "url", "delimiter": "/"}
    if token is not None:
        q["continuation-token"] = token
    return q


# -- the paging directory ---------------------------------------------------------------------
#
# 25 files and 3 directories over LIST pages of 10 keys.  The object ``d/m``
# is shadowed by the prefix ``d/m/`` (the directory wins) and lies at the
# end of page 2 while ``d/m/`` opens page 3, with ``d/m-b`` between them,
# so ``m`` is held back across a page boundary.
#
#   page 1: a/  f00 … f08          (token d/f08)
#   page 2: f09 … f17  m           (token d/m)
#   page 3: m-b  m/  z/  zz0 … zz5
FILES = [f"f{i:02d}" for i in range(18)]
NAMES = ["a", *FILES, "m-b", "m", "z", *(f"zz{i}" for i in range(6))]
DIRS = {"a", "m", "z"}
assert len(NAMES) == 28 and len(set(NAMES) - DIRS) == 25


def paging_bucket() -> Bucket:
    b = Bucket(page_size=10)
    for name in DIRS:
        b.put(f"d/{name}/x")
    for name in [*FILES, "m", "m-b", *(f"zz{i}" for i in range(6))]:
        b.put(f"d/{name}", name.encode())
    return b


async def lookup_dir(env: OpsEnv, parent: int, name: bytes, *, probe: bool = False) -> int:
    """Look a directory up from its parent's listing, then clear the request log.

    From the listing, not by a probe (unless ``probe``): a probe's flat page
    would list the directory already, and most tests here page through its
    own listing.
    """
    node = env.inodes.get(parent)
    assert node is not None
    if not probe:
        await list_all(env, node.key)
    attrs = await env.ops.lookup(parent, name, CTX)
    assert stat.S_ISDIR(attrs.st_mode)
    env.bucket.reset()
    return attrs.st_ino


def test_readdir_pages_as_the_kernel_asks(monkeypatch: pytest.MonkeyPatch):
    b = paging_bucket()

    async def go(env: OpsEnv) -> None:
        k = Kernel(env, monkeypatch)
        d = await lookup_dir(env, ROOT_INODE, b"d")
        dnode = env.inodes.get(d)
        assert dnode is not None and dnode.nlookup == 1
        fh = await env.ops.opendir(d, CTX)
        assert b.requests == []  # opendir sends nothing

        # The buffer takes 7 entries per call.  Call 1: '.', '..', then page 1.
        c1 = await k.readdir(fh, 0, room=7)
        assert c1.names == [".", "..", "a", "f00", "f01", "f02", "f03"]
        assert [(r.ino, r.next_id, r.is_dir, r.timeout) for r in c1.accepted[:2]] == [
            (d, 1, True, TTL), (ROOT_INODE, 2, True, TTL)]
        assert [r.name for r in c1.refused] == ["f04"]
        refused_ino = c1.refused[0].ino
        assert env.inodes.get(refused_ino) is None  # allocated for the reply, then discarded
        assert env.inodes.child(d, "f04") is None
        assert len(env.inodes) == 2 + 5  # root, d, a, f00…f03
        assert [list_params(r) for r in c1.requests] == [delimiter_list("d/")]

        # Trust runs from each page's request: 3 s later, page 1's entries
        # get 7 s, the entries of pages fetched then get the whole TTL.
        env.clock.t += 3
        calls = [c1]
        start = next_start(c1)
        while True:
            c = await k.readdir(fh, start, room=7)
            calls.append(c)
            if not c.accepted:
                break
            start = next_start(c)

        # The kernel's offsets, and what each call replied, refused and sent.
        assert [(c.start, c.names, [r.name for r in c.refused], len(c.requests))
                for c in calls] == [
            (0, [".", "..", "a", "f00", "f01", "f02", "f03"], ["f04"], 1),
            # Page 1 showed 9 entries (f08 held back until a later key): a call
            # that replied some entries returns instead of fetching page 2.
            (7, ["f04", "f05", "f06", "f07"], [], 0),
            (11, ["f08", "f09", "f10", "f11", "f12", "f13", "f14"], ["f15"], 1),
            (18, ["f15", "f16", "f17"], [], 0),  # 'm' held back: page 3 may shadow it
            (21, ["m-b", "m", "z", "zz0", "zz1", "zz2", "zz3"], ["zz4"], 1),
            (28, ["zz4", "zz5"], [], 0),
            (30, [], [], 0),  # complete: nothing more, nothing sent
        ]
        assert [list_params(r) for c in calls for r in c.requests] == [
            delimiter_list("d/"), delimiter_list("d/", "d/f08"), delimiter_list("d/", "d/m")]

        entries = [r for c in calls for r in c.accepted if r.name not in (".", "..")]
        assert [r.name for r in entries] == NAMES  # each exactly once, in listing order
        assert [r.next_id for r in entries] == [i + 3 for i in range(len(NAMES))]
        assert {r.name for r in entries if r.is_dir} == DIRS  # 'm' is the directory only
        # a, f00…f08: what page 1 showed, f08 too: held back until page 2 proved no f08/
        # follows, it keeps the trust of the page that showed it.
        page1 = set(NAMES[:10])
        assert all(r.timeout == (TTL - 3 if r.name in page1 else TTL)
                   for c in calls[1:] for r in c.accepted)
        for r in entries:
            node = env.inodes.child(d, r.name)
            assert node is not None and node.ino == r.ino and node.is_dir == r.is_dir
            assert node.nlookup == 1, r.name  # one per accepted reply
            assert node.key == f"d/{r.name}" + ("/" if r.is_dir else "")
        refused = {r.name: r.ino for c in calls for r in c.refused}
        assert refused and all(r.ino == refused[r.name] for r in entries if r.name in refused), \
            "a refused entry's inode number was never the kernel's: the next call offers it again"
        assert len(env.inodes) == 2 + len(NAMES)
        # '.' and '..' count no lookup.
        assert dnode.nlookup == 1 and env.inodes.get(ROOT_INODE).nlookup == 1  # type: ignore[union-attr]

    run_ops(b, go)


def test_readdir_offsets_reserve_and_continue_across_handles(monkeypatch: pytest.MonkeyPatch):
    b = paging_bucket()

    async def go(env: OpsEnv) -> None:
        k = Kernel(env, monkeypatch)
        d = await lookup_dir(env, ROOT_INODE, b"d")

        def nlookup(name: str) -> int:
            node = env.inodes.child(d, name)
            return 0 if node is None else node.nlookup

        fh1 = await env.ops.opendir(d, CTX)
        c = await k.readdir(fh1, 0, room=7)
        assert c.names[-1] == "f03" and c.accepted[-1].next_id == 7 and len(c.requests) == 1
        b.reset()

        # A repeated offset re-serves the same entries, each counted again.
        first = await k.readdir(fh1, 7, room=3)
        again = await k.readdir(fh1, 7, room=3)
        assert first.names == again.names == ["f04", "f05", "f06"]
        assert [r.ino for r in first.accepted] == [r.ino for r in again.accepted]
        assert [r.next_id for r in again.accepted] == [8, 9, 10]
        assert [r.name for r in again.refused] == ["f07"]
        assert [nlookup(n) for n in ("f04", "f05", "f06", "f07")] == [2, 2, 2, 0]
        # An earlier offset: the refused entry is known to the kernel, so it is kept.
        back = await k.readdir(fh1, 2, room=2)
        assert back.names == ["a", "f00"] and [r.name for r in back.refused] == ["f01"]
        assert [nlookup(n) for n in ("a", "f00", "f01")] == [2, 2, 1]
        assert env.inodes.get(back.refused[0].ino) is not None
        assert b.requests == []

        # A second handle on the fresh listing continues from the first one's offset.
        fh2 = await env.ops.opendir(d, CTX)
        assert fh2 != fh1
        c2 = await k.readdir(fh2, 10)
        assert c2.names == ["f07"] and c2.requests == []  # the rest of page 1, no request
        c2 = await k.readdir(fh2, 11)
        assert c2.names == [f"f{i:02d}" for i in range(8, 18)]
        assert [list_params(r) for r in c2.requests] == [delimiter_list("d/", "d/f08")]
        # ... and the first handle reads the page the second one fetched, with no request.
        c1 = await k.readdir(fh1, 11)
        assert c1.names == c2.names and c1.requests == []
        assert [r.ino for r in c1.accepted] == [r.ino for r in c2.accepted]
        assert [nlookup(f"f{i:02d}") for i in range(7, 18)] == [1] + [2] * 10
        assert len(b.requests) == 1

    run_ops(b, go)


def test_rewinddir_takes_the_current_listing(monkeypatch: pytest.MonkeyPatch):
    b = paging_bucket()

    async def go(env: OpsEnv) -> None:
        k = Kernel(env, monkeypatch)
        d = await lookup_dir(env, ROOT_INODE, b"d")
        fh = await env.ops.opendir(d, CTX)
        calls = await k.readdir_to_end(fh)
        assert names_of(calls) == [".", "..", *NAMES]
        assert len(b.lists()) == 3
        # Another process has the directory open, part-way through.
        other = await env.ops.opendir(d, CTX)
        part = await k.readdir(other, 0, room=5)
        assert part.names == [".", "..", "a", "f00", "f01"] and part.requests == []
        b.reset()

        # Within the TTL, offset 0 re-serves the same listing: a key added
        # behind the mount is not seen, and nothing is sent.
        b.put("d/new0")
        env.clock.t += 4
        calls = await k.readdir_to_end(fh)
        assert names_of(calls) == [".", "..", *NAMES]
        assert b.requests == []

        # After the TTL, rewinddir takes a new listing: exactly its pages are sent.
        env.clock.t += TTL - 4 + 1
        calls = await k.readdir_to_end(fh)
        new_names = NAMES[:21] + ["new0"] + NAMES[21:]  # after m, before z
        assert names_of(calls) == [".", "..", *new_names]
        assert [len(c.requests) for c in calls] == [1, 1, 1, 0]
        assert [list_params(r) for r in b.requests] == [
            delimiter_list("d/"), delimiter_list("d/", "d/f08"), delimiter_list("d/", "d/m")]
        assert all(r.timeout == TTL for c in calls for r in c.accepted)
        assert [r.next_id for c in calls for r in c.accepted][2:] == [
            i + 3 for i in range(len(new_names))]
        b.reset()

        # The handle that did not rewind keeps reading the listing it started
        # with (no new0), with no request; its trust has run out, so the
        # kernel gets its entries with a timeout of 0.
        rest = await k.readdir_to_end(other, start=part.accepted[-1].next_id)
        assert names_of(rest) == NAMES[3:]
        assert all(r.timeout == 0.0 for c in rest for r in c.accepted)
        assert b.requests == []

    run_ops(b, go)


# -- errno ------------------------------------------------------------------------------------


def test_errno_of_stale_unknown_and_read_only(monkeypatch: pytest.MonkeyPatch):
    b = Bucket()
    b.put("file.txt", b"hello", color="red")
    b.put("dir/x")

    async def go(env: OpsEnv) -> None:
        k = Kernel(env, monkeypatch)
        ops = env.ops
        f = (await ops.lookup(ROOT_INODE, b"file.txt", CTX)).st_ino
        assert (await ops.lookup(ROOT_INODE, b"file.txt", CTX)).st_ino == f
        d = (await ops.lookup(ROOT_INODE, b"dir", CTX)).st_ino
        assert env.inodes.get(f).nlookup == 2  # type: ignore[union-attr]
        b.reset()

        # ENOTDIR, EISDIR, EROFS: no request.
        assert await errno_of(ops.opendir(f, CTX)) == errno.ENOTDIR
        assert await errno_of(ops.lookup(f, b"x", CTX)) == errno.ENOTDIR
        assert await errno_of(ops.lookup(f, b".", CTX)) == errno.ENOTDIR
        assert await errno_of(ops.open(d, os.O_RDONLY, CTX)) == errno.EISDIR
        assert await errno_of(ops.open(ROOT_INODE, os.O_RDONLY, CTX)) == errno.EISDIR
        assert await errno_of(ops.open(f, os.O_WRONLY, CTX)) == errno.EROFS
        assert await errno_of(ops.open(f, os.O_RDWR, CTX)) == errno.EROFS
        setattr_ = ops.setattr(f, pyfuse3.EntryAttributes(), pyfuse3.SetattrFields(), None, CTX)
        assert await errno_of(setattr_) == errno.EROFS
        assert await errno_of(ops.setxattr(f, b"user.color", b"blue", CTX)) == errno.EROFS
        assert await errno_of(ops.removexattr(f, b"user.color", CTX)) == errno.EROFS
        assert await errno_of(ops.setxattr(d, b"user.color", b"blue", CTX)) == errno.EROFS

        # EBADF for handles never opened (or already released); releasing them never fails.
        assert await errno_of(k.readdir(4242, 0)) == errno.EBADF
        assert await errno_of(ops.read(4242, 0, 10)) == errno.EBADF
        fh = await ops.opendir(d, CTX)
        await ops.releasedir(fh)
        assert await errno_of(k.readdir(fh, 0)) == errno.EBADF
        await ops.releasedir(4242)
        await ops.release(4242)
        assert b.requests == []

        # The kernel forgets: one of two lookups leaves the inode usable.
        await ops.forget([(f, 1)])
        assert (await ops.getattr(f, CTX)).st_ino == f
        await ops.forget([(f, 1), (d, 1)])
        assert env.inodes.get(f) is None and env.inodes.get(d) is None
        for aw in (ops.getattr(f, CTX), ops.lookup(f, b"x", CTX), ops.opendir(f, CTX),
                   ops.getxattr(f, b"user.color", CTX), ops.listxattr(f, CTX),
                   ops.open(f, os.O_RDONLY, CTX),
                   ops.getattr(d, CTX), ops.lookup(d, b"x", CTX), ops.opendir(d, CTX),
                   ops.getxattr(d, b"user.s3.prefix", CTX), ops.listxattr(d, CTX)):
            assert await errno_of(aw) == errno.ESTALE
        assert b.requests == []
        # The name is looked up again under a new inode number (never reused).
        again = await ops.lookup(ROOT_INODE, b"file.txt", CTX)
        assert again.st_ino not in (0, f, d) and b.requests == []

    run_ops(b, go)


# -- lookup -----------------------------------------------------------------------------------


def test_lookup_dots_invalid_names_negative_and_remaining_ttl():
    b = Bucket()
    b.put("dir/file.txt", b"hello")
    b.put("dir/sub/x")

    async def go(env: OpsEnv) -> None:
        ops = env.ops
        d = await lookup_dir(env, ROOT_INODE, b"dir")
        dnode, root = env.inodes.get(d), env.inodes.get(ROOT_INODE)
        assert dnode is not None and root is not None

        # '.' and '..': one lookup each, no request, the full TTL.
        a = await ops.lookup(d, b".", CTX)
        assert (a.st_ino, a.entry_timeout, a.attr_timeout) == (d, TTL, TTL)
        assert stat.S_ISDIR(a.st_mode) and dnode.nlookup == 2
        a = await ops.lookup(d, b"..", CTX)
        assert (a.st_ino, a.entry_timeout) == (ROOT_INODE, TTL) and root.nlookup == 2
        a = await ops.lookup(ROOT_INODE, b"..", CTX)
        assert a.st_ino == ROOT_INODE and root.nlookup == 3
        assert b.requests == []

        # Names no key can have: ENOENT with no request, and no inode; names
        # longer than 255 bytes: ENAMETOOLONG, no request either.
        n = len(env.inodes)
        for name in (b"a/b", b""):
            assert await errno_of(ops.lookup(d, name, CTX)) == errno.ENOENT, name
        for name in (b"x" * 256, "é".encode() * 128, b"\xff" * 1024):
            assert await errno_of(ops.lookup(d, name, CTX)) == errno.ENAMETOOLONG, name
        assert b.requests == [] and len(env.inodes) == n

        # A missing name: a negative entry for the remaining negative TTL.
        env.clock.t += 1
        a = await ops.lookup(d, b"nope", CTX)
        assert (a.st_ino, a.entry_timeout) == (0, NEG_TTL)
        assert sorted(r.method for r in b.requests) == ["GET", "HEAD"]  # the probe
        b.reset()
        env.clock.t += 2
        a = await ops.lookup(d, b"nope", CTX)
        assert (a.st_ino, a.entry_timeout) == (0, NEG_TTL - 2) and b.requests == []
        # 255 bytes is a valid name: probed like any other.
        a = await ops.lookup(d, b"x" * 255, CTX)
        assert a.st_ino == 0 and len(b.requests) == 2
        assert len(env.inodes) == n
        b.reset()

        # A file: its timeouts are what remains of the cache's trust.
        t0 = env.clock.t
        a = await ops.lookup(d, b"file.txt", CTX)
        assert len(b.requests) == 2
        fnode = env.inodes.child(d, "file.txt")
        assert fnode is not None and fnode.key == "dir/file.txt"
        assert (a.st_ino, a.entry_timeout, a.attr_timeout) == (fnode.ino, TTL, TTL)
        assert stat.S_ISREG(a.st_mode) and stat.S_IMODE(a.st_mode) == OWN.file_mode
        assert (a.st_size, a.st_mtime_ns, a.st_uid) == (5, MTIME * 10**9, OWN.uid)
        b.reset()
        env.clock.t += 4
        a = await ops.lookup(d, b"file.txt", CTX)
        assert (a.st_ino, a.entry_timeout, a.attr_timeout) == (fnode.ino, TTL - 4, TTL - 4)
        a = await ops.getattr(fnode.ino, CTX)
        assert (a.st_ino, a.attr_timeout, a.st_size) == (fnode.ino, TTL - 4, 5)
        assert fnode.nlookup == 2 and b.requests == []
        # A directory too: the prefix was learnt at t=1000 (dir's probe).
        a = await ops.lookup(ROOT_INODE, b"dir", CTX)
        assert (a.st_ino, a.entry_timeout) == (d, 1000 + TTL - env.clock.t)
        assert a.entry_timeout == TTL - 7 and b.requests == []
        assert env.clock.t - t0 == 4

    run_ops(b, go)


def test_keys_that_are_not_utf8_keep_their_bytes(monkeypatch: pytest.MonkeyPatch):
    # Keys are bytes; these are Latin-1, not UTF-8.  Each maps to a name with
    # exactly its bytes, in readdir, lookup, xattrs and every request.
    b = Bucket()
    d, f, top = name_of(b"d\xe9"), name_of(b"caf\xe9"), name_of(b"\xff\xfe")
    b.put(f"{d}/{f}", b"latin", k="v")
    b.put(f"{d}/ok")
    b.put(top, b"x")

    async def go(env: OpsEnv) -> None:
        k = Kernel(env, monkeypatch)
        ops = env.ops
        # Looked up before any listing: the probe asks for exactly those bytes.
        a = await ops.lookup(ROOT_INODE, b"\xff\xfe", CTX)
        assert stat.S_ISREG(a.st_mode) and a.st_size == 1
        assert sorted(r.url.raw_path for r in b.requests) == [
            b"/bkt/%FF%FE", b"/bkt?list-type=2&prefix=%FF%FE%2F&encoding-type=url"]
        b.reset()
        fh = await ops.opendir(ROOT_INODE, CTX)
        assert names_of(await k.readdir_to_end(fh)) == [".", "..", d, top]
        dino = (await ops.lookup(ROOT_INODE, b"d\xe9", CTX)).st_ino
        assert await ops.getxattr(dino, b"user.s3.prefix", CTX) == b"d\xe9/"
        fh = await ops.opendir(dino, CTX)
        calls = await k.readdir_to_end(fh)
        assert names_of(calls) == [".", "..", f, "ok"]
        assert b"prefix=d%E9%2F" in calls[0].requests[0].url.raw_path
        b.reset()
        fino = (await ops.lookup(dino, b"caf\xe9", CTX)).st_ino
        assert await ops.getxattr(fino, b"user.k", CTX) == b"v"
        fh = (await ops.open(fino, os.O_RDONLY, CTX)).fh
        assert await ops.read(fh, 0, 100) == b"latin"
        assert [(r.method, r.url.raw_path) for r in b.requests] == [
            ("HEAD", b"/bkt/d%E9/caf%E9"), ("GET", b"/bkt/d%E9/caf%E9")]

    run_ops(b, go)


# -- extended attributes ------------------------------------------------------------------------


def test_getxattr_errno_table_and_one_shared_head(monkeypatch: pytest.MonkeyPatch):
    b = Bucket()
    b.put("dir/f.txt", b"hello", color="red")
    b.put("dir/sub/x")

    async def go(env: OpsEnv) -> None:
        k = Kernel(env, monkeypatch)
        ops = env.ops
        d = await lookup_dir(env, ROOT_INODE, b"dir")
        fh = await ops.opendir(d, CTX)
        assert names_of(await k.readdir_to_end(fh)) == [".", "..", "f.txt", "sub"]
        await ops.releasedir(fh)
        f = (await ops.lookup(d, b"f.txt", CTX)).st_ino  # answered by the listing
        sub = (await ops.lookup(d, b"sub", CTX)).st_ino
        assert len(b.requests) == 1  # the LIST
        b.reset()

        # Foreign namespaces: ENOTSUP; other unknown namespaces: ENOATTR; no request.
        for name in (b"security.selinux", b"system.posix_acl_access",
                     b"system.posix_acl_default", b"trusted.x"):
            assert await errno_of(ops.getxattr(f, name, CTX)) == errno.ENOTSUP, name
            assert await errno_of(ops.getxattr(d, name, CTX)) == errno.ENOTSUP, name
        assert await errno_of(ops.getxattr(f, b"foo.bar", CTX)) == pyfuse3.ENOATTR
        assert await errno_of(ops.getxattr(f, b"color", CTX)) == pyfuse3.ENOATTR
        assert b.requests == []

        # user.missing costs the one HEAD that every later question shares.
        assert await errno_of(ops.getxattr(f, b"user.missing", CTX)) == pyfuse3.ENOATTR
        (h,) = b.requests
        assert h.method == "HEAD" and h.url.raw_path == b"/bkt/dir/f.txt"
        assert "if-none-match" not in h.headers  # the listing's entry has no xattrs to keep
        assert await ops.getxattr(f, b"user.color", CTX) == b"red"
        assert await ops.getxattr(f, b"user.color", CTX) == b"red"  # size probe, then value
        etag = b.objects["dir/f.txt"][1]
        assert await ops.getxattr(f, b"user.s3.etag", CTX) == etag.strip('"').encode()
        names = set(await ops.listxattr(f, CTX))
        assert {b"user.color", b"user.s3.etag", b"user.s3.content-type", b"user.s3.last-modified"} <= names
        assert not any(n.startswith((b"security.", b"system.", b"trusted.")) for n in names)
        assert len(b.requests) == 1

        # Directories: s3.prefix, no request.
        assert await ops.getxattr(d, b"user.s3.prefix", CTX) == b"dir/"
        assert await ops.getxattr(sub, b"user.s3.prefix", CTX) == b"dir/sub/"
        assert list(await ops.listxattr(sub, CTX)) == [b"user.s3.prefix"]
        assert await errno_of(ops.getxattr(d, b"user.color", CTX)) == pyfuse3.ENOATTR
        assert len(b.requests) == 1

        # The object goes: within the TTL the cached answer holds; after it, ENOENT.
        del b.objects["dir/f.txt"]
        assert await ops.getxattr(f, b"user.color", CTX) == b"red"
        assert len(b.requests) == 1
        b.reset()
        env.clock.t += TTL + 1
        assert await errno_of(ops.getxattr(f, b"user.color", CTX)) == errno.ENOENT
        (h,) = b.requests
        assert h.method == "HEAD" and h.headers["if-none-match"] == etag  # revalidation
        assert await errno_of(ops.listxattr(f, CTX)) == errno.ENOENT
        assert [r.method for r in b.requests] == ["HEAD", "HEAD"]  # gone is not remembered
        assert await errno_of(ops.getattr(f, CTX)) == errno.ENOENT

    run_ops(b, go)


# -- statfs ---------------------------------------------------------------------------------------


def test_statfs_constants():
    b = Bucket()
    b.put("k")

    async def go(env: OpsEnv) -> None:
        s = await env.ops.statfs(CTX)
        assert (s.f_bsize, s.f_frsize, s.f_namemax) == (4096, 4096, 255)
        assert (s.f_blocks, s.f_bfree, s.f_bavail) == (0, 0, 0)
        assert (s.f_files, s.f_ffree, s.f_favail) == (0, 0, 0)
        assert b.requests == []

    run_ops(b, go)


# -- reading ----------------------------------------------------------------------------------------


def test_read_of_changed_object_is_estale():
    size = READ_CHUNK * 5 // 2
    v1 = (bytes(range(251)) * (size // 251 + 1))[:size]
    b = Bucket()
    b.put("big.bin", v1)
    b.put("small.txt", b"s" * 100)

    async def go(env: OpsEnv) -> None:
        ops = env.ops
        big = (await ops.lookup(ROOT_INODE, b"big.bin", CTX)).st_ino
        small = (await ops.lookup(ROOT_INODE, b"small.txt", CTX)).st_ino
        b.reset()
        etag = b.objects["big.bin"][1]

        fh = (await ops.open(big, os.O_RDONLY, CTX)).fh
        assert b.requests == []  # the lookup's answer is fresh
        assert await ops.read(fh, 0, 4096) == v1[:4096]
        (g,) = b.requests
        assert g.method == "GET" and g.url.raw_path == b"/bkt/big.bin"
        assert g.headers["range"] == f"bytes=0-{READ_CHUNK - 1}"
        assert g.headers["if-match"] == etag
        # Reads inside the buffered chunk need no request.
        assert await ops.read(fh, 4096, 65536) == v1[4096:4096 + 65536]
        assert await ops.read(fh, READ_CHUNK - 10, 10) == v1[READ_CHUNK - 10:READ_CHUNK]
        assert len(b.requests) == 1

        # A small file is fetched to its end; past the end is empty, with no request.
        sfh = (await ops.open(small, os.O_RDONLY, CTX)).fh
        assert await ops.read(sfh, 0, 4096) == b"s" * 100
        assert b.requests[-1].headers["range"] == "bytes=0-99"
        assert await ops.read(sfh, 100, 10) == b""
        assert len(b.requests) == 2
        b.reset()

        # The object is replaced behind the mount.
        b.put("big.bin", b"version 2" * 1000)
        assert b.objects["big.bin"][1] != etag
        assert await ops.read(fh, 100, 100) == v1[100:200]  # still the buffer: no request
        assert b.requests == []
        assert await errno_of(ops.read(fh, READ_CHUNK + 5, 100)) == errno.ESTALE
        (g,) = b.requests  # one GET, not retried: 412 is an answer
        assert g.headers["if-match"] == etag
        assert g.headers["range"] == f"bytes={READ_CHUNK + 5}-{2 * READ_CHUNK + 4}"

        await ops.release(fh)
        assert await errno_of(ops.read(fh, 0, 1)) == errno.EBADF

    run_ops(b, go)


# -- root statistics and kernel invalidation ----------------------------------------------------------


async def stats(env: OpsEnv) -> dict[str, int]:
    """The root's ``user.metafs.*`` xattrs, through listxattr and getxattr (and by their
    previous name, ``metafs.*``, which stays readable and is not listed)."""
    out = {}
    names = await env.ops.listxattr(ROOT_INODE, CTX)
    assert not any(n.startswith(b"metafs.") for n in names)
    for name in names:
        if name.startswith(b"user.metafs."):
            key = name.decode()[len("user.metafs."):]
            out[key] = int(await env.ops.getxattr(ROOT_INODE, name, CTX))
            assert int(await env.ops.getxattr(ROOT_INODE, name[len(b"user."):], CTX)) == out[key]
    return out


def figures(**kw: int) -> dict[str, int]:
    base = {"inodes": 1, "open-dirs": 0, "cache.objects": 0, "cache.negatives": 0,
            "cache.prefixes": 0, "cache.listings": 0, "cache.listed-entries": 0,
            "invalidations": 0, "walk-pages": 0, "range-requests": 0}
    base.update({k.replace("_", "-").replace("cache-", "cache."): v for k, v in kw.items()})
    return base


def test_root_statistics_and_released_listing_invalidation(monkeypatch: pytest.MonkeyPatch):
    b = Bucket()
    for i in range(8):
        b.put(f"big/f{i}")
    b.put("small/a")
    b.put("small/b")

    async def go(env: OpsEnv) -> None:
        k = Kernel(env, monkeypatch)
        ops = env.ops
        assert await stats(env) == figures()
        assert await ops.getxattr(ROOT_INODE, b"user.s3.bucket", CTX) == b"bkt"
        assert await ops.getxattr(ROOT_INODE, b"user.s3.prefix", CTX) == b""
        assert b.requests == []

        big = await lookup_dir(env, ROOT_INODE, b"big", probe=True)
        fh = await ops.opendir(big, CTX)
        assert await stats(env) == figures(inodes=2, open_dirs=1, cache_prefixes=1)

        # The listing (9 weight units) is larger than the bound (5): served to
        # this handle, not kept.  The buffer takes '.', '..' and f0…f3.
        c = await k.readdir(fh, 0, room=6)
        assert c.names == [".", "..", "f0", "f1", "f2", "f3"] and len(c.requests) == 1
        assert env.inodes.child(big, "f4") is None
        assert await stats(env) == figures(inodes=6, open_dirs=1, cache_prefixes=1)
        assert env.invalidated == []

        # Releasing it: the names the kernel took are backed by nothing now.
        await ops.releasedir(fh)
        assert env.invalidated == [(big, f"f{i}".encode()) for i in range(4)]
        assert await stats(env) == figures(inodes=6, cache_prefixes=1, invalidations=4)
        env.invalidated.clear()

        # A small listing is kept: releasing it invalidates nothing ...
        small = await lookup_dir(env, ROOT_INODE, b"small", probe=True)
        fh = await ops.opendir(small, CTX)
        assert names_of(await k.readdir_to_end(fh)) == [".", "..", "a", "b"]
        await ops.releasedir(fh)
        assert env.invalidated == []
        assert await stats(env) == figures(inodes=9, cache_prefixes=2, cache_listings=1,
                                           cache_listed_entries=3, invalidations=4)
        # ... until the bound evicts it for the root's listing (3 + 3 > 5).
        fh = await ops.opendir(ROOT_INODE, CTX)
        assert names_of(await k.readdir_to_end(fh)) == [".", "..", "big", "small"]
        assert env.invalidated == [(small, b"a"), (small, b"b")]
        assert await stats(env) == figures(inodes=9, open_dirs=1, cache_prefixes=2,
                                           cache_listings=1, cache_listed_entries=3,
                                           invalidations=6)
        assert env.listings.fresh("small/") is None and env.listings.fresh("") is not None
        await ops.releasedir(fh)
        assert env.invalidated == [(small, b"a"), (small, b"b")]  # the root's is kept
        assert (await stats(env))["open-dirs"] == 0

    run_ops(b, go, max_entries=5)

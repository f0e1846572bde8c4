"""A reference model of the documented caching rules, run against random operation sequences.

mountpoint-s3's reftests are the prior art: random sequences of changes made
*behind* the mount (PUT with user metadata, DELETE, a metadata change, a file
created beside a directory of the same name) interleaved with what a kernel
asks the mount (lookups walked from the root, readdir paged through small
reply buffers on handles kept open across steps, getattr,
getxattr/listxattr, forget) and with time passing (less than, exactly and
more than the TTL and the negative TTL), and after every answer a check
against a small, literal model of SEMANTICS.md.

The mount is the real :class:`~metafs.fuse_ops.Operations` over the real
metadata layer and S3 client, wired as :func:`metafs.mount.build` does
(``tests.fakes.run_ops``), over the in-memory :class:`~tests.fakes.Bucket`,
with the stepped :class:`~tests.fakes.Clock`.  Hypothesis's state machines
are synchronous, so each example runs the trio loop in a thread of its own
and every step hands it one call (``trio.from_thread.run``); the bucket and
the clock only change between calls.  No background task runs (no
readahead, no list-ahead), as in ``run_ops``.  The kernel is modelled only
as far as metafs can tell: the lookup counts it holds, and its reply
buffer; it is assumed to ask even when its own cache would answer.

**The model.**  The bucket's whole history: each change appends (time,
snapshot of every key's :class:`Version`; each write has a new ETag and,
unless only its metadata changed, a new size, so ``st_size`` tells versions
apart).  Snapshot *i* was held during ``[t_i, t_(i+1)]``, both ends included
(a request at ``t`` may see the state just before or just after a change
made at the same ``t``).  "Names and types", "Directory wins": a name is a
directory while some key starts with ``name/``; a file while its object
exists and no key does; else nothing.  A file or an absence is two facts,
the object's and ``name/``'s, which a listing may learn from two pages
fetched at different instants ("a file held back until the next page proves
no directory of its name follows"), so each fact must hold at *some*
instant of the answer's window, not necessarily the same one.  The windows:

* Tenet 1, "the kernel's entry and attribute timeouts are the remaining
  validity of the cache entry they came from": an answer handed to the
  kernel with timeout ``T`` at ``now`` must still be good at ``now + T``,
  so its evidence is no older than ``now + T - W``, where ``W`` is the trust
  the rules give that kind of evidence:

  - files, their attributes, and directories: ``W`` = the TTL ("Within the
    metadata TTL ... send no request"; "After the TTL, a file's metadata is
    revalidated ... stats it again more than one TTL later sees the new
    size, metadata, or ENOENT");
  - names a listing shows: the TTL from the request of the page that showed
    them ("A listing is trusted page by page"), the same window;
  - absences: the negative TTL from the probe ("A missing name is remembered
    for the negative TTL"), or the TTL from the start of a listing of the
    parent ("... its absences for one TTL from the start of the listing").
    A listing starts at a ``readdir`` at offset 0, or at a lookup probe's
    flat page that showed the directory ("A probe's page is a listing
    page": its names, present or absent, are trusted for the TTL from its
    request), so the model accepts a listing's window only if such a call
    was made, or such a page requested, at ``now + T - TTL``.

* xattrs carry no timeout: their evidence must be younger than one TTL;
  ENOENT from getattr or getxattr, younger than the negative TTL.
* ``T`` is never more than the rule's ``W``, and an answer served at ``T ==
  0`` (an expired entry) still needs evidence younger than ``W``, except
  readdir on a handle that keeps an older listing ("Directory listings are
  snapshots"): those entries come with ``T == 0`` and need only be names
  the bucket had at some time.
* The one documented way to show a file although ``name/`` has keys: "A
  name known as a file is revalidated by HEAD only ... becomes a directory
  at the next listing of its parent (or when the object disappears)".  The
  model allows it while metafs knows the name as a file (``self.sticky``):
  its last answer about the name said "file", or a listing page it fetched
  did (the model knows what each LIST page said, delimiter or flat: the
  bucket's state at that request); an answer "directory" or "missing", or
  a page showing ``name/``, ends it.  It covers lookups, and listed files whose attributes
  come from such a HEAD (readdir prefers a fresher HEAD to the listing's).

Because every window ends at ``now``, a change made more than ``W`` ago
excludes every older snapshot: the same check proves "shows every change by
one TTL after it" (after time passes by more than the TTL, the next answer
reflects the bucket exactly), and a value the bucket never held is never
allowed at all.  Times are multiples of 0.25 s, so the window arithmetic is
exact and the boundaries (a change exactly a TTL ago) are tested as such.

**Also checked.**  Request counts: only HEAD and GET are sent; readdir
sends no HEAD ("Listing a directory costs its ListObjectsV2 pages ... and
no HEAD"); a lookup sends at most one HEAD and one LIST per name ("A name
no listing has shown costs one HEAD and one LIST"); within the TTL a
repeated getattr or getxattr sends nothing ("Within the metadata TTL,
stat, ls -l and getfattr of names already seen send no request"), nor does
a lookup in a directory just listed ("A directory listed within the TTL
answers lookups ... with no request").  A listing fetched and read whole in
one step shows exactly the bucket's directory, names, kinds and sizes
(directory wins, across pages of 1, 2, 3 or 1,000 keys).  Lookup counts:
after every step metafs's inode table holds exactly the inodes the model's
kernel holds, with the same counts ("The kernel's forget is honoured
exactly"); an inode number is never given to a second name ("never reused
during a mount"), and a name keeps its inode while the kernel holds it.

The violations found while building and running the model are at the end of
this module, minimised, one plain test each.
"""

from __future__ import annotations

import dataclasses
import errno
import itertools
import os
import stat
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pyfuse3
import pytest
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from pyfuse3 import ROOT_INODE, FUSEError

from tests.fakes import NEG_TTL, TTL, Bucket, OpsEnv, run_ops

CTX: Any = None  # pyfuse3.RequestContext: the handlers never read it
TOKEN: Any = object()  # pyfuse3.ReaddirToken: passed through to readdir_reply untouched

# Names: 'a-b' sorts between 'a' and 'a/' ('-' < '/'), so a file 'a' is held
# back across pages while 'a-b' entries come between it and a possible 'a/'.
COMPONENTS = ("a", "a-b", "b")
PATHS = tuple("/".join(p) for n in (1, 2, 3) for p in itertools.product(COMPONENTS, repeat=n))
# Keys written: every path of one or two components, and a few of three.
KEYS = tuple(p for p in PATHS if p.count("/") < 2) + ("a/a/a", "a/a-b/b", "b/b/b")
META_KEYS = ("color", "owner")
META_VALUES = ("red", "blue", "x y")
# Steps of time around both TTLs (TTL 10 s, negative TTL 5 s): less, exactly, more.
# Multiples of 0.25 s: every sum is exact, so boundaries are hit exactly.
STEPS = (0.25, 1.0, NEG_TTL - 0.25, NEG_TTL, NEG_TTL + 0.25, TTL - 0.25, TTL, TTL + 0.25, 3 * TTL)
assert all((s * 4).is_integer() for s in STEPS)

# Time passes between the steps of one process too: half the mount's steps come after a pause.
pauses = st.one_of(st.just(0.0), st.sampled_from(STEPS))
metas = st.lists(st.tuples(st.sampled_from(META_KEYS), st.sampled_from(META_VALUES)),
                 max_size=2, unique_by=lambda kv: kv[0]).map(lambda kvs: tuple(sorted(kvs)))


# -- the bucket's history ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Version:
    """One write of an object: unique ETag, size and user metadata."""

    etag: str
    size: int
    meta: tuple[tuple[str, str], ...]


Snapshot = dict[str, Version]


def has_children(snap: Snapshot, path: str) -> bool:
    p = path + "/"
    return any(k.startswith(p) for k in snap)


def kind(snap: Snapshot, path: str) -> tuple[Any, ...]:
    """What ``path`` is in a snapshot: ('dir',), ('file', size) or ('absent',) (directory wins)."""
    if has_children(snap, path):
        return ("dir",)
    v = snap.get(path)
    return ("absent",) if v is None else ("file", v.size)


def directory(snap: Snapshot, dir_path: str) -> dict[str, tuple[Any, ...]]:
    """The entries a complete listing of ``dir_path`` ('' for the root) shows in ``snap``."""
    base = dir_path + "/" if dir_path else ""
    names = {k[len(base):].split("/")[0] for k in snap if k.startswith(base)}
    return {n: kind(snap, base + n) for n in names}


def list_page(snap: Snapshot, dir_path: str, token: str | None, size: int) -> list[tuple[str, bool]]:
    """(name, is_dir) in the order a delimiter LIST page of ``dir_path`` shows them (S3's rules).

    Objects and common prefixes in key order, after ``token`` (the fake's
    tokens are the last key or prefix of the page before), ``size`` of them.
    """
    base = dir_path + "/" if dir_path else ""
    items = sorted({base + k[len(base):].partition("/")[0] + ("/" if "/" in k[len(base):] else "")
                    for k in snap if k.startswith(base)})
    items = [i for i in items if token is None or i > token][:size]
    return [(i[len(base):].removesuffix("/"), i.endswith("/")) for i in items]


def flat_page(snap: Snapshot, prefix: str, size: int) -> list[str]:
    """The keys a flat (no delimiter) LIST page of ``prefix`` from the start shows: a probe's."""
    return sorted(k for k in snap if k.startswith(prefix))[:size]


def dirs_shown(prefix: str, keys: list[str]) -> set[str]:
    """The directories (no trailing '/') a flat page of ``prefix`` shows: ``prefix`` and below."""
    out = {prefix.removesuffix("/")}
    for k in keys:
        i = k.find("/", len(prefix))
        while i != -1:
            out.add(k[:i])
            i = k.find("/", i + 1)
    return out


def join(dir_path: str, name: str) -> str:
    return f"{dir_path}/{name}" if dir_path else name


class History:
    """The bucket's snapshots, each with the time it was made."""

    def __init__(self, t0: float) -> None:
        self.changes: list[tuple[float, Snapshot]] = [(t0, {})]

    @property
    def now(self) -> Snapshot:
        return self.changes[-1][1]

    def record(self, t: float, snap: Snapshot) -> None:
        self.changes.append((t, dict(snap)))

    def held(self, since: float, after: float) -> list[Snapshot]:
        """Snapshots held at some instant ``s`` with ``s >= since`` and ``s > after``."""
        out = []
        for i, (_, snap) in enumerate(self.changes):
            end = self.changes[i + 1][0] if i + 1 < len(self.changes) else float("inf")
            if end >= since and end > after:
                out.append(snap)
        return out

    def story(self, path: str) -> str:
        """The path's history, for failure messages."""
        lines, last = [], None
        for t, snap in self.changes:
            k = kind(snap, path), snap.get(path)
            if k != last:
                lines.append(f"  t={t}: {k[0]} (object: {k[1]})")
                last = k
        return "\n".join(lines)


# -- the kernel's side --------------------------------------------------------------------------

@dataclasses.dataclass
class Reply:
    name: str
    ino: int
    is_dir: bool
    size: int
    timeout: float
    next_id: int


class ReplyBuffer:
    """A readdir reply buffer with room for ``room`` entries (``pyfuse3.readdir_reply``)."""

    current: ReplyBuffer | None = None

    def __init__(self, room: int) -> None:
        self.room = room
        self.accepted: list[Reply] = []

    @staticmethod
    def reply(token: Any, name: bytes, attrs: pyfuse3.EntryAttributes, next_id: int) -> bool:
        buf = ReplyBuffer.current
        assert token is TOKEN and buf is not None, "readdir_reply outside readdir"
        assert attrs.attr_timeout == attrs.entry_timeout
        if len(buf.accepted) >= buf.room:
            return False
        buf.accepted.append(Reply(name.decode(), attrs.st_ino, stat.S_ISDIR(attrs.st_mode),
                                  attrs.st_size, attrs.entry_timeout, next_id))
        return True


@dataclasses.dataclass
class KernelInode:
    """An inode the model's kernel holds: what it was given for, and its lookup count."""

    ino: int
    parent: int
    name: str
    path: str  # the key it names, without a trailing '/'
    is_dir: bool
    count: int = 0


@dataclasses.dataclass
class DirHandle:
    fh: int
    ino: int
    path: str
    next: int = 0  # the kernel's next offset
    started: bool = False
    done: bool = False
    names: list[str] = dataclasses.field(default_factory=list)


class Mount:
    """One ``run_ops`` environment, its trio loop in a thread; ``call`` runs one handler."""

    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.env: OpsEnv
        self._token: trio.lowlevel.TrioToken
        self._done: trio.Event
        self._thread = threading.Thread(target=self._main, name="trio-mount", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        async def body(env: OpsEnv) -> None:
            self.env = env
            self._token = trio.lowlevel.current_trio_token()
            self._done = trio.Event()
            self._ready.set()
            await self._done.wait()

        try:
            run_ops(self.bucket, body)
        except BaseException as e:  # noqa: BLE001 - handed to the test's thread
            self._error = e
            self._ready.set()

    def call(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def close(self) -> None:
        trio.from_thread.run_sync(self._done.set, trio_token=self._token)
        self._thread.join()
        if self._error is not None:
            raise self._error


@dataclasses.dataclass
class Outcome:
    value: Any
    errno: int | None
    requests: list[httpx.Request]


def is_list(r: httpx.Request) -> bool:
    return r.method == "GET" and r.url.raw_path.split(b"?")[0] in (b"/bkt", b"/bkt/")


def delimiter_list_of(r: httpx.Request) -> str | None:
    """The directory (no trailing '/') a readdir-style LIST asks for, or None."""
    if not is_list(r) or r.url.params.get("delimiter") != "/":
        return None
    return r.url.params.get("prefix", "").removesuffix("/")


def flat_list_of(r: httpx.Request) -> str | None:
    """The prefix (``name/``) a lookup probe's flat LIST asks for, or None."""
    if not is_list(r) or "delimiter" in r.url.params:
        return None
    assert not {"continuation-token", "start-after"} & set(r.url.params), "only a probe lists flat"
    return r.url.params["prefix"]


# -- the machine -----------------------------------------------------------------------------------

class ReferenceModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.bucket = Bucket()
        self.mount = Mount(self.bucket)
        self.env = self.mount.env
        self.clock = self.env.clock
        self.history = History(self.clock.t)
        self.versions = itertools.count(1)
        self.inodes: dict[int, KernelInode] = {ROOT_INODE: KernelInode(ROOT_INODE, ROOT_INODE, "", "",
                                                                      True, 1)}
        self.given: dict[int, tuple[int, str, bool]] = {}  # every inode number ever handed out
        self.slots: dict[tuple[int, str], int] = {}  # (parent, name) -> the latest inode given
        self.forgotten: list[int] = []
        self.handles: dict[int, DirHandle] = {}
        self.sticky: dict[str, bool] = {}  # the mount's last word on a name was "file"
        self.listing_starts: dict[str, list[float]] = {}  # dir -> times of readdir at offset 0
        # ino -> end of the attribute timeout of its last lookup, getattr, or fresh ls
        self.attr_until: dict[int, float] = {}
        self.xattr_until: dict[str, float] = {}  # key -> a TTL after a getxattr that sent a HEAD

    def teardown(self) -> None:
        self.mount.close()

    @property
    def now(self) -> float:
        return self.clock.t

    # -- calling the mount ---------------------------------------------------------------
    def call(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Outcome:
        before = len(self.bucket.requests)
        try:
            value, err = self.mount.call(fn, *args), None
        except FUSEError as e:
            value, err = None, e.errno
        sent = self.bucket.requests[before:]
        assert all(r.method in ("HEAD", "GET") for r in sent), "a request that is not a read"
        for r in sent:
            if (prefix := flat_list_of(r)) is not None:
                self.probe_page(prefix)
                continue
            d = delimiter_list_of(r)
            if d is None:
                continue
            # A listing page may replace HEAD-level metadata of its files.
            for key in [k for k in self.xattr_until if k.rpartition("/")[0] == d]:
                del self.xattr_until[key]
            # What the page showed is what metafs knows of those names: a file
            # there is "known as a file" even if the kernel was never told.
            # (A seeded listing's next page starts after a key: the fake's
            # tokens are keys too.)
            token = r.url.params.get("continuation-token") or r.url.params.get("start-after")
            for name, is_dir in list_page(self.history.now, d, token, self.bucket.page_size):
                self.sticky[join(d, name)] = not is_dir
        return Outcome(value, err, sent)

    def probe_page(self, prefix: str) -> None:
        """A probe's flat page of ``prefix`` was requested now: every directory it shows is
        listed from it ("A probe's page is a listing page"), as far as the page reaches."""
        keys = flat_page(self.history.now, prefix, self.bucket.page_size)
        dirs = dirs_shown(prefix, keys) if keys else set()  # empty: no directory to list
        for d in dirs:
            # Its absences are trusted a TTL from this request, like a listing's from its start.
            self.listing_starts.setdefault(d, []).append(self.now)
            if d != prefix.removesuffix("/"):
                self.sticky[d] = False
        for key in [k for k in self.xattr_until if k.rpartition("/")[0] in dirs]:
            del self.xattr_until[key]  # its listings may replace HEAD-level metadata
        for k in keys:
            if k not in dirs:
                self.sticky[k] = True

    # -- the checks ----------------------------------------------------------------------------
    def fail(self, what: str, path: str, window: str) -> None:
        raise AssertionError(f"at t={self.now}: {what}\n  window: {window}\n"
                             f"history of {path!r}:\n{self.history.story(path)}")

    def check_name(self, path: str, dir_path: str, answer: tuple[Any, ...], timeout: float, *,
                   snapshot_ok: bool = False, sticky_ok: bool = False) -> None:
        """An answer about a name (lookup or readdir entry) against its allowed window."""
        now = self.now
        if snapshot_ok and timeout == 0:
            # "Directory listings are snapshots": an open handle keeps its listing;
            # its expired entries come with no kernel caching, and need only be real.
            snaps = self.history.held(float("-inf"), float("-inf"))
            window = "any time (readdir of an expired listing kept by an open handle)"
            if not self._allowed(snaps, path, answer, True):
                self.fail(f"{path!r} shown as {answer}, which the bucket never had", path, window)
            return
        if answer[0] == "absent":
            # Probe: the negative TTL from the probe.  Listing: the TTL from its start
            # (a readdir at offset 0, or a probe's flat page that showed the directory).
            lo_probe = now + timeout - NEG_TTL
            assert timeout <= max(TTL, NEG_TTL)
            snaps = self.history.held(lo_probe, now - NEG_TTL)
            starts = [t for t in self.listing_starts.get(dir_path, []) if t + TTL == now + timeout]
            for t in starts:
                snaps += self.history.held(t, now - TTL)
            window = f"absent at some s >= {lo_probe} (probe)" + (
                f" or s >= {starts} (listing started then)" if starts else "")
        else:
            assert timeout <= TTL, f"{path!r} handed to the kernel for {timeout} s > TTL"
            lo = now + timeout - TTL
            snaps = self.history.held(lo, now - TTL)
            window = f"s >= {lo} (trusted until {now + timeout})"
        if not self._allowed(snaps, path, answer, sticky_ok):
            self.fail(f"{path!r} shown as {answer} with timeout {timeout}", path, window)

    @staticmethod
    def _allowed(snaps: list[Snapshot], path: str, answer: tuple[Any, ...], sticky_ok: bool) -> bool:
        """Whether ``snaps`` (those held within the window) support ``answer`` about ``path``.

        A directory needs keys under ``path/`` at some instant.  A file or an
        absence is two facts, the object's and ``path/``'s, which a listing may
        learn from two pages requested at different instants ("a file held back
        until the next page proves no directory of its name follows"): each must
        hold at some instant of the window, not necessarily the same one.
        """
        if answer == ("dir",):
            return any(has_children(s, path) for s in snaps)
        # "A name known as a file is revalidated by HEAD only": the name may have
        # become a directory behind the mount, and the mount not know it yet.
        no_dir = (sticky_ok and answer[0] == "file") or any(not has_children(s, path) for s in snaps)
        if answer[0] == "file":
            return no_dir and any((v := s.get(path)) is not None and v.size == answer[1] for s in snaps)
        return no_dir and any(path not in s for s in snaps)

    def check_object(self, path: str, answer: int | tuple[str, Any] | None,
                     timeout: float | None) -> None:
        """What the mount says of an object: getattr's size, the xattrs' (ETag, user
        metadata), or None for ENOENT."""
        now = self.now
        if answer is None:
            lo, after = now - NEG_TTL, now - NEG_TTL  # ENOENT: "404 removes the file"
        elif timeout is None:
            lo, after = now - TTL, now - TTL  # xattrs: no kernel timeout, a TTL of trust
        else:
            assert timeout <= TTL, f"{path!r}: attributes for {timeout} s > TTL"
            lo, after = now + timeout - TTL, now - TTL
        for snap in self.history.held(lo, after):
            v = snap.get(path)
            if v is None:
                if answer is None:
                    return
            elif answer in (v.size, (v.etag, v.meta)):
                return
        self.fail(f"object {path!r} shown as {answer} (timeout {timeout})", path,
                  f"s >= {lo}, s > {after}")

    # -- the kernel's inodes ------------------------------------------------------------------
    def handed(self, ino: int, parent: int, name: str, path: str, is_dir: bool) -> None:
        """The kernel took ``ino`` for (parent, name): one more lookup."""
        what = (parent, name, is_dir)
        assert ino != 0 and ino != ROOT_INODE
        if self.given.setdefault(ino, what) != what:
            raise AssertionError(f"inode {ino} reused: was {self.given[ino]}, now {what}")
        prev = self.slots.get((parent, name))
        if prev is not None and prev != ino:
            held = self.inodes.get(prev)
            assert held is None or held.is_dir != is_dir, (
                f"{path!r}: new inode {ino} while the kernel still holds {prev} of the same kind")
        self.slots[(parent, name)] = ino
        node = self.inodes.setdefault(ino, KernelInode(ino, parent, name, path, is_dir))
        node.count += 1

    def learned_gone(self, path: str) -> None:
        """metafs found the object ``path`` gone (or the name no file): what it
        cached of the object no longer answers, so a stat or getxattr may ask again."""
        self.xattr_until.pop(path, None)
        for ino, node in self.inodes.items():
            if node.path == path:
                self.attr_until.pop(ino, None)

    def shown(self, path: str, answer: tuple[Any, ...]) -> None:
        self.sticky[path] = answer[0] == "file"

    def held_inodes(self, *, is_dir: bool | None = None) -> list[int]:
        return sorted(i for i, n in self.inodes.items() if is_dir is None or n.is_dir == is_dir)

    @invariant()
    def inode_table_is_the_kernels(self) -> None:
        table = self.env.inodes.nodes
        assert set(table) == set(self.inodes), (
            f"metafs holds {sorted(set(table) - set(self.inodes))} the kernel does not, "
            f"and lacks {sorted(set(self.inodes) - set(table))}")
        for ino, node in self.inodes.items():
            # held(), not table[ino]: reading a readdirplus inode as a Node would make it one,
            # and the model would never see forgets of inodes that are not Nodes.
            held = self.env.inodes.held(ino)
            assert held == (node.count, node.is_dir), (ino, held, node.count)

    # -- the bucket, changed behind the mount -------------------------------------------------
    @initialize(page_size=st.sampled_from([1, 2, 3, 1000]),
                keys=st.lists(st.sampled_from(KEYS), max_size=8, unique=True))
    def start(self, page_size: int, keys: list[str]) -> None:
        """LIST pages of 1, 2, 3 or 1,000 keys; a bucket with up to 8 keys at the start."""
        self.bucket.page_size = page_size
        for key in keys:
            self.write(key, ())

    def write(self, key: str, meta: tuple[tuple[str, str], ...], size: int | None = None) -> None:
        n = next(self.versions)
        size = n if size is None else size  # a new size per write: st_size tells versions apart
        self.bucket.put(key, b"x" * size, f'"v{n}"', **dict(meta))
        snap = dict(self.history.now)
        snap[key] = Version(f"v{n}", size, meta)
        self.history.record(self.now, snap)

    @rule(key=st.sampled_from(KEYS), meta=metas)
    def put(self, key: str, meta: tuple[tuple[str, str], ...]) -> None:
        self.write(key, meta)

    @precondition(lambda self: self.history.now)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.history.now)))
        del self.bucket.objects[key]
        snap = dict(self.history.now)
        del snap[key]
        self.history.record(self.now, snap)

    @precondition(lambda self: self.history.now)
    @rule(data=st.data(), meta=metas)
    def change_metadata(self, data: st.DataObject, meta: tuple[tuple[str, str], ...]) -> None:
        """Same key, same size, new user metadata and a new ETag."""
        key = data.draw(st.sampled_from(sorted(self.history.now)))
        self.write(key, meta, self.history.now[key].size)

    @precondition(lambda self: any("/" in k for k in self.history.now))
    @rule(data=st.data(), meta=metas)
    def file_beside_directory(self, data: st.DataObject, meta: tuple[tuple[str, str], ...]) -> None:
        """An object ``a`` beside keys under ``a/``: the directory wins."""
        key = data.draw(st.sampled_from(sorted(k for k in self.history.now if "/" in k)))
        self.write(key.rpartition("/")[0], meta)

    @rule(dt=st.sampled_from(STEPS))
    def time_passes(self, dt: float) -> None:
        self.clock.t += dt

    # -- the mount, asked as the kernel would ---------------------------------------------------
    def known_paths(self) -> list[str]:
        """Every key the bucket ever had, and each of its parents."""
        keys = {k for _, snap in self.history.changes for k in snap}
        return sorted({k.rsplit("/", n)[0] for k in keys for n in range(k.count("/") + 1)})

    @rule(data=st.data(), known=st.booleans(), dt=pauses)
    def lookup(self, data: st.DataObject, known: bool, dt: float) -> None:
        """Walk a path from the root, one lookup per component, as the kernel resolves it.

        Half of the paths are names the bucket has had (or their parents), half any.
        """
        self.clock.t += dt
        path = data.draw(st.sampled_from(self.known_paths() if known and self.history.changes[1:]
                                         else PATHS))
        parent, dir_path = ROOT_INODE, ""
        for name in path.split("/"):
            p = join(dir_path, name)
            sticky = self.sticky.get(p, False)
            o = self.call(self.env.ops.lookup, parent, name.encode(), CTX)
            assert o.errno is None, f"lookup of {p!r}: errno {o.errno}"
            a: pyfuse3.EntryAttributes = o.value
            assert len([r for r in o.requests if r.method == "HEAD"]) <= 1
            assert len([r for r in o.requests if is_list(r)]) <= 1
            if a.st_ino == 0:
                answer: tuple[Any, ...] = ("absent",)
            elif stat.S_ISDIR(a.st_mode):
                answer = ("dir",)
            else:
                answer = ("file", a.st_size)
                assert a.attr_timeout == a.entry_timeout
            self.check_name(p, dir_path, answer, a.entry_timeout, sticky_ok=sticky)
            self.shown(p, answer)
            if answer[0] != "file":
                self.learned_gone(p)
            if answer[0] == "absent":
                return
            self.handed(a.st_ino, parent, name, p, answer[0] == "dir")
            if answer[0] == "file":
                self.attr_until[a.st_ino] = self.now + a.attr_timeout
                return  # a file in the middle of a path: ENOTDIR from the kernel
            parent, dir_path = a.st_ino, p

    @precondition(lambda self: len(self.inodes) > 1)
    @rule(data=st.data())
    def forget(self, data: st.DataObject) -> None:
        open_dirs = {h.ino for h in self.handles.values()}
        choices = [i for i in self.held_inodes() if i != ROOT_INODE
                   and (i not in open_dirs or self.inodes[i].count > 1)]
        if not choices:
            return
        ino = data.draw(st.sampled_from(choices))
        node = self.inodes[ino]
        # An open directory keeps one reference (the kernel's open file).
        most = node.count - (1 if ino in open_dirs else 0)
        n = data.draw(st.integers(1, most))
        self.call(self.env.ops.forget, [(ino, n)])
        node.count -= n
        if node.count == 0:
            del self.inodes[ino]
            self.forgotten.append(ino)
            self.attr_until.pop(ino, None)

    @precondition(lambda self: self.forgotten)
    @rule(data=st.data())
    def getattr_of_a_forgotten_inode(self, data: st.DataObject) -> None:
        ino = data.draw(st.sampled_from(self.forgotten))
        o = self.call(self.env.ops.getattr, ino, CTX)
        assert o.errno == errno.ESTALE and not o.requests

    @precondition(lambda self: any(not n.is_dir for n in self.inodes.values()))
    @rule(data=st.data(), dt=pauses)
    def getattr(self, data: st.DataObject, dt: float) -> None:
        self.clock.t += dt
        ino = data.draw(st.sampled_from(self.held_inodes(is_dir=False)))
        path = self.inodes[ino].path
        fresh = self.attr_until.get(ino, float("-inf")) > self.now
        o = self.call(self.env.ops.getattr, ino, CTX)
        if fresh:  # "Within the metadata TTL, stat ... of names already seen send no request"
            assert not o.requests, f"getattr of {path!r} within its timeout sent {o.requests}"
        if o.errno == errno.ENOENT:
            self.check_object(path, None, None)
            self.learned_gone(path)
            return
        assert o.errno is None, f"getattr of {path!r}: errno {o.errno}"
        a: pyfuse3.EntryAttributes = o.value
        assert a.st_ino == ino and stat.S_ISREG(a.st_mode)
        self.check_object(path, a.st_size, a.attr_timeout)
        self.attr_until[ino] = self.now + a.attr_timeout
        again = self.call(self.env.ops.getattr, ino, CTX)
        assert not again.requests and again.value.st_size == a.st_size

    @precondition(lambda self: any(not n.is_dir for n in self.inodes.values()))
    @rule(data=st.data(), dt=pauses)
    def xattrs(self, data: st.DataObject, dt: float) -> None:
        self.clock.t += dt
        ino = data.draw(st.sampled_from(self.held_inodes(is_dir=False)))
        path = self.inodes[ino].path
        fresh = self.xattr_until.get(path, float("-inf")) > self.now
        o = self.call(self.env.ops.listxattr, ino, CTX)
        if fresh:  # "... and getfattr of names already seen send no request"
            assert not o.requests, f"getxattr of {path!r} within the TTL sent {o.requests}"
        if o.errno == errno.ENOENT:
            self.check_object(path, None, None)
            self.learned_gone(path)
            return
        assert o.errno is None, f"listxattr of {path!r}: errno {o.errno}"
        if o.requests:
            self.xattr_until[path] = self.now + TTL
        names = set(o.value)
        # Within the same instant the answers are one and the same HEAD, sent no more.
        values = {}
        for name in sorted(names | {b"user.absent"}):
            g = self.call(self.env.ops.getxattr, ino, name, CTX)
            assert not g.requests
            if name == b"user.absent":
                assert g.errno == pyfuse3.ENOATTR
            else:
                assert g.errno is None, (name, g.errno)
                values[name] = g.value
        # The user metadata: user.* but metafs's own user.s3.* and the freedesktop aliases.
        meta = tuple(sorted((n[len(b"user."):].decode(), v.decode()) for n, v in values.items()
                            if n.startswith(b"user.") and not n.startswith(
                                (b"user.s3.", b"user.mime_type", b"user.xdg."))))
        self.check_object(path, (values[b"user.s3.etag"].decode(), meta), None)

    # -- readdir -------------------------------------------------------------------------------------
    def readdir_call(self, h: DirHandle, start: int, room: int) -> list[Reply]:
        """One readdir call from ``start``; checks and counts what the buffer took."""
        if start == 0:
            self.listing_starts.setdefault(h.path, []).append(self.now)
        buf = ReplyBuffer.current = ReplyBuffer(room)
        try:
            o = self.call(self.env.ops.readdir, h.fh, start, TOKEN)
        finally:
            ReplyBuffer.current = None
        assert o.errno is None, f"readdir of {h.path!r}: errno {o.errno}"
        assert not [r for r in o.requests if r.method == "HEAD"], "readdir sent a HEAD"
        h.started = True
        if start == 0:
            h.names = []
        for r in buf.accepted:
            if r.name in (".", ".."):
                assert r.is_dir
                continue
            p = join(h.path, r.name)
            answer = ("dir",) if r.is_dir else ("file", r.size)
            # A listed file's attributes come from a fresher HEAD when there is one
            # (an fstat, a getxattr): for a name known as a file, that HEAD is the
            # documented revalidation, so the same allowance as for lookups.
            self.check_name(p, h.path, answer, r.timeout, snapshot_ok=True,
                            sticky_ok=self.sticky.get(p, False))
            if r.timeout > 0:
                self.shown(p, answer)
            self.handed(r.ino, h.ino, r.name, p, r.is_dir)
            assert r.name not in h.names, f"{p!r} listed twice"
            h.names.append(r.name)
        if buf.accepted:
            h.next = buf.accepted[-1].next_id
            assert h.next > start
        else:
            h.done = True
        return buf.accepted

    @rule(data=st.data(), room=st.sampled_from([1, 2, 3, 5]), rewind=st.booleans(), dt=pauses)
    def readdir(self, data: st.DataObject, room: int, rewind: bool, dt: float) -> None:
        """The next readdir call of an open handle, or of a new one (at most 3 open).

        Handles stay open across steps, so one listing's pages may be fetched
        minutes apart, with changes in between.
        """
        self.clock.t += dt
        fhs = sorted(self.handles)
        pick = data.draw(st.integers(0, len(fhs) if len(fhs) < 3 else len(fhs) - 1))
        if pick == len(fhs):
            ino = data.draw(st.sampled_from(self.held_inodes(is_dir=True)))
            o = self.call(self.env.ops.opendir, ino, CTX)
            assert o.errno is None and not o.requests  # opendir sends nothing
            self.handles[o.value] = DirHandle(o.value, ino, self.inodes[ino].path)
            fhs.append(o.value)
        h = self.handles[fhs[pick]]
        start = 0 if rewind or not h.started else h.next
        if h.done and start != 0:
            return
        self.readdir_call(h, start, room)

    @precondition(lambda self: self.handles)
    @rule(data=st.data())
    def releasedir(self, data: st.DataObject) -> None:
        fh = data.draw(st.sampled_from(sorted(self.handles)))
        o = self.call(self.env.ops.releasedir, fh)
        assert o.errno is None and not o.requests
        del self.handles[fh]

    @rule(data=st.data(), room=st.sampled_from([2, 3, 1000]), dt=pauses)
    def ls(self, data: st.DataObject, room: int, dt: float) -> None:
        """opendir, readdir to the end, releasedir, all at once (``ls``)."""
        self.clock.t += dt
        ino = data.draw(st.sampled_from(self.held_inodes(is_dir=True)))
        path = self.inodes[ino].path
        o = self.call(self.env.ops.opendir, ino, CTX)
        assert o.errno is None
        h = DirHandle(o.value, ino, path)
        before = len(self.bucket.requests)
        replies: list[Reply] = []
        while not h.done:
            replies += self.readdir_call(h, h.next, room)
        sent = self.bucket.requests[before:]
        assert self.call(self.env.ops.releasedir, h.fh).errno is None
        firsts = [r for r in sent if delimiter_list_of(r) == path
                  and not {"continuation-token", "start-after"} & set(r.url.params)]
        if not firsts:
            return
        # The listing was fetched from its first page in this step, the bucket still:
        # it shows exactly the bucket's directory ("Directory wins", across pages).
        assert len(firsts) == 1
        entries = [r for r in replies if r.name not in (".", "..")]
        shown = {r.name: ("dir",) if r.is_dir else ("file", r.size) for r in entries}
        expected = directory(self.history.now, path)
        assert shown == expected, (path, expected, shown)
        for r in entries:  # the kernel's cached attributes: a stat within them costs nothing
            if not r.is_dir:
                self.attr_until[r.ino] = self.now + r.timeout
        # "A directory listed within the TTL answers lookups of names it does not
        # contain with 'no such file', with no request" (and those it does contain).
        name = data.draw(st.sampled_from(COMPONENTS))
        p = join(path, name)
        lo = self.call(self.env.ops.lookup, ino, name.encode(), CTX)
        assert lo.errno is None and not lo.requests, f"lookup of {p!r} after a listing: {lo.requests}"
        a = lo.value
        answer = (("absent",) if a.st_ino == 0 else ("dir",) if stat.S_ISDIR(a.st_mode)
                  else ("file", a.st_size))
        assert answer == expected.get(name, ("absent",)), (p, answer)
        self.shown(p, answer)
        if answer[0] != "absent":
            self.handed(a.st_ino, ino, name, p, answer[0] == "dir")


# CI: 150 derandomized examples of 40 steps.  A deeper local search:
# METAFS_MODEL_EXAMPLES=5000 METAFS_MODEL_RANDOM=1 (a new seed per run).
SETTINGS = settings(max_examples=int(os.environ.get("METAFS_MODEL_EXAMPLES", "150")),
                    stateful_step_count=40, deadline=None,
                    derandomize=not os.environ.get("METAFS_MODEL_RANDOM"), database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def test_reference_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pyfuse3, "readdir_reply", ReplyBuffer.reply)
    run_state_machine_as_test(ReferenceModel, settings=SETTINGS)


# -- violations found by the model or while writing it, minimised ------------------------------

async def read_dir(env: OpsEnv, fh: int, start: int, room: int) -> list[Reply]:
    buf = ReplyBuffer.current = ReplyBuffer(room)
    try:
        await env.ops.readdir(fh, start, TOKEN)
    finally:
        ReplyBuffer.current = None
    return buf.accepted


@pytest.mark.xfail(strict=True, reason=(
    "open: SEMANTICS.md lets a held-back file count with the next page, however late "
    "that page is fetched; see the test's comment"))
def test_a_file_held_back_across_a_paused_readdir_is_trusted_from_the_page_that_showed_it(
        monkeypatch: pytest.MonkeyPatch):
    # Page 1 (a, a-b/) shows the file `a` but holds it back: `a/` may follow
    # (directory wins).  The reader pauses; `a` is deleted; page 2 (b), fetched
    # 30 s later, proves no `a/` follows and releases `a`.  Its evidence is the
    # 30-s-old page 1, so the kernel must not cache it, and a lookup must not
    # take it as fresh ("After the TTL ... sees ... ENOENT"; Tenet 1).
    #
    # Today `a` goes with page 2's trust, as SEMANTICS.md's per-page rule says
    # ("a file held back ... counts with that next page"; dirlist.py: "over-trusts
    # them by at most a page's time"), and that bound assumes pages come back
    # to back: a reader that pauses between readdir calls makes it unbounded.
    # The kernel caches the deleted file for 10 s more, and lookups (and getattr,
    # through the listing) answer it with no request, 30 s after the deletion.
    # The model finds this in deeper runs even without a pause: `a` deleted and
    # rewritten between two pages is shown with the old size and a full TTL.
    # A fix, prototyped: a held-back entry keeps the trust of the page that
    # showed it (a trust segment of its own in Listing.page_ends/page_expires;
    # usable() then looks at the newest page's trust, not the last segment's),
    # and a listing refreshes the object table with its entries' trust, never
    # replacing a HEAD fresher than that.  This test then passes, the model's
    # deep runs find nothing more, and three tests that pin today's rule change
    # their expectation for the held-back file (test_dirlist.py::
    # test_each_page_is_trusted_from_its_own_request, test_namespace.py::
    # test_a_listing_slower_than_the_ttl_trusts_each_page_from_its_request,
    # test_fuse_ops.py::test_readdir_pages_as_the_kernel_asks).  It changes a
    # documented rule, so it is left to a decision.
    monkeypatch.setattr(pyfuse3, "readdir_reply", ReplyBuffer.reply)
    b = Bucket(page_size=2)
    for key in ("a", "a-b/x", "b"):
        b.put(key)

    async def go(env: OpsEnv) -> None:
        fh = await env.ops.opendir(ROOT_INODE, CTX)
        first = await read_dir(env, fh, 0, room=3)
        assert [r.name for r in first] == [".", "..", "a-b"]
        del b.objects["a"]
        env.clock.t += 3 * TTL
        rest = {r.name: r for r in await read_dir(env, fh, first[-1].next_id, room=10)}
        assert rest["b"].timeout == TTL
        assert rest["a"].timeout == 0  # shown by a page 30 s old: a snapshot, not to be cached
        assert (await env.ops.lookup(ROOT_INODE, b"a", CTX)).st_ino == 0  # gone 30 s ago

    run_ops(b, go)


def test_a_name_listed_as_a_directory_does_not_turn_back_into_a_file(
        monkeypatch: pytest.MonkeyPatch):
    # `a` is a file; `a/x` appears.  "A name known as a file is revalidated by
    # HEAD only ... becomes a directory at the next listing of its parent": so
    # far so good.  But a later fstat of the file's old inode (an open file
    # descriptor) refreshed the object, and the next lookup took the fresh
    # object for the name before asking whether `a/` still exists: the
    # directory turned back into a file, although `a/x` never went away
    # (directory wins).  Now a name known as a directory is probed instead.
    monkeypatch.setattr(pyfuse3, "readdir_reply", ReplyBuffer.reply)
    b = Bucket()
    b.put("a")

    async def go(env: OpsEnv) -> None:
        old = await env.ops.lookup(ROOT_INODE, b"a", CTX)
        assert stat.S_ISREG(old.st_mode)
        b.put("a/x")
        env.clock.t += TTL + 0.25
        assert stat.S_ISREG((await env.ops.lookup(ROOT_INODE, b"a", CTX)).st_mode)  # HEAD only
        fh = await env.ops.opendir(ROOT_INODE, CTX)
        assert [(r.name, r.is_dir) for r in await read_dir(env, fh, 0, room=10)][2:] == [("a", True)]
        await env.ops.releasedir(fh)
        assert stat.S_ISDIR((await env.ops.lookup(ROOT_INODE, b"a", CTX)).st_mode)
        env.clock.t += TTL + 0.25
        await env.ops.getattr(old.st_ino, CTX)  # fstat of a descriptor still open on the file
        env.clock.t += 1
        assert stat.S_ISDIR((await env.ops.lookup(ROOT_INODE, b"a", CTX)).st_mode)

    run_ops(b, go)


def test_a_name_found_missing_is_no_longer_known_as_a_file(monkeypatch: pytest.MonkeyPatch):
    # `ls` shows the file `a`; `a` is deleted and a lookup says so.  Then `a`
    # comes back beside `a/x`.  The lookup should probe both (directory wins:
    # "... or in a direct lookup, where the HEAD and the LIST answer together"),
    # but the expired listing still holds `a` as a file, so the name counts as
    # "known as a file" and was revalidated by HEAD only: `a` was a file for as
    # long as the object existed, although the mount had said it was gone.
    # Now a HEAD that finds a listed file gone refutes the listing's entry.
    monkeypatch.setattr(pyfuse3, "readdir_reply", ReplyBuffer.reply)
    b = Bucket()
    b.put("a")

    async def go(env: OpsEnv) -> None:
        fh = await env.ops.opendir(ROOT_INODE, CTX)
        assert [(r.name, r.is_dir) for r in await read_dir(env, fh, 0, room=10)][2:] == [("a", False)]
        await env.ops.releasedir(fh)
        del b.objects["a"]
        env.clock.t += TTL + 0.25
        assert (await env.ops.lookup(ROOT_INODE, b"a", CTX)).st_ino == 0
        b.put("a", b"new")
        b.put("a/x")
        env.clock.t += 3 * TTL
        assert stat.S_ISDIR((await env.ops.lookup(ROOT_INODE, b"a", CTX)).st_mode)

    run_ops(b, go)


def test_a_reply_the_kernel_refused_does_not_take_a_held_inode_from_its_name(
        monkeypatch: pytest.MonkeyPatch):
    # The kernel holds the directory `a`.  An open handle's older listing still
    # shows `a` as a file, and the kernel's buffer is full when readdir offers
    # it: the reply is refused, so the kernel never hears of that file.  The
    # inode allocated for the refused reply displaced the directory's from its
    # name and was then dropped, so the next lookup of the unchanged directory
    # `a` got a new inode ("allocated the first time a (parent, name, kind) is
    # handed to the kernel"): `stat a` changed st_ino under the kernel.
    monkeypatch.setattr(pyfuse3, "readdir_reply", ReplyBuffer.reply)
    b = Bucket()
    b.put("Z")
    b.put("a")

    async def go(env: OpsEnv) -> None:
        fh = await env.ops.opendir(ROOT_INODE, CTX)
        assert [r.name for r in await read_dir(env, fh, 0, room=2)] == [".", ".."]
        del b.objects["a"]
        b.put("a/x")
        env.clock.t += TTL + 0.25
        d = await env.ops.lookup(ROOT_INODE, b"a", CTX)
        assert stat.S_ISDIR(d.st_mode)
        # The handle's listing: Z, then a (a file then), refused by a full buffer.
        assert [(r.name, r.is_dir) for r in await read_dir(env, fh, 2, room=1)] == [("Z", False)]
        again = await env.ops.lookup(ROOT_INODE, b"a", CTX)
        assert again.st_ino == d.st_ino
        node = env.inodes.get(d.st_ino)
        assert node is not None and node.nlookup == 2

    run_ops(b, go)


def test_an_older_listing_does_not_lend_a_fresh_head_its_name(monkeypatch: pytest.MonkeyPatch):
    # An open handle keeps reading its listing ("Directory listings are
    # snapshots"), in which `a` is a file; `a` has become a directory since,
    # and a newer listing says so.  A HEAD of the object `a` (an fstat of the
    # kernel's old inode) is fresh, and readdir used its trust as the entry's:
    # the kernel cached the name `a` as a file for 10 s while metafs knew it
    # was a directory.  A fresher HEAD updates the attributes; the name's
    # trust is its page's, here expired (Tenet 1).
    monkeypatch.setattr(pyfuse3, "readdir_reply", ReplyBuffer.reply)
    b = Bucket()
    b.put("a")

    async def go(env: OpsEnv) -> None:
        f = await env.ops.lookup(ROOT_INODE, b"a", CTX)
        old = await env.ops.opendir(ROOT_INODE, CTX)
        assert [r.name for r in await read_dir(env, old, 0, room=2)] == [".", ".."]  # page read
        b.put("a/a")
        env.clock.t += TTL
        assert (await env.ops.getattr(f.st_ino, CTX)).attr_timeout == TTL  # HEAD: fresh
        new = await env.ops.opendir(ROOT_INODE, CTX)
        assert [(r.name, r.is_dir) for r in await read_dir(env, new, 0, room=10)][2:] == [("a", True)]
        (a,) = await read_dir(env, old, 2, room=10)
        assert (a.name, a.is_dir, a.timeout) == ("a", False, 0)  # the old page's trust: none left

    run_ops(b, go)


def test_a_listed_file_a_head_found_gone_is_no_longer_answered_from_the_listing(
        monkeypatch: pytest.MonkeyPatch):
    # The same refutation within the TTL: `ls` shows `a`, `a` is deleted, and
    # getfattr's HEAD finds it gone.  The listing is still fresh, but it no
    # longer vouches for `a`: stat and lookup probe and say ENOENT too,
    # instead of the listing's "file" beside getfattr's ENOENT.
    monkeypatch.setattr(pyfuse3, "readdir_reply", ReplyBuffer.reply)
    b = Bucket()
    b.put("a")
    b.put("b")

    async def go(env: OpsEnv) -> None:
        fh = await env.ops.opendir(ROOT_INODE, CTX)
        replies = {r.name: r for r in await read_dir(env, fh, 0, room=10)}
        await env.ops.releasedir(fh)
        del b.objects["a"]
        env.clock.t += 1
        with pytest.raises(FUSEError) as e:
            await env.ops.getxattr(replies["a"].ino, b"user.s3.etag", CTX)
        assert e.value.errno == errno.ENOENT
        with pytest.raises(FUSEError) as e:
            await env.ops.getattr(replies["a"].ino, CTX)
        assert e.value.errno == errno.ENOENT
        assert (await env.ops.lookup(ROOT_INODE, b"a", CTX)).st_ino == 0
        b.reset()
        assert stat.S_ISREG((await env.ops.lookup(ROOT_INODE, b"b", CTX)).st_mode)
        assert b.requests == []  # the listing still answers for the rest

    run_ops(b, go)

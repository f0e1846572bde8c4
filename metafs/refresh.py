"""Forced refresh: ``metafs refresh [--all] PATH`` asks the running mount to revalidate now.

Why a socket: the mount is read-only (no control file can be written), a
signal carries no path (and SIGUSR1 already dumps the stacks of a hung
mount), and a script needs to know when the refresh is done.  So the mount
listens on a unix socket of its own, created at mount time, mode 0600 in a
0700 directory (only the mounting user, and root, may connect), its path
derived from the mountpoint (:func:`socket_path`), removed at unmount.  The
command finds the mount of PATH in ``/proc/self/mountinfo`` without touching
the mount (no lookup is sent), sends one JSON line, and returns once the
mount has expired the entries *and* the kernel has dropped its copies.

What a refresh does (:class:`Refresher`, in the trio loop, between handlers):

* **a file**: its cache entry is expired, not dropped (the ETag stays), a
  file known only from its listing gets an expired entry that outranks the
  listing; its kernel entry and inode (attributes, cached data) are
  invalidated.  The next ``stat`` sends one conditional HEAD.
* **a directory**: its listing is expired (kept as the previous one, served
  if the server does not answer) and so is every entry directly in it; the
  kernel's entries in it are invalidated.  The next ``ls`` sends its LIST
  pages, which revalidate the entries in bulk.
* **the whole mount** (``--all``): every table, every kernel entry.

Kernel invalidations go through the :class:`~metafs.invalidate.Invalidator`
thread, never from a handler; the answer waits for them to be sent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

import trio

from .cache import MetaCache
from .dirlist import key_bytes, split_key
from .inodes import InodeTable
from .invalidate import Invalidator
from .listings import Listings

log = logging.getLogger(__name__)

RUNTIME_ENV = "METAFS_RUNTIME_DIR"  # where the control sockets live (default below)


def runtime_dir() -> str:
    """``$METAFS_RUNTIME_DIR``, else ``/run/metafs`` as root, else ``$XDG_RUNTIME_DIR/metafs``."""
    if os.environ.get(RUNTIME_ENV):
        return os.environ[RUNTIME_ENV]
    if os.geteuid() == 0:
        return "/run/metafs"
    if os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(os.environ["XDG_RUNTIME_DIR"], "metafs")
    return f"/tmp/metafs-{os.geteuid()}"


def socket_path(mountpoint: str) -> str:
    """The control socket of the mount at ``mountpoint`` (short enough for AF_UNIX)."""
    digest = hashlib.sha256(os.path.abspath(mountpoint).encode()).hexdigest()[:16]
    name = "".join(c if c.isalnum() or c in "-_." else "_"
                   for c in os.path.basename(mountpoint.rstrip("/")))[:32] or "root"
    return os.path.join(runtime_dir(), f"{name}-{digest}.sock")


class Refresher:
    """Expire cache entries and the kernel's copies of them (see the module docstring)."""

    def __init__(self, cache: MetaCache, listings: Listings, inodes: InodeTable,
                 invalidator: Invalidator | None) -> None:
        self._cache = cache
        self._listings = listings
        self._inodes = inodes
        self._inv = invalidator

    def refresh(self, rel: str, everything: bool = False) -> str:
        """Refresh the name ``rel`` (relative to the mount root, '' for the root); return its kind."""
        if everything:
            self.mount()
            return "mount"
        root = self._inodes.get(1)
        assert root is not None
        key = root.key + rel.strip("/")
        if not rel.strip("/"):
            self.directory(root.key)
            return "directory"
        if (self._inodes.find_dir(key + "/") is not None or self._cache.listing(key + "/")
                is not None or self._cache.knows_prefix(key + "/")):
            self.directory(key + "/")
            return "directory"
        self.file(key)
        return "file"

    def file(self, key: str) -> None:
        located = self._listings.locate(key)
        self._cache.expire_name(key, None if located is None else located[1].meta)
        dir_key, name = split_key(key)
        parent = self._inodes.find_dir(dir_key)
        if parent is None:
            return
        node = self._inodes.child(parent.ino, name)
        self._entry(parent.ino, name)
        if node is not None and not node.is_dir:
            self._inode(node.ino)

    def directory(self, dir_key: str) -> None:
        self._cache.expire_listing(dir_key)
        negatives = self._cache.negatives_in(dir_key)
        self._cache.expire_in(dir_key)
        parent = self._inodes.find_dir(dir_key)
        if parent is None:
            return
        for name, node in self._inodes.named_in(parent.ino):
            self._entry(parent.ino, name)
            if not node.is_dir:
                self._inode(node.ino)
        for k in negatives:
            self._entry(parent.ino, split_key(k)[1])

    def mount(self) -> None:
        negatives = self._cache.negatives_in(None)
        self._cache.expire_in(None)
        for pino, name, node in list(self._inodes.items()):
            self._entry(pino, name)
            if not node.is_dir:
                self._inode(node.ino)
        for k in negatives:
            dir_key, name = split_key(k)
            for pino, n in self._inodes.dentries_for(dir_key, (name,), known_only=False):
                self._entry(pino, n)

    def _entry(self, parent_ino: int, name: str) -> None:
        if self._inv is not None:
            self._inv.invalidate(parent_ino, key_bytes(name))

    def _inode(self, ino: int) -> None:
        if self._inv is not None:
            self._inv.invalidate_inode(ino)

    async def sent(self) -> None:
        """Return once the kernel invalidations queued so far were sent."""
        if self._inv is not None:
            done = self._inv.barrier()
            await trio.to_thread.run_sync(done.wait, 10.0)


# -- the mount's side: the control socket ----------------------------------------------

async def serve(path: str, refresher: Refresher, *,
                status: Callable[[], dict[str, Any]] | None = None,
                task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Listen on ``path`` (mode 0600) until cancelled; the socket is removed at the end.

    Requests: ``{"op": "refresh", "path": REL, "all": BOOL}``, and
    ``{"op": "status"}`` answered with ``status()`` (``metafs status``, :mod:`metafs.status`).

    A socket that cannot be made costs ``metafs refresh``, not the mount: one warning.
    """
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        d = os.path.dirname(path)
        os.makedirs(d, mode=0o700, exist_ok=True)
        if os.stat(d).st_uid == os.geteuid():
            os.chmod(d, 0o700)
        try:
            os.unlink(path)  # left by a mount that was killed (a live one was refused at start)
        except FileNotFoundError:
            pass
        await sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(16)
    except OSError as e:
        sock.close()
        log.warning("no control socket at %s (%s): metafs refresh will not reach this mount",
                    path, e)
        task_status.started()
        return
    try:
        task_status.started()
        async def handler(stream: trio.SocketStream) -> None:
            await _answer(stream, refresher, status)

        await trio.serve_listeners(handler, [trio.SocketListener(sock)])
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


async def _answer(stream: trio.SocketStream, refresher: Refresher,
                  status: Callable[[], dict[str, Any]] | None = None) -> None:
    async with stream:
        try:
            data = b""
            with trio.fail_after(10):
                while not data.endswith(b"\n") and len(data) < 65536:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        break
                    data += chunk
            req: dict[str, Any] = json.loads(data)
            if req.get("op") == "status" and status is not None:
                reply: dict[str, Any] = {"ok": True, "status": status()}
                await stream.send_all(json.dumps(reply).encode() + b"\n")
                return
            if req.get("op") != "refresh":
                raise ValueError(f"unknown request {req.get('op')!r}")
            kind = refresher.refresh(str(req.get("path", "")), bool(req.get("all")))
            await refresher.sent()
            log.info("refreshed %s %r", kind, "/" + str(req.get("path", "")).strip("/"))
            reply = {"ok": True, "kind": kind}
        except Exception as e:  # noqa: BLE001 - a bad request must not end the mount
            reply = {"ok": False, "error": str(e)}
        try:
            await stream.send_all(json.dumps(reply).encode() + b"\n")
        except trio.BrokenResourceError:
            pass


# -- the command's side -------------------------------------------------------------------

def find_mount(path: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The metafs mountpoint holding ``path`` (absolute), read from mountinfo: no lookup sent."""
    best: str | None = None
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            point = fields[4].encode().decode("unicode_escape")
            if fields[sep + 1] != "fuse.metafs":
                continue
            if (path == point or path.startswith(point.rstrip("/") + "/")) and (
                    best is None or len(point) > len(best)):
                best = point
    return best


def request(mountpoint: str, rel: str, everything: bool,
            connect: Callable[[str], socket.socket] | None = None) -> dict[str, Any]:
    """Send one refresh request to the mount at ``mountpoint``; its reply."""
    return call(mountpoint, {"op": "refresh", "path": rel, "all": everything}, connect)


def call(mountpoint: str, req: dict[str, Any],
         connect: Callable[[str], socket.socket] | None = None) -> dict[str, Any]:
    """Send one request to the mount at ``mountpoint``'s control socket; its reply."""
    path = socket_path(mountpoint)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(60)
        s.connect(path)
        s.sendall(json.dumps(req).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply


def main(argv: list[str]) -> int:
    """``metafs refresh [--all] PATH...``: exit 0 once refreshed, 1 on failure, 2 on usage."""
    import argparse

    p = argparse.ArgumentParser(
        prog="metafs refresh",
        description="Revalidate now a file, a directory (its listing and entries) or, with --all, "
        "the whole mount, without remounting.")
    p.add_argument("--all", action="store_true", help="the whole mount that holds PATH")
    p.add_argument("paths", nargs="+", metavar="PATH")
    args = p.parse_args(argv)
    code = 0
    for given in args.paths:
        path = os.path.normpath(os.path.abspath(given))
        mnt = find_mount(path)
        if mnt is None:
            print(f"metafs refresh: {given}: not on a metafs mount", file=sys.stderr)
            code = 1
            continue
        rel = os.path.relpath(path, mnt) if path != mnt else ""
        rel = "" if rel == "." else rel
        try:
            reply = request(mnt, rel, args.all)
        except OSError as e:
            print(f"metafs refresh: {given}: no metafs process answers at {socket_path(mnt)} "
                  f"({e.strerror or e}); only the user who mounted it, or root, may refresh",
                  file=sys.stderr)
            code = 1
            continue
        if not reply.get("ok"):
            print(f"metafs refresh: {given}: {reply.get('error')}", file=sys.stderr)
            code = 1
    return code


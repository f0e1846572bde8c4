"""Is this directory fit to mount on?  Checked before anything is mounted.

Each refusal is one :class:`~metafs.errors.MountpointError` line that names
the real cause, where a bare ``stat`` would call every one of them "not a
directory":

* the path does not exist (or a component of it is no directory);
* it is a **dead mount**: a FUSE mount whose process is gone, where every
  access fails with ``ENOTCONN`` ("Transport endpoint is not connected");
  ``fusermount3 -u PATH`` releases it;
* it is already a **live metafs mount**: a second one would stack on top
  and hide the first;
* it is **not empty**: the mount would hide what is in it until unmounted.
  ``--nonempty`` (``-o nonempty``, libfuse 2's name) allows that; libfuse 3
  dropped the option and mounts over anything, so the check is ours.

:func:`check` runs at start, before the credentials and the bucket check,
and again just before ``pyfuse3.init``, so a mount made meanwhile is found
too.

:func:`check_user_mount` says, before any request, why an ordinary user's
mount would fail where libfuse would only say "fuse_session_mount failed":
libfuse 3 opens ``/dev/fuse`` itself, as the user (Debian's udev makes it
0666; without udev it stays 0600), then runs the setuid ``fusermount3``,
which refuses ``allow_other`` unless ``/etc/fuse.conf`` has a line
``user_allow_other``.
"""

from __future__ import annotations

import errno
import os
import shlex
import shutil
import stat

from .errors import MountpointError

MOUNTINFO = "/proc/self/mountinfo"
FUSE_DEVICE = "/dev/fuse"
FUSE_CONF = "/etc/fuse.conf"


def _unescape(field: str) -> str:
    r"""A mountinfo path field: the kernel writes space, tab, newline and ``\`` as ``\ooo``."""
    out: list[str] = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_at(path: str, mountinfo: str) -> list[tuple[str, str]]:
    """(filesystem type, source) of each mount on ``path``, bottom first, from mountinfo text.

    A line is ``ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER``.
    """
    found: list[tuple[str, str]] = []
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) < 10 or "-" not in fields[6:]:
            continue
        sep = fields.index("-", 6)
        if _unescape(fields[4]) == path and len(fields) > sep + 2:
            found.append((fields[sep + 1], _unescape(fields[sep + 2])))
    return found


def _read_mountinfo() -> str:
    try:
        with open(MOUNTINFO, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except OSError:  # no /proc: nothing to find out
        return ""


def check(path: str, nonempty: bool = False) -> None:
    """Raise :class:`MountpointError` unless metafs may mount on ``path`` (absolute)."""
    try:
        # statfs always reaches the filesystem (stat may be answered from the kernel's
        # cache, also for a dead FUSE mount); metafs answers it with no request.
        os.statvfs(path)
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise MountpointError("the mountpoint does not exist") from None
        if e.errno == errno.ENOTDIR:
            raise MountpointError("the mountpoint is not a directory") from None
        if e.errno == errno.ENOTCONN:
            raise MountpointError(
                "the mountpoint is a dead mount (its filesystem process is gone: "
                f"{os.strerror(e.errno)}): run `fusermount3 -u {shlex.quote(path)}`") from None
        raise MountpointError(f"cannot use the mountpoint: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise MountpointError("the mountpoint is not a directory")
    real = os.path.realpath(path)
    top = mounts_at(real, _read_mountinfo())[-1:]
    if top and top[0][0] == "fuse.metafs":
        raise MountpointError(
            f"the mountpoint is already a metafs mount of {top[0][1]}: a second mount would hide "
            f"it (unmount it first: fusermount3 -u {shlex.quote(path)})")
    if nonempty:
        return
    try:
        with os.scandir(path) as entries:
            hidden = next(entries, None) is not None
    except OSError as e:
        raise MountpointError(f"cannot check that the mountpoint is empty ({e.strerror}); "
                              "--nonempty (-o nonempty) mounts without checking") from None
    if hidden:
        raise MountpointError("the mountpoint is not empty, and the mount would hide what is in it: "
                              "add --nonempty (-o nonempty) to mount over it")


def user_allow_other(conf: str = FUSE_CONF) -> bool:
    """Whether ``conf`` lets ordinary users mount with allow_other (fusermount3's own rule:
    a line ``user_allow_other``, surrounding blanks ignored, ``#`` lines are comments)."""
    try:
        with open(conf, encoding="utf-8", errors="replace") as f:
            return any(line.strip() == "user_allow_other" for line in f)
    except OSError:
        return False


def check_user_mount(allow_other: bool, *, euid: int | None = None, device: str = FUSE_DEVICE,
                     conf: str = FUSE_CONF, fusermount: str | None = None) -> None:
    """Raise :class:`MountpointError` when an ordinary user's mount cannot work (root: nothing)."""
    if (os.geteuid() if euid is None else euid) == 0:
        return
    if not os.access(device, os.R_OK | os.W_OK):
        try:
            mode = f"mode {stat.S_IMODE(os.stat(device).st_mode):04o}"
        except OSError as e:
            mode = e.strerror or "missing"
        raise MountpointError(
            f"an ordinary user's mount needs {device} readable and writable by all ({mode}; "
            f"Debian's udev makes it 0666: as root, chmod 0666 {device})")
    helper = fusermount or shutil.which("fusermount3") or "/usr/bin/fusermount3"
    try:
        st = os.stat(helper)
    except OSError:
        raise MountpointError("an ordinary user's mount needs fusermount3 (Debian package fuse3)") from None
    if st.st_uid != 0 or not st.st_mode & stat.S_ISUID:
        raise MountpointError(f"an ordinary user's mount needs {helper} setuid root")
    if allow_other and not user_allow_other(conf):
        raise MountpointError(
            f"--allow-other (allow_other) for an ordinary user needs the line user_allow_other "
            f"in {conf} (root adds it); without it, only you can see the mount")

"""The reserved control directory: metafs's own names beside the bucket's.

One directory at the mount root, ``.metafs`` unless ``--control-dir NAME``
renames it, holds what metafs shows that is not a key of the bucket at
its own path.  Each feature is one *subtree* of it, plugged in by one
registration (:meth:`ControlRoot.register`, called from
:func:`metafs.mount.control_subtrees`): ``versions`` (every version of
every object, ``--versions``), later ``objects`` and ``annotations``.

Rules (SEMANTICS.md, "The control directory"):

* The control directory is **hidden from readdir** of the root, so
  ``find``, ``du``, ``rsync`` and ``cp -a`` never walk into it, and
  **reachable by lookup**: ``ls .metafs/versions`` works, and so does
  ``cd .metafs``.  Its own readdir lists the enabled subtrees.
* **The control directory wins** over a key or prefix of the same name at
  the mount root: that entry is neither listed nor reachable.  The first
  root listing that shows such an entry logs one warning naming
  ``--control-dir``, which picks another name.
* Nothing here sends a request: each subtree decides what its own names
  cost.

How its nodes are told apart: a control node's key starts with NUL
(:data:`MARK`), which no key of a listing can contain (a name with NUL is
left out, :func:`metafs.dirlist.invalid_reason`), so the inode table, the
kernel's lookup counts and :meth:`InodeTable.ensure`'s key building
(``parent.key + name + "/"``) serve both trees unchanged, and a node's
path in the control tree is its key.  Pure bookkeeping and dispatch: the
I/O is the subtrees'.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Protocol, TypeAlias, runtime_checkable

from .errors import ConfigError
from .s3.model import ObjectMeta

log = logging.getLogger(__name__)

CONTROL_DIR = ".metafs"
MARK = "\0"  # first character of every control node's key (see the module docstring)

Path: TypeAlias = tuple[str, ...]  # names below a subtree's root; () is the root itself


@dataclasses.dataclass(frozen=True, slots=True)
class CtlDir:
    """A directory of the control tree, trusted by the kernel for ``timeout`` seconds."""

    timeout: float
    xattrs: Mapping[bytes, bytes] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class CtlFile:
    """A read-only file of the control tree: ``meta`` gives size, mtime and xattrs."""

    meta: ObjectMeta
    timeout: float


CtlEntry: TypeAlias = CtlDir | CtlFile


class Subtree(Protocol):
    """One named subtree of the control directory.  Paths are relative to its root."""

    async def entry(self, path: Path) -> CtlEntry | None:
        """What ``path`` is (never ``()``), or None if nothing is there."""
        ...

    async def listdir(self, path: Path) -> Sequence[tuple[str, CtlEntry]]:
        """The entries of the directory ``path`` (``()`` is the subtree's root)."""
        ...

    async def read(self, path: Path, first: int, last: int) -> bytes:
        """Bytes ``first..last`` (inclusive) of the file ``path``."""
        ...


@runtime_checkable
class XattrSource(Protocol):
    """A subtree whose xattrs may cost a request: asked instead of the entry's table."""

    async def xattrs(self, path: Path, name: bytes | None) -> Mapping[bytes, bytes] | None:
        """The xattrs of ``path``; ``name`` is the one asked for (None: all of them), so
        a table that already holds it may be answered without a request.  None: the
        entry's own table."""
        ...


def check_name(name: str) -> str:
    """``--control-dir``'s value, checked: one plain path component."""
    if name in ("", ".", "..") or "/" in name or "\0" in name or len(name.encode()) > 255:
        raise ConfigError(f"--control-dir {name!r} must be one file name (no '/')")
    return name


class ControlRoot:
    """The control directory's registry and dispatch (see the module docstring).

    ``dir_ttl`` is the kernel timeout of the control directory and of each
    subtree's root.
    """

    def __init__(self, name: str = CONTROL_DIR, *, dir_ttl: float = 60.0) -> None:
        self.name = check_name(name)
        self.dir_ttl = dir_ttl
        self._subtrees: dict[str, Subtree] = {}
        self._collision_logged = False

    def register(self, name: str, subtree: Subtree) -> None:
        """Plug ``subtree`` in as ``<control dir>/<name>``."""
        if name in self._subtrees or "/" in name or name in ("", ".", ".."):
            raise ValueError(f"control subtree {name!r} is not a new plain name")
        self._subtrees[name] = subtree

    @property
    def subtrees(self) -> list[str]:
        return sorted(self._subtrees)

    # -- naming -----------------------------------------------------------------
    @staticmethod
    def owns(key: str) -> bool:
        """Whether a node's key is in the control tree."""
        return key.startswith(MARK)

    @staticmethod
    def root_key() -> str:
        """The key of the control directory's node (a directory: ends with '/')."""
        return MARK + "/"

    @staticmethod
    def split(key: str) -> tuple[str, Path] | None:
        """(subtree, path) of a control node's key; None for the control directory itself."""
        parts = [p for p in key[1:].split("/") if p]
        if not parts:
            return None
        return parts[0], tuple(parts[1:])

    def hides(self, name: str) -> bool:
        """Whether a root listing's entry ``name`` is hidden behind the control directory.

        Logs one warning per mount the first time it happens.
        """
        if name != self.name:
            return False
        if not self._collision_logged:
            self._collision_logged = True
            log.warning("the bucket has an entry %r at the mount root; the control directory "
                        "of that name hides it (mount with --control-dir NAME to pick another)",
                        name)
        return True

    # -- the questions ----------------------------------------------------------
    def _subtree(self, name: str) -> Subtree | None:
        return self._subtrees.get(name)

    async def entry(self, key: str) -> CtlEntry | None:
        """What the control node at ``key`` is; None if nothing is there (ENOENT)."""
        where = self.split(key)
        if where is None:
            return CtlDir(self.dir_ttl)
        sub = self._subtree(where[0])
        if sub is None:
            return None
        if not where[1]:
            return CtlDir(self.dir_ttl)
        return await sub.entry(where[1])

    async def child(self, key: str, name: str) -> CtlEntry | None:
        """What ``name`` in the control directory node ``key`` is."""
        where = self.split(key)
        if where is None:
            return CtlDir(self.dir_ttl) if name in self._subtrees else None
        sub = self._subtree(where[0])
        return None if sub is None else await sub.entry((*where[1], name))

    async def listdir(self, key: str) -> Sequence[tuple[str, CtlEntry]]:
        """The entries of the control directory node ``key``."""
        where = self.split(key)
        if where is None:
            return [(n, CtlDir(self.dir_ttl)) for n in self.subtrees]
        sub = self._subtree(where[0])
        return [] if sub is None else await sub.listdir(where[1])

    async def xattrs(self, key: str, name: bytes | None) -> Mapping[bytes, bytes] | None:
        """The xattrs of the control node at ``key`` (see :class:`XattrSource`); None: ENOENT."""
        entry = await self.entry(key)
        if entry is None:
            return None
        where = self.split(key)
        sub = None if where is None else self._subtree(where[0])
        if where is not None and where[1] and isinstance(sub, XattrSource):
            table = await sub.xattrs(where[1], name)
            if table is not None:
                return table
        return entry.meta.xattrs or {} if isinstance(entry, CtlFile) else entry.xattrs

    async def read(self, key: str, first: int, last: int) -> bytes:
        """Bytes of the control file at ``key``."""
        where = self.split(key)
        sub = None if where is None else self._subtree(where[0])
        if sub is None or where is None:
            return b""
        return await sub.read(where[1], first, last)

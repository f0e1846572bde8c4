"""``.metafs/objects/<key>``: the object at exactly ``<key>``, even where a directory hides it.

When a bucket has both an object ``a`` and keys under ``a/``, the mount
shows the directory ``a`` (the directory wins, :mod:`metafs.dirlist`
rule 2) and the object ``a`` is reached here, in the control directory
(:mod:`metafs.control`), as the file ``.metafs/objects/a``: its size,
mtime, xattrs (the full HEAD table) and bytes.  The directory ``a`` tells,
with the xattr ``user.s3.shadowed-object`` (:func:`shadow_xattr`), whose value
is that path relative to the mount root, so from the mount root::

    cat "$(getfattr --only-values -n user.s3.shadowed-object a)"

Any key is reachable this way, not only shadowed ones.  Costs: looking up
``.metafs/objects/K`` sends one HEAD of ``K`` (and, if no object ``K``
exists, one ``LIST K/ max-keys=1``, so the path through to deeper keys
works); the answer is kept for the metadata TTL, so the ``stat``,
``getfattr`` and ``open`` that follow send nothing more; reading sends the
GETs of any file.  Directories here list nothing (``ls .metafs/objects``
is empty): the subtree is reached by name, and listing the bucket again
under another path would double what ``find`` costs.

Paths are keys relative to the mount's root prefix.  Requests go through
the mount's :class:`~metafs.views.View`, so the customer keys
(``--sse-c-key-file``) and request headers of the mount apply.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from cachetools import LRUCache

from .control import CtlDir, CtlEntry, CtlFile, Path
from .s3.model import Fresh
from .views import View
from .xattrs import SYSTEM_NS

SUBTREE = "objects"
SHADOWED_OBJECT = (SYSTEM_NS + "shadowed-object").encode()


def shadow_xattr(control_dir: str, rel_key: str) -> tuple[bytes, bytes]:
    """The xattr a directory shows when it hides the object ``rel_key`` (relative to the root)."""
    return SHADOWED_OBJECT, f"{control_dir}/{SUBTREE}/{rel_key}".encode("utf-8", "surrogateescape")


class ExactObjects:
    """The ``objects`` subtree (see the module docstring); a :class:`metafs.control.Subtree`."""

    def __init__(self, view: View, root_key: str, ttl: float, *,
                 clock: Callable[[], float] = time.monotonic, max_entries: int = 10_000) -> None:
        self._view = view
        self._root = root_key
        self._ttl = ttl
        self._clock = clock
        self._known: LRUCache[str, tuple[float, CtlEntry | None]] = LRUCache(max(1, max_entries))

    def _key(self, path: Path) -> str:
        return self._root + "/".join(path)

    async def entry(self, path: Path) -> CtlEntry | None:
        """The object at exactly the key ``path`` names (a file), else a directory above keys."""
        key = self._key(path)
        now = self._clock()
        known = self._known.get(key)
        if known is not None and known[0] > now:
            return known[1]
        found: CtlEntry | None = None
        outcome = await self._view.head(key)
        if isinstance(outcome, Fresh):
            found = CtlFile(outcome.meta, self._ttl)
        elif await self._view.has_children(key):
            found = CtlDir(self._ttl)
        self._known[key] = (now + self._ttl, found)
        return found

    async def listdir(self, path: Path) -> Sequence[tuple[str, CtlEntry]]:
        """Nothing: names here are reached by lookup (see the module docstring)."""
        return []

    async def read(self, path: Path, first: int, last: int) -> bytes:
        """Bytes of the object, pinned to the ETag its lookup saw (ESTALE if replaced since)."""
        key = self._key(path)
        known = self._known.get(key)
        etag = known[1].meta.etag if known is not None and isinstance(known[1], CtlFile) else None
        size = known[1].meta.size if known is not None and isinstance(known[1], CtlFile) else None
        if size is not None:
            if first >= size:
                return b""
            last = min(last, size - 1)
        return await self._view.read(key, first, last, etag)

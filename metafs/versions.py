"""The versions view (``--versions``): every version of every object, under the control
directory as ``<control dir>/versions/``.

Names (README, "Versions and time travel"):

* ``versions/`` mirrors the mount's tree, deleted objects included: a
  directory of it holds one subdirectory per prefix and one per *key* that
  has or had a version there (a key whose latest version is a delete
  marker too).  When a key ``a`` and a prefix ``a/`` both exist, the
  prefix wins, as in the mount itself.
* A key's directory holds one read-only file per version and per delete
  marker, named ``<LastModified>_<version id>`` (``2026-11-01T09:30:00.123Z_3HL4k…``,
  UTC, milliseconds), so names sort by time; a ``/`` or ``%`` in a version
  id is written ``%2F`` / ``%25``.  A version file has the version's size
  and mtime, and reading it returns that version's bytes (GET with
  ``versionId``).  A delete marker is an empty file.
* Each version file's xattrs: from the listing, at no cost,
  ``s3.version-id``, ``s3.is-latest`` (``true``/``false``),
  ``s3.delete-marker`` (``true``/``false``), ``s3.etag``,
  ``s3.storage-class``, ``s3.last-modified`` (names built on
  :data:`~metafs.xattrs.SYSTEM_NS`); any other name, or all of them
  (``getfattr -d``), costs one HEAD with the ``versionId``, once per
  version: the version's user and system metadata, as it was.

Costs: nothing until a process looks inside ``versions/``.  A readdir
of a directory ``D`` of it lists every version in ``D``
(``GET /?versions&prefix=D&delimiter=/``, all pages: one request per
1,000 versions, delete markers and subdirectories); that listing answers
every name in ``D`` and every key directory of ``D`` for the metadata TTL
(versions are added and ``is-latest`` changes, so it is revalidated like
any listing).  A lookup of a name ``N`` in a directory not listed costs
one request instead, ``prefix=D/N`` with ``delimiter=/`` (the key's own
versions come first; a few more pages only when many keys extend ``N``
with a byte below ``/``, and past :data:`PROBE_PAGES` the directory is
listed), so reaching one object's versions in a huge directory does not
list that directory.  At most :data:`MAX_DIRS` directories' listings and
:data:`MAX_PROBES` names are kept.  Reading a version file costs its
ranged GETs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from cachetools import LRUCache

from . import errors
from .asof import moment_text
from .control import CtlDir, CtlEntry, CtlFile, Path
from .dirlist import invalid_reason
from .flight import SingleFlight
from .s3.client import S3Client
from .s3.model import Fresh, ObjectMeta, Version
from .xattrs import SYSTEM_NS

MAX_DIRS = 256  # directory listings kept at once
MAX_HEADS = 4096  # HEAD answers of versions kept (a version never changes)
MAX_PROBES = 4096  # one name's answers kept (lookups in directories not listed)
PROBE_PAGES = 3  # pages of prefix=KEY read before listing the whole directory instead


def version_name(v: Version) -> str:
    """The file name of a version: sorts by time, carries the version id."""
    vid = v.version_id.replace("%", "%25").replace("/", "%2F")
    return f"{moment_text(v.stamp_ms)}_{vid}"


def version_file(v: Version, timeout: float) -> CtlFile:
    """A version (or delete marker) as a read-only file of the view."""
    ns = SYSTEM_NS
    xattrs = {
        ns + "version-id": v.version_id,
        ns + "is-latest": "true" if v.is_latest else "false",
        ns + "delete-marker": "true" if v.delete_marker else "false",
        ns + "last-modified": moment_text(v.stamp_ms),
    }
    if v.etag:
        xattrs[ns + "etag"] = v.etag.strip('"')
    if v.storage_class:
        xattrs[ns + "storage-class"] = v.storage_class
    table = {k.encode(): val.encode("utf-8", "surrogateescape") for k, val in xattrs.items()}
    meta = ObjectMeta(v.key, 0 if v.delete_marker else v.size, v.mtime, v.etag, table)
    return CtlFile(meta, timeout)


@dataclasses.dataclass
class DirVersions:
    """Everything one directory's versions listing said, and until when it is trusted."""

    prefixes: set[str]  # names of subdirectories
    keys: dict[str, list[Version]]  # name -> its versions, newest first
    expires: float

    def names(self) -> list[str]:
        return sorted(self.prefixes | set(self.keys), key=lambda n: n.encode("utf-8", "surrogateescape"))


@dataclasses.dataclass(frozen=True)
class _PrefixDir:
    prefix: str  # '' or ending with '/'
    expires: float  # the trust of the answer that showed it


@dataclasses.dataclass(frozen=True)
class _KeyDir:
    key: str
    versions: tuple[Version, ...]  # newest first
    expires: float


@dataclasses.dataclass(frozen=True)
class _Probe:
    """What the versions listing of ``prefix=KEY`` said of one name (see :meth:`VersionsTree._probe`)."""

    versions: tuple[Version, ...]
    is_prefix: bool
    expires: float


def _order(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")  # servers order keys by their bytes


class VersionsTree:
    """The ``versions`` subtree of the control directory (see the module docstring).

    ``root_prefix`` is the mount's prefix; ``ttl`` how long a directory's
    listing is trusted; ``clock`` the cache's monotonic clock.
    """

    def __init__(self, client: S3Client, root_prefix: str, *, ttl: float,
                 clock: Callable[[], float]) -> None:
        self._client = client
        self._root = root_prefix
        self._ttl = ttl
        self._clock = clock
        self._dirs: LRUCache[str, DirVersions] = LRUCache(MAX_DIRS)
        self._flights: SingleFlight[DirVersions] = SingleFlight()
        self._heads: LRUCache[tuple[str, str], Mapping[bytes, bytes]] = LRUCache(MAX_HEADS)
        self._probes: LRUCache[str, _Probe] = LRUCache(MAX_PROBES)
        self._probe_flights: SingleFlight[_Probe | None] = SingleFlight()

    # -- listings -----------------------------------------------------------------
    async def _listing(self, prefix: str) -> DirVersions:
        """The versions listing of the directory ``prefix``: cached, else every page of it."""
        found = self._dirs.get(prefix)
        if found is not None and found.expires > self._clock():
            return found
        return await self._flights.run(prefix, lambda: self._fetch(prefix))

    async def _fetch(self, prefix: str) -> DirVersions:
        started = self._clock()
        prefixes: set[str] = set()
        keys: dict[str, list[Version]] = {}
        km: str | None = None
        vm: str | None = None
        seen: set[tuple[str | None, str | None]] = set()
        while True:
            page = await self._client.list_versions(prefix, delimiter="/", key_marker=km,
                                                    version_id_marker=vm)
            for p in page.prefixes:
                name = p[len(prefix):].rstrip("/")
                if p.startswith(prefix) and invalid_reason(name) is None:
                    prefixes.add(name)
            for v in page.versions:
                name = v.key[len(prefix):]
                if v.key.startswith(prefix) and invalid_reason(name) is None:
                    keys.setdefault(name, []).append(v)
            if not page.truncated:
                break
            km, vm = page.next_key_marker, page.next_version_id_marker
            if km is None or (km, vm) in seen:
                raise errors.MalformedResponseError(
                    f"LIST versions {prefix or '/'}: a truncated page with no way forward")
            seen.add((km, vm))
        for vs in keys.values():  # newest first, whatever pages they came in
            vs.sort(key=lambda v: -v.stamp_ms)
        listing = DirVersions(prefixes, keys, started + self._ttl)
        self._dirs[prefix] = listing
        return listing

    def _timeout(self, expires: float) -> float:
        return max(0.0, expires - self._clock())

    async def _probe(self, key: str) -> _Probe | None:
        """Whether ``key`` is a key (its versions) and whether ``key/`` is a prefix, from the
        versions listing of ``prefix=KEY`` with ``delimiter=/``, without listing the
        directory: the key's own versions come first, ``KEY/`` after the keys that extend
        ``KEY`` with a byte below ``/``.  Usually one request; None if
        :data:`PROBE_PAGES` pages did not settle it (the caller lists the directory).
        """
        found = self._probes.get(key)
        if found is not None and found.expires > self._clock():
            return found
        return await self._probe_flights.run(key, lambda: self._fetch_probe(key))

    async def _fetch_probe(self, key: str) -> _Probe | None:
        started = self._clock()
        versions: list[Version] = []
        km: str | None = None
        vm: str | None = None
        beyond = _order(key + "/")
        for _ in range(PROBE_PAGES):
            page = await self._client.list_versions(key, delimiter="/", key_marker=km,
                                                    version_id_marker=vm)
            versions += (v for v in page.versions if v.key == key)
            if key + "/" in page.prefixes:
                return self._remember(key, _Probe((), True, started + self._ttl))
            km, vm = page.next_key_marker, page.next_version_id_marker
            if not page.truncated or km is None or _order(km) > beyond:
                versions.sort(key=lambda v: -v.stamp_ms)
                return self._remember(key, _Probe(tuple(versions), False, started + self._ttl))
        return None

    def _remember(self, key: str, probe: _Probe) -> _Probe:
        self._probes[key] = probe
        return probe

    async def _child(self, prefix: str, name: str) -> _PrefixDir | _KeyDir | None:
        """``name`` in the mirrored directory ``prefix``: from its listing when one is kept,
        else from a probe of that one name (the whole directory is not listed for it)."""
        listing = self._dirs.get(prefix)
        if listing is None or listing.expires <= self._clock():
            probe = await self._probe(prefix + name)
            if probe is not None:
                if probe.is_prefix:  # the directory wins, as in the mount
                    return _PrefixDir(prefix + name + "/", probe.expires)
                if probe.versions:
                    return _KeyDir(prefix + name, probe.versions, probe.expires)
                return None
            listing = await self._listing(prefix)
        if name in listing.prefixes:
            return _PrefixDir(prefix + name + "/", listing.expires)
        if name in listing.keys:
            return _KeyDir(prefix + name, tuple(listing.keys[name]), listing.expires)
        return None

    # -- paths ----------------------------------------------------------------------
    async def _resolve(self, path: Path) -> _PrefixDir | _KeyDir | CtlFile | None:
        """What ``path`` names: a mirrored directory, a key's directory, a version, or nothing."""
        node: _PrefixDir | _KeyDir | CtlFile | None = _PrefixDir(
            self._root, self._clock() + self._ttl)
        for name in path:
            match node:
                case _PrefixDir(prefix):
                    node = await self._child(prefix, name)
                case _KeyDir(_key, versions, expires):
                    v = next((v for v in versions if version_name(v) == name), None)
                    if v is None:
                        return None
                    node = version_file(v, self._timeout(expires))
                case _:
                    return None
        return node

    # -- the Subtree protocol (metafs.control) -----------------------------------------
    async def entry(self, path: Path) -> CtlEntry | None:
        node = await self._resolve(path)
        match node:
            case _PrefixDir(_, expires) | _KeyDir(_, _, expires):
                return CtlDir(self._timeout(expires))
            case CtlFile():
                return node
        return None

    async def listdir(self, path: Path) -> Sequence[tuple[str, CtlEntry]]:
        node = await self._resolve(path)
        match node:
            case _PrefixDir(prefix):
                listing = await self._listing(prefix)
                t = self._timeout(listing.expires)
                return [(n, CtlDir(t)) for n in listing.names()]
            case _KeyDir(_key, versions, expires):
                t = self._timeout(expires)
                return sorted(((version_name(v), version_file(v, t)) for v in versions),
                              key=lambda e: e[0])
        raise errors.NotFoundError(404, "NoSuchKey", "not a directory of the versions view")

    async def xattrs(self, path: Path, name: bytes | None) -> Mapping[bytes, bytes] | None:
        """A version's full table: the listing's names, plus what a HEAD with its
        ``versionId`` says (user metadata...), fetched once per version and only when a
        name the listing does not give is asked for (or all of them)."""
        node = await self._resolve(path)
        if not isinstance(node, CtlFile) or node.meta.xattrs is None:
            return None
        listed = node.meta.xattrs
        vid = listed[(SYSTEM_NS + "version-id").encode()].decode("utf-8", "surrogateescape")
        if (name is not None and name in listed) or listed.get(
                (SYSTEM_NS + "delete-marker").encode()) == b"true":
            return listed
        cached = self._heads.get((node.meta.key, vid))
        if cached is None:
            outcome = await self._client.head_object(node.meta.key, version_id=vid)
            if not isinstance(outcome, Fresh) or outcome.meta.xattrs is None:
                return listed  # deleted for good since it was listed: what the listing said
            cached = self._heads[(node.meta.key, vid)] = {**outcome.meta.xattrs, **listed}
        return cached

    async def read(self, path: Path, first: int, last: int) -> bytes:
        node = await self._resolve(path)
        if not isinstance(node, CtlFile) or node.meta.size == 0:
            return b""
        vid = node.meta.xattrs[(SYSTEM_NS + "version-id").encode()].decode() \
            if node.meta.xattrs else None
        if first >= node.meta.size:
            return b""
        return await self._client.get_range(node.meta.key, first, min(last, node.meta.size - 1),
                                            node.meta.etag, version_id=vid)

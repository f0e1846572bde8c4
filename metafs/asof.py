"""A point-in-time view (``--as-of TIME``): the bucket as it was at one moment.

A key is present at TIME when its newest version with LastModified ≤ TIME
is not a delete marker; the file then shows that version.  The view hands
up the same :class:`~metafs.s3.model.ListPage` and
:data:`~metafs.s3.model.HeadOutcome` as :class:`~metafs.views.LiveView`,
so nothing above :mod:`metafs.views` knows the difference:

* **Pages.**  One page of a directory is one page of the versions listing
  with ``delimiter=/`` (``GET /?versions``), collapsed by :func:`collapse`.
  A key's versions come newest first and may span pages: the token carries
  the last key already decided, so its older versions on the next page are
  skipped.  A page whose every entry is skipped is fetched past, up to
  :data:`SKIP_PAGES` raw pages per call, so a key with thousands of later
  versions costs its pages but not the listing.
* **Prefixes.**  The versions listing shows a common prefix for anything
  that ever existed under it.  Each prefix of a page is checked with one
  more request, sent concurrently: the first page (1,000 entries) of the
  prefix's versions listing without delimiter, collapsed.  It is shown if
  a key under it is present at TIME, hidden if that page is the whole
  listing and none is, and shown if the page does not settle it (more
  than 1,000 versions under it, all deleted or later on that page): a
  bounded cost, and no name is ever lost.
* **HEAD and GET** go to the version the listing showed (``versionId``).
  The view remembers key -> version id for the keys its pages showed
  (bounded like the cache); a key it does not know (looked up by name
  before any listing, or dropped by the bound) is resolved by one versions
  listing of ``prefix=KEY`` first.
* **Tags and annotations** (:class:`~metafs.views.ChannelView`) are the
  version's own: GetObjectTagging, ListObjectAnnotations and
  GetObjectAnnotation with the ``versionId`` shown, as HEAD.
* **Nothing is revalidated** (``revalidates`` is False): a version never
  changes, so the mount keeps every answer until the memory bound drops
  it, and tells the kernel to keep them as long (:data:`PERMANENT`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from urllib.parse import quote

import trio
from cachetools import LRUCache

from .errors import ChangedError, ConfigError, MalformedResponseError
from .s3.client import S3Client
from .s3.model import (
    Absent,
    AnnotationEntry,
    Denied,
    Fresh,
    HeadOutcome,
    ListPage,
    ObjectMeta,
    Unsupported,
    VersionsPage,
)
from .views import all_annotations

# The trust of every entry of an as-of mount, and the kernel's timeouts: a year.
PERMANENT = 365 * 24 * 3600.0
# Raw versions pages one list_page call reads past while they add no entry.
SKIP_PAGES = 4
# Concurrent prefix checks of one page.
PREFIX_CHECKS = 16
# Pages of a key's own versions read to find its version at the moment.
RESOLVE_PAGES = 3


def parse_moment(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """``--as-of``'s value: an RFC 3339 / ISO 8601 date or date-time, UTC unless it names a zone.

    A date alone is its midnight (UTC).  A moment in the future is refused:
    versions written after mounting would change what a permanent cache shows.
    """
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--as-of {text!r} is not an ISO 8601 date or date-time "
                          "(e.g. 2026-11-01 or 2026-11-01T00:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    moment = moment.astimezone(dt.UTC)
    if moment > (now or dt.datetime.now(dt.UTC)):
        raise ConfigError(f"--as-of {text!r} is in the future")
    return moment


def moment_text(moment_ms: int) -> str:
    """The moment as the root's xattr shows it: RFC 3339, UTC, milliseconds."""
    t = dt.datetime.fromtimestamp(moment_ms / 1000, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment_ms % 1000:03d}Z"


@dataclasses.dataclass(frozen=True, slots=True)
class Shown:
    """A key present at the moment: its metadata and the version that gives it."""

    meta: ObjectMeta
    version_id: str


def collapse(page: VersionsPage, moment_ms: int, decided: str | None
             ) -> tuple[list[Shown], str | None]:
    """The keys of ``page`` present at ``moment_ms``; ``decided`` is carried page to page.

    Pure.  A key is decided by its first (newest) entry at or before the
    moment: shown if that is a version, hidden if a delete marker; its
    older entries, on this page or later ones, are skipped.  A key whose
    entries are all later than the moment is never decided (not shown).
    Returns the shown keys, in order, and the last decided key.
    """
    shown: list[Shown] = []
    for v in page.versions:
        if v.key == decided or v.stamp_ms > moment_ms:
            continue
        decided = v.key
        if not v.delete_marker:
            shown.append(Shown(ObjectMeta(v.key, v.size, v.mtime, v.etag), v.version_id))
    return shown, decided


def _order(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")  # servers order keys by their bytes


def _token(key_marker: str, version_id_marker: str | None, decided: str | None) -> str:
    return json.dumps([key_marker, version_id_marker, decided])


def _untoken(token: str) -> tuple[str, str | None, str | None]:
    try:
        km, vm, decided = json.loads(token)
    except (ValueError, TypeError) as e:
        raise MalformedResponseError(f"not a versions listing token: {token!r}") from e
    return km, vm, decided


class AsOfView:
    """The bucket as it was at ``moment_ms`` (see the module docstring)."""

    revalidates = False

    def __init__(self, client: S3Client, moment_ms: int, *, max_keys: int = 250_000,
                 page_size: int | None = None) -> None:
        self._client = client
        self.moment_ms = moment_ms
        self._page_size = page_size  # max-keys of directory pages (None: the server's, 1,000)
        self._versions: LRUCache[str, str] = LRUCache(max(1, max_keys))  # key -> version id shown

    # -- pages --------------------------------------------------------------------
    async def list_page(self, dir_key: str, token: str | None, after: str | None = None
                        ) -> ListPage:
        km: str | None = after  # (keys after it: every version of a later key)
        vm: str | None = None
        decided: str | None = None
        if token is not None:
            km, vm, decided = _untoken(token)
        shown: list[Shown] = []
        prefixes: list[str] = []
        for _ in range(SKIP_PAGES):
            page = await self._client.list_versions(dir_key, delimiter="/", key_marker=km,
                                                    version_id_marker=vm,
                                                    max_keys=self._page_size)
            found, decided = collapse(page, self.moment_ms, decided)
            shown += found
            prefixes += page.prefixes
            if page.truncated and page.next_key_marker is None:
                raise MalformedResponseError(
                    f"LIST versions {dir_key or '/'}: truncated page without NextKeyMarker")
            km, vm = page.next_key_marker, page.next_version_id_marker
            if shown or prefixes or not page.truncated:
                break
        for s in shown:
            self._versions[s.meta.key] = s.version_id
        present = await self._present_prefixes(prefixes)
        truncated = km is not None
        return ListPage([s.meta for s in shown], present, truncated,
                        _token(km, vm, decided) if km is not None else None)

    async def _present_prefixes(self, prefixes: list[str]) -> list[str]:
        if not prefixes:
            return []
        keep = [False] * len(prefixes)
        limiter = trio.CapacityLimiter(PREFIX_CHECKS)

        async def check(i: int) -> None:
            async with limiter:
                keep[i] = await self._prefix_present(prefixes[i])

        async with trio.open_nursery() as nursery:
            for i in range(len(prefixes)):
                nursery.start_soon(check, i)
        return [p for p, k in zip(prefixes, keep, strict=True) if k]

    async def _prefix_present(self, prefix: str) -> bool:
        """Whether a key under ``prefix`` is present at the moment (one request; see above)."""
        page = await self._client.list_versions(prefix, delimiter=None)
        shown, _ = collapse(page, self.moment_ms, None)
        return bool(shown) or page.truncated

    async def has_children(self, key: str) -> bool:
        return await self._prefix_present(key + "/")

    # -- one key --------------------------------------------------------------------
    async def _version_of(self, key: str) -> str | None:
        """The version of ``key`` shown at the moment; None if absent then."""
        vid = self._versions.get(key)
        if vid is not None:
            return vid
        km: str | None = None
        vm: str | None = None
        for _ in range(RESOLVE_PAGES):
            page = await self._client.list_versions(key, delimiter="/", key_marker=km,
                                                    version_id_marker=vm)
            for v in page.versions:
                if v.key != key:
                    if _order(v.key) > _order(key):
                        return None
                    continue
                if v.stamp_ms <= self.moment_ms:
                    if v.delete_marker:
                        return None
                    self._versions[key] = v.version_id
                    return v.version_id
            if (not page.truncated or page.next_key_marker is None
                    or _order(page.next_key_marker) > _order(key)):
                return None
            km, vm = page.next_key_marker, page.next_version_id_marker
        return None

    async def head(self, key: str, etag: str | None = None, mtime: int = 0) -> HeadOutcome:
        # No If-None-Match (nor If-Modified-Since): a version never changes, nothing is revalidated.
        vid = await self._version_of(key)
        if vid is None:
            return Absent()
        outcome = await self._client.head_object(key, version_id=vid)
        if isinstance(outcome, Fresh):
            return outcome
        # The version was deleted for good since it was listed: forget it.
        self._versions.pop(key, None)
        return Absent()

    async def read(self, key: str, first: int, last: int, etag: str | None) -> bytes:
        vid = await self._version_of(key)
        if vid is None:
            raise ChangedError(404, "NoSuchVersion", "the version shown is gone", what=f"GET {key}")
        return await self._client.get_range(key, first, last, etag, version_id=vid)

    # -- channels (views.ChannelView): the tags and annotations of the version shown ----
    @property
    def tags_supported(self) -> bool:
        return self._client.dialect.tagging

    @property
    def annotations_supported(self) -> bool:
        return self._client.dialect.annotations

    def origin_url(self, key: str) -> str:
        """The object's URL; with ``?versionId=`` once the version shown is known (always,
        after the HEAD that every xattr request begins with)."""
        url = self._client.object_url(key)
        vid = self._versions.get(key)
        return url if vid is None else f"{url}?versionId={quote(vid, safe='')}"

    async def tags(self, key: str) -> dict[str, str] | Absent | Denied:
        vid = await self._version_of(key)
        if vid is None:
            return Absent()
        return await self._client.get_tagging(key, version_id=vid)

    async def annotations(self, key: str) -> list[AnnotationEntry] | Absent | Denied | Unsupported:
        vid = await self._version_of(key)
        if vid is None:
            return Absent()
        return await all_annotations(self._client, key, vid)

    async def annotation(self, key: str, name: str) -> bytes | Absent | Denied | None:
        vid = await self._version_of(key)
        if vid is None:
            return Absent()
        return await self._client.get_annotation(key, name, version_id=vid)

    async def parts_count(self, key: str, etag: str | None) -> int | None:
        """The part count of the version shown (HEAD with ``partNumber=1`` and ``versionId``)."""
        vid = await self._version_of(key)
        if vid is None:
            return None
        return await self._client.parts_count(key, etag, version_id=vid)

"""The metadata cache: what metafs knows, and until when it trusts it.

Pure and synchronous; time comes from an injected clock, so tests step it.
Entries are *not* dropped when their TTL passes: an expired object entry
still holds the ETag that revalidation sends as ``If-None-Match`` (a 304
then extends the entry without replacing it).  What bounds memory is the
LRU size of each table (cachetools), not the TTL.

Four private tables, all keyed by S3 key, reached only through the
intention-named methods below (``fresh_object``, ``serve_stale``…):

* objects: key -> :class:`Trusted` (listing-level or HEAD-level metadata)
* negatives: key -> expiry; the name is neither an object nor a prefix
* prefixes: ``dir/`` -> expiry; the prefix is known to exist
* listings: ``dir/`` -> :class:`~metafs.dirlist.Listing`, weighed by entries

When the bound pushes an entry out (least recently used first), the
``on_evict(table, key, value)`` given to the constructor hears of it: the
mount wires that to :class:`metafs.invalidate.KernelInvalidation`, which
tells the kernel to drop the names metafs no longer backs.  Explicit drops
(an entry replaced or found stale) are not evictions and are not reported.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, Literal

from cachetools import LRUCache

from . import metrics
from .dirlist import Listing
from .s3.model import ObjectMeta

Table = Literal["objects", "negatives", "prefixes", "listings"]
EvictHook = Callable[[Table, str, Any], None]


class _Table(LRUCache[str, Any]):
    """An LRU table that reports what its bound evicts (cachetools evicts via popitem)."""

    def __init__(self, name: Table, maxsize: int, on_evict: EvictHook | None,
                 getsizeof: Callable[[Any], int] | None = None) -> None:
        super().__init__(maxsize, getsizeof=getsizeof)
        self.name: Table = name
        self._on_evict = on_evict

    def popitem(self) -> tuple[str, Any]:
        key, value = super().popitem()
        metrics.recorder.cache_eviction(self.name)
        if self._on_evict is not None:
            self._on_evict(self.name, key, value)
        return key, value


@dataclasses.dataclass(slots=True)
class Trusted:
    """Metadata of one object and until when it is trusted."""

    meta: ObjectMeta
    expires: float

    @property
    def head_level(self) -> bool:
        """Whether a HEAD filled it (user and system metadata), not only a listing."""
        return self.meta.xattrs is not None


class MetaCache:
    """TTL-trusted, LRU-bounded metadata, keyed by S3 key."""

    def __init__(
        self,
        ttl: float,
        negative_ttl: float,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        on_evict: EvictHook | None = None,
    ) -> None:
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.clock = clock
        self.max_entries = max_entries
        self._objects = _Table("objects", max_entries, on_evict)
        self._negatives = _Table("negatives", max_entries, on_evict)
        self._prefixes = _Table("prefixes", max_entries, on_evict)
        # A listing weighs its number of entries, so the bound is in entries.
        self._listings = _Table("listings", max_entries, on_evict,
                                getsizeof=lambda lst: 1 + len(lst.entries))

    # -- time ----------------------------------------------------------------
    def now(self) -> float:
        return self.clock()

    def remaining(self, expires: float) -> float:
        """Seconds of trust left (0 when expired): the kernel's timeouts."""
        return max(0.0, expires - self.clock())

    def is_fresh(self, expires: float) -> bool:
        return expires > self.clock()

    # -- objects ---------------------------------------------------------------
    def fresh_object(self, key: str, *, head_level: bool = False) -> Trusted | None:
        """The entry for ``key`` if still trusted (and, if asked, HEAD-level)."""
        entry: Trusted | None = self._objects.get(key)
        if entry is None or entry.expires <= self.clock() or (head_level and not entry.head_level):
            metrics.recorder.cache_lookup("objects", False)
            return None
        metrics.recorder.cache_lookup("objects", True)
        return entry

    def known_object(self, key: str) -> Trusted | None:
        """The entry, fresh or not: an expired one still carries the ETag to revalidate."""
        entry: Trusted | None = self._objects.get(key)
        return entry

    def holds_objects(self) -> bool:
        """Whether any per-key object entry exists (readdir skips the look-up if not)."""
        return len(self._objects) > 0

    def put_object(self, meta: ObjectMeta) -> Trusted:
        """Store fresh metadata for ``meta.key``.

        A listing entry whose ETag equals that of a HEAD-level entry we
        hold confirms it unchanged: the HEAD data (user and system
        metadata) is kept and its trust extended, with no new HEAD.  This
        is the bulk revalidation of a re-listed directory.
        """
        expires = self.clock() + self.ttl
        old: Trusted | None = self._objects.get(meta.key)
        if (old is not None and meta.xattrs is None and old.head_level
                and meta.etag is not None and old.meta.etag == meta.etag):
            old.expires = expires
            return old
        entry = Trusted(meta, expires)
        self._objects[meta.key] = entry
        self._negatives.pop(meta.key, None)
        return entry

    def touch_object(self, key: str) -> Trusted | None:
        """A 304 answered: the entry is unchanged, trust it for another TTL."""
        entry: Trusted | None = self._objects.get(key)
        if entry is not None:
            entry.expires = self.clock() + self.ttl
        return entry

    def drop_object(self, key: str) -> None:
        self._objects.pop(key, None)

    def serve_stale(self, entry: Trusted, until: float) -> Trusted:
        """Keep serving ``entry`` (found stale, revalidation failed) until ``until``.

        It is stored, so calls within the grace send nothing.
        """
        metrics.recorder.stale_served("object")
        entry.expires = until
        self._objects[entry.meta.key] = entry
        return entry

    def listed(self, meta: ObjectMeta) -> None:
        """A listing page showed ``meta``: refresh what the per-key tables hold of it.

        Listed files live in their listing only, so nothing is added; an
        entry already held is refreshed (bulk revalidation, see
        :meth:`put_object`) and a negative entry is cleared.
        """
        if meta.key in self._objects:
            self.put_object(meta)
        else:
            self._negatives.pop(meta.key, None)

    # -- negatives ---------------------------------------------------------------
    def put_negative(self, key: str) -> float:
        expires = self.clock() + self.negative_ttl
        if self.negative_ttl > 0:
            self._negatives[key] = expires
        self._objects.pop(key, None)
        self._prefixes.pop(key + "/", None)
        return expires

    def negative_expiry(self, key: str) -> float | None:
        """Expiry of a fresh negative entry for ``key``, else None."""
        exp: float | None = self._negatives.get(key)
        metrics.recorder.cache_lookup("negatives", exp is not None and exp > self.clock())
        if exp is None:
            return None
        if exp <= self.clock():
            self._negatives.pop(key, None)
            return None
        return exp

    # -- prefixes ------------------------------------------------------------------
    def put_prefix(self, dir_key: str) -> float:
        expires = self.clock() + self.ttl
        self._prefixes[dir_key] = expires
        self._negatives.pop(dir_key[:-1], None)
        return expires

    def prefix_expiry(self, dir_key: str) -> float | None:
        """Expiry of a fresh prefix entry, else None."""
        exp: float | None = self._prefixes.get(dir_key)
        fresh = exp if exp is not None and exp > self.clock() else None
        metrics.recorder.cache_lookup("prefixes", fresh is not None)
        return fresh

    def knows_prefix(self, dir_key: str) -> bool:
        """Whether ``dir_key`` was ever known to exist (fresh or not)."""
        return dir_key in self._prefixes

    def drop_prefix(self, dir_key: str) -> None:
        self._prefixes.pop(dir_key, None)

    def serve_stale_prefix(self, dir_key: str, until: float) -> float:
        """Keep answering "directory" for ``dir_key`` until ``until`` (revalidation failed)."""
        metrics.recorder.stale_served("prefix")
        self._prefixes[dir_key] = until
        return until

    # -- listings ----------------------------------------------------------------------
    def listing(self, dir_key: str) -> Listing | None:
        """The kept listing of ``dir_key``, usable or not."""
        lst: Listing | None = self._listings.get(dir_key)
        return lst

    def fresh_listing(self, dir_key: str) -> Listing | None:
        """The kept listing of ``dir_key`` if it may answer for the directory now."""
        lst: Listing | None = self._listings.get(dir_key)
        usable = lst if lst is not None and lst.usable(self.clock()) else None
        metrics.recorder.cache_lookup("listings", usable is not None)
        return usable

    def put_listing(self, listing: Listing) -> None:
        """Keep ``listing`` for its directory, unless it is larger than the whole cache.

        (A listing built elsewhere arrives full: a walk's, a probe's.)
        """
        if 1 + len(listing.entries) > self.max_entries:
            self._listings.pop(listing.dir_key, None)  # served to its readers, not kept
            return
        self._listings[listing.dir_key] = listing

    def resize_listing(self, listing: Listing) -> None:
        """Re-weigh a listing that grew, evicting others if the bound demands."""
        if self._listings.get(listing.dir_key) is listing:
            if 1 + len(listing.entries) > self.max_entries:
                # Larger than the whole cache: keep serving it to its readers,
                # but do not keep it for lookups.
                self._listings.pop(listing.dir_key, None)
            else:
                # Out first, then back in: the bound then evicts *other*
                # listings, never this one while it is being filled.
                del self._listings[listing.dir_key]
                self._listings[listing.dir_key] = listing

    # -- forced refresh (metafs refresh) -----------------------------------------------
    def expire_name(self, key: str, listed: ObjectMeta | None = None) -> None:
        """Revalidate ``key`` at its next use: expired, not dropped (the ETag stays).

        An object entry is expired; a file known only from its listing
        (``listed``) gets an expired entry, which outranks the listing, so the
        next look costs one conditional HEAD.  A negative entry is dropped, a
        prefix entry expired (one LIST to confirm it).
        """
        now = self.clock()
        entry: Trusted | None = self._objects.get(key)
        if entry is not None:
            entry.expires = min(entry.expires, now)
        elif listed is not None:
            self._objects[key] = Trusted(listed, now)
        self._negatives.pop(key, None)
        exp: float | None = self._prefixes.get(key + "/")
        if exp is not None:
            self._prefixes[key + "/"] = min(exp, now)

    def expire_listing(self, dir_key: str) -> Listing | None:
        """Expire the kept listing of ``dir_key`` (kept as the previous one for stale-if-error)."""
        lst: Listing | None = self._listings.get(dir_key)
        if lst is not None:
            now = self.clock()
            lst.expires = min(lst.expires, now)
            lst.page_expires = [min(t, now) for t in lst.page_expires]
        return lst

    def negatives_in(self, dir_key: str | None) -> list[str]:
        """Keys of the negative entries directly in ``dir_key`` (None: all of them)."""
        return [k for k in list(self._negatives) if dir_key is None or _in_dir(k, dir_key)]

    def expire_in(self, dir_key: str | None) -> None:
        """:meth:`expire_name` for every entry directly in ``dir_key`` (None: everywhere)."""
        for k in [k for k in list(self._objects) if dir_key is None or _in_dir(k, dir_key)]:
            self.expire_name(k)
        for k in self.negatives_in(dir_key):
            self._negatives.pop(k, None)
        now = self.clock()
        for p in [p for p in list(self._prefixes)
                  if dir_key is None or _in_dir(p[:-1], dir_key)]:
            self._prefixes[p] = min(self._prefixes[p], now)
        for d in ([d for d in list(self._listings)] if dir_key is None else []):
            self.expire_listing(d)

    # -- figures -----------------------------------------------------------------------
    def figures(self) -> dict[str, int]:
        """Live sizes of the tables, for the root's ``metafs.*`` xattrs."""
        return {
            "cache.objects": len(self._objects),
            "cache.negatives": len(self._negatives),
            "cache.prefixes": len(self._prefixes),
            "cache.listings": len(self._listings),
            "cache.listed-entries": int(self._listings.currsize),
        }


def _in_dir(key: str, dir_key: str) -> bool:
    """Whether ``key`` names an entry directly in the directory ``dir_key``."""
    return key.startswith(dir_key) and "/" not in key[len(dir_key):] and key != dir_key

"""The metadata cache: what metafs knows, and until when it trusts it.

Pure and synchronous; time comes from an injected clock, so tests step it.
Entries are *not* dropped when their TTL passes: an expired object entry
still holds the ETag that revalidation sends as ``If-None-Match`` (a 304
then extends the entry without replacing it).  What bounds memory is the
LRU size of each table (cachetools), not the TTL.

Four tables, all keyed by S3 key:

* ``objects``: key -> :class:`Cached` (listing-level or HEAD-level metadata)
* ``negatives``: key -> expiry; the name is neither an object nor a prefix
* ``prefixes``: ``dir/`` -> expiry; the prefix is known to exist
* ``listings``: ``dir/`` -> :class:`~metafs.dirlist.Listing`, sized by entries

When the bound pushes an entry out (least recently used first), the
injected ``on_evict(table, key, value)`` hears of it: the FUSE layer uses
that to tell the kernel to drop the names it no longer backs (see
:meth:`metafs.fuse_ops.Operations.evicted`).  Explicit drops (an entry
replaced or found stale) are not evictions and are not reported.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

from cachetools import LRUCache

from .dirlist import Listing
from .s3.model import ObjectMeta


EvictHook = Callable[[str, str, Any], None]


class _Table(LRUCache):
    """An LRU table that reports what its bound evicts (cachetools evicts via popitem)."""

    def __init__(self, name: str, maxsize: int, owner: "MetaCache",
                 getsizeof: Callable[[Any], int] | None = None) -> None:
        super().__init__(maxsize, getsizeof=getsizeof)
        self.name = name
        self._owner = owner

    def popitem(self) -> tuple[Any, Any]:
        key, value = super().popitem()
        hook = self._owner.on_evict
        if hook is not None:
            hook(self.name, key, value)
        return key, value


@dataclasses.dataclass(slots=True)
class Cached:
    meta: ObjectMeta
    expires: float


class MetaCache:
    """TTL-trusted, LRU-bounded metadata, keyed by S3 key."""

    def __init__(
        self,
        ttl: float,
        negative_ttl: float,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.clock = clock
        self.on_evict: EvictHook | None = None  # set by the mount, once the FUSE layer exists
        self.objects: LRUCache[str, Cached] = _Table("objects", max_entries, self)
        self.negatives: LRUCache[str, float] = _Table("negatives", max_entries, self)
        self.prefixes: LRUCache[str, float] = _Table("prefixes", max_entries, self)
        # A listing weighs its number of entries, so the bound is in entries.
        self.listings: LRUCache[str, Listing] = _Table(
            "listings", max_entries, self, getsizeof=lambda lst: 1 + len(lst.entries))
        self.max_entries = max_entries

    # -- time ----------------------------------------------------------------
    def now(self) -> float:
        return self.clock()

    def remaining(self, expires: float) -> float:
        """Seconds of trust left (0 when expired): the kernel's timeouts."""
        return max(0.0, expires - self.clock())

    def is_fresh(self, expires: float) -> bool:
        return expires > self.clock()

    # -- objects ---------------------------------------------------------------
    def get_object(self, key: str) -> Cached | None:
        """The entry, fresh or not (callers decide; stale ones carry the ETag)."""
        return self.objects.get(key)

    def put_object(self, meta: ObjectMeta) -> Cached:
        """Store fresh metadata for ``meta.key``.

        A listing entry whose ETag equals that of a HEAD-level entry we
        hold confirms it unchanged: the HEAD data (user and system
        metadata) is kept and its trust extended, with no new HEAD.  This
        is the bulk revalidation of a re-listed directory.
        """
        expires = self.clock() + self.ttl
        old = self.objects.get(meta.key)
        if (old is not None and meta.headers is None and old.meta.headers is not None
                and meta.etag is not None and old.meta.etag == meta.etag):
            old.expires = expires
            return old
        entry = Cached(meta, expires)
        self.objects[meta.key] = entry
        self.negatives.pop(meta.key, None)
        return entry

    def touch_object(self, key: str) -> Cached | None:
        """A 304 answered: the entry is unchanged, trust it for another TTL."""
        entry = self.objects.get(key)
        if entry is not None:
            entry.expires = self.clock() + self.ttl
        return entry

    def drop_object(self, key: str) -> None:
        self.objects.pop(key, None)

    # -- negatives ---------------------------------------------------------------
    def put_negative(self, key: str) -> float:
        expires = self.clock() + self.negative_ttl
        if self.negative_ttl > 0:
            self.negatives[key] = expires
        self.objects.pop(key, None)
        self.prefixes.pop(key + "/", None)
        return expires

    def negative_expiry(self, key: str) -> float | None:
        """Expiry of a fresh negative entry for ``key``, else None."""
        exp = self.negatives.get(key)
        if exp is None:
            return None
        if exp <= self.clock():
            self.negatives.pop(key, None)
            return None
        return exp

    # -- prefixes ------------------------------------------------------------------
    def put_prefix(self, dir_key: str) -> float:
        expires = self.clock() + self.ttl
        self.prefixes[dir_key] = expires
        self.negatives.pop(dir_key[:-1], None)
        return expires

    def prefix_expiry(self, dir_key: str) -> float | None:
        exp = self.prefixes.get(dir_key)
        return exp if exp is not None and exp > self.clock() else None

    def drop_prefix(self, dir_key: str) -> None:
        self.prefixes.pop(dir_key, None)

    # -- listings ----------------------------------------------------------------------
    def get_listing(self, dir_key: str) -> Listing | None:
        return self.listings.get(dir_key)

    def put_listing(self, listing: Listing) -> None:
        self.listings[listing.dir_key] = listing

    def resize_listing(self, listing: Listing) -> None:
        """Re-weigh a listing that grew, evicting others if the bound demands."""
        if self.listings.get(listing.dir_key) is listing:
            if 1 + len(listing.entries) > self.max_entries:
                # Larger than the whole cache: keep serving it to its readers,
                # but do not keep it for lookups.
                self.listings.pop(listing.dir_key, None)
            else:
                # Out first, then back in: the bound then evicts *other*
                # listings, never this one while it is being filled.
                del self.listings[listing.dir_key]
                self.listings[listing.dir_key] = listing

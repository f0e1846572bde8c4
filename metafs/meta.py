"""The metadata layer: answers "what is this name?" with as few requests as possible.

It sits between the FUSE handlers (which know inodes) and the S3 client
(which knows requests), and owns the policy:

* **Listings first.**  A directory listed less than a TTL ago answers
  every lookup in it, positive or negative, with no request.
* **Probe once.**  A name no listing has shown costs one HEAD and one
  ``LIST prefix=name/ max-keys=1``, sent concurrently; the directory wins
  when both exist.  Revalidating a name already known as a file costs one
  conditional HEAD; one known as a directory, one LIST.
* **Revalidate, don't refetch.**  After the TTL, HEAD carries
  ``If-None-Match: <etag>``; 304 extends the entry, 200 replaces it, 404
  removes it.
* **Single flight.**  Concurrent requests for one key share one HEAD.
* **Stale if error.**  When revalidation fails (server down, timeout)
  and an expired entry exists, it is served for ``stale_grace`` seconds
  more, with a warning, instead of failing.  Without one: the error.
* **Read ahead what a scan will ask for.**  When a process reads the
  xattrs of consecutive files of one directory (in listing order, as
  ``for f in dir/*; do getfattr -d "$f"; done`` does), the HEADs of the
  next entries are sent ahead, in the background, with bounded
  concurrency; the window doubles with each consecutive access up to
  ``readahead_max``.  A lone access sends exactly its own HEAD.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Awaitable, Callable, Hashable, TypeVar

import trio
from cachetools import LRUCache

from . import errors
from .cache import Cached, MetaCache
from .dirlist import DirEntry, Listing
from .s3.client import S3Client
from .s3.model import ObjectMeta

log = logging.getLogger(__name__)

T = TypeVar("T")
_UNAVAILABLE = (errors.TransportError, errors.ServerError, errors.MalformedResponseError)


class SingleFlight:
    """Concurrent callers with one key share one call's outcome.

    A caller whose leader was cancelled (its FUSE request went away) does
    not inherit the cancellation: it runs the call itself.
    """

    def __init__(self) -> None:
        self._flights: dict[Hashable, "_Flight"] = {}

    def busy(self, key: Hashable) -> bool:
        return key in self._flights

    async def run(self, key: Hashable, fn: Callable[[], Awaitable[T]]) -> T:
        while True:
            flight = self._flights.get(key)
            if flight is None:
                break
            await flight.done.wait()
            if flight.outcome == "ok":
                return flight.value  # type: ignore[return-value]
            if flight.outcome == "error":
                assert flight.error is not None
                raise flight.error
        flight = _Flight()
        self._flights[key] = flight
        try:
            flight.value = await fn()
            flight.outcome = "ok"
            return flight.value
        except Exception as e:
            flight.error, flight.outcome = e, "error"
            raise
        finally:
            del self._flights[key]
            flight.done.set()


class _Flight:
    __slots__ = ("done", "outcome", "value", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.outcome = "cancelled"
        self.value: object = None
        self.error: Exception | None = None


@dataclasses.dataclass(slots=True)
class Found:
    """A positive answer: a file (with metadata) or a directory, trusted until ``expires``."""

    is_dir: bool
    meta: ObjectMeta | None
    expires: float


@dataclasses.dataclass(slots=True)
class Missing:
    """A negative answer, trusted until ``expires``."""

    expires: float


class Readahead:
    """Detects sequential scans of a directory's files.  Pure and synchronous.

    :meth:`access` is told each HEAD-level access as (listing, position) and
    returns the positions to fetch ahead: none for a first or random
    access, then a window that doubles (2, 4, 8…) while accesses stay
    consecutive.  Positions already scheduled are never returned twice.
    """

    def __init__(self, max_window: int = 32, max_dirs: int = 256) -> None:
        self.max_window = max_window
        self._state: LRUCache[str, list[int]] = LRUCache(max_dirs)  # dir -> [last, window, ahead]

    def access(self, lst: Listing, pos: int) -> range:
        st = self._state.get(lst.dir_key)
        if st is None or not (st[0] < pos <= st[0] + 2):
            if st is None or pos != st[0]:
                self._state[lst.dir_key] = [pos, 0, pos + 1]
            return range(0)
        last, window, ahead = st
        window = min(self.max_window, max(2, window * 2))
        start = max(pos + 1, ahead)
        end = min(pos + 1 + window, len(lst.entries))
        self._state[lst.dir_key] = [pos, window, max(ahead, end)]
        return range(start, end)


class Metadata:
    """Object and directory metadata for one bucket (see the module docstring)."""

    def __init__(self, client: S3Client, cache: MetaCache, *, stale_grace: float = 1.0,
                 ordered_listings: bool = True, readahead_max: int = 32,
                 readahead_concurrency: int = 16) -> None:
        self.client = client
        self.cache = cache
        self.stale_grace = stale_grace
        self.ordered_listings = ordered_listings
        self._flights = SingleFlight()
        self._readahead = Readahead(readahead_max) if readahead_max > 0 else None
        self._limiter = trio.CapacityLimiter(max(1, readahead_concurrency))
        self._nursery: trio.Nursery | None = None
        self._misses: LRUCache[str, float] = LRUCache(1024)  # dir -> time of a first probe

    def start_background(self, nursery: trio.Nursery) -> None:
        """Where readahead tasks run (the mount's nursery); none: no readahead."""
        self._nursery = nursery

    # -- lookups -----------------------------------------------------------
    async def lookup(self, dir_key: str, name: str) -> Found | Missing:
        """What ``name`` is in the directory ``dir_key`` (a prefix, '' for the root)."""
        c = self.cache
        key = dir_key + name
        listing = c.get_listing(dir_key)
        if (listing is not None and not listing.failed and c.is_fresh(listing.expires)
                and listing.lock.locked() and name not in listing.index
                and not listing.covers(name)):
            # A page is on the way: it was asked for before this lookup, so
            # waiting for it is no slower than a probe, and may settle the name.
            try:
                await self.fill(listing, len(listing.entries))
            except errors.MetafsError:
                pass  # the listing failed; answer by probing instead
        usable = listing is not None and not listing.failed and c.is_fresh(listing.expires)
        # An emitted entry is final (rule 2 is settled before emitting); an
        # absent name is settled only where the pages cover it.
        if usable and (name in listing.index or listing.covers(name)):  # type: ignore[union-attr]
            entry = listing.index.get(name)  # type: ignore[union-attr]
            if entry is None:
                return Missing(listing.expires)  # type: ignore[union-attr]
            if entry.is_dir:
                return Found(True, None, listing.expires)
            cached = c.get_object(key)
            if cached is not None and c.is_fresh(cached.expires):
                return Found(False, cached.meta, cached.expires)
            return Found(False, entry.meta, listing.expires)
        if (exp := c.prefix_expiry(key + "/")) is not None:
            return Found(True, None, exp)
        cached = c.get_object(key)
        if cached is not None and c.is_fresh(cached.expires):
            return Found(False, cached.meta, cached.expires)
        if (exp := c.negative_expiry(key)) is not None:
            return Missing(exp)
        self._list_on_misses(dir_key)
        return await self._flights.run(("name", key), lambda: self._probe(key))

    def _list_on_misses(self, dir_key: str) -> None:
        """After repeated probes in one directory, list it once instead.

        The kernel serializes lookups within a directory (see SEMANTICS.md),
        so a burst of lookups of unlisted names — a script stat-ing many
        files, a storm of negative lookups — would cost one HEAD + LIST
        round trip each, one after the other.  From the second probe in a
        directory without a listing, its first LIST page is fetched in the
        background; the lookups that follow are answered from it whenever
        it covers their name, and each later miss past what it covers pulls
        one more page, so a storm converges on the complete listing.  Two
        probes count as a burst when they are less than a TTL apart.
        """
        if self._nursery is None:
            return
        lst = self.cache.get_listing(dir_key)
        if lst is not None and not lst.failed and self.cache.is_fresh(lst.expires):
            # Listed in part: a miss past what it covers pulls one more page.
            if not lst.complete and not lst.lock.locked():
                self._nursery.start_soon(self._list_ahead, lst)
            return
        now = self.cache.now()
        first = self._misses.get(dir_key)
        if first is None or now - first > self.cache.ttl:
            self._misses[dir_key] = now  # the first miss of a burst
            return
        self._misses.pop(dir_key, None)
        self._nursery.start_soon(self._list_ahead, self.listing(dir_key))

    async def _list_ahead(self, lst: Listing) -> None:
        try:
            await self.fill(lst, len(lst.entries))  # one more page
        except Exception as e:  # a failed guess costs nothing but this line
            log.debug("listing %r ahead of lookups failed: %s", lst.dir_key, e)

    async def _probe(self, key: str) -> Found | Missing:
        c = self.cache
        stale = c.get_object(key) or self._listed(key, fresh=False)
        known_dir = (key + "/") in c.prefixes
        try:
            if stale is not None and not known_dir:
                return await self._revalidate_file(key, stale)
            if known_dir and stale is None:
                if await self._prefix_exists(key):
                    return Found(True, None, c.put_prefix(key + "/"))
                c.drop_prefix(key + "/")
                return await self._probe_head(key)
            return await self._probe_both(key)
        except _UNAVAILABLE as e:
            if stale is not None or known_dir:
                self._warn_stale(key, e)
                grace = c.now() + self.stale_grace
                if known_dir:
                    c.prefixes[key + "/"] = grace
                    return Found(True, None, grace)
                assert stale is not None
                c.objects[key] = stale  # kept, so calls within the grace send nothing
                stale.expires = grace
                return Found(False, stale.meta, grace)
            raise

    async def _probe_both(self, key: str) -> Found | Missing:
        """HEAD key and LIST key/ at once; the directory wins."""
        results: dict[str, object] = {}

        async def run(name: str, fn: Callable[[], Awaitable[object]]) -> None:
            try:
                results[name] = await fn()
            except errors.MetafsError as e:
                results[name] = e

        async with trio.open_nursery() as n:
            n.start_soon(run, "head", lambda: self.client.head_object(key))
            n.start_soon(run, "list", lambda: self._prefix_exists(key))
        is_dir, head = results["list"], results["head"]
        if isinstance(is_dir, Exception):
            raise is_dir
        if is_dir:
            if not isinstance(head, Exception) and head.status == "ok":  # type: ignore[attr-defined]
                c_meta = head.meta  # type: ignore[attr-defined]
                self.cache.put_object(c_meta)
                log.info("key %r is both an object and a prefix: showing the directory", key)
            return Found(True, None, self.cache.put_prefix(key + "/"))
        if isinstance(head, errors.MetafsError):
            raise head
        return self._apply_head(key, head, None)  # type: ignore[arg-type]

    async def _probe_head(self, key: str) -> Found | Missing:
        return self._apply_head(key, await self.client.head_object(key), None)

    async def _prefix_exists(self, key: str) -> bool:
        page = await self.client.list_page(key + "/", delimiter=None, max_keys=1)
        return bool(page.objects or page.prefixes)

    async def _revalidate_file(self, key: str, stale: Cached) -> Found | Missing:
        res = await self.client.head_object(key, stale.meta.etag)
        if res.status == "absent" and await self._prefix_exists(key):
            # The object went away but the name lives on as a directory.
            self.cache.drop_object(key)
            return Found(True, None, self.cache.put_prefix(key + "/"))
        return self._apply_head(key, res, stale)

    def _apply_head(self, key: str, res, stale: Cached | None) -> Found | Missing:  # noqa: ANN001
        c = self.cache
        if res.status == "ok":
            entry = c.put_object(res.meta)
            return Found(False, entry.meta, entry.expires)
        if res.status == "not_modified" and stale is not None:
            entry = c.touch_object(key) or c.put_object(stale.meta)
            return Found(False, entry.meta, entry.expires)
        if res.status == "not_modified":  # 304 with nothing to extend: cannot happen
            raise errors.MalformedResponseError(f"304 for {key!r} without If-None-Match")
        return Missing(c.put_negative(key))

    # -- per-file metadata -------------------------------------------------------
    async def file(self, key: str, *, full: bool = False, _ahead: bool = False) -> Cached:
        """Fresh metadata of the file ``key``; with ``full``, HEAD-level (headers).

        Raises NotFoundError if the object is gone (and remembers that).
        """
        c = self.cache
        if full and not _ahead:
            self._read_ahead(key)
        while True:
            cached = c.get_object(key)
            if cached is not None and c.is_fresh(cached.expires) and (
                    not full or cached.meta.headers is not None):
                return cached
            if not full and (listed := self._listed(key)) is not None:
                return listed
            if not self._flights.busy(("obj", key)):
                break
            await self._flights.run(("obj", key), _noop)  # wait for it, then look again
        return await self._flights.run(("obj", key), lambda: self._fetch(key, full))

    def _listed(self, key: str, *, fresh: bool = True) -> Cached | None:
        """Listing-level metadata of ``key`` from its directory's listing.

        With ``fresh=False`` an expired listing will do: its ETag is what
        revalidation sends as If-None-Match.
        """
        dir_key, _, name = key.rpartition("/")
        lst = self.cache.get_listing(dir_key + "/" if dir_key else "")
        if lst is None or lst.failed or (fresh and not self.cache.is_fresh(lst.expires)):
            return None
        e = lst.index.get(name)
        if e is None or e.is_dir or e.meta is None:
            return None
        return Cached(e.meta, lst.expires)

    async def _fetch(self, key: str, full: bool) -> Cached:
        c = self.cache
        stale = c.get_object(key) or self._listed(key, fresh=False)
        # A listing-level entry has no headers: a 304 would leave us without them.
        etag = stale.meta.etag if stale is not None and (not full or stale.meta.headers) else None
        try:
            res = await self.client.head_object(key, etag)
        except _UNAVAILABLE as e:
            if stale is not None and (not full or stale.meta.headers is not None):
                self._warn_stale(key, e)
                c.objects[key] = stale  # kept, so calls within the grace send nothing
                stale.expires = c.now() + self.stale_grace
                return stale
            raise
        if res.status == "ok":
            return c.put_object(res.meta)
        if res.status == "not_modified" and stale is not None:
            return c.touch_object(key) or c.put_object(stale.meta)
        # Gone as an object; not remembered as missing, because the name may
        # now be a directory: the kernel's next lookup probes both.
        c.drop_object(key)
        raise errors.NotFoundError(404, "NoSuchKey", "the object is gone", what=f"HEAD {key}")

    def _read_ahead(self, key: str) -> None:
        """Schedule HEADs of the entries a sequential scan will want next."""
        if self._readahead is None or self._nursery is None:
            return
        dir_key, _, name = key.rpartition("/")
        lst = self.cache.get_listing(dir_key + "/" if dir_key else "")
        if lst is None:
            return
        entry = lst.index.get(name)
        if entry is None or entry.is_dir:
            return
        c = self.cache
        for pos in self._readahead.access(lst, entry.pos):
            e = lst.entries[pos]
            if e.is_dir or e.meta is None:
                continue
            cached = c.get_object(e.meta.key)
            if cached is not None and c.is_fresh(cached.expires) and cached.meta.headers is not None:
                continue
            self._nursery.start_soon(self._prefetch, e.meta.key)

    async def _prefetch(self, key: str) -> None:
        async with self._limiter:
            try:
                await self.file(key, full=True, _ahead=True)
            except Exception as e:  # a failed guess costs nothing but this line
                log.debug("readahead of %r failed: %s", key, e)

    def _warn_stale(self, key: str, e: Exception) -> None:
        log.warning("serving cached metadata of %r: revalidation failed (%s)", key, e)

    # -- listings ------------------------------------------------------------------
    def listing(self, dir_key: str) -> Listing:
        """The listing readdir should serve: fresh, in progress, or a new one."""
        c = self.cache
        lst = c.get_listing(dir_key)
        # An incomplete listing is shared only while fresh: one abandoned
        # half-way must not serve pages fetched long after its TTL.
        if lst is not None and not lst.failed and c.is_fresh(lst.expires):
            return lst
        lst = Listing(dir_key, c.now() + c.ttl, ordered=self.ordered_listings)
        c.put_listing(lst)
        return lst

    async def fill(self, lst: Listing, upto: int) -> None:
        """Fetch pages until ``lst`` has an entry at index ``upto`` or is complete."""
        while len(lst.entries) <= upto and not lst.complete:
            async with lst.lock:
                if len(lst.entries) > upto or lst.complete:
                    return
                try:
                    page = await self.client.list_page(lst.dir_key, token=lst.token)
                except errors.MetafsError:
                    lst.failed = True
                    raise
                if lst.pages == 0:
                    # Trust runs from the first request, not from when it finished.
                    lst.expires = min(lst.expires, self.cache.now() + self.cache.ttl)
                self._absorb(lst, lst.add_page(page))

    def _absorb(self, lst: Listing, entries: list[DirEntry]) -> None:
        """Let a page refresh what the per-key tables hold.

        Listed files live in the listing only (it answers lookups and stat
        by itself): copying each into the object table too would double the
        memory of a huge directory.  A file the table already holds is
        refreshed from the page — the bulk revalidation of
        :meth:`MetaCache.put_object` — and its negative entry cleared.
        """
        c = self.cache
        objects, negatives = c.objects, c.negatives
        for e in entries:
            if e.is_dir:
                c.put_prefix(lst.dir_key + e.name + "/")
            else:
                assert e.meta is not None
                if e.meta.key in objects:
                    c.put_object(e.meta)
                elif e.meta.key in negatives:
                    del negatives[e.meta.key]
        c.resize_listing(lst)

    def entry_meta(self, lst: Listing, e: DirEntry) -> tuple[ObjectMeta, float]:
        """The freshest metadata for a listed file, and until when to trust it."""
        assert e.meta is not None
        cached = self.cache.get_object(e.meta.key)
        if cached is not None and self.cache.is_fresh(cached.expires):
            return cached.meta, cached.expires
        return e.meta, lst.expires


async def _noop() -> None:
    return None

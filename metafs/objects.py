"""What an object says: its metadata, from a listing or a HEAD, kept fresh.

The one owner of per-object answers (which names exist is
:mod:`metafs.namespace`'s question):

* **Listing-level or HEAD-level.**  ``stat`` is answered by a listing
  entry (size, mtime, ETag) when one is fresh; xattrs need a HEAD
  (:meth:`ObjectMetadata.head`), whose answer carries the xattr table,
  built once where the answer arrived (the S3 layer).
* **Revalidate, don't refetch.**  After the TTL, HEAD carries
  ``If-None-Match: <etag>`` (a server that sends no ETag:
  ``If-Modified-Since: <Last-Modified>``); 304 extends the entry, 200
  replaces it, 404 drops it.  A listing-level entry is not revalidated for a HEAD-level
  caller: a 304 would leave it without xattrs.
* **Single flight.**  Concurrent requests for one key share one HEAD.
* **Stale if error.**  When revalidation fails (server down, timeout) and
  an expired entry of the needed level exists, it is served for
  ``stale_grace`` seconds more, with a warning, instead of failing.  The
  grace runs from the *end* of the failure, so it outlasts a revalidation
  that took the whole request budget; during an outage later revalidations
  fail at once (the S3 layer knows the endpoint is down), so the entry
  keeps being served, grace after grace, at no cost, until the endpoint
  answers again.
* **Read ahead what a scan will ask for.**  When a process reads the
  xattrs of consecutive files of one directory (in listing order, as
  ``for f in dir/*; do getfattr -d "$f"; done`` does), the HEADs of the
  next entries are sent ahead, in the background, with bounded
  concurrency; the window doubles with each consecutive access up to
  ``readahead_max``.  A lone access sends exactly its own HEAD.
* **Metadata channels.**  An object's xattrs are the union of its
  channels.  Today there is one, the HEAD answer (user metadata and
  system headers, :meth:`xattrs`); object tags and S3 annotations are
  further channels fetched beside it, each cached with the object.
"""

from __future__ import annotations

import logging

import trio
from cachetools import LRUCache

from . import errors, metrics
from .cache import MetaCache, Trusted
from .dirlist import FileEntry, Listing
from .flight import SingleFlight
from .listings import Listings
from .s3.model import Absent, Fresh, HeadOutcome, NotModified, ObjectMeta
from .views import View

log = logging.getLogger(__name__)


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
        _last, window, ahead = st
        window = min(self.max_window, max(2, window * 2))
        start = max(pos + 1, ahead)
        end = min(pos + 1 + window, len(lst.entries))
        self._state[lst.dir_key] = [pos, window, max(ahead, end)]
        return range(start, end)


class ObjectMetadata:
    """Per-object metadata for one view (see the module docstring)."""

    def __init__(self, view: View, cache: MetaCache, listings: Listings, *,
                 stale_grace: float = 1.0, readahead_max: int = 32,
                 readahead_concurrency: int = 16) -> None:
        self._view = view
        self._cache = cache
        self._listings = listings
        self.stale_grace = stale_grace
        self._flights: SingleFlight[Trusted | Absent] = SingleFlight()
        self._readahead = Readahead(readahead_max) if readahead_max > 0 else None
        self._limiter = trio.CapacityLimiter(max(1, readahead_concurrency))
        self._nursery: trio.Nursery | None = None
        # Part counts by (key, ETag): an ETag names bytes uploaded once, so its count never changes.
        self._parts: LRUCache[tuple[str, str], int | None] = LRUCache(10_000)

    def start_background(self, nursery: trio.Nursery) -> None:
        """Where readahead tasks run (the mount's nursery); none: no readahead."""
        self._nursery = nursery

    # -- the questions --------------------------------------------------------
    async def stat(self, key: str) -> Trusted | Absent:
        """Fresh metadata of the file ``key``; listing-level will do.

        ``Absent`` if the object is gone.  Gone is not remembered as a
        negative entry: the name may now be a directory, which the kernel's
        next lookup finds by probing both.
        """
        return await self._get(key, head_level=False)

    async def head(self, key: str) -> Trusted | Absent:
        """Fresh HEAD-level metadata of ``key`` (its xattrs are filled); starts readahead."""
        metrics.recorder.readahead_used(key)
        self._read_ahead(key)
        return await self._get(key, head_level=True)

    async def xattrs(self, key: str) -> dict[bytes, bytes] | Absent:
        """Every xattr of the object, from each of its metadata channels."""
        found = await self.head(key)
        if isinstance(found, Absent):
            return found
        assert found.meta.xattrs is not None  # head() returns HEAD-level entries only
        return found.meta.xattrs

    async def parts_count(self, key: str) -> int | Absent | None:
        """The part count of ``key`` (None: not uploaded in parts); one request per ETag.

        The ETag comes from what ``stat`` knows (a listing will do); the
        count asked for then is kept for that ETag (see the client's
        ``parts_count`` for why the request is not pinned to it).
        """
        found = await self.stat(key)
        if isinstance(found, Absent):
            return found
        etag = found.meta.etag
        if etag is not None and (key, etag) in self._parts:
            return self._parts[(key, etag)]
        count = await self._view.parts_count(key, etag)
        if etag is not None:
            self._parts[(key, etag)] = count
        return count

    async def listed_alone(self, key: str) -> ObjectMeta | None:
        """``key``'s listing entry (size, mtime, ETag), from one listing page that starts at it.

        For an object HEAD cannot answer for (SSE-C without its key): the
        delimiter listing with ``prefix=key`` shows the object ``key`` first.
        """
        page = await self._view.list_page(key, None)
        return next((o for o in page.objects if o.key == key), None)

    # -- HEAD outcomes, shared with the namespace's probes ----------------------
    def settle(self, key: str, outcome: HeadOutcome, stale: Trusted | None) -> Trusted | Absent:
        """Record a HEAD's outcome: 200 stores, 304 extends ``stale``, 404 is ``Absent``.

        What an absent object means for the *name* is the caller's rule.
        """
        c = self._cache
        match outcome:
            case Fresh(meta):
                return c.put_object(meta)
            case NotModified() if stale is not None:
                return c.touch_object(key) or c.put_object(stale.meta)
            case NotModified():  # a 304 to an unconditional HEAD: a server fault
                raise errors.MalformedResponseError(f"304 for {key!r} to an unconditional HEAD")
            case Absent():
                return outcome

    def serve_stale(self, stale: Trusted, e: Exception) -> Trusted:
        """Revalidation failed: keep serving ``stale`` for the grace from now, with a log line.

        Now is after the failure, however long it took.  A warning, unless
        the failure is the fast one of a known outage (logged when it began).
        """
        level = logging.DEBUG if isinstance(e, errors.EndpointDownError) else logging.WARNING
        log.log(level, "serving cached metadata of %r: revalidation failed (%s)", stale.meta.key, e)
        return self._cache.serve_stale(stale, self._cache.now() + self.stale_grace)

    # -- fetching -----------------------------------------------------------------
    async def _get(self, key: str, *, head_level: bool) -> Trusted | Absent:
        while True:
            trusted = self._cache.fresh_object(key, head_level=head_level)
            if trusted is not None:
                return trusted
            if not head_level and (listed := self._listings.listed_file(key)) is not None:
                return listed
            if not self._flights.busy(key):
                break
            # Join the flight under way: its error or absence is ours too, but
            # it may be of the other level, so a listing-level answer to a
            # HEAD-level caller means looking again.
            found = await self._flights.run(key, lambda: self._fetch(key, head_level))
            if isinstance(found, Absent) or not head_level or found.head_level:
                return found
        return await self._flights.run(key, lambda: self._fetch(key, head_level))

    async def _fetch(self, key: str, head_level: bool) -> Trusted | Absent:
        c = self._cache
        stale = c.known_object(key) or self._listings.listed_file(key, fresh=False)
        usable = stale is not None and (not head_level or stale.head_level)
        try:
            outcome = (await self._view.head(key, stale.meta.etag, stale.meta.mtime)
                       if usable and stale is not None else await self._view.head(key))
        except errors.CustomerKeyError:
            # SSE-C without the key: HEAD is refused, but a listing still says what stat needs.
            listed = None if head_level else await self.listed_alone(key)
            if listed is None:
                raise
            return c.put_object(listed)
        except errors.UNAVAILABLE as e:
            if usable and stale is not None:
                return self.serve_stale(stale, e)
            raise
        found = self.settle(key, outcome, stale if usable else None)
        if isinstance(found, Absent):
            c.drop_object(key)
            self._listings.refute(key)
        return found

    def _read_ahead(self, key: str) -> None:
        """Schedule HEADs of the entries a sequential scan will want next."""
        if self._readahead is None or self._nursery is None:
            return
        located = self._listings.locate(key)
        if located is None:
            return
        lst, entry = located
        for pos in self._readahead.access(lst, entry.pos):
            e = lst.entries[pos]
            if not isinstance(e, FileEntry) or self._cache.fresh_object(e.meta.key, head_level=True):
                continue
            self._nursery.start_soon(self._prefetch, e.meta.key)
            metrics.recorder.readahead_sent(e.meta.key)

    async def _prefetch(self, key: str) -> None:
        async with self._limiter:
            try:
                await self._get(key, head_level=True)
            except Exception as e:  # noqa: BLE001 - a failed guess costs only this line; raising would end the mount
                log.debug("readahead of %r failed: %s", key, e)

"""Directory listings: which listing serves a directory, and fetching its pages.

The one owner of a listing's life (the merge rules are :mod:`dirlist`'s,
the storage and bound the cache's):

* **Shared while fresh.**  ``readdir`` at offset 0 and lookups take the
  directory's kept listing while it is usable (fresh, not failed), even
  if incomplete; otherwise a new one replaces it.  An incomplete listing
  abandoned half-way is not served past its TTL.
* **Pages on demand.**  A page is fetched only when a reader asks past
  what is listed (:meth:`Listings.fill`), one fetch at a time per listing
  (its lock), shared by every reader.
* **Trust runs page by page**, from each page's request (see
  :mod:`dirlist`); a failed page ends the listing's trust for good.
* **Listed files live in their listing only**: a page refreshes what the
  per-key tables already hold (:meth:`MetaCache.listed`) and adds nothing
  to them, so a huge directory costs its entries once.
* **Stale if error.**  A new listing that replaces an expired complete one
  keeps it (``Listing.previous``) until its own first page arrives.  If
  that page cannot be had (no answer, 5xx, unparseable: ``UNAVAILABLE``),
  the previous listing is kept again and served, every entry and absence
  trusted ``stale_grace`` seconds from the end of the failure, with one
  warning line (later graces of the same listing are logged quietly).
  So ``ls -l`` of a directory listed before an outage shows it as it was,
  like ``stat`` of its files.  A failure after the first page is the
  caller's error: the pages that did come proved the server answers.
* **Huge directories in parallel.**  Once a reader asks past
  ``SEQUENTIAL_PAGES`` pages (so ``ls`` of a small directory, or a reader
  that stops early, costs what it always cost), the rest of an ordered
  live listing is fetched as parallel key ranges (:mod:`metafs.ranges`:
  the plan, its proof and its fallback) in the mount's nursery; a reader
  waits for the next page *in order*, which is merged by
  :meth:`Listing.add_page` like a sequential one.  A server that ignores
  ``start-after`` makes the plan finish sequentially, and this endpoint is
  not split again.  Directory buckets (unordered), the as-of view (no
  :class:`~metafs.views.RangeLister`) and a mount without a nursery (the
  handler tests) list sequentially.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import trio

from . import errors, metrics
from .cache import MetaCache, Trusted
from .dirlist import DirEntry, Entry, FileEntry, Listing, name_of, split_key
from .ranges import FANOUT, Range, RangePlan
from .s3.model import ListPage, ObjectMeta
from .views import RangeLister, View

log = logging.getLogger(__name__)

# Pages listed one after the other before the rest goes in parallel ranges.
SEQUENTIAL_PAGES = 3  # (so a directory of up to 3 pages costs exactly its pages)


class Fanout:
    """A listing's range plan and what wakes the reader waiting on it (held by the listing)."""

    __slots__ = ("plan", "wake")

    def __init__(self, plan: RangePlan) -> None:
        self.plan = plan
        self.wake = trio.Event()

    def woken(self) -> None:
        self.wake.set()
        self.wake = trio.Event()


class Listings:
    """Listings of one view's directories (see the module docstring)."""

    def __init__(self, view: View, cache: MetaCache, *, ordered: bool = True,
                 stale_grace: float = 1.0, fanout: int = FANOUT) -> None:
        self._view = view
        self._cache = cache
        self._ordered = ordered  # directory buckets list in no order: dirlist sorts at the end
        self.stale_grace = stale_grace
        self._ranges: RangeLister | None = view if isinstance(view, RangeLister) else None
        # False once a server ignored start-after: this endpoint lists sequentially.
        self._splits = ordered and fanout >= 2 and self._ranges is not None
        self._fanout = fanout
        self._nursery: trio.Nursery | None = None
        self.range_requests = 0  # requests of parallel ranges (a figure)

    def start_background(self, nursery: trio.Nursery) -> None:
        """Where the requests of parallel ranges run (the mount's nursery); none: all sequential."""
        self._nursery = nursery

    @property
    def ordered(self) -> bool:
        """Whether the server lists in key order (not an S3 directory bucket)."""
        return self._ordered

    def current(self, dir_key: str) -> Listing:
        """The listing readdir should serve: fresh, in progress, or a new one."""
        lst = self._cache.fresh_listing(dir_key)
        if lst is not None:
            return lst
        old = self._cache.listing(dir_key)
        lst = Listing(dir_key, self._cache.now() + self._cache.ttl, ordered=self._ordered)
        if old is not None and old.complete and not old.failed:
            lst.previous = old  # served again if lst's first page cannot be had
        self._cache.put_listing(lst)
        return lst

    async def open(self, dir_key: str) -> Listing:
        """The listing a ``readdir`` from the start serves: :meth:`current`, its first page in.

        If that page cannot be had and the previous listing is served
        instead (see the module docstring), that one; otherwise the error.
        """
        lst = self.current(dir_key)
        if lst.pages:
            return lst
        try:
            await self.fill(lst, 0)
        except errors.UNAVAILABLE:
            kept = self._cache.fresh_listing(dir_key)
            if kept is None or kept is lst:
                raise
            return kept
        return lst

    def fresh(self, dir_key: str) -> Listing | None:
        """The kept listing of ``dir_key`` if it may answer lookups now."""
        return self._cache.fresh_listing(dir_key)

    def backed(self, dir_key: str) -> bool:
        """Whether a listing of ``dir_key`` is kept (fresh or not) to back its names.

        False once the bound evicted it, or when it was too large to keep.
        """
        return self._cache.listing(dir_key) is not None

    async def fill(self, lst: Listing, upto: int) -> None:
        """Fetch pages until ``lst`` has an entry at index ``upto`` or is complete.

        Raises the S3 error of a failed page, or the
        :class:`~metafs.errors.MalformedResponseError` of a page that would
        keep the listing from ending (:mod:`metafs.dirlist`, rule 6); the
        listing is then failed, and every later caller of this listing
        (readers that waited for the page, handles that keep it) gets the
        same error with no request.  A fetch cancelled by its FUSE
        request's bound fails nothing: the lock is released and the next
        reader asks for the same page again.
        """
        while len(lst.entries) <= upto and not lst.complete:
            async with lst.lock:
                if lst.failed:
                    if lst.error is not None:
                        raise lst.error.with_traceback(None)  # the same error, not a growing traceback
                    raise errors.MetafsError(f"LIST {lst.dir_key or '/'} failed")
                if len(lst.entries) > upto or lst.complete:
                    return
                try:
                    if lst.fanout is None and self._may_split(lst):
                        lst.fanout = self._plan(lst)
                    if isinstance(lst.fanout, Fanout):
                        page, expires = await self._next_in_order(lst.dir_key, lst.fanout)
                    else:
                        expires = self._cache.now() + self._cache.ttl  # trust runs from the request
                        page = await self._view.list_page(lst.dir_key, lst.token, lst.after)
                    entries = lst.add_page(page, expires)
                except errors.MetafsError as e:
                    lst.fanout = None
                    lst.fail(e)
                    if isinstance(e, errors.UNAVAILABLE):
                        self._serve_previous(lst, e)
                    raise
                lst.previous = None  # the server answered: lst replaces it for good
                if isinstance(lst.fanout, Fanout):
                    if lst.fanout.plan.sequential:
                        self._splits = False  # the server ignores start-after (ranges.py)
                    if lst.complete:
                        lst.fanout = None
                self._absorb(lst, entries)

    # -- parallel ranges -----------------------------------------------------------------
    def _may_split(self, lst: Listing) -> bool:
        return (self._splits and self._nursery is not None and lst.ordered
                and lst.pages >= SEQUENTIAL_PAGES and lst.token is not None and bool(lst.watermark))

    def _plan(self, lst: Listing) -> Fanout:
        assert lst.token is not None  # (_may_split)
        names = [n for n in lst.names if n is not None]  # (the sample: a few thousand)
        return Fanout(RangePlan(lst.dir_key, name_of(lst.watermark), lst.token, names,
                                pages=lst.pages, fanout=self._fanout))

    async def _next_in_order(self, dir_key: str, fan: Fanout) -> tuple[ListPage, float]:
        """The plan's next page in order, sending what it asks for meanwhile (in the nursery)."""
        while True:
            got = fan.plan.take()  # raises the error of a failed range the reader reached
            self._send(dir_key, fan)  # (taking a page makes room for more)
            if got is not None:
                return got
            wake = fan.wake
            await wake.wait()

    def _send(self, dir_key: str, fan: Fanout) -> None:
        """Start the requests the plan asks for now (bounded: see :mod:`metafs.ranges`)."""
        assert self._nursery is not None  # (_may_split)
        for r in fan.plan.requests():
            self._nursery.start_soon(self._fetch_range, dir_key, fan, r)

    async def _fetch_range(self, dir_key: str, fan: Fanout, r: Range) -> None:
        """One request of range ``r``; its reply (or failure) goes to the plan."""
        assert self._ranges is not None  # (_may_split)
        expires = self._cache.now() + self._cache.ttl  # trust runs from the request
        self.range_requests += 1
        try:
            token = r.token if r.start_after is None else None
            page = await self._ranges.list_range(dir_key, token, r.start_after)
        except errors.MetafsError as e:
            fan.plan.failed(r, e)
        except Exception as e:  # a background task must not end the mount
            log.exception("LIST %s (range) failed", dir_key or "/")
            fan.plan.failed(r, errors.MetafsError(f"LIST {dir_key or '/'}: {e}"))
        else:
            fan.plan.receive(r, page, expires)
            self._send(dir_key, fan)  # a range goes on, or a new one starts, at once
        finally:
            fan.woken()

    def _serve_previous(self, failed: Listing, e: errors.MetafsError) -> None:
        """``failed`` got no first page: keep its previous listing, trusted for the grace."""
        previous, failed.previous = failed.previous, None
        if previous is None or self._cache.listing(failed.dir_key) is not failed:
            return
        level = logging.DEBUG if previous.stale else logging.WARNING
        log.log(level, "serving the previous listing of %r (%d entries): refreshing it failed (%s)",
                failed.dir_key or "/", len(previous.entries), e)
        previous.extend_trust(self._cache.now() + self.stale_grace)
        metrics.recorder.stale_served("listing")
        self._cache.put_listing(previous)

    def adopt(self, lst: Listing, entries: list[Entry]) -> None:
        """Keep a listing built elsewhere (a walk's, see :mod:`metafs.walks`) like a fetched one."""
        self._cache.put_listing(lst)
        self._absorb(lst, entries)

    def _absorb(self, lst: Listing, entries: list[Entry]) -> None:
        """Let a page refresh what the per-key tables hold (see the module docstring)."""
        c = self._cache
        for e in entries:
            if isinstance(e, FileEntry):
                c.listed(e.meta, lst.entry_expires(e.pos))
            else:
                c.put_prefix(lst.dir_key + e.name + "/")
        c.resize_listing(lst)

    def listed_file(self, key: str, *, fresh: bool = True) -> Trusted | None:
        """Listing-level metadata of ``key`` from its directory's listing.

        With ``fresh=False`` an expired listing will do: its ETag is what
        revalidation sends as If-None-Match.
        """
        dir_key, name = split_key(key)
        lst = self._cache.listing(dir_key)
        if lst is not None and not fresh and lst.previous is not None and not lst.pages:
            lst = lst.previous  # its replacement has shown nothing yet: the ETag is here
        if lst is None or lst.failed:
            return None
        e = lst.file(name)
        if e is None:
            return None
        expires = lst.entry_expires(e.pos)
        if fresh:
            known = self._cache.known_object(key)
            if expires <= self._cache.now() or (known is not None and not self._cache.is_fresh(
                    known.expires)):
                return None  # an expired per-key entry outranks the page (metafs refresh)
        return Trusted(e.meta, expires)

    def refute(self, key: str) -> None:
        """A HEAD found ``key`` gone: its kept listing stops vouching for it as a file."""
        dir_key, name = split_key(key)
        lst = self._cache.listing(dir_key)
        if lst is not None:
            lst.refute(name)

    def locate(self, key: str) -> tuple[Listing, FileEntry] | None:
        """The kept listing that shows the file ``key``, and its entry (readahead's map)."""
        dir_key, name = split_key(key)
        lst = self._cache.listing(dir_key)
        e = None if lst is None else lst.file(name)
        return None if lst is None or e is None else (lst, e)

    def files_after(self, key: str) -> Iterator[str]:
        """The files a tree walk reads after the file ``key``, in walk order (readahead's map).

        Walk order is what ``getfattr -R``, ``find`` and a shell glob over a
        tree follow: depth first, each directory in listing (readdir) order.
        Only kept listings are read, and no request is sent: the walk stops
        at the first directory whose listing is not kept, or once it climbs
        past a directory whose parent was never listed (the mount root).
        """
        located = self.locate(key)
        if located is None:
            return
        lst, entry = located
        start, cur = entry.pos + 1, lst
        while True:
            for k in self._files_from(cur, start):
                if k is None:
                    return
                yield k
            if not cur.dir_key:
                return
            parent, name = split_key(cur.dir_key)
            plst = self._cache.listing(parent)
            e = None if plst is None else plst.index.get(name)
            if plst is None or not isinstance(e, DirEntry) or e.pos < 0:
                return
            start, cur = e.pos + 1, plst

    def _files_from(self, lst: Listing, start: int) -> Iterator[str | None]:
        """Files of ``lst`` from index ``start`` on, subdirectories' first; None: walk unknown from here."""
        names, flags = lst.names, lst.dir_flags
        for pos in range(start, len(names)):  # by position: no entry object per entry
            if not flags[pos]:
                yield lst.key_at(pos)
                continue
            child = self._cache.listing(f"{lst.dir_key}{names[pos]}/")
            if child is None:
                yield None
                return
            yield from self._files_from(child, 0)
        if not lst.complete:
            yield None  # what comes next is not listed yet

    def overridden(self) -> bool:
        """Whether per-key entries may hold fresher metadata than listings (readdir's hint)."""
        return self._cache.holds_objects()

    def entry_meta(self, e: FileEntry, expires: float) -> tuple[ObjectMeta, float]:
        """The freshest metadata for a listed file (trusted until ``expires``), and its trust."""
        trusted = self._cache.fresh_object(e.meta.key)
        if trusted is not None:
            return trusted.meta, trusted.expires
        return e.meta, expires

"""Tree walks: every directory of a walked subtree served from one flat listing.

``find``, ``du``, ``ls -R``, ``getfattr -R``, ``rsync`` read a directory,
then open its subdirectories one after the other.  Listed directory by
directory, a tree of 500 directories costs 500 LIST requests in sequence;
listed *flat* (no delimiter) it costs one request per 1,000 keys.  This
module decides when to list flat and turns the flat pages into ordinary
directory listings (:class:`~metafs.dirlist.Listing`), so everything above
(readdir, lookups, the cache's bound and TTL) works as for any listing.

The rules (tested in ``tests/test_walks.py``):

* **Only walks.**  A process that opens a directory, then one of its
  subdirectories (FUSE gives each request's pid) is walking.  At that
  second open a *walker* is started: a flat listing of the parent's
  subtree, starting after the subdirectory's own key (goofys's "slurp":
  what comes before was listed already).  A lone ``ls -l DIR``, or two
  commands each listing one directory, never start one, so they cost what
  they always cost.
* **Pages on demand, bounded.**  A walker fetches a page only when a
  ``readdir`` asks for a directory it covers and has not served yet:
  while that directory is still open in the flat listing, up to
  ``MAX_PAGES_PER_DIR`` pages (then the directory is listed the ordinary
  way); when the directory lies ahead of what was listed, one page, and if
  that page does not reach it the walker jumps there (a new flat listing
  starting after its key).  So a walk of one small directory in a huge
  bucket costs its own subtree plus at most one page, never the bucket.
* **Complete only when proven.**  Keys come in byte order, and every key
  under ``d/`` sorts in one run, so a directory is complete once a later
  key outside ``d/`` arrives, or the listing ends; only then is its listing
  published (``a!b`` sorts before ``a/…``, so it proves nothing about
  ``a/``: the test is "does not start with ``a/`` and sorts after it").
  A key out of order, a truncated page without a token, or a token given
  twice ends the walker (its directories are then listed the ordinary way).
* **Same rules as any listing.**  A directory's entries (its objects and
  the first level of its subdirectories, as a delimiter listing would show
  them) are merged by :meth:`Listing.add_page`, so the directory wins,
  invalid names are left out and non-UTF-8 names stay lossless exactly as
  in a delimiter listing; the listing is trusted for a TTL from the request
  of the first page that showed the directory.  A fresh listing already
  kept is never replaced.
* Unordered listings (S3 directory buckets) have no byte order to prove
  completeness with, and the as-of view lists collapsed versions, not
  keys: no walks there.

A lookup probe's LIST is a flat page too (the first of the name's
subtree, :mod:`metafs.namespace`): :func:`adopt_probe_page` turns it into
listings with the same :class:`FlatSplit` and :func:`publish`, and seeds
the directories still open at its last key (:meth:`Listing.seed`), so a
deep path below a probed name is answered from that one page.

:class:`FlatSplit` is the pure part (flat pages in, complete directories
out); :class:`Walks` does the I/O.
"""

from __future__ import annotations

import dataclasses
import logging

import trio
from cachetools import LRUCache

from . import errors
from .cache import MetaCache
from .dirlist import Listing, key_bytes, split_key
from .listings import Listings
from .s3.model import ListPage, ObjectMeta
from .views import FlatLister

log = logging.getLogger(__name__)

# Pages one readdir may pull while its directory is still open in the flat
# listing: a subtree of up to 16,000 keys is served from the walk; a bigger
# one is listed the ordinary way (its subdirectories still come from the walk).
MAX_PAGES_PER_DIR = 16
MAX_WALKERS = 4  # walks going on at once (each holds its open directories)
_RECENT_OPENS = 1024  # (pid, directory) pairs remembered to recognise a walk


@dataclasses.dataclass(slots=True)
class DirPage:
    """Every entry of one directory, from a flat listing: a delimiter page's content."""

    dir_key: str
    objects: list[ObjectMeta]
    prefixes: list[str]
    expires: float  # a TTL from the request of the first page that showed the directory


class FlatSplit:
    """Split a flat listing of ``root`` into complete directories (pure; see the module docstring).

    Directories strictly under ``root`` are tracked; ``root``'s own entries
    are not (its listing is a delimiter listing of its own).  ``start`` is
    the key the listing starts after.
    """

    def __init__(self, root: str, start: str) -> None:
        self.root = root
        self.frontier = key_bytes(start)  # the greatest key seen (bytes)
        self.stack: list[DirPage] = []  # open directories, outermost first
        self.done = False
        self._started = False

    def position(self, dir_key: str) -> str:
        """``open`` (being listed), ``passed`` (every key of it seen) or ``ahead``."""
        d = key_bytes(dir_key)
        if self.done:
            return "passed"
        if self.frontier.startswith(d):  # (every open directory is a prefix of the frontier)
            return "open"
        return "passed" if self.frontier > d else "ahead"

    def add_page(self, page: ListPage, expires: float) -> list[DirPage]:
        """Merge one flat page; return the directories it proved complete.

        Raises :class:`~metafs.errors.MalformedResponseError` for a key
        that does not come after the previous one (no byte order to prove
        completeness with).
        """
        closed: list[DirPage] = []
        for meta in page.objects:
            kb = key_bytes(meta.key)
            if kb == self.frontier and not self._started:
                continue  # the start key itself, from a server that includes it
            if kb <= self.frontier or not meta.key.startswith(self.root):
                raise errors.MalformedResponseError(
                    f"LIST {self.root or '/'} (flat): key {meta.key!r} out of order")
            self._started = True
            self.frontier = kb
            self._add(meta, expires, closed)
        if not page.truncated:
            self.finish(closed)
        return closed

    def finish(self, closed: list[DirPage]) -> None:
        """The listing ended: every open directory is complete."""
        while self.stack:
            closed.append(self.stack.pop())
        self.done = True

    def _add(self, meta: ObjectMeta, expires: float, closed: list[DirPage]) -> None:
        key = meta.key
        # The directories the key is in, below root: root/a/, root/a/b/, ...
        dirs: list[str] = []
        i = key.find("/", len(self.root))
        while i != -1:
            dirs.append(key[:i + 1])
            i = key.find("/", i + 1)
        depth = 0
        while (depth < len(self.stack) and depth < len(dirs)
               and self.stack[depth].dir_key == dirs[depth]):
            depth += 1
        while len(self.stack) > depth:  # a key outside them: they are complete
            closed.append(self.stack.pop())
        for d in dirs[depth:]:
            if self.stack:
                self.stack[-1].prefixes.append(d)  # a subdirectory of the one above
            self.stack.append(DirPage(d, [], [], expires))
        if self.stack and dirs:
            self.stack[-1].objects.append(meta)  # (a marker ``d/`` is rule 3's, in d's listing)


class _Walker:
    __slots__ = ("split", "token", "start_after", "tokens", "lock")

    def __init__(self, root: str, start: str) -> None:
        self.split = FlatSplit(root, start)
        self.token: str | None = None
        self.start_after: str | None = start
        self.tokens: set[str] = set()
        self.lock = trio.Lock()

    @property
    def root(self) -> str:
        return self.split.root


class Walks:
    """Recognise walks and serve their directories from flat listings (see the module docstring)."""

    def __init__(self, view: object, cache: MetaCache, listings: Listings, *,
                 ordered: bool = True) -> None:
        # Views that cannot list flat (the as-of view) and unordered listings never walk.
        self._flat: FlatLister | None = view if isinstance(view, FlatLister) else None
        self._cache = cache
        self._listings = listings
        self._enabled = ordered and self._flat is not None
        self._recent: LRUCache[tuple[int, str], bool] = LRUCache(_RECENT_OPENS)
        self._walkers: LRUCache[str, _Walker] = LRUCache(MAX_WALKERS)  # by start key
        self.flat_pages = 0  # pages fetched by walks (a figure)

    def opened(self, dir_key: str, pid: int | None) -> None:
        """``pid`` opened the directory ``dir_key``: start a walker if this is a walk.

        Synchronous bookkeeping; sends nothing.
        """
        if not self._enabled or pid is None:
            return
        parent, _ = split_key(dir_key)
        walking = dir_key != "" and (pid, parent) in self._recent  # (the bucket's root has none)
        self._recent[(pid, dir_key)] = True
        if walking and self._walker_for(dir_key) is None:
            self._walkers[dir_key] = _Walker(parent, dir_key)

    def _walker_for(self, dir_key: str) -> _Walker | None:
        """The walker that covers ``dir_key`` and has not passed it, if any."""
        d = key_bytes(dir_key)
        for start, w in list(self._walkers.items()):
            if (dir_key.startswith(w.root) and dir_key != w.root and d >= key_bytes(start)
                    and w.split.position(dir_key) != "passed"):
                return w
        return None

    async def serve(self, dir_key: str) -> None:
        """Before ``readdir`` lists ``dir_key``: let a walk that covers it list it, if one does.

        Afterwards the cache holds a fresh listing of ``dir_key`` if the
        walk reached its end; otherwise nothing changed and the directory
        is listed the ordinary way.  Errors of the flat listing end the
        walker and are not raised (the ordinary listing reports its own).
        """
        if not self._enabled or self._listings.fresh(dir_key) is not None:
            return
        w = self._walker_for(dir_key)
        if w is None:
            return
        async with w.lock:
            pulled = 0
            while self._listings.fresh(dir_key) is None and not w.split.done:
                where = w.split.position(dir_key)
                if where == "passed" or (where == "open" and pulled >= MAX_PAGES_PER_DIR):
                    return
                if where == "ahead" and pulled >= 1:
                    # One page did not reach it: jump there rather than list what lies between.
                    self._drop(w)
                    w = _Walker(w.root, dir_key)
                    self._walkers[dir_key] = w
                    pulled = 0
                    continue
                if not await self._pull(w):
                    return
                pulled += 1

    def _drop(self, w: _Walker) -> None:
        for start, other in list(self._walkers.items()):
            if other is w:
                del self._walkers[start]

    async def _pull(self, w: _Walker) -> bool:
        """One more flat page of ``w``; False if the walk ended in an error."""
        expires = self._cache.now() + self._cache.ttl  # trust runs from the request
        try:
            assert self._flat is not None  # (no walker starts without it)
            page = await self._flat.list_flat(w.root, w.token, w.start_after)
            self.flat_pages += 1
            if page.truncated and (not page.next_token or page.next_token in w.tokens):
                raise errors.MalformedResponseError(
                    f"LIST {w.root or '/'} (flat): no way forward after page {len(w.tokens) + 1}")
            closed = w.split.add_page(page, expires)
        except errors.MetafsError as e:
            log.debug("walk of %r ended: %s", w.root, e)
            self._drop(w)
            return False
        if page.truncated:
            assert page.next_token is not None  # checked above
            w.token, w.start_after = page.next_token, None
            w.tokens.add(page.next_token)
        for d in closed:
            self._publish(d)
        return True

    def _publish(self, d: DirPage) -> None:
        publish(self._listings, d)


def publish(listings: Listings, d: DirPage) -> None:
    """A complete directory becomes a listing, unless a fresh one is kept already."""
    if listings.fresh(d.dir_key) is not None:
        return
    lst = Listing(d.dir_key, d.expires, ordered=True)
    page = ListPage(objects=d.objects, prefixes=d.prefixes, truncated=False, next_token=None)
    try:
        entries = lst.add_page(page, d.expires)
    except errors.MalformedResponseError:  # cannot happen for a final page; be safe
        return
    listings.adopt(lst, entries)


def adopt_probe_page(listings: Listings, key: str, page: ListPage, expires: float) -> None:
    """A lookup probe's flat first page of ``key/``'s subtree becomes listings.

    Every directory the page proves complete (``key/`` itself when the page
    is the whole subtree) is published like a walk's (:func:`publish`);
    when the page is truncated, every directory still open at its last key
    (``key/`` and those of that key's path below it) is *seeded* with what
    the page showed of it (:meth:`Listing.seed`), its next page being the
    delimiter listing after that key.  A fresh listing kept already is
    never replaced.  ``expires``: a TTL from the page's request.  A page
    out of key order publishes nothing (the name's answer stands).
    """
    split = FlatSplit(split_key(key)[0], key)  # key/ is a directory under key's parent
    try:
        closed = split.add_page(page, expires)
    except errors.MalformedResponseError as e:
        log.debug("probe of %r: %s; its page lists nothing", key, e)
        return
    for d in closed:
        publish(listings, d)
    if not page.truncated or not page.objects:
        return
    last = page.objects[-1].key
    for d in split.stack:
        if listings.fresh(d.dir_key) is not None:
            continue
        lst = Listing(d.dir_key, d.expires, ordered=True)
        seed = ListPage(objects=d.objects, prefixes=d.prefixes, truncated=True, next_token=None)
        listings.adopt(lst, lst.seed(seed, last, d.expires))

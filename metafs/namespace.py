"""Which names exist: answers "what is this name?" with as few requests as possible.

The one owner of name resolution (what an object *says* is
:mod:`metafs.objects`'s question, how a listing lives :mod:`metafs.listings`'s):

* **Listings first.**  A directory listed less than a TTL ago answers
  every lookup in it, positive or negative, with no request.
* **Probe once.**  A name no listing has shown costs one HEAD and one
  LIST of ``prefix=name/``, sent concurrently; the directory wins when
  both exist.  Revalidating a name already known as a file costs one
  conditional HEAD; one known as a directory, one LIST (after its TTL or a
  ``metafs refresh``; such a revalidation is not a miss, see below).
* **A probe's LIST is a listing page.**  Where keys come in byte order and
  the view lists flat (:class:`~metafs.views.FlatLister`), the LIST is the
  first flat page of ``name/``'s subtree (no delimiter, up to 1,000 keys)
  rather than ``max-keys=1``: the directories it proves complete become
  listings, those still open at its last key are seeded with what it
  showed (:func:`metafs.walks.adopt_probe_page`).  So the lookups of a
  deep path below, and ``ls -l name``, are answered from it, trusted a
  TTL from the request like any page.  A file's name costs what it did
  (its page is empty).  Elsewhere (directory buckets, the as-of view):
  ``max-keys=1``.
* **Single flight.**  Concurrent lookups of one name share one probe.
* **Stale if error.**  When revalidating a known name fails (server
  down, timeout), the name is served as it was for ``stale_grace``
  seconds more (from the end of the failure), with a warning, instead of
  failing.  Without one: the error.  During an outage the revalidations
  fail at once, so known names keep answering without delay.
* **List on misses.**  A burst of probes in one unlisted directory
  switches to listing it (see :meth:`Namespace._list_on_misses`).
"""

from __future__ import annotations

import dataclasses
import logging

import trio
from cachetools import LRUCache

from . import errors
from .cache import MetaCache, Trusted
from .dirlist import FileEntry, Listing
from .flight import SingleFlight
from .listings import Listings
from .objects import ObjectMetadata
from .s3.model import Absent, Fresh, HeadOutcome, ObjectMeta
from .views import FlatLister, View
from .walks import adopt_probe_page

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class FoundFile:
    """The name is a file with this metadata, trusted until ``expires``."""

    meta: ObjectMeta
    expires: float


@dataclasses.dataclass(frozen=True, slots=True)
class FoundDir:
    """The name is a directory, trusted until ``expires``."""

    expires: float


@dataclasses.dataclass(frozen=True, slots=True)
class Missing:
    """No such name, trusted until ``expires``."""

    expires: float


Resolved = FoundFile | FoundDir | Missing


def _file(t: Trusted) -> FoundFile:
    return FoundFile(t.meta, t.expires)


class Namespace:
    """Name resolution for one view (see the module docstring)."""

    def __init__(self, view: View, cache: MetaCache, listings: Listings, objects: ObjectMetadata
                 ) -> None:
        self._view = view
        self._cache = cache
        self._listings = listings
        self._objects = objects
        self._flights: SingleFlight[Resolved] = SingleFlight()
        self._nursery: trio.Nursery | None = None
        self._misses: LRUCache[str, float] = LRUCache(1024)  # dir -> time of a first probe
        # Probes list name/'s subtree flat where listings are in key order (see above).
        self._flat: FlatLister | None = (
            view if isinstance(view, FlatLister) and listings.ordered else None)

    def start_background(self, nursery: trio.Nursery) -> None:
        """Where list-ahead tasks run (the mount's nursery); none: no listing on misses."""
        self._nursery = nursery

    async def lookup(self, dir_key: str, name: str) -> Resolved:
        """What ``name`` is in the directory ``dir_key`` (a prefix, '' for the root)."""
        c = self._cache
        key = dir_key + name
        listing = self._listings.fresh(dir_key)
        if (listing is not None and listing.fetching() and name not in listing.index
                and not listing.covers(name)):
            # A page is on the way: it was asked for before this lookup, so
            # waiting for it is no slower than a probe, and may settle the name.
            try:
                await self._listings.fill(listing, len(listing.entries))
            except errors.MetafsError:
                pass  # the listing failed: answer from the one kept instead, if any, or probe
            if not listing.usable(c.now()):
                listing = self._listings.fresh(dir_key)
        # An emitted entry is final (rule 2 is settled before emitting); an
        # absent name is settled only where the pages cover it.
        if listing is not None and (name in listing.index or listing.covers(name)):
            now = c.now()
            entry = listing.index.get(name)
            if entry is None:
                if listing.expires > now:
                    return Missing(listing.expires)
            elif (expires := listing.entry_expires(entry.pos)) > now:
                if not isinstance(entry, FileEntry):
                    return FoundDir(expires)
                if listing.file(name) is not None:  # not found gone by a HEAD since
                    known = c.known_object(key)
                    if known is None:
                        return FoundFile(entry.meta, expires)
                    if known.expires > now:
                        return _file(known)
                    # Expired after the page showed it (metafs refresh): one conditional HEAD.
                    return await self._flights.run(key, lambda: self._probe(key))
            # Known from a page older than the TTL, or found gone since: revalidate below.
        if (exp := c.prefix_expiry(key + "/")) is not None:
            return FoundDir(exp)
        # A fresh object answers for the name only while the name is known as a
        # file: once known as a directory, a HEAD since (an fstat, a getxattr of
        # an inode the kernel still holds) says nothing of ``name/``, so probe.
        if (trusted := c.fresh_object(key)) is not None and not c.knows_prefix(key + "/"):
            return _file(trusted)
        if (exp := c.negative_expiry(key)) is not None:
            return Missing(exp)
        if c.known_object(key) is None and not c.knows_prefix(key + "/"):
            self._list_on_misses(dir_key)  # a known name's revalidation is not a miss
        return await self._flights.run(key, lambda: self._probe(key))

    def shadows_object(self, dir_key: str) -> bool:
        """Whether the directory ``dir_key`` (``a/``) is known to hide an object ``a``.  No request.

        Known from the parent's listing that showed both, or from the probe
        of the name that found both (which kept the object's HEAD).
        """
        key = dir_key[:-1]
        parent, _, name = key.rpartition("/")
        lst = self._cache.listing(parent + "/" if parent else "")
        return (lst is not None and name in lst.shadowed) or self._cache.known_object(key) is not None

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
        lst = self._listings.fresh(dir_key)
        if lst is not None and lst.after is None:
            # Listed in part: a miss past what it covers pulls one more page.
            # (Seeded by a probe's flat page and not read further: a burst as below,
            # so that one deep path's probe below it costs no page of it.)
            if not lst.complete and not lst.fetching():
                self._nursery.start_soon(self._list_ahead, lst)
            return
        now = self._cache.now()
        first = self._misses.get(dir_key)
        if first is None or now - first > self._cache.ttl:
            self._misses[dir_key] = now  # the first miss of a burst
            return
        self._misses.pop(dir_key, None)
        self._nursery.start_soon(self._list_ahead, self._listings.current(dir_key))

    async def _list_ahead(self, lst: Listing) -> None:
        try:
            await self._listings.fill(lst, len(lst.entries))  # one more page
        except Exception as e:  # noqa: BLE001 - a failed guess costs only this line; raising would end the mount
            log.debug("listing %r ahead of lookups failed: %s", lst.dir_key, e)

    # -- probes -------------------------------------------------------------------
    async def _probe(self, key: str) -> Resolved:
        c = self._cache
        stale = c.known_object(key) or self._listings.listed_file(key, fresh=False)
        known_dir = c.knows_prefix(key + "/")
        try:
            if stale is not None and not known_dir:
                return await self._revalidate_file(key, stale)
            if known_dir and stale is None:
                if await self._has_children(key):
                    return FoundDir(c.put_prefix(key + "/"))
                c.drop_prefix(key + "/")
                return self._settle(key, await self._view.head(key), None)
            return await self._probe_both(key)
        except errors.UNAVAILABLE as e:
            if known_dir:
                level = logging.DEBUG if isinstance(e, errors.EndpointDownError) else logging.WARNING
                log.log(level, "serving cached directory %r: revalidation failed (%s)", key, e)
                return FoundDir(c.serve_stale_prefix(key + "/", c.now() + self._objects.stale_grace))
            if stale is not None:
                return _file(self._objects.serve_stale(stale, e))
            raise

    async def _has_children(self, key: str) -> bool:
        """Whether anything is under ``key/``; a flat page also lists its subtree (see above)."""
        if self._flat is None:
            return await self._view.has_children(key)
        expires = self._cache.now() + self._cache.ttl  # trust runs from the request
        page = await self._flat.list_flat(key + "/", None, None)
        adopt_probe_page(self._listings, key, page, expires)
        return bool(page.objects or page.prefixes)

    async def _probe_both(self, key: str) -> Resolved:
        """HEAD key and LIST key/ at once; the directory wins."""
        head: HeadOutcome | errors.MetafsError | None = None
        is_dir: bool | errors.MetafsError | None = None

        async def run_head() -> None:
            nonlocal head
            try:
                head = await self._view.head(key)
            except errors.MetafsError as e:
                head = e

        async def run_list() -> None:
            nonlocal is_dir
            try:
                is_dir = await self._has_children(key)
            except errors.MetafsError as e:
                is_dir = e

        async with trio.open_nursery() as n:
            n.start_soon(run_head)
            n.start_soon(run_list)
        if isinstance(is_dir, errors.MetafsError):
            raise is_dir
        if is_dir:
            if isinstance(head, Fresh):
                self._objects.settle(key, head, None)
                log.info("key %r is both an object and a prefix: showing the directory", key)
            return FoundDir(self._cache.put_prefix(key + "/"))
        if isinstance(head, errors.CustomerKeyError):
            # SSE-C without the key: the name is still a file, as its listing shows it.
            listed = await self._objects.listed_alone(key)
            if listed is not None:
                return _file(self._cache.put_object(listed))
        if isinstance(head, errors.MetafsError):
            raise head
        assert head is not None  # both tasks ran to completion
        self._cache.drop_prefix(key + "/")  # no longer a directory: known as what HEAD says
        return self._settle(key, head, None)

    async def _revalidate_file(self, key: str, stale: Trusted) -> Resolved:
        try:
            outcome = await self._view.head(key, stale.meta.etag, stale.meta.mtime)
        except errors.CustomerKeyError:
            listed = await self._objects.listed_alone(key)  # SSE-C without the key, as above
            if listed is None:
                raise
            return _file(self._cache.put_object(listed))
        if isinstance(outcome, Absent) and await self._has_children(key):
            # The object went away but the name lives on as a directory.
            self._cache.drop_object(key)
            return FoundDir(self._cache.put_prefix(key + "/"))
        return self._settle(key, outcome, stale)

    def _settle(self, key: str, outcome: HeadOutcome, stale: Trusted | None) -> Resolved:
        """A HEAD's outcome for the *name*: an absent object is remembered as missing."""
        found = self._objects.settle(key, outcome, stale)
        if isinstance(found, Absent):
            self._listings.refute(key)  # no longer known as a file: a new object is probed
            return Missing(self._cache.put_negative(key))
        return _file(found)

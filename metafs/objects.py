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
  xattrs of file after file in walk order (``getfattr -d F1 F2…``,
  ``for f in dir/*``, ``getfattr -R``: depth first, each directory in
  listing order), the HEADs of the next files are sent ahead, in the
  background, with bounded concurrency, across directory ends
  (:meth:`~metafs.listings.Listings.files_after` reads the kept listings,
  no request).  The window ramps on what the reader consumed: after n
  files read, at most n // 2 ahead, up to ``readahead_max``
  (:class:`Readahead`), so HEADs sent <= 1.5 x files read at any scan
  length.  A lone access sends exactly its own HEAD.
* **Metadata channels.**  An object's xattrs are the union of its
  channels: the HEAD answer (user metadata and system headers), object
  tags (``GET ?tagging``) and S3 annotations (ListObjectAnnotations, then
  GetObjectAnnotation per payload read), kept in
  :class:`~metafs.channels.ChannelCache`.  Tags and annotations are asked
  for only by :meth:`xattr_names` and :meth:`xattr` (never by ``stat``),
  after HEAD, which says whether to ask at all: no tag request when HEAD
  says the count is 0 (an absent count is not 0), no annotation request
  for an SSE-C object.  Listing names sends the channels' requests
  concurrently: one each.  A 403 leaves that channel empty with one log
  line; an endpoint that does not speak a channel's API turns the
  channel off for the mount, with one log line.  Readahead fetches the
  channels the reader was seen to use (and, once it reads annotation
  payloads, the first ``READAHEAD_PAYLOADS`` of each object ahead).  Every
  HEAD sent for an object
  (its TTL ran out, or ``metafs refresh``) expires its channels too.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable, Iterator
from typing import Any

import trio
from cachetools import LRUCache

from . import errors, metrics, xattrs
from .cache import MetaCache, Trusted
from .channels import ANNOTATIONS, TAGS, ChannelCache
from .flight import SingleFlight
from .listings import Listings
from .s3.model import (
    Absent,
    AnnotationEntry,
    Denied,
    Fresh,
    HeadOutcome,
    NotModified,
    ObjectMeta,
    Unsupported,
)
from .views import ChannelView, View

# Room kept in the listxattr answer for tags when annotations are placed, so
# that where an annotation shows does not depend on the tags: at most 10
# tags, each name at most XATTR_NAME_MAX bytes plus its NUL.
_TAG_ROOM = 10 * (xattrs.XATTR_NAME_MAX + 1)
# A scan that reads annotation payloads has the first ones of each next object read
# ahead, this many at most: an object may have 1,000, and a guess must stay cheap.
READAHEAD_PAYLOADS = 8
PAYLOADS = "payloads"  # in ObjectMetadata._used: the reader reads annotation payloads


@dataclasses.dataclass(frozen=True, slots=True)
class NoAttr:
    """The object has no xattr of that name."""


@dataclasses.dataclass(frozen=True, slots=True)
class TooLarge:
    """The value exists but does not fit an xattr: read it at ``where`` instead."""

    where: str

log = logging.getLogger(__name__)


@dataclasses.dataclass(slots=True)
class _Stream:
    """One reader's scan: its last file, how many it read, what was sent ahead."""

    last: str
    hits: int = 1
    expected: list[str] = dataclasses.field(default_factory=list)  # the files after ``last``
    issued: set[str] = dataclasses.field(default_factory=set)  # sent ahead, not read yet
    wasted: int = 0  # sent ahead and skipped by the reader


class Readahead:
    """Detects scans (in walk order) and ramps the readahead window.  Pure and synchronous.

    :meth:`access` is told each HEAD-level access of a file and the files
    that follow it in walk order (:meth:`metafs.listings.Listings.files_after`);
    it returns the files to fetch ahead.  A scan is a run of accesses each
    one of the next ``SLACK`` files after the previous one.  The window is
    ramped like the kernel's file readahead, but on what the reader actually
    consumed: after ``n`` files read, at most ``n // 2`` files (less those
    sent ahead and then skipped) are sent ahead of the reader, up to
    ``max_window``.  So whenever a scan stops, HEADs sent <= 1.5 x files
    read, at any length; a first or lone access sends nothing ahead; and a
    long scan keeps ``max_window`` HEADs in flight.  Files sent once are
    never returned again by the same scan.
    """

    SLACK = 2  # a scan may skip one file (a shell glob and readdir may differ by one)

    def __init__(self, max_window: int = 32, max_streams: int = 64) -> None:
        self.max_window = max_window
        self._streams: LRUCache[int, _Stream] = LRUCache(max_streams)
        self._by_next: dict[str, int] = {}  # an expected file -> the id of the scan expecting it
        self._ids = itertools.count()

    def access(self, key: str, after: Callable[[], Iterator[str]]) -> list[str]:
        sid = self._by_next.get(key)
        st = None if sid is None else self._streams.get(sid)
        if st is not None and st.last == key:
            return []  # the same file again (listxattr, then each getxattr)
        if sid is None or st is None or key not in st.expected[:len(st.issued) + self.SLACK]:
            sid = next(self._ids)
            st = _Stream(key)
            self._streams[sid] = st
            self._expect(sid, st, after, 0)
            return []
        skipped = st.expected[:st.expected.index(key)]
        st.wasted += sum(1 for k in skipped if k in st.issued)
        st.issued.difference_update(skipped)
        st.issued.discard(key)
        st.last = key
        st.hits += 1
        ahead = max(0, min(self.max_window, st.hits // 2 - st.wasted))
        self._expect(sid, st, after, ahead)
        send = [k for k in st.expected[:ahead] if k not in st.issued]
        st.issued.update(send)
        return send

    def _expect(self, sid: int, st: _Stream, after: Callable[[], Iterator[str]], ahead: int) -> None:
        for k in st.expected:
            if self._by_next.get(k) == sid:
                del self._by_next[k]
        st.expected = list(itertools.islice(after(), max(ahead, len(st.issued)) + self.SLACK))
        for k in st.expected:
            self._by_next[k] = sid
        self._by_next[st.last] = sid
        if len(self._by_next) > 4 * self._streams.maxsize * (self.max_window + self.SLACK):
            live = set(self._streams)
            self._by_next = {k: v for k, v in self._by_next.items() if v in live}


class ObjectMetadata:
    """Per-object metadata for one view (see the module docstring)."""

    def __init__(self, view: View, cache: MetaCache, listings: Listings, *,
                 stale_grace: float = 1.0, readahead_max: int = 32,
                 readahead_concurrency: int = 16,
                 channels: frozenset[str] = frozenset(),
                 annotations_dir: Callable[[str], str | None] | None = None) -> None:
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
        self._channel_view = view if isinstance(view, ChannelView) else None
        cv = self._channel_view
        self.channels = {c for c in channels
                         if cv is not None and (cv.tags_supported if c == TAGS else cv.annotations_supported)}
        self._chan = ChannelCache(cache.ttl, cache.max_entries, cache.clock)
        self._chan_flights: SingleFlight[Any] = SingleFlight()
        self._used: set[str] = set()  # channels readers asked for: readahead fetches them too
        self._warned: set[str] = set()
        # Where the files of annotations too large for xattrs are, relative to
        # the mount root (None: not shown by this mount).
        self._annotations_dir = annotations_dir
        # The last HEAD table composed (see _head_table): the HEAD answer's own table (by
        # identity: a new answer is a new dict) and what it composed to.
        self._last_head: tuple[dict[bytes, bytes], dict[bytes, bytes]] | None = None

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
        """The HEAD channel's table (user and system metadata); :meth:`xattr_names` has every channel."""
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
    # -- xattrs, from every channel ------------------------------------------------
    async def xattr_names(self, key: str) -> list[bytes] | Absent:
        """Every listed xattr name: HEAD, then each enabled channel's request, concurrently.

        The answer fits ``XATTR_LIST_MAX``: annotations that would not are
        left to the files of the annotations view (see :func:`xattrs.place_annotations`).
        """
        found = await self.head(key)
        if isinstance(found, Absent):
            return found
        head = self._head_table(found)
        wanted = self._wanted(found)
        self._used |= wanted
        got: dict[str, Any] = {}

        async def fetch(channel: str) -> None:
            got[channel] = await (self._tags(key, found) if channel == TAGS
                                  else self._annotations(key, found))

        if len(wanted) > 1:
            async with trio.open_nursery() as n:
                for c in sorted(wanted):
                    n.start_soon(fetch, c)
        else:
            for c in wanted:
                await fetch(c)
        if any(isinstance(v, Absent) for v in got.values()):
            return Absent()
        names = list(head)
        tags = got.get(TAGS)
        if isinstance(tags, dict):
            names += list(xattrs.tag_xattrs(tags, key))
        anns = got.get(ANNOTATIONS)
        if isinstance(anns, list):
            fits, elsewhere = self._place(head, anns)
            names += [xattrs.annotation_name(n) for n in fits]
            if elsewhere:
                names.append(xattrs.ANNOTATIONS_ELSEWHERE.encode())
        return names

    async def xattr(self, key: str, name: bytes) -> bytes | Absent | NoAttr | TooLarge:
        """One xattr's value: HEAD, plus the one channel ``name`` belongs to (if enabled).

        An annotation that does not fit an xattr is :class:`TooLarge`,
        naming its file; a payload is fetched only when read, once per
        annotation ETag.
        """
        found = await self.head(key)
        if isinstance(found, Absent):
            return found
        head = self._head_table(found)
        channel = xattrs.channel_of(name)
        if channel == "head":
            assert found.meta.xattrs is not None  # head() returns HEAD-level entries only
            value = xattrs.head_lookup(head, found.meta.xattrs, name)
            return NoAttr() if value is None else value
        if channel not in self._wanted(found):
            return NoAttr()
        self._used.add(channel)
        if channel == TAGS:
            tags = await self._tags(key, found)
            if isinstance(tags, Absent):
                return tags
            value = xattrs.tag_xattrs(tags, key).get(name)
            return NoAttr() if value is None else value
        anns = await self._annotations(key, found)
        if isinstance(anns, Absent):
            return anns
        fits, elsewhere = self._place(head, anns)
        if name == xattrs.ANNOTATIONS_ELSEWHERE.encode():
            if not elsewhere:
                return NoAttr()
            return xattrs.elsewhere_note(len(elsewhere), self._elsewhere(key))
        ann = name[len(xattrs.ANNOTATION_NS):].decode("utf-8", "surrogateescape")
        entry = next((e for e in anns if e.name == ann), None)
        if entry is None:
            return NoAttr()
        if ann not in fits:
            return TooLarge(self._elsewhere(key))
        self._used.add(PAYLOADS)
        return await self._payload(key, found, entry)

    async def annotation_entries(self, key: str) -> list[AnnotationEntry] | Absent:
        """The annotations of ``key`` (for the annotations view); [] if the channel is off."""
        found = await self.head(key)
        if isinstance(found, Absent):
            return found
        if ANNOTATIONS not in self._wanted(found):
            return []
        return await self._annotations(key, found)

    async def annotation_payload(self, key: str, name: str) -> bytes | Absent | NoAttr:
        """The whole payload of one annotation (for the annotations view), however large."""
        entries = await self.annotation_entries(key)
        if isinstance(entries, Absent):
            return entries
        entry = next((e for e in entries if e.name == name), None)
        if entry is None:
            return NoAttr()
        found = await self.head(key)
        if isinstance(found, Absent):
            return found
        return await self._payload(key, found, entry)

    def _head_table(self, found: Trusted) -> dict[bytes, bytes]:
        """The HEAD channel as listed (:func:`xattrs.head_xattrs`); callers do not change it.

        Composed once per HEAD answer while one file is being read: ``getfattr -d``
        asks for each name twice (size, then value) right after listing them, and
        composing copies the table and encodes the object's URL (issue 12, target 3).
        """
        own = found.meta.xattrs
        assert own is not None  # head() returns HEAD-level entries only
        last = self._last_head
        if last is not None and last[0] is own:
            return last[1]
        table = xattrs.head_xattrs(own, self._origin(found.meta.key))
        self._last_head = (own, table)
        return table

    def _origin(self, key: str) -> str | None:
        return self._channel_view.origin_url(key) if self._channel_view is not None else None

    def _elsewhere(self, key: str) -> str:
        where = self._annotations_dir(key) if self._annotations_dir is not None else None
        return where if where is not None else "(no annotations view in this mount)"

    def _place(self, head: dict[bytes, bytes], anns: list[AnnotationEntry]) -> tuple[list[str], list[str]]:
        return xattrs.place_annotations(((e.name, e.size) for e in anns),
                                        xattrs.listed_size(head) + _TAG_ROOM)

    def _wanted(self, found: Trusted) -> set[str]:
        """The enabled channels worth a request for this object, as its HEAD tells."""
        table = found.meta.xattrs or {}
        wanted = set(self.channels)
        if table.get(xattrs.TAGGING_COUNT.encode()) == b"0":
            wanted.discard(TAGS)  # HEAD says none (an absent count says nothing)
        if xattrs.SSE_C.encode() in table:
            wanted.discard(ANNOTATIONS)  # SSE-C objects cannot have annotations
        return wanted

    def _once(self, what: str, level: int, msg: str, *args: object) -> None:
        """Log ``msg`` at ``level`` the first time ``what`` happens, at debug after."""
        log.log(level if what not in self._warned else logging.DEBUG, msg, *args)
        self._warned.add(what)

    async def _tags(self, key: str, found: Trusted) -> dict[str, str] | Absent:
        etag = found.meta.etag
        cached = self._chan.fresh_tags(key, etag)
        if cached is not None:
            return cached
        result: dict[str, str] | Absent = await self._chan_flights.run(
            f"t{key}", lambda: self._fetch_tags(key, etag))
        return result

    async def _fetch_tags(self, key: str, etag: str | None) -> dict[str, str] | Absent:
        assert self._channel_view is not None
        try:
            got = await self._channel_view.tags(key)
        except errors.UNAVAILABLE as e:
            stale = self._chan.known(key, etag)
            if stale is not None and stale.tags is not None:
                log.debug("serving cached tags of %r: %s", key, e)
                return stale.tags
            raise
        if isinstance(got, Denied):
            self._once("tags-denied", logging.WARNING,
                       "no permission to read the tags of %r (GetObjectTagging): tags are not shown", key)
            got = {}
        if isinstance(got, Absent):
            return got
        return self._chan.put_tags(key, etag, got)

    async def _annotations(self, key: str, found: Trusted) -> list[AnnotationEntry] | Absent:
        etag = found.meta.etag
        cached = self._chan.fresh_annotations(key, etag)
        if cached is not None:
            return cached
        result: list[AnnotationEntry] | Absent = await self._chan_flights.run(
            f"a{key}", lambda: self._fetch_annotations(key, etag))
        return result

    async def _fetch_annotations(self, key: str, etag: str | None) -> list[AnnotationEntry] | Absent:
        assert self._channel_view is not None
        try:
            got = await self._channel_view.annotations(key)
        except errors.UNAVAILABLE as e:
            stale = self._chan.known(key, etag)
            if stale is not None and stale.annotations is not None:
                log.debug("serving cached annotations of %r: %s", key, e)
                return stale.annotations
            raise
        if isinstance(got, Unsupported):
            if ANNOTATIONS in self.channels:
                self.channels.discard(ANNOTATIONS)
                log.warning("annotations are not shown: the endpoint does not speak "
                            "ListObjectAnnotations (%s)", got.why)
            got = []
        elif isinstance(got, Denied):
            self._once("annotations-denied", logging.WARNING,
                       "no permission to list the annotations of %r (ListObjectAnnotations): "
                       "annotations are not shown", key)
            got = []
        if isinstance(got, Absent):
            return got
        return self._chan.put_annotations(key, etag, got)

    async def _payload(self, key: str, found: Trusted, entry: AnnotationEntry) -> bytes | Absent | NoAttr:
        etag = found.meta.etag
        cached = self._chan.payload(key, etag, entry)
        if cached is not None:
            return cached
        view = self._channel_view
        assert view is not None
        got: bytes | Absent | Denied | None = await self._chan_flights.run(
            f"p{key}\0{entry.name}", lambda: view.annotation(key, entry.name))
        if isinstance(got, Absent):
            return got
        if got is None:  # deleted since the listing
            return NoAttr()
        if isinstance(got, Denied):
            self._once("annotation-denied", logging.WARNING,
                       "no permission to read the annotation %r of %r (GetObjectAnnotation)",
                       entry.name, key)
            raise errors.AccessDeniedError(403, "AccessDenied", "no permission to read it",
                                           what=f"GET annotation {entry.name!r} of {key}")
        self._chan.put_payload(key, etag, entry, got)
        return got

    # -- HEAD outcomes, shared with the namespace's probes ----------------------
    def settle(self, key: str, outcome: HeadOutcome, stale: Trusted | None) -> Trusted | Absent:
        """Record a HEAD's outcome: 200 stores, 304 extends ``stale``, 404 is ``Absent``.

        What an absent object means for the *name* is the caller's rule.
        A HEAD was sent because what was known of the object expired (its TTL,
        or ``metafs refresh``): its tags and annotations, fetched no later,
        are revalidated at their next use too.
        """
        c = self._cache
        self._chan.expire(key)
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
        """Schedule HEADs of the files a scan will want next, in walk order, across directories."""
        if self._readahead is None or self._nursery is None:
            return
        for k in self._readahead.access(key, lambda: self._listings.files_after(key)):
            if self._cache.fresh_object(k, head_level=True):
                continue
            self._nursery.start_soon(self._prefetch, k)
            metrics.recorder.readahead_sent(k)

    async def _prefetch(self, key: str) -> None:
        async with self._limiter:
            try:
                found = await self._get(key, head_level=True)
                if self._used and not isinstance(found, Absent):
                    wanted = self._wanted(found) & self._used
                    if TAGS in wanted:
                        await self._tags(key, found)
                    if ANNOTATIONS in wanted:
                        anns = await self._annotations(key, found)
                        if PAYLOADS in self._used and not isinstance(anns, Absent):
                            fits = set(self._place(self._head_table(found), anns)[0])
                            for e in [a for a in anns if a.name in fits][:READAHEAD_PAYLOADS]:
                                await self._payload(key, found, e)
            except Exception as e:  # noqa: BLE001 - a failed guess costs only this line; raising would end the mount
                log.debug("readahead of %r failed: %s", key, e)

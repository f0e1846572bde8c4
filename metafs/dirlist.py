"""A directory's entries, built page by page from delimiter listings.

Pure and synchronous: :meth:`Listing.add_page` takes a parsed page and
decides which names the directory shows.  The rules, each tested in
``tests/test_dirlist.py``:

1. A common prefix ``dir/`` is a directory named ``dir``; an object is a
   regular file named by the rest of its key.
2. **The directory wins**: when both an object ``a`` and a prefix ``a/``
   exist, only the directory ``a`` is shown (``Listing.shadowed`` remembers
   ``a``: the directory tells, the object is reached in the control
   directory, :mod:`metafs.exact`).  In key order ``a`` comes
   before ``a/`` with keys such as ``a-b`` in between, possibly pages
   apart, so a file is *held back* until a later key proves no ``a/`` can
   follow (every later key sorts after ``a/``) or the listing ends.
3. The directory's own marker object (key ``dir/`` in the listing of
   ``dir/``) is the directory itself, not an entry.
4. Names that are not valid POSIX file names (empty, from ``//``; ``.``
   or ``..``; containing NUL; longer than 255 bytes) are left out, with
   one log line per key.
5. Unordered listings (S3 directory buckets) cannot use rule 2's
   streaming argument: their entries are held until the listing is
   complete, then sorted by name.
6. **A listing must end.**  A page is checked before it is merged, and a
   server that would keep a reader listing forever fails the listing
   with :class:`~metafs.errors.MalformedResponseError` naming its fault:
   a truncated page without a continuation token or marker (no way
   forward), a token an earlier page already gave (a loop), a truncated
   page whose keys all come at or before what earlier pages showed (no
   progress; for unordered listings: keys all seen before), and more than
   ``MAX_EMPTY_PAGES`` truncated pages in a row with no key at all.  A few
   empty pages are tolerated because servers that filter a page after
   reading it (delete markers, pending uploads) can legitimately send
   them; each still needs a token never seen before.  In ordered listings
   a key at or before the watermark that comes with progress is dropped,
   so a server that repeats a few keys cannot show a name twice.

Keys and names are ``str`` holding the key's bytes decoded as UTF-8 with
``surrogateescape``: a byte that is not UTF-8 is one lone surrogate, so a
key that is not UTF-8 maps to a name losslessly and back to the same bytes
in requests (:func:`key_bytes`, :func:`name_of`).  Servers order keys by
their bytes, which for such keys is not the order of Python strings, so
every comparison of keys here is on :func:`key_bytes`.

Entries only ever get appended, so an index into ``entries`` is a stable
readdir offset for as long as a handle keeps this listing.

A listing also decides its own trust, page by page.  Each entry is trusted
for a TTL from the request of the page that showed it
(:meth:`Listing.entry_expires`): a listing that takes longer than the TTL
to fetch (100,000 keys from a slow server) must not hand out entries that
are already expired, or every ``stat`` after ``ls`` would probe again.
That a name is *absent* is trusted from the listing's creation, before
its first request (``expires``), because the pages that settle an absence
are not tracked one by one.  A listing is *usable* (may be shared, and
answer lookups) while not failed and its newest page is fresh
(:meth:`Listing.usable`); a failed page ends its trust for good.  Who fetches pages, and when, is
:mod:`metafs.listings`'s business; where listings are kept, the cache's.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
from array import array
from collections.abc import Iterator, Mapping, Sequence
from typing import ClassVar, cast, overload

import trio

from .compact import NameIndex
from .errors import MalformedResponseError
from .s3.model import ListPage, ObjectMeta

log = logging.getLogger(__name__)

NAME_MAX = 255
# Truncated pages without a key tolerated in a row (rule 6): enough for a
# server that filters pages, few enough that a looping one costs little.
MAX_EMPTY_PAGES = 10
_logged_invalid: set[str] = set()


def key_bytes(key: str) -> bytes:
    """The bytes of a key or name: what the server stores, orders by, and the kernel sees."""
    return key.encode("utf-8", "surrogateescape")


def name_of(raw: bytes) -> str:
    """The name of a kernel name's bytes (any bytes: the inverse of :func:`key_bytes`)."""
    return raw.decode("utf-8", "surrogateescape")


def split_key(key: str) -> tuple[str, str]:
    """``a/b/c`` or ``a/b/c/`` -> (``a/b/``, ``c``); the one way a key is split."""
    stem = key[:-1] if key.endswith("/") else key
    i = stem.rfind("/")
    return stem[:i + 1], stem[i + 1:]


def invalid_reason(name: str) -> str | None:
    """Why ``name`` cannot be a file name, or None if it can."""
    if name == "":
        return "empty path component"
    if name in (".", ".."):
        return f"'{name}' component"
    if "\0" in name:
        return "contains NUL"
    if "/" in name:
        return "contains '/'"
    try:
        size = len(key_bytes(name))
    except UnicodeEncodeError:  # a surrogate no decoding produced: no bytes to send
        return "not a byte string"
    if size > NAME_MAX:
        return f"longer than {NAME_MAX} bytes"
    return None


def _skip(key: str, reason: str) -> None:
    if key not in _logged_invalid:
        if len(_logged_invalid) < 100_000:
            _logged_invalid.add(key)
        log.warning("leaving out key %r: %s", key, reason)


@dataclasses.dataclass(slots=True)
class FileEntry:
    """A listed object shown as a regular file, with its listing-level metadata."""

    name: str
    meta: ObjectMeta
    pos: int = -1  # index in Listing.entries, set when emitted
    is_dir: ClassVar[bool] = False  # a class constant, not a field: entries stay small


@dataclasses.dataclass(slots=True)
class DirEntry:
    """A common prefix shown as a directory."""

    name: str
    pos: int = -1
    is_dir: ClassVar[bool] = True


Entry = FileEntry | DirEntry

_NO_ETAG = bytes(16)  # a directory's, or an odd file's (its ETag is in Listing.odd)


class _Entries(Sequence[Entry]):
    """``Listing.entries``: the entries in order, each built when read (a list's reading API)."""

    __slots__ = ("_lst",)

    def __init__(self, lst: Listing) -> None:
        self._lst = lst

    def __len__(self) -> int:
        return len(self._lst.names)

    @overload
    def __getitem__(self, i: int) -> Entry: ...

    @overload
    def __getitem__(self, i: slice) -> list[Entry]: ...

    def __getitem__(self, i: int | slice) -> Entry | list[Entry]:
        if isinstance(i, slice):
            return [self._lst.entry_at(p) for p in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("listing entry out of range")
        return self._lst.entry_at(i)

    def __iter__(self) -> Iterator[Entry]:
        i = 0
        while i < len(self):  # entries appended meanwhile are read too, as a list's iterator does
            yield self._lst.entry_at(i)
            i += 1

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Entries | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"entries({list(self)!r})"


class _Index(Mapping[str, Entry]):
    """``Listing.index``: name -> entry, each built when read (a dict's reading API)."""

    __slots__ = ("_lst",)

    def __init__(self, lst: Listing) -> None:
        self._lst = lst

    def __getitem__(self, name: str) -> Entry:
        pos = self._lst.find(name)
        if pos < 0:
            raise KeyError(name)
        return self._lst.entry_at(pos)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._lst.find(name) >= 0

    def __iter__(self) -> Iterator[str]:
        lst = self._lst
        for pos, name in enumerate(lst.names):
            if name is not None and lst.find(name) == pos:
                yield name

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"index({dict(self)!r})"


class Listing:
    """Entries of one directory (prefix ``dir_key``), as they arrive.

    ``entries`` (a sequence) and ``index`` (a mapping of name to entry)
    read like a list and a dict of :class:`FileEntry` / :class:`DirEntry`.

    Memory: a listing of a million entries must not hold a million
    objects of each kind (issue 12, target 5).  It stores columns: the
    names (one ``str`` each, the only object per entry), a byte per
    entry telling directories, sizes and mtimes in 64-bit arrays, the
    usual ETag (an MD5 in quotes) as 16 bytes in one ``bytearray``, and a
    :class:`~metafs.compact.NameIndex` to find a name; about 110 bytes an
    entry.  ``entries[i]``, ``index[name]`` and :meth:`file` build their
    entry, and its :class:`ObjectMeta` (key ``dir_key + name``, xattrs
    None), when asked, equal to what the page showed; an object the
    columns cannot hold exactly keeps its own ObjectMeta in ``odd``.
    """

    __slots__ = ("dir_key", "ordered", "complete", "token",
                 "expires", "page_ends", "page_expires", "_failed", "error", "lock", "_pending",
                 "pages", "watermark", "_tokens", "_empty_run", "_seen", "previous", "stale", "_refuted",
                 "shadowed", "_names", "names", "dir_flags", "sizes", "mtimes", "_etags", "odd",
                 "_emitted", "after", "newest", "_page_trust", "fanout")

    def __init__(self, dir_key: str, expires: float, ordered: bool = True) -> None:
        self.dir_key = dir_key
        self.ordered = ordered
        # The entries, one column each (see "Memory" in the class docstring): entry i is
        # names[i], a directory if dir_flags[i], else a file of sizes[i] bytes, modified
        # at mtimes[i], whose ETag is the MD5 _etags[16 i:16 i + 16], unless odd[i] holds
        # its whole ObjectMeta (an ETag of another form, or none; xattrs; a number the
        # columns cannot hold).  Entry objects are built when asked for (entries, index).
        self._names = NameIndex()
        self.names = self._names.names  # read-only for others (readdir's hot loop)
        self.dir_flags = bytearray()
        self.sizes = array("q")
        self.mtimes = array("q")
        self._etags = bytearray()
        self.odd: dict[int, ObjectMeta] = {}
        self._emitted: list[Entry] | None = None  # what the add_page under way emitted
        self.complete = False
        self.token: str | None = None
        # Set instead of ``token`` on a listing seeded from a flat page (:meth:`seed`):
        # the next page is the delimiter listing after this key (start-after / marker).
        self.after: str | None = None
        self.expires = expires  # absences are trusted until then (see the module docstring)
        # Trust segments: entries[page_ends[k-1]:page_ends[k]] are trusted until
        # page_expires[k], the trust of the page that showed them (a held-back file
        # keeps its own page's, so a segment is a page's entries or a run of held ones).
        self.page_ends: list[int] = []
        self.page_expires: list[float] = []
        self.newest = expires  # the trust of the newest page (usable())
        self._page_trust = expires  # the trust of the page being merged
        self._failed = False
        self.error: Exception | None = None  # why the listing failed, for readers that come later
        self.pages = 0
        # One page fetch at a time, shared by all readers; held while a page
        # is on the way, which lookups use as "an answer is coming".
        self.lock = trio.Lock()
        # Held back: (key bytes, entry, the trust of the page that showed it).
        self._pending: list[tuple[bytes, Entry, float]] = []
        # Names of objects a directory of the same name hid (rule 2): the directory says so.
        self.shadowed: set[str] = set()
        self.watermark = b""  # the greatest key (bytes) any page has shown so far
        self._tokens: set[str] = set()  # every token a page gave: one given again is a loop
        self._empty_run = 0  # truncated pages without a key, in a row
        # Unordered listings measure progress by keys never seen (their pages
        # are in no order); the strings are the entries' own, so this costs a
        # set slot per key.
        self._seen: set[str] | None = None if ordered else set()
        # The complete listing this one replaces, until this one's first page
        # arrives: served instead if that page cannot be fetched (listings.py).
        self.previous: Listing | None = None
        self.stale = False  # trusted past its pages' TTL at least once (extend_trust)
        self._refuted: set[str] | None = None  # listed files a later HEAD found gone
        # Its parallel ranges while they are fetched (listings.Fanout; listings.py's business).
        self.fanout: object | None = None

    @property
    def entries(self) -> _Entries:
        """The entries in order, read like a list (a view: no reference cycle to collect)."""
        return _Entries(self)

    @property
    def index(self) -> _Index:
        """Name -> entry, read like a dict (a view)."""
        return _Index(self)

    # -- trust -------------------------------------------------------------
    def usable(self, now: float) -> bool:
        """Whether this listing may be shared and answer lookups at ``now``."""
        newest = self.newest if self.pages else self.expires
        return not self._failed and newest > now

    def entry_expires(self, pos: int) -> float:
        """Until when the entry at ``pos`` is trusted: a TTL from the request of the page that showed it."""
        return self.page_expires[bisect.bisect_right(self.page_ends, pos)]

    def extend_trust(self, until: float) -> None:
        """Trust every entry, and every absence, until at least ``until`` (served stale)."""
        self.stale = True
        self.expires = max(self.expires, until)
        self.page_expires = [max(t, until) for t in self.page_expires]
        self.newest = max(self.newest, until)

    @property
    def failed(self) -> bool:
        return self._failed

    def fail(self, error: Exception | None = None) -> None:
        """A page could not be fetched or was refused: never trust this listing again.

        ``error`` is what later readers of this listing get instead of
        asking the server again.
        """
        self._failed = True
        self.error = error

    def fetching(self) -> bool:
        """A page is on the way."""
        return self.lock.locked()

    def file(self, name: str) -> FileEntry | None:
        """The listed file ``name``, if this listing shows one that no HEAD found gone since."""
        pos = self._names.find(name)
        if pos < 0 or self.dir_flags[pos] or (self._refuted is not None and name in self._refuted):
            return None
        return FileEntry(name, self.meta_at(pos, name), pos)

    def refute(self, name: str) -> None:
        """A HEAD found the listed file ``name`` gone: it is no longer known as a file.

        Its entry stays (readdir offsets are positions), but :meth:`file` no
        longer returns it, so what the name is now is probed, not revalidated.
        """
        pos = self._names.find(name)
        if pos >= 0 and not self.dir_flags[pos]:
            if self._refuted is None:
                self._refuted = set()
            self._refuted.add(name)

    # -- merging -------------------------------------------------------------
    def _emit(self, entry: Entry, trust: float | None = None) -> None:
        """Append ``entry``, trusted until ``trust`` (its page's; default: the page being merged)."""
        if trust is None:
            trust = self._page_trust
        entry.pos = pos = self._names.append(entry.name)
        ends, exps = self.page_ends, self.page_expires
        if exps and exps[-1] == trust and ends[-1] == pos:
            ends[-1] = pos + 1
        else:
            ends.append(pos + 1)
            exps.append(trust)
        if entry.is_dir:
            self.dir_flags.append(1)
            size = mtime = 0
            digest: bytes | None = _NO_ETAG
        else:
            self.dir_flags.append(0)
            meta = entry.meta  # type: ignore[union-attr]  # a file's
            size, mtime, digest = meta.size, meta.mtime, meta.digest()
            if digest is None or meta.xattrs is not None:
                self.odd[pos] = meta
                size = mtime = 0
                digest = _NO_ETAG
        try:
            self.sizes.append(size)
            self.mtimes.append(mtime)
        except OverflowError:  # past 64 bits: the ObjectMeta stays whole
            del self.sizes[pos:]
            self.sizes.append(0)
            self.mtimes.append(0)
            self.odd[pos] = entry.meta  # type: ignore[union-attr]  # a file's (a dir's are 0)
        self._etags += digest or _NO_ETAG
        if self._emitted is not None:
            self._emitted.append(entry)

    def entry_at(self, pos: int) -> Entry:
        """The entry at ``pos`` (0 <= pos < len(entries)), built from the columns."""
        name = self.names[pos]
        assert name is not None  # a listing never clears a name
        if self.dir_flags[pos]:
            return DirEntry(name, pos)
        return FileEntry(name, self.meta_at(pos, name), pos)

    def meta_at(self, pos: int, name: str) -> ObjectMeta:
        """The ObjectMeta of the file at ``pos`` (named ``name``), built from the columns."""
        meta = self.odd.get(pos) if self.odd else None
        if meta is not None:
            return meta
        return ObjectMeta.listed(self.dir_key + name, self.sizes[pos], self.mtimes[pos],
                                 bytes(self._etags[16 * pos:16 * pos + 16]))

    def key_at(self, pos: int) -> str:
        """The key of the entry at ``pos`` (a file's: its object's; a directory's ends with '/')."""
        meta = self.odd.get(pos) if self.odd else None
        if meta is not None:
            return meta.key
        return f"{self.dir_key}{self.names[pos]}{'/' if self.dir_flags[pos] else ''}"

    def find(self, name: str) -> int:
        """The position of ``name`` in ``entries``, or -1."""
        return self._names.find(name)

    def _flush_before(self, key: bytes) -> None:
        """Emit held files that no prefix at or after ``key`` can shadow."""
        pending = self._pending
        i = 0
        while i < len(pending) and pending[i][0] + b"/" < key:
            self._emit(pending[i][1], pending[i][2])
            i += 1
        if i:
            del pending[:i]

    def add_page(self, page: ListPage, expires: float | None = None) -> list[Entry]:
        """Merge one page; return the entries it made visible (for the cache).

        ``expires``: the trust of what the page shows (its request time +
        TTL); by default the listing's own.  Raises
        :class:`~metafs.errors.MalformedResponseError` for a page that
        would keep the listing from ending (rule 6), before merging any of it.
        """
        base = len(self.dir_key)
        items: list[tuple[bytes, str, bool, ObjectMeta | None]] = [
            (key_bytes(m.key), m.key, False, m) for m in page.objects] + [
            (key_bytes(p), p, True, None) for p in page.prefixes]
        items.sort(key=lambda t: t[0])
        self._check(page, items)
        self._page_trust = trust = self.expires if expires is None else expires
        self._emitted = emitted = cast(list[Entry], [])
        try:
            self._merge(items, base)
        finally:
            self._emitted = None
        self.pages += 1
        self.after = None
        if items and items[-1][0] > self.watermark:
            self.watermark = items[-1][0]
        if self._seen is not None:
            self._seen.update(key for _, key, _, _ in items)
        self._empty_run = 0 if items else self._empty_run + 1
        if page.truncated:
            assert page.next_token  # _check refused a truncated page without one
            self.token = page.next_token
            self._tokens.add(page.next_token)
        else:
            self.token = None
            self._emitted = emitted
            try:
                self._finish()
            finally:
                self._emitted = None
        self.newest = trust
        return emitted

    def _merge(self, items: list[tuple[bytes, str, bool, ObjectMeta | None]], base: int) -> None:
        """Merge a checked page's sorted items (rules 1 to 4)."""
        after = self.watermark if self.ordered else None
        for kb, key, is_dir, meta in items:
            if after is not None and kb <= after:
                continue  # an earlier page showed it (rule 6)
            if not key.startswith(self.dir_key):
                _skip(key, f"outside the listed prefix {self.dir_key!r}")
                continue
            if is_dir:
                name = key[base:-1] if key.endswith("/") else key[base:]
                if (reason := invalid_reason(name)) is not None:
                    _skip(key, reason)
                    continue
                if self.ordered:
                    # Rule 2: a held file of the same name loses to the directory.
                    if any(e.name == name for _, e, _ in self._pending):
                        self.shadowed.add(name)
                        self._pending = [p for p in self._pending if p[1].name != name]
                    self._flush_before(kb)
                if (at := self._names.find(name)) >= 0:
                    if not self.dir_flags[at]:
                        self.shadowed.add(name)
                        log.debug("prefix %r shadows an object already listed", key)
                    continue
                self._pend_or_emit(kb, DirEntry(name), hold=False)
            else:
                name = key[base:]
                if name == "":
                    continue  # rule 3: this directory's own marker
                if (reason := invalid_reason(name)) is not None:
                    _skip(key, reason)
                    continue
                if self.ordered:
                    self._flush_before(kb)
                assert meta is not None  # objects carry their metadata (built above)
                self._pend_or_emit(kb, FileEntry(name, meta), hold=True)

    def seed(self, page: ListPage, after: str, expires: float) -> list[Entry]:
        """Merge what a flat listing showed of this directory, every key up to ``after`` seen.

        ``page`` holds this directory's objects and first-level prefixes from
        a flat (no delimiter) page that ended, truncated, at the key ``after``
        (:mod:`metafs.walks`).  It is trusted like any page, and more: every
        key up to ``after`` was seen, so held files that no key after
        ``after`` can shadow are emitted, and names whose ``dir/name/`` sorts
        before ``after`` are settled (:meth:`covers`).  The next page is the
        delimiter listing after ``after`` (``Listing.after``); it may show
        again the subdirectory ``after`` is in (S3 does), which is dropped as
        at or before the watermark.  Returns the entries made visible.
        """
        start = len(self.entries)
        self.add_page(dataclasses.replace(page, truncated=True, next_token=after), expires)
        at = key_bytes(after)
        self._flush_before(at)
        self.watermark = max(self.watermark, at)
        self.token, self.after = None, after
        return self.entries[start:]

    def _check(self, page: ListPage, items: list[tuple[bytes, str, bool, ObjectMeta | None]]
               ) -> None:
        """Refuse a page that would keep the listing from ending (rule 6).

        Only a truncated page can: a final page ends the listing whatever
        it holds.  The message names the server's fault, as the one log
        line of the failed operation shows it.
        """
        if not page.truncated:
            return
        if self.after is not None:
            # The first page after a seed: S3 shows again the prefix ``after`` is in,
            # which is no progress of this page's own (an empty page, if nothing else).
            items = [t for t in items if t[0] > self.watermark]
        n = self.pages + 1
        fault: str | None = None
        if not page.next_token:
            fault = (f"page {n} says the listing is truncated but gives no continuation "
                     f"token or marker to go on with")
        elif page.next_token in self._tokens:
            fault = (f"page {n} gives again the continuation token {page.next_token!r} "
                     f"of an earlier page")
        elif not items:
            if self._empty_run >= MAX_EMPTY_PAGES:
                fault = f"{self._empty_run + 1} truncated pages in a row without a key"
        elif self._seen is not None:
            if all(key in self._seen for _, key, _, _ in items):
                fault = f"page {n} holds only keys earlier pages showed"
        elif items[-1][0] <= self.watermark:
            fault = (f"page {n} holds no key after {name_of(self.watermark)!r}, "
                     f"the last one earlier pages showed")
        if fault is not None:
            raise MalformedResponseError(
                f"LIST {self.dir_key or '/'}: the server's listing would not end: {fault}")

    def covers(self, name: str) -> bool:
        """Whether the pages so far settle what ``name`` is (entry or absent).

        True once the listing is complete; before that, for names whose
        prefix key ``dir/name/`` sorts before the watermark (no later page
        can mention them) and that are not held back (rule 2).  Unordered
        listings settle nothing until complete.
        """
        if self.complete:
            return True
        if not self.ordered or not key_bytes(self.dir_key + name + "/") < self.watermark:
            return False
        return all(e.name != name for _, e, _ in self._pending)

    def _pend_or_emit(self, key: bytes, entry: Entry, *, hold: bool) -> None:
        if hold or not self.ordered:
            self._pending.append((key, entry, self._page_trust))
        else:
            self._emit(entry, self._page_trust)

    def _finish(self) -> None:
        pending = self._pending
        self._pending = []
        if not self.ordered:
            # Sorted by name, entries of every page mix: all are trusted as long as
            # the oldest page that showed one (one trust segment, not one per entry).
            oldest = min((t for _, _, t in pending), default=self._page_trust)
            dirs = {e.name for _, e, _ in pending if e.is_dir}
            self.shadowed.update(e.name for _, e, _ in pending if not e.is_dir and e.name in dirs)
            keep = sorted((e for _, e, _ in pending if e.is_dir or e.name not in dirs),
                          key=lambda e: (e.name, not e.is_dir))
            for e in keep:
                if self._names.find(e.name) < 0:
                    self._emit(e, oldest)
        else:
            for _, e, t in pending:
                self._emit(e, t)
        self.complete = True

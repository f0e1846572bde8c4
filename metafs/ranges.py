"""Huge directories listed in parallel key ranges: the plan (pure, synchronous).

A delimiter listing is a sequence of *items* in byte order: the keys shown
as files and the common prefixes shown as directories (a prefix ``d/`` sorts
at its own string).  Listed page by page it costs one round trip per 1,000
items; :class:`RangePlan` lets a listing past its first pages be fetched as
several key ranges at once and hands the items back **strictly in order**,
as pages :meth:`metafs.dirlist.Listing.add_page` merges exactly like
sequential ones.  :class:`metafs.listings.Listings` does the I/O.

The rules (proved in ``tests/test_ranges.py``, with hypothesis, against an
in-memory S3 and one that ignores ``start-after``):

* **Ranges.**  After the sequential pages, the rest of the key space is cut
  at split points ``a_1 < a_2 < ...`` into ranges ``(a_i, a_{i+1}]`` (the
  last one open-ended).  An item belongs to range *i* iff
  ``a_i < item <= a_{i+1}`` in UTF-8 byte order, so every item of the
  sequential listing belongs to exactly one range.  The first range goes on
  with the sequential listing's own continuation token; the others start
  with ``start-after`` (V1: ``marker``) ``a_i``.  A range drops what its
  replies hold at or before its lower bound (a common prefix ``sub/`` comes
  again for ``start-after=sub/x``: it was the range before's) and stops
  at the first item past its upper bound.  For a server that honours
  ``start-after``, a range's items are exactly the sequential listing's
  items in it: every key after ``a_i`` is listed, and a prefix after
  ``a_i`` has all its keys after ``a_i`` too.
* **Split points** are valid UTF-8 strings strictly between their
  neighbours, made of characters the listing has shown or decimal digits (so the
  server takes them as ``start-after``); where none fits, nothing is split.
  At the switch the sequential pages' density is extrapolated
  (:class:`KeySpace`; each range 95 % of a page's span): the first range
  and one open-ended range after it; then an open-ended range that gets a
  truncated page extrapolates again from it, 2, 4, 8... ranges each time
  (few wasted past a near end), and a bounded range that gets a truncated
  page short of its bound hands its upper half to a new range (bisection),
  so the ranges adapt to any key distribution.  Never more than
  ``fanout`` ranges at once.
* **Bounded.**  At most ``fanout`` requests in flight; a range holds at
  most ``AHEAD_PAGES`` pages the reader has not taken before it asks for
  more, so an abandoned listing stops after ``fanout * AHEAD_PAGES`` pages.
* **Same checks as a sequential page** (:mod:`metafs.dirlist`, rule 6),
  per range: a truncated reply without a token, a token given twice, no
  progress, too many empty pages in a row fail the range; a failed request
  fails it too.  The error reaches the reader when the reader reaches that
  range, as a sequential page's would.
* **Fallback.**  A reply to a ``start-after`` request holding an item at or
  before ``start-after`` (other than a prefix of it, see above) comes from a
  server that ignores the bound.  The plan then stops splitting
  (:attr:`RangePlan.sequential`; :mod:`metafs.listings` also stops for the
  endpoint): the first range is cut at what it has, and the rest is listed
  by one range that goes on from the sequential token the plan started
  with, dropping what was already taken.  The result is still identical.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools

from . import errors
from .dirlist import MAX_EMPTY_PAGES, key_bytes
from .s3.model import ListPage, ObjectMeta

FANOUT = 8  # ranges (and requests) of one listing at once
AHEAD_PAGES = 2  # pages a range ahead of the reader's holds before it waits
_WIDTH = 24  # characters of a name that interpolation looks at
DIGITS = list("0123456789")
# A new range spans this share of what one page spanned: random keys (uuids) vary
# by a few percent from page to page, and a range that overflows its one page by a
# few keys costs a whole request for them.
FILL = (19, 20)  # 95 %


class KeySpace:
    """Names as numbers, to interpolate split points (only ever a guess; see the module docstring).

    A name (the key after ``base``) is read as ``width`` digits, digit *i*
    over the alphabet of position *i*: ``0``-``9`` where the sample showed
    only decimal digits there and no position mixes digits with other
    characters (so ``f001999`` is followed by ``f002000``, not by a
    character never seen, while hex keys stay hex), else the sorted
    characters the whole sample showed (a character not in it counts as
    the next one that is).
    A number is written back with those characters, so a split point holds
    only characters keys hold.
    """

    def __init__(self, base: str, names: list[str]) -> None:
        chars = sorted({c for n in names for c in n[:_WIDTH]
                        if c >= " " and not "\ud800" <= c <= "\udfff"})
        self.base = base
        self.width = min(_WIDTH, max((len(n) for n in names), default=0))
        seen = [{n[i] for n in names if i < len(n)} for i in range(self.width)]
        digits = set(DIGITS)
        # Decimal positions only in names where digits never share a position with
        # anything else (counters, dates); hex or free text share them (uuids, words).
        fixed = not any(s & digits and s - digits for s in seen)
        self.alphabets: list[list[str]] = [
            DIGITS if fixed and s and s <= digits else chars for s in seen]
        self.size = 1
        for a in self.alphabets:
            self.size *= len(a)
        self.usable = len(chars) >= 2 and self.width >= 1

    def number(self, key: str) -> int:
        """``key``'s position (``key`` starts with ``base``)."""
        x = 0
        name = key[len(self.base):]
        for i, a in enumerate(self.alphabets):
            d = min(bisect.bisect_left(a, name[i]), len(a) - 1) if i < len(name) else 0
            x = x * len(a) + d
        return x

    def key(self, x: int) -> str | None:
        """The key at position ``x``; None if ``x`` is out of the space."""
        if x < 0 or x >= self.size:
            return None
        digits = []
        for a in reversed(self.alphabets):
            x, d = divmod(x, len(a))
            digits.append(a[d])
        return self.base + "".join(reversed(digits))


@dataclasses.dataclass(slots=True, eq=False)
class Range:
    """Items ``(lo, hi]`` of the listing, fetched as their own paged listing."""

    lo: str  # the range's lower bound, then the last item it took
    hi: str | None  # None: to the end of the listing
    start_after: str | None  # what its next request sends (None: it sends ``token``)
    token: str | None = None
    busy: bool = False
    done: bool = False
    requests: int = 0
    ready: list[ListPage] = dataclasses.field(default_factory=list)  # taken items, not handed out
    expires: list[float] = dataclasses.field(default_factory=list)  # trust of each ready page
    error: errors.MetafsError | None = None
    tokens: set[str] = dataclasses.field(default_factory=set)
    mark: bytes = b""  # the greatest item its replies held (progress)
    empty_run: int = 0


def valid_split(at: str, lo: str, hi: str | None) -> bool:
    """Whether ``at`` may split ``(lo, hi]``: a UTF-8 string strictly inside it."""
    try:
        b = at.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return key_bytes(lo) < b and (hi is None or b < key_bytes(hi))


class RangePlan:
    """The ranges of one listing past its sequential pages (see the module docstring).

    ``lo``: the last item the sequential pages showed; ``token``: their
    continuation; ``names``: names they showed (the interpolation's sample);
    ``pages``: how many there were (their span per page is extrapolated).
    """

    def __init__(self, dir_key: str, lo: str, token: str, names: list[str], *, pages: int = 1,
                 fanout: int = FANOUT) -> None:
        self.dir_key = dir_key
        self.fanout = max(1, fanout)
        self.space = KeySpace(dir_key, names)
        self._first = Range(lo, None, None, token)  # goes on with the sequential listing
        self.ranges: list[Range] = [self._first]
        self.sent = 0  # requests (a figure)
        self._last_expires = 0.0
        self.sequential = self.fanout < 2
        self._token = token
        self._handed = itertools.count(1)  # synthetic page tokens (each new to Listing's checks)
        self._grow = 2  # ranges the next extrapolation adds
        if self.space.usable and len(names) >= 2:
            first = self.space.number(dir_key + names[0])
            step = (self.space.number(lo) - first) * FILL[0] // (FILL[1] * max(1, pages))
            self._extrapolate(self.ranges[0], self.space.number(lo), step, 1)

    # -- splitting -----------------------------------------------------------------
    def split(self, r: Range, at: str) -> Range | None:
        """Cut ``r`` at ``at``: ``r`` keeps ``(lo, at]``, a new range takes ``(at, hi]``.

        None (nothing changes) if ``at`` is no valid split point of ``r``,
        the plan lists sequentially, or holds ``fanout`` ranges already.
        """
        if (self.sequential or r.done or r not in self.ranges or len(self.live()) >= self.fanout
                or not valid_split(at, r.lo, r.hi)):
            return None
        new = Range(at, r.hi, at)
        r.hi = at
        self.ranges.insert(self.ranges.index(r) + 1, new)
        return new

    def live(self) -> list[Range]:
        """The ranges not done yet."""
        return [r for r in self.ranges if not r.done]

    def _extrapolate(self, r: Range, last: int, step: int, n: int) -> None:
        """Cut the open-ended ``r`` at ``last + step``, ``last + 2 step``...: ``n`` ranges more."""
        if step <= 0:
            return
        at, x = r, last
        for _ in range(n):
            x += step
            k = self.space.key(x)
            if k is None:
                return
            new = self.split(at, k)
            if new is None:
                return
            at = new

    def _adapt(self, r: Range, first: str, last: str) -> None:
        """``r`` got a truncated page ``first..last`` short of its bound: make more ranges."""
        if self.sequential or not self.space.usable or len(self.live()) >= self.fanout:
            return
        sp = self.space
        if r.hi is None:
            a, b = sp.number(first), sp.number(last)
            # Each a page's span; twice as many as the last time (a listing that ends
            # soon wastes few requests past its end), up to the fanout.
            self._extrapolate(r, b, (b - a) * FILL[0] // FILL[1],
                              min(self._grow, self.fanout - len(self.live())))
            self._grow *= 2
        else:
            mid = sp.key((sp.number(last) + sp.number(r.hi)) // 2)
            if mid is not None:
                self.split(r, mid)

    # -- requests and replies ------------------------------------------------------
    def requests(self) -> list[Range]:
        """The ranges to send a request for now (each marked busy until its reply)."""
        busy = sum(1 for r in self.ranges if r.busy)
        out = []
        for r in self.ranges:
            if busy >= self.fanout:
                break
            if r.busy or r.done or r.error is not None or len(r.ready) >= AHEAD_PAGES:
                continue
            r.busy = True
            r.requests += 1
            self.sent += 1
            busy += 1
            out.append(r)
        return out

    def failed(self, r: Range, e: errors.MetafsError) -> None:
        """The request of ``r`` failed: the range ends in ``e``."""
        r.busy = False
        r.error = e

    def receive(self, r: Range, page: ListPage, expires: float) -> None:
        """The reply to ``r``'s request (items trusted until ``expires``)."""
        r.busy = False
        self._last_expires = max(self._last_expires, expires)
        if r not in self.ranges or r.done:
            return  # dropped by a fallback while on the way
        items: list[tuple[bytes, str, ObjectMeta | None]] = sorted(
            [(key_bytes(m.key), m.key, m) for m in page.objects]
            + [(key_bytes(p), p, None) for p in page.prefixes], key=lambda t: t[0])
        if r.start_after is not None and not self.sequential:
            sa = key_bytes(r.start_after)
            if any(kb <= sa and not (m is None and sa.startswith(kb)) for kb, _, m in items):
                self._fall_back()  # the server ignores start-after (see the module docstring)
                if r.done or r not in self.ranges:
                    return
        fault = self._fault(r, page, items)
        if fault is not None:
            r.error = errors.MalformedResponseError(
                f"LIST {self.dir_key or '/'}: the server's listing would not end: {fault}")
            return
        lo = key_bytes(r.lo)
        hi = None if r.hi is None else key_bytes(r.hi)
        objects: list[ObjectMeta] = []
        prefixes: list[str] = []
        passed = False
        first = last = None
        for kb, key, m in items:
            if kb <= lo:
                continue
            if hi is not None and kb > hi:
                passed = True
                break
            if m is None:
                prefixes.append(key)
            else:
                objects.append(m)
            first = key if first is None else first
            last = key
        if last is not None:
            r.lo = last
            r.ready.append(ListPage(objects, prefixes, True, None))
            r.expires.append(expires)
            passed = passed or last == r.hi
        r.start_after = None
        if passed or not page.truncated:
            r.done = True
            return
        r.token = page.next_token
        if first is not None and last is not None:
            self._adapt(r, first, last)

    def _fault(self, r: Range, page: ListPage, items: list[tuple[bytes, str, ObjectMeta | None]]
               ) -> str | None:
        """What makes ``page`` a reply that would keep ``r`` from ending (dirlist rule 6), if anything."""
        if not page.truncated:
            return None
        n = r.requests
        if not page.next_token:
            return f"range page {n} is truncated but gives no continuation token or marker"
        if page.next_token in r.tokens:
            return f"range page {n} gives again the continuation token {page.next_token!r}"
        r.tokens.add(page.next_token)
        if not items:
            r.empty_run += 1
            return f"{r.empty_run} truncated pages in a row without a key" \
                if r.empty_run > MAX_EMPTY_PAGES else None
        r.empty_run = 0
        if items[-1][0] <= r.mark:
            return f"range page {n} holds no key after the ones before it"
        r.mark = items[-1][0]
        return None

    def _fall_back(self) -> None:
        """The server ignores start-after: finish with one range from the sequential token."""
        self.sequential = True
        head = self.ranges[0]
        if head is self._first and not head.done:
            head.hi = None  # it goes on with the sequential listing's own tokens
            self.ranges = [head]
            return
        # The first range keeps what it took (a contiguous run of its items)...
        head.hi = head.lo
        if not head.busy:
            head.done = True
        # ...and the rest is listed from the sequential token on, dropping what is taken.
        self.ranges = [head, Range(head.lo, None, None, self._token)]

    # -- handing out, in order ---------------------------------------------------------
    def take(self) -> tuple[ListPage, float] | None:
        """The next page in order for the listing, and its trust; None: nothing ready yet.

        The last one is an empty page that is not truncated.  Raises the
        error of the first range when the reader reaches it.
        """
        while self.ranges:
            r = self.ranges[0]
            if r.ready:
                page = r.ready.pop(0)
                page.next_token = f"range-page-{next(self._handed)}"
                return page, r.expires.pop(0)
            if r.error is not None:
                raise r.error.with_traceback(None)
            if not r.done:
                return None
            self.ranges.pop(0)
        # (The end shows nothing: trusted like the last page that showed something.)
        return ListPage([], [], False, None), self._last_expires

"""Parallel key ranges (metafs/ranges.py): identical to the sequential listing, proved.

An in-memory server lists like S3 (prefix, delimiter, start-after,
max-keys, continuation, common prefixes rolled up, byte order); a second one
ignores start-after.  For any key set, page size, split choice and order of
replies, a listing whose pages past the first ones come from a
:class:`RangePlan` holds exactly what the sequential listing holds.
"""

from __future__ import annotations

import bisect
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metafs import errors
from metafs.dirlist import Listing, key_bytes, name_of
from metafs.ranges import AHEAD_PAGES, KeySpace, Range, RangePlan, valid_split
from metafs.s3.model import ListPage, ObjectMeta


class MemoryS3:
    """Delimiter listings of a key set, like S3 (see the module docstring)."""

    def __init__(self, keys: list[str], max_keys: int, *, honours_start_after: bool = True) -> None:
        self.keys = sorted(set(keys), key=key_bytes)
        self._bytes = [key_bytes(k) for k in self.keys]
        self.max_keys = max_keys
        self.honours = honours_start_after
        self.requests: list[tuple[str | None, str | None]] = []

    def list(self, prefix: str, token: str | None = None, start_after: str | None = None
             ) -> ListPage:
        self.requests.append((token, start_after))
        after: bytes | None = None
        skip: str | None = None  # a common prefix the token says was given
        if token is not None:
            kind, item = token[0], token[1:]
            after = key_bytes(item)
            skip = item if kind == "C" else None
        elif start_after is not None and self.honours:
            after = key_bytes(start_after)
        objects: list[ObjectMeta] = []
        prefixes: list[str] = []
        last: str | None = None
        start = 0 if after is None else bisect.bisect_right(self._bytes, after)
        for k in itertools.islice(self.keys, start, None):
            if not k.startswith(prefix):
                continue
            if skip is not None and k.startswith(skip):
                continue
            rest = k[len(prefix):]
            i = rest.find("/")
            item = prefix + rest[:i + 1] if i >= 0 else k
            if i >= 0 and prefixes and prefixes[-1] == item:
                continue  # rolled up into the prefix already given
            if len(objects) + len(prefixes) == self.max_keys:
                assert last is not None
                return ListPage(objects, prefixes, True, last)
            if i >= 0:
                prefixes.append(item)
                last = "C" + item
            else:
                objects.append(ObjectMeta(k, 1, 0, '"e"'))
                last = "K" + item
        return ListPage(objects, prefixes, False, None)


def sequential(server: MemoryS3, dir_key: str) -> Listing:
    lst = Listing(dir_key, 100.0)
    while not lst.complete:
        lst.add_page(server.list(dir_key, lst.token), 100.0)
    return lst


def shown(lst: Listing) -> tuple[list[tuple[str, bool]], set[str]]:
    return [(e.name, e.is_dir) for e in lst.entries], set(lst.shadowed)


def in_ranges(server: MemoryS3, dir_key: str, first_pages: int, fanout: int,
              choose=lambda n: 0, split=lambda plan: None) -> tuple[Listing, RangePlan | None]:
    """The listing with ``first_pages`` sequential pages, then ranges.

    ``choose(n)`` picks which of ``n`` requests in flight is answered next;
    ``split(plan)`` may split ranges between steps.
    """
    lst = Listing(dir_key, 100.0)
    while not lst.complete and lst.pages < first_pages:
        lst.add_page(server.list(dir_key, lst.token), 100.0)
    if lst.complete:
        return lst, None
    assert lst.token is not None
    plan = RangePlan(dir_key, name_of(lst.watermark), lst.token, [e.name for e in lst.entries],
                     pages=lst.pages, fanout=fanout)
    flight: list[tuple[Range, str | None, str | None]] = []
    handed = lst.watermark
    for _ in range(100_000):
        if lst.complete:
            return lst, plan
        split(plan)
        got = plan.take()
        if got is not None:
            page = got[0]
            items = sorted([key_bytes(m.key) for m in page.objects]
                           + [key_bytes(p) for p in page.prefixes])
            # In order and each once, without help from Listing's own defence (rule 6).
            assert all(a < b for a, b in zip([handed, *items], items, strict=False))
            handed = items[-1] if items else handed
            lst.add_page(*got)
            continue
        for r in plan.requests():
            flight.append((r, r.token if r.start_after is None else None, r.start_after))
        assert 0 < len(flight) <= fanout  # never stuck, never more than fanout at once
        assert len(plan.live()) <= fanout or plan.sequential
        r, token, start_after = flight.pop(choose(len(flight)))
        plan.receive(r, server.list(dir_key, token, start_after), 100.0)
    raise AssertionError("the ranges never ended")


CHARS = "a/!0é\U0001f600~-"
names = st.text(alphabet=CHARS, min_size=0, max_size=5)


@settings(max_examples=1000, deadline=None)
@given(keys=st.lists(names, max_size=40), dir_key=st.sampled_from(["", "a/", "é"]),
       max_keys=st.integers(1, 5), first_pages=st.integers(1, 3), fanout=st.integers(2, 6),
       honours=st.booleans(), data=st.data())
def test_parallel_ranges_list_exactly_what_the_sequential_listing_lists(
        keys, dir_key, max_keys, first_pages, fanout, honours, data):
    keys = [k for k in [dir_key + k for k in keys] + keys if k]  # (S3 has no empty key)
    server = MemoryS3(keys, max_keys, honours_start_after=honours)
    expected = shown(sequential(server, dir_key))
    # Split points: keys, their prefixes (a common prefix itself, a point inside one), anything.
    cuts = sorted({k[:i] for k in keys for i in range(1, len(k) + 1)}) or ["a"]

    def choose(n: int) -> int:
        return data.draw(st.integers(0, n - 1), label="reply")

    def split(plan: RangePlan) -> None:
        live = plan.live()
        if live and data.draw(st.booleans(), label="split?"):
            r = live[data.draw(st.integers(0, len(live) - 1), label="range")]
            at = data.draw(st.one_of(names.map(lambda n: dir_key + n), st.sampled_from(cuts)),
                           label="at")
            new = plan.split(r, at)
            if new is not None:  # (a split point is always strictly inside)
                assert key_bytes(new.lo) < (key_bytes(new.hi) if new.hi else b"\xff" * 9)

    ranged = MemoryS3(keys, max_keys, honours_start_after=honours)
    lst, _ = in_ranges(ranged, dir_key, first_pages, fanout, choose, split)
    assert shown(lst) == expected
    # (Whether a server that ignores start-after is found out is not the point here: a reply
    # of only the common prefix holding start-after looks the same from either server.)


TRICKY = ["0", "a", "a!b", "a/", "a/x", "a/y/z", "a/y0", "a0", "b", "é/1", "é0", "\U0001f600", "~"]


@pytest.mark.parametrize("honours", [True, False])
@pytest.mark.parametrize("max_keys", [1, 2, 3])
def test_every_split_point_at_or_inside_a_key_or_a_prefix_lists_the_same(max_keys, honours):
    """Exhaustive over tricky cuts: at a key, at a common prefix (``a/`` comes again for
    start-after ``a/``), inside one (``a/x``), between ``a!b`` and ``a/``, non-ASCII."""
    expected = shown(sequential(MemoryS3(TRICKY, max_keys), ""))
    cuts = sorted({k[:i] for k in TRICKY for i in range(1, len(k) + 1)} | {"a/xx", "a/y/"})
    for at in cuts:
        for reply in (0, -1):  # oldest or newest request answered first
            def split(plan: RangePlan, at: str = at) -> None:
                for r in plan.live():
                    plan.split(r, at)

            lst, _ = in_ranges(MemoryS3(TRICKY, max_keys, honours_start_after=honours), "", 1, 4,
                               choose=lambda n, reply=reply: reply % n, split=split)
            assert shown(lst) == expected, at


def test_ranges_are_fetched_in_parallel_and_cost_about_the_sequential_requests():
    keys = [f"d/f{i:05d}" for i in range(10_000)]
    seq = MemoryS3(keys, 100)
    expected = shown(sequential(seq, "d/"))
    assert len(seq.requests) == 100
    server = MemoryS3(keys, 100)
    # Always answer the newest request: ranges finish out of order.
    lst, plan = in_ranges(server, "d/", 2, 8, choose=lambda n: n - 1)
    assert shown(lst) == expected and plan is not None
    assert not plan.sequential
    ranged = server.requests[2:]
    assert sum(1 for t, s in ranged if s is not None) >= 20  # many ranges started after a key
    assert len(server.requests) <= 100 * 1.25  # ~ what the sequential listing costs


def rounds(keys: list[str], page: int, fanout: int = 8) -> tuple[int, int]:
    """(requests, round trips) of a listing whose requests in flight are all answered together."""
    server = MemoryS3(keys, page)
    lst = Listing("", 100.0)
    for _ in range(2):
        lst.add_page(server.list("", lst.token), 100.0)
    assert lst.token is not None
    plan = RangePlan("", name_of(lst.watermark), lst.token, [e.name for e in lst.entries],
                     pages=2, fanout=fanout)
    n, flight = 2, plan.requests()
    while not lst.complete:
        n += 1
        now, flight = flight, []
        for r in now:
            plan.receive(r, server.list("", r.token if r.start_after is None else None,
                                        r.start_after), 100.0)
            flight += plan.requests()
        while not lst.complete and (got := plan.take()) is not None:
            lst.add_page(*got)
            flight += plan.requests()
    assert shown(lst) == shown(sequential(MemoryS3(keys, page), ""))
    return len(server.requests), n


DATES = [f"{m:02d}-{d:02d}T{h:02d}:{mi:02d}.gz" for m in range(1, 13) for d in range(1, 29)
         for h in range(24) for mi in range(0, 60, 7)]


@pytest.mark.parametrize(("name", "keys", "most_requests", "most_trips"), [
    ("counter", [f"f{i:06d}" for i in range(30_000)], 40, 10),
    ("uuid", [f"{(i * 0x9E3779B97F4A7C15) % 2**64:016x}" for i in range(30_000)], 40, 10),
    # Month ends break the extrapolation (6,048 keys a month, then a jump): the weak case.
    ("dates", DATES[:30_000], 60, 25),
])
def test_30_pages_cost_about_the_sequential_requests_in_fewer_round_trips(
        name, keys, most_requests, most_trips):
    requests, trips = rounds(keys, 1000)
    assert 30 <= requests <= most_requests, name
    assert trips <= most_trips, name  # sequentially: 30, one round trip per request


def test_fanout_requests_are_in_flight_at_once_and_ranges_ahead_hold_few_pages():
    keys = [f"f{i:05d}" for i in range(5_000)]
    server = MemoryS3(keys, 100)
    lst = Listing("", 100.0)
    for _ in range(2):
        lst.add_page(server.list("", lst.token), 100.0)
    assert lst.token is not None
    plan = RangePlan("", name_of(lst.watermark), lst.token, [e.name for e in lst.entries],
                     pages=2, fanout=8)
    first = plan.requests()
    assert len(first) == 2  # the first range and the open end after it
    # The reader takes nothing: ranges ahead stop at AHEAD_PAGES pages each.
    for _ in range(200):
        reqs = plan.requests()
        for r in first + reqs:
            plan.receive(r, server.list("", r.token if r.start_after is None else None,
                                        r.start_after), 100.0)
        first = []
        if not reqs:
            break
    assert len(plan.ranges) <= 8
    assert all(len(r.ready) <= AHEAD_PAGES for r in plan.ranges[1:])


def test_a_server_that_ignores_start_after_is_listed_sequentially_with_the_same_result():
    keys = [f"k{i:04d}" for i in range(1_000)] + [f"sub/{i}" for i in range(50)]
    expected = shown(sequential(MemoryS3(keys, 50), ""))
    server = MemoryS3(keys, 50, honours_start_after=False)
    lst, plan = in_ranges(server, "", 2, 8, choose=lambda n: n - 1)
    assert plan is not None and plan.sequential
    assert shown(lst) == expected


def test_a_prefix_given_again_after_a_split_inside_it_is_not_a_fault_nor_shown_twice():
    keys = [f"a{i}" for i in range(10)] + [f"sub/x{i}" for i in range(10)] + ["t"]
    server = MemoryS3(keys, 3)
    lst = Listing("", 100.0)
    lst.add_page(server.list("", None), 100.0)  # a0 a1 a2
    assert lst.token is not None
    plan = RangePlan("", name_of(lst.watermark), lst.token, [e.name for e in lst.entries],
                     pages=1, fanout=4)
    for r in list(plan.ranges):
        plan.split(r, "sub/x5")
    assert any(r.start_after == "sub/x5" for r in plan.ranges)
    while not lst.complete:
        got = plan.take()
        if got is not None:
            lst.add_page(*got)
            continue
        for r in reversed(plan.requests()):
            plan.receive(r, server.list("", r.token if r.start_after is None else None,
                                        r.start_after), 100.0)
    assert not plan.sequential  # S3 gives sub/ again for start-after sub/x5: that is no fault
    assert shown(lst) == shown(sequential(MemoryS3(keys, 3), ""))


def test_a_failed_range_fails_the_listing_only_when_the_reader_reaches_it():
    keys = [f"f{i:04d}" for i in range(400)]
    server = MemoryS3(keys, 20)
    lst = Listing("", 100.0)
    lst.add_page(server.list("", None), 100.0)
    lst.add_page(server.list("", lst.token), 100.0)
    assert lst.token is not None
    plan = RangePlan("", name_of(lst.watermark), lst.token, [e.name for e in lst.entries],
                     pages=2, fanout=8)
    head, second, *_ = plan.requests()
    plan.failed(second, errors.ServerError(503, "SlowDown", "busy"))
    assert plan.take() is None  # the first range is not in yet: nothing to say
    plan.receive(head, server.list("", head.token, None), 100.0)
    served = len(lst.entries)
    with pytest.raises(errors.ServerError):
        while True:  # everything before the failed range is served, then its error
            got = plan.take()
            assert got is not None
            lst.add_page(*got)
    assert len(lst.entries) > served
    assert name_of(lst.watermark) == head.lo  # up to the failed range's start exactly


def test_a_range_whose_server_loops_fails_like_a_sequential_page():
    plan = RangePlan("", "a", "tok", ["a", "b"], pages=1, fanout=2)
    (r, *_) = plan.requests()
    plan.receive(r, ListPage([ObjectMeta("b", 1, 0, '"e"')], [], True, "t1"), 1.0)
    (r, *_) = [x for x in plan.requests() if x is r] or [r]
    plan.receive(r, ListPage([ObjectMeta("c", 1, 0, '"e"')], [], True, "t1"), 1.0)
    plan.take()
    with pytest.raises(errors.MalformedResponseError, match="again the continuation token"):
        plan.take()


@settings(max_examples=300, deadline=None)
@given(lo=st.text(alphabet=CHARS + "\udcff", max_size=6), hi=st.text(alphabet=CHARS, max_size=6),
       sample=st.lists(st.text(alphabet=CHARS + "\x01", max_size=6), max_size=10),
       x=st.integers(0, 2**64))
def test_split_points_are_valid_utf8_strictly_inside_or_refused(lo, hi, sample, x):
    space = KeySpace("", sample)
    k = space.key(x % space.size) if space.usable else None
    if k is None:
        return
    k.encode("utf-8")  # a split point is always a valid UTF-8 string without control characters
    assert all(c >= " " for c in k)
    if valid_split(k, lo, hi):
        assert key_bytes(lo) < key_bytes(k) < key_bytes(hi)

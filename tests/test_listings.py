"""metafs.listings: a listing's life (reuse, pages, sharing, failure) over an in-memory bucket."""

from __future__ import annotations

import httpx
import pytest
import trio
import trio.testing

from metafs import errors
from metafs.dirlist import FileEntry
from metafs.namespace import FoundDir
from tests.fakes import TTL, Bucket, Env, list_all, run_layers

# -- relisting refreshes what the per-key tables hold ----------------------------------------------


def test_relisting_with_unchanged_etags_keeps_head_level_xattrs():
    b = Bucket()
    b.put("d/a", color="blue")
    b.put("d/b")

    async def go(env: Env) -> None:
        lst1 = env.listings.current("d/")
        await env.listings.fill(lst1, 10**9)
        await env.objects.head("d/a")
        env.clock.t += TTL + 1
        b.reset()
        lst2 = env.listings.current("d/")
        assert lst2 is not lst1
        await env.listings.fill(lst2, 10**9)
        assert len(b.requests) == 1 and b.requests[0].method == "GET"
        b.reset()
        c = await env.objects.head("d/a")
        assert c.meta.xattrs[b"user.color"] == b"blue"
        assert c.expires == env.clock.t + TTL
        assert b.requests == []

    run_layers(b, go)


def test_relisting_with_changed_etag_needs_a_new_head():
    b = Bucket()
    b.put("d/a", etag='"v1"', color="blue")

    async def go(env: Env) -> None:
        await list_all(env, "d/")
        await env.objects.head("d/a")
        b.put("d/a", etag='"v2"', color="green")
        env.clock.t += TTL + 1
        await list_all(env, "d/")
        b.reset()
        c = await env.objects.head("d/a")
        (h,) = b.requests
        assert "if-none-match" not in h.headers
        assert c.meta.xattrs[b"user.color"] == b"green"

    run_layers(b, go)


# -- which listing serves a directory --------------------------------------------------------------

def test_fresh_listing_is_reused_and_expired_one_replaced():
    b = Bucket()
    b.put("f")

    async def go(env: Env) -> None:
        lst = env.listings.current("")
        assert env.listings.current("") is lst  # in progress
        await env.listings.fill(lst, 10**9)
        assert env.listings.current("") is lst  # fresh
        env.clock.t += TTL
        assert env.listings.current("") is not lst

    run_layers(b, go)


def test_backed_while_any_listing_of_the_directory_is_kept():
    b = Bucket()
    b.put("d/f")

    async def go(env: Env) -> None:
        assert not env.listings.backed("d/")
        lst = env.listings.current("d/")
        assert env.listings.backed("d/")  # in progress
        await env.listings.fill(lst, 10**9)
        env.clock.t += TTL
        assert env.listings.backed("d/")  # expired, but kept
        new = env.listings.current("d/")
        assert new is not lst and env.listings.backed("d/")  # replaced: the new one backs the names

    run_layers(b, go)


def test_backing_ends_when_another_listing_evicts_it():
    b = Bucket()
    for k in ("a/1", "a/2", "b/1", "b/2"):
        b.put(k)

    async def go(env: Env) -> None:
        # The bound is 4 entries; a listing weighs 1 + its entries.
        a = env.listings.current("a/")
        await env.listings.fill(a, 10**9)
        assert env.listings.backed("a/")
        bl = env.listings.current("b/")
        await env.listings.fill(bl, 10**9)  # 3 + 3 > 4: the least recently used goes
        assert env.listings.backed("b/") and not env.listings.backed("a/")
        assert env.listings.fresh("a/") is None
        assert [e.name for e in a.entries] == ["1", "2"]  # its reader keeps it

    run_layers(b, go, max_entries=4)


def test_listing_larger_than_the_bound_is_served_but_not_kept():
    b = Bucket(page_size=2)
    for k in "abcde":
        b.put("d/" + k)

    async def go(env: Env) -> None:
        lst = env.listings.current("d/")
        await env.listings.fill(lst, 10**9)
        assert lst.complete and [e.name for e in lst.entries] == list("abcde")
        assert not env.listings.backed("d/")
        assert env.listings.current("d/") is not lst

    run_layers(b, go, max_entries=4)


# -- pages -----------------------------------------------------------------------------------------

def test_listing_pages_fetched_lazily():
    b = Bucket(page_size=2)
    for k in "abcde":
        b.put("d/" + k)

    async def go(env: Env) -> None:
        lst = env.listings.current("d/")
        assert b.requests == []
        await env.listings.fill(lst, 0)
        assert len(b.requests) == 1
        assert [e.name for e in lst.entries] == ["a"]  # "b" held until a later key
        await env.listings.fill(lst, 0)
        assert len(b.requests) == 1
        await env.listings.fill(lst, 1)
        assert len(b.requests) == 2
        assert [e.name for e in lst.entries] == ["a", "b", "c"]
        await env.listings.fill(lst, 100)
        assert len(b.requests) == 3 and lst.complete
        assert [e.name for e in lst.entries] == ["a", "b", "c", "d", "e"]
        await env.listings.fill(lst, 100)
        assert len(b.requests) == 3
        q = [dict(r.url.params) for r in b.requests]
        assert all(p["prefix"] == "d/" and p["delimiter"] == "/" and p["encoding-type"] == "url"
                   for p in q)
        assert "continuation-token" not in q[0]
        assert q[1]["continuation-token"] == "d/b" and q[2]["continuation-token"] == "d/d"
        # Listed entries answer stat by themselves, without a request, and
        # are not copied into the object table (memory of huge directories).
        b.reset()
        assert (await env.objects.stat("d/e")).meta.size == 4
        assert b.requests == [] and env.cache.known_object("d/e") is None

    run_layers(b, go)


def test_listing_directory_wins_across_pages():
    b = Bucket(page_size=1)
    b.put("a")
    b.put("a-b")
    b.put("a/x")

    async def go(env: Env) -> None:
        await list_all(env, "")
        lst = env.listings.current("")
        assert [(e.name, e.is_dir) for e in lst.entries] == [("a-b", False), ("a", True)]
        assert len(b.requests) == 3
        b.reset()
        assert isinstance(await env.ns.lookup("", "a"), FoundDir)
        assert b.requests == []

    run_layers(b, go)


def test_concurrent_readers_share_listing_pages():
    b = Bucket(page_size=2)
    for k in "abcde":
        b.put(k)

    async def go(env: Env) -> None:
        lst = env.listings.current("")
        b.gate = trio.Event()
        async with trio.open_nursery() as n:
            for _ in range(5):
                n.start_soon(env.listings.fill, lst, 100)
            await trio.testing.wait_all_tasks_blocked()
            assert len(b.requests) == 1
            b.gate.set()
        assert lst.complete and [e.name for e in lst.entries] == list("abcde")
        assert len(b.requests) == 3

    run_layers(b, go)


# Regression (was a bug): Metadata.listing() reused an abandoned incomplete listing forever,
# so readdir served pages fetched long past the TTL.
def test_abandoned_incomplete_listing_is_not_served_after_the_ttl():
    b = Bucket(page_size=2)
    for k in "abcde":
        b.put(k)

    async def go(env: Env) -> None:
        old = env.listings.current("")
        await env.listings.fill(old, 0)  # a reader stopped after the first page
        assert not old.complete and [e.name for e in old.entries] == ["a"]
        del b.objects["a"]
        env.clock.t += 100 * TTL
        lst = env.listings.current("")
        await env.listings.fill(lst, 100)
        assert "a" not in [e.name for e in lst.entries]

    run_layers(b, go)


def test_failed_listing_is_replaced():
    b = Bucket()
    b.put("f")

    async def go(env: Env) -> None:
        b.fail = 500
        lst = env.listings.current("")
        with pytest.raises(errors.ServerError):
            await env.listings.fill(lst, 0)
        assert lst.failed
        b.fail = None
        lst2 = env.listings.current("")
        assert lst2 is not lst
        await env.listings.fill(lst2, 0)
        assert [e.name for e in lst2.entries] == ["f"]

    run_layers(b, go)


def test_a_refresh_without_answer_serves_the_previous_listing():
    b = Bucket()
    for k in ("d/a", "d/b"):
        b.put(k)

    async def go(env: Env) -> None:
        await list_all(env, "d/")
        old = env.listings.current("d/")
        env.clock.t += TTL + 1
        new = env.listings.current("d/")
        assert new is not old and new.previous is old
        # Until the new one shows something, the old one holds the ETags to revalidate with.
        assert env.listings.listed_file("d/a", fresh=False).meta == old.index["a"].meta
        b.fail = 500
        with pytest.raises(errors.ServerError):
            await env.listings.fill(new, 0)
        assert new.failed and new.previous is None
        # Kept again, every entry and absence trusted for the grace from the failure's end.
        assert env.listings.current("d/") is old
        assert [old.entry_expires(e.pos) for e in old.entries] == [env.clock.t + 1.0] * 2
        assert old.expires == env.clock.t + 1.0
        b.fail = None
        env.clock.t += 2  # past the grace, the server answers again: a real refresh
        b.reset()
        fresh = await env.listings.open("d/")
        assert fresh is not old and fresh.previous is None and len(b.lists()) == 1
        assert env.listings.current("d/") is fresh

    run_layers(b, go)


class DenyingBucket(Bucket):
    """A :class:`Bucket` that can answer every request with 403 AccessDenied."""

    denied = False

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if not self.denied:
            return await super().__call__(request)
        self.requests.append(request)
        return httpx.Response(403, content=b"<Error><Code>AccessDenied</Code></Error>")


def test_readdir_gets_the_previous_listing_and_other_errors_stay_errors():
    b = DenyingBucket()
    b.put("d/a")

    async def go(env: Env) -> None:
        await list_all(env, "d/")
        old = env.listings.current("d/")
        env.clock.t += TTL + 1
        b.broken = True
        assert await env.listings.open("d/") is old
        assert env.listings.fresh("d/") is old
        env.clock.t += 2
        b.broken, b.denied = False, True  # an answer about the listing itself: no stale copy
        with pytest.raises(errors.AccessDeniedError):
            await env.listings.open("d/")
        assert env.listings.fresh("d/") is None

    # On trio's virtual clock, so that the 2 s step also lets the client try the endpoint
    # again after the connection error (half-open: its first probe is due after 0.5 s).
    run_layers(b, go, virtual_time=True)


# -- locate: readahead's map -----------------------------------------------------------------------

def test_locate_finds_a_listed_file_and_its_position():
    b = Bucket()
    for k in ("d/a", "d/b", "d/sub/x", "d/z"):
        b.put(k)

    async def go(env: Env) -> None:
        assert env.listings.locate("d/b") is None  # nothing listed yet
        await list_all(env, "d/")
        lst = env.listings.current("d/")
        found = env.listings.locate("d/z")
        assert found is not None
        where, entry = found
        assert where is lst and isinstance(entry, FileEntry) and entry.meta.key == "d/z"
        assert lst.entries[entry.pos] == entry and entry.pos == 3  # a, b, sub, z (built when read)
        assert env.listings.locate("d/sub") is None  # a directory, not a file
        assert env.listings.locate("d/nope") is None
        assert env.listings.locate("d/sub/x") is None  # its directory is not listed
        assert b.requests[1:] == []  # locate sends nothing

    run_layers(b, go)


def test_locate_follows_the_kept_listing():
    b = Bucket()
    b.put("d/a")

    async def go(env: Env) -> None:
        await list_all(env, "d/")
        old = env.listings.current("d/")
        env.clock.t += TTL
        assert env.listings.locate("d/a") == (old, old.index["a"])  # expired, still kept
        new = env.listings.current("d/")  # replaces it; no page fetched yet
        assert env.listings.locate("d/a") is None
        await env.listings.fill(new, 10**9)
        assert env.listings.locate("d/a") == (new, new.index["a"])

    run_layers(b, go)


def test_past_two_pages_ranges_go_in_parallel_in_the_background_and_arrive_in_order():
    b = Bucket(page_size=10)
    keys = [f"d/f{i:03d}" for i in range(200)] + ["d/f050/x", "d/f050!"]
    for k in keys:
        b.put(k)

    async def go(env: Env) -> None:
        async with trio.open_nursery() as n:
            env.listings.start_background(n)
            lst = env.listings.current("d/")
            await env.listings.fill(lst, 25)  # three sequential pages
            assert len(b.requests) == 3 and lst.fanout is None
            b.gate = trio.Event()
            n.start_soon(env.listings.fill, lst, 10**9)
            await trio.testing.wait_all_tasks_blocked()
            in_flight = len(b.requests) - 3
            assert 2 <= in_flight <= 8  # several ranges at once, never more than the fanout
            assert sum("start-after" in r.url.params for r in b.requests) >= 1
            b.gate.set()
            await trio.testing.wait_all_tasks_blocked()
            assert lst.complete and lst.fanout is None
            expected = [f"f{i:03d}" for i in range(200)] + ["f050!"]
            assert sorted(e.name for e in lst.entries) == sorted(expected)
            assert [e.name for e in lst.entries][:51] == [f"f{i:03d}" for i in range(50)] + ["f050!"]
            assert lst.index["f050"].is_dir and "f050" in lst.shadowed  # the directory wins
            assert len(b.requests) <= 21 * 1.5 and env.listings.range_requests == len(b.requests) - 3

    run_layers(b, go)


def test_a_failed_range_fails_the_listing_like_a_sequential_page():
    b = Bucket(page_size=10)
    for i in range(100):
        b.put(f"f{i:03d}")

    async def go(env: Env) -> None:
        async with trio.open_nursery() as n:
            env.listings.start_background(n)
            lst = env.listings.current("")
            await env.listings.fill(lst, 25)
            b.fail = 500
            with pytest.raises(errors.ServerError):
                await env.listings.fill(lst, 10**9)
            assert lst.failed and lst.fanout is None
            b.reset()
            with pytest.raises(errors.ServerError):  # later readers: the same error, no request
                await env.listings.fill(lst, 10**9)
            assert b.requests == []

    run_layers(b, go, attempts=1)


def test_without_a_nursery_or_unordered_listings_stay_sequential():
    b = Bucket(page_size=10)
    for i in range(100):
        b.put(f"f{i:03d}")

    async def go(env: Env) -> None:
        await list_all(env, "")  # (run_layers gives the listings no nursery)
        assert len(b.requests) == 10 and env.listings.range_requests == 0

    run_layers(b, go)
    from metafs.asof import AsOfView
    from metafs.listings import Listings
    from metafs.views import LiveView, RangeLister
    assert not issubclass(AsOfView, RangeLister)  # the as-of view cannot split
    assert issubclass(LiveView, RangeLister)
    live = LiveView(None)  # type: ignore[arg-type]
    assert Listings(live, None)._splits  # type: ignore[arg-type]
    assert not Listings(live, None, ordered=False)._splits  # type: ignore[arg-type] # (directory buckets)
    assert not Listings(live, None, fanout=1)._splits  # type: ignore[arg-type] # (one connection)

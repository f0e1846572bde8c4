"""metafs.namespace: request counts of name resolution over an in-memory bucket."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from metafs.namespace import FoundDir, FoundFile, Missing
from tests.fakes import MTIME, NEG_TTL, TTL, Bucket, Env, is_probe_list, list_all, run_layers

# -- probing unlisted names ---------------------------------------------------------------


def test_lookup_of_unlisted_file_sends_one_head_and_one_list():
    b = Bucket()
    b.put("dir/f.txt", b"hello", color="blue")

    async def go(env: Env) -> None:
        r = await env.ns.lookup("dir/", "f.txt")
        assert isinstance(r, FoundFile)
        assert r.meta.size == 5 and r.meta.xattrs is not None and r.meta.mtime == MTIME
        assert r.expires == 1000.0 + TTL
        assert len(b.requests) == 2
        (h,) = b.heads()
        (lq,) = b.lists()
        assert h.url.raw_path == b"/bkt/dir/f.txt" and "if-none-match" not in h.headers
        assert is_probe_list(lq, "dir/f.txt")
        # Known now: no more requests within the TTL.
        b.reset()
        again = await env.ns.lookup("dir/", "f.txt")
        assert isinstance(again, FoundFile) and again.meta.size == 5
        assert b.requests == []

    run_layers(b, go)


def test_lookup_of_unlisted_directory():
    b = Bucket()
    b.put("d/inner")

    async def go(env: Env) -> None:
        r = await env.ns.lookup("", "d")
        assert r == FoundDir(1000.0 + TTL)
        assert len(b.heads()) == 1 and len(b.lists()) == 1
        b.reset()
        assert isinstance(await env.ns.lookup("", "d"), FoundDir)
        assert b.requests == []

    run_layers(b, go)


def test_directory_wins_when_probe_finds_both():
    b = Bucket()
    b.put("a")
    b.put("a/x")

    async def go(env: Env) -> None:
        r = await env.ns.lookup("", "a")
        assert isinstance(r, FoundDir)
        assert len(b.requests) == 2

    run_layers(b, go)


def test_lookup_of_absent_name_is_remembered_for_the_negative_ttl():
    b = Bucket()

    async def go(env: Env) -> None:
        r = await env.ns.lookup("", "nope")
        assert r == Missing(1000.0 + NEG_TTL)
        assert len(b.heads()) == 1 and len(b.lists()) == 1
        b.reset()
        env.clock.t += NEG_TTL - 0.1
        assert isinstance(await env.ns.lookup("", "nope"), Missing)
        assert b.requests == []
        env.clock.t += 0.2
        assert isinstance(await env.ns.lookup("", "nope"), Missing)
        assert len(b.heads()) == 1 and len(b.lists()) == 1

    run_layers(b, go)


def test_zero_negative_ttl_asks_every_time():
    b = Bucket()

    async def go(env: Env) -> None:
        await env.ns.lookup("", "nope")
        await env.ns.lookup("", "nope")
        assert len(b.heads()) == 2

    run_layers(b, go, negative_ttl=0)


# -- listings answer lookups -------------------------------------------------------------------

def test_lookup_in_freshly_listed_directory_sends_nothing():
    b = Bucket()
    b.put("d/f1", b"1")
    b.put("d/f2", b"22")
    b.put("d/sub/x")

    async def go(env: Env) -> None:
        await list_all(env, "d/")
        assert len(b.requests) == 1
        b.reset()
        f2 = await env.ns.lookup("d/", "f2")
        assert isinstance(f2, FoundFile) and f2.meta.size == 2
        assert f2.meta.xattrs is None  # listing-level
        assert isinstance(await env.ns.lookup("d/", "sub"), FoundDir)
        missing = await env.ns.lookup("d/", "nope")
        assert isinstance(missing, Missing) and missing.expires == 1000.0 + TTL
        assert b.requests == []

    run_layers(b, go)


def test_listing_in_progress_answers_only_what_it_has_put_in_the_cache():
    b = Bucket(page_size=2)
    for k in ("d/a", "d/b/x", "d/c", "d/e"):
        b.put(k)

    async def go(env: Env) -> None:
        lst = env.listings.current("d/")
        await env.listings.fill(lst, 0)
        assert not lst.complete and [(e.name, e.is_dir) for e in lst.entries] == [
            ("a", False), ("b", True)]
        b.reset()
        assert isinstance(await env.ns.lookup("d/", "b"), FoundDir)
        assert isinstance(await env.ns.lookup("d/", "a"), FoundFile)
        assert b.requests == []
        # Not listed yet: an incomplete listing cannot say it is absent.
        r = await env.ns.lookup("d/", "e")
        assert isinstance(r, FoundFile)
        assert len(b.heads()) == 1 and len(b.lists()) == 1

    run_layers(b, go)


def test_expired_listing_no_longer_answers_negatives():
    b = Bucket()
    b.put("d/f1")

    async def go(env: Env) -> None:
        await list_all(env, "d/")
        env.clock.t += TTL
        b.reset()
        assert isinstance(await env.ns.lookup("d/", "nope"), Missing)
        assert len(b.heads()) == 1 and len(b.lists()) == 1

    run_layers(b, go)


# -- revalidation -------------------------------------------------------------------------------

def test_known_file_after_ttl_revalidated_with_one_conditional_head_304_extends():
    b = Bucket()
    b.put("k", b"abc")
    etag = b.objects["k"][1]

    async def go(env: Env) -> None:
        first = await env.ns.lookup("", "k")
        assert isinstance(first, FoundFile)
        env.clock.t += TTL + 1
        b.reset()
        r = await env.ns.lookup("", "k")
        assert isinstance(r, FoundFile) and r.meta is first.meta
        assert r.expires == env.clock.t + TTL
        (h,) = b.requests
        assert h.method == "HEAD" and h.headers["if-none-match"] == etag
        b.reset()
        await env.ns.lookup("", "k")
        assert b.requests == []

    run_layers(b, go)


@pytest.mark.parametrize("changed", [False, True])
def test_name_known_as_file_is_revalidated_by_one_conditional_head_and_no_list(changed):
    # Known from the object table only (a HEAD, never a probe of the name):
    # after the TTL the name costs one conditional HEAD, and no LIST asks
    # whether it became a directory while the object is still there.
    b = Bucket()
    b.put("d/k", b"abc", etag='"v1"', color="blue")

    async def go(env: Env) -> None:
        known = await env.objects.head("d/k")
        assert len(b.requests) == 1
        if changed:
            b.put("d/k", b"longer", etag='"v2"', color="red")
        env.clock.t += TTL + 1
        b.reset()
        r = await env.ns.lookup("d/", "k")
        (h,) = b.requests
        assert h.method == "HEAD" and h.headers["if-none-match"] == '"v1"'
        assert b.lists() == []
        assert isinstance(r, FoundFile) and r.expires == env.clock.t + TTL
        if changed:
            assert r.meta.etag == '"v2"' and r.meta.xattrs[b"user.color"] == b"red"
        else:
            assert r.meta is known.meta

    run_layers(b, go)


def test_listed_file_after_ttl_revalidated_with_conditional_head():
    b = Bucket()
    b.put("d/k", b"abc")

    async def go(env: Env) -> None:
        await list_all(env, "d/")
        env.clock.t += TTL + 1
        b.reset()
        r = await env.ns.lookup("d/", "k")
        assert isinstance(r, FoundFile) and r.meta.size == 3
        (h,) = b.requests
        assert h.method == "HEAD" and h.headers["if-none-match"] == b.objects["d/k"][1]

    run_layers(b, go)


def test_changed_object_replaces_the_entry():
    b = Bucket()
    b.put("k", b"abc", etag='"v1"')

    async def go(env: Env) -> None:
        await env.ns.lookup("", "k")
        b.put("k", b"longer body", etag='"v2"', color="red")
        env.clock.t += TTL + 1
        b.reset()
        r = await env.ns.lookup("", "k")
        assert isinstance(r, FoundFile)
        assert r.meta.etag == '"v2"' and r.meta.size == 11
        assert r.meta.xattrs[b"user.color"] == b"red"
        (h,) = b.requests
        assert h.headers["if-none-match"] == '"v1"'
        assert env.cache.known_object("k").meta.etag == '"v2"'

    run_layers(b, go)


def test_deleted_object_becomes_missing_for_the_negative_ttl():
    b = Bucket()
    b.put("k")

    async def go(env: Env) -> None:
        await env.ns.lookup("", "k")
        del b.objects["k"]
        env.clock.t += TTL + 1
        b.reset()
        r = await env.ns.lookup("", "k")
        assert r == Missing(env.clock.t + NEG_TTL)
        # The conditional HEAD says 404; one LIST checks the name is not now a directory.
        assert len(b.heads()) == 1 and len(b.lists()) == 1 and len(b.requests) == 2
        b.reset()
        env.clock.t += NEG_TTL - 1
        assert isinstance(await env.ns.lookup("", "k"), Missing)
        assert b.requests == []
        env.clock.t += 2
        assert isinstance(await env.ns.lookup("", "k"), Missing)
        assert len(b.heads()) == 1 and len(b.lists()) == 1

    run_layers(b, go)


def test_known_directory_after_ttl_revalidated_with_one_list():
    b = Bucket()
    b.put("d/x")

    async def go(env: Env) -> None:
        await env.ns.lookup("", "d")
        env.clock.t += TTL + 1
        b.reset()
        assert isinstance(await env.ns.lookup("", "d"), FoundDir)
        (lq,) = b.requests
        assert is_probe_list(lq, "d")

    run_layers(b, go)


def test_file_replaced_by_directory_is_found_as_directory_after_ttl():
    b = Bucket()
    b.put("x")

    async def go(env: Env) -> None:
        assert isinstance(await env.ns.lookup("", "x"), FoundFile)
        del b.objects["x"]
        b.put("x/inner")
        env.clock.t += TTL + 1
        r = await env.ns.lookup("", "x")
        assert isinstance(r, FoundDir)

    run_layers(b, go)


def test_concurrent_lookups_share_one_probe():
    b = Bucket()
    b.put("k")

    async def go(env: Env) -> None:
        b.gate = trio.Event()
        results: list[Any] = []

        async def one() -> None:
            results.append(await env.ns.lookup("", "k"))

        async with trio.open_nursery() as n:
            for _ in range(10):
                n.start_soon(one)
            await trio.testing.wait_all_tasks_blocked()
            b.gate.set()
        assert len(results) == 10 and all(isinstance(r, FoundFile) for r in results)
        assert len(b.heads()) == 1 and len(b.lists()) == 1

    run_layers(b, go)


# -- stale if error -------------------------------------------------------------------------------

def test_stale_directory_served_when_revalidation_fails():
    b = Bucket()
    b.put("d/x")

    async def go(env: Env) -> None:
        await env.ns.lookup("", "d")
        env.clock.t += TTL + 1
        b.fail = 500
        b.reset()
        r = await env.ns.lookup("", "d")
        assert r == FoundDir(env.clock.t + 1.0)
        assert len(b.requests) == 2 and all(is_probe_list(q, "d") for q in b.requests)

    run_layers(b, go)


def test_a_listing_slower_than_the_ttl_trusts_each_page_from_its_request():
    # A listing that takes longer than the TTL (a huge directory, a slow
    # server) must not hand out names that are already expired: `ls -l`
    # would then probe every name again.
    b = Bucket(page_size=2)
    for k in ("d/a", "d/b", "d/c", "d/e", "d/f"):
        b.put(k)

    async def go(env: Env) -> None:
        lst = env.listings.current("d/")          # created at 1000: absences trusted to 1010
        await env.listings.fill(lst, 0)           # page 1 (a, b) requested at 1000
        env.clock.t += 6
        await env.listings.fill(lst, 10**9)       # pages 2, 3 (c, e, f) requested at 1006
        assert lst.complete
        # b was held back (rule 2) until page 2 proved no b/ follows: emitted with page 2,
        # trusted from page 1, which showed it.
        assert [lst.entry_expires(e.pos) for e in lst.entries] == [1010.0] * 2 + [1016.0] * 3
        env.clock.t += 6                          # 1012: page 1 and absences expired
        b.reset()
        assert await env.ns.lookup("d/", "e") == FoundFile(lst.index["e"].meta, 1016.0)
        assert b.requests == []                   # a fresh page answers
        r = await env.ns.lookup("d/", "a")        # an expired page: one conditional HEAD
        assert isinstance(r, FoundFile) and r.expires == env.clock.t + TTL
        (h,) = b.requests
        assert h.method == "HEAD" and h.headers["if-none-match"] == b.objects["d/a"][1]
        b.reset()
        assert isinstance(await env.ns.lookup("d/", "zz"), Missing)
        assert len(b.heads()) == 1 and len(b.lists()) == 1  # absences: from the creation only
        assert env.listings.current("d/") is lst  # still shared: its newest page is fresh

    run_layers(b, go)

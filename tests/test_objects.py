"""metafs.objects: request counts of per-object metadata over an in-memory bucket."""

from __future__ import annotations

import email.utils
from typing import Any

import pytest
import trio
import trio.testing

from metafs import errors
from metafs.namespace import FoundFile, Missing
from metafs.s3.model import Absent, Fresh, NotModified, ObjectMeta
from tests.fakes import MTIME, TTL, Bucket, Env, list_all, run_layers

# -- stat and head --------------------------------------------------------------------------------


def test_file_full_on_listing_level_entry_sends_plain_head():
    b = Bucket()
    b.put("d/k", b"abc", color="blue")

    async def go(env: Env) -> None:
        await list_all(env, "d/")
        b.reset()
        # Listing-level is enough for stat.
        c = await env.objects.stat("d/k")
        assert c.meta.xattrs is None and b.requests == []
        c = await env.objects.head("d/k")
        (h,) = b.requests
        assert h.method == "HEAD" and "if-none-match" not in h.headers
        assert c.meta.xattrs[b"user.color"] == b"blue"
        b.reset()
        assert (await env.objects.head("d/k")).meta.xattrs is not None
        assert b.requests == []

    run_layers(b, go)


def test_file_of_deleted_object_is_absent_without_a_negative_entry():
    b = Bucket()

    async def go(env: Env) -> None:
        assert isinstance(await env.objects.stat("gone"), Absent)
        assert len(b.requests) == 1
        b.reset()
        # Not remembered as missing: the name may have become a directory,
        # so the kernel's next lookup probes both (then it is remembered).
        assert isinstance(await env.ns.lookup("", "gone"), Missing)
        assert len(b.heads()) == 1 and len(b.lists()) == 1
        b.reset()
        assert isinstance(await env.ns.lookup("", "gone"), Missing)
        assert b.requests == []

    run_layers(b, go)


def test_concurrent_file_calls_share_one_head():
    b = Bucket()
    b.put("k", b"abc")

    async def go(env: Env) -> None:
        b.gate = trio.Event()
        results: list[Any] = []

        async def one() -> None:
            results.append(await env.objects.head("k"))

        async with trio.open_nursery() as n:
            for _ in range(10):
                n.start_soon(one)
            await trio.testing.wait_all_tasks_blocked()
            assert len(b.requests) == 1
            b.gate.set()
        assert len(results) == 10
        assert all(r.meta.etag == b.objects["k"][1] and r.meta.xattrs for r in results)
        assert len(b.requests) == 1

    run_layers(b, go)


def test_full_caller_does_not_take_a_listing_level_answer_from_a_shared_flight():
    b = Bucket()
    b.put("d/k", color="blue")

    async def go(env: Env) -> None:
        await list_all(env, "d/")
        env.clock.t += TTL + 1
        b.reset()
        b.gate = trio.Event()
        out: dict[str, Any] = {}

        async def plain() -> None:
            out["plain"] = await env.objects.stat("d/k")

        async def full() -> None:
            out["full"] = await env.objects.head("d/k")

        async with trio.open_nursery() as n:
            n.start_soon(plain)
            await trio.testing.wait_all_tasks_blocked()
            n.start_soon(full)
            await trio.testing.wait_all_tasks_blocked()
            assert len(b.requests) == 1  # the full caller waits for the running flight
            b.gate.set()
        assert out["plain"].meta.xattrs is None  # 304 extended the listing-level entry
        assert out["full"].meta.xattrs[b"user.color"] == b"blue"
        assert [r.headers.get("if-none-match") for r in b.requests] == [b.objects["d/k"][1], None]

    run_layers(b, go)


# Regression of the split (old Metadata.file() shared these): ObjectMetadata._get waits on a
# running flight with SingleFlight.wait, which drops its outcome, so every waiter of a flight
# that failed or found the object gone sends a HEAD of its own.
@pytest.mark.parametrize("outcome", ["error", "gone"])
def test_concurrent_calls_share_one_head_whatever_its_outcome(outcome):
    b = Bucket()
    if outcome == "error":
        b.put("k")
        b.fail = 500

    async def go(env: Env) -> None:
        b.gate = trio.Event()
        results: list[Any] = []

        async def one() -> None:
            try:
                results.append(await env.objects.head("k"))
            except errors.ServerError as e:
                results.append(e)

        async with trio.open_nursery() as n:
            for _ in range(10):
                n.start_soon(one)
            await trio.testing.wait_all_tasks_blocked()
            b.gate.set()
        assert len(results) == 10
        if outcome == "error":
            assert all(isinstance(r, errors.ServerError) for r in results)
            assert len(b.requests) == 2  # one HEAD, both attempts
        else:
            assert all(isinstance(r, Absent) for r in results)
            assert len(b.requests) == 1

    run_layers(b, go)


# -- xattrs ---------------------------------------------------------------------------------------

def test_xattrs_are_the_head_table_and_cost_one_head_then_none():
    b = Bucket()
    b.put("d/k", b"abc", etag='"v1"', color="blue")

    async def go(env: Env) -> None:
        await list_all(env, "d/")  # listing-level: no xattrs yet
        b.reset()
        x = await env.objects.xattrs("d/k")
        (h,) = b.requests
        assert h.method == "HEAD" and "if-none-match" not in h.headers
        assert x == {
            b"user.s3.etag": b"v1",
            b"user.s3.content-type": b"text/plain",
            b"user.s3.last-modified": email.utils.formatdate(MTIME, usegmt=True).encode(),
            b"user.color": b"blue",
        }
        assert x is env.cache.known_object("d/k").meta.xattrs
        b.reset()
        assert await env.objects.xattrs("d/k") == x
        assert b.requests == []

    run_layers(b, go)


def test_xattrs_of_a_gone_object_are_absent():
    b = Bucket()

    async def go(env: Env) -> None:
        assert isinstance(await env.objects.xattrs("gone"), Absent)
        (h,) = b.requests
        assert h.method == "HEAD"

    run_layers(b, go)


# -- settle: a HEAD's outcome --------------------------------------------------------------------

def _meta(key: str, etag: str, size: int = 3) -> ObjectMeta:
    return ObjectMeta(key, size, MTIME, etag, {b"user.s3.etag": etag.strip('"').encode()})


def test_settle_200_stores_the_metadata():
    b = Bucket()

    async def go(env: Env) -> None:
        m = _meta("k", '"v1"')
        t = env.objects.settle("k", Fresh(m), None)
        assert t.meta is m and t.expires == env.clock.t + TTL
        assert env.cache.known_object("k") is t
        # 200 to a conditional HEAD: the new answer replaces the stale entry.
        env.clock.t += TTL + 1
        m2 = _meta("k", '"v2"', size=9)
        t2 = env.objects.settle("k", Fresh(m2), t)
        assert t2.meta is m2 and t2.expires == env.clock.t + TTL
        assert env.cache.known_object("k") is t2
        assert b.requests == []

    run_layers(b, go)


def test_settle_304_extends_the_stale_entry():
    async def go(env: Env) -> None:
        stale = env.objects.settle("k", Fresh(_meta("k", '"v1"')), None)
        env.clock.t += TTL + 1
        t = env.objects.settle("k", NotModified(), stale)
        assert t is stale and t.expires == env.clock.t + TTL
        assert env.cache.fresh_object("k", head_level=True) is t
        # A stale entry the cache no longer holds (a listing's) is stored again.
        env.cache.drop_object("k")
        env.clock.t += TTL + 1
        t = env.objects.settle("k", NotModified(), stale)
        assert t.meta is stale.meta and t.expires == env.clock.t + TTL
        assert env.cache.known_object("k") is t

    run_layers(Bucket(), go)


def test_settle_304_without_a_stale_entry_is_malformed():
    async def go(env: Env) -> None:
        with pytest.raises(errors.MalformedResponseError):
            env.objects.settle("k", NotModified(), None)
        assert env.cache.known_object("k") is None

    run_layers(Bucket(), go)


def test_settle_404_is_absent():
    async def go(env: Env) -> None:
        stale = env.objects.settle("k", Fresh(_meta("k", '"v1"')), None)
        env.clock.t += TTL + 1
        r = env.objects.settle("k", Absent(), stale)
        assert isinstance(r, Absent)
        assert isinstance(env.objects.settle("other", Absent(), None), Absent)

    run_layers(Bucket(), go)


# -- stale if error -------------------------------------------------------------------------------

def test_stale_metadata_served_when_revalidation_fails():
    b = Bucket()
    b.put("k", b"abc", color="blue")

    async def go(env: Env) -> None:
        fresh = await env.objects.head("k")
        env.clock.t += TTL + 1
        b.fail = 500
        b.reset()
        c = await env.objects.head("k")
        assert c.meta is fresh.meta
        assert c.expires == env.clock.t + 1.0  # stale_grace
        assert len(b.requests) == 2  # both attempts
        b.reset()
        env.clock.t += 2  # past the grace: the next call tries the server again
        r = await env.ns.lookup("", "k")
        assert isinstance(r, FoundFile) and r.meta is fresh.meta and r.expires == env.clock.t + 1.0
        assert len(b.requests) == 2

    run_layers(b, go)


def test_stale_grace_runs_from_the_end_of_the_failure():
    # A revalidation that gets no answer costs the whole budget (3 attempts of 2 s, on
    # trio's virtual clock): a grace counted from its start would be over before it ends.
    b = Bucket()
    b.put("k", b"abc", color="blue")

    async def go(env: Env) -> None:
        fresh = await env.objects.head("k")
        env.clock.t += TTL + 1
        b.gate = trio.Event()  # no answer
        start = env.clock.t
        c = await env.objects.head("k")
        end = env.clock.t
        assert end - start >= 3 * 2.0 and len(b.requests) == 1 + 3
        assert c.meta is fresh.meta and c.expires == end + 1.0
        assert (await env.objects.head("k")) is c and len(b.requests) == 1 + 3

    run_layers(b, go, attempts=3, attempt_timeout=2.0, virtual_time=True)


def test_stale_metadata_served_on_transport_errors_too():
    b = Bucket()
    b.put("k", b"abc")

    async def go(env: Env) -> None:
        first = await env.ns.lookup("", "k")
        assert isinstance(first, FoundFile)
        env.clock.t += TTL + 1
        b.broken = True
        r = await env.ns.lookup("", "k")
        assert isinstance(r, FoundFile) and r.meta is first.meta and r.expires == env.clock.t + 1.0
        c = await env.objects.stat("k")
        assert c.meta is first.meta

    run_layers(b, go)


def test_without_cached_entry_the_error_propagates():
    b = Bucket()
    b.put("k")
    b.fail = 500

    async def go(env: Env) -> None:
        with pytest.raises(errors.ServerError):
            await env.objects.stat("k")
        with pytest.raises(errors.ServerError):
            await env.ns.lookup("", "k")

    run_layers(b, go)


def test_listing_level_stale_entry_cannot_serve_full_metadata():
    b = Bucket()
    b.put("d/k")

    async def go(env: Env) -> None:
        await list_all(env, "d/")
        env.clock.t += TTL + 1
        b.fail = 503
        with pytest.raises(errors.ServerError):
            await env.objects.head("d/k")
        # ...but listing-level metadata is served stale.
        assert (await env.objects.stat("d/k")).meta.xattrs is None

    run_layers(b, go)

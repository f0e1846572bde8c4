"""S3 directory-bucket sessions: created on the first data request, shared by
concurrent ones, renewed before they end (on the server's clock), renewed once
when the server says one expired early.  The request shape of a directory
bucket is in ``test_dialects.py``."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
import trio
import trio.testing

from metafs import errors
from metafs.s3.client import S3Client
from metafs.s3.express import Session, SessionCache, renewal_margin
from metafs.s3.model import Fresh, parse_create_session
from metafs.signing import Credentials
from tests.fakes import (
    EXPRESS_BUCKET,
    NOW,
    ExpressServer,
    Server,
    headers_of,
    no_secret_in,
    run,
    session_answer,
    xml_error,
)


def test_directory_bucket_session_renewed_before_expiry_and_shared():
    srv = ExpressServer(200)

    async def go(c: S3Client) -> list[int]:
        seen = []
        async with trio.open_nursery() as n:  # ten concurrent first requests: one session
            for i in range(10):
                n.start_soon(c.head_object, f"k{i}")
        seen.append(srv.sessions)
        # 300 s granted, 299 counted (Date is truncated to the second); renewal
        # starts a fifth of that, at most 60 s, before the end: at 239.2 s.
        await trio.sleep(239)
        await c.head_object("k")
        seen.append(srv.sessions)
        await trio.sleep(2)
        await c.head_object("k")
        seen.append(srv.sessions)
        return seen

    assert run(srv, go, bucket=EXPRESS_BUCKET, region="us-west-2", mock_clock=True) == [1, 1, 2]
    last = headers_of(srv.requests[-1])
    assert last["x-amz-s3session-token"] == "SESSION-TOKEN-2"
    assert renewal_margin(300) == 60 and renewal_margin(5) == 1 and renewal_margin(-3) == 0


def test_session_lifetime_is_measured_on_the_server_clock():
    # The local clock (NOW) runs an hour ahead of the server: the lifetime is
    # still Expiration - Date, so the session is not thought already expired.
    server_now = NOW - dt.timedelta(hours=1)
    srv = Server(lambda r: session_answer(1, 300, server_now) if r.url.query == b"session"
                 else httpx.Response(200))

    async def go(c: S3Client) -> None:
        for _ in range(3):
            await c.head_object("k")

    run(srv, go, bucket=EXPRESS_BUCKET, region="us-west-2", mock_clock=True)
    assert [r.url.query for r in srv.requests].count(b"session") == 1


def test_expired_session_answer_renews_once():
    answers = iter([httpx.Response(400, content=xml_error("ExpiredToken")), httpx.Response(200),
                    httpx.Response(400, content=xml_error("ExpiredToken")),
                    httpx.Response(400, content=xml_error("ExpiredToken"))])
    srv = ExpressServer(lambda r: next(answers))

    async def go(c: S3Client) -> None:
        assert isinstance(await c.head_object("k"), Fresh)
        with pytest.raises(errors.S3Error) as e:
            await c.list_page("")
        no_secret_in(e.value)

    run(srv, go, bucket=EXPRESS_BUCKET, region="us-west-2")
    assert srv.sessions == 3  # first, renewal after the first ExpiredToken, one more: then give up


def test_session_cache_invalidate_only_current():
    made: list[int] = []

    async def create() -> Session:
        made.append(1)
        return Session(Credentials(f"K{len(made)}", "s", "t"), 300.0)

    async def go() -> None:
        cache = SessionCache(create)
        a = await cache.get()
        cache.invalidate(Credentials("other", "s", "t"))
        assert await cache.get() is a
        cache.invalidate(a)
        assert (await cache.get()).access_key == "K2"

    trio.run(go, clock=trio.testing.MockClock(autojump_threshold=0))


def test_parse_create_session():
    keys = parse_create_session(session_answer(7).content)
    assert (keys.access_key, keys.token) == ("SESSIONKEY7", "SESSION-TOKEN-7")
    assert keys.expiration == int(NOW.timestamp()) + 300
    assert "SESSION-SECRET" not in repr(keys) and "SESSION-TOKEN" not in repr(keys)
    with pytest.raises(errors.MalformedResponseError):
        parse_create_session(b"<CreateSessionResult><Credentials/></CreateSessionResult>")

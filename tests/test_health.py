"""metafs.s3.health: the endpoint's outages, alone (stepped clock) and in the client (trio's virtual clock).

The client tests run on :class:`trio.testing.MockClock`: a hanging server
costs its timeouts in virtual time, so "fails at once" is asserted as
"zero seconds passed and no request was sent".
"""

from __future__ import annotations

import logging

import httpx
import pytest
import trio

from metafs import errors
from metafs.s3.client import S3Client
from metafs.s3.health import EndpointHealth
from metafs.s3.model import Absent
from tests.fakes import NOW, Clock, Server, run


class Scope:
    """Stands for the client's per-attempt cancel scope."""

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def health(clock: Clock, **kw: float) -> EndpointHealth:
    return EndpointHealth("bkt.example:9000", clock=clock, wall=lambda: NOW, **kw)


# -- the bookkeeping alone --------------------------------------------------------------------

def test_no_answer_opens_an_outage_and_requests_fail_fast_naming_it(caplog):
    clock = Clock()
    h = health(clock)
    h.background = True
    assert h.admit("HEAD a") is False  # up: send
    with caplog.at_level(logging.WARNING, logger="metafs.s3.health"):
        assert h.no_answer("HEAD a: no answer from bkt.example within 2 s", probe=False) is True
    assert h.down and h.outages == 1
    assert [r.message for r in caplog.records] == [
        "bkt.example:9000 is not answering (HEAD a: no answer from bkt.example within 2 s): "
        "failing fast until it answers again, probing every 0.5-5 s"]
    clock.t += 12
    with pytest.raises(errors.EndpointDownError) as e:
        h.admit("HEAD b")
    assert isinstance(e.value, errors.TransportError) and e.value.errno == 5  # EIO
    assert str(e.value) == ("HEAD b: failed fast: bkt.example:9000 has not answered since "
                            "03:04:05 UTC (12 s; HEAD a: no answer from bkt.example within 2 s)")
    # A second request without answer (on the wire before the outage) opens nothing new.
    assert h.no_answer("late", probe=False) is False and h.outages == 1
    assert h.outage is not None and h.outage.refused == 1


def test_any_answer_ends_the_outage(caplog):
    clock = Clock()
    h = health(clock)
    h.background = True
    h.no_answer("x", probe=False)
    for _ in range(3):
        with pytest.raises(errors.EndpointDownError):
            h.admit("HEAD k")
    clock.t += 7.5
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="metafs.s3.health"):
        h.answered()
    assert not h.down and h.probe_delay() is None
    assert [r.message for r in caplog.records] == [
        "bkt.example:9000 answers again after 7.5 s; 3 requests failed fast meanwhile"]
    assert h.admit("HEAD k") is False
    h.answered()  # up already: nothing to log
    assert len(caplog.records) == 1


def test_probes_back_off_doubling_up_to_the_cap():
    clock = Clock()
    h = health(clock, first_probe=0.5, max_probe=5.0)
    h.background = True
    h.no_answer("x", probe=False)
    delays = []
    for _ in range(6):
        delays.append(h.probe_delay())
        clock.t += h.probe_delay() + 2.0  # the probe hangs for its 2 s timeout
        h.no_answer("probe: no answer", probe=True)
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert h.outages == 1
    clock.t += 1.0
    assert h.probe_delay() == 4.0


def test_half_open_without_a_probe_task_lets_requests_through_when_a_probe_is_due(caplog):
    clock = Clock()
    h = health(clock, first_probe=0.5)
    with caplog.at_level(logging.INFO):
        h.no_answer("x", probe=False)
    assert caplog.records == []  # not mounted (the start-up check): its error says it all
    with pytest.raises(errors.EndpointDownError):
        h.admit("HEAD k")
    clock.t += 0.5
    assert h.admit("HEAD k") is True  # due: this request is the probe
    h.no_answer("again", probe=True)  # ...and it failed: wait twice as long
    with pytest.raises(errors.EndpointDownError):
        h.admit("HEAD k")
    clock.t += 1.0
    assert h.admit("HEAD k") is True


def test_an_outage_abandons_the_attempts_on_the_wire():
    h = health(Clock())
    one, two, done = Scope(), Scope(), Scope()
    with h.attempt(done):
        pass
    with h.attempt(one) as a1, h.attempt(two) as a2:
        h.no_answer("x", probe=False)
        assert one.cancelled and two.cancelled and a1.abandoned and a2.abandoned
    assert not done.cancelled
    h.answered()
    with h.attempt(Scope()) as a3:  # up again: nothing abandons it
        pass
    assert not a3.abandoned


# -- in the client ------------------------------------------------------------------------------

async def hang(request: httpx.Request) -> httpx.Response:
    await trio.sleep_forever()
    raise AssertionError


def test_a_request_without_answer_opens_the_outage_and_the_next_fails_at_once():
    srv = Server(hang)

    async def go(c: S3Client) -> None:
        t0 = trio.current_time()
        with pytest.raises(errors.TransportError) as first:
            await c.head_object("a")
        spent = trio.current_time() - t0
        assert not isinstance(first.value, errors.EndpointDownError)
        assert len(srv.requests) == 3 and c.health.down
        assert 3 * 2.0 <= spent <= 3 * 2.0 + 0.2 + 0.4  # attempts x timeout + backoff
        t1 = trio.current_time()
        for op in (c.head_object("b"), c.list_page("d/"), c.get_range("c", 0, 9, None)):
            with pytest.raises(errors.EndpointDownError) as fast:
                await op
            assert "has not answered since 03:04:05 UTC" in str(fast.value)
        assert trio.current_time() == t1 and len(srv.requests) == 3  # no time, no request

    run(srv, go, mock_clock=True, attempts=3, attempt_timeout=2.0, rng=lambda: 0.99,
        sleep=trio.sleep, endpoint_url="http://127.0.0.1:9000")


def test_5xx_answers_do_not_open_an_outage():
    srv = Server(503, 500, 500, 404)

    async def go(c: S3Client) -> None:
        with pytest.raises(errors.ServerError):
            await c.head_object("a")
        assert not c.health.down
        assert await c.head_object("a") == Absent()  # sent: the endpoint answers

    run(srv, go, attempts=3)


def test_background_probe_ends_the_outage_and_requests_flow_again():
    answering = trio.Event()

    async def server(request: httpx.Request) -> httpx.Response:
        await answering.wait()
        return httpx.Response(404)

    srv = Server(server)

    async def go(c: S3Client) -> None:
        async with trio.open_nursery() as nursery:
            c.start_background(nursery)
            with pytest.raises(errors.TransportError):
                await c.head_object("a")  # 2 attempts x 1 s
            down_at = trio.current_time()
            assert len(srv.requests) == 2
            # Probes at +0.5, +2.5, +5.5: each times out after 1 s, then waits 1, 2, 4 s.
            await trio.sleep(10)
            probes = srv.requests[2:]
            assert [(r.method, r.url.path) for r in probes] == [("HEAD", "/bkt")] * 3
            with pytest.raises(errors.EndpointDownError):
                await c.head_object("a")
            answering.set()  # the server answers again: the next probe (+10.5) is answered
            while c.health.down:
                await trio.sleep(0.01)
            assert trio.current_time() - down_at == pytest.approx(10.5, abs=0.02)
            assert len(srv.requests) == 2 + 4  # the fast failure sent nothing
            n = len(srv.requests)
            assert await c.head_object("a") == Absent()
            assert len(srv.requests) == n + 1
            await trio.sleep(60)
            assert len(srv.requests) == n + 1  # up: no more probes
            nursery.cancel_scope.cancel()

    run(srv, go, mock_clock=True, attempts=2, attempt_timeout=1.0, sleep=trio.sleep,
        endpoint_url="http://127.0.0.1:9000")


def test_attempts_on_the_wire_are_abandoned_when_the_outage_opens():
    srv = Server(hang)

    async def go(c: S3Client) -> None:
        ended: dict[str, float] = {}

        async def call(key: str, delay: float) -> None:
            await trio.sleep(delay)
            with pytest.raises(errors.TransportError) as e:
                await c.head_object(key)
            ended[key] = trio.current_time()
            if key == "late":
                assert isinstance(e.value, errors.EndpointDownError)

        async with trio.open_nursery() as n:
            n.start_soon(call, "first", 0.0)
            n.start_soon(call, "late", 2.6)  # on the wire when "first" runs out of attempts (3.0)
        assert ended["late"] == ended["first"]  # abandoned then, not 2 attempts later
        assert len(srv.requests) == 3 + 1

    run(srv, go, mock_clock=True, attempts=3, attempt_timeout=1.0, rng=lambda: 0.0,
        sleep=trio.sleep, endpoint_url="http://127.0.0.1:9000")

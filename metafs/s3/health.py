"""Endpoint health: is the endpoint answering, and if not, since when?  (A circuit breaker.)

A server that accepts connections and never answers makes every request
cost its whole budget, ``(retries + 1) * request-timeout``; a command that
revalidates a few expired names would pay it for each.  So the client asks
this module before every attempt, and tells it every outcome:

* **Up** (the normal state): requests are sent.
* **Outage.**  A request whose *every* attempt got no answer (connect
  error, reset, attempt timeout) opens an outage, logged once (as a
  warning in a mount; at start-up the failure is the command's one line
  anyway).  From then
  on requests fail at once, with no request sent, as
  :class:`~metafs.errors.EndpointDownError` naming the endpoint, since
  when and the failure that opened it.  Attempts already on the wire are
  abandoned too (:meth:`EndpointHealth.attempt`): they wait on the same
  silent server, and callers may be waiting on them (a shared HEAD, a
  listing's page).
* **Probing.**  The client probes (one HEAD Bucket, one attempt) in the
  background, ``first_probe`` seconds after the outage opened, then at
  doubling intervals up to ``max_probe``.  Without a background task (the
  start-up check, tests of the client alone) the breaker is *half-open*
  instead: once a probe is due, requests are sent again, and a failed one
  doubles the wait.
* **Up again**: any answer at all (200, 304, 404, even a 5xx) proves the
  endpoint answers and ends the outage, logged once.

Only a missing answer opens an outage.  A 5xx or a throttling answer is an
answer: it may concern one key, the endpoint is there, and its retries cost
backoff (a fraction of a second), not timeouts.

Pure bookkeeping: the clocks are injected, nothing here sends, sleeps or
knows HTTP.  The attempts it may abandon are anything with ``cancel()``
(the client's ``trio.CancelScope`` per attempt).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import logging
from collections.abc import Callable, Iterator
from typing import Protocol

from .. import errors

log = logging.getLogger(__name__)


class Cancellable(Protocol):
    def cancel(self) -> None: ...


@dataclasses.dataclass(slots=True, eq=False)  # eq=False: hashed by identity, kept in a set
class Attempt:
    """One attempt on the wire; ``abandoned`` once an outage cancelled it."""

    scope: Cancellable
    abandoned: bool = False


@dataclasses.dataclass(slots=True)
class Outage:
    """The endpoint is not answering: since when, why, and when to look again."""

    since: float  # health clock, when the failure that opened it ended
    began: _dt.datetime  # the same moment on the wall clock, for messages
    cause: str  # that failure
    probe_at: float  # when the next probe is due
    wait: float  # the wait before the probe due at ``probe_at`` (doubles on each failure)
    refused: int = 0  # requests failed fast so far


class EndpointHealth:
    """Health of one endpoint (see the module docstring).

    ``where`` names the endpoint in messages.  ``clock`` is monotonic
    seconds; ``wall`` the time shown in messages.  ``background`` says
    whether a probe task ends outages (the client sets it when it is given
    a nursery); without one the breaker is half-open.
    """

    def __init__(self, where: str, *, clock: Callable[[], float],
                 wall: Callable[[], _dt.datetime], first_probe: float = 0.5,
                 max_probe: float = 5.0) -> None:
        self.where = where
        self._clock = clock
        self._wall = wall
        self.first_probe = first_probe
        self.max_probe = max_probe
        self.background = False
        self.outage: Outage | None = None
        self.outages = 0  # opened so far
        self._inflight: set[Attempt] = set()  # bounded by the connections in use

    @property
    def down(self) -> bool:
        return self.outage is not None

    # -- before a request ----------------------------------------------------
    def admit(self, what: str) -> bool:
        """May an attempt at ``what`` be sent now?  Raise the fast failure if not.

        Returns whether the attempt is a probe (half-open: an outage's
        probe is due and no background task sends it): its failure then
        doubles the wait.
        """
        o = self.outage
        if o is None:
            return False
        if not self.background and self._clock() >= o.probe_at:
            return True
        o.refused += 1
        raise self.refusal(what)

    def refusal(self, what: str) -> errors.EndpointDownError:
        """The error of a request not sent (or abandoned) because of the outage."""
        o = self.outage
        if o is None:  # abandoned by an outage that an answer has ended since
            return errors.EndpointDownError(f"{what}: abandoned: {self.where} stopped answering")
        age = max(0.0, self._clock() - o.since)
        return errors.EndpointDownError(
            f"{what}: failed fast: {self.where} has not answered since "
            f"{o.began:%H:%M:%S} UTC ({age:.0f} s; {o.cause})")

    @contextlib.contextmanager
    def attempt(self, scope: Cancellable) -> Iterator[Attempt]:
        """Track an attempt on the wire, so that an outage opened meanwhile abandons it."""
        a = Attempt(scope)
        self._inflight.add(a)
        try:
            yield a
        finally:
            self._inflight.discard(a)

    # -- outcomes ------------------------------------------------------------------
    def answered(self) -> None:
        """An answer came back (any status): the endpoint is up."""
        o = self.outage
        if o is None:
            return
        self.outage = None
        log.log(self._level(), "%s answers again after %.1f s; %d requests failed fast meanwhile",
                    self.where, max(0.0, self._clock() - o.since), o.refused)

    def no_answer(self, cause: str, *, probe: bool) -> bool:
        """A request got no answer in any attempt (``probe``: it was a probe).

        Opens an outage if none is under way and returns True (the
        caller starts probing); a failed probe doubles the wait; a request
        that was already on the wire when the outage opened changes nothing.
        """
        now = self._clock()
        o = self.outage
        if o is None:
            self.outage = Outage(now, self._wall(), cause, now + self.first_probe, self.first_probe)
            self.outages += 1
            log.log(self._level(), "%s is not answering (%s): failing fast until it answers again, "
                        "probing every %g-%g s", self.where, cause, self.first_probe, self.max_probe)
            abandoned, self._inflight = self._inflight, set()
            for a in abandoned:
                a.abandoned = True
                a.scope.cancel()
            return True
        if probe:
            o.wait = min(self.max_probe, o.wait * 2)
            o.probe_at = now + o.wait
        return False

    def _level(self) -> int:
        """Outages are news while mounted; before that (the start-up check) the
        failure itself ends the command with its one line."""
        return logging.WARNING if self.background else logging.DEBUG

    def probe_delay(self) -> float | None:
        """Seconds until the next probe is due (0: now); None when the endpoint is up."""
        o = self.outage
        return None if o is None else max(0.0, o.probe_at - self._clock())

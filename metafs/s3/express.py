"""S3 directory-bucket sessions: when to create one, when to renew it.

Data requests to a directory bucket (HEAD Object, ListObjectsV2, GET) are
signed with keys from CreateSession (``GET /?session``, itself signed with
the IAM credentials), which S3 grants for five minutes and never refreshes.
:class:`SessionCache` keeps the current keys and asks for new ones before
the old ones run out, so no request is ever sent with an expired session:

* the lifetime is measured on the *server's* clock (``Expiration`` minus
  the answer's ``Date``, less one second because ``Date`` is truncated to
  the second) and counted down on our monotonic clock from the moment we
  asked, so a skewed local clock changes nothing;
* renewal starts ``margin`` before the end: a fifth of the lifetime, at
  most 60 s (one minute of a five-minute session), which covers the time
  a request takes to reach the server;
* concurrent callers share one CreateSession (a lock, not a request each).

The I/O (sending CreateSession through the client's retry machinery) is
injected as ``create``, so this policy is tested with a fake clock.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable

import trio

from ..signing import Credentials

log = logging.getLogger(__name__)

MAX_MARGIN = 60.0


@dataclasses.dataclass(frozen=True)
class Session:
    """Session keys and how long the server said they last (seconds)."""

    credentials: Credentials
    lifetime: float


def renewal_margin(lifetime: float) -> float:
    """How long before the end a session is renewed."""
    return min(MAX_MARGIN, max(lifetime, 0.0) / 5)


class SessionCache:
    """The current session, renewed ``renewal_margin`` before it ends."""

    def __init__(self, create: Callable[[], Awaitable[Session]],
                 clock: Callable[[], float] = trio.current_time) -> None:
        self._create = create
        self._clock = clock
        self._lock = trio.Lock()
        self._current: Credentials | None = None
        self._renew_at = 0.0
        self.created = 0  # sessions obtained so far (for logs and tests)

    def _valid(self) -> bool:
        return self._current is not None and self._clock() < self._renew_at

    async def get(self) -> Credentials:
        """Keys to sign the next data request with."""
        if self._valid():
            assert self._current is not None
            return self._current
        async with self._lock:
            if not self._valid():
                started = self._clock()
                session = await self._create()
                self._current = session.credentials
                # Counted from when we asked: the server's clock started no earlier.
                self._renew_at = started + session.lifetime - renewal_margin(session.lifetime)
                self.created += 1
                log.debug("S3 session %d obtained, valid for %.0f s", self.created, session.lifetime)
            assert self._current is not None
            return self._current

    def invalidate(self, used: Credentials) -> None:
        """The server rejected ``used`` as expired: the next get() renews.

        Only if ``used`` is still current, so that many requests failing
        together cause one renewal, not one each.
        """
        if self._current is used:
            self._renew_at = 0.0

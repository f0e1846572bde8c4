"""Single flight: concurrent callers with one key share one call's outcome.

A generic helper of the metadata layer (a name's probe, an object's HEAD):
eight processes that ``getfattr`` one file at once send one HEAD.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import trio

T = TypeVar("T")


class _Flight(Generic[T]):
    __slots__ = ("done", "result", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.result: tuple[T] | None = None  # a 1-tuple once the call returned (T may be None)
        self.error: Exception | None = None


class SingleFlight(Generic[T]):
    """Concurrent :meth:`run` calls with one key share one call's outcome.

    A caller whose leader was cancelled (its FUSE request went away) does
    not inherit the cancellation: it runs the call itself.
    """

    def __init__(self) -> None:
        self._flights: dict[Hashable, _Flight[T]] = {}

    def busy(self, key: Hashable) -> bool:
        return key in self._flights

    async def run(self, key: Hashable, fn: Callable[[], Awaitable[T]]) -> T:
        while True:
            flight = self._flights.get(key)
            if flight is None:
                break
            await flight.done.wait()
            if flight.result is not None:
                return flight.result[0]
            if flight.error is not None:
                raise flight.error
            # cancelled: run it ourselves
        flight = _Flight[T]()
        self._flights[key] = flight
        try:
            value = await fn()
            flight.result = (value,)
            return value
        except Exception as e:
            flight.error = e
            raise
        finally:
            del self._flights[key]
            flight.done.set()

"""What an object's metadata channels beside HEAD said, and until when.  Pure.

Object tags and S3 annotations change without the object's ETag changing,
so they are kept per object *and* per ETag (a new object under the key has
other tags and annotations: its entry starts empty) and trusted for the
metadata TTL, like HEAD answers:

* **Tags** have no conditional request: after the TTL they are fetched again.
* **Annotations**: after the TTL the listing is fetched again, and each
  payload already read is kept if the listing shows the same per-annotation
  ETag (an annotation without one: the same size and date); only a changed
  or new payload is fetched again, and only when it is read.

Synchronous bookkeeping only; the requests are :mod:`metafs.objects`'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from cachetools import LRUCache

from .s3.model import AnnotationEntry

TAGS = "tags"
ANNOTATIONS = "annotations"
CHANNELS = (TAGS, ANNOTATIONS)


def stamp(e: AnnotationEntry) -> str:
    """What identifies one payload of an annotation: its ETag, else its size and date."""
    return e.etag if e.etag is not None else f"{e.size}@{e.mtime}"


@dataclasses.dataclass(slots=True)
class Channels:
    """The channels of one object (at one ETag)."""

    etag: str | None
    tags: dict[str, str] | None = None
    tags_expires: float = 0.0
    annotations: list[AnnotationEntry] | None = None
    annotations_expires: float = 0.0
    # name -> (stamp, payload)
    payloads: dict[str, tuple[str, bytes]] = dataclasses.field(default_factory=dict)


class ChannelCache:
    """Channels of objects, keyed by S3 key, bounded (LRU) and trusted for ``ttl``."""

    def __init__(self, ttl: float, max_entries: int, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self.clock = clock
        self._entries: LRUCache[str, Channels] = LRUCache(max(1, max_entries))

    def _entry(self, key: str, etag: str | None) -> Channels:
        e = self._entries.get(key)
        if e is None or e.etag != etag:
            e = Channels(etag)
            self._entries[key] = e
        return e

    def known(self, key: str, etag: str | None) -> Channels | None:
        """The entry of ``key`` at ``etag``, fresh or not (None if there is none)."""
        e = self._entries.get(key)
        return e if e is not None and e.etag == etag else None

    def fresh_tags(self, key: str, etag: str | None) -> dict[str, str] | None:
        e = self.known(key, etag)
        return e.tags if e is not None and e.tags is not None and e.tags_expires > self.clock() else None

    def put_tags(self, key: str, etag: str | None, tags: dict[str, str]) -> dict[str, str]:
        e = self._entry(key, etag)
        e.tags, e.tags_expires = tags, self.clock() + self.ttl
        return tags

    def fresh_annotations(self, key: str, etag: str | None) -> list[AnnotationEntry] | None:
        e = self.known(key, etag)
        if e is None or e.annotations is None or e.annotations_expires <= self.clock():
            return None
        return e.annotations

    def put_annotations(self, key: str, etag: str | None, entries: list[AnnotationEntry]
                        ) -> list[AnnotationEntry]:
        """A new listing: payloads whose stamp it still shows are kept, the others dropped."""
        e = self._entry(key, etag)
        now = {a.name: stamp(a) for a in entries}
        e.payloads = {n: p for n, p in e.payloads.items() if now.get(n) == p[0]}
        e.annotations, e.annotations_expires = entries, self.clock() + self.ttl
        return entries

    def payload(self, key: str, etag: str | None, entry: AnnotationEntry) -> bytes | None:
        """The payload of ``entry`` if it was read at the stamp the listing shows."""
        e = self.known(key, etag)
        if e is None:
            return None
        held = e.payloads.get(entry.name)
        return held[1] if held is not None and held[0] == stamp(entry) else None

    def put_payload(self, key: str, etag: str | None, entry: AnnotationEntry, payload: bytes) -> None:
        self._entry(key, etag).payloads[entry.name] = (stamp(entry), payload)

    def expire(self, key: str) -> None:
        """Revalidate at the next use (a forced refresh): expired, payloads kept."""
        e = self._entries.get(key)
        if e is not None:
            e.tags_expires = e.annotations_expires = 0.0

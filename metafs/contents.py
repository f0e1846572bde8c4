"""File contents: sequential reads through ranged GETs, pinned to one version.

A handle remembers the key, the ETag and size seen at ``open``, and one
buffer.  A read the buffer cannot serve fetches at least ``READ_CHUNK``
bytes from the read's offset (one request serves a sequential reader for
a while); the GET carries ``If-Match: <etag>``, so an object replaced
while open fails with :class:`~metafs.errors.ChangedError` (ESTALE)
instead of mixing two versions' bytes.  A read refused because the
object needs a customer key (SSE-C) we lack fails the handle's later reads
at once, without a request (the kernel retries a failed read).
"""

from __future__ import annotations

from . import errors
from .views import View

READ_CHUNK = 1 << 20  # one ranged GET serves this much of a sequential read


class FileHandle:
    """An open file: what was seen at open, and the last chunk fetched."""

    __slots__ = ("key", "etag", "size", "buf_start", "buf", "refused")

    def __init__(self, key: str, etag: str | None, size: int) -> None:
        self.key = key
        self.etag = etag
        self.size = size
        self.buf_start = 0
        self.buf = b""
        self.refused: errors.CustomerKeyError | None = None


class FileReader:
    """Reads of open files, through one view."""

    def __init__(self, view: View, chunk: int = READ_CHUNK) -> None:
        self._view = view
        self._chunk = chunk

    async def read(self, h: FileHandle, off: int, size: int) -> bytes:
        """Bytes ``off..off+size`` of the file (fewer at its end, none past it)."""
        if off >= h.size or size <= 0:
            return b""
        end = min(off + size, h.size)
        if not (h.buf_start <= off and end <= h.buf_start + len(h.buf)):
            if h.refused is not None:
                e = h.refused
                again = errors.CustomerKeyError(e.status, e.keys, what=e.what)
                again.repeated = True
                raise again
            want = min(max(size, self._chunk), h.size - off)
            try:
                h.buf = await self._view.read(h.key, off, off + want - 1, h.etag)
            except errors.CustomerKeyError as e:
                h.refused = e
                raise
            h.buf_start = off
        return h.buf[off - h.buf_start:end - h.buf_start]

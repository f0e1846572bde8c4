"""SSE-C: the customer keys of ``--sse-c-key-file``, and which one opens each object.  Pure.

An object stored with a customer-provided key (SSE-C) answers HEAD and GET
only when the request carries that key: S3, COS and OBS take the same three
headers, each in its own namespace (the dialect's ``sse_c_prefix``)::

    <prefix>algorithm: AES256
    <prefix>key:       base64(32-byte key)
    <prefix>key-MD5:   base64(MD5(key))

Several keys may be given; metafs cannot tell from a listing which one an
object needs, so the client tries *choices* in order (:meth:`CustomerKeys.
candidates`): the one that opened this object before, then the one that
last opened any object (a bucket usually uses one key for everything), then
the others, then no key at all (a plain object; AWS refuses customer-key
headers on one).  The choice that worked is remembered per object
(:meth:`CustomerKeys.opened`, bounded), so a later HEAD, revalidation or GET
costs one request.

The key bytes never leave this module except as header values: a
:class:`CustomerKey`'s ``repr`` shows its MD5 only, and file errors name
the line, never its content.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cachetools import LRUCache

from ..errors import CredentialsError

KEY_BYTES = 32  # AES-256
ALGORITHM = "AES256"

# A choice: the index of a key, or None for a request without customer-key headers.
Choice = int | None


class CustomerKey:
    """One 256-bit key.  Its repr never shows the key (only its MD5, as servers echo it)."""

    __slots__ = ("_key", "b64", "md5")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("an SSE-C key has 32 bytes")
        self._key = key
        self.b64 = base64.b64encode(key).decode("ascii")
        self.md5 = base64.b64encode(hashlib.md5(key).digest()).decode("ascii")

    def __repr__(self) -> str:
        return f"CustomerKey(md5={self.md5})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CustomerKey) and other._key == self._key

    def __hash__(self) -> int:
        return hash(self.md5)


def parse_key_file(data: bytes, path: str) -> list[CustomerKey]:
    """The keys of a key file: 32 raw bytes, or one base64 key per line.

    A file of exactly 32 bytes is one raw key (binary bytes may contain
    newlines); otherwise each non-empty line not starting with ``#`` is
    the base64 of 32 bytes.  Errors name the line, never its content.
    """
    if len(data) == KEY_BYTES:
        return [CustomerKey(data)]
    keys: list[CustomerKey] = []
    for n, raw in enumerate(data.split(b"\n"), 1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        try:
            key = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise CredentialsError(f"SSE-C key file {path}, line {n}: not a 256-bit key "
                                   "(expected 32 raw bytes as the whole file, or base64 of "
                                   "32 bytes per line)")
        if CustomerKey(key) not in keys:
            keys.append(CustomerKey(key))
    if not keys:
        raise CredentialsError(f"SSE-C key file {path} holds no key")
    return keys


def load_key_file(path: str) -> list[CustomerKey]:
    """Read ``path`` (owner-only, like the credentials file) and parse its keys."""
    from ..credentials import read_private_file

    data, _mtime = read_private_file(path, "SSE-C key file")
    return parse_key_file(data, path)


class CustomerKeys:
    """The keys, and which choice opened each object (see the module docstring)."""

    def __init__(self, keys: list[CustomerKey], remember: int = 250_000) -> None:
        self.keys = keys
        self._opened: LRUCache[str, Choice] = LRUCache(max(1, remember))
        self._last: Choice = 0 if keys else None

    def candidates(self, obj: str) -> list[Choice]:
        """The choices to try for ``obj``, most likely first; each once; no key is the last resort."""
        order: list[Choice] = []
        if obj in self._opened:
            order.append(self._opened[obj])
        order.append(self._last)
        order.extend(range(len(self.keys)))
        order.append(None)
        return list(dict.fromkeys(order))

    def opened(self, obj: str, choice: Choice) -> None:
        """``choice`` opened ``obj``: try it first next time, for it and for unknown objects."""
        self._opened[obj] = choice
        self._last = choice

    def headers(self, choice: Choice, prefix: str) -> dict[str, str]:
        """The request headers of ``choice`` in a dialect's namespace (none for no key)."""
        if choice is None:
            return {}
        k = self.keys[choice]
        return {f"{prefix}algorithm": ALGORITHM, f"{prefix}key": k.b64, f"{prefix}key-md5": k.md5}

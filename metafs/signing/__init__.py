"""Request signing for every dialect metafs speaks.

Each provider's algorithm lives in its own module and implements the
:class:`Signer` protocol: it takes a :class:`SignableRequest` (the request
as it will go on the wire, plus the decoded bucket and key that some
dialects sign instead of the wire path) and adds the headers that
authenticate it.  Signers are pure functions of (request, credentials,
time): no I/O, no clock of their own, so they are tested against published
vectors and against each provider's official SDK.

Credentials never appear in ``repr`` and signers never log.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from typing import Protocol
from urllib.parse import quote

__all__ = ["Credentials", "SignableRequest", "Signer", "uri_encode", "EMPTY_SHA256"]

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def uri_encode(value: str, *, keep_slash: bool = False) -> str:
    """RFC 3986 percent-encoding: only ``A-Za-z0-9-_.~`` stay literal.

    This is the encoding S3, OSS and COS all put in their canonical forms
    (space is ``%20``, never ``+``).  The client uses the same function for
    the wire, so what is signed is exactly what is sent.  A key that is not
    UTF-8 holds its other bytes as lone surrogates (see :mod:`metafs.dirlist`)
    and is encoded back to exactly those bytes.
    """
    return quote(value, safe="/~" if keep_slash else "~", errors="surrogateescape")


@dataclasses.dataclass(frozen=True)
class Credentials:
    """An access key pair and optional temporary-credential token.

    ``repr`` shows only the access key id: the secret and the token must
    never reach a log line, an exception message or a process title.
    """

    access_key: str
    secret_key: str = dataclasses.field(repr=False)
    token: str | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass
class SignableRequest:
    """A request as it will be sent, in the terms signers need.

    ``path`` is the exact percent-encoded path on the wire (``/key`` for
    virtual-hosted requests, ``/bucket/key`` for path style); ``bucket`` and
    ``key`` are the decoded names, which OSS, OBS and COS sign instead of
    the wire path.  ``query`` holds decoded ``(name, value)`` pairs in wire
    order; a parameter without a value has value ``''``.  ``headers`` uses
    lowercase names; a signer adds what it needs (date, content hash,
    token, ``authorization``) in place.
    """

    method: str
    host: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str] = dataclasses.field(repr=False)  # holds authorization and tokens
    bucket: str = ""
    key: str = ""

    def query_string(self) -> str:
        """The wire form of ``query``, encoded as every signer expects."""
        return "&".join(
            f"{uri_encode(k)}={uri_encode(v)}" if v != "" else uri_encode(k)
            for k, v in self.query
        )


class Signer(Protocol):
    """Adds authentication headers to a request, in place."""

    def sign(self, req: SignableRequest, creds: Credentials, now: _dt.datetime) -> None: ...

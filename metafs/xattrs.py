"""Extended-attribute names and values.  Pure.

Naming (see SEMANTICS.md, "Extended attributes"):

* ``user.<key>``: the object's user metadata, from ``x-amz-meta-<key>``
  (and ``x-cos-meta-``, ``x-oss-meta-``, ``x-obs-meta-``), value decoded
  from RFC 2047 encoded-words to UTF-8.  A value whose bytes are not UTF-8
  is shown as those bytes, undecoded (xattr values are bytes).
* ``s3.<name>``: system metadata, in a namespace of its own so it cannot
  collide with any user key.  Standard headers keep their name
  (``s3.etag``, ``s3.content-type``, ``s3.last-modified``...); vendor
  headers lose their vendor prefix, so one name means one thing across
  providers (``x-amz-storage-class`` and ``x-oss-storage-class`` are both
  ``s3.storage-class``).  ``s3.etag`` is shown without its quotes.
* ``security.*``, ``system.*`` and ``trusted.*`` are answered locally
  with ENOTSUP and no request: ``ls -l`` probes ``security.selinux`` and
  ``system.posix_acl_*`` on every entry, and GNU ls remembers ENOTSUP per
  device and stops asking (ENODATA would cost two round trips per entry).

An object's table is built once, where its HEAD answer enters
(:func:`metafs.s3.model.meta_from_head` calls :func:`object_xattrs`), so
this module sits below the S3 layer and imports nothing from it.
"""

from __future__ import annotations

import base64
import binascii
import email.errors
import email.header
import logging
import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote

log = logging.getLogger(__name__)

META_PREFIXES = ("x-amz-meta-", "x-cos-meta-", "x-oss-meta-", "x-obs-meta-")
VENDOR_PREFIXES = ("x-amz-", "x-cos-", "x-oss-", "x-obs-")
SYSTEM_NS = "s3."
USER_NS = "user."
FOREIGN_NAMESPACES = (b"security.", b"system.", b"trusted.")
# Read by name only, never listed: each costs a request of its own (HEAD with partNumber=1),
# which listing it would add to every getfattr -d.  None for an object not uploaded in parts.
PARTS_COUNT = (SYSTEM_NS + "mp-parts-count").encode()

# Standard HTTP headers that are object metadata.
_STANDARD = frozenset({
    "etag", "content-type", "content-encoding", "content-language", "content-disposition",
    "cache-control", "expires", "last-modified", "content-md5",
})
# Vendor headers that describe the request, not the object (after the prefix).
_NOT_METADATA = frozenset({
    "request-id", "id-2", "trace-id", "requestid", "content-sha256", "sdk-checksum-algorithm",
    "server-time", "ec", "err", "api", "date", "security-token", "s3session-token",
})
# Different vendor spellings of one thing get one name (keys and values
# are after the vendor prefix; the value is the name every provider shows).
_RENAMES = {
    # CRC-64/XZ as a decimal string: COS and OSS say hash-, OBS checksum-.
    "checksum-crc64ecma": "hash-crc64ecma",
    # The KMS key of SSE-KMS: AWS says aws-kms-, COS cos-kms-, OSS nothing.
    "server-side-encryption-aws-kms-key-id": "server-side-encryption-kms-key-id",
    "server-side-encryption-cos-kms-key-id": "server-side-encryption-kms-key-id",
    "server-side-encryption-key-id": "server-side-encryption-kms-key-id",
    # OSS calls object lock WORM.
    "object-worm-mode": "object-lock-mode",
    "object-worm-retain-until-date": "object-lock-retain-until-date",
    "object-worm-legal-hold": "object-lock-legal-hold",
    # The bucket's region on HEAD Bucket: OBS says location.
    "bucket-location": "bucket-region",
}


_B_WORD = re.compile(r"=\?[^?]+\?[Bb]\?([^?]*)\?=")


def decode_rfc2047(value: str) -> str:
    """Decode ``=?charset?B|Q?...?=`` words (as S3 returns non-ASCII values).

    A value that does not decode cleanly is returned as sent: better the
    raw encoded-word than a silently emptied value (Python's base64 is
    lenient and would drop invalid characters).
    """
    if "=?" not in value:
        return value
    for m in _B_WORD.finditer(value):
        try:
            base64.b64decode(m.group(1), validate=True)
        except (ValueError, binascii.Error):
            return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, UnicodeDecodeError, email.errors.HeaderParseError):
        return value


def percent_decode(value: str) -> str:
    """Decode %XX escapes (values OBS stores as the client sent them).

    Escaped bytes that are not UTF-8 stay bytes (as surrogates, see
    :func:`object_xattrs`), as they would unescaped, rather than become U+FFFD.
    """
    return unquote(value, errors="surrogateescape") if "%" in value else value


def _is_text(value: str) -> bool:
    """Whether ``value`` came from valid UTF-8 (it holds no surrogate-escaped byte)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_foreign(name: bytes) -> bool:
    """Names answered locally with ENOTSUP (see the module docstring)."""
    return name.startswith(FOREIGN_NAMESPACES)


def system_name(header: str) -> str | None:
    """The ``s3.*`` name of a response header, or None if it is not metadata."""
    if header in _STANDARD:
        return SYSTEM_NS + header
    for p in VENDOR_PREFIXES:
        if header.startswith(p):
            rest = header[len(p):]
            if rest in _NOT_METADATA:
                return None
            return SYSTEM_NS + _RENAMES.get(rest, rest)
    return None


def object_xattrs(headers: Iterable[tuple[str, str]], *, percent_decode_values: bool = False,
                  key: str = "") -> dict[bytes, bytes]:
    """All xattrs of an object from its HEAD response headers (lowercase names).

    Repeated headers are joined with ``,`` as HTTP allows.  With
    ``percent_decode_values`` (the dialect's rule, OBS), user-metadata
    values are percent-decoded first.  A value that was not UTF-8 on the
    wire arrives with its bytes as lone surrogates
    (:func:`metafs.s3.model.decode_headers`) and is kept as those bytes:
    decoding what is not text would only invent characters.  A
    user-metadata header with an empty name (``x-amz-meta-``) is left out
    with one log line naming ``key``: ``user.`` is no xattr name a tool can
    ask for.  Called once per HEAD answer, by
    :func:`metafs.s3.model.meta_from_head`.
    """
    out: dict[bytes, bytes] = {}
    for h, v in headers:
        name: str | None = None
        for p in META_PREFIXES:
            if h.startswith(p):
                if h == p:
                    log.warning("leaving out user metadata %r of %r: it has an empty name", h, key)
                    break
                name = USER_NS + h[len(p):]
                if _is_text(v):
                    v = decode_rfc2047(percent_decode(v) if percent_decode_values else v)
                break
        else:
            if h.startswith("x-") or h in _STANDARD:
                name = system_name(h)
                if name == "s3.etag":
                    v = v.strip('"')
        if name is None:
            continue
        bname = name.encode("utf-8")
        bval = v.encode("utf-8", "surrogateescape")
        out[bname] = out[bname] + b"," + bval if bname in out else bval
    return out


def bucket_xattrs(headers: Mapping[str, str], extra: Mapping[str, str]) -> dict[bytes, bytes]:
    """Xattrs of the mount root: the HEAD Bucket answer plus what we know."""
    out = {k.encode(): v.encode("utf-8") for k, v in extra.items()}
    for h, v in headers.items():
        name = system_name(h)
        if name is not None and h not in _STANDARD:
            out[name.encode()] = v.encode("utf-8", "surrogateescape")
    return out

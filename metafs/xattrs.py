"""Extended-attribute names and values.  Pure.

Naming (see SEMANTICS.md, "Extended attributes"):

* ``user.<key>``: the object's user metadata, from ``x-amz-meta-<key>``
  (and ``x-cos-meta-``, ``x-oss-meta-``, ``x-obs-meta-``), value decoded
  from RFC 2047 encoded-words to UTF-8.  A value whose bytes are not UTF-8
  is shown as those bytes, undecoded (xattr values are bytes).
  A key beginning with ``s3.`` is ``user.s3.meta.<key>`` instead, so no
  user key can take a name metafs uses; every key is also readable (not
  listed) as ``user.s3.meta.<key>``.
* ``user.s3.<name>``: system metadata, under ``user.`` so that ``cp -a``,
  ``rsync -aX`` and ``tar --xattrs`` can copy it to a local filesystem
  (no local filesystem takes a namespace of its own).  Standard headers
  keep their name (``user.s3.etag``, ``user.s3.content-type``...); vendor
  headers lose their vendor prefix, so one name means one thing across
  providers (``x-amz-storage-class`` and ``x-oss-storage-class`` are both
  ``user.s3.storage-class``).  ``user.s3.etag`` is shown without its
  quotes.  The names of the previous release, ``s3.<name>`` (and
  ``metafs.<figure>`` on the root), stay readable by name, not listed.
* ``user.s3.tag.<key>``: object tags; ``user.s3.annotation.<name>``: S3
  annotations (see :func:`place_annotations` for the ones that do not
  fit an xattr); ``user.mime_type`` and ``user.xdg.origin.url``: the
  freedesktop.org names, when no user-metadata key has them
  (:func:`compose`).
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
USER_NS = "user."
SYSTEM_NS = "user.s3."
LEGACY_SYSTEM_NS = "s3."  # the previous release's system names: readable by name, not listed
META_NS = SYSTEM_NS + "meta."  # every user-metadata key, by name; listed for keys beginning "s3."
TAG_NS = SYSTEM_NS + "tag."
ANNOTATION_NS = SYSTEM_NS + "annotation."
ANNOTATIONS_ELSEWHERE = SYSTEM_NS + "annotations-elsewhere"
TAGGING_COUNT = SYSTEM_NS + "tagging-count"  # x-amz-tagging-count, x-oss-tagging-count...
SSE_C = SYSTEM_NS + "server-side-encryption-customer-algorithm"
FIGURES_NS = USER_NS + "metafs."  # the root's live figures
LEGACY_FIGURES_NS = "metafs."
MIME_TYPE = USER_NS + "mime_type"  # freedesktop.org: what curl --xattr and Apache write
ORIGIN_URL = USER_NS + "xdg.origin.url"  # freedesktop.org: where the file came from
# <linux/limits.h>
XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 65536
XATTR_LIST_MAX = 65536
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


def user_meta_name(key: str) -> str:
    """The listed name of user-metadata key ``key``: ``user.<key>``, or
    ``user.s3.meta.<key>`` for a key beginning with ``s3.`` (which
    ``user.s3.`` names of metafs's own would otherwise shadow)."""
    return (META_NS if key.startswith(LEGACY_SYSTEM_NS) else USER_NS) + key


def system_name(header: str) -> str | None:
    """The ``user.s3.*`` name of a response header, or None if it is not metadata."""
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
                name = user_meta_name(h[len(p):])
                if _is_text(v):
                    v = decode_rfc2047(percent_decode(v) if percent_decode_values else v)
                break
        else:
            if h.startswith("x-") or h in _STANDARD:
                name = system_name(h)
                if name == SYSTEM_NS + "etag":
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


# -- composing an object's table from its channels ------------------------------------------
def legacy_name(name: bytes) -> bytes | None:
    """The current name of a previous release's name (``s3.etag`` -> ``user.s3.etag``), else None."""
    for old, new in ((LEGACY_SYSTEM_NS, SYSTEM_NS), (LEGACY_FIGURES_NS, FIGURES_NS)):
        if name.startswith(old.encode()):
            return new.encode() + name[len(old):]
    return None


def lookup(table: Mapping[bytes, bytes], name: bytes) -> bytes | None:
    """``name`` in ``table``, or under its current name if it is a previous release's."""
    value = table.get(name)
    if value is None and (current := legacy_name(name)) is not None:
        value = table.get(current)
    return value


def channel_of(name: bytes) -> str:
    """Which channel answers ``name``: ``tags``, ``annotations`` or ``head`` (everything else)."""
    if name.startswith(TAG_NS.encode()):
        return "tags"
    if name.startswith(ANNOTATION_NS.encode()) or name == ANNOTATIONS_ELSEWHERE.encode():
        return "annotations"
    return "head"


def head_xattrs(head: Mapping[bytes, bytes], origin_url: str | None) -> dict[bytes, bytes]:
    """The HEAD channel as listed: the HEAD table plus the freedesktop.org aliases.

    ``user.mime_type`` is the Content-Type and ``user.xdg.origin.url`` the
    object's URL, each only when no user-metadata key has that name (user
    metadata wins: it is what a tool wrote there).
    """
    out = dict(head)
    ctype = head.get((SYSTEM_NS + "content-type").encode())
    if ctype is not None:
        out.setdefault(MIME_TYPE.encode(), ctype)
    if origin_url is not None:
        out.setdefault(ORIGIN_URL.encode(), origin_url.encode("utf-8", "surrogateescape"))
    return out


def head_value(head: Mapping[bytes, bytes], origin_url: str | None, name: bytes) -> bytes | None:
    """One HEAD-channel value by name: listed names, previous release's names, and
    ``user.s3.meta.<key>`` for every user-metadata key."""
    return head_lookup(head_xattrs(head, origin_url), head, name)


def head_lookup(listed: Mapping[bytes, bytes], head: Mapping[bytes, bytes], name: bytes
                ) -> bytes | None:
    """:func:`head_value` in ``listed``, the table :func:`head_xattrs` composed from ``head``."""
    value = lookup(listed, name)
    meta = META_NS.encode()
    if value is None and name.startswith(meta):
        # Not listed twice: user.<key> is the listed name of a key not beginning "s3.".
        # Every user.* name in the HEAD table is user metadata (system names are user.s3.*).
        value = head.get(USER_NS.encode() + name[len(meta):])
    return value


def tag_xattrs(tags: Mapping[str, str], key: str = "") -> dict[bytes, bytes]:
    """``user.s3.tag.<tag key>`` for each tag whose name fits an xattr name.

    An S3 tag key may have 128 UTF-16 units, up to 512 bytes of UTF-8: such
    a tag is left out, with one log line naming it.
    """
    out: dict[bytes, bytes] = {}
    for k, v in tags.items():
        name = (TAG_NS + k).encode("utf-8", "surrogateescape")
        if len(name) > XATTR_NAME_MAX:
            log.warning("tag %r of %r is not shown: its xattr name would exceed %d bytes",
                        k, key, XATTR_NAME_MAX)
            continue
        out[name] = v.encode("utf-8", "surrogateescape")
    return out


def annotation_name(name: str) -> bytes:
    """The xattr name of the annotation ``name`` (it may be too long to be one)."""
    return (ANNOTATION_NS + name).encode("utf-8", "surrogateescape")


def place_annotations(entries: Iterable[tuple[str, int]], used: int) -> tuple[list[str], list[str]]:
    """Split annotations (name, size) into those shown as xattrs and those shown only as files.

    An annotation is an xattr when its name fits ``XATTR_NAME_MAX`` bytes,
    its payload ``XATTR_SIZE_MAX``, and its name the ``listxattr`` answer,
    of which ``used`` bytes are taken by the other channels (room is kept
    for ``user.s3.annotations-elsewhere``, the entry that says where the
    others are).  Order is kept: the first annotations that fit are shown.
    """
    budget = XATTR_LIST_MAX - used - (len(ANNOTATIONS_ELSEWHERE) + 1)
    fits: list[str] = []
    elsewhere: list[str] = []
    for name, size in entries:
        n = len(annotation_name(name)) + 1
        if n - 1 > XATTR_NAME_MAX or size > XATTR_SIZE_MAX or n > budget:
            elsewhere.append(name)
        else:
            fits.append(name)
            budget -= n
    return fits, elsewhere


def elsewhere_note(count: int, where: str) -> bytes:
    """The value of ``user.s3.annotations-elsewhere``: how many, and the directory that has them."""
    return f"{count} annotation{'s' if count != 1 else ''} too large for xattrs: read {where}".encode(
        "utf-8", "surrogateescape")


def listed_size(names: Iterable[bytes]) -> int:
    """Bytes of a ``listxattr`` answer naming ``names`` (each NUL-terminated)."""
    return sum(len(n) + 1 for n in names)

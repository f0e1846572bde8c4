"""What the S3 layer hands up: object metadata, HEAD outcomes and listing pages.

Pure parsing, no I/O.  The two sources of object metadata, a listing
entry and a HEAD response, produce the same :class:`ObjectMeta`, with
``mtime`` truncated to whole seconds in both, so ``stat`` never flips
between values depending on which request filled the cache.

A HEAD answer is normalised once, here: :func:`meta_from_head` decodes
its header block (:func:`decode_headers`, each value on its own) and builds
the object's whole xattr table (:func:`metafs.xattrs.object_xattrs`, with
the dialect's value-decoding rule), so the layers above look names up in
``ObjectMeta.xattrs`` and never see headers or dialect flags.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime
import email.utils
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, TypeAlias
from urllib.parse import unquote, unquote_plus

from ..errors import MalformedResponseError
from ..xattrs import object_xattrs

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET


class ObjectMeta:
    """Metadata of one object.

    ``xattrs`` is ``None`` for an entry known only from a listing; a HEAD
    fills it with the object's xattr table (user and system metadata).
    ``etag`` is kept exactly as the server sent it (quotes, case) because
    revalidation sends it back.

    A plain class rather than a dataclass only so that the usual ETag (an
    MD5 as ``"<32 lowercase hex digits>"``) is held as its 16 bytes: a
    listing holds one per entry, and the string costs 83 bytes where the
    bytes cost 49 (see README, memory).  ``etag`` gives back the exact text.
    """

    __slots__ = ("key", "size", "mtime", "_etag", "xattrs")
    __match_args__ = ("key", "size", "mtime", "etag", "xattrs")

    def __init__(self, key: str, size: int, mtime: int, etag: str | None,
                 xattrs: dict[bytes, bytes] | None = None) -> None:
        self.key = key
        self.size = size
        self.mtime = mtime  # seconds since the epoch
        self.etag = etag
        self.xattrs = xattrs  # None: known from a listing only; a HEAD fills it

    @property
    def etag(self) -> str | None:
        e = self._etag
        return '"' + e.hex() + '"' if isinstance(e, bytes) else e

    @etag.setter
    def etag(self, value: str | None) -> None:
        self._etag: bytes | str | None = value
        if value is not None and len(value) == 34 and value[0] == '"' == value[-1]:
            hexdigits = value[1:-1]
            if _LOWER_HEX.fullmatch(hexdigits):
                self._etag = bytes.fromhex(hexdigits)

    @classmethod
    def listed(cls, key: str, size: int, mtime: int, digest: bytes) -> ObjectMeta:
        """A listing's entry whose ETag is the usual MD5 ``digest`` (see :meth:`digest`)."""
        m = cls.__new__(cls)
        m.key, m.size, m.mtime, m._etag, m.xattrs = key, size, mtime, digest, None
        return m

    def digest(self) -> bytes | None:
        """The 16 bytes of the usual ETag (``"<32 lowercase hex digits>"``); None for any other."""
        e = self._etag
        return e if isinstance(e, bytes) else None

    def _fields(self) -> tuple[object, ...]:
        return (self.key, self.size, self.mtime, self.etag, self.xattrs)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, ObjectMeta)
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass it was

    def __repr__(self) -> str:
        return (f"ObjectMeta(key={self.key!r}, size={self.size!r}, mtime={self.mtime!r}, "
                f"etag={self.etag!r}, xattrs={self.xattrs!r})")


_LOWER_HEX = re.compile(r"[0-9a-f]{32}")


@dataclasses.dataclass(frozen=True, slots=True)
class Fresh:
    """HEAD answered 200: the object's current metadata."""

    meta: ObjectMeta


@dataclasses.dataclass(frozen=True, slots=True)
class NotModified:
    """HEAD answered 304: the ETag sent as If-None-Match is still current."""


@dataclasses.dataclass(frozen=True, slots=True)
class Absent:
    """HEAD answered 404: no such object (a COS delete marker included)."""


# The outcome of a (conditional) HEAD Object; any other answer is an exception.
HeadOutcome: TypeAlias = Fresh | NotModified | Absent


@dataclasses.dataclass(slots=True)
class ListPage:
    """One page of a delimiter listing, keys decoded."""

    objects: list[ObjectMeta]
    prefixes: list[str]
    truncated: bool
    next_token: str | None  # continuation-token (V2) or marker (V1)


def parse_http_date(value: str | None) -> int:
    """Seconds since the epoch of an RFC 7231 date; 0 if absent or invalid."""
    if not value:
        return 0
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0
    if dt.tzinfo is None:  # asctime and '-0000' forms: HTTP dates are always GMT
        dt = dt.replace(tzinfo=datetime.UTC)
    return int(dt.timestamp())


def parse_iso8601(value: str) -> int:
    """Seconds since the epoch of a listing's ``2020-12-10T03:37:30.000Z``.

    Fractions are dropped (truncated, as HEAD's ``Last-Modified`` is).
    """
    v = value.strip()
    try:
        date, _, clock = v.partition("T")
        y, mo, d = (int(x) for x in date.split("-"))
        clock = clock.rstrip("Z")
        offset = 0
        for sign in ("+", "-"):
            if sign in clock:
                clock, _, off = clock.partition(sign)
                hh, _, mm = off.partition(":")
                offset = (int(hh) * 3600 + int(mm or 0) * 60) * (1 if sign == "+" else -1)
        hms = clock.split(".")[0].split(":")
        h, mi, s = int(hms[0]), int(hms[1]), int(hms[2])
        # timegm checks the month and day (ValueError for month 13 or day 0).
        return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) - offset
    except (ValueError, IndexError) as e:
        raise MalformedResponseError(f"bad timestamp in listing: {value!r}") from e


def decode_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """Response headers from their bytes (``httpx.Headers.raw``): lowercase names, each
    value decoded on its own.

    A value is read as UTF-8; bytes that are not UTF-8 are kept as lone
    surrogates (``surrogateescape``, as ``os.fsdecode`` does), so encoding the
    value back gives exactly the bytes that were sent.  httpx instead decodes
    the whole block with one encoding, Latin-1 as soon as any value is not
    UTF-8: one bad header turned its neighbour's ``café`` into ``cafÃ©``.
    Names are tokens, which the HTTP parser (h11) has already checked are ASCII.
    """
    return [(name.decode("latin-1").lower(), value.decode("utf-8", "surrogateescape"))
            for name, value in raw]


def meta_from_head(key: str, raw_headers: Sequence[tuple[bytes, bytes]], *,
                   percent_decode_values: bool) -> ObjectMeta:
    """Build metadata, xattr table included, from HEAD Object response headers.

    ``raw_headers`` are the answer's headers as bytes, repeated ones as they
    came (see :func:`decode_headers`); ``percent_decode_values`` is the
    dialect's rule for user-metadata values (see
    :class:`~metafs.s3.dialects.Dialect`).
    """
    headers = decode_headers(raw_headers)
    h = dict(headers)
    try:
        size = int(h.get("content-length", "0"))
    except ValueError as e:
        raise MalformedResponseError(f"bad Content-Length for {key!r}") from e
    etag = h.get("etag")
    if etag is not None and not etag.isascii():
        # It goes back in If-None-Match/If-Match, and httpx sends only ASCII
        # header values: without it revalidation is a plain HEAD and reads are
        # not pinned, instead of every later request failing.  s3.etag still shows it.
        etag = None
    return ObjectMeta(key, size, parse_http_date(h.get("last-modified")), etag,
                      object_xattrs(headers, percent_decode_values=percent_decode_values, key=key))


def _ns(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse_list(body: bytes, *, version: int, plus_is_space: bool = True) -> ListPage:
    """Parse a ListObjectsV2 (``version=2``) or ListObjects V1 (``version=1``) response.

    The version decides where the next page starts, and only that: V2 goes
    on with ``NextContinuationToken`` alone (an opaque token: a key in its
    place is refused by S3, so a truncated V2 page without one has no way
    forward and ``next_token`` stays None, for the listing to refuse); V1
    goes on with ``NextMarker``, else the last key or prefix of the page,
    as the V1 API documents.

    Keys are URL-decoded only when the response says ``EncodingType=url``:
    a server that ignored ``encoding-type`` sent them raw, and decoding a
    raw ``%`` would corrupt the key.  S3 encodes a space as ``+`` (hence
    ``unquote_plus``, as botocore and the OBS SDK do); a literal ``+``
    arrives as ``%2B``.  COS and OSS document ``%20`` and their SDKs decode
    with plain ``unquote``, so for them (``plus_is_space=False``) a ``+``
    is a ``+``, whether or not the server escaped it.  Decoded bytes that
    are not UTF-8 become lone surrogates (``surrogateescape``), so such a
    key keeps its exact bytes (see :mod:`metafs.dirlist`).

    The document is read by :func:`_scan_list_fast` when it can (a page is
    parsed per 1,000 names, and building an ElementTree was most of an
    ``ls -l``'s CPU), else by :func:`_scan_list_tree`; both give the same
    :class:`_RawListing`, and anything after that is shared.
    """
    raw = _scan_list_fast(body)
    if raw is None:
        raw = _scan_list_tree(body)
    return _build_page(raw, version=version, plus_is_space=plus_is_space)


@dataclasses.dataclass(slots=True)
class _RawListing:
    """A listing document's content, text as sent (XML entities resolved, nothing decoded).

    ``objects`` holds each ``<Contents>``'s (Key, LastModified, ETag, Size),
    None for a child that is absent; ``fields`` the other children of the
    root by name (the last one wins), each its text.
    """

    fields: dict[str, str]
    objects: list[tuple[str | None, str | None, str | None, str | None]]
    prefixes: list[str]


def _scan_list_tree(body: bytes) -> _RawListing:
    """The reference reader: ElementTree; raises every listing error a malformed document gets."""
    try:
        root = _fromstring(body)
    except SyntaxError as e:
        raise MalformedResponseError(f"listing is not valid XML: {e}") from e
    if _ns(root.tag) != "ListBucketResult":
        raise MalformedResponseError(f"unexpected listing root element <{_ns(root.tag)}>")
    raw = _RawListing({}, [], [])
    for child in root:
        tag = _ns(child.tag)
        if tag == "Contents":
            o = {_ns(c.tag): (c.text or "") for c in child}
            raw.objects.append((o.get("Key"), o.get("LastModified"), o.get("ETag"), o.get("Size")))
        elif tag == "CommonPrefixes":
            for c in child:
                if _ns(c.tag) == "Prefix":
                    raw.prefixes.append(c.text or "")
        else:
            raw.fields[tag] = child.text or ""
    return raw


# -- the fast reader ---------------------------------------------------------------------------
# Expat (C, no handlers, namespace processing on as ElementTree has it) proves the document
# well-formed; the regexes below then read it, and only documents of the plain shape every
# server sends: no comment, CDATA, DOCTYPE or processing instruction ("<!", "<?" after the
# declaration), no attribute but the root's xmlns, no namespace prefix, no CR (which XML turns
# into LF), UTF-8.  Anything else, and any part of the root's content the patterns do not
# match exactly (caught by the ``junk`` group), sends the page to the ElementTree reader.
_FAST_HEAD = re.compile(
    r"""(?:<\?xml\ version=(["'])1\.[0-9]+\1(?:\ encoding=(["'])(?i:utf-?8)\2)?"""
    r"""(?:\ standalone=(["'])(?:yes|no)\3)?\ ?\?>)?[ \t\n]*"""
    r"""<ListBucketResult(?:[ \t\n]+xmlns=(?:"[^"<&]*"|'[^'<&]*'))?[ \t\n]*>""")
_FAST_TAIL = re.compile(r"</ListBucketResult[ \t\n]*>[ \t\n]*\Z")
# A <Contents>: the groups Key, LastModified, ETag and Size keep the last of their kind, as
# the tree reader's dict does, with their tags ("<Key/>" or "<Key>text</Key>"), so that an
# absent child (findall's "") differs from an empty one; other children are a leaf, an empty
# element, or one level of leaves (<Owner>).  One of the four with children does not match.
_FOUR = r"(?:Key|LastModified|ETag|Size)"
_LEAF = r"<(?P<{g}>\w+)>[^<]*</(?P={g})>"
# The usual order (moto, RGW, AWS): Key, LastModified, ETag, [Checksum*], Size, then anything
# that holds none of the four nor a Contents tag (ElementTree ignores the rest); read first.
_REST = r"[^<]*(?:<(?!/?(?:Key|LastModified|ETag|Size|Contents)[ \t\n/>])[^<]*)*"
_FAST_ITEM = re.compile(
    r"(?P<u><Contents>)[ \t\n]*<Key>(?P<ukey>[^<]*)</Key>[ \t\n]*"
    r"<LastModified>(?P<ulm>[^<]*)</LastModified>[ \t\n]*"
    r"<ETag>(?:&quot;(?P<md5>[0-9a-f]{32})&quot;|(?P<uetag>[^<]*))</ETag>[ \t\n]*"
    r"(?:<Checksum\w*>[^<]*</Checksum\w*>[ \t\n]*)*<Size>(?P<usize>[^<]*)</Size>"
    rf"{_REST}</Contents>"
    r"|(?P<c><Contents>)(?:[ \t\n]*(?:"
    r"(?P<key><Key(?:/>|>[^<]*</Key>))"
    r"|(?P<lm><LastModified(?:/>|>[^<]*</LastModified>))"
    r"|(?P<etag><ETag(?:/>|>[^<]*</ETag>))"
    r"|(?P<size><Size(?:/>|>[^<]*</Size>))"
    rf"|<(?!{_FOUR}[/>])(?P<o>\w+)>(?:[^<]*|(?:[ \t\n]*(?:{_LEAF.format(g='i')}|<\w+/>))*[ \t\n]*)"
    r"</(?P=o)>"
    rf"|<(?!{_FOUR}/>)\w+/>"
    r"))*[ \t\n]*</Contents>"
    r"|<CommonPrefixes>[ \t\n]*(?P<prefix><Prefix(?:/>|>[^<]*</Prefix>))[ \t\n]*</CommonPrefixes>"
    r"|<(?!(?:Contents|CommonPrefixes)[/>])(?P<name>\w+)>(?P<text>[^<]*)</(?P=name)>"
    r"|<(?!(?:Contents|CommonPrefixes)/>)(?P<empty>\w+)/>"
    r"|[ \t\n]+"
    r"|(?P<junk>.)", re.S)
_ENTITY = re.compile(r"&(?:#x([0-9A-Fa-f]+)|#([0-9]+)|(amp|lt|gt|quot|apos));")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


def _entity(m: re.Match[str]) -> str:
    hexa, dec, name = m.groups()
    if name:
        return _NAMED[name]
    return chr(int(hexa, 16) if hexa else int(dec))


def _text(s: str) -> str:
    """``s`` with its entity and character references resolved (expat has checked them)."""
    if "&" not in s:
        return s
    if "&#" in s:
        return _ENTITY.sub(_entity, s)
    # "&amp;" last, so that "&amp;lt;" stays "&lt;".
    return (s.replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
            .replace("&apos;", "'").replace("&amp;", "&"))


def _scan_list_fast(body: bytes) -> _RawListing | None:
    """The document's content read with regexes; None when it is not of the plain shape
    (see above) or not well-formed, for the tree reader to read, or refuse, it."""
    if b"<!" in body or b"\r" in body or body.find(b"<?", 1) >= 0:
        return None
    from xml.parsers.expat import ExpatError, ParserCreate

    try:
        ParserCreate(None, "}").Parse(body, True)
        text = body.decode("utf-8")
    except (ExpatError, UnicodeDecodeError):
        return None
    head = _FAST_HEAD.match(text)
    tail = _FAST_TAIL.search(text, head.end()) if head else None
    if head is None or tail is None:
        return None
    raw = _RawListing({}, [], [])
    objects, prefixes, fields = raw.objects, raw.prefixes, raw.fields
    for (usual, ukey, ulm, md5, uetag, usize, contents, key, lm, etag, size, _o, _i, prefix, name,
         value, empty, junk) in _FAST_ITEM.findall(text, head.end(), tail.start()):
        if usual:
            if "&" in ukey:
                ukey = _text(ukey)
            if md5:
                uetag = '"' + md5 + '"'
            elif "&" in uetag:
                uetag = _text(uetag)
            if "&" in ulm:
                ulm = _text(ulm)
            if "&" in usize:
                usize = _text(usize)
            objects.append((ukey, ulm, uetag, usize))
        elif contents:  # any other order, or duplicated or empty children
            k = key[5:-6] if key else None
            if k and "&" in k:
                k = _text(k)
            e = etag[6:-7] if etag else None
            if e and "&" in e:
                e = _text(e)
            objects.append((k, _text(lm[14:-15]) if lm else None, e,
                            _text(size[6:-7]) if size else None))
        elif prefix:
            prefixes.append(_text(prefix[8:-9]))
        elif name:
            fields[name] = _text(value)
        elif empty:
            fields[empty] = ""
        elif junk:
            return None
    return raw


def _build_page(raw: _RawListing, *, version: int, plus_is_space: bool) -> ListPage:
    fields = raw.fields
    encoded = fields.get("EncodingType", "").lower() == "url"
    dec: Callable[[str], str]
    if not encoded:
        dec = _raw
    elif plus_is_space:
        dec = _unquote_plus
    else:
        dec = _unquote
    objects = []
    # Objects written in one second share LastModified: parsed once a page, and one int
    # object for all of them (32 bytes an entry a listing no longer holds).  Servers that
    # send milliseconds (Ceph RGW) share the second: a stamp of the usual shape is
    # looked up without its fraction.
    stamps: dict[str, int] = {}
    seconds: dict[str, int] = {}  # plain stamps, by their first 19 characters
    # A page's stamps mostly differ only in minutes and seconds, on which parse_iso8601 is
    # linear: a plain stamp is its hour's seconds (parsed once a page) plus mm * 60 + ss.
    hours: dict[str, int] = {}
    # Decoding leaves a key without "%" (and, for unquote_plus, "+") as it is.
    plain = "%+" if dec is _unquote_plus else "%"
    listed, digest_of = ObjectMeta.listed, bytes.fromhex
    for key, stamp, etag, size_text in raw.objects:
        if key is None:
            raise MalformedResponseError("listing entry without <Key>")
        try:
            size = int(size_text) if size_text is not None else 0
        except ValueError as e:
            raise MalformedResponseError(f"bad <Size> in listing: {size_text!r}") from e
        if stamp is None:
            stamp = ""
        if _STAMP.fullmatch(stamp):
            if (mtime := seconds.get(second := stamp[:19])) is None:
                if (base := hours.get(hour := stamp[:13])) is None:
                    base = hours[hour] = parse_iso8601(hour + ":00:00Z")
                mtime = seconds[second] = base + int(stamp[14:16]) * 60 + int(stamp[17:19])
        elif (mtime := stamps.get(stamp)) is None:
            mtime = stamps[stamp] = parse_iso8601(stamp) if stamp else 0
        if dec is not _raw and (plain[0] in key or plain[-1] in key):
            key = dec(key)
        if etag is not None and len(etag) == 34 and etag[0] == '"' == etag[-1] \
                and _LOWER_HEX.fullmatch(etag, 1, 33):
            objects.append(listed(key, size, mtime, digest_of(etag[1:33])))
        else:
            objects.append(ObjectMeta(key, size, mtime, etag or None))
    truncated = fields.get("IsTruncated", "false").lower() == "true"
    prefixes = [dec(p) for p in raw.prefixes]
    token: str | None = None
    if version == 2:
        token = fields.get("NextContinuationToken") or None
    elif truncated:
        # V1: NextMarker if given, else the last key (as the spec says).
        marker = fields.get("NextMarker")
        if marker:
            token = dec(marker)
        elif objects or prefixes:
            token = max([o.key for o in objects] + prefixes,
                        key=lambda k: k.encode("utf-8", "surrogateescape"))  # the server's order
    return ListPage(objects, prefixes, truncated, token)


# A listing stamp of the usual shape, with or without a fraction of a second (which
# parse_iso8601 drops): the first 19 characters decide its value.
_STAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?Z")


def _raw(s: str) -> str:
    return s


def _unquote(s: str) -> str:
    return unquote(s, errors="surrogateescape")


def _unquote_plus(s: str) -> str:
    return unquote_plus(s, errors="surrogateescape")


def error_fields(body: bytes) -> dict[str, str]:
    """The child elements of an ``<Error>`` document; ``{}`` if it is none.

    All four providers use this shape (``Code``, ``Message``, ``RequestId``
    plus their own: S3's ``Region``, OSS's ``Endpoint`` and ``EC``...).
    """
    if not body or not body.lstrip().startswith(b"<"):
        return {}
    try:
        root = _fromstring(body)
    except SyntaxError:
        return {}
    if _ns(root.tag) != "Error":
        return {}
    return {_ns(c.tag): (c.text or "") for c in root}


def _fromstring(body: bytes) -> ET.Element:
    """``ElementTree.fromstring``; its ``ParseError`` is a ``SyntaxError``.

    Imported at the first XML answer, not with this module: a mount is live
    before any (its bucket check is a HEAD; issue 12, target 6).
    """
    from xml.etree.ElementTree import fromstring

    return fromstring(body)


def _xml_root(body: bytes, what: str) -> ET.Element:
    try:
        return _fromstring(body)
    except SyntaxError as e:
        raise MalformedResponseError(f"{what} is not valid XML: {e}") from e


def parse_location(body: bytes) -> str:
    """The region of a GetBucketLocation answer (``<LocationConstraint>``, OBS ``<Location>``)."""
    root = _xml_root(body, "bucket location")
    if _ns(root.tag) not in ("LocationConstraint", "Location", "CreateBucketConfiguration"):
        raise MalformedResponseError(f"unexpected location root element <{_ns(root.tag)}>")
    if _ns(root.tag) == "CreateBucketConfiguration":
        root = next((c for c in root if _ns(c.tag) in ("LocationConstraint", "Location")), root)
    return (root.text or "").strip()


@dataclasses.dataclass(frozen=True)
class SessionKeys:
    """CreateSession's answer (S3 directory buckets); never logged."""

    access_key: str
    secret_key: str = dataclasses.field(repr=False)
    token: str = dataclasses.field(repr=False)
    expiration: int  # seconds since the epoch, server clock


def parse_create_session(body: bytes) -> SessionKeys:
    """``<CreateSessionResult><Credentials>…`` -> :class:`SessionKeys`."""
    root = _xml_root(body, "CreateSession answer")
    creds = next((c for c in root.iter() if _ns(c.tag) == "Credentials"), None)
    if _ns(root.tag) != "CreateSessionResult" or creds is None:
        raise MalformedResponseError(f"unexpected CreateSession root element <{_ns(root.tag)}>")
    vals = {_ns(c.tag): (c.text or "").strip() for c in creds}
    missing = [n for n in ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")
               if not vals.get(n)]
    if missing:
        raise MalformedResponseError(f"CreateSession answer without {', '.join(missing)}")
    return SessionKeys(vals["AccessKeyId"], vals["SecretAccessKey"], vals["SessionToken"],
                       parse_iso8601(vals["Expiration"]))


# -- metadata channels: object tags and S3 annotations ------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class Denied:
    """The caller may not read this channel (403): the other metadata is still shown."""


@dataclasses.dataclass(frozen=True, slots=True)
class Unsupported:
    """The endpoint does not speak this channel's API (e.g. annotations on a non-AWS server)."""

    why: str


@dataclasses.dataclass(frozen=True, slots=True)
class AnnotationEntry:
    """One entry of a ListObjectAnnotations page."""

    name: str
    size: int
    etag: str | None  # the annotation's own ETag: it changes when the payload does
    mtime: int


@dataclasses.dataclass(frozen=True, slots=True)
class AnnotationPage:
    """One ListObjectAnnotations page; ``next_token`` None on the last."""

    entries: list[AnnotationEntry]
    next_token: str | None


def parse_tagging(body: bytes) -> dict[str, str]:
    """``<Tagging><TagSet><Tag><Key/><Value/></Tag>…`` (all four providers), in order.

    Namespaces are ignored (OBS sends its own); an empty ``<Value/>`` is ``""``.
    """
    root = _xml_root(body, "tagging")
    if _ns(root.tag) != "Tagging":
        raise MalformedResponseError(f"unexpected tagging root element <{_ns(root.tag)}>")
    tags: dict[str, str] = {}
    for tag_set in root:
        if _ns(tag_set.tag) != "TagSet":
            continue
        for tag in tag_set:
            if _ns(tag.tag) != "Tag":
                continue
            fields = {_ns(c.tag): (c.text or "") for c in tag}
            if "Key" not in fields:
                raise MalformedResponseError("a <Tag> without <Key> in a tagging answer")
            tags[fields["Key"]] = fields.get("Value", "")
    return tags


def parse_annotations(body: bytes) -> AnnotationPage:
    """A ListObjectAnnotations page (see metadata-channels.md §1.1).

    The root element's name is not in the service model: children are read
    whatever it is.  ``Annotations`` is a wrapped list of ``AnnotationEntry``;
    the page is truncated iff ``NextContinuationToken`` is present.
    """
    root = _xml_root(body, "annotation listing")
    entries: list[AnnotationEntry] = []
    token: str | None = None
    for child in root:
        tag = _ns(child.tag)
        if tag == "NextContinuationToken":
            token = child.text or None
        elif tag == "Annotations":
            for e in child:
                if _ns(e.tag) != "AnnotationEntry":
                    continue
                f = {_ns(c.tag): (c.text or "") for c in e}
                try:
                    entries.append(AnnotationEntry(
                        f["AnnotationName"], int(f.get("Size", "0")),
                        f.get("ETag") or None,
                        parse_iso8601(f["LastModified"]) if f.get("LastModified") else 0))
                except (KeyError, ValueError) as exc:
                    raise MalformedResponseError(f"bad <AnnotationEntry> in an annotation listing: {exc}") \
                        from None
    return AnnotationPage(entries, token)


# -- versions ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class Version:
    """One entry of a versions listing: a version of an object, or a delete marker.

    ``stamp_ms`` is LastModified in milliseconds (the listing's precision):
    the moment of an as-of mount is compared with it, not with ``mtime``,
    which is whole seconds as everywhere else.
    """

    key: str
    version_id: str  # "null" for an object written while versioning was off
    is_latest: bool
    delete_marker: bool
    stamp_ms: int
    size: int = 0
    etag: str | None = None
    storage_class: str | None = None

    @property
    def mtime(self) -> int:
        return self.stamp_ms // 1000


@dataclasses.dataclass(slots=True)
class VersionsPage:
    """One page of a versions listing, entries in the server's order (keys ascending,
    each key's versions and delete markers newest first)."""

    versions: list[Version]
    prefixes: list[str]
    truncated: bool
    next_key_marker: str | None
    next_version_id_marker: str | None


def parse_iso8601_ms(value: str) -> int:
    """Milliseconds since the epoch of a listing's ``2020-12-10T03:37:30.123Z``."""
    seconds = parse_iso8601(value)
    _, _, clock = value.strip().partition("T")
    frac = clock.rstrip("Z").split("+")[0].split("-")[0].partition(".")[2]
    digits = "".join(ch for ch in frac if ch.isdigit())[:3].ljust(3, "0")
    return seconds * 1000 + int(digits)


def parse_versions(body: bytes, *, plus_is_space: bool = True) -> VersionsPage:
    """Parse a ``ListVersionsResult`` (S3, COS, OSS and OBS use the same element names).

    Entries come out ordered by key (its bytes), each key's newest first:
    S3 interleaves ``Version`` and ``DeleteMarker`` elements that way, but
    a server may send them as two runs (moto does; the vendors' SDKs keep
    two arrays), so the page is sorted, stably: entries of one key with the
    same LastModified keep the server's order.  Keys and
    markers are URL-decoded when the answer says ``EncodingType=url``, as
    :func:`parse_list` does.  A truncated page goes on from
    ``NextKeyMarker`` / ``NextVersionIdMarker``; one without a
    ``NextKeyMarker`` has ``next_key_marker`` None, for the caller to refuse.
    """
    root = _xml_root(body, "versions listing")
    if _ns(root.tag) != "ListVersionsResult":
        raise MalformedResponseError(f"unexpected versions listing root element <{_ns(root.tag)}>")
    fields: dict[str, str] = {}
    raw: list[tuple[bool, dict[str, str]]] = []
    raw_prefixes: list[str] = []
    for child in root:
        tag = _ns(child.tag)
        if tag in ("Version", "DeleteMarker"):
            raw.append((tag == "DeleteMarker", {_ns(c.tag): (c.text or "") for c in child}))
        elif tag == "CommonPrefixes":
            raw_prefixes.extend(c.text or "" for c in child if _ns(c.tag) == "Prefix")
        else:
            fields[tag] = child.text or ""
    encoded = fields.get("EncodingType", "").lower() == "url"
    dec: Callable[[str], str] = (_raw if not encoded else _unquote_plus if plus_is_space
                                 else _unquote)
    versions = []
    for marker, v in raw:
        if "Key" not in v or not v.get("LastModified"):
            raise MalformedResponseError("versions listing entry without <Key> or <LastModified>")
        try:
            size = int(v.get("Size") or "0")
        except ValueError as e:
            raise MalformedResponseError(f"bad <Size> in versions listing: {v.get('Size')!r}") from e
        versions.append(Version(dec(v["Key"]), v.get("VersionId") or "null",
                                v.get("IsLatest", "false").lower() == "true", marker,
                                parse_iso8601_ms(v["LastModified"]), size, v.get("ETag") or None,
                                v.get("StorageClass") or None))
    versions.sort(key=lambda v: (v.key.encode("utf-8", "surrogateescape"), -v.stamp_ms))
    truncated = fields.get("IsTruncated", "false").lower() == "true"
    next_key = fields.get("NextKeyMarker") or None
    return VersionsPage(versions, [dec(p) for p in raw_prefixes], truncated,
                        dec(next_key) if truncated and next_key else None,
                        (fields.get("NextVersionIdMarker") or None) if truncated else None)


def parse_versioning(body: bytes) -> str | None:
    """``Status`` of a GetBucketVersioning answer: ``Enabled``, ``Suspended``, or None (never on)."""
    root = _xml_root(body, "bucket versioning")
    status = next((c.text for c in root if _ns(c.tag) == "Status"), None)
    return (status or "").strip() or None

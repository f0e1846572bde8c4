"""metafs.s3.model: listing and HEAD parsing into ObjectMeta / ListPage."""

from __future__ import annotations

import calendar
import dataclasses
import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metafs.errors import MalformedResponseError
from metafs.s3.model import (
    Absent,
    Fresh,
    NotModified,
    ObjectMeta,
    decode_headers,
    error_fields,
    meta_from_head,
    parse_http_date,
    parse_iso8601,
    parse_list,
)

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
T0 = calendar.timegm((2020, 12, 10, 3, 37, 30, 0, 0, 0))


def raw(*headers: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    """Headers as a HEAD answer's bytes (``httpx.Headers.raw``), for ``meta_from_head``."""
    return [(k.encode(), v.encode()) for k, v in headers]


def listing(contents: str = "", *, encoded: bool = True, extra: str = "", prefixes=(),
            ns: str = NS) -> bytes:
    cps = "".join(f"<CommonPrefixes><Prefix>{p}</Prefix></CommonPrefixes>" for p in prefixes)
    enc = "<EncodingType>url</EncodingType>" if encoded else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult {ns}><Name>b</Name>'
            f"<Prefix></Prefix>{enc}{extra}{contents}{cps}</ListBucketResult>").encode()


def item(key: str, size: int = 3, lm: str = "2020-12-10T03:37:30.000Z", etag: str = "&quot;e&quot;",
         sc: str = "STANDARD") -> str:
    return (f"<Contents><Key>{key}</Key><LastModified>{lm}</LastModified><ETag>{etag}</ETag>"
            f"<Size>{size}</Size><StorageClass>{sc}</StorageClass></Contents>")


# -- parse_list -------------------------------------------------------------------------

def test_parse_list_objects_and_fields():
    page = parse_list(listing(item("a.txt", 42) + item("b", 0, sc="GLACIER"),
                              extra="<IsTruncated>false</IsTruncated><KeyCount>2</KeyCount>"), version=2)
    assert page.objects == [
        ObjectMeta("a.txt", 42, T0, '"e"'),
        ObjectMeta("b", 0, T0, '"e"'),
    ]
    # Known from a listing only: no xattr table until a HEAD.
    assert all(o.xattrs is None for o in page.objects)
    assert page.prefixes == [] and page.truncated is False and page.next_token is None


def test_parse_list_without_namespace():
    page = parse_list(listing(item("k"), ns=""), version=2)
    assert [o.key for o in page.objects] == ["k"]


def test_parse_list_url_encoded_keys():
    page = parse_list(listing(item("a+b") + item("a%2Bb") + item("%E6%97%A5%20x") + item("100%25"),
                              prefixes=["dir+one/", "p%2Bq/"]), version=2)
    assert [o.key for o in page.objects] == ["a b", "a+b", "日 x", "100%"]
    assert page.prefixes == ["dir one/", "p+q/"]


def test_parse_list_raw_keys_when_not_encoded():
    page = parse_list(listing(item("a+b") + item("100%") + item("x%2By") + item("日 x"),
                              encoded=False, prefixes=["d+e/", "50%/"]), version=2)
    assert [o.key for o in page.objects] == ["a+b", "100%", "x%2By", "日 x"]
    assert page.prefixes == ["d+e/", "50%/"]


def test_parse_list_common_prefixes_only():
    page = parse_list(listing(prefixes=["a/", "b/"]), version=2)
    assert page.objects == [] and page.prefixes == ["a/", "b/"]


def test_parse_list_next_continuation_token():
    page = parse_list(listing(item("a"), extra="<IsTruncated>true</IsTruncated>"
                              "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="
                              "</NextContinuationToken>"), version=2)
    assert page.truncated is True
    assert page.next_token == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="


def test_parse_list_v1_next_marker_decoded():
    page = parse_list(listing(item("a"), extra="<IsTruncated>true</IsTruncated>"
                              "<NextMarker>z%2Bz+y</NextMarker>"), version=1)
    assert page.next_token == "z+z y"


def test_parse_list_v1_last_key_marker_fallback():
    page = parse_list(listing(item("a") + item("c+d"), extra="<IsTruncated>true</IsTruncated>",
                              prefixes=["b/"]), version=1)
    assert page.next_token == "c d"
    page = parse_list(listing(item("a"), extra="<IsTruncated>true</IsTruncated>",
                              prefixes=["b/"]), version=1)
    assert page.next_token == "b/"


def test_parse_list_v2_never_takes_a_key_for_a_missing_token():
    # ListObjectsV2 goes on with NextContinuationToken only: S3 refuses a key
    # as a continuation token, so a truncated V2 page without one has no way
    # forward (the listing refuses it, dirlist rule 6); V1 takes the last key.
    body = listing(item("a") + item("b"), extra="<IsTruncated>true</IsTruncated>",
                   prefixes=["c/"])
    page = parse_list(body, version=2)
    assert page.truncated and page.next_token is None
    assert parse_list(body, version=1).next_token == "c/"
    marked = listing(item("a"), extra="<IsTruncated>true</IsTruncated><NextMarker>m</NextMarker>")
    assert parse_list(marked, version=2).next_token is None
    assert parse_list(marked, version=1).next_token == "m"


def test_parse_list_keeps_bytes_that_are_not_utf8():
    # %FF%FE is no UTF-8: each byte becomes one lone surrogate, which encodes
    # back to the same byte (surrogateescape), so the key stays addressable.
    page = parse_list(listing(item("a%FF%FEb") + item("caf%C3%A9"), prefixes=["d%E9/"],
                              extra="<IsTruncated>true</IsTruncated>"), version=1)
    assert [o.key for o in page.objects] == ["a\udcff\udcfeb", "café"]
    assert [o.key.encode("utf-8", "surrogateescape") for o in page.objects] == [
        b"a\xff\xfeb", b"caf\xc3\xa9"]
    assert page.prefixes == ["d\udce9/"]
    # The V1 marker is the greatest key in the server's (byte) order: é as
    # UTF-8 (C3 A9) sorts before the raw byte E9.
    assert page.next_token == "d\udce9/"


def test_parse_list_not_truncated_has_no_token():
    page = parse_list(listing(item("a"), extra="<IsTruncated>false</IsTruncated>"
                              "<NextMarker>zzz</NextMarker>"), version=2)
    assert page.truncated is False and page.next_token is None


def test_parse_list_empty_etag_is_none():
    page = parse_list(listing("<Contents><Key>k</Key><Size>1</Size></Contents>"), version=2)
    assert page.objects == [ObjectMeta("k", 1, 0, None, None)]


@pytest.mark.parametrize("body", [
    b"", b"not xml", b"<ListBucketResult><Contents>", b"\xff\xfe<x/>",
])
def test_parse_list_malformed_xml(body):
    with pytest.raises(MalformedResponseError):
        parse_list(body, version=2)


def test_parse_list_wrong_root():
    with pytest.raises(MalformedResponseError, match="Error"):
        parse_list(b"<Error><Code>AccessDenied</Code></Error>", version=2)
    with pytest.raises(MalformedResponseError):
        parse_list(b"<ListAllMyBucketsResult/>", version=2)


@pytest.mark.parametrize("contents", [
    "<Contents><Size>1</Size></Contents>",                       # no key
    "<Contents><Key>k</Key><Size>big</Size></Contents>",          # bad size
    "<Contents><Key>k</Key><LastModified>yesterday</LastModified></Contents>",
])
def test_parse_list_malformed_entries(contents):
    with pytest.raises(MalformedResponseError):
        parse_list(listing(contents), version=2)


# -- timestamps ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    "2020-12-10T03:37:30.000Z",
    "2020-12-10T03:37:30Z",
    "2020-12-10T03:37:30.999Z",
    "2020-12-10T03:37:30.123456Z",
    "2020-12-10T05:37:30.500+02:00",
    "2020-12-09T22:37:30-05:00",
    "2020-12-10T03:37:30+00:00",
    " 2020-12-10T03:37:30.000Z ",
])
def test_parse_iso8601_truncates_to_seconds_and_applies_offsets(value):
    assert parse_iso8601(value) == T0


@pytest.mark.parametrize("value", ["", "2020-12-10", "garbage", "2020-12-10T03:37Z"])
def test_parse_iso8601_malformed(value):
    with pytest.raises(MalformedResponseError):
        parse_iso8601(value)


def test_parse_http_date():
    assert parse_http_date("Thu, 10 Dec 2020 03:37:30 GMT") == T0
    assert parse_http_date(None) == 0
    assert parse_http_date("") == 0
    assert parse_http_date("not a date") == 0


@pytest.fixture
def new_york_tz():
    old = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_parse_http_date_ignores_local_timezone(new_york_tz):
    assert parse_http_date("Thu, 10 Dec 2020 03:37:30 GMT") == T0
    assert parse_http_date("Thursday, 10-Dec-20 03:37:30 GMT") == T0  # RFC 850 form


# Regression (was a bug): asctime dates (no zone) and '-0000' are parsed as local time
@pytest.mark.parametrize("value", ["Thu Dec 10 03:37:30 2020", "Thu, 10 Dec 2020 03:37:30 -0000"])
def test_parse_http_date_zoneless_forms_are_gmt(new_york_tz, value):
    assert parse_http_date(value) == T0


def test_head_and_listing_give_same_mtime():
    head = meta_from_head("k", raw(("last-modified", "Thu, 10 Dec 2020 03:37:30 GMT"),
                                   ("content-length", "3"), ("etag", '"e"')), percent_decode_values=False)
    page = parse_list(listing(item("k", lm="2020-12-10T03:37:30.789Z")), version=2)
    assert head.mtime == page.objects[0].mtime == T0
    assert (head.size, head.etag) == (page.objects[0].size, page.objects[0].etag)


# -- meta_from_head ---------------------------------------------------------------------

def test_meta_from_head_fields_and_the_xattr_table_without_hop_headers():
    headers = raw(
        ("content-length", "1234"), ("etag", '"AbC"'), ("content-type", "text/plain"),
        ("last-modified", "Thu, 10 Dec 2020 03:37:30 GMT"), ("connection", "keep-alive"),
        ("keep-alive", "timeout=5"), ("transfer-encoding", "chunked"), ("date", "x"),
        ("server", "AmazonS3"), ("accept-ranges", "bytes"), ("vary", "Origin"),
        ("access-control-allow-origin", "*"), ("content-security-policy", "block-all"),
        ("x-amz-meta-a", "1"), ("x-amz-meta-a", "2"), ("x-amz-storage-class", "GLACIER"),
    )
    m = meta_from_head("dir/k", headers, percent_decode_values=False)
    assert (m.key, m.size, m.mtime, m.etag) == ("dir/k", 1234, T0, '"AbC"')
    assert m.xattrs == {
        b"user.s3.etag": b"AbC", b"user.s3.content-type": b"text/plain",
        b"user.s3.last-modified": b"Thu, 10 Dec 2020 03:37:30 GMT",
        b"user.a": b"1,2", b"user.s3.storage-class": b"GLACIER",
    }


@pytest.mark.parametrize("header", ["x-amz-storage-class", "x-cos-storage-class",
                                    "x-oss-storage-class", "x-obs-storage-class"])
def test_meta_from_head_storage_class_per_vendor_is_one_xattr(header):
    m = meta_from_head("k", raw(("content-length", "1"), (header, "COLD")), percent_decode_values=False)
    assert m.xattrs == {b"user.s3.storage-class": b"COLD"}


def test_meta_from_head_applies_the_dialect_value_decoding():
    headers = raw(("x-obs-meta-city", "S%C3%A3o%20Paulo"), ("content-disposition", "a%20b"))
    assert meta_from_head("k", headers, percent_decode_values=True).xattrs == {
        b"user.city": "São Paulo".encode(), b"user.s3.content-disposition": b"a%20b"}
    assert meta_from_head("k", headers, percent_decode_values=False).xattrs == {
        b"user.city": b"S%C3%A3o%20Paulo", b"user.s3.content-disposition": b"a%20b"}


def test_meta_from_head_defaults_and_bad_length():
    m = meta_from_head("k", [], percent_decode_values=False)
    assert (m.size, m.mtime, m.etag, m.xattrs) == (0, 0, None, {})
    with pytest.raises(MalformedResponseError):
        meta_from_head("k", raw(("content-length", "lots")), percent_decode_values=False)


# -- header values, each decoded on its own ------------------------------------------------

GOOD_AND_BAD = [(b"Content-Length", b"7"), (b"x-amz-meta-good", "café".encode()),
                (b"x-amz-meta-bad", b"\xff\xfe\xfd"), (b"X-Amz-Meta-Word", b"=?UTF-8?B?w6l0w6k=?="),
                (b"x-amz-meta-mixed", b"caf\xc3\xa9\xff")]


def test_decode_headers_decodes_each_value_on_its_own():
    # httpx would decode this whole block as Latin-1 because of the bad value: 'cafÃ©'.
    assert decode_headers(GOOD_AND_BAD) == [
        ("content-length", "7"), ("x-amz-meta-good", "café"), ("x-amz-meta-bad", "\udcff\udcfe\udcfd"),
        ("x-amz-meta-word", "=?UTF-8?B?w6l0w6k=?="), ("x-amz-meta-mixed", "café\udcff")]


@pytest.mark.parametrize("percent_decode_values", [False, True])
def test_one_bad_header_value_does_not_corrupt_the_others(percent_decode_values):
    m = meta_from_head("k", GOOD_AND_BAD, percent_decode_values=percent_decode_values)
    assert m.size == 7
    assert m.xattrs == {
        b"user.good": "café".encode(),  # UTF-8, as sent
        b"user.bad": b"\xff\xfe\xfd",  # not UTF-8: its bytes, as sent
        b"user.word": "été".encode(),  # RFC 2047 still decoded beside them
        b"user.mixed": b"caf\xc3\xa9\xff",  # partly UTF-8 is not UTF-8: bytes, undecoded
    }


def test_an_etag_that_cannot_be_sent_back_is_not_kept_for_revalidation():
    m = meta_from_head("k", [(b"etag", b'"\xe9t\xe9"'), (b"content-length", b"1")],
                       percent_decode_values=False)
    assert m.etag is None  # revalidation by plain HEAD, not a request httpx cannot encode
    assert m.xattrs == {b"user.s3.etag": b"\xe9t\xe9"}
    assert meta_from_head("k", raw(("etag", '"abc"')), percent_decode_values=False).etag == '"abc"'


# -- HEAD outcomes ---------------------------------------------------------------------

def test_head_outcomes_are_values():
    meta = ObjectMeta("k", 1, T0, '"e"', {})
    assert Fresh(meta) == Fresh(ObjectMeta("k", 1, T0, '"e"', {})) != Fresh(ObjectMeta("k", 2, T0, None))
    assert NotModified() == NotModified() != Absent()
    with pytest.raises(dataclasses.FrozenInstanceError):
        Fresh(meta).meta = meta


# -- error_fields ---------------------------------------------------------------------

def test_error_fields():
    body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AuthorizationHeaderMalformed'
            b"</Code><Message>the region is wrong</Message><Region>eu-west-1</Region>"
            b"<RequestId>R</RequestId></Error>")
    assert error_fields(body) == {"Code": "AuthorizationHeaderMalformed",
                                  "Message": "the region is wrong", "Region": "eu-west-1",
                                  "RequestId": "R"}
    assert error_fields(b"<Error><Code>NoSuchKey</Code></Error>") == {"Code": "NoSuchKey"}
    assert error_fields(b"") == {}
    assert error_fields(b"<html>oops") == {}
    assert error_fields(b"<ListBucketResult/>") == {}
    assert error_fields(b"<Error><Code>X</Code><Region></Region></Error>") == {"Code": "X", "Region": ""}


@pytest.mark.parametrize("etag", [
    '"9b2cf535f27731c974343645a3985328"',   # the usual MD5: held as 16 bytes
    '"9B2CF535F27731C974343645A3985328"',   # upper case: kept as text
    '"9b2cf535f27731c974343645a3985328-3"',  # multipart
    '9b2cf535f27731c974343645a3985328',     # unquoted
    'W/"9b2cf535f27731c974343645a3985328"',  # weak
    '"9b2cf535f27731c974343645a398532g"', '""', "", None,
])
def test_an_etag_comes_back_exactly_as_the_server_sent_it(etag):
    meta = ObjectMeta("k", 1, 2, etag)
    assert meta.etag == etag
    assert meta == ObjectMeta("k", 1, 2, etag) != ObjectMeta("k", 1, 2, "other")
    assert repr(meta) == f"ObjectMeta(key='k', size=1, mtime=2, etag={etag!r}, xattrs=None)"
    meta.etag = '"00"'
    assert meta.etag == '"00"'


def test_a_listing_shares_each_last_modified_second():
    """One int for all the entries of a page written in the same second (memory, README)."""
    page = parse_list(listing(item("a") + item("b") + item("c", lm="2020-12-10T03:37:31.000Z")), version=2)
    assert len({id(o.mtime) for o in page.objects}) == 2
    assert [o.mtime for o in page.objects] == [calendar.timegm((2020, 12, 10, 3, 37, 30))] * 2 + [
        calendar.timegm((2020, 12, 10, 3, 37, 31))]


@settings(max_examples=300, deadline=None)
@given(stamps=st.lists(st.one_of(
    st.from_regex(r"\A20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](\.[0-9]{0,6})?Z\Z"),
    st.sampled_from(["2020-12-10T03:37-30.000Z", "2020-12-10T03:37:30.000+01:00", " 2020-12-10T03:37:30.5Z",
                     "2020-12-10T03:37:30.1.2Z", "garbage"])), min_size=1, max_size=8))
def test_listing_stamps_with_fractions_share_their_second_and_parse_as_alone(stamps):
    """RGW sends milliseconds: stamps of one second are parsed once, to what each gives alone."""
    expected: list[int | type] = []
    for s in stamps:
        try:
            expected.append(parse_iso8601(s))
        except MalformedResponseError:
            expected.append(MalformedResponseError)
    body = listing("".join(item(f"k{i}", lm=s) for i, s in enumerate(stamps)))
    if MalformedResponseError in expected:
        with pytest.raises(MalformedResponseError):
            parse_list(body, version=2)
        return
    assert [o.mtime for o in parse_list(body, version=2).objects] == expected


def test_a_listing_timestamp_with_month_13_is_a_malformed_answer_not_a_crash():
    # calendar.timegm refuses month 13 with ValueError, which escaped parse_iso8601.
    body = (b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b"<IsTruncated>false</IsTruncated><Contents><Key>a</Key>"
            b"<LastModified>2020-13-01T00:00:00.000Z</LastModified><ETag>&quot;x&quot;</ETag>"
            b"<Size>1</Size></Contents></ListBucketResult>")
    with pytest.raises(MalformedResponseError, match="bad timestamp"):
        parse_list(body, version=2)

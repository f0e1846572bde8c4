"""metafs.xattrs: user.* and s3.* names and values, one naming scheme across providers."""

from __future__ import annotations

import logging

import pytest

from metafs.mount import root_xattrs
from metafs.s3 import dialects
from metafs.s3.client import BucketInfo
from metafs.s3.dialects import OBS, OSS
from metafs.xattrs import (
    bucket_xattrs,
    decode_rfc2047,
    is_foreign,
    object_xattrs,
    percent_decode,
    system_name,
)

# -- user.* ---------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["x-amz-meta-", "x-cos-meta-", "x-oss-meta-", "x-obs-meta-"])
def test_user_metadata_from_each_vendor_prefix(prefix):
    out = object_xattrs([(prefix + "color", "blue"), (prefix + "a-b_c", "1")])
    assert out == {b"user.color": b"blue", b"user.a-b_c": b"1"}


@pytest.mark.parametrize("prefix", ["x-amz-meta-", "x-cos-meta-", "x-oss-meta-", "x-obs-meta-"])
def test_user_metadata_with_an_empty_name_is_left_out_with_one_line(prefix, caplog):
    with caplog.at_level(logging.WARNING, logger="metafs.xattrs"):
        out = object_xattrs([(prefix, "orphan"), (prefix + "k", "v")], key="dir/obj")
    assert out == {b"user.k": b"v"}  # never b"user."
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == f"leaving out user metadata {prefix!r} of 'dir/obj': it has an empty name"


def test_user_key_is_not_confused_with_system_names():
    out = object_xattrs([("x-amz-meta-etag", "mine"), ("etag", '"real"')])
    assert out == {b"user.etag": b"mine", b"user.s3.etag": b"real"}


@pytest.mark.parametrize("encoded, decoded", [
    ("=?UTF-8?B?5pel5pys6Kqe?=", "日本語"),
    ("=?UTF-8?Q?caf=C3=A9?=", "café"),
    ("=?utf-8?q?a_b?=", "a b"),
    ("hello =?UTF-8?Q?caf=C3=A9?= world", "hello café world"),
    ("=?ISO-8859-1?Q?=E9t=E9?=", "été"),
])
def test_rfc2047_values_decoded_to_utf8(encoded, decoded):
    assert decode_rfc2047(encoded) == decoded
    out = object_xattrs([("x-amz-meta-k", encoded)])
    assert out == {b"user.k": decoded.encode("utf-8")}


@pytest.mark.parametrize("value", [
    "plain",
    "a=?b",
    "=?x-no-such-charset?Q?abc?=",   # unknown charset
    "=?UTF-8?Q?=FF?=",               # not UTF-8
    "=?UTF-8?B?abc?=",               # decodes to invalid UTF-8
    "=?UTF-8?X?abc?=",               # no such encoding
])
def test_invalid_or_absent_encoded_words_left_as_is(value):
    assert decode_rfc2047(value) == value
    assert object_xattrs([("x-amz-meta-k", value)]) == {b"user.k": value.encode()}


# Regression (was a bug): a B-word whose text is not base64 decodes to '' (Python's lenient base64
# drops the invalid characters) instead of being kept
def test_invalid_base64_encoded_word_left_as_is():
    value = "=?UTF-8?B?!!!?="
    assert decode_rfc2047(value) == value


def test_percent_decode_values_only_when_asked_and_only_user_metadata():
    headers = [("x-obs-meta-name", "caf%C3%A9%20x"), ("content-disposition", "a%20b")]
    assert object_xattrs(headers) == {b"user.name": b"caf%C3%A9%20x",
                                      b"user.s3.content-disposition": b"a%20b"}
    assert object_xattrs(headers, percent_decode_values=True) == {
        b"user.name": "café x".encode(), b"user.s3.content-disposition": b"a%20b"}


def test_values_that_were_not_utf8_are_kept_as_bytes_undecoded():
    # decode_headers hands non-UTF-8 bytes over as surrogates; neither RFC 2047 nor
    # percent-decoding is applied to them, and their neighbours are decoded as usual.
    headers = [("x-obs-meta-bad", "=?UTF-8?Q?a?=%41\udcff"), ("x-obs-meta-good", "caf%C3%A9"),
               ("x-obs-meta-word", "=?UTF-8?Q?caf=C3=A9?=")]
    assert object_xattrs(headers, percent_decode_values=True) == {
        b"user.bad": b"=?UTF-8?Q?a?=%41\xff", b"user.good": "café".encode(), b"user.word": "café".encode()}


def test_percent_escaped_bytes_that_are_not_utf8_stay_bytes():
    assert object_xattrs([("x-obs-meta-k", "a%FF%20b")], percent_decode_values=True) == {
        b"user.k": b"a\xff b"}


def test_percent_decode():
    assert percent_decode("caf%C3%A9") == "café"
    assert percent_decode("a+b") == "a+b"
    assert percent_decode("plain") == "plain"


# -- s3.* ---------------------------------------------------------------------------

@pytest.mark.parametrize("header", [
    "content-type", "content-encoding", "content-language", "content-disposition",
    "cache-control", "expires", "last-modified", "content-md5", "etag",
])
def test_standard_headers_keep_their_name(header):
    assert system_name(header) == "user.s3." + header


@pytest.mark.parametrize("header", ["content-length", "date", "server", "connection",
                                    "accept-ranges", "x-custom-thing", "vary"])
def test_non_metadata_standard_headers_have_no_name(header):
    assert system_name(header) is None
    assert object_xattrs([(header, "v")]) == {}


@pytest.mark.parametrize("vendor", ["x-amz-", "x-oss-", "x-cos-", "x-obs-"])
def test_vendor_prefix_stripped(vendor):
    assert system_name(vendor + "storage-class") == "user.s3.storage-class"
    assert system_name(vendor + "server-side-encryption") == "user.s3.server-side-encryption"
    assert system_name(vendor + "version-id") == "user.s3.version-id"


def test_storage_class_from_two_vendors_gives_one_name():
    assert object_xattrs([("x-amz-storage-class", "GLACIER")]) == {b"user.s3.storage-class": b"GLACIER"}
    assert object_xattrs([("x-oss-storage-class", "Archive")]) == {b"user.s3.storage-class": b"Archive"}


def test_crc64_spellings_unified():
    assert system_name("x-obs-checksum-crc64ecma") == "user.s3.hash-crc64ecma"
    assert system_name("x-cos-hash-crc64ecma") == "user.s3.hash-crc64ecma"
    assert system_name("x-oss-hash-crc64ecma") == "user.s3.hash-crc64ecma"
    assert object_xattrs([("x-obs-checksum-crc64ecma", "123")]) == {b"user.s3.hash-crc64ecma": b"123"}
    assert object_xattrs([("x-cos-hash-crc64ecma", "123")]) == {b"user.s3.hash-crc64ecma": b"123"}


@pytest.mark.parametrize("header", [
    "x-amz-request-id", "x-amz-id-2", "x-oss-request-id", "x-cos-request-id",
    "x-obs-request-id", "x-cos-trace-id", "x-obs-id-2", "x-oss-server-time", "x-oss-ec",
    "x-oss-err", "x-obs-api", "x-amz-content-sha256", "x-amz-date",
    "x-amz-security-token", "x-amz-s3session-token", "x-amz-sdk-checksum-algorithm",
])
def test_request_describing_headers_excluded(header):
    assert system_name(header) is None
    assert object_xattrs([(header, "abc")]) == {}


def test_etag_is_unquoted():
    assert object_xattrs([("etag", '"d41d8cd98f00b204e9800998ecf8427e"')]) == {
        b"user.s3.etag": b"d41d8cd98f00b204e9800998ecf8427e"}
    assert object_xattrs([("etag", 'W/"x"')]) == {b"user.s3.etag": b'W/"x'}


def test_repeated_headers_joined_with_comma():
    out = object_xattrs([("x-amz-meta-tag", "a"), ("cache-control", "no-cache"),
                         ("x-amz-meta-tag", "b"), ("cache-control", "max-age=1"),
                         ("x-amz-meta-tag", "c")])
    assert out == {b"user.tag": b"a,b,c", b"user.s3.cache-control": b"no-cache,max-age=1"}


def test_full_head_response():
    headers = [
        ("content-type", "text/plain"), ("content-length", "5"), ("etag", '"abc"'),
        ("last-modified", "Thu, 10 Dec 2020 03:37:30 GMT"), ("x-amz-request-id", "R"),
        ("x-amz-id-2", "I"), ("x-amz-meta-owner", "=?UTF-8?B?w6l0w6k=?="),
        ("x-amz-storage-class", "STANDARD_IA"), ("x-amz-version-id", "v1"),
        ("date", "Thu, 10 Dec 2020 03:40:00 GMT"), ("server", "AmazonS3"),
    ]
    assert object_xattrs(headers) == {
        b"user.s3.content-type": b"text/plain",
        b"user.s3.etag": b"abc",
        b"user.s3.last-modified": b"Thu, 10 Dec 2020 03:37:30 GMT",
        b"user.owner": "été".encode(),
        b"user.s3.storage-class": b"STANDARD_IA",
        b"user.s3.version-id": b"v1",
    }


def test_non_ascii_raw_value_survives_as_bytes():
    raw = "caf\udcc3\udca9"  # latin-1 decoded bytes smuggled as surrogates
    out = object_xattrs([("x-amz-meta-k", raw)])
    assert out == {b"user.k": b"caf\xc3\xa9"}


# -- foreign namespaces -------------------------------------------------------------

@pytest.mark.parametrize("name, foreign", [
    (b"security.selinux", True), (b"system.posix_acl_access", True),
    (b"trusted.overlay.opaque", True), (b"user.color", False), (b"user.s3.etag", False),
    (b"securityx", False), (b"system", False),
])
def test_is_foreign(name, foreign):
    assert is_foreign(name) is foreign


# -- bucket ------------------------------------------------------------------------

def test_bucket_xattrs():
    headers = {"x-amz-bucket-region": "eu-west-1", "x-amz-request-id": "R",
               "content-type": "application/xml", "server": "AmazonS3",
               "x-amz-access-point-alias": "false", "date": "now"}
    out = bucket_xattrs(headers, {"user.s3.bucket": "b", "user.s3.prefix": "p/", "user.s3.endpoint": "https://é"})
    assert out == {
        b"user.s3.bucket": b"b", b"user.s3.prefix": b"p/", b"user.s3.endpoint": "https://é".encode(),
        b"user.s3.bucket-region": b"eu-west-1", b"user.s3.access-point-alias": b"false",
    }


# -- one naming scheme for system xattrs ------------------------------------------------------

@pytest.mark.parametrize("header, name", [
    ("x-cos-hash-crc64ecma", "user.s3.hash-crc64ecma"),
    ("x-oss-hash-crc64ecma", "user.s3.hash-crc64ecma"),
    ("x-obs-checksum-crc64ecma", "user.s3.hash-crc64ecma"),
    ("x-amz-server-side-encryption-aws-kms-key-id", "user.s3.server-side-encryption-kms-key-id"),
    ("x-cos-server-side-encryption-cos-kms-key-id", "user.s3.server-side-encryption-kms-key-id"),
    ("x-oss-server-side-encryption-key-id", "user.s3.server-side-encryption-kms-key-id"),
    ("x-obs-server-side-encryption-kms-key-id", "user.s3.server-side-encryption-kms-key-id"),
    ("x-oss-object-worm-mode", "user.s3.object-lock-mode"),
    ("x-oss-object-worm-retain-until-date", "user.s3.object-lock-retain-until-date"),
    ("x-amz-object-lock-mode", "user.s3.object-lock-mode"),
    ("x-cos-object-type", "user.s3.object-type"),
    ("x-oss-object-type", "user.s3.object-type"),
    ("x-obs-object-type", "user.s3.object-type"),
    ("x-cos-version-id", "user.s3.version-id"),
    ("x-cos-restore", "user.s3.restore"),
    ("x-oss-tagging-count", "user.s3.tagging-count"),
    ("x-obs-expiration", "user.s3.expiration"),
    ("x-obs-bucket-location", "user.s3.bucket-region"),
    ("x-cos-bucket-region", "user.s3.bucket-region"),
    ("x-amz-bucket-region", "user.s3.bucket-region"),
    ("x-cos-trace-id", None),
    ("x-oss-ec", None),
    ("x-obs-request-id", None),
])
def test_one_name_per_meaning_across_providers(header, name):
    assert system_name(header) == name


def test_root_xattrs_per_provider():
    class C:  # the parts of S3Client that root_xattrs reads
        def __init__(self, dialect: dialects.Dialect, region: str) -> None:
            self.dialect, self.region = dialect, region
            self.endpoint = type("E", (), {"scheme": "https", "netloc": lambda s, b: f"{b}.h"})()

    cfg = type("Cfg", (), {"bucket": "bkt", "as_of_ms": None})()
    oss = root_xattrs(cfg, C(OSS, "cn-hangzhou"), BucketInfo({}, "oss-cn-hangzhou"))
    assert oss[b"user.s3.bucket-region"] == b"oss-cn-hangzhou" and oss[b"user.s3.provider"] == b"oss"
    assert oss[b"user.s3.region"] == b"cn-hangzhou" and oss[b"user.s3.endpoint"] == b"https://bkt.h"
    obs = root_xattrs(cfg, C(OBS, ""), BucketInfo({"x-obs-bucket-location": "cn-north-4",
                                                   "x-obs-version": "3.0",
                                                   "x-obs-storage-class": "WARM",
                                                   "x-obs-request-id": "R"}, "cn-north-4"))
    assert obs[b"user.s3.bucket-region"] == b"cn-north-4" and obs[b"user.s3.version"] == b"3.0"
    assert obs[b"user.s3.storage-class"] == b"WARM" and b"user.s3.region" not in obs
    assert b"user.s3.request-id" not in obs
    cos = bucket_xattrs({"x-cos-bucket-region": "ap-guangzhou"}, {})
    assert cos[b"user.s3.bucket-region"] == b"ap-guangzhou"

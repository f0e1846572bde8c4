"""metafs.s3.answers: what an answer means, per dialect field, without a client."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import re

import httpx
import pytest

from metafs import errors
from metafs.s3 import answers
from metafs.s3.dialects import COS, OBS, OSS, S3, S3EXPRESS
from metafs.s3.endpoint import Endpoint
from tests.fakes import xml_error

DEFAULT = Endpoint("https", "oss-cn-hangzhou.aliyuncs.com", None, False, True)  # the region's own
CUSTOM = Endpoint("https", "files.example.com", None, False, False)

MOVED = httpx.Response(301, headers={"x-amz-bucket-region": "eu-west-1",
                                     "location": "https://b.s3.eu-west-1.amazonaws.com/"})
MALFORMED = httpx.Response(400, content=xml_error("AuthorizationHeaderMalformed", "wrong region",
                                                  Region="ap-southeast-2"))
OSS_WRONG_ENDPOINT = httpx.Response(403, content=xml_error(
    "AccessDenied", "must be addressed using the specified endpoint",
    Endpoint="oss-cn-beijing.aliyuncs.com"))


# -- error documents -----------------------------------------------------------------------

def test_error_document_from_the_body_or_from_x_oss_err():
    assert answers.error_document(httpx.Response(403, content=xml_error("AccessDenied"))) == {
        "Code": "AccessDenied", "Message": "msg", "RequestId": "R"}
    bodiless = httpx.Response(403, headers={"x-oss-err": base64.b64encode(xml_error("X")).decode()})
    assert answers.error_code(bodiless) == "X"
    assert answers.error_document(httpx.Response(403, headers={"x-oss-err": "%% not base64"})) == {}
    assert answers.error_code(httpx.Response(200, content=b"data")) == ""


# -- where an answer sends the client ------------------------------------------------------

@pytest.mark.parametrize("response, region", [
    (MOVED, "eu-west-1"),
    (httpx.Response(307, headers={"x-amz-bucket-region": "us-west-2"}), "us-west-2"),
    (httpx.Response(400, headers={"x-amz-bucket-region": "eu-north-1"}), "eu-north-1"),
    (MALFORMED, "ap-southeast-2"),
    (httpx.Response(400, content=xml_error("IllegalLocationConstraintException", Region="af-south-1")),
     "af-south-1"),
    (httpx.Response(400, content=xml_error("InvalidArgument", Region="af-south-1")), None),
    (httpx.Response(301), None),
    (httpx.Response(200, headers={"x-amz-bucket-region": "eu-west-1"}), None),
    (httpx.Response(403, headers={"x-amz-bucket-region": "eu-west-1"}), None),
])
def test_named_region(response, region):
    assert answers.named_region(response) == region


@pytest.mark.parametrize("dialect, response, endpoint, region", [
    (S3, MOVED, CUSTOM, "eu-west-1"),  # the signature moves, even on a custom endpoint
    (S3EXPRESS, MALFORMED, DEFAULT, "ap-southeast-2"),
    (S3, OSS_WRONG_ENDPOINT, DEFAULT, None),
    (COS, MOVED, DEFAULT, None),  # an error naming the Location instead (error_for)
    (OBS, MALFORMED, DEFAULT, None),
    (OSS, OSS_WRONG_ENDPOINT, DEFAULT, "cn-beijing"),
    (OSS, OSS_WRONG_ENDPOINT, CUSTOM, None),  # a custom domain cannot be re-pointed
    (OSS, MOVED, DEFAULT, None),
    (OSS, httpx.Response(403, content=xml_error("AccessDenied")), DEFAULT, None),
])
def test_redirect_region_per_dialect(dialect, response, endpoint, region):
    assert answers.redirect_region(response, dialect, endpoint) == region


def test_follows_region_redirects_is_the_dialects_field():
    assert answers.redirect_region(MOVED, dataclasses.replace(COS, follows_region_redirects=True),
                                   DEFAULT) == "eu-west-1"
    assert answers.redirect_region(MOVED, dataclasses.replace(S3, follows_region_redirects=False),
                                   DEFAULT) is None


def test_wrong_endpoint_403_is_the_dialects_field():
    # Any dialect with the field reads the region of the named endpoint with its own host pattern.
    s3_like = dataclasses.replace(S3, follows_region_redirects=False, wrong_endpoint_403=True)
    wrong = httpx.Response(403, content=xml_error("AccessDenied", Endpoint="s3.eu-west-3.amazonaws.com"))
    assert answers.redirect_region(wrong, s3_like, DEFAULT) == "eu-west-3"
    assert answers.redirect_region(OSS_WRONG_ENDPOINT, dataclasses.replace(OSS, wrong_endpoint_403=False),
                                   DEFAULT) is None
    other_hosts = dataclasses.replace(OSS, host_region=re.compile(r"^oss\.([a-z0-9-]+)\.example$"))
    named = httpx.Response(403, content=xml_error("AccessDenied", Endpoint="oss.cn-wulanchabu.example"))
    assert answers.redirect_region(named, other_hosts, DEFAULT) == "cn-wulanchabu"


# -- which error -----------------------------------------------------------------------------

def test_a_redirect_not_followed_is_an_error_naming_the_location():
    for dialect in (COS, OBS, OSS, dataclasses.replace(S3, follows_region_redirects=False)):
        e = answers.error_for(MOVED, "HEAD k", dialect)
        assert type(e) is errors.S3Error and (e.status, e.code) == (301, "PermanentRedirect")
        assert "(https://b.s3.eu-west-1.amazonaws.com/): check --region and --endpoint-url" in str(e)
    e = answers.error_for(MOVED, "HEAD k", S3)  # followed once already: it says where
    assert isinstance(e, errors.WrongRegionError) and e.region == "eu-west-1"


def test_a_wrong_endpoint_403_names_the_endpoint():
    e = answers.error_for(OSS_WRONG_ENDPOINT, "GET Bucket location b", OSS)
    assert isinstance(e, errors.WrongRegionError)
    assert (e.status, e.region, e.endpoint) == (403, "cn-beijing", "oss-cn-beijing.aliyuncs.com")
    assert "must be addressed at oss-cn-beijing.aliyuncs.com (--region cn-beijing)" in str(e)
    unknown = httpx.Response(403, content=xml_error("AccessDenied", Endpoint="files.example.com"))
    e = answers.error_for(unknown, "x", OSS)
    assert isinstance(e, errors.WrongRegionError) and e.region == "" and e.endpoint == "files.example.com"
    # Without the field a 403 is a 403.
    assert type(answers.error_for(OSS_WRONG_ENDPOINT, "x", S3)) is errors.AccessDeniedError


@pytest.mark.parametrize("response, bucket_level, exc_type, code", [
    (httpx.Response(404), False, errors.NotFoundError, ""),
    (httpx.Response(404), True, errors.NoSuchBucketError, "NoSuchBucket"),
    (httpx.Response(404, content=xml_error("NoSuchBucket")), False, errors.NoSuchBucketError,
     "NoSuchBucket"),
    (httpx.Response(403), False, errors.AccessDeniedError, "AccessDenied"),
    (httpx.Response(403, content=xml_error("SecurityTokenExpired")), False,
     errors.BadCredentialsError, "SecurityTokenExpired"),
    (httpx.Response(503), False, errors.ServerError, ""),
    (httpx.Response(400, content=xml_error("SlowDown")), False, errors.ServerError, "SlowDown"),
    (httpx.Response(409, content=xml_error("Conflict")), False, errors.S3Error, "Conflict"),
])
def test_the_common_table(response, bucket_level, exc_type, code):
    for dialect in (S3, COS, OSS, OBS):
        e = answers.error_for(response, "what", dialect, bucket_level=bucket_level)
        assert type(e) is exc_type and e.code == code and e.what == "what"


# -- transport failures ----------------------------------------------------------------------

def test_describe_transport_names_the_endpoint_and_the_os_reason():
    ep = Endpoint("http", "127.0.0.1", 9000, True, False)
    refused = httpx.ConnectError("connect failed")
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert answers.describe_transport(refused, ep) == "cannot connect to 127.0.0.1:9000 (Connection refused)"
    assert answers.describe_transport(httpx.ReadTimeout("slow"), ep) == "timed out talking to 127.0.0.1:9000"
    reset = httpx.ReadError("read failed")
    reset.__context__ = ExceptionGroup("g", [ConnectionResetError(104, "Connection reset by peer")])
    assert answers.describe_transport(reset, DEFAULT) == \
        "ReadError talking to oss-cn-hangzhou.aliyuncs.com (Connection reset by peer)"
    assert answers.root_cause(ValueError()) == "ValueError"


def _tls_failure(reason: str) -> httpx.ConnectError:
    import ssl

    e = httpx.ConnectError("[SSL] wrong version number")
    inner = ssl.SSLError(1, f"[SSL: {reason}] wrong version number (_ssl.c:1006)")
    inner.reason = reason
    e.__cause__ = inner
    return e


def test_a_failed_tls_handshake_says_https_was_assumed_when_the_url_had_no_scheme():
    # `--endpoint-url 127.0.0.1:9000` against a plain-HTTP server: https was assumed.
    assumed = Endpoint.build("127.0.0.1:9000", "us-east-1", "bkt")
    assert assumed.scheme_assumed and assumed.scheme == "https"
    line = answers.describe_transport(_tls_failure("WRONG_VERSION_NUMBER"), assumed)
    assert line == ("the TLS handshake with 127.0.0.1:9000 failed (WRONG_VERSION_NUMBER): https was "
                    "assumed, as the endpoint URL names no scheme; for a server that speaks plain HTTP, "
                    "write http://127.0.0.1:9000")
    # An explicit https:// is what the user asked for: the failure, with no hint.
    explicit = Endpoint.build("https://127.0.0.1:9000", "us-east-1", "bkt")
    assert not explicit.scheme_assumed
    assert answers.describe_transport(_tls_failure("CERTIFICATE_VERIFY_FAILED"), explicit) == \
        "the TLS handshake with 127.0.0.1:9000 failed (CERTIFICATE_VERIFY_FAILED)"


# -- Retry-After ----------------------------------------------------------------------------

NOW = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


@pytest.mark.parametrize(("status", "value", "wait"), [
    (503, "3", 3.0),
    (429, "0", 0.0),
    (503, " 12 ", 12.0),
    (503, "Tue, 02 Jan 2024 03:04:15 GMT", 10.0),  # an HTTP date: measured against now
    (429, "Tue, 02 Jan 2024 03:00:00 GMT", 0.0),   # in the past: no wait of its own
    (503, "soon", None),                           # neither: the client's own backoff
    (503, "-5", None),
    (503, "\uff11\uff12".encode(), None),         # digits, but not ASCII ones
    (503, "", None),
    (500, "3", None),                              # honoured on 429 and 503 only
    (200, "3", None),
])
def test_retry_after_seconds_or_http_date(status, value, wait):
    headers = {"retry-after": value} if value else {}
    assert answers.retry_after(httpx.Response(status, headers=headers), NOW) == wait


@pytest.mark.parametrize("h11_says, line", [
    ("Receive buffer too long",
     "unusable HTTP answer from 127.0.0.1:9000: header block too large for the HTTP parser (over 100 KiB)"),
    ("illegal header line: bytearray(b'x-amz-meta-a: a\\x00b')",
     "unusable HTTP answer from 127.0.0.1:9000: illegal header line: bytearray(b'x-amz-meta-a: a\\x00b')"),
    ("peer closed connection without sending complete message body (received 3 bytes, expected 100)",
     "unusable HTTP answer from 127.0.0.1:9000: peer closed connection without sending complete message "
     "body (received 3 bytes, expected 100)"),
])
def test_describe_transport_says_what_the_http_parser_refused(h11_says, line):
    ep = Endpoint("http", "127.0.0.1", 9000, True, False)
    assert answers.describe_transport(httpx.RemoteProtocolError(h11_says), ep) == line


def test_a_refused_header_line_is_quoted_on_one_bounded_line():
    huge = httpx.RemoteProtocolError("illegal header line: bytearray(b'x-amz-meta-a: " + "v" * 90000 + "')")
    text = answers.protocol_fault(huge)
    assert len(text) <= 121 and text.endswith("…") and text.startswith("illegal header line")

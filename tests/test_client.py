"""metafs.s3.client over httpx.MockTransport: addressing, signing, retries, errors."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

import httpx
import pytest
import trio
import trio.testing

from metafs import errors
from metafs.credentials import CredentialSource
from metafs.s3.client import S3Client
from metafs.s3.model import Absent, Fresh, HeadOutcome, NotModified
from metafs.signing import EMPTY_SHA256, Credentials, SignableRequest
from metafs.signing.sigv4 import SigV4Signer
from tests import fakes
from tests.fakes import NOW, SECRET, TOKEN, Handler, Server, StaticCredentials, scope_region, xml_error

LOCAL = "http://127.0.0.1:9000"

EMPTY_LIST = (b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult '
              b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bkt</Name>'
              b"<IsTruncated>false</IsTruncated><EncodingType>url</EncodingType>"
              b"</ListBucketResult>")


def run(handler: Handler, fn: Callable[[S3Client], Awaitable[Any]], **kw: Any) -> Any:
    """:func:`tests.fakes.run`, by default anonymous against a local endpoint (path style)."""
    return fakes.run(handler, fn, **{"endpoint_url": LOCAL, "credentials": None, **kw})


def fails(exc_type: type[BaseException], handler: Handler,
          fn: Callable[[S3Client], Awaitable[Any]], **kw: Any) -> BaseException:
    """Run, expect ``exc_type``, and check the secret is nowhere in it."""
    kw.setdefault("credentials", StaticCredentials(TOKEN))
    with pytest.raises(exc_type) as info:
        run(handler, fn, **kw)
    fakes.no_secret_in(info.value)
    return info.value


def head(key: str = "k", etag: str | None = None) -> Callable[[S3Client], Awaitable[HeadOutcome]]:
    return lambda c: c.head_object(key, etag)


# -- addressing ----------------------------------------------------------------------------

@pytest.mark.parametrize("endpoint, url", [
    ("http://127.0.0.1:9000", "http://127.0.0.1:9000/bkt/dir/k"),
    ("http://localhost:9000", "http://localhost:9000/bkt/dir/k"),
    ("http://minio.localhost", "http://minio.localhost/bkt/dir/k"),
    ("http://10.1.2.3", "http://10.1.2.3/bkt/dir/k"),
    ("https://s3.example.com", "https://bkt.s3.example.com/dir/k"),
    ("https://s3.example.com:443", "https://bkt.s3.example.com/dir/k"),
    ("http://minio.example:9000", "http://bkt.minio.example:9000/dir/k"),
    ("s3.example.com", "https://bkt.s3.example.com/dir/k"),
])
def test_path_style_for_ip_and_localhost_virtual_hosted_otherwise(endpoint, url):
    srv = Server(200)
    run(srv, head("dir/k"), endpoint_url=endpoint)
    assert len(srv.requests) == 1
    assert str(srv.requests[0].url) == url
    assert srv.requests[0].method == "HEAD"


@pytest.mark.parametrize("region, bucket, url", [
    ("us-east-1", "bkt", "https://bkt.s3.amazonaws.com/k"),
    ("eu-west-1", "bkt", "https://bkt.s3.eu-west-1.amazonaws.com/k"),
    ("eu-west-1", "my.bucket", "https://s3.eu-west-1.amazonaws.com/my.bucket/k"),
])
def test_default_aws_endpoint(region, bucket, url):
    srv = Server(200)
    run(srv, head("k"), endpoint_url=None, region=region, bucket=bucket)
    assert str(srv.requests[0].url) == url


def test_force_path_style():
    srv = Server(200)
    run(srv, head("k"), endpoint_url="https://s3.example.com", force_path_style=True)
    assert str(srv.requests[0].url) == "https://s3.example.com/bkt/k"


# Regression (was a bug): IPv6 endpoint loses its brackets: netloc '::1:9000' makes httpx raise
# InvalidURL (not even a MetafsError)
def test_ipv6_endpoint_path_style():
    srv = Server(200)
    run(srv, head("k"), endpoint_url="http://[::1]:9000")
    assert str(srv.requests[0].url) == "http://[::1]:9000/bkt/k"


def test_bad_endpoint_is_config_error():
    with pytest.raises(errors.ConfigError):
        run(Server(200), head(), endpoint_url="ftp://host")


ODD_KEY = "dir/a b+c%d~e日.txt"
ODD_PATH = "/dir/a%20b%2Bc%25d~e%E6%97%A5.txt"


def test_wire_path_encoding_of_odd_keys_path_style():
    srv = Server(200)
    run(srv, head(ODD_KEY))
    assert srv.requests[0].url.raw_path == b"/bkt" + ODD_PATH.encode()


def test_wire_path_encoding_of_odd_keys_virtual_hosted():
    srv = Server(200)
    run(srv, head(ODD_KEY), endpoint_url="https://s3.example.com")
    assert srv.requests[0].url.raw_path == ODD_PATH.encode()


@pytest.mark.parametrize("key", ["a/./b", "a/../b", "./x"])
# Regression (was a bug): '.'/'..' segments of a key are left literal by uri_encode and httpx removes
# them from the URL, so another key is requested than was signed
def test_dot_segments_in_keys_reach_the_wire(key):
    srv = Server(200)
    run(srv, head(key), credentials=StaticCredentials())
    req = srv.requests[0]
    assert unquote(req.url.raw_path.decode()) == "/bkt/" + key
    assert req.headers["authorization"] == _resign(req, "us-east-1", Credentials("AKID", SECRET))


def test_wire_query_encoding_of_list_page():
    srv = Server(httpx.Response(200, content=EMPTY_LIST))
    run(srv, lambda c: c.list_page("a b+c%~日/", token="tok+/=", max_keys=5))
    assert srv.requests[0].method == "GET"
    assert srv.requests[0].url.raw_path == (
        b"/bkt?list-type=2&prefix=a%20b%2Bc%25~%E6%97%A5%2F&encoding-type=url&delimiter=%2F"
        b"&continuation-token=tok%2B%2F%3D&max-keys=5")


def test_list_page_without_delimiter_or_token():
    srv = Server(httpx.Response(200, content=EMPTY_LIST))
    page = run(srv, lambda c: c.list_page("p/", delimiter=None))
    assert srv.requests[0].url.raw_path == b"/bkt?list-type=2&prefix=p%2F&encoding-type=url"
    assert page.objects == [] and page.prefixes == [] and not page.truncated


# -- signing --------------------------------------------------------------------------------

def _resign(req: httpx.Request, region: str, creds: Credentials) -> str:
    """Sign the request exactly as it went on the wire; return the authorization."""
    path, _, qs = req.url.raw_path.decode("ascii").partition("?")
    added = {"x-amz-date", "x-amz-content-sha256", "x-amz-security-token"}
    sent = {k: v for k, v in req.headers.items()
            if k in ("range", "if-none-match", "if-match")
            or (k.startswith("x-amz-") and k not in added)}
    sreq = SignableRequest(req.method, req.headers["host"], path,
                           parse_qsl(qs, keep_blank_values=True), sent)
    SigV4Signer(region).sign(sreq, creds, NOW)
    return sreq.headers["authorization"]


@pytest.mark.parametrize("endpoint", [LOCAL, "https://s3.example.com"])
def test_signed_request_headers_and_signature_match_the_wire(endpoint):
    srv = Server(304, httpx.Response(200, content=EMPTY_LIST))

    async def both(c: S3Client) -> None:
        await c.head_object(ODD_KEY, '"etag"')
        await c.list_page("a b+c%~日/", token="t+/=")

    run(srv, both, endpoint_url=endpoint, credentials=StaticCredentials())
    assert len(srv.requests) == 2
    for req in srv.requests:
        h = req.headers
        assert h["x-amz-content-sha256"] == EMPTY_SHA256
        assert h["x-amz-date"] == "20240102T030405Z"
        assert h["authorization"].startswith(
            "AWS4-HMAC-SHA256 Credential=AKID/20240102/us-east-1/s3/aws4_request, ")
        assert "x-amz-security-token" not in h
        assert h["host"] == req.url.netloc.decode()
        assert SECRET not in str(h)
        assert h["authorization"] == _resign(req, "us-east-1", Credentials("AKID", SECRET))
    assert "if-none-match" in srv.requests[0].headers["authorization"]


def test_session_token_is_sent_and_signed():
    srv = Server(200)
    run(srv, head(), credentials=StaticCredentials(TOKEN))
    h = srv.requests[0].headers
    assert h["x-amz-security-token"] == TOKEN
    assert "x-amz-security-token" in h["authorization"].split("SignedHeaders=")[1]


def test_monkeypatched_credential_source(monkeypatch):
    src = CredentialSource()

    async def get() -> Credentials:
        return Credentials("AKID2", SECRET)

    monkeypatch.setattr(src, "get", get)
    srv = Server(200)
    run(srv, head(), credentials=src)
    assert "Credential=AKID2/" in srv.requests[0].headers["authorization"]


@pytest.mark.parametrize("creds", [CredentialSource(anonymous=True), None])
def test_anonymous_requests_are_unsigned(creds):
    srv = Server(200, httpx.Response(200, content=EMPTY_LIST))

    async def both(c: S3Client) -> None:
        await c.head_object("k")
        await c.list_page("")

    run(srv, both, credentials=creds)
    for req in srv.requests:
        for name in ("authorization", "x-amz-content-sha256", "x-amz-date",
                     "x-amz-security-token"):
            assert name not in req.headers


# -- retries ------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [500, 503, 429, 502])
def test_retryable_status_retried_with_backoff_then_server_error(status):
    srv = Server(status)
    sleeps: list[float] = []
    rolls = iter([0.5, 0.25, 1.0])

    async def sleep(d: float) -> None:
        sleeps.append(d)

    exc = fails(errors.ServerError, srv, head(), attempts=3, backoff_base=0.2, backoff_cap=5.0,
                sleep=sleep, rng=lambda: next(rolls))
    assert exc.status == status
    assert len(srv.requests) == 3
    assert sleeps == [pytest.approx(0.5 * 0.2), pytest.approx(0.25 * 0.4)]


def test_backoff_is_capped():
    srv = Server(503)
    sleeps: list[float] = []

    async def sleep(d: float) -> None:
        sleeps.append(d)

    fails(errors.ServerError, srv, head(), attempts=5, backoff_base=1.0, backoff_cap=3.0,
          sleep=sleep, rng=lambda: 1.0)
    assert len(srv.requests) == 5
    assert sleeps == [1.0, 2.0, 3.0, 3.0]


def test_retry_then_success():
    srv = Server(503, 500, httpx.Response(200, headers={"etag": '"x"', "content-length": "9"}))
    sleeps: list[float] = []

    async def sleep(d: float) -> None:
        sleeps.append(d)

    res = run(srv, head(), attempts=3, sleep=sleep, rng=lambda: 0.0)
    assert isinstance(res, Fresh) and res.meta.size == 9 and res.meta.etag == '"x"'
    assert len(srv.requests) == 3 and sleeps == [0.0, 0.0]


def test_throttling_code_on_400_is_retried():
    srv = Server(httpx.Response(400, content=xml_error("RequestTimeout")))
    exc = fails(errors.ServerError, srv, lambda c: c.list_page(""), attempts=2)
    assert exc.code == "RequestTimeout"
    assert len(srv.requests) == 2


def test_attempts_one_means_no_retry():
    srv = Server(500)
    fails(errors.ServerError, srv, head(), attempts=1)
    assert len(srv.requests) == 1


def test_non_retryable_errors_are_not_retried():
    srv = Server(httpx.Response(403, content=xml_error("AccessDenied")))
    fails(errors.AccessDeniedError, srv, lambda c: c.list_page(""), attempts=3)
    assert len(srv.requests) == 1


def test_transport_error_after_all_attempts():
    srv = Server(httpx.ConnectError("[Errno 111] Connection refused"))
    sleeps: list[float] = []

    async def sleep(d: float) -> None:
        sleeps.append(d)

    exc = fails(errors.TransportError, srv, head(), attempts=3, sleep=sleep, rng=lambda: 0.5)
    assert len(srv.requests) == 3 and len(sleeps) == 2
    assert "127.0.0.1" in str(exc)


def test_transport_error_then_success():
    srv = Server(httpx.ReadError("reset"), 404)
    assert run(srv, head(), attempts=2) == Absent()
    assert len(srv.requests) == 2


def test_hung_server_times_out_each_attempt():
    async def hang(request: httpx.Request) -> httpx.Response:
        await trio.sleep_forever()
        raise AssertionError

    srv = Server(hang)
    times: list[float] = []

    async def timed(c: S3Client) -> None:
        times.append(trio.current_time())
        try:
            await c.head_object("k")
        finally:
            times.append(trio.current_time())

    exc = fails(errors.TransportError, srv, timed, attempts=3, attempt_timeout=0.05,
                mock_clock=True)
    assert len(srv.requests) == 3
    assert times[1] - times[0] == pytest.approx(0.15, abs=0.01)
    assert "within 0.05 s" in str(exc)


# -- HEAD Object outcomes ------------------------------------------------------------------

def test_head_object_ok():
    srv = Server(httpx.Response(200, headers={
        "content-length": "42", "etag": '"abc"', "last-modified": "Thu, 10 Dec 2020 03:37:30 GMT",
        "x-amz-meta-color": "blue", "x-amz-storage-class": "GLACIER"}))
    res = run(srv, head("dir/k"))
    assert isinstance(res, Fresh)
    m = res.meta
    assert (m.key, m.size, m.etag, m.mtime) == ("dir/k", 42, '"abc"', 1607571450)
    # The xattr table is built once, here, from the answer's headers.
    assert m.xattrs == {b"user.s3.etag": b"abc", b"user.s3.last-modified": b"Thu, 10 Dec 2020 03:37:30 GMT",
                        b"user.color": b"blue", b"user.s3.storage-class": b"GLACIER"}
    assert "if-none-match" not in srv.requests[0].headers


def test_head_object_decodes_each_header_value_on_its_own():
    # One value that is not UTF-8 made httpx decode the whole block as Latin-1 ('cafÃ©').
    srv = Server(httpx.Response(200, headers=[
        (b"content-length", b"1"), (b"x-amz-meta-good", "café".encode()),
        (b"x-amz-meta-bad", b"\xff\xfe\xfd")]))
    res = run(srv, head())
    assert isinstance(res, Fresh)
    assert res.meta.xattrs == {b"user.good": "café".encode(), b"user.bad": b"\xff\xfe\xfd"}


def test_head_bucket_decodes_each_header_value_on_its_own():
    srv = Server(httpx.Response(200, headers=[(b"x-amz-bucket-region", b"eu-west-1"),
                                              (b"x-amz-bucket-x", "é".encode()), (b"x-amz-bad", b"\xff")]))
    headers = run(srv, lambda c: c.head_bucket())
    assert headers["x-amz-bucket-x"] == "é"
    assert headers["x-amz-bad"].encode("utf-8", "surrogateescape") == b"\xff"  # bytes kept, as surrogates


def test_head_object_404_is_absent():
    srv = Server(404)
    assert run(srv, head()) == Absent()
    assert len(srv.requests) == 1


def test_head_object_304_is_not_modified_and_sent_if_none_match():
    srv = Server(304)
    assert run(srv, head("k", '"abc"')) == NotModified()
    assert srv.requests[0].headers["if-none-match"] == '"abc"'


@pytest.mark.parametrize("code", ["SignatureDoesNotMatch", "InvalidAccessKeyId"])
def test_403_bad_credentials(code):
    srv = Server(httpx.Response(403, content=xml_error(code, "The AWS Access Key Id AKID ...")))
    exc = fails(errors.BadCredentialsError, srv, lambda c: c.list_page("p/"))
    assert exc.code == code and exc.status == 403


def test_403_access_denied():
    srv = Server(httpx.Response(403, content=xml_error("AccessDenied", "Access Denied")))
    exc = fails(errors.AccessDeniedError, srv, lambda c: c.list_page("p/"))
    assert exc.code == "AccessDenied"


def test_bodiless_403_on_head_object_is_access_denied():
    exc = fails(errors.AccessDeniedError, Server(403), head())
    assert exc.code == "AccessDenied"


def test_oss_bodiless_error_code_header():
    err = base64.b64encode(xml_error("InvalidAccessKeyId")).decode()
    srv = Server(httpx.Response(403, headers={"x-oss-err": err}))
    fails(errors.BadCredentialsError, srv, head())


def test_head_object_other_error_is_s3_error():
    srv = Server(httpx.Response(409, content=xml_error("Conflict")))
    exc = fails(errors.S3Error, srv, head())
    assert type(exc) is errors.S3Error and exc.status == 409


def test_list_page_404_is_no_such_bucket():
    srv = Server(httpx.Response(404, content=xml_error("NoSuchBucket")))
    fails(errors.NoSuchBucketError, srv, lambda c: c.list_page(""))


def test_list_page_malformed_body():
    srv = Server(httpx.Response(200, content=b"<html>proxy login</html>"))
    fails(errors.MalformedResponseError, srv, lambda c: c.list_page(""))


# -- HEAD Bucket -------------------------------------------------------------------------------

def test_head_bucket_ok():
    srv = Server(httpx.Response(200, headers={"x-amz-bucket-region": "us-east-1"}))
    h = run(srv, lambda c: c.head_bucket())
    assert h["x-amz-bucket-region"] == "us-east-1"
    assert srv.requests[0].method == "HEAD"
    assert srv.requests[0].url.raw_path == b"/bkt"


def test_head_bucket_virtual_hosted_path_is_root():
    srv = Server(200)
    run(srv, lambda c: c.head_bucket(), endpoint_url="https://s3.example.com")
    assert str(srv.requests[0].url) == "https://bkt.s3.example.com/"


def test_head_bucket_404_is_no_such_bucket():
    srv = Server(404)
    fails(errors.NoSuchBucketError, srv, lambda c: c.head_bucket())
    assert len(srv.requests) == 1


@pytest.mark.parametrize("code, exc_type", [
    ("SignatureDoesNotMatch", errors.BadCredentialsError),
    ("InvalidAccessKeyId", errors.BadCredentialsError),
    ("AccessDenied", errors.AccessDeniedError),
])
def test_head_bucket_403_asks_a_listing_for_the_code(code, exc_type):
    srv = Server(403, httpx.Response(403, content=xml_error(code)))
    exc = fails(exc_type, srv, lambda c: c.head_bucket())
    assert exc.code == code
    assert [r.method for r in srv.requests] == ["HEAD", "GET"]
    assert srv.requests[1].url.raw_path == b"/bkt?list-type=2&max-keys=0"


def test_head_bucket_403_then_listing_404():
    srv = Server(403, httpx.Response(404, content=xml_error("NoSuchBucket")))
    fails(errors.NoSuchBucketError, srv, lambda c: c.head_bucket())


def test_head_bucket_403_but_listing_allowed():
    srv = Server(httpx.Response(403, headers={"x-amz-bucket-region": "us-east-1"}),
                 httpx.Response(200, content=EMPTY_LIST))
    h = run(srv, lambda c: c.head_bucket())
    assert isinstance(h, dict)
    assert len(srv.requests) == 2


# -- region discovery -----------------------------------------------------------------------

def test_301_region_switches_signer_and_aws_host():
    srv = Server(httpx.Response(301, headers={"x-amz-bucket-region": "eu-west-1"}), 200)
    sleeps: list[float] = []

    async def sleep(d: float) -> None:
        sleeps.append(d)

    async def go(c: S3Client) -> str:
        await c.head_bucket()
        return c.region

    region = run(srv, go, endpoint_url=None, credentials=StaticCredentials(), attempts=1,
                 sleep=sleep)
    assert region == "eu-west-1"
    r0, r1 = srv.requests
    assert r0.url.host == "bkt.s3.amazonaws.com" and scope_region(r0) == "us-east-1"
    assert r1.url.host == "bkt.s3.eu-west-1.amazonaws.com" and scope_region(r1) == "eu-west-1"
    assert r1.headers["authorization"] == _resign(r1, "eu-west-1", Credentials("AKID", SECRET))
    assert sleeps == []


def test_region_redirect_keeps_custom_endpoint_host():
    srv = Server(httpx.Response(301, headers={"x-amz-bucket-region": "ap-south-1"}), 200)
    run(srv, head("k"), endpoint_url="https://s3.example.com", credentials=StaticCredentials())
    r0, r1 = srv.requests
    assert r0.url.host == r1.url.host == "bkt.s3.example.com"
    assert (scope_region(r0), scope_region(r1)) == ("us-east-1", "ap-south-1")


def test_400_authorization_header_malformed_names_the_region():
    bad = httpx.Response(400, content=xml_error("AuthorizationHeaderMalformed",
                                                "the region 'us-east-1' is wrong",
                                                Region="eu-central-1"))
    srv = Server(bad, httpx.Response(200, content=EMPTY_LIST))

    async def go(c: S3Client) -> str:
        await c.list_page("")
        return c.region

    assert run(srv, go, endpoint_url=None, credentials=StaticCredentials()) == "eu-central-1"
    r0, r1 = srv.requests
    assert (scope_region(r0), scope_region(r1)) == ("us-east-1", "eu-central-1")
    assert r1.url.host == "bkt.s3.eu-central-1.amazonaws.com"


def test_region_redirect_followed_once():
    srv = Server(httpx.Response(301, headers={"x-amz-bucket-region": "eu-west-1"}),
                 httpx.Response(301, headers={"x-amz-bucket-region": "eu-west-2"}))
    exc = fails(errors.WrongRegionError, srv, head(), endpoint_url=None)
    assert exc.region == "eu-west-2"
    assert len(srv.requests) == 2


# -- GET range -----------------------------------------------------------------------------

BODY = bytes(range(100))


def test_get_range_206():
    srv = Server(httpx.Response(206, content=BODY[10:20]))
    assert run(srv, lambda c: c.get_range("k", 10, 19, '"e"')) == BODY[10:20]
    h = srv.requests[0].headers
    assert h["range"] == "bytes=10-19" and h["if-match"] == '"e"'


def test_get_range_without_etag_has_no_if_match():
    srv = Server(httpx.Response(206, content=b"x"))
    run(srv, lambda c: c.get_range("k", 0, 0, None))
    assert "if-match" not in srv.requests[0].headers


def test_get_range_200_is_sliced():
    srv = Server(httpx.Response(200, content=BODY))
    assert run(srv, lambda c: c.get_range("k", 10, 19, None)) == BODY[10:20]


def test_get_range_412_is_changed():
    srv = Server(412)
    exc = fails(errors.ChangedError, srv, lambda c: c.get_range("k", 0, 9, '"old"'))
    assert exc.status == 412
    assert len(srv.requests) == 1


def test_get_range_416_is_empty():
    assert run(Server(416), lambda c: c.get_range("k", 1000, 1999, None)) == b""


def test_get_range_404_is_not_found():
    fails(errors.NotFoundError, Server(404), lambda c: c.get_range("k", 0, 9, None))


# Regression (was a bug): _send parses every 2xx body as an S3 error; object data that is an <Error>
# document with a throttling code is retried and reported as ServerError
def test_get_range_data_that_looks_like_an_error_document():
    data = xml_error("SlowDown", "example of a throttling answer")
    srv = Server(httpx.Response(206, content=data))
    assert run(srv, lambda c: c.get_range("doc.xml", 0, len(data) - 1, None)) == data
    assert len(srv.requests) == 1

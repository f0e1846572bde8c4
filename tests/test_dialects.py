"""What each dialect sends and how it reads the answers, over ``httpx.MockTransport``.

Request signatures are re-verified from the wire: COS with ``cos_signature``
(the function checked against COS's examples and SDK), OSS and OBS with
their official SDKs, S3 Express with ``SigV4Signer`` (checked against botocore).
The last section changes one :class:`~metafs.s3.dialects.Dialect` field at a
time: behaviour follows the field, never the provider's name.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging
import re
from typing import Any

import httpx
import pytest

from metafs import errors
from metafs.s3 import dialects
from metafs.s3.client import BucketInfo, S3Client
from metafs.s3.dialects import COS, OBS, OSS, S3, S3EXPRESS
from metafs.s3.model import Absent, Fresh, parse_list, parse_location
from metafs.signing import Credentials, SignableRequest
from metafs.signing.cos import cos_signature
from metafs.signing.sigv4 import SigV4Signer
from tests.fakes import (
    EXPRESS_BUCKET,
    NOW,
    SECRET,
    TOKEN,
    ExpressServer,
    Server,
    StaticCredentials,
    headers_of,
    listing,
    no_secret_in,
    run,
    wire_query,
    xml_error,
)

COS_BUCKET = "examplebucket-1250000000"


@pytest.mark.parametrize("dialect, host, region", [
    (COS, "cos.ap-guangzhou.myqcloud.com", "ap-guangzhou"),
    (COS, "cos-internal.ap-shanghai.tencentcos.cn", "ap-shanghai"),
    (COS, "cos.accelerate.myqcloud.com", None),
    (OSS, "oss-cn-hangzhou.aliyuncs.com", "cn-hangzhou"),
    (OSS, "oss-cn-hangzhou-internal.aliyuncs.com", "cn-hangzhou"),
    (OSS, "oss-accelerate-overseas.aliyuncs.com", None),
    (OSS, "files.example.com", None),
    (OBS, "obs.cn-north-4.myhuaweicloud.com", "cn-north-4"),
    (OBS, "obs.eu-west-101.myhuaweicloud.eu", "eu-west-101"),
    (S3, "s3.eu-west-1.amazonaws.com", "eu-west-1"),
    (S3, "s3-ap-south-1.amazonaws.com", "ap-south-1"),
    (S3, "s3.dualstack.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
    (S3, "s3.amazonaws.com", None),
    (S3, "s3-external-1.amazonaws.com", None),
    (S3EXPRESS, "s3express-usw2-az1.us-west-2.amazonaws.com", "us-west-2"),
])
def test_region_named_by_endpoint_host(dialect, host, region):
    assert dialects.region_from_host(dialect, host) == region


# -- COS requests -----------------------------------------------------------------------------

def _verify_cos(req: httpx.Request, key: str, secret: str = SECRET) -> None:
    """Recompute q-signature from the wire, as a COS server does."""
    h = headers_of(req)
    fields = dict(p.partition("=")[::2] for p in h["authorization"].split("&"))
    header_list = fields["q-header-list"].split(";")
    params = wire_query(req)
    assert sorted(k.lower() for k, _ in params) == sorted(
        p for p in fields["q-url-param-list"].split(";") if p)
    expected = cos_signature(secret, fields["q-key-time"], req.method, "/" + key, params,
                             [(n, h[n]) for n in header_list])
    assert fields["q-signature"] == expected


def test_cos_head_object_request_shape():
    srv = Server(httpx.Response(200, headers={"content-length": "3", "etag": '"abc"',
                                              "x-cos-storage-class": "STANDARD_IA"}))
    res = run(srv, lambda c: c.head_object("dir/a b+c.txt", '"abc"'), dialect=COS,
              bucket=COS_BUCKET, region="ap-guangzhou", credentials=StaticCredentials(TOKEN))
    req = srv.requests[0]
    assert str(req.url) == (f"https://{COS_BUCKET}.cos.ap-guangzhou.myqcloud.com"
                            "/dir/a%20b%2Bc.txt")
    h = headers_of(req)
    assert h["authorization"].startswith("q-sign-algorithm=sha1&q-ak=AKID&q-sign-time=")
    assert "q-header-list=host;if-none-match;x-cos-security-token&" in h["authorization"]
    assert h["x-cos-security-token"] == TOKEN
    assert "x-amz-checksum-mode" not in h and "x-amz-security-token" not in h
    _verify_cos(req, "dir/a b+c.txt")
    assert isinstance(res, Fresh) and res.meta.xattrs == {
        b"user.s3.etag": b"abc", b"user.s3.storage-class": b"STANDARD_IA"}


def test_cos_v1_marker_paging():
    srv = Server(
        httpx.Response(200, content=listing("a", "b%2Bc", prefixes=("d/",), truncated=True,
                                            extra="<NextMarker>d/</NextMarker>")),
        httpx.Response(200, content=listing("e+f", "g%20h")))

    async def pages(c: S3Client) -> list:
        p1 = await c.list_page("")
        p2 = await c.list_page("", token=p1.next_token)
        return [p1, p2]

    p1, p2 = run(srv, pages, dialect=COS, bucket=COS_BUCKET, region="ap-guangzhou")
    assert [wire_query(r) for r in srv.requests] == [
        [("encoding-type", "url"), ("delimiter", "/")],
        [("encoding-type", "url"), ("delimiter", "/"), ("marker", "d/")]]
    assert srv.requests[1].url.raw_path == b"/?encoding-type=url&delimiter=%2F&marker=d%2F"
    for r in srv.requests:
        _verify_cos(r, "")
    assert (p1.truncated, p1.next_token, p1.prefixes) == (True, "d/", ["d/"])
    # COS's SDK decodes with plain unquote: '+' is a plus, not a space.
    assert [o.key for o in p1.objects + p2.objects] == ["a", "b+c", "e+f", "g h"]


def test_cos_bucket_check_and_bodiless_403():
    ok = Server(httpx.Response(200, headers={"x-cos-bucket-region": "ap-guangzhou",
                                             "x-cos-request-id": "R"}))
    info = run(ok, lambda c: c.check_bucket(), dialect=COS, bucket=COS_BUCKET, region="ap-guangzhou")
    assert info.region == "ap-guangzhou" and ok.requests[0].method == "HEAD"
    assert ok.requests[0].url.raw_path == b"/"
    bad = Server(403, httpx.Response(403, content=xml_error("SignatureDoesNotMatch")))
    with pytest.raises(errors.BadCredentialsError) as e:
        run(bad, lambda c: c.check_bucket(), dialect=COS, bucket=COS_BUCKET, region="ap-guangzhou")
    no_secret_in(e.value)
    # The code comes from a one-key V1 listing (max-keys=0 is S3's, not documented by COS).
    assert bad.requests[1].url.raw_path == b"/?encoding-type=url&max-keys=1"


def test_cos_delete_marker_is_absent():
    srv = Server(httpx.Response(404, headers={"x-cos-delete-marker": "true"}))
    res = run(srv, lambda c: c.head_object("gone"), dialect=COS, bucket=COS_BUCKET,
              region="ap-guangzhou")
    assert res == Absent()


def test_vendor_redirect_is_an_error_naming_the_location():
    srv = Server(httpx.Response(301, headers={"location": "https://b.obs.cn-east-3.myhuaweicloud.com/"}))
    with pytest.raises(errors.S3Error, match=r"cn-east-3.*check --region"):
        run(srv, lambda c: c.head_object("k"), dialect=OBS, region="cn-north-4")
    assert len(srv.requests) == 1


# -- OSS requests -----------------------------------------------------------------------------

def _verify_oss(req: httpx.Request, bucket: str, key: str, region: str, v1: bool = False) -> None:
    """Re-sign the wire request with the official SDK; it must agree."""
    from alibabacloud_oss_v2.credentials import StaticCredentialsProvider
    from alibabacloud_oss_v2.signer import SignerV1, SignerV4
    from alibabacloud_oss_v2.types import HttpRequest, SigningContext

    h = headers_of(req)
    sdk = HttpRequest(req.method, str(req.url))
    sdk.headers.update({k: v for k, v in h.items() if k != "authorization"})
    creds = StaticCredentialsProvider("AKID", SECRET).get_credentials()
    if v1:
        from email.utils import parsedate_to_datetime
        SignerV1().sign(SigningContext(bucket=bucket, key=key or None, request=sdk, credentials=creds,
                                       signing_time=parsedate_to_datetime(h["date"])))
    else:
        when = dt.datetime.strptime(h["x-oss-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        SignerV4().sign(SigningContext(product="oss", region=region, bucket=bucket, key=key or None,
                                       request=sdk, signing_time=when, credentials=creds))
    assert sdk.headers["Authorization"] == h["authorization"]


def test_oss_v4_requests_and_sdk_agreement():
    srv = Server(httpx.Response(200, content=b"<LocationConstraint>oss-cn-hangzhou</LocationConstraint>"),
                 httpx.Response(200, content=listing("x"), headers={}),
                 httpx.Response(304))

    async def go(c: S3Client) -> BucketInfo:
        info = await c.check_bucket()
        await c.list_page("a b/", token="tok+/=")
        await c.head_object("a b/x", '"5B3C1A2E053D763E1B002CC607C5A0FE"')
        return info

    info = run(srv, go, dialect=OSS, region="oss-cn-hangzhou", credentials=StaticCredentials(TOKEN))
    assert info == BucketInfo({}, "oss-cn-hangzhou")
    loc, lst, head = srv.requests
    assert str(loc.url) == "https://bkt.oss-cn-hangzhou.aliyuncs.com/?location"
    assert wire_query(lst) == [("list-type", "2"), ("prefix", "a b/"), ("encoding-type", "url"),
                               ("delimiter", "/"), ("continuation-token", "tok+/=")]
    for r in srv.requests:
        h = headers_of(r)
        assert h["authorization"].startswith(
            "OSS4-HMAC-SHA256 Credential=AKID/20240102/cn-hangzhou/oss/aliyun_v4_request,")
        assert h["x-oss-security-token"] == TOKEN
        assert h["x-oss-content-sha256"] == "UNSIGNED-PAYLOAD"
        assert "x-amz-checksum-mode" not in h
    # Uppercase ETags go back verbatim (OSS compares them as strings).
    assert headers_of(head)["if-none-match"] == '"5B3C1A2E053D763E1B002CC607C5A0FE"'
    _verify_oss(loc, "bkt", "", "cn-hangzhou")
    _verify_oss(lst, "bkt", "", "cn-hangzhou")
    _verify_oss(head, "bkt", "a b/x", "cn-hangzhou")


def test_oss_v1_fallback_signature():
    srv = Server(httpx.Response(200, content=listing()))
    run(srv, lambda c: c.list_page("p/", token="t"), dialect=OSS, region="cn-hangzhou",
        oss_signature="v1")
    h = headers_of(srv.requests[0])
    assert h["authorization"].startswith("OSS AKID:") and "x-oss-date" not in h
    _verify_oss(srv.requests[0], "bkt", "", "cn-hangzhou", v1=True)


def test_oss_bodiless_errors_decoded_from_x_oss_err():
    doc = xml_error("AccessDenied", "You have no right to access this object.")
    srv = Server(httpx.Response(403, headers={"x-oss-err": base64.b64encode(doc).decode(),
                                              "x-oss-ec": "0003-00000001"}))
    with pytest.raises(errors.AccessDeniedError) as e:
        run(srv, lambda c: c.head_object("k"), dialect=OSS, region="cn-hangzhou")
    assert e.value.code == "AccessDenied"
    assert "You have no right to access this object." in str(e.value)
    bad = Server(httpx.Response(403, headers={"x-oss-err": base64.b64encode(
        xml_error("SignatureDoesNotMatch")).decode()}))
    with pytest.raises(errors.BadCredentialsError):
        run(bad, lambda c: c.head_object("k"), dialect=OSS, region="cn-hangzhou")
    junk = Server(httpx.Response(403, headers={"x-oss-err": "%%% not base64"}))
    with pytest.raises(errors.AccessDeniedError):
        run(junk, lambda c: c.head_object("k"), dialect=OSS, region="cn-hangzhou")


def test_oss_location_denied_falls_back_to_a_listing():
    srv = Server(httpx.Response(403, content=xml_error("AccessDenied")),
                 httpx.Response(200, content=listing()))
    info = run(srv, lambda c: c.check_bucket(), dialect=OSS, region="cn-hangzhou")
    assert info == BucketInfo({}, None)
    assert srv.requests[1].url.raw_path == b"/?list-type=2&encoding-type=url&max-keys=1"
    both = Server(httpx.Response(403, content=xml_error("AccessDenied")),
                  httpx.Response(403, content=xml_error("AccessDenied", "no list")))
    with pytest.raises(errors.AccessDeniedError):
        run(both, lambda c: c.check_bucket(), dialect=OSS, region="cn-hangzhou")
    gone = Server(httpx.Response(404, content=xml_error("NoSuchBucket")))
    with pytest.raises(errors.NoSuchBucketError):
        run(gone, lambda c: c.check_bucket(), dialect=OSS, region="cn-hangzhou")


def test_oss_wrong_endpoint_is_followed_on_default_endpoints(caplog):
    wrong = httpx.Response(403, content=xml_error(
        "AccessDenied", "The bucket you are attempting to access must be addressed using the "
        "specified endpoint.", Endpoint="oss-cn-beijing.aliyuncs.com"))
    srv = Server(wrong,
                 httpx.Response(200, content=b"<LocationConstraint>oss-cn-beijing</LocationConstraint>"))

    async def go(c: S3Client) -> str:
        await c.check_bucket()
        await c.list_page("")
        return c.region

    srv.answers.append(httpx.Response(200, content=listing()))
    with caplog.at_level(logging.INFO, logger="metafs"):
        assert run(srv, go, dialect=OSS, region="cn-hangzhou", explicit_region=True) == "cn-beijing"
    hosts = [r.url.host for r in srv.requests]
    assert hosts == ["bkt.oss-cn-hangzhou.aliyuncs.com", "bkt.oss-cn-beijing.aliyuncs.com",
                     "bkt.oss-cn-beijing.aliyuncs.com"]
    assert "/cn-beijing/oss/" in srv.requests[1].headers["authorization"]
    assert len([r for r in caplog.records if "is in region" in r.getMessage()]) == 1
    # A custom domain cannot be re-pointed: one clear error.
    custom = Server(wrong)
    with pytest.raises(errors.WrongRegionError,
                       match=re.escape("must be addressed at oss-cn-beijing.aliyuncs.com")):
        run(custom, lambda c: c.check_bucket(), dialect=OSS, region="cn-hangzhou",
            endpoint_url="https://files.example.com")
    assert len(custom.requests) == 1


# -- OBS requests -----------------------------------------------------------------------------

def _verify_obs(req: httpx.Request, bucket: str, key: str) -> None:
    from obs import auth as obs_auth
    from obs.convertor import Adapter

    h = headers_of(req)
    args = {k: (v if v != "" else None) for k, v in wire_query(req)}
    expected = obs_auth.Authentication("AKID", SECRET, False, Adapter("obs"), "obs.example", False) \
        .doAuth(req.method, bucket, key, args, {k: v for k, v in h.items() if k != "authorization"})
    assert expected["Authorization"] == h["authorization"]


def test_obs_requests_paging_and_sdk_agreement():
    srv = Server(
        httpx.Response(200, headers={"x-obs-bucket-location": "cn-north-4", "x-obs-version": "3.0"}),
        # OBS (like S3 V1) names no NextMarker without a delimiter: the last key pages.
        httpx.Response(200, content=listing("a+b", "c%2Bd", truncated=True)),
        httpx.Response(200, content=listing("e")),
        httpx.Response(200, headers={"content-length": "1", "etag": '"e"',
                                     "x-obs-meta-city": "S%C3%A3o%20Paulo"}))

    async def go(c: S3Client) -> Any:
        info = await c.check_bucket()
        p1 = await c.list_page("dir one/", delimiter=None)
        p2 = await c.list_page("dir one/", delimiter=None, token=p1.next_token)
        head = await c.head_object("dir one/c+d")
        return info, p1, p2, head

    info, p1, _p2, head = run(srv, go, dialect=OBS, region="cn-north-4",
                             credentials=StaticCredentials(TOKEN))
    assert info.region == "cn-north-4"
    assert str(srv.requests[0].url) == "https://bkt.obs.cn-north-4.myhuaweicloud.com/"
    # OBS's SDK decodes listings with unquote_plus.
    assert [o.key for o in p1.objects] == ["a b", "c+d"] and p1.next_token == "c+d"
    assert wire_query(srv.requests[2]) == [("prefix", "dir one/"), ("encoding-type", "url"),
                                           ("marker", "c+d")]
    for r, key in zip(srv.requests, ["", "", "", "dir one/c+d"], strict=True):
        h = headers_of(r)
        assert h["authorization"].startswith("OBS AKID:")
        assert h["x-obs-security-token"] == TOKEN and "date" in h
        _verify_obs(r, "bkt", key)
    # Values OBS keeps percent-encoded are decoded for user.*, once, where the HEAD answer arrives.
    assert isinstance(head, Fresh) and head.meta.xattrs is not None
    assert head.meta.xattrs[b"user.city"] == "São Paulo".encode()


# -- S3 directory buckets ---------------------------------------------------------------------

def _resign_express(req: httpx.Request, key_id: str, secret: str, token: str | None,
                    token_header: str) -> str:
    h = headers_of(req)
    signed = h["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    added = {"host", "x-amz-date", "x-amz-content-sha256", token_header}
    sreq = SignableRequest(req.method, h["host"], req.url.raw_path.decode().partition("?")[0],
                           wire_query(req), {n: h[n] for n in signed if n not in added})
    SigV4Signer("us-west-2", service="s3express", token_header=token_header).sign(
        sreq, Credentials(key_id, secret, token), NOW)
    return sreq.headers["authorization"]


def test_directory_bucket_requests():
    srv = ExpressServer(lambda r: httpx.Response(200, content=listing("b", "a"))
                        if r.method == "GET" else httpx.Response(200))

    async def go(c: S3Client) -> None:
        await c.check_bucket()
        await c.head_object("k")
        await c.list_page("")

    run(srv, go, bucket=EXPRESS_BUCKET, region="us-west-2", endpoint_url=None,
        credentials=StaticCredentials(TOKEN, key_id="AKIAIAM"))
    hb, cs, head, lst = srv.requests
    host = f"{EXPRESS_BUCKET}.s3express-usw2-az1.us-west-2.amazonaws.com"
    assert {r.url.host for r in srv.requests} == {host}
    assert (hb.method, hb.url.raw_path) == ("HEAD", b"/")
    assert (cs.method, cs.url.raw_path) == ("GET", b"/?session")
    assert headers_of(cs)["x-amz-create-session-mode"] == "ReadOnly"
    for r in (hb, cs):  # IAM credentials, STS token in x-amz-security-token
        h = headers_of(r)
        assert h["authorization"].startswith(
            "AWS4-HMAC-SHA256 Credential=AKIAIAM/20240102/us-west-2/s3express/aws4_request")
        assert h["x-amz-security-token"] == TOKEN and "x-amz-s3session-token" not in h
        assert h["authorization"] == _resign_express(r, "AKIAIAM", SECRET, TOKEN, "x-amz-security-token")
    for r in (head, lst):  # session keys, session token, never the IAM token
        h = headers_of(r)
        assert "Credential=SESSIONKEY1/20240102/us-west-2/s3express/" in h["authorization"]
        assert h["x-amz-s3session-token"] == "SESSION-TOKEN-1" and "x-amz-security-token" not in h
        assert h["authorization"] == _resign_express(r, "SESSIONKEY1", "SESSION-SECRET-1",
                                                     "SESSION-TOKEN-1", "x-amz-s3session-token")
    assert headers_of(head)["x-amz-checksum-mode"] == "ENABLED"


def test_directory_bucket_addressing_is_virtual_hosted_only():
    with pytest.raises(errors.ConfigError, match="virtual-hosted only"):
        run(Server(200), lambda c: c.head_object("k"), bucket=EXPRESS_BUCKET, region="us-west-2",
            endpoint_url="http://127.0.0.1:9000")
    with pytest.raises(errors.ConfigError, match="virtual-hosted only"):
        run(Server(200), lambda c: c.head_object("k"), bucket=EXPRESS_BUCKET, region="us-west-2",
            endpoint_url=None, force_path_style=True)


def test_parse_location():
    assert parse_location(b'<?xml version="1.0"?><LocationConstraint>oss-cn-hangzhou</LocationConstraint>') \
        == "oss-cn-hangzhou"
    assert parse_location(b"<Location>cn-north-4</Location>") == "cn-north-4"
    with pytest.raises(errors.MalformedResponseError):
        parse_location(b"<html/>")


def test_listing_decoding_per_dialect():
    body = listing("a+b", "c%20d", "e%2Bf")
    assert [o.key for o in parse_list(body, version=2).objects] == ["a b", "c d", "e+f"]
    assert [o.key for o in parse_list(body, version=2, plus_is_space=False).objects] == ["a+b", "c d", "e+f"]


# -- each Dialect field, changed alone ---------------------------------------------------------

def test_adopts_bucket_region():
    def check(dialect: dialects.Dialect) -> tuple[str, str]:
        async def go(c: S3Client) -> tuple[str, str]:
            c.adopt_bucket_region((await c.check_bucket()).region)
            await c.head_object("k")
            return c.region, srv.requests[-1].url.host

        return run(srv, go, dialect=dialect, bucket=COS_BUCKET, region="ap-guangzhou")

    srv = Server(httpx.Response(200, headers={"x-cos-bucket-region": "ap-beijing"}))
    assert check(COS) == ("ap-guangzhou", f"{COS_BUCKET}.cos.ap-guangzhou.myqcloud.com")
    assert check(dataclasses.replace(COS, adopts_bucket_region=True)) == (
        "ap-beijing", f"{COS_BUCKET}.cos.ap-beijing.myqcloud.com")
    srv = Server(httpx.Response(200, headers={"x-amz-bucket-region": "eu-west-1"}))
    assert check(dataclasses.replace(S3, adopts_bucket_region=False))[0] == "ap-guangzhou"


def test_bucket_probe():
    probe = (("list-type", "2"), ("max-keys", "0"), ("fetch-owner", "false"))
    srv = Server(403, httpx.Response(403, content=xml_error("AccessDenied")))
    with pytest.raises(errors.AccessDeniedError):
        run(srv, lambda c: c.check_bucket(), dialect=dataclasses.replace(COS, bucket_probe=probe),
            bucket=COS_BUCKET, region="ap-guangzhou")
    assert wire_query(srv.requests[1]) == list(probe)


def test_follows_region_redirects_in_the_client():
    moved = httpx.Response(301, headers={"x-amz-bucket-region": "cn-east-3",
                                         "location": "https://bkt.obs.cn-east-3.myhuaweicloud.com/"})
    srv = Server(moved, 200)

    async def go(c: S3Client) -> str:
        await c.head_object("k")
        return c.region

    following = dataclasses.replace(OBS, follows_region_redirects=True)
    assert run(srv, go, dialect=following, region="cn-north-4") == "cn-east-3"
    assert [r.url.host for r in srv.requests] == ["bkt.obs.cn-north-4.myhuaweicloud.com",
                                                  "bkt.obs.cn-east-3.myhuaweicloud.com"]
    srv = Server(moved, 200)
    with pytest.raises(errors.S3Error, match=r"PermanentRedirect.*cn-east-3"):
        run(srv, go, dialect=dataclasses.replace(S3, follows_region_redirects=False))
    assert len(srv.requests) == 1


def test_wrong_endpoint_403_in_the_client():
    wrong = httpx.Response(403, content=xml_error("AccessDenied", Endpoint="oss-cn-beijing.aliyuncs.com"))
    srv = Server(wrong)
    with pytest.raises(errors.AccessDeniedError):
        run(srv, lambda c: c.list_page(""), dialect=dataclasses.replace(OSS, wrong_endpoint_403=False),
            region="cn-hangzhou")
    assert len(srv.requests) == 1


def test_make_session_signer():
    srv = ExpressServer(lambda r: httpx.Response(200, content=listing()))
    run(srv, lambda c: c.list_page(""), bucket=EXPRESS_BUCKET, region="us-west-2",
        dialect=dataclasses.replace(S3EXPRESS, make_session_signer=None))
    assert srv.sessions == 0  # without a session signer, data requests take the IAM keys
    assert "Credential=AKID/20240102/us-west-2/s3express/" in srv.requests[0].headers["authorization"]
    srv = ExpressServer(200)
    run(srv, lambda c: c.head_object("k"), dialect=dataclasses.replace(S3, make_session_signer=(
        S3EXPRESS.make_session_signer)))
    assert srv.sessions == 1 and "x-amz-s3session-token" in srv.requests[1].headers


def test_host_region_and_regionless_signatures():
    hosts = dataclasses.replace(COS, host_region=re.compile(r"^cos\.([a-z0-9-]+)\.example$"))
    assert dialects.region_from_host(hosts, "COS.AP-NANJING.EXAMPLE.") == "ap-nanjing"
    assert dialects.region_from_host(COS, "cos.ap-nanjing.example") is None
    assert (OSS.signing_region_needed("v4"), OSS.signing_region_needed("v1")) == (True, False)
    assert dataclasses.replace(OSS, regionless_signatures=frozenset()).signing_region_needed("v1")
    assert not COS.signing_region_needed("v4")


def test_checksum_mode_and_percent_decode_values():
    srv = Server(httpx.Response(200, headers={"x-amz-meta-city": "S%C3%A3o"}))
    res = run(srv, lambda c: c.head_object("k"),
              dialect=dataclasses.replace(S3, checksum_mode=False, percent_decode_values=True))
    assert "x-amz-checksum-mode" not in srv.requests[0].headers
    assert isinstance(res, Fresh) and res.meta.xattrs == {b"user.city": "São".encode()}


def test_listing_version_is_dialect_data():
    # ListObjectsV2 (continuation token) for S3, directory buckets and OSS;
    # V1 (marker) for COS and OBS, whose V2 is undocumented.
    assert {d.name: d.list_version for d in (S3, S3EXPRESS, COS, OSS, OBS)} == {
        "s3": 2, "s3express": 2, "cos": 1, "oss": 2, "obs": 1}

"""Provider dialects without a kernel: selection, configuration, credentials, and
the requests each dialect sends, over ``httpx.MockTransport``.

Request signatures are re-verified from the wire: COS with ``cos_signature``
(the function checked against COS's examples and SDK), OSS and OBS with
their official SDKs, S3 Express with ``SigV4Signer`` (checked against botocore).
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl

import httpx
import pytest
import trio
import trio.testing

from metafs import errors
from metafs.config import parse_args, resolve_provider, split_source
from metafs.credentials import (CredentialSource, parse_credentials_file, read_credentials_file,
                                static_from_env)
from metafs.mount import root_xattrs, starting_region
from metafs.s3 import dialects
from metafs.s3.client import BucketInfo, S3Client
from metafs.s3.dialects import COS, OBS, OSS, S3, S3EXPRESS
from metafs.s3.express import SessionCache, Session, renewal_margin
from metafs.s3.model import parse_create_session, parse_list, parse_location
from metafs.signing import Credentials, SignableRequest
from metafs.signing.cos import cos_signature
from metafs.signing.sigv4 import SigV4Signer
from metafs.xattrs import bucket_xattrs, object_xattrs, system_name

SECRET = "dialect/SECRET+key=never-logged"
TOKEN = "TEMP-TOKEN/never+logged"
NOW = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
COS_BUCKET = "examplebucket-1250000000"


# -- helpers (also used by tests/test_region.py) ---------------------------------------------

class StaticCredentials(CredentialSource):
    """Fixed keys, without the environment or botocore."""

    def __init__(self, token: str | None = None, key_id: str = "AKID") -> None:
        super().__init__()
        self.token, self.key_id = token, key_id

    async def get(self) -> Credentials | None:
        return Credentials(self.key_id, SECRET, self.token)

    def profile_region(self) -> str | None:  # never the machine's AWS config
        return None


class Server:
    """Answers in turn (the last one repeats), or from a function; records requests."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        a = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if callable(a):
            a = a(request)
        return httpx.Response(a) if isinstance(a, int) else a


def xml_error(code: str, message: str = "msg", **extra: str) -> bytes:
    more = "".join(f"<{k}>{v}</{k}>" for k, v in extra.items())
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message>{more}<RequestId>R</RequestId></Error>").encode()


def listing(*keys: str, prefixes: tuple[str, ...] = (), truncated: bool = False,
            extra: str = "") -> bytes:
    items = "".join(f"<Contents><Key>{k}</Key><LastModified>2024-01-01T00:00:00.000Z"
                    f"</LastModified><ETag>\"e\"</ETag><Size>1</Size></Contents>" for k in keys)
    cps = "".join(f"<CommonPrefixes><Prefix>{p}</Prefix></CommonPrefixes>" for p in prefixes)
    return (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>b</Name>'
            f"<EncodingType>url</EncodingType><IsTruncated>{str(truncated).lower()}</IsTruncated>"
            f"{extra}{items}{cps}</ListBucketResult>").encode()


async def _no_sleep(_: float) -> None:
    return None


def run(handler: Callable[[httpx.Request], Any], fn: Callable[[S3Client], Awaitable[Any]], *,
        mock_clock: bool = False, **kw: Any) -> Any:
    """Run ``fn(client)`` against ``handler``; ``dialect=`` picks the provider."""
    kw.setdefault("bucket", "bkt")
    kw.setdefault("region", "us-east-1")
    kw.setdefault("now", lambda: NOW)
    kw.setdefault("sleep", _no_sleep)
    kw.setdefault("credentials", StaticCredentials())

    async def main() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            return await fn(S3Client(http, **kw))

    if mock_clock:
        return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return trio.run(main)


def no_secret_in(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), repr(exc.args), str(exc.__dict__)):
        assert SECRET not in text and TOKEN not in text


def wire_query(req: httpx.Request) -> list[tuple[str, str]]:
    return parse_qsl(req.url.query.decode(), keep_blank_values=True)


def headers_of(req: httpx.Request) -> dict[str, str]:
    return {k.lower(): v for k, v in req.headers.items()}


# -- provider selection ----------------------------------------------------------------------

@pytest.mark.parametrize("host, provider", [
    ("cos.ap-guangzhou.myqcloud.com", "cos"),
    ("examplebucket-1250000000.cos.ap-beijing.myqcloud.com", "cos"),
    ("cos.ap-shanghai.tencentcos.cn", "cos"),
    ("oss-cn-hangzhou.aliyuncs.com", "oss"),
    ("oss-cn-hangzhou-internal.aliyuncs.com", "oss"),
    ("s3.oss-cn-hangzhou.aliyuncs.com", "s3"),  # OSS's S3-compatible endpoint speaks SigV4
    ("obs.cn-north-4.myhuaweicloud.com", "obs"),
    ("obs.eu-west-101.myhuaweicloud.eu", "obs"),
    ("OBS.CN-NORTH-4.MYHUAWEICLOUD.COM.", "obs"),
    ("s3.eu-west-1.amazonaws.com", "s3"),
    ("127.0.0.1", "s3"),
    ("minio.example", "s3"),
    ("myqcloud.com.evil.example", "s3"),
    (None, "s3"),
])
def test_provider_inferred_from_endpoint_host(host, provider):
    assert dialects.infer_provider(host) == provider


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


def test_directory_buckets_are_their_own_dialect():
    assert dialects.dialect_for("s3", "logs--usw2-az1--x-s3") is S3EXPRESS
    assert dialects.directory_bucket_zone("logs--usw2-az1--x-s3") == "usw2-az1"
    assert dialects.dialect_for("s3", "logs") is S3
    assert dialects.dialect_for("cos", "logs--usw2-az1--x-s3") is COS
    with pytest.raises(errors.ConfigError):
        dialects.dialect_for("gcs", "b")
    assert (S3EXPRESS.ordered_listings, S3.ordered_listings) == (False, True)
    assert (OBS.percent_decode_values, COS.percent_decode_values) == (True, False)


@pytest.mark.parametrize("source, expected", [
    ("cos://examplebucket-1250000000/a/b", ("cos", "examplebucket-1250000000", "a/b/")),
    ("oss://bkt", ("oss", "bkt", "")),
    ("obs://bkt/x/", ("obs", "bkt", "x/")),
    ("s3://bkt", ("s3", "bkt", "")),
    ("bkt/p", (None, "bkt", "p/")),
])
def test_source_url_schemes(source, expected):
    assert split_source(source) == expected


def test_provider_resolution_order():
    assert resolve_provider(None, None, "https://cos.ap-guangzhou.myqcloud.com") == "cos"
    assert resolve_provider(None, None, "oss-cn-hangzhou.aliyuncs.com") == "oss"
    assert resolve_provider(None, "s3", "https://cos.ap-guangzhou.myqcloud.com") == "s3"
    assert resolve_provider("obs", None, "https://minio.example") == "obs"
    assert resolve_provider("oss", "oss", None) == "oss"
    assert resolve_provider(None, None, None) == "s3"
    with pytest.raises(errors.ConfigError, match="contradicts"):
        resolve_provider("oss", "cos", None)


# -- command line -----------------------------------------------------------------------------

def test_cli_vendor_forms(tmp_path):
    cfg = parse_args([f"cos://{COS_BUCKET}/logs", str(tmp_path), "--region", "ap-guangzhou"])
    assert (cfg.provider, cfg.bucket, cfg.prefix, cfg.source) == (
        "cos", COS_BUCKET, "logs/", f"cos://{COS_BUCKET}/logs/")
    cfg = parse_args(["bkt", str(tmp_path), "--endpoint-url", "https://oss-cn-beijing.aliyuncs.com"])
    assert (cfg.provider, cfg.oss_signature, cfg.region) == ("oss", "v4", None)
    cfg = parse_args(["bkt", str(tmp_path), "--provider", "oss", "--oss-signature", "v1",
                      "--endpoint-url", "https://files.example.com"])
    assert cfg.oss_signature == "v1"
    cfg = parse_args(["bkt", str(tmp_path), "-o", "provider=obs,region=cn-north-4"])
    assert cfg.provider == "obs"
    cred = tmp_path / "c"
    cfg = parse_args(["bkt", str(tmp_path), "--credentials-file", os.path.relpath(cred)])
    assert cfg.credentials_file == str(cred)


@pytest.mark.parametrize("args, message", [
    (["cos://examplebucket-1250000000"], "needs --region"),
    (["oss://bkt"], "needs --region"),
    (["--provider", "obs", "bkt"], "needs --region"),
    (["cos://examplebucket", "--region", "ap-guangzhou"], "end with the APPID"),
    (["--provider", "cos", "cos://x-1"], None),  # agrees: fine (needs a region though)
    (["--provider", "oss", "cos://x-1", "--region", "r"], "contradicts"),
    (["oss://bkt", "--region", "cn-hangzhou", "--profile", "p"], "--profile is an AWS setting"),
    (["bkt", "--oss-signature", "v1"], "applies to OSS only"),
    (["oss://bkt", "--endpoint-url", "https://files.example.com"], "OSS V4 signatures name the region"),
    (["b--usw2-az1--x-s3", "--region", "us-west-2", "--force-path-style"], "virtual-hosted only"),
    (["cos://b-1", "--endpoint-url", "http://127.0.0.1:9000"], "virtual-hosted only"),
    (["obs://b", "--region", "r", "--force-path-style"], "virtual-hosted only"),
    (["b--usw2-az1--x-s3"], "needs --region"),
    (["bkt", "--credentials-file", "/x", "--no-sign-request"], "contradict"),
    (["gcs://bkt"], "unsupported source scheme"),
])
def test_cli_rejects_contradictions_with_one_clear_line(tmp_path, args, message):
    if message is None:
        with pytest.raises(errors.ConfigError, match="needs --region"):
            parse_args([*args, str(tmp_path)])
        return
    with pytest.raises(errors.ConfigError, match=message):
        parse_args([*args, str(tmp_path)])


def test_starting_region():
    def cfg(**kw: Any) -> Any:
        base = dict(bucket="b", prefix="", mountpoint="/m", provider="s3", region=None,
                    endpoint_url=None)
        base.update(kw)
        return type("C", (), base)()

    anon = CredentialSource(anonymous=True)
    assert starting_region(cfg(), S3, anon) == "us-east-1"
    assert starting_region(cfg(endpoint_url="https://s3.eu-west-3.amazonaws.com"), S3, anon) == "eu-west-3"
    assert starting_region(cfg(region="ap-east-1", endpoint_url="https://s3.eu-west-3.amazonaws.com"),
                           S3, anon) == "ap-east-1"
    assert starting_region(cfg(provider="oss", endpoint_url="oss-cn-shenzhen.aliyuncs.com"), OSS,
                           anon) == "cn-shenzhen"
    assert starting_region(cfg(provider="cos", endpoint_url="https://cos.example.com"), COS, anon) == ""


# -- credentials ------------------------------------------------------------------------------

def test_vendor_environment_variables():
    env = {"TENCENTCLOUD_SECRET_ID": "id1", "TENCENTCLOUD_SECRET_KEY": SECRET,
           "COS_SECRET_ID": "id2", "COS_SECRET_KEY": "k2", "TENCENTCLOUD_SESSION_TOKEN": TOKEN}
    assert static_from_env("cos", env) == Credentials("id1", SECRET, TOKEN)
    assert static_from_env("cos", {"COS_SECRET_ID": "id2", "COS_SECRET_KEY": "k2"}) == \
        Credentials("id2", "k2", None)
    assert static_from_env("oss", {"OSS_ACCESS_KEY_ID": "i", "OSS_ACCESS_KEY_SECRET": "s",
                                   "OSS_SESSION_TOKEN": "t"}) == Credentials("i", "s", "t")
    assert static_from_env("obs", {"OBS_ACCESS_KEY_ID": "i", "OBS_SECRET_ACCESS_KEY": "s",
                                   "OBS_SECURITY_TOKEN": "t"}) == Credentials("i", "s", "t")
    assert static_from_env("obs", {}) is None


def test_half_a_key_pair_names_the_missing_variable():
    with pytest.raises(errors.CredentialsError) as info:
        static_from_env("oss", {"OSS_ACCESS_KEY_SECRET": SECRET})
    assert "OSS_ACCESS_KEY_SECRET is set but OSS_ACCESS_KEY_ID is not" in str(info.value)
    no_secret_in(info.value)


def test_vendors_never_fall_back_to_aws_credentials():
    env = {"AWS_ACCESS_KEY_ID": "AKIAAWS", "AWS_SECRET_ACCESS_KEY": SECRET}
    src = CredentialSource(provider="cos", environ=env)
    with pytest.raises(errors.CredentialsError) as info:
        src.resolve()
    msg = str(info.value)
    assert "no Tencent COS credentials found" in msg
    assert "TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY or COS_SECRET_ID/COS_SECRET_KEY" in msg
    assert "AKIAAWS" not in msg
    assert src.profile_region() is None
    ok = CredentialSource(provider="obs", environ={"OBS_ACCESS_KEY_ID": "i",
                                                  "OBS_SECRET_ACCESS_KEY": "s"})
    assert trio.run(ok.get) == Credentials("i", "s", None)


def test_credentials_file_forms():
    text = """# comment
export access_key_id = "AKFILE"
secret_access_key='s3cr3t=with=equals'

session_token=tok
unrelated=ignored
"""
    assert parse_credentials_file(text, "oss", "/f") == Credentials("AKFILE", "s3cr3t=with=equals", "tok")
    assert parse_credentials_file("OBS_ACCESS_KEY_ID=a\nOBS_SECRET_ACCESS_KEY=b\n", "obs", "/f") == \
        Credentials("a", "b", None)
    assert parse_credentials_file("AWS_ACCESS_KEY_ID=a\nAWS_SECRET_ACCESS_KEY=b\n"
                                  "AWS_SESSION_TOKEN=t\n", "s3", "/f") == Credentials("a", "b", "t")
    with pytest.raises(errors.CredentialsError, match="line 1: expected KEY=VALUE"):
        parse_credentials_file("a-bare-secret-line\n", "cos", "/f")
    with pytest.raises(errors.CredentialsError) as info:
        parse_credentials_file(f"secret_access_key={SECRET}\n", "cos", "/f")
    assert "does not set access_key_id" in str(info.value)
    no_secret_in(info.value)


def test_credentials_file_mode_is_checked_and_changes_are_picked_up(tmp_path, monkeypatch):
    f = tmp_path / "creds"
    f.write_text(f"access_key_id=A1\nsecret_access_key={SECRET}\n")
    f.chmod(0o644)
    with pytest.raises(errors.CredentialsError, match=r"accessible by group or others \(mode 0644\)"):
        read_credentials_file(str(f), "cos")
    f.chmod(0o600)
    src = CredentialSource(provider="cos", credentials_file=str(f),
                           environ={"TENCENTCLOUD_SECRET_ID": "env", "TENCENTCLOUD_SECRET_KEY": "env"})
    src.resolve()
    assert trio.run(src.get) == Credentials("A1", SECRET, None)  # the file beats the environment
    f.write_text("access_key_id=A2\nsecret_access_key=S2\nsession_token=T2\n")
    os.utime(f, (1, 1))
    monkeypatch.setattr(src, "FILE_RECHECK", 0.0)
    assert trio.run(src.get) == Credentials("A2", "S2", "T2")
    f.chmod(0o640)  # broken later: keep the keys we have
    os.utime(f, (2, 2))
    assert trio.run(src.get) == Credentials("A2", "S2", "T2")
    with pytest.raises(errors.CredentialsError, match="cannot read credentials file"):
        read_credentials_file(str(tmp_path / "absent"), "cos")


# -- COS requests -----------------------------------------------------------------------------

def _verify_cos(req: httpx.Request, key: str, secret: str = SECRET) -> None:
    """Recompute q-signature from the wire, as a COS server does."""
    h = headers_of(req)
    fields = dict(p.partition("=")[::2] for p in h["authorization"].split("&"))
    header_list = fields["q-header-list"].split(";")
    params = wire_query(req)
    assert sorted(k.lower() for k, _ in params) == sorted(p for p in fields["q-url-param-list"].split(";") if p)
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
    assert res.meta.storage_class == "STANDARD_IA"


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
    assert res.status == "absent"


def test_vendor_redirect_is_an_error_naming_the_location():
    srv = Server(httpx.Response(301, headers={"location": "https://b.obs.cn-east-3.myhuaweicloud.com/"}))
    with pytest.raises(errors.S3Error, match="cn-east-3.*check --region"):
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
        when = dt.datetime.strptime(h["x-oss-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
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
    srv = Server(wrong, httpx.Response(200, content=b"<LocationConstraint>oss-cn-beijing</LocationConstraint>"))

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
    with pytest.raises(errors.WrongRegionError, match="must be addressed at oss-cn-beijing.aliyuncs.com"):
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

    info, p1, p2, head = run(srv, go, dialect=OBS, region="cn-north-4",
                             credentials=StaticCredentials(TOKEN))
    assert info.region == "cn-north-4"
    assert str(srv.requests[0].url) == "https://bkt.obs.cn-north-4.myhuaweicloud.com/"
    # OBS's SDK decodes listings with unquote_plus.
    assert [o.key for o in p1.objects] == ["a b", "c+d"] and p1.next_token == "c+d"
    assert wire_query(srv.requests[2]) == [("prefix", "dir one/"), ("encoding-type", "url"),
                                           ("marker", "c+d")]
    for r, key in zip(srv.requests, ["", "", "", "dir one/c+d"]):
        h = headers_of(r)
        assert h["authorization"].startswith("OBS AKID:")
        assert h["x-obs-security-token"] == TOKEN and "date" in h
        _verify_obs(r, "bkt", key)
    # Values OBS keeps percent-encoded are decoded for user.* (fuse_ops passes the flag).
    xattrs = object_xattrs(head.meta.headers, percent_decode_values=OBS.percent_decode_values)
    assert xattrs[b"user.city"] == "São Paulo".encode()


# -- S3 directory buckets ---------------------------------------------------------------------

EXPRESS_BUCKET = "logs--usw2-az1--x-s3"


def session_answer(n: int, lifetime: int = 300, date: dt.datetime = NOW) -> httpx.Response:
    exp = (date + dt.timedelta(seconds=lifetime)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = (f'<CreateSessionResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Credentials>'
            f"<SessionToken>SESSION-TOKEN-{n}</SessionToken><SecretAccessKey>SESSION-SECRET-{n}"
            f"</SecretAccessKey><AccessKeyId>SESSIONKEY{n}</AccessKeyId><Expiration>{exp}"
            f"</Expiration></Credentials></CreateSessionResult>")
    return httpx.Response(200, content=body.encode(),
                          headers={"date": date.strftime("%a, %d %b %Y %H:%M:%S GMT")})


class ExpressServer:
    """Answers CreateSession with numbered sessions, everything else with ``other``."""

    def __init__(self, other: Any = 200, lifetime: int = 300) -> None:
        self.other, self.lifetime = other, lifetime
        self.requests: list[httpx.Request] = []
        self.sessions = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.query == b"session":
            self.sessions += 1
            await trio.sleep(0.01)  # let concurrent callers pile up
            return session_answer(self.sessions, self.lifetime)
        other = self.other(request) if callable(self.other) else self.other
        return httpx.Response(other) if isinstance(other, int) else other


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


def test_directory_bucket_session_renewed_before_expiry_and_shared():
    srv = ExpressServer(200)

    async def go(c: S3Client) -> list[int]:
        seen = []
        async with trio.open_nursery() as n:  # ten concurrent first requests: one session
            for i in range(10):
                n.start_soon(c.head_object, f"k{i}")
        seen.append(srv.sessions)
        # 300 s granted, 299 counted (Date is truncated to the second); renewal
        # starts a fifth of that, at most 60 s, before the end: at 239.2 s.
        await trio.sleep(239)
        await c.head_object("k")
        seen.append(srv.sessions)
        await trio.sleep(2)
        await c.head_object("k")
        seen.append(srv.sessions)
        return seen

    assert run(srv, go, bucket=EXPRESS_BUCKET, region="us-west-2", mock_clock=True) == [1, 1, 2]
    last = headers_of(srv.requests[-1])
    assert last["x-amz-s3session-token"] == "SESSION-TOKEN-2"
    assert renewal_margin(300) == 60 and renewal_margin(5) == 1 and renewal_margin(-3) == 0


def test_session_lifetime_is_measured_on_the_server_clock():
    # The local clock (NOW) runs an hour ahead of the server: the lifetime is
    # still Expiration - Date, so the session is not thought already expired.
    server_now = NOW - dt.timedelta(hours=1)
    srv = Server(lambda r: session_answer(1, 300, server_now) if r.url.query == b"session"
                 else httpx.Response(200))

    async def go(c: S3Client) -> None:
        for _ in range(3):
            await c.head_object("k")

    run(srv, go, bucket=EXPRESS_BUCKET, region="us-west-2", mock_clock=True)
    assert [r.url.query for r in srv.requests].count(b"session") == 1


def test_expired_session_answer_renews_once():
    answers = iter([httpx.Response(400, content=xml_error("ExpiredToken")), httpx.Response(200),
                    httpx.Response(400, content=xml_error("ExpiredToken")),
                    httpx.Response(400, content=xml_error("ExpiredToken"))])
    srv = ExpressServer(lambda r: next(answers))

    async def go(c: S3Client) -> None:
        assert (await c.head_object("k")).status == "ok"
        with pytest.raises(errors.S3Error) as e:
            await c.list_page("")
        no_secret_in(e.value)

    run(srv, go, bucket=EXPRESS_BUCKET, region="us-west-2")
    assert srv.sessions == 3  # first, renewal after the first ExpiredToken, one more: then give up


def test_session_cache_invalidate_only_current():
    made: list[int] = []

    async def create() -> Session:
        made.append(1)
        return Session(Credentials(f"K{len(made)}", "s", "t"), 300.0)

    async def go() -> None:
        cache = SessionCache(create)
        a = await cache.get()
        cache.invalidate(Credentials("other", "s", "t"))
        assert await cache.get() is a
        cache.invalidate(a)
        assert (await cache.get()).access_key == "K2"

    trio.run(go, clock=trio.testing.MockClock(autojump_threshold=0))


def test_directory_bucket_addressing_is_virtual_hosted_only():
    with pytest.raises(errors.ConfigError, match="virtual-hosted only"):
        run(Server(200), lambda c: c.head_object("k"), bucket=EXPRESS_BUCKET, region="us-west-2",
            endpoint_url="http://127.0.0.1:9000")
    with pytest.raises(errors.ConfigError, match="virtual-hosted only"):
        run(Server(200), lambda c: c.head_object("k"), bucket=EXPRESS_BUCKET, region="us-west-2",
            endpoint_url=None, force_path_style=True)


def test_parse_create_session_and_location():
    keys = parse_create_session(session_answer(7).content)
    assert (keys.access_key, keys.token) == ("SESSIONKEY7", "SESSION-TOKEN-7")
    assert keys.expiration == int(NOW.timestamp()) + 300
    assert "SESSION-SECRET" not in repr(keys) and "SESSION-TOKEN" not in repr(keys)
    with pytest.raises(errors.MalformedResponseError):
        parse_create_session(b"<CreateSessionResult><Credentials/></CreateSessionResult>")
    assert parse_location(b'<?xml version="1.0"?><LocationConstraint>oss-cn-hangzhou</LocationConstraint>') \
        == "oss-cn-hangzhou"
    assert parse_location(b"<Location>cn-north-4</Location>") == "cn-north-4"
    with pytest.raises(errors.MalformedResponseError):
        parse_location(b"<html/>")


def test_listing_decoding_per_dialect():
    body = listing("a+b", "c%20d", "e%2Bf")
    assert [o.key for o in parse_list(body).objects] == ["a b", "c d", "e+f"]
    assert [o.key for o in parse_list(body, plus_is_space=False).objects] == ["a+b", "c d", "e+f"]


# -- one naming scheme for system xattrs ------------------------------------------------------

@pytest.mark.parametrize("header, name", [
    ("x-cos-hash-crc64ecma", "s3.hash-crc64ecma"),
    ("x-oss-hash-crc64ecma", "s3.hash-crc64ecma"),
    ("x-obs-checksum-crc64ecma", "s3.hash-crc64ecma"),
    ("x-amz-server-side-encryption-aws-kms-key-id", "s3.server-side-encryption-kms-key-id"),
    ("x-cos-server-side-encryption-cos-kms-key-id", "s3.server-side-encryption-kms-key-id"),
    ("x-oss-server-side-encryption-key-id", "s3.server-side-encryption-kms-key-id"),
    ("x-obs-server-side-encryption-kms-key-id", "s3.server-side-encryption-kms-key-id"),
    ("x-oss-object-worm-mode", "s3.object-lock-mode"),
    ("x-oss-object-worm-retain-until-date", "s3.object-lock-retain-until-date"),
    ("x-amz-object-lock-mode", "s3.object-lock-mode"),
    ("x-cos-object-type", "s3.object-type"),
    ("x-oss-object-type", "s3.object-type"),
    ("x-obs-object-type", "s3.object-type"),
    ("x-cos-version-id", "s3.version-id"),
    ("x-cos-restore", "s3.restore"),
    ("x-oss-tagging-count", "s3.tagging-count"),
    ("x-obs-expiration", "s3.expiration"),
    ("x-obs-bucket-location", "s3.bucket-region"),
    ("x-cos-bucket-region", "s3.bucket-region"),
    ("x-amz-bucket-region", "s3.bucket-region"),
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

    cfg = type("Cfg", (), {"bucket": "bkt"})()
    oss = root_xattrs(cfg, C(OSS, "cn-hangzhou"), BucketInfo({}, "oss-cn-hangzhou"))
    assert oss[b"s3.bucket-region"] == b"oss-cn-hangzhou" and oss[b"s3.provider"] == b"oss"
    assert oss[b"s3.region"] == b"cn-hangzhou" and oss[b"s3.endpoint"] == b"https://bkt.h"
    obs = root_xattrs(cfg, C(OBS, ""), BucketInfo({"x-obs-bucket-location": "cn-north-4",
                                                   "x-obs-version": "3.0",
                                                   "x-obs-storage-class": "WARM",
                                                   "x-obs-request-id": "R"}, "cn-north-4"))
    assert obs[b"s3.bucket-region"] == b"cn-north-4" and obs[b"s3.version"] == b"3.0"
    assert obs[b"s3.storage-class"] == b"WARM" and b"s3.region" not in obs
    assert b"s3.request-id" not in obs
    assert bucket_xattrs({"x-cos-bucket-region": "ap-guangzhou"}, {})[b"s3.bucket-region"] == b"ap-guangzhou"

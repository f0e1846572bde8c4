"""Tencent COS signing: published vectors and the official SDK as oracle."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import types

import requests
from qcloud_cos import CosConfig, cos_auth

from metafs.signing import Credentials, SignableRequest, uri_encode
from metafs.signing.cos import CosSigner, cos_http_string, cos_sign_key, cos_signature
from tests.fakes import CaseSpace, count, signing_case, text, url_encoding, valueless

# The key pair of COS's documentation examples (product/436/7778).
DOC_AK = "AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q"
DOC_SK = "BQYIM75p8x0iWVFSIgqEKwFprpRSVHlz"
DOC_HOST = "examplebucket-1250000000.cos.ap-beijing.myqcloud.com"
UTC = dt.UTC


def _at(start: int) -> dt.datetime:
    """The ``now`` that makes CosSigner's KeyTime start at ``start``."""
    return dt.datetime.fromtimestamp(start + 60, UTC)


# --- published vectors (reference §9 #7, #8, #9) -------------------------------

def test_vector_7_put_with_date():
    # The doc signs ``date``, which CosSigner never does: use the helpers.
    key_time = "1557989151;1557996351"
    headers = [
        ("Content-Length", "13"),
        ("Content-MD5", "mQ/fVh815F3k6TAUm8m0eg=="),
        ("Content-Type", "text/plain"),
        ("Date", "Thu, 16 May 2019 06:45:51 GMT"),
        ("Host", DOC_HOST),
        ("x-cos-acl", "private"),
        ("x-cos-grant-read", 'uin="100000000011"'),
    ]
    assert cos_sign_key(DOC_SK, key_time) == "eb2519b498b02ac213cb1f3d1a3d27a3b3c9bc5f"
    http_string = cos_http_string("PUT", "/exampleobject(腾讯云)", [], headers)
    assert http_string == (
        "put\n/exampleobject(腾讯云)\n\ncontent-length=13&content-md5=mQ%2FfVh815F3k6TAUm8m0eg%3D%3D"
        "&content-type=text%2Fplain&date=Thu%2C%2016%20May%202019%2006%3A45%3A51%20GMT"
        f"&host={DOC_HOST}&x-cos-acl=private&x-cos-grant-read=uin%3D%22100000000011%22\n"
    )
    assert hashlib.sha1(http_string.encode()).hexdigest() == "8b2751e77f43a0995d6e9eb9477f4b685cca4172"
    assert (cos_signature(DOC_SK, key_time, "PUT", "/exampleobject(腾讯云)", [], headers)
            == "3b8851a11a569213c17ba8fa7dcf2abec6935172")


def test_vector_8_get_with_params_and_date():
    key_time = "1557989753;1557996953"
    params = [("response-content-type", "application/octet-stream"),
              ("response-cache-control", "max-age=600")]
    headers = [("date", "Thu, 16 May 2019 06:55:53 GMT"), ("host", DOC_HOST)]
    assert cos_sign_key(DOC_SK, key_time).startswith("937914bf")
    assert cos_sign_key(DOC_SK, key_time).endswith("5eaf")
    assert (cos_signature(DOC_SK, key_time, "GET", "/exampleobject(腾讯云)", params, headers)
            == "01681b8c9d798a678e43b685a9f1bba0f6c0e012")


def test_vector_8_host_only_through_signer():
    # Vector #8 with q-header-list=host (what the SDK, and CosSigner, sign),
    # reproduced verbatim through the class; ``date`` is present but unsigned.
    req = SignableRequest(
        "GET", DOC_HOST, "/exampleobject(%E8%85%BE%E8%AE%AF%E4%BA%91)",
        [("response-content-type", "application/octet-stream"),
         ("response-cache-control", "max-age=600")],
        {"date": "Thu, 16 May 2019 06:55:53 GMT"},
        bucket="examplebucket-1250000000", key="exampleobject(腾讯云)")
    CosSigner(expires=1557996953 - 1557989813).sign(req, Credentials(DOC_AK, DOC_SK), _at(1557989753))
    assert req.headers["host"] == DOC_HOST
    assert req.headers["authorization"] == (
        f"q-sign-algorithm=sha1&q-ak={DOC_AK}&q-sign-time=1557989753;1557996953"
        "&q-key-time=1557989753;1557996953&q-header-list=host"
        "&q-url-param-list=response-cache-control;response-content-type"
        "&q-signature=cf18ded2f669fcafa4b98e02c2a3fdb2b2e55c43"
    )


def test_vector_9_legacy_range_through_signer():
    host = "bucket1-1254000000.cos.ap-beijing.myqcloud.com"
    req = SignableRequest("GET", host, "/testfile", [], {"range": "bytes=0-3"},
                          bucket="bucket1-1254000000", key="testfile")
    CosSigner(expires=1417853898 - 1417773952).sign(req, Credentials(DOC_AK, DOC_SK), _at(1417773892))
    assert req.headers["authorization"] == (
        f"q-sign-algorithm=sha1&q-ak={DOC_AK}&q-sign-time=1417773892;1417853898"
        "&q-key-time=1417773892;1417853898&q-header-list=host;range&q-url-param-list="
        "&q-signature=4b6cbab14ce01381c29032423481ebffd514e8be"
    )


# --- behaviour ------------------------------------------------------------------

def test_token_is_signed_and_time_zone_is_irrelevant():
    creds = Credentials("ak", "sk", token="tok")
    base = dt.datetime(2024, 2, 29, 12, 0, 0)
    auths = []
    for now in (base, base.replace(tzinfo=UTC),
                base.replace(tzinfo=UTC).astimezone(dt.timezone(dt.timedelta(hours=-7)))):
        req = SignableRequest("HEAD", "b-1.cos.ap-beijing.myqcloud.com", "/k", [], {}, "b-1", "k")
        CosSigner().sign(req, creds, now)
        assert req.headers["x-cos-security-token"] == "tok"
        auths.append(req.headers["authorization"])
    assert len(set(auths)) == 1
    start = int(base.replace(tzinfo=UTC).timestamp())
    assert f"q-sign-time={start - 60};{start + 3600}&" in auths[0]
    assert "q-header-list=host;x-cos-security-token&" in auths[0]


def test_unlisted_headers_are_not_signed():
    req = SignableRequest("GET", "h", "/k", [], {"date": "x", "user-agent": "u",
                                                  "accept-encoding": "gzip", "if-match": '"e"'},
                          "b", "k")
    CosSigner().sign(req, Credentials("ak", "sk"), dt.datetime(2024, 1, 1))
    assert "q-header-list=host;if-match&" in req.headers["authorization"]


def test_secret_not_in_repr():
    creds = Credentials("AKID", "very-secret", token="session-token")
    assert "very-secret" not in repr(creds) and "session-token" not in repr(creds)
    assert "very-secret" not in repr(CosSigner())


# --- differential test against cos-python-sdk-v5 ------------------------------

KEY_CHARS = list("abcXYZ019 +%~=&/.-_?#;:,@!*'()[]$") + ["é", "腾讯云", "😀", "\u00a0", "//", "./"]
VALUE_CHARS = list("abcXYZ019 +%~=&/.-_?#;:,@!*'()") + ["é", "云", "😀"]
SECRET_CHARS = list("ABCXYZabcxyz0189+/")
PARAMS = ["prefix", "delimiter", "marker", "continuation-token", "versionId",
          "encoding-type", "max-keys", "list-type", "versions", "acl",
          "response-content-type", "key-marker", "version-id-marker"]


SPACE = CaseSpace(
    key_chars=KEY_CHARS, value_chars=VALUE_CHARS, params=PARAMS,
    param_values={"versions": valueless, "acl": valueless, "max-keys": count,
                  "list-type": lambda rng: "2", "encoding-type": url_encoding},
    headers=[
        (0.4, lambda rng: {"range": f"bytes=0-{rng.randint(0, 10**9)}"}),
        (0.3, lambda rng: {"if-match": f'"{rng.getrandbits(128):032x}"'}),
        (0.3, lambda rng: {"if-none-match": f'"{rng.getrandbits(128):032x}"'}),
        (0.3, lambda rng: {"if-modified-since": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        (0.2, lambda rng: {"if-unmodified-since": "Thu, 01 Jan 1970 00:00:00 GMT"}),
        (0.2, lambda rng: {"x-cos-server-side-encryption-customer-algorithm": "AES256",
                           "x-cos-server-side-encryption-customer-key-md5": "U5L61r7jcwdNvT7frmUG8g=="}),
        (0.3, lambda rng: {"user-agent": "metafs/0.1"}),
        (0.2, lambda rng: {"date": "Thu, 16 May 2019 06:55:53 GMT"}),
    ],
    token_chars=SECRET_CHARS + ["="],
    zones=(None, UTC, dt.timezone(dt.timedelta(hours=8)), dt.timezone(dt.timedelta(hours=-5, minutes=-30))),
    fractional_time=True,  # CosSigner's key time starts at int(now); the SDK's at int(time.time())
)


def test_differential_against_sdk(monkeypatch):
    rng = random.Random(0xC05)
    host = "examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com"
    for _ in range(200):
        case = signing_case(rng, SPACE)
        method, query, headers, token, ts, now = (case.method, case.query, case.headers, case.token,
                                                  case.ts, case.now)
        # The SDK strips one leading '/' from the URL but still signs it, so
        # keys that start with '/' are not comparable (see CosSigner's docstring).
        key = case.key.lstrip("/") or ("k" if case.key else "")
        expires = rng.choice([60, 3600, 10000])
        creds = Credentials("AKID" + text(rng, SECRET_CHARS, 8, 8), text(rng, SECRET_CHARS, 8, 40), token)
        req = SignableRequest(method, host, "/" + uri_encode(key, keep_slash=True),
                              list(query), dict(headers), "examplebucket-1250000000", key)
        CosSigner(expires).sign(req, creds, now)

        # What CosS3Instance.send_request does before the auth runs: the
        # token header is added (so CosS3Auth signs it); the host comes from
        # the URL.  The URL path/query are not read by CosS3Auth.
        sdk_headers = dict(headers)
        if token:
            sdk_headers["x-cos-security-token"] = token
        qs = req.query_string()
        url = f"https://{host}{req.path}" + (f"?{qs}" if qs else "")
        prepared = requests.Request(method, url, headers=sdk_headers).prepare()
        conf = CosConfig(Region="ap-guangzhou", SecretId=creds.access_key,
                         SecretKey=creds.secret_key, Token=token)
        monkeypatch.setattr(cos_auth, "time", types.SimpleNamespace(time=lambda ts=ts: ts))
        cos_auth.CosS3Auth(conf, key or None, params=dict(query), expire=expires)(prepared)

        assert req.headers["authorization"] == prepared.headers["Authorization"], (method, key, query)
        assert req.headers.get("x-cos-security-token") == prepared.headers.get("x-cos-security-token")

"""AWS SigV4 (S3 flavour): AWS's published examples and botocore as oracle."""

from __future__ import annotations

import datetime as dt
import random

import botocore.auth
import botocore.credentials
from botocore.awsrequest import AWSRequest

from metafs.signing import EMPTY_SHA256, Credentials, SignableRequest, uri_encode
from metafs.signing.sigv4 import SigV4Signer
from tests.fakes import CaseSpace, count, signing_case, text, url_encoding, valueless

UTC = dt.UTC

# --- AWS sig-v4-header-based-auth examples (reference §9 #3, #4, #5) ------------

AWS_CREDS = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
AWS_HOST = "examplebucket.s3.amazonaws.com"
AWS_NOW = dt.datetime(2013, 5, 24, tzinfo=UTC)


def _aws_example(path: str, query: list[tuple[str, str]], headers: dict[str, str],
                 creds: Credentials = AWS_CREDS) -> SignableRequest:
    req = SignableRequest("GET", AWS_HOST, path, query, dict(headers), "examplebucket",
                          path.lstrip("/"))
    SigV4Signer("us-east-1").sign(req, creds, AWS_NOW)
    return req


def test_vector_3_get_object_with_range():
    req = _aws_example("/test.txt", [], {"range": "bytes=0-9"})
    assert req.headers["x-amz-date"] == "20130524T000000Z"
    assert req.headers["x-amz-content-sha256"] == EMPTY_SHA256
    assert req.headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


def test_vector_4_list_objects():
    req = _aws_example("/", [("max-keys", "2"), ("prefix", "J")], {})
    assert req.headers["authorization"].endswith(
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
        "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")


def test_vector_5_value_less_sub_resource():
    req = _aws_example("/", [("lifecycle", "")], {})
    assert req.headers["authorization"].endswith(
        "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")


def _botocore_sign(monkeypatch, req: SignableRequest, headers: dict[str, str],
                   creds: Credentials, now: dt.datetime, region: str,
                   auth_cls=botocore.auth.S3SigV4Auth, service: str = "s3", **kw) -> AWSRequest:
    """Sign the same wire request with botocore at the same instant."""
    qs = req.query_string()
    aws_req = AWSRequest(method=req.method,
                         url=f"https://{req.host}{req.path}" + (f"?{qs}" if qs else ""),
                         headers=dict(headers))
    naive_utc = now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: naive_utc)
    bc_creds = botocore.credentials.Credentials(creds.access_key, creds.secret_key, creds.token)
    auth_cls(bc_creds, service, region, **kw).add_auth(aws_req)
    return aws_req


def test_session_token_is_signed(monkeypatch):
    # No published S3 example carries a token: vector #3 plus a token,
    # checked against botocore and for the token being a signed header.
    creds = Credentials(AWS_CREDS.access_key, AWS_CREDS.secret_key,
                        token="FQoGZXIvYXdzEJr//////////wEaDOoken+/=")
    req = _aws_example("/test.txt", [], {"range": "bytes=0-9"}, creds)
    assert req.headers["x-amz-security-token"] == creds.token
    assert ("SignedHeaders=host;range;x-amz-content-sha256;x-amz-date;x-amz-security-token, "
            in req.headers["authorization"])
    bc = _botocore_sign(monkeypatch, SignableRequest("GET", AWS_HOST, "/test.txt", [], {}),
                        {"range": "bytes=0-9"}, creds, AWS_NOW, "us-east-1")
    assert req.headers["authorization"] == bc.headers["Authorization"]


# An aware non-UTC ``now`` must be signed in UTC, not as its wall-clock time.
def test_aware_non_utc_now_is_converted():
    now = AWS_NOW.astimezone(dt.timezone(dt.timedelta(hours=2)))
    req = SignableRequest("GET", AWS_HOST, "/test.txt", [], {"range": "bytes=0-9"})
    SigV4Signer("us-east-1").sign(req, AWS_CREDS, now)
    assert req.headers["x-amz-date"] == "20130524T000000Z"


# --- differential test against botocore -----------------------------------------

KEY_CHARS = list("abcXYZ019 +%~=&/.-_?#;:,@!*'()[]$|") + ["é", "日本", "😀", "\u00a0", "//", "./", "../"]
VALUE_CHARS = list("abcXYZ019 +%~=&/.-_?#;:,@!*'()|") + ["é", "云", "😀"]
SECRET_CHARS = list("ABCXYZabcxyz0189+/")
PARAMS = ["prefix", "delimiter", "marker", "continuation-token", "versionId",
          "encoding-type", "max-keys", "list-type", "versions", "start-after",
          "fetch-owner", "key-marker", "version-id-marker", "response-content-type"]
REGIONS = ["us-east-1", "eu-west-3", "ap-southeast-2", "cn-north-1"]


# Only headers both sides sign or both skip: botocore signs every header
# but a blacklist (user-agent, expect, ...), SigV4Signer a whitelist.
SPACE = CaseSpace(
    key_chars=KEY_CHARS, value_chars=VALUE_CHARS, params=PARAMS,
    param_values={"versions": valueless, "max-keys": count, "list-type": count,
                  "encoding-type": url_encoding},
    headers=[
        (0.4, lambda rng: {"range": f"bytes={rng.randint(0, 99)}-{rng.randint(100, 10**9)}"}),
        (0.3, lambda rng: {"if-match": f'"{rng.getrandbits(128):032x}"'}),
        # Inner spaces collapse in the canonical form.
        (0.3, lambda rng: {"if-modified-since": "Wed,  21 Oct 2015 07:28:00 GMT"}),
        (0.2, lambda rng: {"x-amz-server-side-encryption-customer-algorithm": "AES256",
                           "x-amz-server-side-encryption-customer-key-md5": "U5L61r7jcwdNvT7frmUG8g=="}),
        (0.2, lambda rng: {"x-amz-checksum-mode": "ENABLED"}),
        (0.3, lambda rng: {"user-agent": "metafs/0.1"}),
    ],
    token_chars=SECRET_CHARS + ["="], token_max=200,
    # Naive and aware UTC; test_aware_non_utc_now_is_converted covers other zones.
    zones=(None, UTC),
)


def _case(rng: random.Random):
    """A random request, virtual-hosted or path style, and the region it is signed for."""
    case = signing_case(rng, SPACE)
    bucket = rng.choice(["examplebucket", "b-1", "metafs.test.bucket"])
    region = rng.choice(REGIONS)
    quoted = uri_encode(case.key, keep_slash=True)
    if rng.random() < 0.5:
        host, path = f"{bucket}.s3.{region}.amazonaws.com", "/" + quoted
    else:
        host, path = f"s3.{region}.amazonaws.com", f"/{bucket}/" + quoted if case.key else f"/{bucket}"
    creds = Credentials("AKIA" + text(rng, SECRET_CHARS[:-2], 16, 16), text(rng, SECRET_CHARS, 40, 40),
                        case.token)
    req = SignableRequest(case.method, host, path, case.query, dict(case.headers), bucket, case.key)
    return req, case.headers, creds, case.now, region


def test_differential_against_botocore(monkeypatch):
    rng = random.Random(0x54)
    for _ in range(200):
        req, headers, creds, now, region = _case(rng)
        SigV4Signer(region).sign(req, creds, now)
        bc = _botocore_sign(monkeypatch, req, headers, creds, now, region)
        assert req.headers["authorization"] == bc.headers["Authorization"], req
        assert req.headers["x-amz-date"] == bc.headers["X-Amz-Date"]
        assert req.headers["x-amz-content-sha256"] == bc.headers["X-Amz-Content-SHA256"]
        assert req.headers.get("x-amz-security-token") == bc.headers.get("X-Amz-Security-Token")


def test_differential_s3express_against_botocore(monkeypatch):
    rng = random.Random(0x5E)
    for _ in range(50):
        req, headers, creds, now, region = _case(rng)
        creds = Credentials(creds.access_key, creds.secret_key, creds.token or "session")
        SigV4Signer(region, service="s3express", token_header="x-amz-s3session-token").sign(
            req, creds, now)
        bc = _botocore_sign(monkeypatch, req, headers, creds, now, region,
                            auth_cls=botocore.auth.S3ExpressAuth, service="s3express",
                            identity_cache=None)
        assert req.headers["authorization"] == bc.headers["Authorization"], req
        assert req.headers["x-amz-s3session-token"] == bc.headers["x-amz-s3session-token"]
        assert "x-amz-security-token" not in req.headers
        assert "X-Amz-Security-Token" not in bc.headers

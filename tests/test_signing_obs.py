"""Huawei OBS native signing: the SigV2 vector and esdk-obs-python as oracle."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from obs import ObsClient
from obs import auth as obs_auth
from obs import const as obs_const
from obs.convertor import Adapter

from metafs.signing import Credentials, SignableRequest, uri_encode
from metafs.signing.obs import ObsSigner, canonical_resource, signature, string_to_sign

UTC = dt.UTC
SERVER = "obs.cn-north-4.myhuaweicloud.com"


# --- published vector (reference §9 #6: AWS RESTAuthentication, SigV2) ---------

def test_sigv2_vector():
    # OBS is SigV2 with other prefixes; the vector has no prefixed headers.
    sts = string_to_sign("GET", {"date": "Tue, 27 Mar 2007 19:36:42 +0000"},
                         canonical_resource("awsexamplebucket1", "photos/puppy.jpg", []))
    assert sts == "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/awsexamplebucket1/photos/puppy.jpg"
    assert signature("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", sts) == "qgk2+6Sv9/oM7G3qLEjTH1a1l1g="


def test_signer_sets_date_and_token():
    req = SignableRequest("GET", f"b.{SERVER}", "/a%20b", [("versionId", "v1"), ("prefix", "p")],
                          {"range": "bytes=0-1"}, "b", "a b")
    ObsSigner().sign(req, Credentials("ak", "sk", token="tok"),
                     dt.datetime(2007, 3, 27, 21, 36, 42, tzinfo=dt.timezone(dt.timedelta(hours=2))))
    assert req.headers["date"] == "Tue, 27 Mar 2007 19:36:42 GMT"
    assert req.headers["x-obs-security-token"] == "tok"
    sts = ("GET\n\n\nTue, 27 Mar 2007 19:36:42 GMT\nx-obs-security-token:tok\n"
           "/b/a%20b?versionId=v1")
    assert req.headers["authorization"] == f"OBS ak:{signature('sk', sts)}"


def test_x_obs_date_empties_the_date_line():
    req = SignableRequest("HEAD", f"b.{SERVER}", "/", [("versions", "")],
                          {"x-obs-date": "Tue, 27 Mar 2007 19:36:42 GMT"}, "b", "")
    ObsSigner().sign(req, Credentials("ak", "sk"), dt.datetime(2030, 1, 1))
    assert "date" not in req.headers
    sts = "HEAD\n\n\n\nx-obs-date:Tue, 27 Mar 2007 19:36:42 GMT\n/b/?versions"
    assert req.headers["authorization"] == f"OBS ak:{signature('sk', sts)}"


# --- differential tests against esdk-obs-python ----------------------------------

KEY_CHARS = list("abcXYZ019 +%~=&/.-_?#;:,@!*'()[]$|") + ["é", "华为云", "😀", "\u00a0", "//", "./"]
VALUE_CHARS = list("abcXYZ019 +%~=&/.-_?#;:,@!*'()|") + ["é", "云", "😀"]
SECRET_CHARS = list("ABCXYZabcxyz0189")
PARAMS = ["prefix", "delimiter", "marker", "continuation-token", "versionId",
          "encoding-type", "max-keys", "list-type", "versions", "acl", "location",
          "response-content-type", "response-content-disposition", "key-marker",
          "version-id-marker", "x-obs-foo"]


def _text(rng: random.Random, alphabet, lo: int, hi: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


def _case(rng: random.Random):
    key = "" if rng.random() < 0.1 else _text(rng, KEY_CHARS, 1, 12)
    query = []
    for n in rng.sample(PARAMS, rng.randint(0, 5)):
        if n in ("versions", "acl", "location"):
            query.append((n, ""))
        elif n in ("max-keys", "list-type"):
            query.append((n, str(rng.randint(1, 1000))))
        elif n == "encoding-type":
            query.append((n, "url"))
        else:
            query.append((n, _text(rng, VALUE_CHARS, 0, 10)))
    headers = {}
    if rng.random() < 0.4:
        headers["range"] = f"bytes={rng.randint(0, 99)}-{rng.randint(100, 10**9)}"
    if rng.random() < 0.3:
        headers["if-none-match"] = f'"{rng.getrandbits(128):032x}"'
    if rng.random() < 0.3:
        headers["if-unmodified-since"] = "Wed, 21 Oct 2015 07:28:00 GMT"
    if rng.random() < 0.2:
        headers["x-obs-server-side-encryption-customer-algorithm"] = "AES256"
        headers["x-obs-server-side-encryption-customer-key-md5"] = "U5L61r7jcwdNvT7frmUG8g=="
    if rng.random() < 0.1:
        headers["x-obs-date"] = "Wed, 21 Oct 2015 07:28:00 GMT"
    if rng.random() < 0.3:
        headers["user-agent"] = "metafs/0.1"
    token = None if rng.random() < 0.5 else _text(rng, SECRET_CHARS + ["+", "/", "="], 20, 80)
    ts = rng.randint(1_400_000_000, 2_100_000_000)
    tz = rng.choice([None, UTC, dt.timezone(dt.timedelta(hours=8)),
                     dt.timezone(dt.timedelta(hours=-3, minutes=-30))])
    now = (dt.datetime.fromtimestamp(ts, UTC).replace(tzinfo=None) if tz is None
           else dt.datetime.fromtimestamp(ts, tz))
    creds = Credentials(_text(rng, SECRET_CHARS, 20, 20), _text(rng, SECRET_CHARS, 30, 40), token)
    bucket = rng.choice(["examplebucket", "b-1", "metafs-test"])
    req = SignableRequest(rng.choice(["GET", "HEAD"]), f"{bucket}.{SERVER}",
                          "/" + uri_encode(key, keep_slash=True), query, dict(headers),
                          bucket, key)
    # The SDK takes sub-resources as a dict, a value-less one as None.
    path_args = {k: (v if v != "" else None) for k, v in query}
    return req, headers, path_args, creds, dt.datetime.fromtimestamp(ts, UTC), now


def test_differential_against_sdk_authentication():
    """Against ``obs.auth.Authentication`` (virtual-hosted, OBS mode).

    The headers the SDK's client adds before signing are reproduced as
    ``ObsClient._add_auth_headers`` does: ``Date`` formatted with
    ``const.GMT_DATE_FORMAT`` unless ``x-obs-date`` is sent, then the token.
    """
    rng = random.Random(0x0B5)
    ha = Adapter("obs")
    for _ in range(200):
        req, headers, path_args, creds, when, now = _case(rng)
        ObsSigner().sign(req, creds, now)
        sdk_headers = dict(headers)
        if ha.date_header() not in sdk_headers:
            sdk_headers[obs_const.DATE_HEADER] = when.strftime(obs_const.GMT_DATE_FORMAT)
        if creds.token:
            sdk_headers[ha.security_token_header()] = creds.token
        signer = obs_auth.Authentication(creds.access_key, creds.secret_key, False, ha, SERVER, False)
        ret = signer.doAuth(req.method, req.bucket, req.key, path_args, sdk_headers)
        assert req.headers["authorization"] == ret[obs_const.AUTHORIZATION_HEADER], req
        assert req.headers.get("date") == sdk_headers.get("Date")


class _FrozenDatetime(dt.datetime):
    frozen: dt.datetime

    @classmethod
    def utcnow(cls):
        return cls.frozen


# ObsClient's constructor builds an ssl.PROTOCOL_SSLv23 context.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_differential_against_sdk_client(monkeypatch):
    """Through ``ObsClient._add_auth_headers``: the client's own date and
    token handling, with its ``datetime.utcnow()`` frozen to ``now``."""
    rng = random.Random(0x0B6)
    for _ in range(50):
        req, headers, path_args, creds, when, now = _case(rng)
        ObsSigner().sign(req, creds, now)
        client = ObsClient(access_key_id=creds.access_key, secret_access_key=creds.secret_key,
                           security_token=creds.token, server=SERVER, signature="obs",
                           is_signature_negotiation=False)
        sdk_headers = dict(headers)
        _FrozenDatetime.frozen = when.replace(tzinfo=None)
        with monkeypatch.context() as m:
            # _add_auth_headers does ``from datetime import datetime`` at call time.
            m.setattr(dt, "datetime", _FrozenDatetime)
            out = client._add_auth_headers(sdk_headers, req.method, req.bucket, req.key, path_args)
        client.close()
        assert req.headers["authorization"] == out[obs_const.AUTHORIZATION_HEADER], req
        assert req.headers.get("date") == out.get(obs_const.DATE_HEADER)
        assert req.headers.get("x-obs-security-token") == out.get("x-obs-security-token")

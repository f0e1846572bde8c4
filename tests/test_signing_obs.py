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
from tests.fakes import CaseSpace, count, signing_case, text, url_encoding, valueless

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


SPACE = CaseSpace(
    key_chars=KEY_CHARS, value_chars=VALUE_CHARS, params=PARAMS,
    param_values={"versions": valueless, "acl": valueless, "location": valueless,
                  "max-keys": count, "list-type": count, "encoding-type": url_encoding},
    headers=[
        (0.4, lambda rng: {"range": f"bytes={rng.randint(0, 99)}-{rng.randint(100, 10**9)}"}),
        (0.3, lambda rng: {"if-none-match": f'"{rng.getrandbits(128):032x}"'}),
        (0.3, lambda rng: {"if-unmodified-since": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        (0.2, lambda rng: {"x-obs-server-side-encryption-customer-algorithm": "AES256",
                           "x-obs-server-side-encryption-customer-key-md5": "U5L61r7jcwdNvT7frmUG8g=="}),
        (0.1, lambda rng: {"x-obs-date": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        (0.3, lambda rng: {"user-agent": "metafs/0.1"}),
    ],
    token_chars=SECRET_CHARS + ["+", "/", "="],
    zones=(None, UTC, dt.timezone(dt.timedelta(hours=8)), dt.timezone(dt.timedelta(hours=-3, minutes=-30))),
)


def _case(rng: random.Random):
    """Our request for a random case, the SDK's inputs for it, and the signing time."""
    case = signing_case(rng, SPACE)
    creds = Credentials(text(rng, SECRET_CHARS, 20, 20), text(rng, SECRET_CHARS, 30, 40), case.token)
    bucket = rng.choice(["examplebucket", "b-1", "metafs-test"])
    req = SignableRequest(case.method, f"{bucket}.{SERVER}",
                          "/" + uri_encode(case.key, keep_slash=True), case.query, dict(case.headers),
                          bucket, case.key)
    # The SDK takes sub-resources as a dict, a value-less one as None.
    path_args = {k: (v if v != "" else None) for k, v in case.query}
    return req, case.headers, path_args, creds, dt.datetime.fromtimestamp(case.ts, UTC), case.now


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

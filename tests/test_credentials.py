"""Where credentials come from: each vendor's environment variables, the
``--credentials-file``, and never AWS's keys for another vendor."""

from __future__ import annotations

import os

import pytest
import trio

from metafs import errors
from metafs.credentials import (
    CredentialSource,
    aws_configured_endpoint,
    parse_credentials_file,
    read_credentials_file,
    static_from_env,
)
from metafs.signing import Credentials
from tests.fakes import SECRET, TOKEN, no_secret_in


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


# -- the AWS configuration: endpoint settings and half key pairs ------------------------------

_ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
                  "AWS_PROFILE", "AWS_DEFAULT_PROFILE")


@pytest.fixture
def aws_config(tmp_path, monkeypatch):
    """Write ``~/.aws/config`` text to a file botocore reads (AWS_CONFIG_FILE); no other AWS setting."""
    for var in _ENDPOINT_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))

    def write(text: str) -> None:
        (tmp_path / "config").write_text(text)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))

    write("")
    return write


def _botocore_s3_endpoint(profile: str | None) -> str:
    """What botocore's own S3 client would use: the oracle for the order."""
    import botocore.session

    client = botocore.session.Session(profile=profile).create_client(
        "s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    return client.meta.endpoint_url


PROFILE = """\
[profile p]
services = local
endpoint_url = http://profile-global:1

[services local]
s3 =
  endpoint_url = http://profile-s3:2
"""


def test_aws_endpoint_settings_follow_botocores_order(aws_config, monkeypatch):
    aws_config(PROFILE)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://env-global:3")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://env-s3:4")
    steps = [("http://env-s3:4", "AWS_ENDPOINT_URL_S3"), ("http://env-global:3", "AWS_ENDPOINT_URL"),
             ("http://profile-s3:2", "s3 endpoint_url of [services local]"),
             ("http://profile-global:1", "endpoint_url of AWS profile 'p'")]
    for expected in steps:  # take away the winner each time: the next one wins, as in botocore
        assert aws_configured_endpoint("p") == expected
        assert _botocore_s3_endpoint("p") == expected[0]
        if expected[1] == "AWS_ENDPOINT_URL_S3":
            monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
        elif expected[1] == "AWS_ENDPOINT_URL":
            monkeypatch.delenv("AWS_ENDPOINT_URL")
        elif "services" in expected[1]:
            aws_config(PROFILE.replace("services = local\n", ""))
    aws_config("")
    assert aws_configured_endpoint(None) is None
    assert _botocore_s3_endpoint(None) == "https://s3.amazonaws.com"


def test_aws_endpoint_settings_profile_from_aws_profile_and_ignored_when_told(aws_config, monkeypatch):
    aws_config(PROFILE)
    monkeypatch.setenv("AWS_PROFILE", "p")
    assert aws_configured_endpoint(None) == ("http://profile-s3:2", "s3 endpoint_url of [services local]")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://env-global:3")
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    assert aws_configured_endpoint(None) is None
    assert _botocore_s3_endpoint(None) == "https://s3.amazonaws.com"


def test_aws_endpoint_settings_errors_are_one_line(aws_config):
    aws_config("[profile p]\nservices = nowhere\n")
    with pytest.raises(errors.ConfigError, match="names services section 'nowhere'"):
        aws_configured_endpoint("p")
    with pytest.raises(errors.CredentialsError, match="AWS profile 'absent' not found"):
        aws_configured_endpoint("absent")


@pytest.mark.parametrize(("env", "message"), [
    ({"AWS_ACCESS_KEY_ID": "AKIAONLY"}, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"),
    ({"AWS_SECRET_ACCESS_KEY": SECRET}, "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"),
])
def test_half_an_aws_key_pair_names_the_missing_variable(aws_config, env, message):
    src = CredentialSource(environ=env)
    with pytest.raises(errors.CredentialsError) as info:
        src.resolve()
    assert message in str(info.value)
    no_secret_in(info.value)


def test_botocores_partial_credentials_name_the_missing_setting(aws_config, tmp_path, monkeypatch):
    creds = tmp_path / "credentials"
    creds.write_text("[p]\naws_access_key_id = AKIAONLY\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    with pytest.raises(errors.CredentialsError) as info:
        CredentialSource(profile="p", environ={}).resolve()
    assert str(info.value) == ("incomplete AWS credentials in the shared credentials file: "
                               "aws_secret_access_key is missing")
    assert "PartialCredentialsError" not in str(info.value)

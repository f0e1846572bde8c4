"""metafs.s3.endpoint: the endpoint URL read in one place, the path-style rule, the starting region."""

from __future__ import annotations

import dataclasses

import pytest

from metafs import errors
from metafs.config import parse_args, resolve_provider
from metafs.s3 import dialects
from metafs.s3.dialects import COS, OBS, OSS, S3, S3EXPRESS
from metafs.s3.endpoint import Endpoint, endpoint_host, has_scheme, path_style, shown, starting_region


def no_profile() -> str | None:
    raise AssertionError("the profile's region was asked although something named the region")


# -- the endpoint URL ----------------------------------------------------------------------

@pytest.mark.parametrize("url, host, port, scheme", [
    ("https://s3.example.com", "s3.example.com", None, "https"),
    ("s3.example.com", "s3.example.com", None, "https"),  # a bare host means https
    ("s3.example.com:8443", "s3.example.com", 8443, "https"),
    ("HTTP://MinIO.Example:9000/", "minio.example", 9000, "http"),
    ("http://[::1]:9000", "::1", 9000, "http"),
    ("http://10.1.2.3", "10.1.2.3", None, "http"),
])
def test_one_reading_of_an_endpoint_url(url, host, port, scheme):
    # The command line, the starting region and the client read the same host.
    assert endpoint_host(url) == host
    ep = Endpoint.build(url, "us-east-1", "bkt")
    assert (ep.scheme, ep.host, ep.port, ep.from_region) == (scheme, host, port, False)


def test_a_url_without_scheme_is_https_and_remembers_it_was_assumed():
    assert not has_scheme("127.0.0.1:9000") and has_scheme("http://127.0.0.1:9000")
    assert Endpoint.build("127.0.0.1:9000", "us-east-1", "b").scheme_assumed
    assert not Endpoint.build("https://127.0.0.1:9000", "us-east-1", "b").scheme_assumed
    assert not Endpoint.build(None, "us-east-1", "b").scheme_assumed


def test_messages_show_an_endpoint_url_without_user_and_password():
    assert shown("https://user:pa55@minio.example:9000/x") == "https://minio.example:9000/x"
    assert shown("user:pa55@minio.example") == "minio.example"
    assert shown("http://127.0.0.1:9000") == "http://127.0.0.1:9000"
    with pytest.raises(errors.ConfigError) as info:
        Endpoint.build("ftp://user:pa55@h", "us-east-1", "b")
    assert "pa55" not in str(info.value)


def test_no_endpoint_url_has_no_host():
    assert endpoint_host(None) is None and endpoint_host("") is None


@pytest.mark.parametrize("url", ["http://h:abc", "https://[::1", "h:99999"])
def test_an_unparsable_endpoint_url_is_refused_by_every_reader(url, tmp_path):
    with pytest.raises(errors.ConfigError, match="bad endpoint URL"):
        endpoint_host(url)
    with pytest.raises(errors.ConfigError, match="bad endpoint URL"):
        Endpoint.build(url, "us-east-1", "bkt")
    with pytest.raises(errors.ConfigError, match="bad endpoint URL"):
        starting_region(url, None, S3, no_profile)
    with pytest.raises(errors.ConfigError, match="bad endpoint URL"):
        resolve_provider(None, None, url)
    with pytest.raises(errors.ConfigError, match="bad endpoint URL"):  # at once, not at mount time
        parse_args(["--provider", "s3", "bkt", str(tmp_path), "--endpoint-url", url])


@pytest.mark.parametrize("url", ["ftp://host", "https://", "http://:9000"])
def test_an_endpoint_url_must_name_an_http_host(url):
    with pytest.raises(errors.ConfigError, match=r"expected http\(s\)://HOST\[:PORT\]"):
        Endpoint.build(url, "us-east-1", "bkt")


@pytest.mark.parametrize("scheme, host, port, bucket, path_style, netloc", [
    ("https", "s3.example.com", None, "bkt", False, "bkt.s3.example.com"),
    ("https", "s3.example.com", 443, "bkt", False, "bkt.s3.example.com"),
    ("http", "minio", 80, "bkt", True, "minio"),
    ("http", "minio", 9000, "bkt", False, "bkt.minio:9000"),
    ("http", "::1", 9000, "bkt", True, "[::1]:9000"),
])
def test_netloc(scheme, host, port, bucket, path_style, netloc):
    assert Endpoint(scheme, host, port, path_style, False).netloc(bucket) == netloc


def test_provider_endpoint_for_the_region_follows_region_discovery():
    ep = Endpoint.build(None, "eu-west-1", "bkt")
    assert (ep.scheme, ep.host, ep.port, ep.from_region) == ("https", "s3.eu-west-1.amazonaws.com",
                                                              None, True)
    with pytest.raises(errors.ConfigError, match="needs --region"):
        Endpoint.build(None, "", "bkt", dialect=COS)


# -- the path-style rule -------------------------------------------------------------------

@pytest.mark.parametrize("dialect, host, bucket, force, expected", [
    (S3, None, "bkt", False, False),
    (S3, None, "my.bucket", False, True),  # the *.s3 wildcard certificate cannot cover dots
    (S3, "s3.example.com", "my.bucket", False, False),  # a custom endpoint: the user's certificate
    (S3, "127.0.0.1", "bkt", False, True),
    (S3, "minio.localhost", "bkt", False, True),
    (S3, "s3.example.com", "bkt", True, True),
    (COS, None, "my.bucket-1", False, False),
    (OBS, "obs.example.com", "bkt", False, False),
])
def test_path_style(dialect, host, bucket, force, expected):
    assert path_style(dialect, host, bucket, force=force) is expected


@pytest.mark.parametrize("dialect, host, force, why", [
    (COS, "127.0.0.1", False, "endpoint 127.0.0.1 (path style)"),
    (OBS, None, True, "--force-path-style"),
    (S3EXPRESS, "s3express.example", True, "--force-path-style"),
])
def test_path_style_refused_where_the_dialect_has_none(dialect, host, force, why):
    with pytest.raises(errors.ConfigError) as info:
        path_style(dialect, host, "b-1", force=force)
    assert str(info.value) == (f"{dialect.title}: buckets are addressed virtual-hosted only, "
                               f"so {why} cannot be used")


def test_path_style_for_dotted_bucket_is_the_dialects_field():
    dotted = dataclasses.replace(COS, path_style_allowed=True, path_style_for_dotted_bucket=True)
    assert path_style(dotted, None, "my.bucket-1") is True
    undotted = dataclasses.replace(S3, path_style_for_dotted_bucket=False)
    assert path_style(undotted, None, "my.bucket") is False
    assert Endpoint.build(None, "eu-west-1", "my.bucket", dialect=undotted).path_style is False


@pytest.mark.parametrize("source, url, force, refused", [
    ("cos://b-1", "http://127.0.0.1:9000", False, "endpoint 127.0.0.1 (path style)"),
    ("obs://b", None, True, "--force-path-style"),
    ("b--usw2-az1--x-s3", None, True, "--force-path-style"),
    ("bkt", "http://127.0.0.1:9000", False, None),
    ("my.bucket", None, False, None),
    ("oss://bkt", None, True, None),
])
def test_command_line_and_client_apply_one_addressing_rule(source, url, force, refused, tmp_path):
    args = [source, str(tmp_path), "--region", "us-west-2", *(["--endpoint-url", url] if url else []),
            *(["--force-path-style"] if force else [])]
    provider, _, bucket = source.rpartition("://")
    dialect = dialects.dialect_for(provider or "s3", bucket)
    if refused is None:
        assert parse_args(args).bucket == bucket
        Endpoint.build(url, "us-west-2", bucket, force, dialect)
        return
    message = f"{dialect.title}: buckets are addressed virtual-hosted only, so {refused} cannot be used"
    with pytest.raises(errors.ConfigError) as cli:
        parse_args(args)
    with pytest.raises(errors.ConfigError) as client:
        Endpoint.build(url, "us-west-2", bucket, force, dialect)
    assert str(cli.value) == str(client.value) == message


# -- the starting region -------------------------------------------------------------------

def test_starting_region():
    assert starting_region(None, None, S3, lambda: None) == "us-east-1"
    assert starting_region(None, None, S3, lambda: "ap-south-2") == "ap-south-2"  # the profile's
    assert starting_region("https://s3.eu-west-3.amazonaws.com", None, S3, no_profile) == "eu-west-3"
    assert starting_region("https://s3.eu-west-3.amazonaws.com", "ap-east-1", S3, no_profile) == \
        "ap-east-1"
    assert starting_region("oss-cn-shenzhen.aliyuncs.com", None, OSS, no_profile) == "cn-shenzhen"
    assert starting_region(None, "oss-cn-beijing", OSS, no_profile) == "cn-beijing"
    assert starting_region("https://cos.example.com", None, COS, no_profile) == ""
    assert starting_region(None, None, OBS, no_profile) == ""


def test_starting_region_fields():
    # region_from_profile: where nothing names the region, the profile does.
    profiled = dataclasses.replace(COS, region_from_profile=True)
    assert starting_region(None, None, profiled, lambda: "ap-chengdu") == "ap-chengdu"
    assert starting_region(None, None, profiled, lambda: None) == "us-east-1"
    assert starting_region(None, None, dataclasses.replace(S3, region_from_profile=False),
                           no_profile) == ""
    # region_prefix: the provider's own spelling is stripped, and only where it is one.
    assert starting_region(None, "oss-cn-beijing", dataclasses.replace(OSS, region_prefix=""),
                           no_profile) == "oss-cn-beijing"
    assert starting_region(None, "zz-eu-1", dataclasses.replace(S3, region_prefix="zz-"),
                           no_profile) == "eu-1"

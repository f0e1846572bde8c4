"""Which provider and dialect a command line means, and the options it refuses.

``--provider``, the source URL's scheme, the endpoint's host (in that
order), and directory buckets chosen by their name; then the options that
contradict each other or the provider, refused with one clear line.
"""

from __future__ import annotations

import os

import pytest

from metafs import errors
from metafs.config import parse_args, resolve_provider, split_source
from metafs.s3 import dialects
from metafs.s3.dialects import COS, OBS, S3, S3EXPRESS

COS_BUCKET = "examplebucket-1250000000"


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

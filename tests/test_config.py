"""metafs.config: the command line, -o mount options and defaults."""

from __future__ import annotations

import os

import pytest

from metafs.config import (
    build_parser,
    expand_mount_options,
    parse_args,
    parse_source,
    with_aws_endpoint,
)
from metafs.errors import ConfigError


@pytest.mark.parametrize("source, expected", [
    ("bucket", ("bucket", "")),
    ("bucket/", ("bucket", "")),
    ("bucket/a", ("bucket", "a/")),
    ("bucket/a/b/", ("bucket", "a/b/")),
    ("bucket//a//", ("bucket", "a/")),
    ("s3://bucket", ("bucket", "")),
    ("s3://bucket/pre/fix", ("bucket", "pre/fix/")),
    ("my.dotted-bucket/x", ("my.dotted-bucket", "x/")),
])
def test_parse_source(source, expected):
    assert parse_source(source) == expected


@pytest.mark.parametrize("source", ["", "/prefix", "s3://", "s3:///x", "gs://bucket",
                                    "https://bucket/x"])
def test_parse_source_rejects(source):
    with pytest.raises(ConfigError):
        parse_source(source)


def test_defaults(tmp_path):
    cfg = parse_args(["s3://bkt/p", str(tmp_path)])
    assert (cfg.bucket, cfg.prefix, cfg.mountpoint) == ("bkt", "p/", str(tmp_path))
    assert cfg.source == "s3://bkt/p/"
    assert cfg.metadata_ttl == 60.0 and cfg.negative_ttl == 60.0
    assert cfg.uid == os.getuid() and cfg.gid == os.getgid()
    assert cfg.file_mode == 0o444 and cfg.dir_mode == 0o555
    assert cfg.endpoint_url is None and cfg.region is None and cfg.profile is None
    assert not cfg.no_sign_request and not cfg.force_path_style and not cfg.allow_other
    assert not cfg.foreground
    assert cfg.request_timeout == 10.0 and cfg.retries == 2 and cfg.cache_entries == 250_000


def test_negative_ttl_defaults_to_metadata_ttl(tmp_path):
    assert parse_args(["b", str(tmp_path), "--metadata-ttl", "7.5"]).negative_ttl == 7.5
    cfg = parse_args(["b", str(tmp_path), "--metadata-ttl", "7.5", "--negative-ttl", "0"])
    assert (cfg.metadata_ttl, cfg.negative_ttl) == (7.5, 0.0)


def test_mountpoint_made_absolute(tmp_path, monkeypatch):
    (tmp_path / "mnt").mkdir()
    monkeypatch.chdir(tmp_path)
    assert parse_args(["b", "mnt"]).mountpoint == str(tmp_path / "mnt")


def test_the_mountpoint_is_checked_at_start_not_while_parsing(tmp_path):
    # metafs.mountpoint names the cause at start (tests/test_mountpoint.py), exit status 1.
    assert parse_args(["b", str(tmp_path / "absent")]).mountpoint == str(tmp_path / "absent")
    assert not parse_args(["b", str(tmp_path)]).nonempty
    assert parse_args(["b", str(tmp_path), "-o", "nonempty"]).nonempty
    assert parse_args(["b", str(tmp_path), "--nonempty"]).nonempty


def test_aws_endpoint_settings_apply_to_s3_only_and_after_the_command_line(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
                "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000")
    cfg = with_aws_endpoint(parse_args(["b", str(tmp_path)]))
    assert (cfg.endpoint_url, cfg.endpoint_source) == ("http://127.0.0.1:9000", "AWS_ENDPOINT_URL_S3")
    assert cfg.provider == "s3"
    given = parse_args(["b", str(tmp_path), "--endpoint-url", "http://other:1"])
    assert with_aws_endpoint(given) == given and given.endpoint_source == "--endpoint-url"
    cos = parse_args(["cos://b-1250000000", str(tmp_path), "--region", "ap-guangzhou"])
    assert with_aws_endpoint(cos) == cos  # an AWS setting never reaches another vendor
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://[::1")
    with pytest.raises(ConfigError, match=r"bad endpoint URL .*\(from AWS_ENDPOINT_URL_S3\)"):
        with_aws_endpoint(parse_args(["b", str(tmp_path)]))


def test_explicit_options(tmp_path):
    cfg = parse_args(["b", str(tmp_path), "--endpoint-url", "http://127.0.0.1:9000",
                      "--region", "eu-west-1", "--profile", "p", "--no-sign-request",
                      "--force-path-style", "--uid", "1234", "--gid", "5678",
                      "--allow-other", "-f", "--request-timeout", "2", "--retries", "0",
                      "--cache-entries", "10", "--log-level", "debug"])
    assert cfg.endpoint_url == "http://127.0.0.1:9000" and cfg.region == "eu-west-1"
    assert cfg.profile == "p" and cfg.no_sign_request and cfg.force_path_style
    assert (cfg.uid, cfg.gid) == (1234, 5678)
    assert cfg.allow_other and cfg.foreground
    assert (cfg.request_timeout, cfg.retries, cfg.cache_entries) == (2.0, 0, 10)
    assert cfg.log_level == "debug"


def test_mount_options_expansion(tmp_path):
    cfg = parse_args(["b", str(tmp_path), "-o", "metadata-ttl=5,allow_other,_netdev,ro"])
    assert cfg.metadata_ttl == 5.0 and cfg.negative_ttl == 5.0 and cfg.allow_other


def test_expand_mount_options_forms():
    p = build_parser()
    assert expand_mount_options(["-o", "metadata_ttl=5,allow_other,_netdev,ro", "b", "m"], p) == [
        "--metadata-ttl=5", "--allow-other", "b", "m"]
    assert expand_mount_options(["-onegative-ttl=0", "b", "m"], p) == ["--negative-ttl=0", "b", "m"]
    assert expand_mount_options(
        ["b", "m", "-o", "rw,nosuid,nodev,x-systemd.automount,comment=x,defaults,noatime"], p
    ) == ["b", "m"]
    assert expand_mount_options(["-o", "endpoint-url=http://h:9/x=y", "-o", "region=r"], p) == [
        "--endpoint-url=http://h:9/x=y", "--region=r"]
    assert expand_mount_options(["--region", "r"], p) == ["--region", "r"]


def test_several_o_options_combine(tmp_path):
    cfg = parse_args(["-o", "uid=7", "b", str(tmp_path), "-o", "gid=8,file_mode=0640"])
    assert (cfg.uid, cfg.gid, cfg.file_mode) == (7, 8, 0o640)


@pytest.mark.parametrize("opt", ["bogus", "bogus=1", "metadata-tll=5", "allow_other,nope"])
def test_unknown_mount_option_is_config_error(tmp_path, opt):
    with pytest.raises(ConfigError, match="unknown mount option"):
        parse_args(["b", str(tmp_path), "-o", opt])


@pytest.mark.parametrize("text, mode", [("0640", 0o640), ("644", 0o644), ("0o600", 0o600),
                                        ("7777", 0o7777), ("0", 0)])
def test_octal_modes(tmp_path, text, mode):
    cfg = parse_args(["b", str(tmp_path), "--file-mode", text, "--dir-mode", text])
    assert cfg.file_mode == mode and cfg.dir_mode == mode


@pytest.mark.parametrize("text", ["999", "0o8", "rw-r--r--", "17777"])
def test_bad_modes_rejected(tmp_path, text, capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(["b", str(tmp_path), "--file-mode", text])
    assert info.value.code == 2


@pytest.mark.parametrize("args", [["--metadata-ttl", "-1"], ["--metadata-ttl", "soon"],
                                  ["--negative-ttl", "-0.5"], ["--log-level", "loud"]])
def test_bad_values_rejected(tmp_path, args, capsys):
    with pytest.raises(SystemExit):
        parse_args(["b", str(tmp_path), *args])


@pytest.mark.parametrize("args", [["--retries", "-1"], ["--max-connections", "0"],
                                  ["--cache-entries", "0"]])
def test_non_positive_counts_are_config_errors(tmp_path, args):
    with pytest.raises(ConfigError):
        parse_args(["b", str(tmp_path), *args])

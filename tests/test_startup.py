"""Start-up stays light: a mount whose keys come from the environment never imports botocore,
an ``http://`` endpoint never loads a CA bundle, and what the mount needs only once live
(prometheus_client, the XML parser) or only when asked for (--as-of, --versions) is not
imported before it is live (issue 12, target 6).

The checks count modules and certificates, never time (speed is scripts/bench.py).  The
botocore-free answers are checked against botocore's own for the same environment.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys

import httpx
import pytest
import trio

from metafs.credentials import (
    CredentialSource,
    aws_config_is_env_only,
    aws_configured_endpoint,
    env_only_aws_credentials,
)
from metafs.s3.tls import client_context, needs_tls
from tests.helpers import REPO, base_env, wait_until

# Modules a mount whose keys are in the environment must not import (certifi is imported by
# httpcore anyway: whether its bundle is loaded is checked by counting certificates).
HEAVY = ("botocore", "boto3", "logging.handlers")
# Modules a mount does not import before it is live (a mount without --metrics-addr, --as-of,
# --versions): the counters' library and its HTTP server, the XML parser (a HEAD has no body).
LATER = ("prometheus_client", "wsgiref", "http.server", "xml.etree", "metafs.asof",
         "metafs.versions")


def _named(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in names)]

_AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
             "AWS_CREDENTIAL_EXPIRATION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_DEFAULT_REGION",
             "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


@pytest.fixture
def no_aws_files(tmp_path, monkeypatch):
    """No AWS setting and no shared AWS file: botocore's configuration is the environment."""
    for var in _AWS_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def _botocore_keys() -> tuple[str, str, str | None] | None:
    import botocore.session

    c = botocore.session.Session().get_credentials()
    if c is None:
        return None
    f = c.get_frozen_credentials()
    return f.access_key, f.secret_key, f.token


@pytest.mark.parametrize("env", [
    {"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s1"},
    {"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s1", "AWS_SESSION_TOKEN": "t1"},
    {"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s1", "AWS_SESSION_TOKEN": "t1",
     "AWS_SECURITY_TOKEN": "t0"},
    {"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s1", "AWS_SECURITY_TOKEN": ""},
])
def test_environment_keys_without_botocore_are_botocores(no_aws_files, monkeypatch, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert aws_config_is_env_only(None, os.environ)
    fast = env_only_aws_credentials(os.environ)
    assert fast is not None
    assert (fast.access_key, fast.secret_key, fast.token) == _botocore_keys()
    src = CredentialSource()
    src.resolve()
    assert trio.run(src.get) == fast


def test_botocore_still_decides_whenever_more_than_the_environment_could_matter(
        no_aws_files, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s1")
    assert aws_config_is_env_only(None, os.environ)
    assert not aws_config_is_env_only("p", os.environ)  # --profile: botocore skips the variables
    monkeypatch.setenv("AWS_PROFILE", "p")
    assert not aws_config_is_env_only(None, os.environ)
    monkeypatch.delenv("AWS_PROFILE")
    (no_aws_files / "no-config").write_text("[default]\nregion = eu-west-3\n")
    assert not aws_config_is_env_only(None, os.environ)  # a file exists: botocore reads it
    assert CredentialSource().profile_region() == "eu-west-3"
    (no_aws_files / "no-config").unlink()
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", "2099-01-01T00:00:00Z")
    assert env_only_aws_credentials(os.environ) is None  # refreshable: botocore's business


def test_region_and_endpoint_without_botocore_are_botocores(no_aws_files, monkeypatch):
    import botocore.session

    src = CredentialSource()
    assert src.profile_region() is None
    assert aws_configured_endpoint(None) is None
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-2")
    assert src.profile_region() == "ap-south-2" == botocore.session.Session().get_config_variable(
        "region")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://env-s3:4")
    assert aws_configured_endpoint(None) == ("http://env-s3:4", "AWS_ENDPOINT_URL_S3")


_PROBE = """
import sys
from metafs.cli import main  # noqa: F401 - what the command imports before forking
from metafs import mount  # noqa: F401 - and the mount process after
from metafs.config import parse_args, with_aws_endpoint
from metafs.credentials import CredentialSource
from metafs.s3.tls import client_context
cfg = with_aws_endpoint(parse_args(["bkt", "/mnt", "--endpoint-url", "http://127.0.0.1:9"]))
src = CredentialSource()
src.resolve()
assert src.profile_region() is None
ctx = client_context(cfg.endpoint_url, {})
print(" ".join(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in %r)))
print(ctx.cert_store_stats()["x509_ca"])
"""


def test_a_mount_with_environment_keys_imports_no_heavy_module():
    """What a mount of an http endpoint runs before it is live, in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", _PROBE % (HEAVY + LATER,)], env=base_env(),
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    heavy, cas = out.stdout.splitlines()
    assert heavy == ""  # none of HEAVY or LATER
    assert cas == "0"   # no CA bundle loaded


def test_tls_context_only_for_endpoints_that_can_use_tls(monkeypatch):
    assert not needs_tls("http://127.0.0.1:9000", {})
    assert not needs_tls("HTTP://127.0.0.1:9000", {})
    assert needs_tls("https://s3.example", {})
    assert needs_tls("s3.example:443", {})  # no scheme: https is assumed
    assert needs_tls(None, {})  # the provider's own endpoint
    assert needs_tls("http://127.0.0.1:9000", {"HTTPS_PROXY": "https://proxy:3128"})
    empty = client_context("http://127.0.0.1:9000", {})
    # It still verifies: a TLS connection that should never happen fails instead of going unchecked.
    assert empty.verify_mode == ssl.CERT_REQUIRED and empty.check_hostname
    assert empty.cert_store_stats()["x509_ca"] == 0
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    full = client_context("https://s3.example", {})
    assert full.cert_store_stats() == httpx.create_ssl_context().cert_store_stats()
    assert full.cert_store_stats()["x509_ca"] > 0


@pytest.mark.mount
def test_a_live_mount_imported_no_heavy_module(mount, bucket):
    """The real command, mounted through the kernel: its import log names none of HEAVY, and
    none of LATER before the line saying the mount is live (prometheus_client right after)."""
    m = mount(bucket, env=base_env(PYTHONPROFILEIMPORTTIME="1"))
    lines = m.log_text().splitlines()
    live = next(i for i, line in enumerate(lines) if "INFO mounted " in line)
    imported = [line.rsplit("|", 1)[1].strip() for line in lines
                if line.startswith("import time:") and "|" in line]
    before = [line.rsplit("|", 1)[1].strip() for line in lines[:live]
              if line.startswith("import time:") and "|" in line]
    assert "pyfuse3" in before and "metafs.mount" in before  # the log is the import log
    assert _named(imported, HEAVY) == []
    assert _named(before, LATER) == []
    assert wait_until(lambda: "prometheus_client" in [line.rsplit("|", 1)[1].strip() for line in
                                               m.log_text().splitlines()
                                               if line.startswith("import time:")])


def test_the_early_recorder_hands_every_event_over():
    """What is counted before the PrometheusRecorder exists is counted in it (tests/test_metrics
    checks the bucket check's HeadBucket in a live mount's status)."""
    from metafs import metrics

    early = metrics.EarlyRecorder()
    previous = metrics.use(early)
    try:
        with early.s3_attempt("HEAD", "", []) as attempt:
            attempt.done(200)
        early.s3_retry("GET", "", [("list-type", "2")])
        early.cache_lookup("meta", False)
        late = early.s3_attempt("HEAD", "k", [])  # still on the wire at the hand-over
        a = late.__enter__()
        rec = early.hand_over(metrics.PrometheusRecorder(started=early.started))
        assert metrics.recorder is rec and rec.started == early.started
        a.done(404)
        late.__exit__(None, None, None)
    finally:
        metrics.use(previous)
    assert rec.totals("metafs_s3_requests") == {("HeadBucket", "200"): 1, ("HeadObject", "404"): 1}
    assert rec.totals("metafs_s3_retries") == {("ListObjects",): 1}
    assert rec.totals("metafs_cache_lookups") == {("meta", "miss"): 1}
    assert early.events == []

"""Prometheus metrics (--metrics-addr) and ``metafs status``, checked against the server's own count."""

from __future__ import annotations

import collections
import json
import os
import socket
import subprocess
import sys
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from metafs import metrics
from metafs.config import parse_args
from metafs.errors import ConfigError
from tests.helpers import REPO, base_env, put_many, run_metafs, stat_fields, wait_until

OPERATION = {"LIST": "ListObjects", "HEAD": "HeadObject", "HEAD_COND": "HeadObject",
             "HEAD_BUCKET": "HeadBucket", "GET": "GetObject", "TAGGING": "GetObjectTagging",
             "ANNOTATIONS": "ListObjectAnnotations", "ANNOTATION": "GetObjectAnnotation"}


def test_s3_operations_are_named_as_the_s3_api_names_them():
    assert metrics.s3_operation("HEAD", "", []) == "HeadBucket"
    assert metrics.s3_operation("HEAD", "a/b", []) == "HeadObject"
    assert metrics.s3_operation("GET", "", [("list-type", "2"), ("prefix", "a/")]) == "ListObjects"
    assert metrics.s3_operation("GET", "", [("prefix", "a/"), ("marker", "x")]) == "ListObjects"
    assert metrics.s3_operation("GET", "", [("location", "")]) == "GetBucketLocation"
    assert metrics.s3_operation("GET", "", [("session", "")]) == "CreateSession"
    assert metrics.s3_operation("GET", "k", []) == "GetObject"
    assert metrics.s3_operation("GET", "k", [("versionId", "v1")]) == "GetObject"
    assert metrics.s3_operation("HEAD", "k", [("versionId", "v1")]) == "HeadObject"
    assert metrics.s3_operation("GET", "", [("versions", ""), ("prefix", "")]) == "ListObjectVersions"
    assert metrics.s3_operation("GET", "", [("versioning", "")]) == "GetBucketVersioning"
    assert metrics.s3_operation("GET", "k", [("tagging", "")]) == "GetObjectTagging"
    assert metrics.s3_operation("GET", "k", [("annotation", "")]) == "ListObjectAnnotations"
    assert metrics.s3_operation("GET", "k", [("annotation", ""), ("annotationName", "n")]) == \
        "GetObjectAnnotation"


def test_metrics_addr_is_off_by_default_and_localhost_unless_told():
    assert parse_args(["b", "/mnt/x"]).metrics_addr is None
    assert parse_args(["b", "/mnt/x", "--metrics-addr", "9464"]).metrics_addr == ("127.0.0.1", 9464)
    assert parse_args(["b", "/mnt/x", "-o", "metrics-addr=0.0.0.0:9100"]).metrics_addr == ("0.0.0.0", 9100)
    assert parse_args(["b", "/mnt/x", "--metrics-addr", "[::1]:9464"]).metrics_addr == ("::1", 9464)
    for bad in ("host:", "x:port", "70000"):
        with pytest.raises(ConfigError, match="--metrics-addr"):
            parse_args(["b", "/mnt/x", "--metrics-addr", bad])


def test_readahead_counts_as_used_once_per_key_sent_ahead():
    rec = metrics.PrometheusRecorder()
    rec.readahead_sent("a")
    rec.readahead_sent("b")
    rec.readahead_used("a")
    rec.readahead_used("a")  # a second access is a cache hit, not readahead's doing
    rec.readahead_used("c")  # never sent ahead
    assert rec.totals("metafs_readahead_sent") == {(): 2}
    assert rec.totals("metafs_readahead_used") == {(): 1}


# -- real mounts --------------------------------------------------------------------------

def status(path) -> dict:
    r = subprocess.run([sys.executable, "-m", "metafs", "status", "--json", str(path)], env=base_env(),
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def control_ready(path) -> bool:
    r = subprocess.run([sys.executable, "-m", "metafs", "status", str(path)], env=base_env(),
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    return r.returncode == 0


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def by(samples: dict, *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(dict(k)[x] for x in labels): v for k, v in samples.items() if v}


@pytest.mark.mount
def test_metrics_endpoint_counts_what_the_server_saw(mount, bucket, s3):
    put_many(bucket, ["d/a", "d/b", "d/c", "f"])
    m = mount(bucket, "--metrics-addr", "127.0.0.1:0", "--retries", "1")
    assert wait_until(lambda: control_ready(m.path))
    url = status(m.path)["metrics"]
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":0/metrics")
    m.run("ls -l d >/dev/null; cat d/a >/dev/null; getfattr -d d/b >/dev/null; stat f >/dev/null")
    # An outage: f's metadata is expired (metafs refresh), its revalidation fails twice
    # (one retry), and the cached metadata is served instead.
    r = subprocess.run([sys.executable, "-m", "metafs", "refresh", str(m.path / "f")], env=base_env(),
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr
    s3.set_fault("500")
    assert stat_fields(m, "f", "%s") == ["1"]
    s3.set_fault(None)

    got = scrape(url)
    server = collections.Counter((OPERATION[x.kind], str(x.status)) for x in s3.log())
    server[("HeadBucket", "200")] += 1  # the bucket check, before the fixture reset the log
    assert by(got["metafs_s3_requests_total"], "operation", "outcome") == dict(server)
    assert server[("HeadObject", "500")] == 2
    assert by(got["metafs_s3_retries_total"], "operation") == {("HeadObject",): 1}
    assert sum(by(got["metafs_s3_request_duration_seconds_count"], "operation").values()) == \
        sum(server.values())
    assert got["metafs_s3_requests_in_flight"][()] == 0
    assert by(got["metafs_stale_served_total"], "what") == {("object",): 1}
    assert got["metafs_read_bytes_total"][()] == 1  # cat of a one-byte file
    fuse = by(got["metafs_fuse_ops_total"], "op", "errno")
    assert fuse[("read", "OK")] == 1 and fuse[("open", "OK")] == 1 and fuse[("readdir", "OK")] >= 1
    assert ("getxattr", "OK") in fuse or ("listxattr", "OK") in fuse
    lookups = by(got["metafs_cache_lookups_total"], "table", "result")
    assert lookups[("listings", "miss")] >= 1 and lookups[("objects", "hit")] >= 1
    entries = by(got["metafs_cache_entries"], "table")
    assert entries[("listings",)] >= 1
    assert got["metafs_mount_info"][(("provider", "s3"), ("region", "us-east-1"),
                                     ("source", f"s3://{bucket}/"))] == 1
    assert sum(got["metafs_kernel_invalidations_total"].values()) >= 1  # refresh dropped f's entry


@pytest.mark.mount
def test_metafs_status_reports_the_running_mount(mount, bucket, s3):
    put_many(bucket, ["p/a", "p/sub/b"])
    m = mount(f"{bucket}/p")
    assert wait_until(lambda: control_ready(m.path))
    m.run("ls -R >/dev/null; stat a >/dev/null; cat sub/b >/dev/null")
    m.run("cat missing", check=False)
    st = status(m.path)
    sent = len(s3.log())
    assert st["source"] == f"s3://{bucket}/p/" and st["mountpoint"] == str(m.path)
    assert st["pid"] == m.proc.pid
    assert (st["provider"], st["region"], st["endpoint_down"]) == ("AWS S3", "us-east-1", False)
    assert st["endpoint"] == s3.url
    assert 0 <= st["uptime_seconds"] < 600
    # Before the fixture reset the server's log: HEAD Bucket and the prefix check's LIST.
    assert st["requests"]["HeadBucket"] == {"200": 1}
    assert st["requests_total"] == sent + 2 and st["request_errors"] == 0
    assert st["cache"]["cache.listings"] >= 2 and "invalidations" in st["cache"]
    assert st["metrics"] is None
    text = subprocess.run([sys.executable, "-m", "metafs", "status", str(m.path)], env=base_env(),
                          capture_output=True, text=True, timeout=60, cwd=REPO).stdout
    assert f"source:       s3://{bucket}/p/\n" in text
    assert f"requests:     {sent + 2} (0 failed, 0 retries)\n" in text
    assert "metrics:      not served (--metrics-addr)" in text


def test_metafs_status_of_a_path_that_is_no_mount_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "metafs", "status", str(tmp_path)], env=base_env(),
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 1
    assert r.stderr == f"metafs status: {tmp_path}: not on a metafs mount\n"


@pytest.mark.mount
def test_a_metrics_port_in_use_fails_the_mount_with_one_line(s3, bucket, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run_metafs("--endpoint-url", s3.url, "--metrics-addr", f"127.0.0.1:{port}", bucket, str(mnt))
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"metafs: cannot mount s3://{bucket}/ on {mnt}: --metrics-addr 127.0.0.1:{port}: "
        "Address already in use"]
    assert not os.path.ismount(mnt)

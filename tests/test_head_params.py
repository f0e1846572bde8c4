"""The rest of the HEAD request (issue 10 §6): --requester-pays, --expected-bucket-owner, part counts.

moto enforces neither requester pays nor the expected bucket owner (nor
does Ceph RGW 16 enforce the owner, checked): metafs.devserver refuses
what AWS refuses (403 AccessDenied), so the tests see AWS's answers.
"""

from __future__ import annotations

import email.utils
import time

import pytest

from metafs.devserver import OWNER
from tests.helpers import run_metafs, stat_fields, xattr

pytestmark = pytest.mark.mount


def _one_line(r) -> str:
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("metafs: cannot mount "), lines[0]
    return lines[0]


def _use(m) -> None:
    """Every kind of request: LIST, HEAD, GET."""
    assert m.run("ls").stdout.split() == ["f"]
    assert xattr(m, "f", "user.k") == b"v"
    assert m.run("cat f").stdout == "data"


@pytest.fixture
def data(boto, bucket):
    boto.put_object(Bucket=bucket, Key="f", Body=b"data", Metadata={"k": "v"})
    return bucket


def test_requester_pays_bucket_needs_the_option(s3, data, mount, tmp_path):
    s3.requester_pays.add(data)  # the s3 fixture resets it
    r = run_metafs("--foreground", "--endpoint-url", s3.url, data, str(tmp_path))
    line = _one_line(r)
    assert "was denied (AccessDenied)" in line and "--requester-pays" in line
    m = mount(data, "--requester-pays")  # HEAD Bucket passed: it carried the header
    _use(m)
    seen = s3.log()
    assert {r.kind for r in seen} >= {"LIST", "HEAD", "GET"}
    assert all(r.headers.get("x-amz-request-payer") == "requester" for r in seen)


def test_expected_bucket_owner_sent_and_a_mismatch_ends_the_mount(s3, data, mount, tmp_path):
    r = run_metafs("--foreground", "--endpoint-url", s3.url, "--expected-bucket-owner",
                   "999999999999", data, str(tmp_path))
    assert "is the bucket owned by account 999999999999 (--expected-bucket-owner)?" in _one_line(r)
    sent = s3.log("HEAD_BUCKET", "LIST")  # HEAD Bucket, then the listing that learns the error code
    assert [r.kind for r in sent] == ["HEAD_BUCKET", "LIST"]
    assert all(r.headers.get("x-amz-expected-bucket-owner") == "999999999999" for r in sent)
    m = mount(data, "--expected-bucket-owner", OWNER)
    _use(m)
    assert all(r.headers.get("x-amz-expected-bucket-owner") == OWNER for r in s3.log())


def test_options_refused_where_the_provider_has_none(tmp_path):
    r = run_metafs("--requester-pays", "--region", "ap-guangzhou", "cos://b-1250000000", str(tmp_path))
    assert (r.returncode, r.stderr) == (2, "metafs: --requester-pays: Tencent COS has no "
                                           "requester-pays buckets\n")
    r = run_metafs("--expected-bucket-owner", "1", "--region", "cn-north-4", "obs://b", str(tmp_path))
    assert (r.returncode, r.stderr) == (2, "metafs: --expected-bucket-owner is an S3 setting, "
                                           "not one of Huawei Cloud OBS\n")


def test_part_count_by_name_only_one_request_per_etag(s3, boto, bucket, mount):
    up = boto.create_multipart_upload(Bucket=bucket, Key="big")
    parts = []
    for n, body in ((1, b"a" * (5 << 20)), (2, b"b" * 10)):
        p = boto.upload_part(Bucket=bucket, Key="big", UploadId=up["UploadId"], PartNumber=n, Body=body)
        parts.append({"PartNumber": n, "ETag": p["ETag"]})
    boto.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=up["UploadId"],
                                   MultipartUpload={"Parts": parts})
    boto.put_object(Bucket=bucket, Key="small", Body=b"x")
    m = mount(bucket)
    m.run("ls -l")  # the ETags, from the listing
    s3.reset()
    assert xattr(m, "big", "s3.mp-parts-count") == b"2"
    part_heads = [r for r in s3.log() if r.query.get("partNumber") == "1"]
    assert len(part_heads) == 1 and part_heads[0].method == "HEAD"
    assert len(s3.log()) == 1  # that request only
    assert xattr(m, "big", "s3.mp-parts-count") == b"2"
    assert len(s3.log()) == 1  # kept for the ETag
    # Not listed: getfattr -d costs its one HEAD, not a second request.
    assert "mp-parts-count" not in m.run("getfattr -d -m - big").stdout
    assert len([r for r in s3.log() if r.query.get("partNumber")]) == 1
    # An object uploaded in one piece has no part count: ENODATA, after its one request.
    r = m.run("getfattr -n s3.mp-parts-count small", check=False)
    assert r.returncode != 0 and "No such attribute" in r.stderr
    assert len([r for r in s3.log() if r.query.get("partNumber")]) == 2


def test_no_etag_revalidated_with_if_modified_since(mount, boto, bucket, s3):
    s3.no_etags = True  # a server that sends no ETag, in HEAD answers or listings
    boto.put_object(Bucket=bucket, Key="r.txt", Body=b"same", Metadata={"k": "v"})
    answer = boto.head_object(Bucket=bucket, Key="r.txt")
    assert "ETag" not in answer  # the server really sends none
    modified = answer["LastModified"]
    m = mount(bucket, "--metadata-ttl", "1")
    assert xattr(m, "r.txt", "user.k") == b"v"
    assert len(s3.log("HEAD")) == 1
    time.sleep(1.2)
    s3.reset()
    assert xattr(m, "r.txt", "user.k") == b"v"
    assert stat_fields(m, "r.txt", "%s") == ["4"]
    cond = s3.log("HEAD_COND")
    assert len(cond) == 1 and s3.counts()["HEAD"] == 0 and s3.counts()["LIST"] == 0
    assert "if-none-match" not in cond[0].headers
    assert cond[0].headers["if-modified-since"] == email.utils.formatdate(modified.timestamp(),
                                                                               usegmt=True)
    assert cond[0].status == 304  # the entry is kept
    # A change (a later second) answers 200 to the same question, and is shown.
    time.sleep(1.0)
    boto.put_object(Bucket=bucket, Key="r.txt", Body=b"longer", Metadata={"k": "w"})
    time.sleep(1.2)
    s3.reset()
    assert xattr(m, "r.txt", "user.k") == b"w"
    cond = s3.log("HEAD_COND")
    assert len(cond) == 1 and cond[0].status == 200
    assert stat_fields(m, "r.txt", "%s") == ["6"]

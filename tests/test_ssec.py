"""SSE-C (--sse-c-key-file): keys, choices, headers; real mounts on Ceph RGW, which enforces SSE-C."""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from metafs import errors
from metafs.s3 import ssec
from metafs.s3.dialects import COS, OBS, OSS, S3
from metafs.s3.model import Fresh
from metafs.xattrs import SYSTEM_NS
from tests.fakes import Server, headers_of, listing, run
from tests.helpers import ls_names, run_metafs, stat_fields, xattr
from tests.proxy import FaultProxy, is_get, is_head

# Three keys: the test data's only secrets, checked absent from every log and process list.
KEY1, KEY2, KEY3 = (bytes([n]) * 16 + os.urandom(16) for n in (1, 2, 3))


def _md5(key: bytes) -> str:
    return base64.b64encode(hashlib.md5(key).digest()).decode()


def _key_file(tmp_path: Path, data: bytes, mode: int = 0o600) -> Path:
    p = tmp_path / "sse-c.keys"
    p.write_bytes(data)
    p.chmod(mode)
    return p


# -- the key file and the choices (pure) ---------------------------------------------------------

def test_key_file_raw_or_base64_lines():
    assert ssec.parse_key_file(KEY1, "f") == [ssec.CustomerKey(KEY1)]
    text = b"# keys\n" + base64.b64encode(KEY1) + b"\n\n  " + base64.b64encode(KEY2) + b"  \n"
    assert ssec.parse_key_file(text, "f") == [ssec.CustomerKey(KEY1), ssec.CustomerKey(KEY2)]


def test_key_file_errors_name_the_line_never_the_key():
    bad = base64.b64encode(KEY1[:31])
    with pytest.raises(errors.CredentialsError) as e:
        ssec.parse_key_file(base64.b64encode(KEY1) + b"\n" + bad + b"\n", "/k")
    assert "line 2" in str(e.value) and bad.decode() not in str(e.value)
    with pytest.raises(errors.CredentialsError, match="holds no key"):
        ssec.parse_key_file(b"# nothing\n", "/k")


def test_key_file_must_be_owner_only(tmp_path):
    p = _key_file(tmp_path, base64.b64encode(KEY1), 0o644)
    with pytest.raises(errors.CredentialsError, match="chmod 600"):
        ssec.load_key_file(str(p))
    p.chmod(0o600)
    assert ssec.load_key_file(str(p)) == [ssec.CustomerKey(KEY1)]


def test_key_headers_per_dialect_and_published_md5():
    # COS's HEAD Object documentation: this key's MD5 (object-storage-protocols.md §9, vector 13).
    doc = ssec.CustomerKey(b"0123456789ABCDEF0123456789ABCDEF")
    assert doc.md5 == "U5L61r7jcwdNvT7frmUG8g=="
    assert "0123456789ABCDEF" not in repr(doc) and doc.b64 not in repr(doc)
    keys = ssec.CustomerKeys([doc])
    for d, ns in ((S3, "x-amz-"), (COS, "x-cos-"), (OBS, "x-obs-")):
        assert d.sse_c_prefix is not None
        assert keys.headers(0, d.sse_c_prefix) == {
            f"{ns}server-side-encryption-customer-algorithm": "AES256",
            f"{ns}server-side-encryption-customer-key": "MDEyMzQ1Njc4OUFCQ0RFRjAxMjM0NTY3ODlBQkNERUY=",
            f"{ns}server-side-encryption-customer-key-md5": "U5L61r7jcwdNvT7frmUG8g==",
        }
    assert keys.headers(None, "x-amz-server-side-encryption-customer-") == {}


def test_choices_remembered_per_object_then_last_that_worked():
    keys = ssec.CustomerKeys([ssec.CustomerKey(KEY1), ssec.CustomerKey(KEY2)])
    assert keys.candidates("a") == [0, 1, None]
    keys.opened("a", 1)
    assert keys.candidates("b") == [1, 0, None]  # a bucket usually uses one key
    keys.opened("plain", None)
    assert keys.candidates("a") == [1, None, 0]
    assert keys.candidates("c") == [None, 0, 1]


def test_oss_refuses_sse_c_with_one_line(tmp_path):
    kf = _key_file(tmp_path, KEY1)
    r = run_metafs("--sse-c-key-file", str(kf), "--region", "cn-hangzhou", "oss://bkt", str(tmp_path))
    assert r.returncode == 2
    assert r.stderr == ("metafs: --sse-c-key-file: Alibaba Cloud OSS has no customer-provided keys "
                        "(SSE-C)\n")


# -- real mounts on Ceph RGW -------------------------------------------------------------------------

def _encrypted_bucket(rgw_boto, bucket: str) -> None:
    rgw_boto.put_object(Bucket=bucket, Key="plain", Body=b"plain bytes")
    for name, key, body in (("enc1", KEY1, b"secret one"), ("enc2", KEY2, b"secret two!"),
                            ("other", KEY3, b"someone else's")):
        rgw_boto.put_object(Bucket=bucket, Key=name, Body=body, Metadata={"colour": name},
                            SSECustomerAlgorithm="AES256", SSECustomerKey=key)


def _no_secret_anywhere(m, *keys: bytes) -> None:
    text = m.log_text()
    cmdlines = subprocess.run(["sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '"],
                              capture_output=True).stdout
    for k in keys:
        for form in (base64.b64encode(k), k.hex().encode()):
            assert form.decode() not in text
            assert form not in cmdlines


@pytest.mark.mount
@pytest.mark.rgw
def test_sse_c_object_without_key_is_listed_but_eacces(rgw_boto, rgw_bucket, rgw_mount):
    _encrypted_bucket(rgw_boto, rgw_bucket)
    m = rgw_mount(rgw_bucket, "--metadata-ttl", "1")
    # A lookup before any listing: HEAD is refused, one listing page says what stat needs.
    assert stat_fields(m, "enc2", "%F|%s") == ["regular file", "11"]
    assert ls_names(m) == ["enc1", "enc2", "other", "plain"]
    assert stat_fields(m, "enc1", "%F|%s") == ["regular file", "10"]  # from the listing
    r = m.run("getfattr -n user.colour enc1", check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    r = m.run("cat enc1", check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    assert m.run("cat plain").stdout == "plain bytes"
    # After the TTL, stat still works: the revalidating HEAD is refused, a listing answers.
    time.sleep(1.2)
    assert stat_fields(m, "enc1", "%F|%s") == ["regular file", "10"]
    lines = [ln for ln in m.log_text().splitlines() if "customer key (SSE-C)" in ln]
    assert len(lines) == 2, lines  # one for getfattr, one for cat: stat logs nothing
    assert all("give the key with --sse-c-key-file" in ln for ln in lines)


@pytest.mark.mount
@pytest.mark.rgw
def test_sse_c_keys_open_their_objects_and_are_remembered(rgw, rgw_boto, rgw_bucket, rgw_mount,
                                                          tmp_path):
    _encrypted_bucket(rgw_boto, rgw_bucket)
    kf = _key_file(tmp_path, base64.b64encode(KEY1) + b"\n" + base64.b64encode(KEY2) + b"\n")
    with FaultProxy(rgw.url) as proxy:
        m = rgw_mount(rgw_bucket, "--sse-c-key-file", str(kf), endpoint=proxy.url)
        # enc1: the first key opens it (one HEAD); its SSE-C echo is shown.
        assert xattr(m, "enc1", "user.colour") == b"enc1"
        assert proxy.seen(is_head("enc1")) == 1
        assert xattr(m, "enc1", "s3.server-side-encryption-customer-algorithm") == b"AES256"
        assert xattr(m, "enc1", "s3.server-side-encryption-customer-key-md5") == _md5(KEY1).encode()
        # enc2: key 1 (the last that worked) is refused, key 2 opens it: two HEADs, then remembered.
        assert xattr(m, "enc2", "user.colour") == b"enc2"
        assert proxy.seen(is_head("enc2")) == 2
        assert m.run("cat enc2").stdout == "secret two!"
        assert proxy.seen(is_get("enc2")) == 1  # the remembered key: one GET
        assert m.run("cat enc1").stdout == "secret one"
        assert proxy.seen(is_get("enc1")) == 1  # key 2 was the last to work, but key 1 is remembered
        # A plain object: the keys are refused or ignored, no key opens it.
        assert m.run("cat plain").stdout == "plain bytes"
        # Nobody's key opens "other": EACCES, one line, every choice tried once.
        r = m.run("getfattr -n user.colour other", check=False)
        assert r.returncode != 0 and "Permission denied" in r.stderr
        assert proxy.seen(is_head("other")) == 3
        assert "none of the 2 keys of --sse-c-key-file opens it" in m.log_text()
        _no_secret_anywhere(m, KEY1, KEY2)


# -- the client, per dialect, over httpx.MockTransport ---------------------------------------------

def _keyed_server(ns: str, good: ssec.CustomerKey):
    """Answers like an SSE-C object of key ``good``: 400 without it or with another (bodiless HEAD)."""
    def answer(req: httpx.Request) -> httpx.Response:
        md5 = req.headers.get(f"{ns}server-side-encryption-customer-key-md5")
        if md5 != good.md5:
            return httpx.Response(400)
        return httpx.Response(200, headers={
            "content-length": "3", "etag": '"e"',
            f"{ns}server-side-encryption-customer-algorithm": "AES256",
            f"{ns}server-side-encryption-customer-key-md5": good.md5})
    return answer


@pytest.mark.parametrize("dialect, ns, verify", [
    (S3, "x-amz-", None), (COS, "x-cos-", "cos"), (OBS, "x-obs-", "obs")])
def test_client_finds_the_key_per_dialect_and_signs_the_headers(dialect, ns, verify):
    k1, k2 = ssec.CustomerKey(KEY1), ssec.CustomerKey(KEY2)
    keys = ssec.CustomerKeys([k1, k2])
    srv = Server(_keyed_server(ns, k2))
    bucket = "bkt-1250000000" if dialect is COS else "bkt"

    async def go(c):
        first = await c.head_object("obj")
        again = await c.head_object("obj")
        return first, again

    first, again = run(srv, go, dialect=dialect, bucket=bucket, customer_keys=keys)
    assert isinstance(first, Fresh) and isinstance(again, Fresh)
    md5_name = (SYSTEM_NS + "server-side-encryption-customer-key-md5").encode()
    assert first.meta.xattrs[md5_name] == k2.md5.encode()
    sent = [r.headers.get(f"{ns}server-side-encryption-customer-key-md5") for r in srv.requests]
    assert sent == [k1.md5, k2.md5, k2.md5]  # key 1 refused, key 2 opens it, then remembered
    for r in srv.requests:
        h = headers_of(r)
        assert h[f"{ns}server-side-encryption-customer-algorithm"] == "AES256"
        assert h[f"{ns}server-side-encryption-customer-key"] in (k1.b64, k2.b64)
        auth = h["authorization"]
        if dialect is S3:
            assert f"{ns}server-side-encryption-customer-key;" in auth
        elif dialect is COS:
            assert f"{ns}server-side-encryption-customer-key;" in auth
            _verify_cos(r, bucket)
        else:
            _verify_obs(r, bucket)
        assert k1.b64 not in auth and k2.b64 not in auth


def _verify_cos(req, bucket):
    from metafs.signing.cos import cos_signature
    from tests.fakes import SECRET, wire_query

    h = headers_of(req)
    fields = dict(p.partition("=")[::2] for p in h["authorization"].split("&"))
    expected = cos_signature(SECRET, fields["q-key-time"], req.method, "/obj", wire_query(req),
                             [(n, h[n]) for n in fields["q-header-list"].split(";")])
    assert fields["q-signature"] == expected


def _verify_obs(req, bucket):
    """The OBS SDK's own signature of the request, SSE-C headers included (they are x-obs-*)."""
    from obs import auth as obs_auth
    from obs.convertor import Adapter

    from tests.fakes import SECRET, wire_query

    h = headers_of(req)
    args = {k: (v if v != "" else None) for k, v in wire_query(req)}
    expected = obs_auth.Authentication("AKID", SECRET, False, Adapter("obs"), "obs.example", False) \
        .doAuth(req.method, bucket, "obj", args, {k: v for k, v in h.items() if k != "authorization"})
    assert expected["Authorization"] == h["authorization"]


def test_client_without_keys_reads_a_bodiless_400_as_a_customer_key_refusal():
    srv = Server(httpx.Response(400))
    with pytest.raises(errors.CustomerKeyError) as e:
        run(srv, lambda c: c.head_object("obj"))
    assert e.value.errno == errno.EACCES and len(srv.requests) == 1
    assert "give the key with --sse-c-key-file" in str(e.value)


@pytest.mark.parametrize("dialect, header", [
    (S3, "x-amz-request-payer"), (OSS, "x-oss-request-payer"), (OBS, "x-obs-request-payer")])
def test_request_headers_on_every_request(dialect, header):
    srv = Server(httpx.Response(200, content=listing("a")))

    async def go(c):
        await c.list_page("")
        await c.head_object("a")
        await c.get_range("a", 0, 0, None)

    run(srv, go, dialect=dialect, region="cn-hangzhou" if dialect is OSS else "us-east-1",
        request_headers={header: "requester"})
    assert [headers_of(r)[header] for r in srv.requests] == ["requester"] * 3

"""SSE-C (--sse-c-key-file): keys, choices, headers; real mounts on Ceph RGW, which enforces SSE-C."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from metafs import errors
from metafs.s3 import ssec
from metafs.s3.dialects import COS, OBS, S3
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
    m = rgw_mount(rgw_bucket)
    assert ls_names(m) == ["enc1", "enc2", "other", "plain"]
    assert stat_fields(m, "enc1", "%F|%s") == ["regular file", "10"]  # from the listing
    r = m.run("getfattr -n user.colour enc1", check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    r = m.run("cat enc1", check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    assert m.run("cat plain").stdout == "plain bytes"
    lines = [ln for ln in m.log_text().splitlines() if "customer key (SSE-C)" in ln]
    assert len(lines) == 2, lines  # one for getfattr, one for cat
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

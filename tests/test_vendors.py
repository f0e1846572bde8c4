"""Real mounts of COS, OSS, OBS and an S3 directory bucket, against tests/vendor_server.py.

Each fake verifies every signature (COS with the SDK-checked ``cos_signature``,
OSS and OBS with their official SDKs, S3 Express with the botocore-checked
SigV4 signer) and requires the bucket in the ``Host`` header: metafs
reaches it through ``HTTP_PROXY`` (see the fake's docstring: ``*.localhost``
does not resolve here), so virtual-hosted addressing is what is tested.
Temporary credentials are used throughout, so each vendor's token header
is checked too.  The environment also holds (moto's) AWS keys: a vendor
mount that fell back to them would fail its signature check.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import base_env, run_metafs
from tests.vendor_server import VendorServer, crc64_xz

pytestmark = pytest.mark.mount

KEY_ID = "AKIDVENDORTEST0001"
SECRET = "vendor/secret+KEY=must-never-be-logged"
TOKEN = "vendor-session-token/+=must-never-be-logged"

VENDORS = {
    "cos": dict(bucket="examplebucket-1250000000", endpoint_host="cos.ap-guangzhou.vendor.test",
                region="ap-guangzhou",
                env=("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "TENCENTCLOUD_SESSION_TOKEN")),
    "oss": dict(bucket="metafs-oss", endpoint_host="oss-cn-hangzhou.vendor.test", region="cn-hangzhou",
                env=("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN")),
    "obs": dict(bucket="metafs-obs", endpoint_host="obs.cn-north-4.vendor.test", region="cn-north-4",
                env=("OBS_ACCESS_KEY_ID", "OBS_SECRET_ACCESS_KEY", "OBS_SECURITY_TOKEN")),
}
PREFIX = {"cos": "x-cos-", "oss": "x-oss-", "obs": "x-obs-"}


def make_server(name: str, **kw: object) -> VendorServer:
    v = VENDORS.get(name, {})
    args = dict(bucket=v.get("bucket"), endpoint_host=v.get("endpoint_host"), region=v.get("region"),
                access_key=KEY_ID, secret_key=SECRET, token=TOKEN)
    args.update(kw)
    return VendorServer(name, **args).start()  # type: ignore[arg-type]


def vendor_env(srv: VendorServer, name: str, secret: str = SECRET, key_id: str = KEY_ID) -> dict[str, str]:
    env = {k: v for k, v in base_env().items() if "proxy" not in k.lower()}
    env.update(HTTP_PROXY=srv.proxy_url, http_proxy=srv.proxy_url)
    if name in VENDORS:
        id_var, secret_var, token_var = VENDORS[name]["env"]  # type: ignore[misc]
        env.update({id_var: key_id, secret_var: secret, token_var: TOKEN})
    return env


@pytest.fixture
def vendor_mount(mount) -> Iterator:
    """``vendor_mount(srv, name, *options)``: the conftest mount, through the fake."""
    mounts = []

    def _mount(srv: VendorServer, name: str, *options: str, source: str | None = None,
               env: dict[str, str] | None = None):
        m = mount(source or f"{name}://{srv.bucket}", "--metadata-ttl", "1", *options,
                  endpoint=srv.endpoint_url, env={**vendor_env(srv, name), **(env or {})})
        mounts.append(m)
        srv.reset()  # counts start after the start-up check, as with metafs.devserver
        return m

    yield _mount
    for m in mounts:  # the conftest fixture checks tracebacks and moto's secret
        text = m.log_text()
        assert SECRET not in text and TOKEN not in text


def names(m, path: str = ".") -> list[str]:
    """Entries in readdir order (``ls -U``: unsorted)."""
    return [n for n in m.run(f"ls -1aU {shlex.quote(path)}").stdout.split("\n")
            if n and n not in (".", "..")]


def xattr(m, path: str, name: str) -> str:
    out = m.run(f"getfattr --only-values -e base64 -n {shlex.quote(name)} -- {shlex.quote(path)}"
                ).stdout.strip()
    return (base64.b64decode(out[2:]) if out.startswith("0s") else out.encode()).decode()


def dump(m, path: str, match: str = "-") -> dict[str, str]:
    """``getfattr -d``: name -> value."""
    out = m.run(f"getfattr -d -e base64 -m {shlex.quote(match)} -- {shlex.quote(path)}").stdout
    pairs = [ln.split("=", 1) for ln in out.splitlines() if "=" in ln]
    return {k: base64.b64decode(v[2:]).decode() if v.startswith("0s") else v.strip('"')
            for k, v in pairs}


def user_meta(d: dict[str, str]) -> dict[str, str]:
    """The user metadata of a dump (``user.s3.*`` and the freedesktop aliases left out)."""
    return {k: v for k, v in d.items()
            if not k.startswith(("user.s3.", "user.mime_type", "user.xdg."))}


def system_dump(m, path: str) -> dict[str, str]:
    """``getfattr -d -m ^user.s3.`` with the names spelt as last release's (``s3.etag``)."""
    return {k[len("user."):]: v for k, v in dump(m, path, "^user\\.s3\\.").items()}


def assert_all_virtual_hosted_and_signed(srv: VendorServer) -> None:
    for r in srv.history:
        assert r.host == f"{srv.bucket}.{srv.endpoint_host}", r
        assert r.code not in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied",
                              "InvalidToken", "ExpiredToken") or r.key in ("denied.txt", "secret-tags"), r


def populate(srv: VendorServer, name: str) -> dict[str, bytes]:
    p = PREFIX[name]
    bodies = {"report.csv": b"id,value\n" + b"1,2\n" * 300, "odd name + plus.txt": b"odd",
              "dir/a.txt": b"alpha", "dir/b.txt": b"beta", "dir/sub/c.txt": b"gamma",
              "appendable.log": b"log line\n"}
    extra = {
        "cos": {"x-cos-storage-class": "STANDARD_IA", "x-cos-version-id": "MTg0NDUxNzc4MjQ3NzU4NDI1NTQ",
                "x-cos-server-side-encryption": "AES256",
                "x-cos-restore": 'ongoing-request="false", expiry-date="Fri, 01 Jan 2027 00:00:00 GMT"'},
        "oss": {"x-oss-storage-class": "IA", "x-oss-version-id": "CAEQNhiBgMDJgZCA0BYiIDc4",
                "x-oss-server-side-encryption": "KMS",
                "x-oss-server-side-encryption-key-id": "kms-key-1"},
        "obs": {"x-obs-storage-class": "WARM", "x-obs-version-id": "G001118A6456208AFFFFD24829FCF614",
                "x-obs-expiration": 'expiry-date="Sat, 01 Jan 2028 00:00:00 GMT", rule-id="r1"'},
    }[name]
    meta = {"owner": "alice", "project": "metafs"}
    if name == "obs":  # OBS keeps values as sent; clients percent-encode non-ASCII
        meta["city"] = "S%C3%A3o%20Paulo"
    srv.put("report.csv", bodies["report.csv"], meta=meta,
            headers={**extra, "content-type": "text/csv"}, mtime=1_700_000_000,
            tags={"project": "blue", "team": "data"})
    srv.put("appendable.log", bodies["appendable.log"],
            headers={p + "object-type": "appendable" if name == "cos" else "Appendable",
                     p + "next-append-position": "9"})
    for k in ("odd name + plus.txt", "dir/a.txt", "dir/b.txt", "dir/sub/c.txt"):
        srv.put(k, bodies[k])
    srv.put("denied.txt", b"secret")
    srv.denied.add("denied.txt")
    return bodies


@pytest.mark.parametrize("name", ["cos", "oss", "obs"])
def test_vendor_mount_ls_stat_getfattr_and_revalidation(vendor_mount, name):
    srv = make_server(name, page_size=2)  # several listing pages: V1 markers / V2 tokens
    try:
        bodies = populate(srv, name)
        if name == "cos":
            srv.delete_markers.add("gone.txt")
        # The fake's endpoint is a custom domain: OSS V4 needs the region given.
        m = vendor_mount(srv, name, *(["--region", "cn-hangzhou"] if name == "oss" else []))

        # ls -l: names, sizes and mtimes from the listing pages alone.
        out = m.run("ls -l --time-style=+%s").stdout.splitlines()[1:]
        seen = {ln.split(None, 6)[6]: ln.split(None, 6) for ln in out}
        assert sorted(seen) == ["appendable.log", "denied.txt", "dir", "odd name + plus.txt",
                                "report.csv"]
        assert seen["report.csv"][4:6] == [str(len(bodies["report.csv"])), "1700000000"]
        assert seen["dir"][0].startswith("d")
        # 5 entries at 2 per page: 3 pages, chained by marker (COS, OBS) or token (OSS).
        lists = srv.log("LIST")
        assert len(lists) == 3 and srv.counts()["HEAD"] == 0
        paging = "continuation-token" if name == "oss" else "marker"
        assert [paging in r.query for r in lists] == [False, True, True]
        assert ("list-type" in lists[0].query) == (name == "oss")

        # stat within the TTL: no request; getfattr -d: one HEAD, then none.
        assert m.run("stat -c '%s %Y %F' report.csv").stdout.split() == [
            str(len(bodies["report.csv"])), "1700000000", "regular", "file"]
        user = user_meta(dump(m, "report.csv", "^user\\."))
        expected = {"user.owner": "alice", "user.project": "metafs"}
        if name == "obs":
            expected["user.city"] = "São Paulo"  # decoded from S%C3%A3o%20Paulo
        assert user == expected
        # getfattr -d: HEAD, and the tags (GET ?tagging) beside it.
        assert srv.counts()["HEAD"] == 1 and srv.counts()["TAGGING"] == 1
        system = {k: v for k, v in system_dump(m, "report.csv").items()
                  if not k.startswith("s3.tag.")}
        assert system["s3.hash-crc64ecma"] == str(crc64_xz(bodies["report.csv"]))
        assert system["s3.content-type"] == "text/csv"
        assert system["s3.storage-class"] == {"cos": "STANDARD_IA", "oss": "IA", "obs": "WARM"}[name]
        assert system["s3.version-id"] == srv.objects["report.csv"].headers[PREFIX[name] + "version-id"]
        etag = srv.objects["report.csv"].etag
        assert system["s3.etag"] == etag.strip('"')
        if name == "oss":
            assert system["s3.etag"].isupper() and system["s3.tagging-count"] == "2"
            assert system["s3.object-type"] == "Normal"
            assert system["s3.server-side-encryption-kms-key-id"] == "kms-key-1"
        if name == "cos":
            assert system["s3.restore"].startswith('ongoing-request="false"')
        if name == "obs":
            assert system["s3.expiration"].startswith('expiry-date="Sat, 01 Jan 2028')
        assert not any(k.endswith(("request-id", "trace-id", "id-2", "server-time")) for k in system)
        assert xattr(m, "appendable.log", "s3.object-type").lower() == "appendable"
        assert xattr(m, "appendable.log", "s3.next-append-position") == "9"
        assert srv.counts()["HEAD"] == 2
        tags = dump(m, "report.csv", "^user\\.s3\\.tag\\.")
        assert tags == {"user.s3.tag.project": "blue", "user.s3.tag.team": "data"}

        # The mount root shows the bucket check's answer.
        root = system_dump(m, ".")
        assert root["s3.bucket-region"] == {"cos": "ap-guangzhou", "oss": "oss-cn-hangzhou",
                                            "obs": "cn-north-4"}[name]
        assert root["s3.provider"] == name and root["s3.bucket"] == srv.bucket
        assert root["s3.endpoint"] == f"http://{srv.bucket}.{srv.endpoint_host}"
        if name == "obs":
            assert root["s3.version"] == "3.0" and root["s3.storage-class"] == "STANDARD"

        # After the 1 s TTL: one conditional HEAD with the ETag exactly as sent; 304 keeps all.
        time.sleep(1.1)
        assert user_meta(dump(m, "report.csv", "^user\\.")) == expected
        cond = srv.log("HEAD_COND")
        assert len(cond) == 1 and cond[0].headers["if-none-match"] == etag and cond[0].status == 304
        # Changed behind the mount: the next revalidation gets 200 and the new metadata.
        srv.put("report.csv", b"new", meta={"owner": "bob"}, mtime=1_800_000_000)
        time.sleep(1.1)
        assert m.run("stat -c '%s %Y' report.csv").stdout.split() == ["3", "1800000000"]
        assert xattr(m, "report.csv", "user.owner") == "bob"

        # Odd names, a subdirectory listing, contents, denied and deleted objects.
        assert m.run("cat 'odd name + plus.txt'").stdout == "odd"
        assert sorted(names(m, "dir")) == ["a.txt", "b.txt", "sub"]
        assert m.run("cat dir/sub/c.txt").stdout == "gamma"
        r = m.run("getfattr -d denied.txt", check=False)
        assert r.returncode != 0 and "Permission denied" in r.stderr
        if name == "oss":  # the 403 HEAD had no body: its reason came from x-oss-err
            assert "You have no right to access this object." in m.log_text()
        if name == "cos":  # the latest version is a delete marker: 404, no such file
            r = m.run("stat gone.txt", check=False)
            assert r.returncode != 0 and "No such file" in r.stderr
        assert_all_virtual_hosted_and_signed(srv)
        tokens = {r.headers.get(f"{PREFIX[name]}security-token") for r in srv.log()}
        assert tokens == {TOKEN}
    finally:
        srv.stop()


@pytest.mark.parametrize("name", ["cos", "oss", "obs"])
def test_wrong_secret_is_one_line_at_mount_time(tmp_path: Path, name):
    srv = make_server(name)
    try:
        wrong = "not-the-" + SECRET
        for key_id, secret, code in [(KEY_ID, wrong, "SignatureDoesNotMatch"),
                                     ("AKIDUNKNOWN", SECRET, "InvalidAccessKeyId")]:
            r = run_metafs("--endpoint-url", srv.endpoint_url, "--region", srv.region,
                           f"{name}://{srv.bucket}", str(tmp_path),
                           env=vendor_env(srv, name, secret=secret, key_id=key_id))
            assert r.returncode == 1, r.stderr
            lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
            assert lines == [f"metafs: cannot mount {name}://{srv.bucket}/ on {tmp_path}: the "
                             f"credentials were rejected by {srv.endpoint_url} ({code}): check the "
                             "access key id and secret"], r.stderr
            assert wrong not in r.stderr and SECRET not in r.stderr and TOKEN not in r.stderr
            assert not os.path.ismount(tmp_path)
        # The fake said so with the vendor's own 403 (HEAD first, then a bodied listing
        # for COS and OBS; OSS's check is a GET).
        rejected = [rec for rec in srv.log() if rec.status == 403]
        assert {rec.code for rec in rejected} == {"SignatureDoesNotMatch", "InvalidAccessKeyId"}
        kinds = [rec.kind for rec in srv.log()]
        assert kinds == (["LOCATION"] * 2 if name == "oss" else ["HEAD_BUCKET", "LIST"] * 2)
    finally:
        srv.stop()


def test_missing_vendor_credentials_do_not_fall_back_to_aws(tmp_path: Path):
    srv = make_server("cos")
    try:
        env = vendor_env(srv, "none")  # moto's AWS keys are set; COS's are not
        r = run_metafs("--endpoint-url", srv.endpoint_url, f"cos://{srv.bucket}", str(tmp_path), env=env)
        assert r.returncode == 1
        assert "no Tencent COS credentials found" in r.stderr and srv.log() == []
    finally:
        srv.stop()


EXPRESS = "metafs--usw2-az1--x-s3"


def test_directory_bucket_sessions_and_unordered_listing(vendor_mount):
    srv = VendorServer("s3express", bucket=EXPRESS, endpoint_host="s3express-usw2-az1.us-west-2.vendor.test",
                       region="us-west-2", access_key="AKIAIAMTEST", secret_key=SECRET, token=TOKEN,
                       page_size=3, session_lifetime=3).start()
    try:
        files = [f"f{i:02d}.txt" for i in range(8)]
        for i, f in enumerate(files):
            srv.put(f, b"x" * i, meta={"n": str(i)})
        srv.put("sub/inner.txt", b"in")

        iam = dict(AWS_ACCESS_KEY_ID="AKIAIAMTEST", AWS_SECRET_ACCESS_KEY=SECRET, AWS_SESSION_TOKEN=TOKEN)
        m = vendor_mount(srv, "s3", "--region", "us-west-2", source=EXPRESS, env=iam)

        # The server lists 9 entries in no order, 3 per page; readdir shows them sorted.
        scrambled = sorted(files + ["sub/"], key=lambda n: hashlib.sha1(n.encode()).hexdigest())
        assert scrambled != sorted(scrambled)  # (what the fake serves: not key order)
        listing = names(m)
        served = [rec.query.get("continuation-token") for rec in srv.log("LIST")]
        assert listing == sorted(files + ["sub"])
        assert len(srv.log("LIST")) == 3 and served[0] is None and all(served[1:])
        assert srv.counts()["SESSION"] == 1  # created by the first data request

        assert xattr(m, "f03.txt", "user.n") == "3"
        assert xattr(m, "f03.txt", "s3.storage-class") == "EXPRESS_ONEZONE"
        assert "user.s3.checksum-crc32" in dump(m, "f03.txt", "^user\\.s3\\.")  # asked with checksum mode
        assert srv.counts()["TAGGING"] == 0  # directory buckets have no tags (nor annotations): not asked

        # The fake's sessions last 3 s: after 2.5 s metafs has renewed before using it again.
        time.sleep(2.5)
        assert xattr(m, "f03.txt", "user.n") == "3"  # revalidation: conditional HEAD
        assert srv.counts()["SESSION"] >= 2
        assert srv.log("HEAD_COND")[-1].status == 304

        assert [r.kind for r in srv.history[:2]] == ["HEAD_BUCKET", "SESSION"]
        for rec in srv.history:
            h = rec.headers
            assert rec.code != "ExpiredToken", rec  # never sent with an expired session
            assert rec.host == f"{EXPRESS}.{srv.endpoint_host}"
            if rec.kind in ("SESSION", "HEAD_BUCKET"):  # IAM-signed, IAM token
                assert h.get("x-amz-security-token") == TOKEN and "x-amz-s3session-token" not in h
                assert rec.status == 200
                assert (h.get("x-amz-create-session-mode") == "ReadOnly") == (rec.kind == "SESSION")
            else:  # session-signed, session token, never the IAM token
                assert "x-amz-security-token" not in h
                assert h["x-amz-s3session-token"].startswith("SessionToken/")
                assert rec.status in (200, 206, 304), rec
        tokens = [r.headers["x-amz-s3session-token"] for r in srv.history
                  if r.kind not in ("SESSION", "HEAD_BUCKET")]
        assert len(set(tokens)) >= 2 and tokens[-1] != tokens[0]

        # Listed in no order: a lookup probe's LIST cannot be a flat first page (no order
        # to prove a directory complete), so it is `max-keys=1`, one level at a time.
        srv.put("sub/deep/x", b"x")
        srv.reset()
        assert m.run("stat -c %s sub/deep/x").stdout.strip() == "1"
        probes = srv.log("LIST")  # (sub/ too, if the root's listing expired meanwhile)
        assert all(r.query.get("max-keys") == "1" and "delimiter" not in r.query for r in probes)
        assert [r.query["prefix"] for r in probes][-2:] == ["sub/deep/", "sub/deep/x/"]
    finally:
        srv.stop()


@pytest.mark.parametrize("name", ["cos", "oss", "obs", "s3express"])
def test_the_fakes_reject_what_the_vendor_would(name):
    """The fakes are only worth their passes if they refuse: a request signed by
    metafs passes; the same request for another key (the path is signed by every
    dialect), unsigned, or addressed path style does not."""
    import datetime as dt

    import httpx
    import trio

    from metafs.credentials import CredentialSource
    from metafs.s3.client import S3Client
    from metafs.s3.dialects import dialect_for
    from metafs.signing import Credentials

    class Keys(CredentialSource):
        async def get(self) -> Credentials:
            return Credentials(KEY_ID if name != "s3express" else "AKIAIAM", SECRET, TOKEN)

    bucket = "b--usw2-az1--x-s3" if name == "s3express" else VENDORS[name]["bucket"]
    srv = make_server(name, bucket=bucket, **({"endpoint_host": "x.us-west-2.vendor.test",
                                               "region": "us-west-2", "access_key": "AKIAIAM"}
                                              if name == "s3express" else {}))
    srv.put("k", b"v")
    try:
        async def main() -> list[int]:
            async with httpx.AsyncClient(proxy=srv.proxy_url) as http:
                c = S3Client(http, bucket=bucket, region=srv.region, endpoint_url=srv.endpoint_url,
                             credentials=Keys(), dialect=dialect_for(
                                 "s3" if name == "s3express" else name, bucket),
                             now=lambda: dt.datetime.now(dt.UTC))
                signer, creds, _ = await c._signing("data")
                good = c._prepare("HEAD", "k", [], {"if-none-match": '"x"'}, signer, creds)
                statuses = [(await http.send(good)).status_code]
                tampered = httpx.Request("HEAD", str(good.url).replace("/k", "/k2"), headers=good.headers)
                statuses.append((await http.send(tampered)).status_code)
                unsigned = c._prepare("HEAD", "k", [], {}, signer, None)
                statuses.append((await http.send(unsigned)).status_code)
                path_style = httpx.Request("HEAD", f"{srv.endpoint_url}/{bucket}/k", headers=good.headers)
                path_style.headers["host"] = srv.endpoint_host
                statuses.append((await http.send(path_style)).status_code)
                return statuses

        assert trio.run(main) == [200, 403, 403, 403]
        codes = [r.code for r in srv.log("HEAD", "HEAD_COND")]
        assert codes[:3] == ["", "SignatureDoesNotMatch", "AccessDenied"]
        assert codes[3] == {"cos": "PathStyleDomainForbidden", "oss": "SecondLevelDomainForbidden",
                            "obs": "VirtualHostDomainRequired", "s3express": "InvalidRequest"}[name]
    finally:
        srv.stop()


@pytest.mark.parametrize("name", ["cos", "oss", "obs"])
def test_the_fakes_tagging_speaks_each_official_sdk(name, monkeypatch):
    """GetObjectTagging as each vendor's SDK builds it (request, signature) and parses it:
    the fake must accept the SDK's request and answer what the SDK's parser reads."""
    srv = make_server(name)
    srv.put("dir/photo.jpg", b"x", tags={"project": "blue", "a b": "c=d/e:f"})
    srv.put("untagged", b"x")
    v = VENDORS[name]
    try:
        if name == "oss":
            import alibabacloud_oss_v2 as oss

            monkeypatch.setenv("HTTP_PROXY", srv.proxy_url)
            cfg = oss.config.load_default()
            cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(KEY_ID, SECRET, TOKEN)
            cfg.region, cfg.endpoint = "cn-hangzhou", srv.endpoint_url
            client = oss.Client(cfg)

            def tags_of(key: str) -> dict[str, str]:
                r = client.get_object_tagging(oss.GetObjectTaggingRequest(bucket=srv.bucket, key=key))
                return {t.key: t.value for t in (r.tag_set.tags or [])}
        elif name == "cos":
            from qcloud_cos import CosConfig, CosS3Client

            cos = CosS3Client(CosConfig(Region=v["region"], SecretId=KEY_ID, SecretKey=SECRET, Token=TOKEN,
                                        Scheme="http", Endpoint=srv.endpoint_host,
                                        Proxies={"http": srv.proxy_url}))

            def tags_of(key: str) -> dict[str, str]:
                r = cos.get_object_tagging(Bucket=srv.bucket, Key=key)
                tags = (r.get("TagSet") or {}).get("Tag", [])
                return {t["Key"]: t["Value"] for t in ([tags] if isinstance(tags, dict) else tags)}
        else:
            import socket

            from obs import ObsClient

            # The OBS SDK tunnels through a proxy with CONNECT: instead, its endpoint's
            # names resolve to the fake (the request and its Host header stay the SDK's).
            real = socket.getaddrinfo
            monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: real(
                "127.0.0.1" if str(host).endswith(".vendor.test") else host, *a, **k))
            port = srv.proxy_url.rsplit(":", 1)[1]
            obs = ObsClient(access_key_id=KEY_ID, secret_access_key=SECRET, security_token=TOKEN,
                            server=f"http://{srv.endpoint_host}:{port}", signature="obs",
                            is_signature_negotiation=False)

            def tags_of(key: str) -> dict[str, str]:
                r = obs.getObjectTagging(srv.bucket, key)
                if r.status == 404 and r.errorCode == "NoSuchTagSet":
                    return {}
                assert r.status == 200, (r.status, r.errorCode)
                return {t["key"]: t["value"] for t in r.body["tags"]}

        assert tags_of("dir/photo.jpg") == {"project": "blue", "a b": "c=d/e:f"}
        assert tags_of("untagged") == {}
        assert [(r.kind, r.code) for r in srv.log("TAGGING")][:1] == [("TAGGING", "")]
        if name == "obs":
            assert srv.log("TAGGING")[1].code == "NoSuchTagSet"
    finally:
        srv.stop()


@pytest.mark.parametrize("name", ["cos", "oss", "obs"])
def test_vendor_tags_as_xattrs_cost_and_permissions(vendor_mount, name):
    srv = make_server(name)
    try:
        srv.put("tagged", b"t", tags={"project": "blue", "a b": "c=d"}, meta={"m": "1"})
        srv.put("zero", b"z", tags={})  # COS/OSS: HEAD says x-…-tagging-count: 0
        srv.put("never", b"n")  # never tagged: no count on HEAD (absent is not 0)
        srv.put("secret-tags", b"s", tags={"k": "v"}, meta={"m": "2"})
        srv.tags_denied.add("secret-tags")
        m = vendor_mount(srv, name, *(["--region", "cn-hangzhou"] if name == "oss" else []))
        m.run("ls -l && stat tagged zero never secret-tags")
        assert srv.counts()["TAGGING"] == 0 and srv.counts()["HEAD"] == 0  # ls -l, stat: the listing
        srv.reset()
        got = dump(m, "tagged")
        assert got["user.s3.tag.project"] == "blue" and got["user.s3.tag.a b"] == "c=d"
        assert srv.counts()["HEAD"] == 1 and srv.counts()["TAGGING"] == 1
        srv.reset()
        assert not any(k.startswith("user.s3.tag.") for k in dump(m, "zero"))
        # The count on HEAD spares the request where the provider sends it (COS, OSS).
        assert srv.counts()["TAGGING"] == (1 if name == "obs" else 0)
        srv.reset()
        assert not any(k.startswith("user.s3.tag.") for k in dump(m, "never"))
        assert srv.counts()["TAGGING"] == 1  # no count: asked (OBS: 404 NoSuchTagSet, no tags)
        # No permission for the tags: the other metadata, and one log line.
        assert dump(m, "secret-tags")["user.m"] == "2"
        assert dump(m, "secret-tags")["user.m"] == "2"
        assert m.log_text().count("no permission to read the tags") == 1
        assert_all_virtual_hosted_and_signed(srv)
    finally:
        srv.stop()

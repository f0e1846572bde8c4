"""Versions on COS, OSS and OBS: the fakes' versions listings proven against each vendor's
official SDK, metafs's client against the fakes (paging, delete-marker answers per vendor),
and real ``--as-of`` mounts through them.

The fakes (tests/vendor_server.py) verify every signature; metafs reaches them
through ``HTTP_PROXY`` with virtual-hosted addressing (see the fake's docstring).
The OBS SDK tunnels through a proxy with CONNECT, which the fake does not
speak, so for it the SDK's name lookups of ``*.vendor.test`` are pointed at
the fake instead.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from typing import Any

import httpx
import pytest
import trio

from metafs.s3 import dialects
from metafs.s3.client import S3Client
from metafs.s3.model import Absent, Fresh, Version
from tests.fakes import SECRET, StaticCredentials
from tests.helpers import base_env
from tests.vendor_server import VendorServer

KEY_ID = "AKIDVERSIONS0001"
VENDORS = {
    "cos": dict(bucket="examplebucket-1250000000", endpoint_host="cos.ap-guangzhou.vendor.test",
                region="ap-guangzhou",
                env=("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY")),
    "oss": dict(bucket="metafs-oss", endpoint_host="oss-cn-hangzhou.vendor.test", region="cn-hangzhou",
                env=("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET")),
    "obs": dict(bucket="metafs-obs", endpoint_host="obs.cn-north-4.vendor.test", region="cn-north-4",
                env=("OBS_ACCESS_KEY_ID", "OBS_SECRET_ACCESS_KEY")),
}
H = 3_600_000  # an hour in ms
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
AT = "2026-01-01T05:00:00Z"


def make_server(name: str, page_size: int = 1000) -> VendorServer:
    v = VENDORS[name]
    return VendorServer(name, bucket=str(v["bucket"]), endpoint_host=str(v["endpoint_host"]),
                        region=str(v["region"]), access_key=KEY_ID, secret_key=SECRET,
                        page_size=page_size).start()


def history(srv: VendorServer) -> dict[str, list[str]]:
    """The same history as the S3 test's, with odd names; each key's version ids, oldest first."""
    plan: dict[str, list[tuple[bytes | None, int]]] = {
        "a b+c.txt": [(b"old", 1), (b"newer!", 6)],
        "gone.txt": [(b"g", 1), (None, 3)],
        "late.txt": [(b"late", 7)],
        "kept.txt": [(b"kept", 2), (None, 8)],
        "dead/x": [(b"x", 1), (None, 2)],
        "dir/z": [(b"zz", 2), (b"zz2", 3), (b"zz33", 4)],
    }
    ids: dict[str, list[str]] = {}
    for key, steps in plan.items():
        for body, hour in steps:
            v = (srv.delete_version(key, T0 + hour * H) if body is None
                 else srv.put_version(key, body, T0 + hour * H + 123))
            ids.setdefault(key, []).append(v.version_id)
    return ids


def truth(srv: VendorServer) -> list[tuple[str, str, bool, int]]:
    """(key, version id, delete marker, size) of every entry, in listing order."""
    return [(k, v.version_id, v.obj is None, len(v.obj.body) if v.obj else 0)
            for k in sorted(srv.history_of) for v in reversed(srv.history_of[k])]


# -- the official SDKs read the fakes' answers ------------------------------------------------

def _sdk_cos(srv: VendorServer) -> list[tuple[str, str, bool, int]]:
    from qcloud_cos import CosConfig, CosS3Client

    c = CosS3Client(CosConfig(Region=srv.region, SecretId=KEY_ID, SecretKey=SECRET, Scheme="http",
                              Endpoint=srv.endpoint_host, Proxies={"http": srv.proxy_url}))
    out: list[tuple[str, str, bool, int]] = []
    km = vm = ""
    while True:
        r = c.list_objects_versions(Bucket=srv.bucket, KeyMarker=km, VersionIdMarker=vm)
        # The SDK keeps two arrays (losing the interleaving); each key's run is rebuilt by time.
        entries = [(v["Key"], v["VersionId"], False, int(v["Size"]), v["LastModified"])
                   for v in r.get("Version", [])]
        entries += [(d["Key"], d["VersionId"], True, 0, d["LastModified"])
                    for d in r.get("DeleteMarker", [])]
        out += _ordered(entries)
        if r["IsTruncated"] != "true":
            return out
        km, vm = r["NextKeyMarker"], r.get("NextVersionIdMarker") or ""


def _sdk_oss(srv: VendorServer) -> list[tuple[str, str, bool, int]]:
    import alibabacloud_oss_v2 as oss

    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(KEY_ID, SECRET)
    cfg.region = srv.region
    cfg.endpoint = srv.endpoint_url
    cfg.proxy_host = {"http": srv.proxy_url}
    c = oss.Client(cfg)
    out: list[tuple[str, str, bool, int]] = []
    km: str | None = None
    vm: str | None = None
    while True:
        r = c.list_object_versions(oss.ListObjectVersionsRequest(
            bucket=srv.bucket, key_marker=km, version_id_marker=vm))
        entries = [(v.key, v.version_id, False, v.size, v.last_modified.isoformat())
                   for v in r.version or []]
        entries += [(d.key, d.version_id, True, 0, d.last_modified.isoformat())
                    for d in r.delete_marker or []]
        out += _ordered(entries)
        if not r.is_truncated:
            return out
        km, vm = r.next_key_marker, r.next_version_id_marker


def _sdk_obs(srv: VendorServer, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, bool, int]]:
    from obs import ObsClient, Versions

    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kw: Any) -> Any:
        return real("127.0.0.1" if str(host).endswith(".vendor.test") else host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    port = int(srv.proxy_url.rsplit(":", 1)[1])
    c = ObsClient(access_key_id=KEY_ID, secret_access_key=SECRET, is_secure=False,
                  server=f"http://{srv.endpoint_host}:{port}", signature="obs",
                  is_signature_negotiation=False)
    out: list[tuple[str, str, bool, int]] = []
    km: str | None = None
    vm: str | None = None
    while True:
        r = c.listVersions(srv.bucket, Versions(key_marker=km, version_id_marker=vm))
        assert r.status == 200, (r.errorCode, r.errorMessage)
        b = r.body
        entries = [(v.key, v.versionId, False, int(v.size), v.lastModified) for v in b.versions]
        entries += [(d.key, d.versionId, True, 0, d.lastModified) for d in b.markers]
        out += _ordered(entries)
        if not b.head.isTruncated:
            return out
        km, vm = b.head.nextKeyMarker, b.head.nextVersionIdMarker


def _ordered(entries: list[tuple[str, str, bool, int, str]]) -> list[tuple[str, str, bool, int]]:
    """Key order, newest first (timestamps of one form sort as text within a page)."""
    entries.sort(key=lambda e: e[4], reverse=True)
    entries.sort(key=lambda e: e[0])
    return [e[:4] for e in entries]


@pytest.mark.parametrize("name", ["cos", "oss", "obs"])
def test_the_vendor_sdk_lists_the_fakes_versions(name, monkeypatch):
    srv = make_server(name, page_size=2)  # histories span pages
    try:
        history(srv)
        sdk = {"cos": _sdk_cos, "oss": _sdk_oss}.get(name)
        got = sdk(srv) if sdk is not None else _sdk_obs(srv, monkeypatch)
        assert got == truth(srv)
        assert all(r.status == 200 for r in srv.log())
        assert len(srv.log("LIST")) == 6  # 12 entries, 2 a page
    finally:
        srv.stop()


# -- metafs's client against the fakes ------------------------------------------------------------

def _client_run(srv: VendorServer, name: str, fn: Any) -> Any:
    async def main() -> Any:
        async with httpx.AsyncClient(proxy=srv.proxy_url) as http:
            client = S3Client(http, bucket=srv.bucket, region=srv.region,
                              endpoint_url=srv.endpoint_url, credentials=StaticCredentials(
                                  key_id=KEY_ID), dialect=dialects.dialect_for(name, srv.bucket),
                              attempts=1)
            return await fn(client)

    return trio.run(main)


@pytest.mark.parametrize("name", ["cos", "oss", "obs"])
def test_client_pages_versions_and_heads_versions_per_vendor(name):
    srv = make_server(name, page_size=2)
    try:
        ids = history(srv)

        async def body(client: S3Client) -> tuple[list[Version], Any, Any, bytes, Any]:
            seen: list[Version] = []
            km = vm = None
            while True:
                page = await client.list_versions("", delimiter=None, key_marker=km,
                                                  version_id_marker=vm)
                seen += page.versions
                if not page.truncated:
                    break
                km, vm = page.next_key_marker, page.next_version_id_marker
            old = await client.head_object("a b+c.txt", version_id=ids["a b+c.txt"][0])
            marker = await client.head_object("gone.txt", version_id=ids["gone.txt"][1])
            data = await client.get_range("a b+c.txt", 0, 99, None, version_id=ids["a b+c.txt"][0])
            status = await client.bucket_versioning()
            return seen, old, marker, data, status

        seen, old, marker, data, status = _client_run(srv, name, body)
        assert [(v.key, v.version_id, v.delete_marker, v.size) for v in seen] == truth(srv)
        assert seen[0].stamp_ms == T0 + 6 * H + 123  # milliseconds kept
        assert isinstance(old, Fresh) and old.meta.size == 3
        assert old.meta.xattrs is not None
        assert old.meta.xattrs[b"user.s3.version-id"] == ids["a b+c.txt"][0].encode()
        assert isinstance(marker, Absent)
        assert data == b"old"
        assert status == "Enabled"
        # The delete marker's version is answered as each vendor documents.
        heads = [r for r in srv.log("HEAD") if r.key == "gone.txt"]
        assert [r.status for r in heads] == [404 if name == "cos" else 405]
        # Paging: OBS is never sent an empty version-id-marker, COS always gets one with a key-marker.
        lists = srv.log("LIST")
        assert len(lists) == 6 and all(r.status == 200 for r in lists)
        for r in lists[1:]:
            assert r.query.get("key-marker")
            assert ("version-id-marker" in r.query) or name != "cos"
            assert r.query.get("version-id-marker") != "" or name != "obs"
        assert all(r.status in (200, 206, 404, 405) for r in srv.log())
    finally:
        srv.stop()


# -- real --as-of mounts through the fakes ---------------------------------------------------------

@pytest.mark.mount
@pytest.mark.parametrize("name", ["cos", "oss", "obs"])
def test_vendor_as_of_mount(mount, name):
    srv = make_server(name)
    try:
        ids = history(srv)
        env = {k: v for k, v in base_env().items() if "proxy" not in k.lower()}
        id_var, secret_var = VENDORS[name]["env"]
        env.update(HTTP_PROXY=srv.proxy_url, http_proxy=srv.proxy_url,
                   **{str(id_var): KEY_ID, str(secret_var): SECRET})
        m = mount(f"{name}://{srv.bucket}", "--as-of", AT, "--region", srv.region,
                  endpoint=srv.endpoint_url, env=env)
        srv.reset()
        out = m.run("ls -l").stdout
        assert sorted(ln.split(None, 8)[-1] for ln in out.splitlines()[1:]) == [
            "a b+c.txt", "dir", "kept.txt"]
        c = srv.counts()
        assert (c["LIST"], c["HEAD"], c["GET"]) == (3, 0, 0), c  # root + 2 prefix checks
        assert os.listdir(m.path / "dir") == ["z"]
        assert os.stat(m.path / "dir/z").st_size == 4  # the 04:00 version of three
        assert (m.path / "a b+c.txt").read_bytes() == b"old"
        assert os.getxattr(m.path / "a b+c.txt", "s3.version-id") == ids["a b+c.txt"][0].encode()
        assert all(r.query.get("versionId") == ids["a b+c.txt"][0]
                   for r in srv.log("HEAD", "GET"))
        assert os.getxattr(m.path, "s3.as-of") == b"2026-01-01T05:00:00.000Z"
        srv.reset()
        m.run("ls -lR . && stat kept.txt dir/z")
        assert sum(srv.counts().values()) == 0
        assert dt.datetime.fromtimestamp(os.stat(m.path / "kept.txt").st_mtime, dt.UTC).hour == 2
    finally:
        srv.stop()


@pytest.mark.mount
@pytest.mark.parametrize("name", ["cos", "oss", "obs"])
def test_vendor_versions_view(mount, name):
    srv = make_server(name, page_size=2)  # the view reads every page of a directory
    try:
        ids = history(srv)
        env = {k: v for k, v in base_env().items() if "proxy" not in k.lower()}
        id_var, secret_var = VENDORS[name]["env"]
        env.update(HTTP_PROXY=srv.proxy_url, http_proxy=srv.proxy_url,
                   **{str(id_var): KEY_ID, str(secret_var): SECRET})
        m = mount(f"{name}://{srv.bucket}", "--versions", "--region", srv.region,
                  endpoint=srv.endpoint_url, env=env)
        srv.reset()
        assert sorted(os.listdir(m.path / ".metafs/versions")) == [
            "a b+c.txt", "dead", "dir", "gone.txt", "kept.txt", "late.txt"]
        assert len(srv.log("LIST")) == 5  # 9 entries (7 versions and markers, 2 prefixes), 2 a page
        files = sorted(os.listdir(m.path / ".metafs/versions/dir/z"))
        assert [f.rpartition("_")[2].replace("%2F", "/") for f in files] == ids["dir/z"]
        assert files[0].startswith("2026-01-01T02:00:00.123Z_")
        old = m.path / ".metafs/versions/a b+c.txt" / sorted(
            os.listdir(m.path / ".metafs/versions/a b+c.txt"))[0]
        assert old.read_bytes() == b"old"
        assert os.getxattr(old, "s3.version-id") == ids["a b+c.txt"][0].encode()
        gone = sorted(os.listdir(m.path / ".metafs/versions/gone.txt"))
        marker = m.path / ".metafs/versions/gone.txt" / gone[1]
        assert os.getxattr(marker, "s3.delete-marker") == b"true"
        assert os.getxattr(marker, "s3.is-latest") == b"true"
        assert [r.query["versionId"] for r in srv.log("GET")] == [ids["a b+c.txt"][0]]
        assert srv.counts()["HEAD"] == 0, [(r.key, r.query) for r in srv.log("HEAD")]
    finally:
        srv.stop()

"""metafs.refresh in process: what a forced refresh expires, and the requests the next access sends.

The layers are wired as a mount wires them (tests/fakes.py); the kernel
invalidations go through a real :class:`~metafs.invalidate.Invalidator`
whose submit functions record what would reach the kernel.  The real-mount
tests (``metafs refresh`` through the control socket) are at the end.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from metafs import refresh
from metafs.cache import Trusted
from metafs.inodes import ROOT_INODE
from metafs.invalidate import Invalidator
from metafs.namespace import FoundDir, FoundFile
from metafs.refresh import Refresher
from tests.fakes import Bucket, OpsEnv, list_all, run_ops
from tests.helpers import REPO, base_env, put_many, stat_fields


class Recorded:
    """A real Invalidator whose kernel calls are recorded."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, bytes]] = []
        self.inodes: list[int] = []
        self.inv = Invalidator(submit=lambda p, n: self.entries.append((p, n)),
                               submit_inode=self.inodes.append)


def refresher(env: OpsEnv, rec: Recorded | None = None) -> Refresher:
    return Refresher(env.cache, env.listings, env.inodes, None if rec is None else rec.inv)


def cond_heads(b: Bucket) -> list[str]:
    return [r.headers.get("if-none-match", "") for r in b.heads()]


def test_refreshing_a_file_known_by_head_sends_one_conditional_head_and_keeps_the_etag():
    b = Bucket()
    b.put("d/f", b"hello")
    etag = b.objects["d/f"][1]

    async def go(env: OpsEnv) -> None:
        assert isinstance(await env.ns.lookup("d/", "f"), FoundFile)  # HEAD + LIST probe
        r = refresher(env)
        assert r.refresh("d/f") == "file"
        assert env.cache.known_object("d/f") is not None  # expired, not dropped
        assert env.cache.fresh_object("d/f") is None
        b.reset()
        found = await env.ns.lookup("d/", "f")
        assert isinstance(found, FoundFile) and found.meta.size == 5
        assert cond_heads(b) == [etag] and len(b.requests) == 1  # one conditional HEAD, a 304
        b.reset()
        assert isinstance(await env.ns.lookup("d/", "f"), FoundFile)
        assert b.requests == []  # trusted again for a TTL
        # A change behind the mount is seen at the first access after a refresh.
        b.put("d/f", b"hello, world")
        r.refresh("d/f")
        b.reset()
        found = await env.objects.stat("d/f")
        assert isinstance(found, Trusted) and found.meta.size == 12
        assert cond_heads(b) == [etag] and len(b.requests) == 1

    run_ops(b, go)


def test_refreshing_a_file_known_from_its_listing_sends_one_conditional_head():
    b = Bucket()
    b.put("d/f", b"abc")
    b.put("d/g", b"xyz")
    etag = b.objects["d/f"][1]

    async def go(env: OpsEnv) -> None:
        await list_all(env, "d/")
        b.reset()
        assert isinstance(await env.ns.lookup("d/", "f"), FoundFile)
        assert b.requests == []  # the listing answers
        assert refresher(env).refresh("/d/f") == "file"
        assert isinstance(await env.ns.lookup("d/", "g"), FoundFile)  # its neighbour: untouched
        assert b.requests == []
        found = await env.ns.lookup("d/", "f")
        assert isinstance(found, FoundFile) and found.meta.size == 3
        assert cond_heads(b) == [etag] and len(b.requests) == 1
        b.reset()
        await env.objects.stat("d/f")  # getattr's path: trusted again
        assert b.requests == []

    run_ops(b, go)


def test_refreshing_a_directory_sends_its_list_pages_and_revalidates_its_entries_in_bulk():
    b = Bucket(page_size=2)
    for k in ("d/a", "d/b", "d/c", "d/e", "d/sub/x", "other"):
        b.put(k)

    async def go(env: OpsEnv) -> None:
        await list_all(env, "d/")
        await env.objects.head("d/a")  # one HEAD-level entry: kept by the re-listing's ETag
        b.reset()
        assert refresher(env).refresh("d") == "directory"
        assert env.listings.fresh("d/") is None
        assert env.cache.listing("d/") is not None  # expired, kept (stale-if-error)
        b.put("d/new")
        lst = await env.listings.open("d/")
        await env.listings.fill(lst, 10**9)
        assert [e.name for e in lst.entries] == ["a", "b", "c", "e", "new", "sub"]
        assert len(b.lists()) == 3 and b.heads() == []  # 6 entries, 2 a page: the 3 LIST pages
        b.reset()
        for name in ("a", "b", "new"):
            assert isinstance(await env.ns.lookup("d/", name), FoundFile)
        assert isinstance(await env.ns.lookup("d/", "sub"), FoundDir)
        assert (await env.objects.head("d/a")) is not None
        assert b.requests == []  # every entry revalidated by the pages

    run_ops(b, go)


def test_refreshing_the_whole_mount_expires_every_table():
    b = Bucket()
    b.put("top", b"1")
    b.put("d/f", b"22")

    async def go(env: OpsEnv) -> None:
        await list_all(env, "")
        assert isinstance(await env.ns.lookup("d/", "f"), FoundFile)  # probe: HEAD + LIST
        await env.ns.lookup("d/", "missing")  # a negative entry
        b.reset()
        assert refresher(env).refresh("anything", everything=True) == "mount"
        assert env.listings.fresh("") is None
        assert env.cache.fresh_object("d/f") is None and env.cache.known_object("d/f") is not None
        assert env.cache.negative_expiry("d/missing") is None
        assert isinstance(await env.ns.lookup("d/", "f"), FoundFile)
        assert cond_heads(b) == [b.objects["d/f"][1]] and len(b.requests) == 1
        b.reset()
        assert isinstance(await env.ns.lookup("", "d"), FoundDir)
        assert len(b.lists()) == 1 and b.heads() == []  # the known directory: one LIST

    run_ops(b, go)


def test_refresh_invalidates_the_kernels_entries_and_inodes_through_the_invalidator_thread():
    b = Bucket()
    b.put("d/f")
    b.put("d/g")
    ctx = None

    async def go(env: OpsEnv) -> None:
        rec = Recorded()
        d = (await env.ops.lookup(ROOT_INODE, b"d", ctx)).st_ino  # type: ignore[arg-type]
        f = (await env.ops.lookup(d, b"f", ctx)).st_ino  # type: ignore[arg-type]
        g = (await env.ops.lookup(d, b"g", ctx)).st_ino  # type: ignore[arg-type]
        r = refresher(env, rec)
        r.refresh("d/f")
        await r.sent()  # the answer waits for the thread
        assert rec.entries == [(d, b"f")] and rec.inodes == [f]
        rec.entries.clear()
        rec.inodes.clear()
        r.refresh("d")
        await r.sent()
        assert sorted(rec.entries) == [(d, b"f"), (d, b"g")] and sorted(rec.inodes) == sorted([f, g])
        rec.entries.clear()
        rec.inodes.clear()
        r.refresh("", everything=True)
        await r.sent()
        assert sorted(rec.entries) == sorted([(ROOT_INODE, b"d"), (d, b"f"), (d, b"g")])
        rec.inv.close()

    run_ops(b, go)


def test_the_control_socket_path_is_derived_from_the_mountpoint(monkeypatch, tmp_path):
    monkeypatch.setenv("METAFS_RUNTIME_DIR", str(tmp_path))
    a = refresh.socket_path("/mnt/" + "x" * 200)
    assert a.startswith(str(tmp_path) + "/") and len(os.path.basename(a)) < 60
    assert refresh.socket_path("/mnt/data") != refresh.socket_path("/srv/data")
    assert refresh.socket_path("/mnt/data") == refresh.socket_path("/mnt/data/")


def test_the_mount_is_found_from_mountinfo_without_a_lookup(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 0:21 / / rw - ext4 /dev/sda1 rw\n"
        "40 22 0:40 / /mnt/a rw,nosuid - fuse.metafs s3://b/ ro\n"
        "41 40 0:41 / /mnt/a/in\\040side rw - fuse.metafs s3://c/ ro\n")
    assert refresh.find_mount("/mnt/a/x/y", str(info)) == "/mnt/a"
    assert refresh.find_mount("/mnt/a/in side/k", str(info)) == "/mnt/a/in side"
    assert refresh.find_mount("/mnt/ab", str(info)) is None
    assert refresh.find_mount("/home", str(info)) is None


# -- real mounts ---------------------------------------------------------------------------

def run_refresh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "metafs", "refresh", *args], env=base_env(),
                          capture_output=True, text=True, timeout=60, cwd=REPO)


@pytest.mark.mount
def test_metafs_refresh_file_then_stat_sends_one_conditional_head_and_sees_the_change(
        mount, bucket, s3, boto):
    boto.put_object(Bucket=bucket, Key="d/f", Body=b"old")
    m = mount(bucket)
    assert stat_fields(m, "d/f", "%s") == ["3"]
    sock = refresh.socket_path(str(m.path))
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()
    boto.put_object(Bucket=bucket, Key="d/f", Body=b"newer!")
    assert stat_fields(m, "d/f", "%s") == ["3"]  # within the TTL: the old size
    s3.reset()
    r = run_refresh(str(m.path / "d" / "f"))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert s3.log() == []  # the command sends nothing itself
    assert stat_fields(m, "d/f", "%s") == ["6"]
    assert [x.kind for x in s3.log()] == ["HEAD_COND"]
    s3.reset()
    assert stat_fields(m, "d/f", "%s") == ["6"]
    assert s3.log() == []
    m.unmount()
    assert not os.path.exists(sock)  # removed at unmount


@pytest.mark.mount
def test_metafs_refresh_dir_then_ls_sends_the_list_pages_and_shows_a_new_key(mount, bucket, s3):
    put_many(bucket, ["d/a", "d/b"])
    m = mount(bucket)
    assert m.run("ls -l d").stdout.count("\n") == 3  # total + 2
    put_many(bucket, ["d/c"])
    s3.reset()
    assert "c" not in m.run("ls d").stdout.split()  # the listing is trusted for the TTL
    assert s3.log() == []
    r = run_refresh(str(m.path / "d"))
    assert r.returncode == 0, r.stderr
    out = m.run("ls -l d").stdout
    assert [ln.split()[-1] for ln in out.splitlines()[1:]] == ["a", "b", "c"]
    assert [x.kind for x in s3.log()] == ["LIST"]  # one page: the whole revalidation


@pytest.mark.mount
def test_metafs_refresh_all_revalidates_the_whole_mount(mount, bucket, s3, boto):
    boto.put_object(Bucket=bucket, Key="x/f", Body=b"1")
    put_many(bucket, ["top"])
    m = mount(bucket)
    assert stat_fields(m, "x/f", "%s") == ["1"]
    assert sorted(os.listdir(m.path)) == ["top", "x"]
    boto.put_object(Bucket=bucket, Key="x/f", Body=b"22")
    put_many(bucket, ["top2"])
    r = run_refresh("--all", str(m.path / "top"))
    assert r.returncode == 0, r.stderr
    assert stat_fields(m, "x/f", "%s") == ["2"]
    assert sorted(os.listdir(m.path)) == ["top", "top2", "x"]
    assert "refreshed mount" in m.log_text()


def test_metafs_refresh_outside_a_mount_fails_with_one_line(tmp_path):
    r = run_refresh(str(tmp_path))
    assert r.returncode == 1 and r.stderr.strip() == f"metafs refresh: {tmp_path}: not on a metafs mount"


def test_a_bucket_named_refresh_is_mounted_with_its_scheme():
    from metafs.config import parse_args

    cfg = parse_args(["s3://refresh", "/mnt/x"])
    assert cfg.bucket == "refresh" and cfg.prefix == ""
    r = run_refresh()  # "refresh" first is the subcommand: PATH is required
    assert r.returncode == 2 and "metafs refresh" in r.stderr


@pytest.mark.mount
def test_a_control_socket_that_cannot_be_made_costs_refresh_not_the_mount(mount, bucket, tmp_path):
    put_many(bucket, ["k"])
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    m = mount(bucket, env=base_env(METAFS_RUNTIME_DIR=str(blocker)))
    assert os.listdir(m.path) == ["k"]
    assert "no control socket at" in m.log_text()

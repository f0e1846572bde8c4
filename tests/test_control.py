"""metafs.control: the reserved control directory, through the FUSE handlers and a real mount."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from typing import Any

import pyfuse3
import pytest
from pyfuse3 import ROOT_INODE, FUSEError

from metafs.config import parse_args
from metafs.control import ControlRoot, CtlDir, CtlEntry, CtlFile, Path
from metafs.errors import ConfigError
from metafs.s3.model import ObjectMeta
from tests.fakes import Bucket, OpsEnv, run_ops

CTX: Any = None
TOKEN: Any = object()


class Notes:
    """A toy subtree: ``notes/hello`` (a file) and ``notes/sub/`` (an empty directory)."""

    def __init__(self) -> None:
        self.asked: list[Path] = []

    async def entry(self, path: Path) -> CtlEntry | None:
        self.asked.append(path)
        if path == ("hello",):
            return CtlFile(ObjectMeta("hello", 5, 1000, None, {b"s3.note": b"yes"}), 7.0)
        if path == ("sub",):
            return CtlDir(7.0)
        return None

    async def listdir(self, path: Path) -> Sequence[tuple[str, CtlEntry]]:
        if path == ():
            return [("hello", CtlFile(ObjectMeta("hello", 5, 1000, None, {}), 7.0)),
                    ("sub", CtlDir(7.0))]
        return []

    async def read(self, path: Path, first: int, last: int) -> bytes:
        return b"hello"[first:last + 1]


def _names(env: OpsEnv, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    got: list[bytes] = []
    monkeypatch.setattr(pyfuse3, "readdir_reply", lambda tok, name, attrs, nxt: got.append(name)
                        or True)
    return got


async def _readdir(env: OpsEnv, ino: int, got: list[bytes]) -> list[bytes]:
    got.clear()
    fh = await env.ops.opendir(ino, CTX)
    await env.ops.readdir(fh, 0, TOKEN)
    await env.ops.releasedir(fh)
    return list(got)


def test_control_dir_hidden_from_root_listing_reachable_by_lookup(monkeypatch, caplog):
    b = Bucket()
    b.put("a.txt")
    b.put(".metafs/real")  # a real prefix of the reserved name: hidden, one warning

    async def body(env: OpsEnv) -> None:
        ctl = ControlRoot(dir_ttl=30.0)
        notes = Notes()
        ctl.register("notes", notes)
        env.ops.control = ctl
        got = _names(env, monkeypatch)
        assert await _readdir(env, ROOT_INODE, got) == [b".", b"..", b"a.txt"]
        assert await _readdir(env, ROOT_INODE, got) == [b".", b"..", b"a.txt"]
        before = len(b.requests)
        top = await env.ops.lookup(ROOT_INODE, b".metafs", CTX)
        assert stat.S_ISDIR(top.st_mode) and top.entry_timeout == 30.0
        assert await _readdir(env, top.st_ino, got) == [b".", b"..", b"notes"]
        sub = await env.ops.lookup(top.st_ino, b"notes", CTX)
        assert await _readdir(env, sub.st_ino, got) == [b".", b"..", b"hello", b"sub"]
        f = await env.ops.lookup(sub.st_ino, b"hello", CTX)
        assert stat.S_ISREG(f.st_mode) and f.st_size == 5 and f.entry_timeout == 7.0
        assert (await env.ops.getattr(f.st_ino, CTX)).st_size == 5
        assert await env.ops.getxattr(f.st_ino, b"s3.note", CTX) == b"yes"
        assert list(await env.ops.listxattr(f.st_ino, CTX)) == [b"s3.note"]
        fi = await env.ops.open(f.st_ino, os.O_RDONLY, CTX)
        assert await env.ops.read(fi.fh, 1, 3) == b"ell"
        await env.ops.release(fi.fh)
        none = await env.ops.lookup(sub.st_ino, b"nothing", CTX)
        assert none.st_ino == 0
        assert (await env.ops.lookup(top.st_ino, b"other", CTX)).st_ino == 0
        assert len(b.requests) == before  # the control tree sends nothing of its own
        with pytest.raises(FUSEError) as ei:
            await env.ops.open(f.st_ino, os.O_WRONLY, CTX)
        assert ei.value.errno == errno.EROFS

    run_ops(b, body)
    warnings = [r for r in caplog.records if "control directory" in r.getMessage()]
    assert len(warnings) == 1 and "--control-dir" in warnings[0].getMessage()


def test_control_dir_name_and_registry_rules():
    assert parse_args(["bkt", "/mnt"]).control_dir == ".metafs"
    assert parse_args(["bkt", "/mnt", "--control-dir", ".snap"]).control_dir == ".snap"
    assert parse_args(["bkt", "/mnt", "-o", "control-dir=.ctl"]).control_dir == ".ctl"
    for bad in ("", "a/b", ".", ".."):
        with pytest.raises(ConfigError):
            parse_args(["bkt", "/mnt", "--control-dir", bad])
    ctl = ControlRoot()
    ctl.register("b", Notes())
    ctl.register("a", Notes())
    assert ctl.subtrees == ["a", "b"]
    with pytest.raises(ValueError):
        ctl.register("a", Notes())
    assert ControlRoot.split(ControlRoot.root_key()) is None
    assert ControlRoot.split(ControlRoot.root_key() + "versions/x/y") == ("versions", ("x", "y"))


@pytest.mark.mount
def test_control_dir_on_a_real_mount(mount, boto, bucket, s3):
    boto.put_object(Bucket=bucket, Key="a.txt", Body=b"x")
    boto.put_object(Bucket=bucket, Key=".metafs", Body=b"real")
    boto.put_object(Bucket=bucket, Key=".other/x", Body=b"real")
    m = mount(bucket)
    assert sorted(os.listdir(m.path)) == [".other", "a.txt"]
    # On by default: annotations (S3, unless --no-annotations); objects always (exact.py).
    assert os.path.isdir(m.path / ".metafs") and os.listdir(m.path / ".metafs") == ["annotations", "objects"]
    assert m.run("find . | sort").stdout.split() == [".", "./.other", "./.other/x", "./a.txt"]
    assert m.log_text().count("hides it") == 1
    m2 = mount(bucket, "--control-dir", ".other")
    assert sorted(os.listdir(m2.path)) == [".metafs", "a.txt"]
    assert os.listdir(m2.path / ".other") == ["annotations", "objects"]
    assert (m2.path / ".metafs").read_bytes() == b"real"

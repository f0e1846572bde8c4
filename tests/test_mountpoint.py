"""metafs.mountpoint: each reason a mountpoint cannot take the mount is named, before mounting.

The pure checks run on plain directories; the kernel's cases (a live
metafs mount, a dead one after SIGKILL) on real mounts.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from metafs import errors, mountpoint
from tests.helpers import FUSERMOUNT, REPO, SECRET_KEY, base_env, put_many, run_metafs, wait_for_mount

MOUNTINFO = """\
22 1 0:21 / /proc rw,nosuid - proc proc rw
95 29 0:45 / /mnt/with\\040space rw,nosuid,nodev,relatime shared:50 - fuse.metafs s3://b/ rw,user_id=0
96 95 0:46 / /mnt/with\\040space rw,relatime - tmpfs tmp\\134fs rw
97 29 0:47 / /mnt/other rw - fuse.metafs s3://other/p/ rw
"""


def test_mountinfo_paths_are_unescaped_and_the_top_mount_is_last():
    assert mountpoint.mounts_at("/mnt/with space", MOUNTINFO) == [
        ("fuse.metafs", "s3://b/"), ("tmpfs", "tmp\\fs")]
    assert mountpoint.mounts_at("/mnt/other", MOUNTINFO) == [("fuse.metafs", "s3://other/p/")]
    assert mountpoint.mounts_at("/mnt", MOUNTINFO) == []


def _refusal(path: Path, nonempty: bool = False) -> str:
    with pytest.raises(errors.MountpointError) as info:
        mountpoint.check(str(path), nonempty)
    return str(info.value)


def test_each_cause_is_named(tmp_path):
    assert _refusal(tmp_path / "absent") == "the mountpoint does not exist"
    (tmp_path / "file").write_text("")
    assert _refusal(tmp_path / "file") == "the mountpoint is not a directory"
    assert _refusal(tmp_path / "file" / "below") == "the mountpoint is not a directory"
    full = tmp_path / "full"
    full.mkdir()
    (full / ".hidden").write_text("")
    assert "not empty" in _refusal(full) and "--nonempty (-o nonempty)" in _refusal(full)
    mountpoint.check(str(full), nonempty=True)  # allowed when asked
    (tmp_path / "empty").mkdir()
    mountpoint.check(str(tmp_path / "empty"))


def test_a_dead_mount_names_the_command_that_releases_it(tmp_path, monkeypatch):
    def dead(path: str) -> os.statvfs_result:
        raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN), path)

    monkeypatch.setattr(mountpoint.os, "statvfs", dead)
    line = _refusal(tmp_path / "a b")
    assert "dead mount" in line and "Transport endpoint is not connected" in line
    assert f"run `fusermount3 -u '{tmp_path}/a b'`" in line


# -- through the kernel ------------------------------------------------------------------------

def _foreground(s3, bucket: str, path: Path, *options: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "metafs", "--foreground", "--endpoint-url", s3.url,
                             *options, bucket, str(path)], env=base_env(), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _release(path: Path, proc: subprocess.Popen) -> None:
    """Unmount (lazily if need be) and reap: the test leaves nothing behind."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if os.path.ismount(path):
        subprocess.run([FUSERMOUNT, "-uz", str(path)], capture_output=True)


def _one_line_refusal(r: subprocess.CompletedProcess, *needles: str) -> str:
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("metafs: cannot mount "), lines[0]
    for n in needles:
        assert n in lines[0], lines[0]
    assert SECRET_KEY not in r.stderr
    return lines[0]


def _layers(path: Path) -> int:
    return len(mountpoint.mounts_at(os.path.realpath(path), Path("/proc/self/mountinfo").read_text()))


@pytest.mark.mount
@pytest.mark.parametrize("foreground", [True, False])
def test_a_second_mount_on_a_live_metafs_mount_is_refused(mount, bucket, s3, foreground):
    put_many(bucket, ["x"])
    m = mount(bucket)
    s3.reset()
    args = ["--foreground"] if foreground else []
    r = run_metafs(*args, "--endpoint-url", s3.url, bucket, str(m.path))
    _one_line_refusal(r, f"is already a metafs mount of {bucket}:", f"fusermount3 -u {m.path}")
    assert _layers(m.path) == 1  # nothing stacked
    assert s3.log() == []  # refused before the credentials and the bucket check
    assert m.run("ls").stdout.split() == ["x"]  # the first mount is untouched
    r = run_metafs("--nonempty", "--endpoint-url", s3.url, bucket, str(m.path))
    _one_line_refusal(r, "already a metafs mount")  # --nonempty does not allow stacking


@pytest.mark.mount
def test_a_non_empty_mountpoint_is_refused_unless_nonempty(s3, bucket, tmp_path):
    put_many(bucket, ["from-bucket"])
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    (mnt / "local.txt").write_text("mine")
    r = run_metafs("--endpoint-url", s3.url, bucket, str(mnt))
    _one_line_refusal(r, "not empty", "--nonempty (-o nonempty)")
    assert not os.path.ismount(mnt)
    proc = _foreground(s3, bucket, mnt, "-o", "nonempty")
    try:
        wait_for_mount(mnt, proc)
        assert os.listdir(mnt) == ["from-bucket"]  # hidden while mounted...
    finally:
        _release(mnt, proc)
    assert proc.returncode == 0
    assert (mnt / "local.txt").read_text() == "mine"  # ...and back afterwards


@pytest.mark.mount
def test_a_missing_mountpoint_or_a_file_is_named_as_such(s3, bucket, tmp_path):
    s3.reset()
    r = run_metafs("--endpoint-url", s3.url, bucket, str(tmp_path / "absent"))
    _one_line_refusal(r, "the mountpoint does not exist")
    (tmp_path / "file").write_text("")
    r = run_metafs("--endpoint-url", s3.url, bucket, str(tmp_path / "file"))
    _one_line_refusal(r, "the mountpoint is not a directory")
    assert s3.log() == []


@pytest.mark.mount
def test_a_dead_mount_is_named_with_the_command_that_releases_it(s3, bucket, tmp_path):
    put_many(bucket, ["x"])
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = _foreground(s3, bucket, mnt)
    try:
        wait_for_mount(mnt, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        with pytest.raises(OSError) as info:
            os.listdir(mnt)
        assert info.value.errno == errno.ENOTCONN  # what the kernel says of a dead mount
        s3.reset()
        r = run_metafs("--endpoint-url", s3.url, bucket, str(mnt))
        _one_line_refusal(r, "is a dead mount", "Transport endpoint is not connected",
                          f"run `fusermount3 -u {mnt}`")
        assert s3.log() == []
        # The command it names releases it, and the next mount works.
        assert subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True).returncode == 0
        proc = _foreground(s3, bucket, mnt)
        wait_for_mount(mnt, proc)
        assert os.listdir(mnt) == ["x"]
    finally:
        _release(mnt, proc)

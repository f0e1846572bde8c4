"""Fixtures: one moto S3 server for the session, buckets, and real mounts.

Real mounts go through the kernel: ``/dev/fuse`` and root (or a setuid
``fusermount3``) are required, and their absence *fails* the mount tests
instead of skipping them, so CI can never pass without exercising them.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from metafs import devrgw
from metafs.devserver import CountingS3Server
from tests.helpers import (
    ACCESS_KEY,
    FUSERMOUNT,
    REPO,
    SECRET_KEY,
    base_env,
    rgw_env,
    wait_for_mount,
)


@pytest.fixture(scope="session")
def s3server() -> Iterator[CountingS3Server]:
    srv = CountingS3Server().start()
    yield srv
    srv.stop()


@pytest.fixture
def s3(s3server: CountingS3Server) -> Iterator[CountingS3Server]:
    """The server, with counts reset and no fault, delay or policy (requester pays, no ETags)."""
    s3server.set_fault(None)
    s3server.delay = 0.0
    s3server.reset_policies()
    s3server.reset()
    yield s3server
    s3server.set_fault(None)
    s3server.delay = 0.0
    s3server.enable_auth(False)
    s3server.reset_policies()


@pytest.fixture(scope="session")
def rgw() -> Iterator[devrgw.CephRgw]:
    """One Ceph RGW (metafs.devrgw) for the session, started on first use (~2 s).

    Without the Ceph packages the RGW tests are skipped on a workstation but
    *fail* under CI (``CI`` set, as in .ci/run): CI must run them.
    """
    missing = devrgw.missing_binaries()
    if missing:
        msg = (f"Ceph RGW tests need the Debian packages {devrgw.PACKAGES} "
               f"(missing {', '.join(missing)}; scripts/setup.sh installs them)")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    with devrgw.CephRgw() as server:
        yield server


@pytest.fixture(scope="session")
def rgw_boto(rgw: devrgw.CephRgw):
    import boto3

    return boto3.client("s3", endpoint_url=rgw.url, region_name="us-east-1",
                        aws_access_key_id=rgw.access_key, aws_secret_access_key=rgw.secret_key)


@pytest.fixture
def rgw_bucket(rgw_boto, request) -> str:
    """A fresh, empty bucket on the RGW, named after the test."""
    stem = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = f"r{next(_bucket_ids)}-{stem}"
    rgw_boto.create_bucket(Bucket=name)
    return name


@pytest.fixture
def rgw_mount(mount, rgw: devrgw.CephRgw):
    """Factory like ``mount``, against the RGW: ``rgw_mount(bucket, *options, endpoint=None)``.

    ``endpoint`` lets a test put a proxy in front of the RGW.  Teardown (the
    ``mount`` fixture's) also fails the test if the log holds the RGW secret.
    """
    made: list[Mount] = []

    def _mount(source: str, *options: str, endpoint: str | None = None,
               env: dict[str, str] | None = None) -> Mount:
        m = mount(source, *options, endpoint=endpoint or rgw.url, env=env or rgw_env(rgw))
        made.append(m)
        return m

    yield _mount
    for m in made:
        assert rgw.secret_key not in m.log_text()


@pytest.fixture(scope="session")
def boto(s3server: CountingS3Server):
    import boto3

    return boto3.client("s3", endpoint_url=s3server.url, region_name="us-east-1",
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)


_bucket_ids = itertools.count()


@pytest.fixture
def bucket(boto, request) -> str:
    """A fresh, empty bucket named after the test."""
    stem = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = f"t{next(_bucket_ids)}-{stem}"
    boto.create_bucket(Bucket=name)
    return name


class Mount:
    """A metafs process serving ``path``; ``run`` executes shell commands on it."""

    def __init__(self, path: Path, proc: subprocess.Popen, log: Path) -> None:
        self.path = path
        self.proc = proc
        self.log = log

    def run(self, cmd: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        r = subprocess.run(cmd, shell=True, cwd=self.path, capture_output=True, text=True,
                           timeout=timeout, env=dict(os.environ, LC_ALL="C.UTF-8"))
        if check and r.returncode != 0:
            raise AssertionError(f"{cmd!r} failed ({r.returncode}): {r.stderr}")
        return r

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def unmount(self) -> int:
        """fusermount3 -u, then the process must exit 0 and the path be free."""
        r = subprocess.run([FUSERMOUNT, "-u", str(self.path)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        rc = self.proc.wait(15)
        assert not os.path.ismount(self.path)
        return rc


def _require_fuse() -> None:
    # Fail, do not skip: the real-mount tests are the point of the suite.
    assert os.path.exists("/dev/fuse"), "/dev/fuse is missing: real-mount tests cannot run"
    assert shutil.which("fusermount3") or shutil.which("fusermount"), "fusermount3 is not installed"


@pytest.fixture
def mount(s3: CountingS3Server, tmp_path: Path):
    """Factory: ``mount(bucket, *options)`` -> a live :class:`Mount`.

    Teardown unmounts, requires exit status 0, and fails the test if the
    log holds a traceback or a secret.
    """
    _require_fuse()
    mounts: list[Mount] = []

    def _mount(source: str, *options: str, endpoint: str | None = None,
               env: dict[str, str] | None = None) -> Mount:
        path = tmp_path / f"mnt{len(mounts)}"
        path.mkdir()
        log = tmp_path / f"metafs{len(mounts)}.log"
        cmd = [sys.executable, "-m", "metafs", "--foreground", "--endpoint-url", endpoint or s3.url,
               *options, source, str(path)]
        with open(log, "wb") as logf:
            proc = subprocess.Popen(cmd, env=env or base_env(), stdout=logf, stderr=subprocess.STDOUT,
                                    cwd=REPO)
        m = Mount(path, proc, log)
        mounts.append(m)
        wait_for_mount(path, proc)
        s3.reset()  # the counts a test sees start after HEAD Bucket
        return m

    yield _mount
    for m in mounts:
        if os.path.ismount(m.path):
            subprocess.run([FUSERMOUNT, "-u", str(m.path)], capture_output=True)
            try:
                rc = m.proc.wait(15)
            except subprocess.TimeoutExpired as e:
                subprocess.run([FUSERMOUNT, "-uz", str(m.path)], capture_output=True)
                m.proc.send_signal(signal.SIGKILL)
                m.proc.wait(5)
                raise AssertionError("metafs did not exit after unmount") from e
            assert rc == 0, f"metafs exited {rc}: {m.log_text()}"
        elif m.proc.poll() is None:
            m.proc.kill()
            m.proc.wait(5)
        text = m.log_text()
        assert "Traceback" not in text, text
        assert SECRET_KEY not in text

"""A throw-away Ceph RADOS Gateway on loopback: a production S3 server for tests and benchmarks.

moto (``metafs.devserver``) is a model of S3: it does not enforce SSE-C,
requester-pays or every signature detail.  Ceph's RGW does.  This module
starts a one-node cluster from Debian's packages (``ceph radosgw
ceph-common``): one monitor, one memstore OSD (RAM only), no manager, and
``radosgw`` (beast) on 127.0.0.1, all state in a temporary directory; then
creates an S3 user.  Start to ready takes about 1.5 s on two cores.
Stopping signals only the daemons this object started (their pids, checked
against their command line), in dependency order: gateway, OSD, monitor
(out of order, shutdown hangs).

Like the devserver it is a development tool: nothing else in ``metafs``
imports it.  Used by the test suite (``tests/conftest.py``'s ``rgw``
fixture) and runnable standalone for benchmarks::

    python -m metafs.devrgw            # prints the endpoint and keys, runs until Ctrl-C

Choices that each cost hours to find (see the config below): no cephx but
``ms mon client mode = crc`` for radosgw, fast paxos (else every pool
creation waits ~1 s), one replica and tiny PG counts, ``rgw crypt require
ssl = false`` so SSE-C works over plain HTTP, ``rgw dns name =`` empty for
path-style addressing.  Ports are chosen free below 32768, out of the
kernel's ephemeral range, so outgoing connections cannot take them between
the check and the bind.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

BINARIES = ("ceph", "ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool")
PACKAGES = "ceph radosgw ceph-common"

ACCESS_KEY = "METAFSRGWTESTKEY0001"
SECRET_KEY = "metafs-rgw/secret+KEY-do-not-log"
USER_ID = "metafs"
ACCOUNT_ID = USER_ID  # RGW's bucket owner id (x-amz-expected-bucket-owner compares to it)


# The ``testing`` KMS backend's keys (SSE-KMS with key ids testkey-1 and testkey-2); test data only.
_KMS_KEYS = ("testkey-1=YmluCmJvb3N0CmJvb3N0LWJ1aWxkCmNlcGguY29uZgo= "
             "testkey-2=aWIKTWFrZWZpbGUKbWFuCm91dApzcmMKVGVzdGluZwo=")


class RgwError(RuntimeError):
    """The cluster did not come up; the message names the stage and the log directory."""


def missing_binaries() -> list[str]:
    """The Ceph programs not on PATH (empty when the packages are installed)."""
    return [b for b in BINARIES if shutil.which(b) is None]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_ports(n: int, low: int = 10000, high: int = 32767) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 now, below the ephemeral range."""
    chosen: list[int] = []
    rng = random.Random()
    for _ in range(1000):
        p = rng.randint(low, high)
        if p not in chosen and _port_free(p):
            chosen.append(p)
            if len(chosen) == n:
                return chosen
    raise RgwError(f"no {n} free ports in {low}-{high} on 127.0.0.1")


def _config(d: Path, fsid: str, mon_addr: str, rgw_port: int, store_bytes: int,
            osd_extra: str = "") -> str:
    return f"""[global]
fsid = {fsid}
mon host = {mon_addr}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
# OSD ports: below the ephemeral range too
ms bind port min = 10000
ms bind port max = 32767
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
run dir = {d}/run
crash dir = {d}/log
log file = {d}/log/$name.log
admin socket = {d}/run/$name.asok
pid file = {d}/run/$name.pid
log to stderr = false
err to stderr = true
mon cluster log file = {d}/log/cluster.log
debug ms = 0
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd crush chooseleaf type = 0
mon data avail warn = 1
mon data avail crit = 1
osd failsafe full ratio = .99
mon osd full ratio = .99
mon osd nearfull ratio = .99
mon osd backfillfull ratio = .99
mon warn on insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false

[mon]
mon data = {d}/mon.$id
mon memory target = 268435456
# commit map changes quickly: the default 1 s batching makes every pool creation ~2 s
paxos propose interval = 0.05
paxos min wait = 0.01
mon osd reporter subtree level = osd

[osd]
osd data = {d}/osd.$id
osd objectstore = memstore
memstore device bytes = {store_bytes}
osd memory target = 939524096
osd op num shards = 2
osd op num threads per shard = 1
osd scrub min interval = 31536000
osd scrub max interval = 31536000
osd deep scrub interval = 31536000
osd fast shutdown = true
{osd_extra}

[client.rgw.a]
# radosgw compiles in ms_mon_client_mode=secure, which needs cephx; with auth=none
# the monitor connection then fails with EACCES (-13) forever
ms mon client mode = crc
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw thread pool size = 64
rgw dns name =
rgw crypt require ssl = false
rgw crypt s3 kms backend = testing
rgw crypt s3 kms encryption keys = {_KMS_KEYS}
rgw dynamic resharding = false
rgw enable usage log = false
rgw enable ops log = false
rgw gc obj min wait = 30
rgw gc processor period = 30
"""


class CephRgw:
    """One cluster and gateway; ``start()`` / ``stop()``, or use it as a context manager.

    ``url``, ``access_key`` and ``secret_key`` reach the S3 user once started.
    """

    # Stop order: each phase must exit before the next is signalled.
    _PHASES = (("client.rgw.a",), ("osd.0",), ("mon.a",))

    def __init__(self, base_dir: str | None = None, ready_timeout: float = 60.0,
                 store_bytes: int = 1 << 31, osd_config: str = "") -> None:
        """``osd_config``: more ``name = value`` lines for the OSD (e.g. the benchmark's
        shorter PG logs, which keep a million objects in memory)."""
        self.ready_timeout = ready_timeout
        self.store_bytes = store_bytes
        self.osd_config = osd_config
        self._base = base_dir
        self.dir: Path | None = None
        self.port = 0
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.owner = ACCOUNT_ID
        self._pids: dict[str, int] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def conf(self) -> Path:
        assert self.dir is not None
        return self.dir / "ceph.conf"

    def __enter__(self) -> CephRgw:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- start -------------------------------------------------------------

    def start(self) -> CephRgw:
        """Bring the cluster up and create the S3 user; on failure stop what started and raise."""
        missing = missing_binaries()
        if missing:
            raise RgwError(f"Ceph is not installed (missing {', '.join(missing)}): "
                           f"apt-get install -y {PACKAGES}")
        self.dir = Path(tempfile.mkdtemp(prefix="metafs-rgw-", dir=self._base))
        for sub in ("mon.a", "osd.0", "run", "log"):
            (self.dir / sub).mkdir()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _run(self, *cmd: str, timeout: float = 30.0) -> str:
        """Run a Ceph tool to completion; its output, or RgwError naming it and the logs."""
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise RgwError(f"{cmd[0]} took more than {timeout:.0f} s (logs in {self.dir}/log)") from e
        if r.returncode != 0:
            raise RgwError(f"{' '.join(cmd[:3])} failed ({r.returncode}): "
                           f"{(r.stderr or r.stdout).strip()[-400:]} (logs in {self.dir}/log)")
        return r.stdout

    def _ceph(self, *args: str, timeout: float = 15.0) -> str:
        return self._run("ceph", "-c", str(self.conf), "--connect-timeout", "10", *args,
                         timeout=timeout)

    def _wait(self, what: str, check: object) -> None:
        assert callable(check)
        deadline = time.monotonic() + self.ready_timeout
        while True:
            try:
                if check():
                    return
            except (RgwError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RgwError(f"timed out after {self.ready_timeout:.0f} s waiting for {what} "
                               f"(logs in {self.dir}/log)")
            time.sleep(0.1)

    def _daemon(self, name: str, *cmd: str) -> None:
        """Start a daemon (it forks into the background) and record its pid from its pid file."""
        assert self.dir is not None
        self._run(*cmd)
        pidfile = self.dir / "run" / f"{name}.pid"
        self._wait(f"{name}'s pid file", pidfile.exists)
        self._wait(f"{name}'s pid", lambda: pidfile.read_text().strip().isdigit())
        self._pids[name] = int(pidfile.read_text().strip())

    def _start(self) -> None:
        assert self.dir is not None
        d = self.dir
        for _attempt in range(3):
            mon2, mon1, self.port = free_ports(3)
            fsid = str(uuid.uuid4())
            mon_addr = f"[v2:127.0.0.1:{mon2},v1:127.0.0.1:{mon1}]"
            self.conf.write_text(_config(d, fsid, mon_addr, self.port, self.store_bytes,
                                         self.osd_config))
            self._run("monmaptool", "--create", "--clobber", "--fsid", fsid, "--addv", "a",
                      mon_addr, str(d / "monmap"))
            self._run("ceph-mon", "-c", str(self.conf), "-i", "a", "--mkfs", "--monmap",
                      str(d / "monmap"))
            self._daemon("mon.a", "ceph-mon", "-c", str(self.conf), "-i", "a")
            try:
                self._wait("the monitor", lambda: bool(self._ceph("mon", "stat")))
                break
            except RgwError:
                # most likely a port taken between the check and the bind: retry afresh
                self._stop_daemon("mon.a")
                shutil.rmtree(d / "mon.a")
                (d / "mon.a").mkdir()
        else:
            raise RgwError(f"the monitor did not start (logs in {d}/log)")

        osd_uuid = str(uuid.uuid4())
        osd_id = self._ceph("osd", "new", osd_uuid).strip()
        if osd_id != "0":
            raise RgwError(f"unexpected OSD id {osd_id!r}")
        self._run("ceph-osd", "-c", str(self.conf), "-i", "0", "--mkfs", "--osd-uuid", osd_uuid)
        self._daemon("osd.0", "ceph-osd", "-c", str(self.conf), "-i", "0")
        self._wait("osd.0 up", lambda: any(line.startswith("osd.0 up") for line in
                                           self._ceph("osd", "dump").splitlines()))

        self._daemon("client.rgw.a", "radosgw", "-c", str(self.conf), "-n", "client.rgw.a")
        self._wait(f"radosgw on {self.url}", self._answers)
        self._run("radosgw-admin", "-c", str(self.conf), "user", "create", "--uid", USER_ID,
                  "--display-name", USER_ID, "--access-key", self.access_key,
                  "--secret-key", self.secret_key)

    def _answers(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/1.")

    # -- stop --------------------------------------------------------------

    def _ours(self, pid: int) -> bool:
        """``pid`` is still one of our daemons (guards against pid reuse; zombies don't count)."""
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return str(self.conf).encode() in cmd

    def _stop_daemon(self, *names: str) -> None:
        pids = [p for n in names if (p := self._pids.pop(n, 0)) and self._ours(p)]
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGTERM)
        for p in pids:
            deadline = time.monotonic() + 10
            while self._ours(p) and time.monotonic() < deadline:
                time.sleep(0.02)
            if self._ours(p):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM gateway, then OSD, then monitor, each awaited; then remove the directory."""
        for phase in self._PHASES:
            self._stop_daemon(*phase)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m metafs.devrgw",
                                 description="Run a throw-away Ceph RGW on 127.0.0.1 until Ctrl-C.")
    ap.add_argument("--dir", help="parent of the temporary cluster directory")
    args = ap.parse_args()
    t0 = time.monotonic()
    with CephRgw(args.dir) as rgw:
        print(f"ready in {time.monotonic() - t0:.1f} s: endpoint {rgw.url}\n"
              f"export AWS_ACCESS_KEY_ID={rgw.access_key} AWS_SECRET_ACCESS_KEY={rgw.secret_key} "
              f"AWS_DEFAULT_REGION=us-east-1", flush=True)
        sigs = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
        signal.sigwait(sigs)


if __name__ == "__main__":
    main()

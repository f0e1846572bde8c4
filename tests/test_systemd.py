"""The systemd template unit, run the way systemd would run it.

No systemd here, so the test plays its part: it reads ``ExecStart`` from
``systemd/metafs@.service``, expands it with an environment file as
systemd does (``$VAR`` splits on spaces, ``${VAR}`` stays one word), runs
it with ``NOTIFY_SOCKET`` set, and checks the Type=notify contract:
READY=1 only once the mount is live, STOPPING=1 and exit 0 on SIGTERM.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO, base_env, put_many

pytestmark = pytest.mark.mount

UNIT = REPO / "systemd" / "metafs@.service"


def unit_directives() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            k, _, v = line.partition("=")
            out.setdefault(k.strip(), v.strip())
    return out


def expand(cmdline: str, env: dict[str, str]) -> list[str]:
    words: list[str] = []
    for word in cmdline.split():
        if m := re.fullmatch(r"\$\{(\w+)\}", word):
            words.append(env[m.group(1)])
        elif m := re.fullmatch(r"\$(\w+)", word):
            words.extend(env[m.group(1)].split())
        else:
            words.append(word)
    return words


def test_unit_is_notify_type_with_clean_stop():
    d = unit_directives()
    assert d["Type"] == "notify"
    assert d["Restart"] == "on-failure"
    assert d["KillSignal"] == "SIGTERM"
    assert "fusermount3 -uz ${METAFS_MOUNTPOINT}" in d["ExecStopPost"]
    assert d["EnvironmentFile"] == "/etc/metafs/%i.env"
    assert "--foreground" in d["ExecStart"]


def test_exec_start_notifies_ready_then_stopping(s3, bucket, tmp_path):
    put_many(bucket, ["boot.txt"])
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    envfile = {"METAFS_SOURCE": bucket, "METAFS_MOUNTPOINT": str(mnt),
               "METAFS_OPTIONS": f"--endpoint-url {s3.url} --metadata-ttl 30"}
    argv = expand(unit_directives()["ExecStart"], envfile)
    assert argv[0] == "/usr/local/bin/metafs"
    argv = [sys.executable, "-m", "metafs", *argv[1:]]

    sock_path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(sock_path)
        sock.settimeout(15)
        proc = subprocess.Popen(argv, env=base_env(NOTIFY_SOCKET=sock_path), cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert sock.recv(256) == b"READY=1"
            assert os.path.ismount(mnt)  # READY means live, not "starting"
            assert os.listdir(mnt) == ["boot.txt"]
            proc.send_signal(signal.SIGTERM)
            assert sock.recv(256) == b"STOPPING=1"
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True)
                proc.kill()
    deadline = time.monotonic() + 5
    while os.path.ismount(mnt) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.ismount(mnt)

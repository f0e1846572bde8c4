"""scripts/demo.py: ``--keep`` ended by SIGTERM cleans up as Ctrl-C does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import FUSERMOUNT, REPO, base_env, wait_until

pytestmark = pytest.mark.mount


def _processes_naming(text: str) -> list[int]:
    """Live processes whose command line holds ``text``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text.encode() in cmdline and state != "Z":
            found.append(int(pid))
    return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_demo_keep_cleans_up_on_sigterm_as_on_ctrl_c(tmp_path, signum):
    mnt = tmp_path / "demo-mnt"
    proc = subprocess.Popen([sys.executable, "scripts/demo.py", "--keep", "--mountpoint", str(mnt)],
                            cwd=REPO, env=base_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        assert proc.stdout is not None
        out = []
        deadline = time.monotonic() + 60
        for line in proc.stdout:  # until the demo has shown everything and waits
            out.append(line)
            if "to unmount" in line or time.monotonic() > deadline:
                break
        assert os.path.ismount(mnt), "".join(out)
        metafs = [p for p in _processes_naming(str(mnt)) if p != proc.pid]
        assert metafs, "no metafs process found"
        proc.send_signal(signum)  # to the demo alone (Ctrl-C would reach metafs too)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, rest
        assert "Traceback" not in rest and "unmounted" in rest
        assert not os.path.ismount(mnt)
        assert wait_until(lambda: not any(p in _processes_naming(str(mnt)) for p in metafs), 5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if os.path.ismount(mnt):
            subprocess.run([FUSERMOUNT, "-uz", str(mnt)], capture_output=True)

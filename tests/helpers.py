"""Plain helpers shared by the real-mount tests (no fixtures: those are in conftest).

Test modules import from here, never from ``conftest`` or from each other.
"""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# moto's keys: moto does not check them unless a test turns auth on, but
# every log and process list is checked for the secret.
ACCESS_KEY = "AKIAMETAFSTEST000001"
SECRET_KEY = "metafs/test+secret-KEY-do-not-log"
ACCOUNT = "123456789012"  # moto's default account
REPO = Path(__file__).resolve().parent.parent
FUSERMOUNT = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount3"


# Where detached test mounts without a syslog socket write their log file, so
# the suite leaves nothing in /var/log/metafs (README, "At start": Logs).
_STATE_HOME = tempfile.mkdtemp(prefix="metafs-test-state-")


def base_env(**extra: str) -> dict[str, str]:
    """The environment of a metafs process: moto's keys, no other AWS setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
               AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE="/nonexistent",
               AWS_SHARED_CREDENTIALS_FILE="/nonexistent", PYTHONUNBUFFERED="1",
               XDG_STATE_HOME=_STATE_HOME)
    env.update(extra)
    return env


def rgw_env(rgw: Any, **extra: str) -> dict[str, str]:
    """The environment of a metafs process talking to ``rgw`` (a metafs.devrgw.CephRgw)."""
    return base_env(AWS_ACCESS_KEY_ID=rgw.access_key, AWS_SECRET_ACCESS_KEY=rgw.secret_key, **extra)


def run_metafs(*args: str, env: dict[str, str] | None = None, timeout: float = 60
               ) -> subprocess.CompletedProcess:
    """``python -m metafs ARGS`` from the repository, output captured."""
    return subprocess.run([sys.executable, "-m", "metafs", *args], env=env or base_env(),
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def put_many(bucket: str, keys: list[str], body: bytes = b"x") -> None:
    """Create many objects fast, straight in moto's backend (same process)."""
    from moto.s3.models import s3_backends

    backend = s3_backends[ACCOUNT]["aws"]
    for k in keys:
        backend.put_object(bucket, k, body)


def wait_for_mount(path: Path, proc: subprocess.Popen, timeout: float = 15) -> None:
    """Return once ``path`` is a mount point; fail if ``proc`` exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.ismount(path):
            return
        if proc.poll() is not None:
            raise AssertionError(f"metafs exited with {proc.returncode} before mounting")
        time.sleep(0.02)
    raise AssertionError("mount did not appear in time")


def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``cond`` until it holds (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- commands on a mount (``m`` is conftest's Mount: ``m.run(cmd)`` in the mountpoint) -------

def ls_names(m: Any, path: str = ".") -> list[str]:
    """Entries of ``path`` (``ls -1a`` order), without ``.`` and ``..``."""
    out = m.run(f"ls -1a {shlex.quote(path)}").stdout
    return [n for n in out.split("\n") if n and n not in (".", "..")]


def stat_fields(m: Any, path: str, fmt: str = "%F|%s|%Y") -> list[str]:
    """``stat -c FMT``, split on ``|``."""
    return m.run(f"stat -c '{fmt}' -- {shlex.quote(path)}").stdout.strip().split("|")


def xattr(m: Any, path: str, name: str) -> bytes:
    """The value of one extended attribute, read with ``getfattr``."""
    out = m.run(f"getfattr --only-values -e base64 -n {shlex.quote(name)} -- {shlex.quote(path)}"
                ).stdout.strip()
    return base64.b64decode(out[2:]) if out.startswith("0s") else out.encode()


# -- versions in moto's backend (same process) ---------------------------------------------------

def _naive_utc(t: Any) -> Any:
    import datetime as dt

    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo else t  # moto's own form


def version_times(bucket: str, key: str, *times: Any) -> list[str]:
    """Set the LastModified of ``key``'s versions and delete markers, oldest first, in moto's
    backend (whole seconds: moto's listings have no finer precision); their version ids."""
    from moto.s3.models import s3_backends

    versions = s3_backends[ACCOUNT]["aws"].buckets[bucket].keys.getlist(key)
    assert len(versions) == len(times), (key, len(versions))
    for v, t in zip(versions, times, strict=True):
        v.last_modified = _naive_utc(t)
    return [v.version_id for v in versions]


def put_versions(bucket: str, keys: list[str], count: int, when: Any) -> None:
    """``count`` versions of each key, straight in moto's backend, all at ``when``
    (a versioned bucket); versions of one key one second apart, newest last."""
    import datetime as dt

    from moto.s3.models import s3_backends

    backend = s3_backends[ACCOUNT]["aws"]
    for k in keys:
        for i in range(count):
            backend.put_object(bucket, k, b"v%d" % i)
        for i, v in enumerate(backend.buckets[bucket].keys.getlist(k)):
            v.last_modified = _naive_utc(when + dt.timedelta(seconds=i))

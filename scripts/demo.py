"""The README's first command: a local S3 server, a sample bucket, mounted and shown.

Starts moto's S3 server on 127.0.0.1 (with request counting), fills a
bucket with a few objects carrying user and system metadata, mounts it
with metafs, and runs the commands a user would: ``ls -l``, ``stat``,
``getfattr``.  Then it prints how many requests all of that cost and
unmounts.  ``--keep`` leaves the mount up until Ctrl-C, to explore.
SIGTERM and SIGHUP clean up as Ctrl-C does: the mount, metafs and the
server go.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from metafs.devserver import CountingS3Server  # noqa: E402

BUCKET = "demo-bucket"
AK, SK = "AKIADEMODEMODEMO0000", "demo-secret-key"


def populate(url: str) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                      aws_access_key_id=AK, aws_secret_access_key=SK)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="reports/2026/q1.csv", Body=b"region,revenue\nemea,120\n",
                  ContentType="text/csv", Metadata={"owner": "finance", "reviewed": "yes"})
    s3.put_object(Bucket=BUCKET, Key="reports/2026/q2.csv", Body=b"region,revenue\nemea,135\napac,99\n",
                  ContentType="text/csv", Metadata={"owner": "finance", "reviewed": "no"})
    # AWS returns non-ASCII metadata RFC 2047-encoded; metafs decodes it.
    s3.put_object(Bucket=BUCKET, Key="images/logo.png", Body=b"\x89PNG\r\n\x1a\n" + b"\0" * 2040,
                  ContentType="image/png", CacheControl="max-age=86400",
                  Metadata={"alt": "=?UTF-8?B?TG9nbyDigJQgY2Fmw6k=?=", "source": "design"})
    s3.put_object(Bucket=BUCKET, Key="archive/2019.tar", Body=b"t" * 10240, StorageClass="GLACIER_IR",
                  ServerSideEncryption="AES256")
    s3.put_object(Bucket=BUCKET, Key="empty-folder/", Body=b"")
    s3.put_object(Bucket=BUCKET, Key="README.txt", Body=b"sample bucket for metafs\n",
                  ContentType="text/plain", Metadata={"contact": "ops@example.com"})


def show(cmd: str, cwd: Path) -> None:
    print(f"\n$ {cmd}", flush=True)
    r = subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True, text=True,
                       env=dict(os.environ, LC_ALL="C.UTF-8"))
    sys.stdout.write(r.stdout + r.stderr)


def _stop_on_signal(signum: int, _frame: object) -> None:
    """SIGTERM/SIGHUP: unwind like Ctrl-C, so ``finally`` unmounts and stops metafs and the server.

    Only the first one: a second signal during the clean-up must not cut it short.
    """
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mountpoint", help="where to mount (default: a temporary directory)")
    p.add_argument("--keep", action="store_true", help="stay mounted until Ctrl-C")
    args = p.parse_args()
    if not os.path.exists("/dev/fuse"):
        sys.exit("demo: /dev/fuse is missing; FUSE is needed to mount")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop_on_signal)

    srv = CountingS3Server().start()
    mnt = Path(args.mountpoint or tempfile.mkdtemp(prefix="metafs-demo-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        populate(srv.url)
        mnt.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK,
                   AWS_EC2_METADATA_DISABLED="true")
        cmd = [sys.executable, "-m", "metafs", "--foreground", "--endpoint-url", srv.url, BUCKET,
               str(mnt)]
        print("S3 server (moto) on", srv.url, "with bucket", BUCKET)
        print("$", " ".join(shlex.quote(c) for c in ["metafs", *cmd[3:]]), flush=True)
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, cwd=REPO)
        while not os.path.ismount(mnt):
            if proc.poll() is not None:
                return 1
            time.sleep(0.02)
        print(f"mounted in {time.monotonic() - t0:.2f} s")
        srv.reset()
        show("ls -l", mnt)
        show("ls -l reports/2026", mnt)
        show("stat reports/2026/q1.csv", mnt)
        show("getfattr -d reports/2026/q1.csv", mnt)
        show("getfattr -d -m - -e text images/logo.png", mnt)
        show("getfattr -n user.s3.storage-class archive/2019.tar", mnt)
        show("getfattr -n user.s3.server-side-encryption --only-values archive/2019.tar; echo", mnt)
        show("getfattr -d -m - .", mnt)
        c = srv.counts()
        print(f"\nrequests for all of the above: {c['LIST']} LIST, {c['HEAD']} HEAD, "
              f"{c['HEAD_COND']} conditional HEAD")
        if args.keep:
            print(f"\nmounted at {mnt}; Ctrl-C (or SIGTERM) to unmount", flush=True)
            proc.wait()
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM/SIGHUP through _stop_on_signal
        pass
    finally:
        if proc is not None and proc.poll() is None:
            # metafs unmounts and exits 0 on SIGTERM, also before its mount is live.
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if os.path.ismount(mnt):  # only after a kill: release the dead mount
            subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True)
        srv.stop()
        if not args.mountpoint:
            try:
                mnt.rmdir()
            except OSError:
                pass
    print("unmounted")
    return (proc.returncode if proc is not None else 0) or 0


if __name__ == "__main__":
    sys.exit(main())

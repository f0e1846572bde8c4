#!/usr/bin/env python3
"""Start-up benchmark: the time and CPU from ``metafs BUCKET MOUNTPOINT`` to a live mount.

Issue 12, target 6.  One counting moto server on 127.0.0.1 (metafs/devserver.py)
holds one empty bucket; the real command (the ``metafs`` next to this Python, as a
user runs it: detached, the command returns once the mount is live) mounts it
``--runs`` times.  Each run measures

* ``wall``: from the spawn to the command's exit (= the mount is live);
* ``cpu``: the command's own CPU (before the fork: the imports, the parse) plus the
  mount process's CPU up to that moment (all its threads, from /proc/PID/task/*/schedstat,
  nanoseconds);

then unmounts (``fusermount3 -u``) and waits for the mount process to end.  Prints the
median and the quartiles of both; ``--importtime`` also prints the 15 most expensive imports
(``-X importtime`` self time, of a ``--foreground`` mount: the same imports).

    python scripts/bench_startup.py [--runs 20] [--importtime] [--metafs PATH [--metafs PATH2]]

Times depend on the machine's load: state it with the figures (``uptime``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from metafs.devserver import CountingS3Server  # noqa: E402  (the moto server: the server extra)

BUCKET = "startup"
REGION = "us-east-1"


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    out.update(AWS_ACCESS_KEY_ID="AKIAMETAFSSTARTUP000", AWS_SECRET_ACCESS_KEY="startup-secret",
               AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE="/nonexistent",
               AWS_SHARED_CREDENTIALS_FILE="/nonexistent", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    return out


def daemon_pid(mnt: str) -> int | None:
    """The mount process of ``mnt``: the process whose command line names it."""
    want = mnt.encode()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if want in args:
            return int(d)
    return None


def cpu_ns(pid: int) -> int:
    """CPU time of every live thread of ``pid`` (ns)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            continue
    return total


def one_run(metafs: str, url: str, root: Path, i: int) -> tuple[float, float]:
    mnt = str(root / f"m{i}")
    os.mkdir(mnt)
    t0 = time.perf_counter()
    proc = subprocess.Popen([metafs, BUCKET, mnt, "--endpoint-url", url, "--region", REGION,
                             "--log-file", str(root / "metafs.log")], env=env(),
                            stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"bench_startup: metafs exited with {proc.returncode}")
    pid = daemon_pid(mnt)
    if pid is None:
        raise SystemExit("bench_startup: the mount process is gone")
    cpu = usage.ru_utime + usage.ru_stime + cpu_ns(pid) / 1e9
    subprocess.run(["fusermount3", "-u", mnt], check=True)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.01)
    os.rmdir(mnt)
    return wall, cpu


def import_times(metafs: str, url: str, root: Path, top: int) -> list[tuple[int, int, str]]:
    """(self µs, cumulative µs, module) of a --foreground mount's imports, most expensive first."""
    mnt = tempfile.mkdtemp(dir=root)
    log = Path(mnt + ".log")
    with open(log, "wb") as f:
        proc = subprocess.Popen([metafs, BUCKET, mnt, "--endpoint-url", url, "--region", REGION,
                                 "--foreground"], env=env() | {"PYTHONPROFILEIMPORTTIME": "1"},
                                stdin=subprocess.DEVNULL, stderr=f)
    deadline = time.monotonic() + 30
    while not os.path.ismount(mnt) and time.monotonic() < deadline:
        time.sleep(0.01)
    subprocess.run(["fusermount3", "-u", mnt], check=False)
    proc.wait(15)
    rows = []
    for line in log.read_text().splitlines():
        if line.startswith("import time:") and "|" in line and "self" not in line:
            s, c, name = line[len("import time:"):].split("|")
            rows.append((int(s), int(c), name.rstrip()))
    rows.sort(reverse=True)
    return rows[:top]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--importtime", action="store_true", help="also the 15 most expensive imports")
    p.add_argument("--metafs", action="append",
                   help="the command to run (default: the metafs beside this Python); given "
                        "more than once, the commands' runs alternate (a fair comparison on a "
                        "loaded machine)")
    args = p.parse_args(argv)
    commands = args.metafs or [str(Path(sys.executable).parent / "metafs")]
    for c in commands:
        if not shutil.which(c):
            sys.exit(f"bench_startup: no command {c}")
    server = CountingS3Server().start()
    root = Path(tempfile.mkdtemp(prefix="metafs-startup-"))
    try:
        import httpx

        httpx.put(f"{server.url}/{BUCKET}").raise_for_status()  # moto: no signature needed
        for c in commands:
            one_run(c, server.url, root, -1)  # warm the page cache
        server.reset()
        walls: dict[str, list[float]] = {c: [] for c in commands}
        cpus: dict[str, list[float]] = {c: [] for c in commands}
        for i in range(args.runs):
            for j, c in enumerate(commands):
                w, cpu = one_run(c, server.url, root, i * len(commands) + j)
                walls[c].append(w)
                cpus[c].append(cpu)
        counts = {k: v for k, v in server.counts().items() if v}
        for c in commands:
            print(c)
            for name, xs in (("wall", walls[c]), ("cpu", cpus[c])):
                q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
                print(f"  {name:5s} median {statistics.median(xs) * 1000:6.1f} ms  "
                      f"quartiles {q[0] * 1000:6.1f} .. {q[2] * 1000:6.1f} ms  "
                      f"min {min(xs) * 1000:6.1f} ms  ({len(xs)} runs)")
        mounts = args.runs * len(commands)
        print(f"requests per mount: { {k: v / mounts for k, v in counts.items()} }")
        print("load average after:", os.getloadavg())
        if args.importtime:
            for c in commands:
                print(f"imports of {c}, self µs | cumulative µs | module:")
                for s, cum, name in import_times(c, server.url, root, 15):
                    print(f"  {s:7d} | {cum:7d} | {name}")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

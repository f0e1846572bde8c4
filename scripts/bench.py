#!/usr/bin/env python3
"""Benchmark: the same metadata workloads through metafs, s3fs and rclone mount.

One command starts one counting moto S3 server on 127.0.0.1
(``metafs/devserver.py``), fills it, and for each emulated round trip
(``--delays``, milliseconds added to every request) runs every workload of
``WORKLOADS`` through

* each FUSE tool of ``--tools`` (metafs, s3fs, rclone), fresh mount where the
  workload says "cold";
* ``tmpfs``: a copy of the same names in /dev/shm (the kernel + coreutils floor);
* ``bare``: the S3 requests the workload needs, sent directly with httpx
  (the server's own floor: e.g. the two LIST pages of a 2,000-key directory).

Each workload is a shell command run with the mountpoint as cwd, timed with
time.perf_counter(); the server's request counts are reset before it and read
after it.  Output: a table on stdout, OUT/results.json, OUT/benchmark.png
(and --chart PATH), daemon logs in OUT/logs/.

    python scripts/bench.py [--quick] [--delays 0,20] [--tools metafs,s3fs,rclone]
                            [--timeout 120] [--out bench-out] [--chart docs/benchmark.png]

Needs the ``bench`` extra (moto, boto3, matplotlib): ``pip install -e '.[bench]'``;
without it the command stops at once with one line saying so.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import importlib.util
import json
import os
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # before moto/botocore are imported

import bench_bare  # noqa: E402  (scripts/bench_bare.py)
from metafs.devserver import CountingS3Server  # noqa: E402  (needs moto only to start a server)

# One result: delay_ms, workload, tool, status, then what the run measured (JSON-ready).
Record = dict[str, Any]
Dataset = dict[str, list[tuple[str, int, dict[str, str]]]]  # bucket -> [(key, size, metadata)]

BUCKET = "bench"             # 2,000-key directory, 200 files with metadata, nested tree
BIG_BUCKET = "bench-100k"    # the 100,000-key directory, alone so it slows no other LIST
REGION = "us-east-1"
ACCESS_KEY = "AKIAMETAFSBENCHMARK0"
SECRET_KEY = "metafs-benchmark-secret-key"  # moto does not check signatures
MOTO_ACCOUNT = "123456789012"  # moto's default account

SERVER_LABEL = "moto S3"  # or "Ceph RGW" (--server rgw): the chart's title
METAFS_CODE = REPO  # the metafs checkout mounts run (--metafs-code: compare two versions)
MOUNT_TIMEOUT = 30.0    # seconds until a mount must be live
REFERENCES = ("bare", "tmpfs")

# ---------------------------------------------------------------- dataset
D2K = [f"d2k/f{i:05d}" for i in range(2000)]
D100K = [f"d100k/f{i:06d}" for i in range(100_000)]
M200 = [f"m200/obj{i:03d}" for i in range(200)]
# A tree of 5,000 objects in 655 directories (5 x 5 x 5 x 4 leaves of 10 files, four levels deep).
TREE = [f"tree/a{a}/b{b}/c{c}/d{d}/f{f}"
        for a in range(5) for b in range(5) for c in range(5) for d in range(4) for f in range(10)]
TREE_DIRS = len({k.rsplit("/", 1)[0] for k in TREE} | {k.rsplit("/", 2)[0] for k in TREE}
                | {k.rsplit("/", 3)[0] for k in TREE} | {k.rsplit("/", 4)[0] for k in TREE})
# getfattr -R -d: 2,000 files with user metadata in 50 directories.
GTREE = [f"gtree/g{g:02d}/f{f:02d}" for g in range(50) for f in range(40)]
MISSING = [f"d2k/missing{i:03d}" for i in range(200)]
DEEP_KEY = "tree/a2/b1/c0/d2/f5"


def user_metadata(i: int) -> dict[str, str]:
    return {"x-amz-meta-owner": ("alice", "bob")[i % 2],
            "x-amz-meta-project": "metafs-bench",
            "x-amz-meta-index": str(i)}


def dataset(quick: bool) -> Dataset:
    """bucket -> [(key, size, metadata)]"""
    small = [(k, (i * 37) % 1000, user_metadata(i))
             for i, k in enumerate(D2K + M200 + TREE + GTREE)]
    big: list[tuple[str, int, dict[str, str]]] = (
        [] if quick else [(k, i % 100, {}) for i, k in enumerate(D100K)])
    return {BUCKET: small, BIG_BUCKET: big}


def load_into_moto(data: Dataset) -> None:
    """Create buckets and objects in moto's in-process backend (seconds, not minutes)."""
    from moto.s3.models import s3_backends

    backend = s3_backends[MOTO_ACCOUNT]["global"]
    for bucket, objects in data.items():
        backend.create_bucket(bucket, REGION)
        for key, size, meta in objects:
            obj = backend.put_object(bucket, key, b"x" * size, disable_notification=True)
            obj.set_metadata({"Content-Type": "text/plain", **meta})


def build_tmpfs_copy(data: Dataset, root: Path) -> None:
    """The same names (sizes, user.* xattrs) in a tmpfs directory, one subdir per bucket."""
    for bucket, objects in data.items():
        for key, size, meta in objects:
            path = root / bucket / key
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                f.truncate(size)
            for name, value in meta.items():
                try:
                    os.setxattr(path, "user." + name.removeprefix("x-amz-meta-"), value.encode())
                except OSError:
                    pass  # kernels before 6.6 have no user.* xattrs on tmpfs


# --------------------------------------------------------------- workloads
@dataclasses.dataclass
class Workload:
    name: str            # key in results.json
    label: str           # row / chart label
    cmd: str             # shell command, cwd = mount root; {names} = dir of name lists
    fresh: bool          # True: on a new mount; False: on the mount of the workload before
    bucket: str = BUCKET
    bare: tuple[Any, ...] | None = None  # ("list", bucket, prefix, delimiter) | ("head", bucket, keys)
    expect_out: int | None = None   # stdout lines a correct filesystem prints
    expect_err: int | None = None   # stderr lines a correct filesystem prints
    full_only: bool = False         # skipped with --quick


WORKLOADS = [
    Workload("ls_2k_cold", "ls -l 2k, cold", "ls -l d2k", fresh=True,
             bare=("list", BUCKET, "d2k/", "/"), expect_out=2001),
    Workload("ls_2k_warm", "ls -l 2k, warm", "ls -l d2k", fresh=False, expect_out=2001),
    Workload("stat_2k_warm", "stat 2k files, warm",
             "xargs -a {names}/d2k.txt stat --format=%s", fresh=False, expect_out=2000),
    Workload("ls_100k_cold", "ls -l 100k, cold", "ls -l d100k", fresh=True, bucket=BIG_BUCKET,
             bare=("list", BIG_BUCKET, "d100k/", "/"), expect_out=100_001, full_only=True),
    Workload("ls_100k_warm", "ls -l 100k, warm", "ls -l d100k", fresh=False, bucket=BIG_BUCKET,
             expect_out=100_001, full_only=True),
    Workload("find_tree_cold", f"find tree ({len(TREE)} in {TREE_DIRS} dirs), cold",
             "find tree -type f", fresh=True,
             bare=("list", BUCKET, "tree/", None), expect_out=len(TREE)),
    Workload("du_tree_cold", "du -s tree, cold", "du -s tree", fresh=True,
             bare=("list", BUCKET, "tree/", None), expect_out=1),
    Workload("lsR_tree_cold", "ls -R tree, cold", "ls -R tree", fresh=True,
             bare=("list", BUCKET, "tree/", None)),
    Workload("getfattr_R_2k_cold", "getfattr -R -d 2k, cold", "getfattr -R -d gtree", fresh=True,
             bare=("head", BUCKET, GTREE)),
    Workload("getfattr_10_cold", "getfattr -d 10 files, cold",
             "getfattr -d " + " ".join(M200[:10]), fresh=True, bare=("head", BUCKET, M200[:10])),
    Workload("getfattr_50_cold", "getfattr -d 50 files, cold",
             "getfattr -d " + " ".join(M200[:50]), fresh=True, bare=("head", BUCKET, M200[:50])),
    Workload("getfattr_200_cold", "getfattr -d x200, cold",
             'while read -r f; do getfattr -d "$f"; done < {names}/m200.txt', fresh=True,
             bare=("head", BUCKET, M200)),
    Workload("neg_200_first", "stat 200 missing, 1st",
             "xargs -a {names}/missing.txt stat --format=%s", fresh=True,
             bare=("list", BUCKET, "d2k/", "/"), expect_out=0, expect_err=200),
    Workload("neg_200_again", "stat 200 missing, 2nd",
             "xargs -a {names}/missing.txt stat --format=%s", fresh=False,
             expect_out=0, expect_err=200),
    Workload("deep_stat_cold", "stat a/b/c/d/file, cold", f"stat --format=%s {DEEP_KEY}",
             fresh=True, bare=("head", BUCKET, [DEEP_KEY]), expect_out=1),
]
# Two more rows come from the mounts themselves: "mount" (start of the mount
# command to a live mount, median over the mounts of a delay) and "peak_rss"
# (VmHWM of the daemon, max over its mounts; read just before unmounting).
MOUNT_ROW, RSS_ROW = "mount", "peak_rss"


def write_name_lists(names_dir: Path) -> None:
    names_dir.mkdir(parents=True, exist_ok=True)
    for fname, names in (("d2k.txt", D2K), ("m200.txt", M200), ("missing.txt", MISSING)):
        (names_dir / fname).write_text("".join(n + "\n" for n in names))


# ------------------------------------------------------------------- tools
def child_env() -> dict[str, str]:
    env = dict(os.environ)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        env.pop(k, None)
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_ACCESS_KEY_ID=ACCESS_KEY,
               AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION,
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", LC_ALL="C")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(METAFS_CODE), env.get("PYTHONPATH")]))
    return env


def metafs_command(url: str, bucket: str, mnt: str, ctx: Context) -> tuple[list[str], dict[str, str]]:
    return ([sys.executable, "-m", "metafs", "--endpoint-url", url, "--region", REGION,
             *ctx.metafs_args, "--foreground", bucket, mnt], child_env())


def s3fs_command(url: str, bucket: str, mnt: str, ctx: Context) -> tuple[list[str], dict[str, str]]:
    return (["s3fs", bucket, mnt, "-o", f"url={url}", "-o", "use_path_request_style",
             "-o", f"passwd_file={ctx.passwd_file}", "-o", "ro", "-f"], child_env())


def rclone_command(url: str, bucket: str, mnt: str, ctx: Context) -> tuple[list[str], dict[str, str]]:
    env = child_env()
    env.pop("AWS_CA_BUNDLE", None)  # Debian's rclone refuses to start an S3 remote with it set
    return (["rclone", "mount", f":s3:{bucket}", mnt, "--read-only", "--s3-provider", "Other",
             "--s3-endpoint", url, "--s3-access-key-id", ACCESS_KEY,
             "--s3-secret-access-key", SECRET_KEY, "--s3-force-path-style"], env)


FUSE_TOOLS = {"metafs": metafs_command, "s3fs": s3fs_command, "rclone": rclone_command}


@dataclasses.dataclass
class Mount:
    tool: str
    path: str
    proc: subprocess.Popen[bytes] | None  # None for the tmpfs copy
    seconds: float = 0.0


class MountError(Exception):
    pass


ACTIVE: list[Mount] = []  # mounts to take down whatever happens


def is_mounted(path: str) -> bool:
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


def mount(tool: str, bucket: str, mnt: str, ctx: Context, log: Path) -> Mount:
    if tool == "tmpfs":
        return Mount(tool, str(ctx.tmpfs_root / bucket), None)
    argv, env = FUSE_TOOLS[tool](ctx.url, bucket, mnt, ctx)
    with open(log, "ab") as logf:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=METAFS_CODE, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT, start_new_session=True)
    m = Mount(tool, mnt, proc)
    ACTIVE.append(m)
    while not os.path.ismount(mnt):
        if proc.poll() is not None:
            unmount(m)
            raise MountError(f"{tool} exited with status {proc.returncode}: {log_tail(log)}")
        if time.perf_counter() - t0 > MOUNT_TIMEOUT:
            unmount(m)
            raise MountError(f"{tool} not mounted after {MOUNT_TIMEOUT:.0f}s: {log_tail(log)}")
        time.sleep(0.002)
    m.seconds = time.perf_counter() - t0
    return m


def unmount(m: Mount, force: bool = False) -> None:
    """fusermount3 -u, wait for the daemon; lazy unmount and kill as last resorts.

    force (after a workload timed out): stop the daemon first, which aborts its
    FUSE connection and frees processes stuck in a request, then unmount lazily.
    """
    if m.proc is None:
        return
    try:
        if force:
            stop(m.proc)
        if is_mounted(m.path):
            r = subprocess.run(["fusermount3", "-u", m.path], capture_output=True, timeout=30)
            if r.returncode != 0:
                subprocess.run(["fusermount3", "-uz", m.path], capture_output=True, timeout=30)
        try:
            m.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            stop(m.proc)
        if is_mounted(m.path):  # daemon gone, kernel mount left behind
            subprocess.run(["fusermount3", "-uz", m.path], capture_output=True, timeout=30)
    finally:
        if m in ACTIVE:
            ACTIVE.remove(m)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 5 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def vmhwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def log_tail(path: Path, n: int = 3) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-n:])[-400:]


# ----------------------------------------------------------------- runner
@dataclasses.dataclass
class Context:
    server: Any  # CountingS3Server (moto) or bench_rgw.RgwServer: url, delay, counts, reset
    url: str
    work: Path
    tmpfs_root: Path
    names: Path
    passwd_file: Path
    out: Path
    timeout: float
    records: list[Record]
    metafs_args: list[str] = dataclasses.field(default_factory=list)
    mount_count: int = 0

    def new_mountpoint(self, tool: str) -> str:
        self.mount_count += 1
        path = self.work / "mnt" / f"{tool}-{self.mount_count}"
        path.mkdir(parents=True)
        return str(path)


def count_lines(path: Path) -> tuple[int, str]:
    """(number of lines, first line) of a file."""
    n, first = 0, ""
    with open(path, "rb") as f:
        first = f.readline().decode(errors="replace").rstrip("\n")
        f.seek(0)
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return n, first


def run_shell(ctx: Context, w: Workload, cwd: str) -> Record:
    """Run one workload command; returns seconds, status, exit code and output line counts."""
    cmd = w.cmd.format(names=ctx.names)
    out, err = ctx.work / "stdout", ctx.work / "stderr"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen(["bash", "-c", cmd], cwd=cwd, env=child_env(), stdin=subprocess.DEVNULL,
                             stdout=fo, stderr=fe, start_new_session=True)
        status = "ok"
        # Wait on a pidfd, which becomes readable the moment the shell exits:
        # Popen.wait(timeout=) polls with growing sleeps (0.5, 1, 2, 4, 8 ms...),
        # which would round a 9 ms command up to 15.5 ms.
        pidfd = os.pidfd_open(p.pid)
        try:
            if not select.select([pidfd], [], [], ctx.timeout)[0]:
                status = "timeout"
        finally:
            seconds = time.perf_counter() - t0
            os.close(pidfd)
            requests = ctx.server.counts()  # at the deadline, before the kill
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:  # a process inside a FUSE request the daemon is still serving
                    p.wait(timeout=5)  # stays until the daemon answers or dies (unmount)
                except subprocess.TimeoutExpired:
                    pass
    out_lines, _ = count_lines(out)
    err_lines, err_first = count_lines(err)
    rec: Record = {"status": status, "seconds": seconds, "requests": requests, "rc": p.returncode,
           "out_lines": out_lines, "err_lines": err_lines,
           "err_first": err_first.replace(cwd + "/", "").replace(cwd, "MNT")[:120]}
    problems = []
    if w.expect_out is not None and out_lines != w.expect_out:
        problems.append(f"{out_lines} stdout lines, expected {w.expect_out}")
    if w.expect_err is not None and err_lines != w.expect_err:
        problems.append(f"{err_lines} stderr lines, expected {w.expect_err}")
    if status == "ok" and problems:
        rec["check"] = "; ".join(problems)
    return rec


def record(ctx: Context, delay: float, workload: str, tool: str, **fields: object) -> Record:
    rec: Record = {"delay_ms": delay, "workload": workload, "tool": tool, **fields}
    ctx.records.append(rec)
    t = rec.get("seconds")
    shown = fmt_seconds(t) if t is not None and rec.get("status", "ok") == "ok" else rec.get("status")
    if "rss_kb" in rec:
        shown = fmt_mb(rec["rss_kb"])
    print(f"  [{delay:g} ms] {tool:7s} {workload:18s} {shown}", file=sys.stderr, flush=True)
    return rec


def run_tool(ctx: Context, tool: str, delay: float, workloads: list[Workload]) -> None:
    """All workloads through one tool: a new mount for every `fresh` workload."""
    groups: list[list[Workload]] = []
    for w in workloads:
        if w.fresh or not groups:
            groups.append([])
        groups[-1].append(w)
    mount_times: list[float] = []
    mount_requests: dict[str, int] | None = None
    rss: dict[str, int] = {}
    failures = 0
    for group in groups:
        if failures >= 2:
            for w in group:
                record(ctx, delay, w.name, tool, status="error", error="skipped: mount failed twice")
            continue
        log = ctx.out / "logs" / f"{tool}-{delay:g}ms-{group[0].name}.log"
        ctx.server.reset()
        try:
            m = mount(tool, group[0].bucket, ctx.new_mountpoint(tool), ctx, log)
        except MountError as e:
            failures += 1
            for w in group:
                record(ctx, delay, w.name, tool, status="error", error=str(e))
            continue
        broken = None
        try:
            if m.proc is not None:
                mount_times.append(m.seconds)
                if mount_requests is None:
                    mount_requests = ctx.server.counts()
            for w in group:
                if broken:
                    record(ctx, delay, w.name, tool, status="skipped", error=broken)
                    continue
                ctx.server.reset()
                rec = run_shell(ctx, w, m.path)
                record(ctx, delay, w.name, tool, **rec)
                if rec["status"] == "timeout":
                    broken = f"{w.name} timed out on this mount"
        finally:
            if m.proc is not None:
                kb = vmhwm_kb(m.proc.pid)
                if kb is not None:
                    rss[group[0].name] = kb
            unmount(m, force=bool(broken))
    if mount_times:
        record(ctx, delay, MOUNT_ROW, tool, status="ok", seconds=statistics.median(mount_times),
               samples=mount_times, requests=mount_requests)
    if rss:
        record(ctx, delay, RSS_ROW, tool, status="ok", rss_kb=max(rss.values()), samples=rss)


# "bare": the workload's S3 requests sent directly (scripts/bench_bare.py, own process)
def run_bare(ctx: Context, delay: float, workloads: list[Workload]) -> None:
    for w in workloads:
        if not w.bare:
            continue
        ctx.server.reset()
        try:
            p = subprocess.run([sys.executable, str(Path(__file__).with_name("bench_bare.py")),
                                ctx.url, json.dumps(w.bare)], env=child_env(),
                               capture_output=True, text=True, timeout=ctx.timeout)
        except subprocess.TimeoutExpired:
            record(ctx, delay, w.name, "bare", status="timeout", seconds=ctx.timeout,
                   requests=ctx.server.counts(), out_lines=0,
                   requests_sent=bench_bare.describe(list(w.bare)))
            continue
        if p.returncode != 0:
            record(ctx, delay, w.name, "bare", status="error", error=p.stderr.strip()[-300:])
            continue
        answer = json.loads(p.stdout)
        record(ctx, delay, w.name, "bare", status="ok", seconds=answer["seconds"],
               requests=ctx.server.counts(), out_lines=answer["entries"],
               requests_sent=bench_bare.describe(list(w.bare)))


def warm_up(ctx: Context) -> None:
    """One untimed LIST and HEAD, so moto's lazy imports are not billed to the first workload."""
    for spec in (["list", BUCKET, "tree/", None], ["head", BUCKET, [DEEP_KEY]]):
        subprocess.run([sys.executable, str(Path(__file__).with_name("bench_bare.py")),
                        ctx.url, json.dumps(spec)], env=child_env(), capture_output=True, timeout=60)


# ----------------------------------------------------------------- output
def fmt_seconds(t: float) -> str:
    return f"{t * 1000:.1f} ms" if t < 1 else f"{t:.2f} s"


def fmt_mb(kb: int) -> str:
    return f"{kb / 1024:.1f} MB"


def find(records: list[Record], delay: float, workload: str, tool: str) -> Record | None:
    for r in records:
        if r["delay_ms"] == delay and r["workload"] == workload and r["tool"] == tool:
            return r
    return None


def cell(r: Record, timeout: float) -> str:
    if r["status"] == "timeout":
        return f"timeout >{timeout:.0f}s"
    status: str = r["status"]
    if status in ("error", "skipped"):
        return status
    if "rss_kb" in r:
        return fmt_mb(r["rss_kb"])
    return fmt_seconds(r["seconds"])


def value(r: Record | None) -> float | None:
    if r is None or r["status"] not in ("ok", "timeout"):
        return None
    return r.get("rss_kb", r.get("seconds"))


def note(r: Record) -> str:
    if r["status"] in ("error", "skipped"):
        error: str = r.get("error", "")
        return error[:150]
    if r["tool"] == "bare":
        unit = "entries listed" if r["requests"].get("LIST") else "x 200 OK"
        return f"{r['out_lines']} {unit}; {r['requests_sent']}"
    if r["workload"] == MOUNT_ROW:
        return "median of " + ", ".join(fmt_seconds(s) for s in r["samples"])
    if r["workload"] == RSS_ROW:
        return "max over mounts: " + ", ".join(f"{k} {fmt_mb(v)}" for k, v in r["samples"].items())
    parts = [f"rc={r['rc']}", f"out {r['out_lines']}", f"err {r['err_lines']}"]
    if r.get("check"):
        parts.append("CHECK: " + r["check"])
    if r["err_first"]:
        parts.append(repr(r["err_first"][:70]))
    if r["status"] == "timeout":
        parts.insert(0, "killed; requests so far")
    return ", ".join(parts)


def table(records: list[Record], delay: float, tools: list[str], workloads: list[Workload],
          timeout: float) -> str:
    lines = [f"=== round trip {delay:g} ms (added to every S3 request) ===",
             f"{'workload / tool':24s} {'wall':>16s} {'LIST':>6s} {'HEAD':>7s} {'HEAD_COND':>9s} "
             f"{'other':>6s}  note"]
    rows = [(w.name, w.label, w.cmd) for w in workloads]
    rows += [(MOUNT_ROW, "mount (to live)", "start of mount command -> os.path.ismount"),
             (RSS_ROW, "peak RSS (VmHWM)", "daemon's /proc/PID/status VmHWM before unmount")]
    for name, label, cmd in rows:
        lines.append(f"{label}   [{cmd}]")
        for tool in list(REFERENCES) + tools:
            r = find(records, delay, name, tool)
            if r is None:
                continue
            req = r.get("requests") or {}
            other = sum(v for k, v in req.items() if k not in ("LIST", "HEAD", "HEAD_COND"))
            counts = (f"{req.get('LIST', 0):6d} {req.get('HEAD', 0):7d} {req.get('HEAD_COND', 0):9d} "
                      f"{other:6d}" if req else " " * 31)
            lines.append(f"  {tool:22s} {cell(r, timeout):>16s} {counts}  {note(r)}")
        m_rec = find(records, delay, name, "metafs")
        m = value(m_rec)
        ratios = []
        for peer in [t for t in tools if t != "metafs"] + ["bare"]:
            p_rec = find(records, delay, name, peer)
            p = value(p_rec)
            if m_rec is None or p_rec is None or m is None or not p or m_rec["status"] != "ok":
                continue
            prefix = "<" if p_rec["status"] == "timeout" else ""
            ratios.append(f"metafs/{peer} {prefix}{m / p:.3g}")
        if ratios:
            lines.append("  ratio: " + "   ".join(ratios) + "   (<1: metafs faster/smaller)")
    return "\n".join(lines)


COLORS = {"bare": "#999999", "tmpfs": "#cccccc", "metafs": "#1f77b4", "s3fs": "#d62728",
          "rclone": "#2ca02c"}


def chart(records: list[Record], delays: list[float], tools: list[str], workloads: list[Workload],
          timeout: float, paths: list[Path]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(w.name, w.label) for w in workloads] + [(MOUNT_ROW, "mount")]
    series = list(REFERENCES) + tools
    width = 0.84 / len(series)
    fig, axes = plt.subplots(len(delays), 1, squeeze=False,
                             figsize=(max(10.0, 1.25 * len(rows) + 2), 4.6 * len(delays)))
    for ax, delay in zip(axes[:, 0], delays, strict=True):  # one row of axes per delay
        labelled: set[str] = set()
        heights: list[float] = []
        for j, tool in enumerate(series):
            for i, (name, _) in enumerate(rows):
                r = find(records, delay, name, tool)
                x = i + (j - (len(series) - 1) / 2) * width
                if r is None:
                    continue
                if r["status"] not in ("ok", "timeout"):  # error / skipped: a mark, no bar
                    ax.text(x, 0.02, r["status"], transform=ax.get_xaxis_transform(),
                            ha="center", va="bottom", fontsize=6, rotation=90, color="dimgray")
                    continue
                h = max(r["seconds"], 1e-4)
                heights.append(h)
                ax.bar(x, h, width, color=COLORS.get(tool, "#9467bd"),
                       hatch="//" if r["status"] == "timeout" else None, edgecolor="black",
                       linewidth=0.3, label=None if tool in labelled else tool)
                labelled.add(tool)
                if r["status"] == "timeout":
                    ax.text(x, h * 1.1, f">{timeout:.0f}s", ha="center", va="bottom", fontsize=6, rotation=90)
        ax.legend(fontsize=8, ncol=len(series), loc="upper left")
        ax.set_yscale("log")
        if heights:  # room for the legend above the tallest bar
            ax.set_ylim(min(heights) / 2, max(heights) * 12)
        ax.set_ylabel("wall time (s, log)")
        ax.set_title(f"metafs vs s3fs vs rclone mount, {SERVER_LABEL} with {delay:g} ms per request")
        ax.set_xticks(range(len(rows)), [label for _, label in rows], rotation=25, ha="right", fontsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------- main
# The ``bench`` extra of pyproject.toml: checked before anything runs, so a
# missing chart library does not surface only after a 13-minute run.
OPTIONAL_DEPS = ("moto", "boto3", "matplotlib")


def require_optional_deps() -> None:
    """Exit with one line if a module of the ``bench`` extra cannot be imported."""
    missing: list[str] = []
    for name in OPTIONAL_DEPS:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        sys.exit(f"bench: missing {', '.join(missing)}; install the benchmark extra: "
                 f"pip install -e '.[bench]'")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="skip the 100,000-object workloads")
    p.add_argument("--delays", default="0,20", help="per-request delays in ms (default 0,20)")
    p.add_argument("--tools", default="metafs,s3fs,rclone",
                   help="FUSE tools to run (bare and tmpfs always run)")
    p.add_argument("--timeout", type=float, default=120.0, help="cap per workload, seconds")
    p.add_argument("--out", default=str(REPO / "bench-out"), help="output directory")
    p.add_argument("--chart", help="also write the chart here (e.g. docs/benchmark.png)")
    p.add_argument("--server", choices=("moto", "rgw"), default="moto",
                   help="the S3 server: moto (default) or a one-node Ceph RGW (metafs/devrgw.py)")
    p.add_argument("--only", default="",
                   help="comma-separated workload names to run (default: all)")
    p.add_argument("--metafs-code", default=str(REPO),
                   help="the metafs checkout to mount with (default: this one; compare versions)")
    p.add_argument("--metafs-args", default="",
                   help="extra metafs options, e.g. '--metadata-ttl 600' (default: none)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_optional_deps()
    if args.server == "rgw" and importlib.util.find_spec("metafs.devrgw") is None:
        sys.exit("bench: --server rgw needs the Ceph RGW launcher metafs/devrgw.py, "
                 "which this tree does not have yet")
    delays = [float(d) for d in args.delays.split(",") if d.strip()]
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in tools if t not in FUSE_TOOLS]
    if unknown:
        sys.exit(f"unknown tool(s) {unknown}; choose from {list(FUSE_TOOLS)}")
    workloads = [w for w in WORKLOADS if not (args.quick and w.full_only)]
    if args.only:
        only = {n.strip() for n in args.only.split(",")}
        if only - {w.name for w in WORKLOADS}:
            sys.exit(f"unknown workload(s) {sorted(only - {w.name for w in WORKLOADS})}")
        workloads = [w for w in workloads if w.name in only]
    global METAFS_CODE
    METAFS_CODE = Path(args.metafs_code).resolve()
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_sigterm)

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="metafs-bench-"))
    tmpfs_root = Path(tempfile.mkdtemp(prefix="metafs-bench-", dir="/dev/shm"))
    global ACCESS_KEY, SECRET_KEY, SERVER_LABEL
    if args.server == "rgw":
        SERVER_LABEL = "Ceph RGW"
        import bench_rgw
        server: Any = bench_rgw.RgwServer().start()
        ACCESS_KEY, SECRET_KEY = server.access_key, server.secret_key
        os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = ACCESS_KEY, SECRET_KEY
        server_name = f"Ceph RGW (metafs.devrgw) behind a counting proxy at {server.url}"
    else:
        server = CountingS3Server().start()
        server_name = f"metafs.devserver.CountingS3Server (moto) at {server.url}"
    ctx = Context(server, server.url, work, tmpfs_root, work / "names", work / "passwd-s3fs",
                  out, args.timeout, [], shlex.split(args.metafs_args))
    results: dict[str, Any] = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": args.quick, "delays_ms": delays, "tools": tools, "timeout_s": args.timeout,
        "server": server_name,
        "commands": {}, "workloads": {}, "records": ctx.records,
    }
    exit_code = 0

    def save() -> None:
        results["duration_s"] = round(time.perf_counter() - started, 1)
        (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")

    try:
        t0 = time.perf_counter()
        data = dataset(args.quick)
        if args.server == "rgw":
            bench_rgw.load(server.rgw, data, REGION)
        else:
            load_into_moto(data)
        build_tmpfs_copy(data, tmpfs_root)
        write_name_lists(ctx.names)
        ctx.passwd_file.write_text(f"{ACCESS_KEY}:{SECRET_KEY}\n")
        ctx.passwd_file.chmod(0o600)
        results["setup_s"] = round(time.perf_counter() - t0, 1)
        results["dataset"] = {b: len(objs) for b, objs in data.items()}
        for w in workloads:
            results["workloads"][w.name] = {"label": w.label, "cmd": w.cmd, "bucket": w.bucket,
                                            "fresh_mount": w.fresh,
                                            "bare": bench_bare.describe(list(w.bare)) if w.bare else None}
        print(f"S3 server {server.url}; objects {results['dataset']}; setup {results['setup_s']} s")
        for tool in tools:
            argv_, env = FUSE_TOOLS[tool](server.url, BUCKET, "MOUNTPOINT", ctx)
            results["commands"][tool] = shlex.join(argv_)
            extra = " (env: AWS_CA_BUNDLE removed)" if "AWS_CA_BUNDLE" not in env else ""
            print(f"  {tool}: {shlex.join(argv_)}{extra}")
        print(flush=True)

        warm_up(ctx)
        for delay in delays:
            server.delay = delay / 1000
            run_bare(ctx, delay, workloads)
            run_tool(ctx, "tmpfs", delay, workloads)
            for tool in tools:
                run_tool(ctx, tool, delay, workloads)
                save()
            server.delay = 0
            print(table(ctx.records, delay, tools, workloads, args.timeout) + "\n", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted; unmounting", file=sys.stderr)
        results["interrupted"] = True
        exit_code = 130
    finally:
        for m in list(ACTIVE):
            unmount(m)
        server.stop()
        shutil.rmtree(tmpfs_root, ignore_errors=True)
        if not any(is_mounted(str(p)) for p in (work / "mnt").glob("*")):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"warning: something is still mounted under {work}; left it", file=sys.stderr)
        save()

    paths = [out / "benchmark.png"] + ([Path(args.chart)] if args.chart else [])
    if ctx.records:
        chart(ctx.records, delays, tools, workloads, args.timeout, paths)
    print(f"total {time.perf_counter() - started:.0f} s; wrote {out / 'results.json'}, "
          + ", ".join(str(p) for p in paths))
    return exit_code


if __name__ == "__main__":
    sys.exit(main())

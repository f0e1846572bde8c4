#!/usr/bin/env python3
"""Benchmark: the same metadata workloads through metafs, s3fs and rclone mount.

One command starts each S3 server of ``--server`` in turn -- a counting moto
server (``metafs/devserver.py``) and/or a one-node Ceph RGW behind a counting
proxy (``scripts/bench_rgw.py``) -- fills it, and for each emulated round trip
(``--delays``, milliseconds added to every request) runs every workload of
``WORKLOADS`` through

* each FUSE tool of ``--tools`` (metafs, s3fs, rclone), fresh mount where the
  workload says "cold";
* ``tmpfs``: a copy of the same names in /dev/shm (the kernel + coreutils floor);
* ``bare``: the S3 requests the workload needs, sent directly with httpx
  (the server's own floor: e.g. the two LIST pages of a 2,000-key directory).

Each workload is a shell command run with the mountpoint as cwd, timed on a
pidfd; the server's request counts are reset before it and read after it, and
the daemon's peak RSS (VmHWM) is read after it.  A workload that passes its cap
(``--timeout``; a workload's own ``cap`` for metafs, bare and tmpfs where it
is longer) is killed and reported as "> cap".  Output: a table per server and
delay on stdout, OUT/results.json, OUT/benchmark.png (and --chart PATH),
OUT/benchmark.md (README tables; --markdown PATH too), daemon logs in OUT/logs/.
``--report OUT/results.json`` renders the table, tables and chart again from a
finished run without running anything.

    python scripts/bench.py [--server moto,rgw] [--delays 0,20] [--quick] [--million]
                            [--tools metafs,s3fs,rclone] [--only W1,W2] [--timeout 60]
                            [--metafs-code DIR] [--out bench-out] [--chart docs/benchmark.png]

Needs the ``bench`` extra (moto, boto3, matplotlib): ``bash scripts/setup.sh --bench``
(or ``pip install -e '.[bench]'``; ``--no-chart`` runs without matplotlib); it
stops at once with one line saying what is missing.
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
from collections.abc import Callable, Iterable
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

BUCKET = "bench"             # 2,000-key directory, 200 files with metadata, nested trees
BIG_BUCKET = "bench-100k"    # the 100,000-key directory, alone so it slows no other LIST
MILLION_BUCKET = "bench-1m"  # the 1,000,000-key directory (--million, RGW only)
REGION = "us-east-1"
MOTO_ACCESS_KEY = "AKIAMETAFSBENCHMARK0"
MOTO_SECRET_KEY = "metafs-benchmark-secret-key"  # moto does not check signatures
MOTO_ACCOUNT = "123456789012"  # moto's default account

SERVERS = {"moto": "moto S3", "rgw": "Ceph RGW"}  # --server choices and their labels
METAFS_CODE = REPO  # the metafs checkout mounts run (--metafs-code: compare two versions)
MOUNT_TIMEOUT = 30.0    # seconds until a mount must be live
REFERENCES = ("bare", "tmpfs")

# ---------------------------------------------------------------- dataset
D2K = [f"d2k/f{i:05d}" for i in range(2000)]
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


def flat(prefix: str, n: int) -> Callable[[], list[str]]:
    width = len(str(n - 1))
    return lambda: [f"{prefix}/f{i:0{width}d}" for i in range(n)]


# Key groups: name -> (bucket, keys, with user metadata).  A run loads only the
# groups its workloads read (Workload.needs), so `--only` on the small groups
# starts in seconds.
GROUPS: dict[str, tuple[str, Callable[[], list[str]], bool]] = {
    "d2k": (BUCKET, lambda: D2K, True),
    "m200": (BUCKET, lambda: M200, True),
    "tree": (BUCKET, lambda: TREE, True),
    "gtree": (BUCKET, lambda: GTREE, True),
    "d100k": (BIG_BUCKET, flat("d100k", 100_000), False),
    "d1m": (MILLION_BUCKET, flat("d1m", 1_000_000), False),
}


def user_metadata(i: int) -> dict[str, str]:
    return {"x-amz-meta-owner": ("alice", "bob")[i % 2],
            "x-amz-meta-project": "metafs-bench",
            "x-amz-meta-index": str(i)}


def dataset(groups: Iterable[str]) -> Dataset:
    """bucket -> [(key, size, metadata)] for the key groups named."""
    data: Dataset = {}
    for g in sorted(set(groups)):
        bucket, keys, with_meta = GROUPS[g]
        objs = data.setdefault(bucket, [])
        if with_meta:
            objs += [(k, (i * 37) % 1000, user_metadata(i)) for i, k in enumerate(keys())]
        else:
            objs += [(k, 0, {}) for k in keys()]  # empty: a memstore OSD keeps less per object
    return data


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
    needs: tuple[str, ...]  # the key groups (GROUPS) it reads
    bucket: str = BUCKET
    bare: tuple[Any, ...] | None = None  # ("list", bucket, prefix, delimiter) | ("head", bucket, keys)
    expect_out: int | None = None   # stdout lines a correct filesystem prints
    expect_err: int | None = 0      # stderr lines a correct filesystem prints (None: any)
    size: str = "base"   # "base"; "100k": skipped with --quick; "1m": only with --million
    servers: tuple[str, ...] = tuple(SERVERS)  # the servers it runs on
    cap: float | None = None  # seconds allowed to metafs, bare and tmpfs when more than --timeout
    rss: bool = False    # its rows show each daemon's peak RSS (VmHWM) after it


WORKLOADS = [
    Workload("ls_2k_cold", "ls -l 2k, cold", "ls -l d2k", fresh=True, needs=("d2k",),
             bare=("list", BUCKET, "d2k/", "/"), expect_out=2001),
    Workload("ls_2k_warm", "ls -l 2k, warm", "ls -l d2k", fresh=False, needs=("d2k",), expect_out=2001),
    Workload("stat_2k_warm", "stat 2k files, warm",
             "xargs -a {names}/d2k.txt stat --format=%s", fresh=False, needs=("d2k",), expect_out=2000),
    Workload("ls_100k_cold", "ls -l 100k, cold", "ls -l d100k", fresh=True, needs=("d100k",),
             bucket=BIG_BUCKET, bare=("list", BIG_BUCKET, "d100k/", "/"), expect_out=100_001,
             size="100k", rss=True),
    Workload("ls_100k_warm", "ls -l 100k, warm", "ls -l d100k", fresh=False, needs=("d100k",),
             bucket=BIG_BUCKET, expect_out=100_001, size="100k", rss=True),
    # ~1,000 LIST pages: minutes for metafs too, hence its longer cap.
    Workload("ls_1m_cold", "ls -l 1M, cold", "ls -l d1m", fresh=True, needs=("d1m",),
             bucket=MILLION_BUCKET, bare=("list", MILLION_BUCKET, "d1m/", "/"), expect_out=1_000_001,
             size="1m", servers=("rgw",), cap=900.0, rss=True),
    Workload("find_tree_cold", f"find tree ({len(TREE)} in {TREE_DIRS} dirs), cold",
             "find tree -type f", fresh=True, needs=("tree",),
             bare=("list", BUCKET, "tree/", None), expect_out=len(TREE)),
    Workload("du_tree_cold", "du -s tree, cold", "du -s tree", fresh=True, needs=("tree",),
             bare=("list", BUCKET, "tree/", None), expect_out=1),
    Workload("lsR_tree_cold", "ls -R tree, cold", "ls -R tree", fresh=True, needs=("tree",),
             bare=("list", BUCKET, "tree/", None)),
    Workload("getfattr_R_2k_cold", "getfattr -R -d 2k, cold", "getfattr -R -d gtree", fresh=True,
             needs=("gtree",), bare=("head", BUCKET, GTREE)),
    Workload("getfattr_10_cold", "getfattr -d 10 files, cold",
             "getfattr -d " + " ".join(M200[:10]), fresh=True, needs=("m200",),
             bare=("head", BUCKET, M200[:10])),
    Workload("getfattr_50_cold", "getfattr -d 50 files, cold",
             "getfattr -d " + " ".join(M200[:50]), fresh=True, needs=("m200",),
             bare=("head", BUCKET, M200[:50])),
    Workload("getfattr_200_cold", "getfattr -d x200, cold",
             'while read -r f; do getfattr -d "$f"; done < {names}/m200.txt', fresh=True,
             needs=("m200",), bare=("head", BUCKET, M200)),
    Workload("neg_200_first", "stat 200 missing, 1st",
             "xargs -a {names}/missing.txt stat --format=%s", fresh=True, needs=("d2k",),
             bare=("list", BUCKET, "d2k/", "/"), expect_out=0, expect_err=200),
    Workload("neg_200_again", "stat 200 missing, 2nd",
             "xargs -a {names}/missing.txt stat --format=%s", fresh=False, needs=("d2k",),
             expect_out=0, expect_err=200),
    Workload("deep_stat_cold", "stat a/b/c/d/file, cold", f"stat --format=%s {DEEP_KEY}",
             fresh=True, needs=("tree",), bare=("head", BUCKET, [DEEP_KEY]), expect_out=1),
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
def child_env(ctx: Context) -> dict[str, str]:
    """The environment of every child: the server's keys, no proxy, C locale, METAFS_CODE first."""
    env = dict(os.environ)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE",
              "AWS_SHARED_CREDENTIALS_FILE"):
        env.pop(k, None)
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_ACCESS_KEY_ID=ctx.access_key,
               AWS_SECRET_ACCESS_KEY=ctx.secret_key, AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION,
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", LC_ALL="C")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(METAFS_CODE), env.get("PYTHONPATH")]))
    return env


def metafs_command(url: str, bucket: str, mnt: str, ctx: Context) -> tuple[list[str], dict[str, str]]:
    return ([sys.executable, "-m", "metafs", "--endpoint-url", url, "--region", REGION,
             *ctx.metafs_args, "--foreground", bucket, mnt], child_env(ctx))


def s3fs_command(url: str, bucket: str, mnt: str, ctx: Context) -> tuple[list[str], dict[str, str]]:
    # Path-style requests to plain HTTP, keys from a 0600 passwd file, the server's region for SigV4.
    return (["s3fs", bucket, mnt, "-o", f"url={url}", "-o", "use_path_request_style",
             "-o", f"endpoint={REGION}", "-o", f"passwd_file={ctx.passwd_file}", "-o", "ro", "-f"],
            child_env(ctx))


def rclone_command(url: str, bucket: str, mnt: str, ctx: Context) -> tuple[list[str], dict[str, str]]:
    env = child_env(ctx)
    env.pop("AWS_CA_BUNDLE", None)  # Debian's rclone refuses to start an S3 remote with it set
    return (["rclone", "mount", f":s3:{bucket}", mnt, "--read-only", "--s3-provider", "Other",
             "--s3-endpoint", url, "--s3-region", REGION, "--s3-access-key-id", ctx.access_key,
             "--s3-secret-access-key", ctx.secret_key, "--s3-force-path-style"], env)


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
    """One server's run: where it is, its keys, and where the records go."""

    server: Any  # CountingS3Server (moto) or bench_rgw.RgwServer: url, delay, counts, reset
    kind: str    # "moto" | "rgw"
    url: str
    access_key: str
    secret_key: str
    work: Path
    tmpfs_root: Path
    names: Path
    passwd_file: Path
    out: Path
    timeout: float
    metafs_timeout: float
    records: list[Record]
    metafs_args: list[str] = dataclasses.field(default_factory=list)
    mount_count: int = 0

    def new_mountpoint(self, tool: str) -> str:
        self.mount_count += 1
        path = self.work / "mnt" / f"{self.kind}-{tool}-{self.mount_count}"
        path.mkdir(parents=True)
        return str(path)

    def cap(self, w: Workload, tool: str) -> float:
        """Seconds `tool` may take for `w` before it is killed: --timeout for the peers (their
        cells then read "> cap"), more for metafs and the references, whose figures the ratios need."""
        if tool in FUSE_TOOLS.keys() - {"metafs"}:
            return self.timeout
        return max(w.cap or 0.0, self.metafs_timeout, self.timeout)


def count_lines(path: Path) -> tuple[int, str]:
    """(number of lines, first line) of a file."""
    n, first = 0, ""
    with open(path, "rb") as f:
        first = f.readline().decode(errors="replace").rstrip("\n")
        f.seek(0)
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return n, first


def run_shell(ctx: Context, w: Workload, cwd: str, cap: float) -> Record:
    """Run one workload command; returns seconds, status, exit code and output line counts."""
    cmd = w.cmd.format(names=ctx.names)
    out, err = ctx.work / "stdout", ctx.work / "stderr"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen(["bash", "-c", cmd], cwd=cwd, env=child_env(ctx), stdin=subprocess.DEVNULL,
                             stdout=fo, stderr=fe, start_new_session=True)
        status = "ok"
        # Wait on a pidfd, which becomes readable the moment the shell exits:
        # Popen.wait(timeout=) polls with growing sleeps (0.5, 1, 2, 4, 8 ms...),
        # which would round a 9 ms command up to 15.5 ms.
        pidfd = os.pidfd_open(p.pid)
        try:
            if not select.select([pidfd], [], [], cap)[0]:
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
    if status == "timeout":
        rec["cap_s"] = cap
    problems = []
    if w.expect_out is not None and out_lines != w.expect_out:
        problems.append(f"{out_lines} stdout lines, expected {w.expect_out}")
    if w.expect_err is not None and err_lines != w.expect_err:
        problems.append(f"{err_lines} stderr lines, expected {w.expect_err}")
    if status == "ok" and problems:
        rec["check"] = "; ".join(problems)
    if status == "timeout" and w.expect_err is not None and err_lines > w.expect_err:
        rec["wrong_so_far"] = f"{err_lines} stderr lines before the cap, expected {w.expect_err}"
    return rec


def record(ctx: Context, delay: float, workload: str, tool: str, **fields: object) -> Record:
    rec: Record = {"server": ctx.kind, "delay_ms": delay, "workload": workload, "tool": tool, **fields}
    ctx.records.append(rec)
    t = rec.get("seconds")
    shown = fmt_seconds(t) if t is not None and rec.get("status", "ok") == "ok" else rec.get("status")
    if "rss_kb" in rec:
        shown = fmt_mb(rec["rss_kb"])
    if rec.get("vmhwm_kb") and workload in RSS_WORKLOADS:
        shown = f"{shown}, peak RSS {fmt_mb(rec['vmhwm_kb'])}"
    print(f"  [{ctx.kind} {delay:g} ms] {tool:7s} {workload:18s} {shown}", file=sys.stderr, flush=True)
    return rec


RSS_WORKLOADS = {w.name for w in WORKLOADS if w.rss}


def run_tool(ctx: Context, tool: str, delay: float, workloads: list[Workload]) -> float:
    """All workloads through one tool: a new mount for every `fresh` workload.  Returns seconds."""
    started = time.perf_counter()
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
        log = ctx.out / "logs" / f"{ctx.kind}-{tool}-{delay:g}ms-{group[0].name}.log"
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
                rec = run_shell(ctx, w, m.path, ctx.cap(w, tool))
                if m.proc is not None:  # the daemon's peak so far: this workload's, on a fresh mount
                    rec["vmhwm_kb"] = vmhwm_kb(m.proc.pid)
                record(ctx, delay, w.name, tool, **rec)
                if rec["status"] == "timeout":
                    broken = f"{w.name} passed its cap on this mount"
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
    return time.perf_counter() - started


BARE = str(Path(__file__).with_name("bench_bare.py"))


# "bare": the workload's S3 requests sent directly (scripts/bench_bare.py, own process)
def run_bare(ctx: Context, delay: float, workloads: list[Workload]) -> float:
    started = time.perf_counter()
    for w in workloads:
        if not w.bare:
            continue
        ctx.server.reset()
        cap = ctx.cap(w, "bare")
        try:
            p = subprocess.run([sys.executable, BARE, ctx.url, json.dumps(w.bare)], env=child_env(ctx),
                               capture_output=True, text=True, timeout=cap)
        except subprocess.TimeoutExpired:
            record(ctx, delay, w.name, "bare", status="timeout", seconds=cap, cap_s=cap,
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
    return time.perf_counter() - started


def warm_up(ctx: Context, workloads: list[Workload]) -> None:
    """One untimed LIST and HEAD, so a server's lazy start-up is not billed to the first workload."""
    w = workloads[0]
    key = {BUCKET: D2K[0], BIG_BUCKET: "d100k/f000000", MILLION_BUCKET: "d1m/f0000000"}[w.bucket]
    for spec in (["list", w.bucket, key.split("/")[0] + "/", "/"], ["head", w.bucket, [key]]):
        subprocess.run([sys.executable, BARE, ctx.url, json.dumps(spec)], env=child_env(ctx),
                       capture_output=True, timeout=60)


# ----------------------------------------------------------------- output
Row = tuple[str, str, str]  # workload name, label, command


def fmt_seconds(t: float) -> str:
    return f"{t * 1000:.1f} ms" if t < 1 else f"{t:.2f} s"


def fmt_mb(kb: int) -> str:
    return f"{kb / 1024:.0f} MB"


def find(records: list[Record], server: str, delay: float, workload: str, tool: str) -> Record | None:
    for r in records:
        if (r.get("server", "moto") == server and r["delay_ms"] == delay and r["workload"] == workload
                and r["tool"] == tool):
            return r
    return None


def cell(r: Record) -> str:
    status: str = r["status"]
    if status == "timeout":
        return f"> {r.get('cap_s', r['seconds']):g} s (cap)"
    if status in ("error", "skipped"):
        return status
    if "rss_kb" in r:
        return fmt_mb(r["rss_kb"])
    return fmt_seconds(r["seconds"])


def value(r: Record | None) -> float | None:
    if r is None or r["status"] not in ("ok", "timeout"):
        return None
    v: float | None = r.get("rss_kb", r.get("seconds"))
    return v


def correct(r: Record | None) -> bool:
    """Finished, and printed what a correct filesystem prints (a ratio means something)."""
    return r is not None and r["status"] == "ok" and not r.get("check")


def ratios(records: list[Record], server: str, delay: float, name: str, tools: list[str]
           ) -> list[tuple[str, str]]:
    """[(label, value)]: metafs/bare (how far from the server's limit), then peer/metafs per peer
    (how many times longer the peer took; "> x" when the peer hit its cap)."""
    m_rec = find(records, server, delay, name, "metafs")
    m = value(m_rec)
    out: list[tuple[str, str]] = []
    if not correct(m_rec) or not m:
        return out
    b_rec = find(records, server, delay, name, "bare")
    b = value(b_rec)
    if correct(b_rec) and b:
        out.append(("metafs/bare", f"{m / b:.3g}"))
    for peer in [t for t in tools if t != "metafs"]:
        p_rec = find(records, server, delay, name, peer)
        p = value(p_rec)
        if p_rec is None or not p:
            continue
        if p_rec["status"] == "timeout" and p_rec.get("wrong_so_far"):
            out.append((f"{peer}/metafs", "wrong output"))
        elif p_rec["status"] == "timeout":
            out.append((f"{peer}/metafs", f"> {p / m:.3g}"))
        elif correct(p_rec):
            out.append((f"{peer}/metafs", f"{p / m:.3g}"))
        else:
            out.append((f"{peer}/metafs", "wrong output"))
    return out


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
    if r.get("vmhwm_kb") and r["workload"] in RSS_WORKLOADS:
        parts.insert(0, f"peak RSS {fmt_mb(r['vmhwm_kb'])}")
    if r.get("check"):
        parts.append("CHECK: " + r["check"])
    if r["err_first"]:
        parts.append(repr(r["err_first"][:70]))
    if r["status"] == "timeout":
        parts.insert(0, "killed; requests so far")
    return ", ".join(parts)


EXTRA_ROWS: list[Row] = [
    (MOUNT_ROW, "mount (to live)", "start of mount command -> os.path.ismount"),
    (RSS_ROW, "peak RSS (VmHWM)", "daemon's /proc/PID/status VmHWM before unmount, max over mounts")]


def table(records: list[Record], server: str, delay: float, tools: list[str], rows: list[Row]) -> str:
    lines = [f"=== {SERVERS[server]}, round trip {delay:g} ms (added to every S3 request) ===",
             f"{'workload / tool':24s} {'wall':>16s} {'LIST':>6s} {'HEAD':>7s} {'HEAD_COND':>9s} "
             f"{'other':>6s}  note"]
    for name, label, cmd in rows + EXTRA_ROWS:
        if not any(find(records, server, delay, name, t) for t in list(REFERENCES) + tools):
            continue
        lines.append(f"{label}   [{cmd}]")
        for tool in list(REFERENCES) + tools:
            r = find(records, server, delay, name, tool)
            if r is None:
                continue
            req = r.get("requests") or {}
            other = sum(v for k, v in req.items() if k not in ("LIST", "HEAD", "HEAD_COND"))
            counts = (f"{req.get('LIST', 0):6d} {req.get('HEAD', 0):7d} {req.get('HEAD_COND', 0):9d} "
                      f"{other:6d}" if req else " " * 31)
            lines.append(f"  {tool:22s} {cell(r):>16s} {counts}  {note(r)}")
        rs = ratios(records, server, delay, name, tools)
        if rs:
            lines.append("  ratio: " + "   ".join(f"{k} {v}" for k, v in rs))
    return "\n".join(lines)


def md_requests(r: Record) -> str:
    """LIST/HEAD (conditional HEADs counted with HEAD), "+n" other requests."""
    req = r.get("requests") or {}
    if not req:
        return ""
    head = req.get("HEAD", 0) + req.get("HEAD_COND", 0)
    other = sum(v for k, v in req.items() if k not in ("LIST", "HEAD", "HEAD_COND"))
    return f" ({req.get('LIST', 0)}/{head}{f' +{other}' if other else ''})"


NONE = "\N{EN DASH}"  # no figure: not run, or no ratio to take


def md_cell(r: Record | None) -> str:
    if r is None:
        return NONE
    text = cell(r)
    if r["status"] in ("ok", "timeout") and "rss_kb" not in r and r["tool"] != "tmpfs":
        text += md_requests(r)
        if r.get("vmhwm_kb") and r["workload"] in RSS_WORKLOADS:
            text += f", {fmt_mb(r['vmhwm_kb'])}"
    if (r["status"] == "ok" and r.get("check")) or r.get("wrong_so_far"):
        text += " ✗"
    return text


def markdown(records: list[Record], servers: list[str], delays: list[float], tools: list[str],
             rows: list[Row]) -> str:
    """One README table per server: every workload at every delay, each tool, and the ratios."""
    peers = [t for t in tools if t != "metafs"]
    cols = ["bare", "tmpfs", *tools]
    heads = ["workload", "delay", "bare S3", "tmpfs", *tools, "metafs/bare", *(f"{p}/metafs" for p in peers)]
    out: list[str] = []
    for server in servers:
        out += [f"{SERVERS[server]} (requests as LIST/HEAD, +other kinds; ✗ = wrong output, "
                "e.g. no xattrs):", "",
                "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
        for name, label, _ in rows + EXTRA_ROWS:
            for delay in delays:
                recs = [find(records, server, delay, name, t) for t in cols]
                if not any(recs):
                    continue
                rs = dict(ratios(records, server, delay, name, tools))
                cells = [f"`{label}`" if name not in (MOUNT_ROW, RSS_ROW) else label, f"{delay:g} ms",
                         *(md_cell(r) for r in recs), rs.get("metafs/bare", NONE),
                         *(rs.get(f"{p}/metafs", NONE) for p in peers)]
                out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


COLORS = {"bare": "#999999", "tmpfs": "#cccccc", "metafs": "#1f77b4", "s3fs": "#d62728",
          "rclone": "#2ca02c"}


def chart(records: list[Record], servers: list[str], delays: list[float], tools: list[str],
          rows: list[Row], paths: list[Path]) -> None:
    """One panel per server and delay: wall time per workload and tool, log scale."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = rows + [EXTRA_ROWS[0]]
    series = list(REFERENCES) + tools
    width = 0.84 / len(series)
    panels = [(s, d) for s in servers for d in delays
              if any(r.get("server", "moto") == s and r["delay_ms"] == d for r in records)]
    fig, axes = plt.subplots(len(panels), 1, squeeze=False,
                             figsize=(max(10.0, 1.1 * len(rows) + 2), 4.4 * len(panels)))
    for ax, (server, delay) in zip(axes[:, 0], panels, strict=True):
        labelled: set[str] = set()
        heights: list[float] = []
        for j, tool in enumerate(series):
            for i, (name, _, _) in enumerate(rows):
                r = find(records, server, delay, name, tool)
                x = i + (j - (len(series) - 1) / 2) * width
                if r is None:
                    continue
                if r["status"] not in ("ok", "timeout"):  # error / skipped: a mark, no bar
                    ax.text(x, 0.02, r["status"], transform=ax.get_xaxis_transform(),
                            ha="center", va="bottom", fontsize=6, rotation=90, color="dimgray")
                    continue
                h = max(r["seconds"], 1e-4)
                heights.append(h)
                wrong = r["status"] == "ok" and bool(r.get("check"))
                ax.bar(x, h, width, color=COLORS.get(tool, "#9467bd"),
                       hatch="//" if r["status"] == "timeout" else ("xx" if wrong else None),
                       edgecolor="black", linewidth=0.3, label=None if tool in labelled else tool)
                labelled.add(tool)
                if r["status"] == "timeout":
                    ax.text(x, h * 1.1, f">{r.get('cap_s', h):.0f}s", ha="center", va="bottom",
                            fontsize=6, rotation=90)
        if labelled:
            ax.legend(fontsize=8, ncol=len(series), loc="upper left")
        ax.set_yscale("log")
        if heights:  # room for the legend above the tallest bar
            ax.set_ylim(min(heights) / 2, max(heights) * 12)
        ax.set_ylabel("wall time (s, log)")
        ax.set_title(f"{SERVERS[server]}, {delay:g} ms per request "
                     "(hatched //: stopped at the cap; xx: wrong output, e.g. no xattrs)", fontsize=10)
        ax.set_xticks(range(len(rows)), [label for _, label, _ in rows], rotation=25, ha="right",
                      fontsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)
    fig.suptitle("metafs vs s3fs vs rclone mount: wall time per workload", fontsize=12)
    fig.tight_layout()
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------- main
def require_optional_deps(servers: list[str], with_chart: bool) -> None:
    """Exit with one line if a module of the ``bench`` extra or a program the run needs is missing,
    so that nothing surfaces only after a 15-minute run."""
    needed = ["moto", "boto3"] + (["matplotlib"] if with_chart else [])
    missing = [n for n in needed if importlib.util.find_spec(n) is None]
    if missing:
        sys.exit(f"bench: missing {', '.join(missing)}; install the benchmark extra: "
                 f"bash scripts/setup.sh --bench (or pip install -e '.[bench]')")
    if "rgw" in servers:
        from metafs.devrgw import PACKAGES, missing_binaries
        if missing_binaries():
            sys.exit(f"bench: --server rgw needs Ceph ({', '.join(missing_binaries())} missing): "
                     f"apt-get install -y {PACKAGES}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--server", default="moto",
                   help="comma-separated S3 servers, run one after the other: moto (default), "
                        "rgw (a one-node Ceph RGW, metafs/devrgw.py), or both: moto,rgw")
    p.add_argument("--delays", default="0,20", help="per-request delays in ms (default 0,20)")
    p.add_argument("--quick", action="store_true", help="skip the 100,000-object workloads")
    p.add_argument("--million", action="store_true",
                   help="add ls -l of 1,000,000 objects in one prefix (RGW only; ~20 min of seeding)")
    p.add_argument("--tools", default="metafs,s3fs,rclone",
                   help="FUSE tools to run (bare and tmpfs always run)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="cap per workload for s3fs and rclone, seconds (default 30)")
    p.add_argument("--metafs-timeout", type=float, default=300.0,
                   help="cap per workload for metafs, bare and tmpfs, seconds (default 300; "
                        "ls -l of 1M: 900)")
    p.add_argument("--only", default="",
                   help="comma-separated workload names to run (default: all)")
    p.add_argument("--out", default=str(REPO / "bench-out"), help="output directory")
    p.add_argument("--chart", help="also write the chart here (e.g. docs/benchmark.png)")
    p.add_argument("--markdown", help="also write the README tables here")
    p.add_argument("--no-chart", action="store_true", help="no chart (runs without matplotlib)")
    p.add_argument("--no-tmpfs", action="store_true",
                   help="no tmpfs reference (its copy of a million names takes minutes and ~1 GB)")
    p.add_argument("--metafs-code", default=str(REPO),
                   help="the metafs checkout to mount with (default: this one; compare versions)")
    p.add_argument("--metafs-args", default="",
                   help="extra metafs options, e.g. '--metadata-ttl 600' (default: none)")
    p.add_argument("--report", metavar="RESULTS_JSON",
                   help="run nothing: render the tables and chart of a finished run again")
    return p.parse_args(argv)


def select_workloads(args: argparse.Namespace) -> list[Workload]:
    sizes = {"base"} | (set() if args.quick else {"100k"}) | ({"1m"} if args.million else set())
    workloads = [w for w in WORKLOADS if w.size in sizes]
    if args.only:
        only = {n.strip() for n in args.only.split(",") if n.strip()}
        if only - {w.name for w in WORKLOADS}:
            sys.exit(f"unknown workload(s) {sorted(only - {w.name for w in WORKLOADS})}; "
                     f"choose from {[w.name for w in WORKLOADS]}")
        workloads = [w for w in WORKLOADS if w.name in only]
    return workloads


def write_outputs(results: dict[str, Any], out: Path, chart_path: str | None, md_path: str | None,
                  with_chart: bool) -> list[Path]:
    """benchmark.md (and --markdown), benchmark.png (and --chart) from a results dict."""
    rows: list[Row] = [(n, w["label"], w["cmd"]) for n, w in results["workloads"].items()]
    args = (results["records"], results["servers"], results["delays_ms"], results["tools"], rows)
    written = [out / "benchmark.md"] + ([Path(md_path)] if md_path else [])
    text = markdown(*args)
    for path in written:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if with_chart and results["records"]:
        pngs = [out / "benchmark.png"] + ([Path(chart_path)] if chart_path else [])
        chart(*args, pngs)
        written += pngs
    return written


def run_server(kind: str, args: argparse.Namespace, workloads: list[Workload], delays: list[float],
               tools: list[str], results: dict[str, Any], work: Path, tmpfs_root: Path,
               save: Callable[[], None]) -> None:
    """Start one server, fill it, run every delay, stop it (whatever happens)."""
    t0 = time.perf_counter()
    timing: dict[str, Any] = results["timings_s"].setdefault(kind, {})
    if kind == "rgw":
        import bench_rgw
        big = any(w.size == "1m" for w in workloads)
        server: Any = bench_rgw.RgwServer(store_bytes=(8 if big else 2) << 30).start()
        access_key, secret_key = server.access_key, server.secret_key
        results["servers_detail"][kind] = f"Ceph RGW (metafs.devrgw) behind a counting proxy at {server.url}"
    else:
        server = CountingS3Server().start()
        access_key, secret_key = MOTO_ACCESS_KEY, MOTO_SECRET_KEY
        results["servers_detail"][kind] = f"metafs.devserver.CountingS3Server (moto) at {server.url}"
    ctx = Context(server, kind, server.url, access_key, secret_key, work, tmpfs_root, work / "names",
                  work / f"passwd-s3fs-{kind}", Path(args.out), args.timeout, args.metafs_timeout,
                  results["records"], shlex.split(args.metafs_args))
    try:
        data = dataset(g for w in workloads for g in w.needs)
        if kind == "rgw":
            bench_rgw.load(server.rgw, data, REGION)
        else:
            load_into_moto(data)
        ctx.passwd_file.write_text(f"{access_key}:{secret_key}\n")
        ctx.passwd_file.chmod(0o600)
        timing["start_and_fill"] = round(time.perf_counter() - t0, 1)
        print(f"{SERVERS[kind]} at {server.url}: objects {({b: len(o) for b, o in data.items()})}; "
              f"started and filled in {timing['start_and_fill']} s")
        for tool in tools:
            argv_, env = FUSE_TOOLS[tool](server.url, BUCKET, "MOUNTPOINT", ctx)
            shown = shlex.join(argv_).replace(secret_key, "$SECRET")  # the secret key stays off logs
            results["commands"][f"{kind} {tool}"] = shown
            extra = " (env: AWS_CA_BUNDLE removed)" if "AWS_CA_BUNDLE" not in env else ""
            print(f"  {tool}: {shown}{extra}")
        print(flush=True)

        warm_up(ctx, workloads)
        for delay in delays:
            server.delay = delay / 1000
            part = timing.setdefault(f"{delay:g}ms", {})
            part["bare"] = round(run_bare(ctx, delay, workloads), 1)
            if not args.no_tmpfs:
                part["tmpfs"] = round(run_tool(ctx, "tmpfs", delay, workloads), 1)
            for tool in tools:
                part[tool] = round(run_tool(ctx, tool, delay, workloads), 1)
                save()
            server.delay = 0
            rows = [(w.name, w.label, w.cmd) for w in workloads]
            print(table(ctx.records, kind, delay, tools, rows) + "\n", flush=True)
    finally:
        for m in list(ACTIVE):
            unmount(m)
        server.stop()
        timing["total"] = round(time.perf_counter() - t0, 1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with_chart = not args.no_chart
    if args.report:
        done: dict[str, Any] = json.loads(Path(args.report).read_text())
        done.setdefault("servers", ["moto"])
        by_name = {w.name: w for w in WORKLOADS}
        for r in done["records"]:  # runs recorded before "wrong_so_far" existed
            w = by_name.get(r["workload"])
            if (r["status"] == "timeout" and w is not None and w.expect_err is not None
                    and r.get("err_lines", 0) > w.expect_err):
                r["wrong_so_far"] = f"{r['err_lines']} stderr lines before the cap"
        written = write_outputs(done, Path(args.report).parent, args.chart, args.markdown, with_chart)
        for server in done["servers"]:
            for delay in done["delays_ms"]:
                rows = [(n, w["label"], w["cmd"]) for n, w in done["workloads"].items()]
                print(table(done["records"], server, delay, done["tools"], rows) + "\n")
        print("wrote " + ", ".join(map(str, written)))
        return 0
    servers = [s.strip() for s in args.server.split(",") if s.strip()]
    if not servers or set(servers) - SERVERS.keys():
        sys.exit(f"--server: choose from {list(SERVERS)} (comma-separated)")
    require_optional_deps(servers, with_chart)
    delays = [float(d) for d in args.delays.split(",") if d.strip()]
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in tools if t not in FUSE_TOOLS]
    if unknown:
        sys.exit(f"unknown tool(s) {unknown}; choose from {list(FUSE_TOOLS)}")
    missing = [t for t in tools if t != "metafs" and shutil.which(t) is None]
    if missing:
        sys.exit(f"bench: {', '.join(missing)} not installed: apt-get install -y {' '.join(missing)} "
                 f"(or bash scripts/setup.sh --bench), or leave it out of --tools")
    workloads = select_workloads(args)
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
    git = subprocess.run(["git", "-C", str(METAFS_CODE), "describe", "--always", "--dirty"],
                         capture_output=True, text=True)
    # The package the mounts import, as they import it (PYTHONPATH, cwd): proves --metafs-code took.
    module = subprocess.run([sys.executable, "-c", "import metafs; print(metafs.__file__)"],
                            cwd=METAFS_CODE, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                filter(None, [str(METAFS_CODE), os.environ.get("PYTHONPATH")]))})
    results: dict[str, Any] = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "metafs_code": f"{METAFS_CODE} ({git.stdout.strip() or 'not a git checkout'})",
        "metafs_module": module.stdout.strip() or module.stderr.strip()[-200:],
        "load_average_at_start": os.getloadavg(),
        "servers": servers, "quick": args.quick, "million": args.million, "delays_ms": delays,
        "tools": tools, "timeout_s": args.timeout, "metafs_timeout_s": args.metafs_timeout,
        "servers_detail": {}, "commands": {},
        "workloads": {}, "timings_s": {}, "records": [],
    }
    for w in workloads:
        results["workloads"][w.name] = {"label": w.label, "cmd": w.cmd, "bucket": w.bucket,
                                        "fresh_mount": w.fresh, "servers": list(w.servers),
                                        "bare": bench_bare.describe(list(w.bare)) if w.bare else None}
    exit_code = 0

    def save() -> None:
        results["duration_s"] = round(time.perf_counter() - started, 1)
        results["load_average_at_end"] = os.getloadavg()
        (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")

    try:
        t0 = time.perf_counter()
        needed = {g for w in workloads if set(w.servers) & set(servers) for g in w.needs}
        if not args.no_tmpfs:
            build_tmpfs_copy(dataset(needed), tmpfs_root)
        write_name_lists(work / "names")
        results["timings_s"]["tmpfs_copy"] = round(time.perf_counter() - t0, 1)
        for kind in servers:
            mine = [w for w in workloads if kind in w.servers]
            if mine:
                run_server(kind, args, mine, delays, tools, results, work, tmpfs_root, save)
    except KeyboardInterrupt:
        print("\ninterrupted; unmounting", file=sys.stderr)
        results["interrupted"] = True
        exit_code = 130
    finally:
        for m in list(ACTIVE):
            unmount(m)
        shutil.rmtree(tmpfs_root, ignore_errors=True)
        if not any(is_mounted(str(p)) for p in (work / "mnt").glob("*")):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"warning: something is still mounted under {work}; left it", file=sys.stderr)
        save()

    written = write_outputs(results, out, args.chart, args.markdown, with_chart)
    print("time per part (s): " + json.dumps(results["timings_s"]))
    print(f"total {time.perf_counter() - started:.0f} s (load average {os.getloadavg()[0]:.1f}); "
          f"wrote {out / 'results.json'}, " + ", ".join(str(p) for p in written))
    return exit_code


if __name__ == "__main__":
    sys.exit(main())

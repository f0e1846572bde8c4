#!/usr/bin/env python3
"""Soak: many processes of mixed metadata commands on one metafs mount, with faults on and off.

One command starts the counting moto S3 server on 127.0.0.1
(``metafs/devserver.py``), fills a bucket with a sample tree (a few
directories, a few thousand objects with user metadata), mounts it with
metafs, and runs ``--procs`` worker processes for ``--seconds``.  Each
worker loops over random ``ls -l DIR`` / ``stat FILE`` / ``getfattr -d
FILE`` / ``find DIR`` commands and checks each answer against the tree
(entry counts, sizes, the ``user.seq`` value).  Meanwhile the server's
fault injection is switched on and off: ``--fault-off`` seconds clean (the
first period is the warm-up), then ``--fault-on`` seconds of the next fault
of ``--faults`` (``500``: every answer an InternalError; ``hang``: no answer
until the fault ends; ``reset``: the connection reset without an answer;
``delay``: 300 ms added to every request, which must cause no error).  A
fault starts only if a clean period still follows it.

It prints operations by kind (ok, EIO, unexpected failures, latency),
the unexpected failures themselves, requests by kind as the server counted
them, metafs's RSS over time (VmRSS from /proc/PID/status every
``--rss-every`` seconds) and a verdict line, and exits 0 when the verdict is
PASS:

* no unexpected failure: every command either succeeds with the right
  answer, or fails with "Input/output error" while a failing fault is on (or
  within ``--grace`` seconds after it ends, for a request sent under it).
  A wrong answer, another error, a command past ``--command-timeout``, or
  EIO outside a fault is unexpected;
* metafs is alive at the end, logged no traceback, and unmounts with status 0;
* RSS is flat after warm-up: the maximum of the last third of the samples is
  within ``--rss-tolerance`` percent of the maximum of the middle third.

It stops by itself after ``--seconds`` (plus the time to stop the workers);
Ctrl-C or SIGTERM stops it early, and either way the workers (with their
commands), the mount, metafs and the server are taken down and the work
directory removed (``--keep`` keeps it: logs and the workers' records).
Everything talks to 127.0.0.1 only.  Needs root (or a setuid fusermount3),
``/dev/fuse``, ``attr`` (getfattr) and the ``server`` extra (moto)::

    python scripts/soak.py --procs 16 --seconds 300
    python scripts/soak.py --procs 4 --seconds 40 --fault-on 5 --fault-off 5   # a quick check

Not run by CI (it takes minutes and loads the machine).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # before moto/botocore are imported

from metafs.devserver import KINDS, CountingS3Server  # noqa: E402  (needs moto only to start a server)

BUCKET = "soak"
REGION = "us-east-1"
ACCESS_KEY = "AKIAMETAFSSOAKTEST00"
SECRET_KEY = "metafs-soak-secret-key"  # moto does not check signatures
MOTO_ACCOUNT = "123456789012"  # moto's default account
MOUNT_TIMEOUT = 30.0
DELAY_FAULT = 0.3  # seconds added to every request by the "delay" fault
# Faults that make requests fail (EIO is then expected); "delay" only slows them.
FAILING = frozenset({"500", "hang", "reset"})
OPS = (("ls -l", 25), ("stat", 35), ("getfattr -d", 30), ("find", 10))  # kind, weight


# ------------------------------------------------------------------------------ the tree
@dataclasses.dataclass
class Plan:
    """The sample tree, and what a correct mount shows of it (what workers check)."""

    files: dict[str, tuple[int, int]]  # path -> (size, seq)
    dirs: dict[str, int]  # path -> number of entries (`ls -l` prints one more line: "total")
    finds: dict[str, int]  # path -> lines `find PATH` prints

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @staticmethod
    def from_json(text: str) -> Plan:
        d = json.loads(text)
        return Plan({k: (v[0], v[1]) for k, v in d["files"].items()}, d["dirs"], d["finds"])


def make_plan(objects: int, tops: int = 4, subs: int = 5) -> Plan:
    """``tops`` directories of ``subs`` subdirectories, objects spread over them, a few at the root."""
    leaves = [f"t{a}/s{b}" for a in range(tops) for b in range(subs)]
    files = {("" if i < 5 else leaves[i % len(leaves)] + "/") + f"f{i:05d}": ((i * 37) % 2048, i)
             for i in range(objects)}
    subdirs = {"/".join(p.split("/")[:d]) for p in files for d in range(1, p.count("/") + 1)}
    dirs: collections.Counter[str] = collections.Counter({d: 0 for d in subdirs | {"."}})
    below: collections.Counter[str] = collections.Counter()
    for e in set(files) | subdirs:
        parts = e.split("/")
        dirs["/".join(parts[:-1]) or "."] += 1  # an entry of its parent
        for d in range(1, len(parts)):  # printed by `find` of each ancestor below the root
            below["/".join(parts[:d])] += 1
    return Plan(files, dict(dirs), {d: below[d] + 1 for d in subdirs})  # `find D` prints D too


def load_into_moto(plan: Plan) -> None:
    """Create the bucket and objects in moto's in-process backend (seconds, not minutes)."""
    from moto.s3.models import s3_backends

    backend = s3_backends[MOTO_ACCOUNT]["global"]
    backend.create_bucket(BUCKET, REGION)
    for key, (size, seq) in plan.files.items():
        obj = backend.put_object(BUCKET, key, b"s" * size, disable_notification=True)
        obj.set_metadata({"Content-Type": "text/plain", "x-amz-meta-seq": str(seq),
                          "x-amz-meta-owner": ("alice", "bob")[seq % 2]})


# ------------------------------------------------------------------------------ workers
def worker(mnt: str, plan: Plan, until: float, out: Path, seed: int, command_timeout: float) -> None:
    """Run random commands in ``mnt`` until ``until`` (time.monotonic(), system-wide on Linux);
    one JSON line per command in ``out``: kind, start, end, outcome, detail."""
    rng = random.Random(seed)
    files, dirs = sorted(plan.files), sorted(plan.dirs)
    finds = sorted(plan.finds)
    kinds = [k for k, _ in OPS]
    weights = [w for _, w in OPS]
    env = dict(os.environ, LC_ALL="C")
    with open(out, "w", buffering=1) as f:
        while time.monotonic() < until:
            kind = rng.choices(kinds, weights)[0]
            target = rng.choice(dirs if kind == "ls -l" else finds if kind == "find" else files)
            t0 = time.monotonic()
            try:
                r = subprocess.run([*kind.split(), "--", target] if kind != "find" else ["find", target],
                                   cwd=mnt, env=env, capture_output=True, text=True,
                                   errors="replace", timeout=command_timeout)
                outcome, detail = judge(kind, target, r, plan)
            except subprocess.TimeoutExpired:
                outcome, detail = "timeout", f"no answer within {command_timeout:g} s"
            f.write(json.dumps({"k": kind, "t0": t0, "t1": time.monotonic(), "o": outcome,
                                "d": f"{kind} {target}: {detail}"[:300] if detail else ""}) + "\n")


def judge(kind: str, target: str, r: subprocess.CompletedProcess[str], plan: Plan) -> tuple[str, str]:
    """"ok", "eio" (failed, every error an EIO) or "bad" (anything else), and why."""
    errs = [ln for ln in r.stderr.splitlines() if ln.strip()]
    if r.returncode != 0 or errs:
        if errs and all("Input/output error" in ln for ln in errs):
            return "eio", errs[0]
        return "bad", f"exit {r.returncode}: {' | '.join(errs[:3]) or '(no message)'}"
    out = r.stdout
    if kind == "ls -l":
        want, got = plan.dirs[target] + 1, len(out.splitlines())
        return ("ok", "") if got == want else ("bad", f"{got} lines, expected {want}")
    if kind == "find":
        want, got = plan.finds[target], len(out.splitlines())
        return ("ok", "") if got == want else ("bad", f"{got} lines, expected {want}")
    size, seq = plan.files[target]
    if kind == "stat":
        return ("ok", "") if f"Size: {size}" in out else ("bad", f"size is not {size}: {out[:80]!r}")
    return ("ok", "") if f'user.seq="{seq}"' in out else ("bad", f'no user.seq="{seq}" in {out[:120]!r}')


# ------------------------------------------------------------------------------ the run
@dataclasses.dataclass
class Window:
    fault: str
    on: float  # time.monotonic()
    off: float | None = None


@dataclasses.dataclass
class Run:
    """What the main process keeps track of, and takes down at the end."""

    work: Path
    server: CountingS3Server | None = None
    metafs: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = dataclasses.field(default_factory=list)
    mnt: Path | None = None
    windows: list[Window] = dataclasses.field(default_factory=list)
    rss: list[tuple[float, int]] = dataclasses.field(default_factory=list)  # (monotonic, kB)
    metafs_exit: int | None = None


def child_env() -> dict[str, str]:
    """metafs's environment: the test keys, no proxy, nothing that reaches beyond loopback."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
               AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE="/nonexistent",
               AWS_SHARED_CREDENTIALS_FILE="/nonexistent", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1",
               PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def is_mounted(path: Path) -> bool:
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == str(path) for line in f)


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def set_fault(server: CountingS3Server, fault: str | None, hang_seconds: float) -> None:
    if fault == "delay":
        server.set_fault(None)
        server.delay = DELAY_FAULT
    else:
        server.delay = 0.0
        server.set_fault(fault, hang_seconds=hang_seconds)


def mount(run: Run, url: str, metafs_args: list[str]) -> None:
    run.mnt = run.work / "mnt"
    run.mnt.mkdir()
    argv = [sys.executable, "-m", "metafs", "--foreground", "--endpoint-url", url, "--region", REGION,
            *metafs_args, BUCKET, str(run.mnt)]
    print(f"metafs: {shlex.join(argv)}", flush=True)
    with open(run.work / "metafs.log", "ab") as log:
        run.metafs = subprocess.Popen(argv, env=child_env(), cwd=REPO, stdin=subprocess.DEVNULL,
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + MOUNT_TIMEOUT
    while not os.path.ismount(run.mnt):
        if run.metafs.poll() is not None:
            raise SystemExit(f"metafs exited with {run.metafs.returncode}: see {run.work / 'metafs.log'}")
        if time.monotonic() > deadline:
            raise SystemExit(f"no mount after {MOUNT_TIMEOUT:g} s")
        time.sleep(0.02)


def take_down(run: Run) -> None:
    """Workers (and their commands), the mount, metafs, the server: whatever exists, in that order."""
    if run.server is not None:
        set_fault(run.server, None, 0)  # releases hung requests, so commands in them can end
    for p in run.workers:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)  # its own session: the worker and its command
            except ProcessLookupError:
                pass
    for p in run.workers:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=10)
    if run.mnt is not None and is_mounted(run.mnt):
        r = subprocess.run(["fusermount3", "-u", str(run.mnt)], capture_output=True, timeout=30)
        if r.returncode != 0:
            subprocess.run(["fusermount3", "-uz", str(run.mnt)], capture_output=True, timeout=30)
    if run.metafs is not None:
        try:
            run.metafs_exit = run.metafs.wait(timeout=15)
        except subprocess.TimeoutExpired:
            run.metafs.terminate()
            try:
                run.metafs.wait(timeout=5)
            except subprocess.TimeoutExpired:
                run.metafs.kill()
                run.metafs.wait()
    if run.mnt is not None and is_mounted(run.mnt):  # daemon gone, kernel mount left behind
        subprocess.run(["fusermount3", "-uz", str(run.mnt)], capture_output=True, timeout=30)
    if run.server is not None:
        run.server.stop()
        run.server = None


def sample_rss(run: Run, every: float, stop: threading.Event) -> None:
    assert run.metafs is not None
    while not stop.is_set():
        kb = rss_kb(run.metafs.pid)
        if kb is not None:
            run.rss.append((time.monotonic(), kb))
        stop.wait(every)


def drive_faults(run: Run, args: argparse.Namespace, start: float, until: float) -> None:
    """Off for --fault-off (the first period is the warm-up), on for --fault-on, rotating faults.

    A fault starts only if a whole clean period still follows it, so the run
    ends showing that the mount recovered.
    """
    assert run.server is not None
    faults = [f for f in args.faults.split(",") if f]
    n = 0
    while True:
        off_until = min(until, time.monotonic() + args.fault_off)
        while time.monotonic() < off_until:
            time.sleep(min(0.5, max(0.0, off_until - time.monotonic())))
        if time.monotonic() + args.fault_on + args.fault_off > until or not faults:
            break
        fault = faults[n % len(faults)]
        n += 1
        on_until = time.monotonic() + args.fault_on
        w = Window(fault, time.monotonic())
        run.windows.append(w)
        set_fault(run.server, fault, hang_seconds=args.fault_on + 5)
        print(f"  [{w.on - start:6.1f} s] fault {fault} on", flush=True)
        while time.monotonic() < on_until:
            time.sleep(min(0.5, max(0.0, on_until - time.monotonic())))
        set_fault(run.server, None, 0)
        w.off = time.monotonic()
        print(f"  [{w.off - start:6.1f} s] fault {fault} off", flush=True)
    while time.monotonic() < until:
        time.sleep(min(0.5, max(0.0, until - time.monotonic())))


# ------------------------------------------------------------------------------ the report
def expected_eio(t0: float, t1: float, windows: list[Window], grace: float) -> bool:
    """Whether a command that ran in [t0, t1] may fail with EIO: it overlapped a failing fault."""
    return any(w.fault in FAILING and t0 <= (w.off or t1) + grace and t1 >= w.on for w in windows)


def ms(sorted_seconds: list[float], q: float) -> float:
    """The ``q`` quantile of sorted durations, in milliseconds (0 for none)."""
    if not sorted_seconds:
        return 0.0
    return 1000 * sorted_seconds[min(len(sorted_seconds) - 1, int(q * len(sorted_seconds)))]


def report(run: Run, args: argparse.Namespace, start: float, requests: dict[str, int]) -> bool:
    ops: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    times: dict[str, list[float]] = collections.defaultdict(list)
    per_window: list[collections.Counter[str]] = [collections.Counter() for _ in run.windows]
    unexpected: list[str] = []
    for path in sorted(run.work.glob("worker-*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # the last line of a worker stopped mid-write
            kind, outcome = rec["k"], rec["o"]
            times[kind].append(rec["t1"] - rec["t0"])
            for w, c in zip(run.windows, per_window, strict=True):
                if rec["t0"] <= (w.off or rec["t1"]) and rec["t1"] >= w.on:
                    c[outcome] += 1
                    c["slowest"] = max(c["slowest"], round(1000 * (rec["t1"] - rec["t0"])))
            if outcome == "eio" and not expected_eio(rec["t0"], rec["t1"], run.windows, args.grace):
                outcome = "unexpected EIO"
            if outcome not in ("ok", "eio"):
                unexpected.append(f"[{rec['t0'] - start:6.1f} s] {outcome}: {rec['d']}")
                outcome = "unexpected"
            ops[kind][outcome] += 1
    print("\noperations")
    print(f"  {'kind':12s} {'ok':>8s} {'EIO':>8s} {'unexpected':>11s} {'p50 ms':>8s} {'p99 ms':>8s} "
          f"{'max ms':>8s}")
    for kind, _ in OPS:
        c, t = ops[kind], sorted(times[kind])
        print(f"  {kind:12s} {c['ok']:8d} {c['eio']:8d} {c['unexpected']:11d} {ms(t, 0.5):8.0f} "
              f"{ms(t, 0.99):8.0f} {ms(t, 1.0):8.0f}")
    total = sum(sum(c.values()) for c in ops.values())
    print(f"  {'all':12s} {sum(c['ok'] for c in ops.values()):8d} {sum(c['eio'] for c in ops.values()):8d} "
          f"{len(unexpected):11d}   ({total} commands, {total / max(args.seconds, 1):.0f}/s)")
    print(f"\nunexpected failures: {len(unexpected)}")
    for u in unexpected[:20]:
        print(f"  {u}")
    if len(unexpected) > 20:
        print(f"  … and {len(unexpected) - 20} more")
    print("\nrequests (as the server counted them)")
    print("  " + "  ".join(f"{k} {requests.get(k, 0)}" for k in KINDS)
          + f"  total {sum(requests.values())}")
    print("\nfault windows (commands that overlapped each: ok / EIO / other, and the slowest)")
    for w, c in zip(run.windows, per_window, strict=True):
        other = sum(c.values()) - c["ok"] - c["eio"] - c["slowest"]
        print(f"  {w.fault:6s} {w.on - start:6.1f} s .. {(w.off or w.on) - start:6.1f} s   "
              f"{c['ok']:6d} ok {c['eio']:6d} EIO {other:4d} other   slowest {c['slowest']} ms")

    print(f"\nmetafs RSS (MB, every {args.rss_every:g} s)")
    samples = [(t - start, kb / 1024) for t, kb in run.rss]
    for i in range(0, len(samples), 8):
        print("  " + "  ".join(f"{t:5.0f} s {mb:6.1f}" for t, mb in samples[i:i + 8]))
    flat, rss_line = True, "RSS: too few samples"
    if len(samples) >= 6:
        third = len(samples) // 3
        middle = max(mb for _, mb in samples[third:2 * third])
        last = max(mb for _, mb in samples[2 * third:])
        growth = 100 * (last - middle) / middle
        flat = growth <= args.rss_tolerance
        rss_line = (f"RSS {'flat' if flat else 'GROWING'}: last third max {last:.1f} MB vs middle third "
                    f"{middle:.1f} MB ({growth:+.1f}% {'<=' if flat else '>'} {args.rss_tolerance:g}%)")
    log = (run.work / "metafs.log").read_text(errors="replace")
    tracebacks = log.count("Traceback")
    warnings = sum(1 for ln in log.splitlines() if " WARNING " in ln)
    print(f"\nmetafs log: {warnings} warnings, {tracebacks} tracebacks; exit status {run.metafs_exit}")
    ok = not unexpected and flat and tracebacks == 0 and run.metafs_exit == 0 and total > 0
    problems = [f"{len(unexpected)} unexpected failures"] if unexpected else ["0 unexpected failures"]
    if tracebacks:
        problems.append(f"{tracebacks} tracebacks in the log")
    if run.metafs_exit != 0:
        problems.append(f"metafs exit status {run.metafs_exit}")
    print(f"\nVERDICT: {'PASS' if ok else 'FAIL'}: {'; '.join(problems)}; {rss_line}")
    return ok


# ------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--procs", type=int, default=16, help="worker processes (default 16)")
    p.add_argument("--seconds", type=float, default=300, help="length of the run (default 300)")
    p.add_argument("--objects", type=int, default=3000, help="objects in the sample tree (default 3000)")
    p.add_argument("--faults", default="500,hang,reset,delay",
                   help="faults to rotate through, comma-separated (default 500,hang,reset,delay)")
    p.add_argument("--fault-on", type=float, default=20, help="seconds each fault lasts (default 20)")
    p.add_argument("--fault-off", type=float, default=40,
                   help="seconds without a fault between two (default 40; the first is the warm-up)")
    p.add_argument("--grace", type=float, default=10,
                   help="seconds after a fault ends during which EIO is still expected (default 10)")
    p.add_argument("--command-timeout", type=float, default=60,
                   help="a command slower than this is an unexpected failure (default 60)")
    p.add_argument("--rss-every", type=float, default=5, help="RSS sampling period in seconds (default 5)")
    p.add_argument("--rss-tolerance", type=float, default=10,
                   help="allowed growth of the last third's RSS over the middle third's, in %% (default 10)")
    p.add_argument("--metafs-args", default="--metadata-ttl 10 --request-timeout 2 --retries 1",
                   help="metafs options (default: '--metadata-ttl 10 --request-timeout 2 --retries 1')")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, records)")
    p.add_argument("--worker", nargs=5, metavar=("MNT", "PLAN", "UNTIL", "OUT", "SEED"),
                   help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        mnt, plan, until, out, seed = args.worker
        worker(mnt, Plan.from_json(Path(plan).read_text()), float(until), Path(out), int(seed),
               args.command_timeout)
        return 0
    for tool in ("fusermount3", "getfattr"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install fuse3 attr)")
    if not os.path.exists("/dev/fuse"):
        sys.exit("/dev/fuse is missing")

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_sigterm)

    run = Run(Path(tempfile.mkdtemp(prefix="metafs-soak-")))
    stop_sampling = threading.Event()
    ok = False
    try:
        plan = make_plan(args.objects)
        run.server = CountingS3Server("127.0.0.1", 0).start()
        load_into_moto(plan)
        (run.work / "plan.json").write_text(plan.to_json())
        print(f"soak: {args.procs} processes x {args.seconds:g} s on {len(plan.files)} objects in "
              f"{len(plan.dirs)} directories; faults {args.faults}, {args.fault_on:g} s on / "
              f"{args.fault_off:g} s off; server {run.server.url}; work {run.work}", flush=True)
        mount(run, run.server.url, shlex.split(args.metafs_args))
        run.server.reset()
        sampler = threading.Thread(target=sample_rss, args=(run, args.rss_every, stop_sampling),
                                   daemon=True)
        sampler.start()
        start = time.monotonic()
        until = start + args.seconds
        assert run.mnt is not None
        for i in range(args.procs):
            out = run.work / f"worker-{i:03d}.jsonl"
            argv = [sys.executable, __file__, "--worker", str(run.mnt), str(run.work / "plan.json"),
                    repr(until), str(out), str(i), "--command-timeout", str(args.command_timeout)]
            run.workers.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True))
        print(f"  [{0.0:6.1f} s] {args.procs} workers started; faults off (warm-up)", flush=True)
        drive_faults(run, args, start, until)
        for p in run.workers:  # each stops after its current command
            try:
                p.wait(timeout=args.command_timeout + 10)
            except subprocess.TimeoutExpired:
                pass
        stop_sampling.set()
        requests = run.server.counts()
        take_down(run)
        ok = report(run, args, start, requests)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping workers, unmounting", file=sys.stderr, flush=True)
        return 130
    finally:
        stop_sampling.set()
        take_down(run)
        if args.keep:
            print(f"kept {run.work}")
        else:
            shutil.rmtree(run.work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

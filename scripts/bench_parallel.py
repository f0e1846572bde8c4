"""``ls -l`` of 100,000 objects on Ceph RGW: bare sequential LIST vs metafs checkouts.

One RGW (metafs/devrgw.py) behind scripts/bench_rgw.py's counting, delaying
proxy, loaded once; then for each ``--code`` checkout, ``--runs`` cold
mounts each timing ``ls -l d100k``, with the LIST requests counted; and the
bare baseline (scripts/bench_bare.py: the delimiter pages one after the
other).  ``--py-spy DIR`` also records a profile of each checkout's first
run (``py-spy record --idle -f raw``).  Prints one JSON line per run::

    python scripts/bench_parallel.py --code /work/main --code . --delay 20
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import bench_bare  # noqa: F401  (its module docstring: the baseline's contract)
import bench_rgw

BUCKET, REGION, DIR = "bench-100k", "us-east-1", "d100k"


def env_for(code: str, server: bench_rgw.RgwServer) -> dict[str, str]:
    env = dict(os.environ, AWS_ACCESS_KEY_ID=server.access_key,
               AWS_SECRET_ACCESS_KEY=server.secret_key, AWS_EC2_METADATA_DISABLED="true",
               NO_PROXY="127.0.0.1,localhost", LC_ALL="C", PYTHONPATH=code)
    env.pop("AWS_PROFILE", None)
    return env


def run_metafs(code: str, server: bench_rgw.RgwServer, py_spy: Path | None) -> dict[str, object]:
    mnt = tempfile.mkdtemp(prefix="metafs-par-")
    env = env_for(code, server)
    log = open(Path(mnt + ".log"), "w")  # noqa: SIM115 - lives as long as the mount
    proc = subprocess.Popen([sys.executable, "-m", "metafs", "--endpoint-url", server.url,
                             "--region", REGION, "--foreground", BUCKET, mnt], env=env,
                            stdout=log, stderr=subprocess.STDOUT, cwd=code)  # (cwd comes first)
    spy = None
    try:
        deadline = time.monotonic() + 30
        while not os.path.ismount(mnt):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"mount failed: {Path(mnt + '.log').read_text()[-500:]}")
            time.sleep(0.05)
        if py_spy is not None:
            spy = subprocess.Popen(["py-spy", "record", "--idle", "-f", "raw", "-r", "200",
                                    "-o", str(py_spy), "--pid", str(proc.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        server.reset()
        t0 = time.perf_counter()
        out = subprocess.run(["ls", "-l", DIR], cwd=mnt, env=env, capture_output=True, check=True)
        seconds = time.perf_counter() - t0
        counts = server.counts()
        cpu = sum(float(x) for x in Path(f"/proc/{proc.pid}/stat").read_text().split()[13:15]) / \
            os.sysconf("SC_CLK_TCK")
        return {"tool": "metafs", "code": code, "seconds": round(seconds, 2),
                "lines": out.stdout.count(b"\n"), "lists": counts["LIST"],
                "daemon_cpu_s_total": round(cpu, 2)}
    finally:
        if spy is not None:
            subprocess.run(["kill", "-INT", str(spy.pid)], check=False)
            spy.wait(30)
        subprocess.run(["fusermount3", "-u", mnt], check=False)
        proc.wait(30)
        log.close()


def run_bare(server: bench_rgw.RgwServer) -> dict[str, object]:
    server.reset()
    p = subprocess.run([sys.executable, str(Path(__file__).with_name("bench_bare.py")), server.url,
                        json.dumps(["list", BUCKET, DIR + "/", "/"])],
                       env=env_for(str(Path(__file__).parent.parent), server),
                       capture_output=True, text=True, check=True)
    answer = json.loads(p.stdout)
    return {"tool": "bare", "seconds": round(answer["seconds"], 2), "lines": answer["entries"],
            "lists": server.counts()["LIST"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--code", action="append", required=True, help="a metafs checkout (repeatable)")
    p.add_argument("--delay", type=float, default=20.0, help="per-request delay, ms (default 20)")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--objects", type=int, default=100_000)
    p.add_argument("--py-spy", help="directory for one raw py-spy profile per checkout")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # (so RGW is stopped too)
    server = bench_rgw.RgwServer().start()
    try:
        t0 = time.perf_counter()
        bench_rgw.load(server.rgw, {BUCKET: [(f"{DIR}/f{i:06d}", 1, {})
                                             for i in range(args.objects)]}, REGION)
        print(json.dumps({"loaded": args.objects, "seconds": round(time.perf_counter() - t0)}),
              flush=True)
        server.delay = args.delay / 1000
        for run in range(args.runs):
            print(json.dumps({"run": run, **run_bare(server)}), flush=True)
            for i, code in enumerate(args.code):
                spy = Path(args.py_spy) / f"code{i}.txt" if args.py_spy and run == 0 else None
                print(json.dumps({"run": run, **run_metafs(str(Path(code).resolve()), server, spy)}),
                      flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()

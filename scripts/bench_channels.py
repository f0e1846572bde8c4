#!/usr/bin/env python3
"""Figures for the metadata channels (issue 11): ``getfattr -d`` over 200 files.

Each file carries 3 user-metadata keys, 3 object tags and 5 S3 annotations (small
JSON/text payloads). For each emulated round trip (``--delays``, ms added to
every request by the dev server) and each channel setting (all channels; tags
only; HEAD only: ``--no-tags --no-annotations``), a fresh mount runs
``while read f; do getfattr -d "$f"; done`` (one process per file, the shape of
a shell scan) twice: cold, then warm (within the TTL).  Times are wall-clock
(time.perf_counter) and the request counts are the server's, per kind.

    python scripts/bench_channels.py [--delays 0,20] [--files 200] [--out bench-out/channels.json]

Needs the ``server`` extra (moto, boto3).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

from metafs.devserver import CountingS3Server  # noqa: E402

ACCESS_KEY, SECRET_KEY, REGION, BUCKET = "AKIABENCHCHANNELS01", "bench-secret", "us-east-1", "channels"
SETTINGS = {"all channels": [], "tags only": ["--no-annotations"],
            "HEAD only": ["--no-tags", "--no-annotations"]}
KINDS = ("HEAD", "HEAD_COND", "LIST", "TAGGING", "ANNOTATIONS", "ANNOTATION")


def fill(url: str, files: int) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=url, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                      aws_secret_access_key=SECRET_KEY)
    s3.create_bucket(Bucket=BUCKET)
    for i in range(files):
        key = f"m/f{i:03d}.json"
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}", ContentType="application/json",
                      Metadata={"owner": "team-a", "index": str(i), "source": "bench"})
        s3.put_object_tagging(Bucket=BUCKET, Key=key, Tagging={"TagSet": [
            {"Key": "project", "Value": "blue"}, {"Key": "stage", "Value": "raw"},
            {"Key": "n", "Value": str(i)}]})
        for a in range(5):
            s3.put_object_annotation(Bucket=BUCKET, Key=key, AnnotationName=f"ml.a{a}",
                                     AnnotationPayload=json.dumps({"i": i, "a": a, "label": "cat"}).encode())


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_REGION=REGION,
             NO_PROXY="127.0.0.1", no_proxy="127.0.0.1", LC_ALL="C")
    e.pop("AWS_PROFILE", None)
    return e


def scan(mnt: str, names: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(f'while read -r f; do getfattr -d "$f" >/dev/null; done < {names}', shell=True,
                   cwd=mnt, check=True)
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--delays", default="0,20")
    p.add_argument("--files", type=int, default=200)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    srv = CountingS3Server().start()
    results = []
    try:
        fill(srv.url, args.files)
        work = Path(tempfile.mkdtemp(prefix="metafs-bench-channels-"))
        names = work / "names.txt"
        names.write_text("".join(f"m/f{i:03d}.json\n" for i in range(args.files)))
        for delay in (float(d) for d in args.delays.split(",")):
            for setting, opts in SETTINGS.items():
                mnt = tempfile.mkdtemp(prefix="mnt-", dir=work)
                # A TTL longer than the cold scan, so that "warm" is all cache hits.
                proc = subprocess.Popen([sys.executable, "-m", "metafs", "--foreground", "--endpoint-url",
                                         srv.url, "--region", REGION, "--metadata-ttl", "600", *opts,
                                         BUCKET, mnt], env=env(),
                                        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    while not os.path.ismount(mnt):
                        if proc.poll() is not None:
                            raise SystemExit(f"metafs exited with {proc.returncode}")
                        time.sleep(0.01)
                    srv.delay = delay / 1000.0
                    for phase in ("cold", "warm"):
                        srv.reset()
                        seconds = scan(mnt, names)
                        counts = {k: srv.counts()[k] for k in KINDS}
                        r = {"delay_ms": delay, "setting": setting, "phase": phase,
                             "seconds": round(seconds, 3), "requests": sum(counts.values()), **counts}
                        results.append(r)
                        print(json.dumps(r), flush=True)
                    srv.delay = 0.0
                finally:
                    subprocess.run(["fusermount3", "-u", mnt], check=False)
                    proc.wait(30)
    finally:
        srv.stop()
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"\n{'delay':>5} {'setting':<13} {'phase':<5} {'seconds':>8} {'requests':>8}  per kind")
    for r in results:
        kinds = " ".join(f"{k}={r[k]}" for k in KINDS if r[k])
        print(f"{r['delay_ms']:>5g} {r['setting']:<13} {r['phase']:<5} {r['seconds']:>8.2f} "
              f"{r['requests']:>8}  {kinds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

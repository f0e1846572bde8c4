"""Memory per listed entry: ``ls -l`` of N objects in one directory, through the mount's layers.

Kernel-free: ``metafs.mount.wire`` builds the layers a mount builds, over the real S3 client,
whose HTTP client answers ListObjectsV2 in process from a presorted key list (1,000 keys a
page: a generated listing from moto is too slow at 1,000,000 keys).  The directory ``big/`` is
looked up, opened and read to the end as the kernel reads it for ``ls -l`` (readdirplus: every
entry takes an inode); ``pyfuse3.readdir_reply`` accepts 64 entries per call.  Then it prints
the growth of RSS per entry, or with ``--trace`` what tracemalloc counts per entry and where.

    python scripts/mem_per_entry.py 1000000          # RSS (issue 12: <= 400 B/entry wanted)
    python scripts/mem_per_entry.py 100000 --trace   # bytes per entry, by source line
    ... --bulk                                       # 100 objects share each LastModified second
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's metafs, as the other scripts do

import httpx  # noqa: E402 - after the path
import pyfuse3  # noqa: E402
import trio  # noqa: E402

from metafs.attrs import Ownership  # noqa: E402
from metafs.fuse_ops import handler_bound  # noqa: E402
from metafs.mount import wire  # noqa: E402
from metafs.s3.client import S3Client  # noqa: E402
from metafs.views import LiveView  # noqa: E402

HEAD = ('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult '
        'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bkt</Name><MaxKeys>1000</MaxKeys>')


class Listing:
    """ListObjectsV2 of ``big/`` (N keys, distinct ETags and sizes), tokens = indexes."""

    def __init__(self, n: int, bulk: bool) -> None:
        self.keys = [f"big/f{i:07d}" for i in range(n)]
        self.bulk = bulk

    def stamp(self, i: int) -> str:
        s = 1_600_000_000 + (i // 100 if self.bulk else i)  # else a distinct second each
        return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(s))

    def contents(self, i: int) -> str:
        etag = hashlib.md5(self.keys[i].encode()).hexdigest()
        return (f"<Contents><Key>{self.keys[i]}</Key><LastModified>{self.stamp(i)}</LastModified>"
                f"<ETag>&quot;{etag}&quot;</ETag><Size>{1000 + i * 7}</Size>"
                "<StorageClass>STANDARD</StorageClass></Contents>")

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        q = dict(request.url.params)
        if request.method == "HEAD" or not self.keys:
            return httpx.Response(404)
        if q.get("max-keys") == "1":  # the probe of "big": one key under big/
            return httpx.Response(200, content=(HEAD + "<IsTruncated>false</IsTruncated>"
                                                + self.contents(0) + "</ListBucketResult>").encode())
        n = len(self.keys)
        start = int(q.get("continuation-token", "0"))
        end = min(start + 1000, n)
        parts = [HEAD, f"<IsTruncated>{'true' if end < n else 'false'}</IsTruncated>"]
        if end < n:
            parts.append(f"<NextContinuationToken>{end}</NextContinuationToken>")
        parts += [self.contents(i) for i in range(start, end)]
        parts.append("</ListBucketResult>")
        return httpx.Response(200, content="".join(parts).encode())


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Room:
    """Stands for pyfuse3's ReaddirToken: how many entries the kernel's buffer still takes."""

    def __init__(self, n: int) -> None:
        self.n = n


def reply(token: Room, name: bytes, attrs: object, next_id: int) -> bool:
    if token.n <= 0:
        return False
    token.n -= 1
    return True


async def ls_l(server: Listing, n: int, trace: bool) -> None:
    own = Ownership(uid=0, gid=0, file_mode=0o444, dir_mode=0o555, dir_mtime=0)
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as http:
        client = S3Client(http, bucket="bkt", region="us-east-1",
                          endpoint_url="http://127.0.0.1:9", attempts=1, attempt_timeout=60)
        layers = wire(LiveView(client), own, ttl=3600, negative_ttl=5, max_entries=10 * n,
                      bound=handler_bound(client.budget))
        ops: Any = layers.ops
        gc.collect()
        base_t, base_r = tracemalloc.get_traced_memory()[0] if trace else 0, rss()
        t0, c0 = time.perf_counter(), time.process_time()
        entry = await ops.lookup(pyfuse3.ROOT_INODE, b"big", None)
        fh = await ops.opendir(entry.st_ino, None)
        pos = 0
        while True:
            room = Room(64)
            await ops.readdir(fh, pos, room)
            got = 64 - room.n
            if got == 0:
                break
            pos = pos + got if pos else got + 2  # "." and ".." come first
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        gc.collect()
        grown_t = tracemalloc.get_traced_memory()[0] - base_t if trace else 0
        grown_r = rss() - base_r
        print(f"{n} entries, {len(layers.inodes)} inodes: RSS +{grown_r / n:.0f} B/entry, "
              f"ls -l {took:.2f} s ({cpu:.2f} s CPU; the in-process server's answers included)"
              + (f", tracemalloc {grown_t / n:.0f} B/entry" if trace else ""))
        if trace:
            # What the layers hold (the in-process server's own key list left out).
            mine = tracemalloc.Filter(False, __file__)
            for s in tracemalloc.take_snapshot().filter_traces([mine]).statistics("lineno")[:16]:
                print(f"  {s.size / n:6.1f} B/entry  {s.traceback}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("n", type=int, nargs="?", default=200_000)
    p.add_argument("--trace", action="store_true", help="tracemalloc (slower, RSS inflated)")
    p.add_argument("--bulk", action="store_true", help="100 objects per LastModified second")
    a = p.parse_args()
    pyfuse3.readdir_reply = reply  # type: ignore[assignment]  # no kernel: count what it takes
    if a.trace:
        tracemalloc.start()
    trio.run(ls_l, Listing(a.n, a.bulk), a.n, a.trace)


if __name__ == "__main__":
    main()

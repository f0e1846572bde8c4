#!/usr/bin/env python3
"""CPU per file of ``getfattr -R -d`` through the mount's layers, without a kernel or a server.

Issue 12, target 3.  ``metafs.mount.wire`` builds the layers a mount builds, over the real S3
client, whose HTTP client answers in process (``httpx.MockTransport``): ListObjectsV2 of
``g/`` (N files), HEAD with three user metadata entries, an empty tag set and an empty
annotation list, as the benchmark's moto server does for its ``gtree``.  The handlers are
called as the kernel calls them for ``getfattr -R -d g``: lookup and getattr of ``g``,
opendir and readdir, then per file lookup, two listxattr (the size probe and the call), and
two getxattr (the same) per ``user.`` name listed.  What is left out is the kernel, pyfuse3's
dispatch and the sockets: the CPU counted (``time.process_time``) is metafs's, httpx's (above
the transport) and trio's scheduling.

    python scripts/cpu_per_file.py [N] [--runs 5] [--profile OUT.prof]

Prints the median CPU per file over the runs (the machine's load: state it).
"""

from __future__ import annotations

import argparse
import cProfile
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's metafs, as the other scripts do

import httpx  # noqa: E402 - after the path
import pyfuse3  # noqa: E402
import trio  # noqa: E402

from metafs import metrics  # noqa: E402
from metafs.attrs import Ownership  # noqa: E402
from metafs.fuse_ops import handler_bound  # noqa: E402
from metafs.mount import wire  # noqa: E402
from metafs.s3.client import S3Client  # noqa: E402

try:
    from metafs.s3.http import MountClient
except ImportError:  # an older checkout (this script copied into it to compare): httpx's own
    MountClient = httpx.AsyncClient  # type: ignore[misc,assignment]
from metafs.views import LiveView  # noqa: E402

XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
STAMP = "2026-01-01T00:00:00.000Z"
TAGGING = f'<?xml version="1.0" encoding="UTF-8"?><Tagging xmlns="{XMLNS}"><TagSet></TagSet></Tagging>'
ANNOTATIONS = (f'<?xml version="1.0" encoding="UTF-8"?><ListObjectAnnotationsResult xmlns="{XMLNS}">'
               "<Bucket>bkt</Bucket><Key>k</Key><MaxAnnotationResults>1000</MaxAnnotationResults>"
               "<AnnotationCount>0</AnnotationCount><Annotations></Annotations>"
               "</ListObjectAnnotationsResult>")


class Server:
    """The in-process answers (see the module docstring)."""

    def __init__(self, n: int) -> None:
        self.keys = [f"g/f{i:05d}" for i in range(n)]
        self.index = {k: i for i, k in enumerate(self.keys)}
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        q = dict(request.url.params)
        path = request.url.path.removeprefix("/bkt").lstrip("/")
        if request.method == "HEAD":
            i = self.index.get(path)
            if i is None:
                return httpx.Response(404 if path else 200)
            return httpx.Response(200, headers={
                "content-type": "text/plain", "content-length": str(i * 37 % 1000),
                "etag": f'"{i:032x}"', "last-modified": "Thu, 01 Jan 2026 00:00:00 GMT",
                "accept-ranges": "bytes", "x-amz-meta-owner": ("alice", "bob")[i % 2],
                "x-amz-meta-project": "metafs-bench", "x-amz-meta-index": str(i)})
        if "tagging" in q:
            return httpx.Response(200, content=TAGGING.encode())
        if "annotation" in q:
            return httpx.Response(200, content=ANNOTATIONS.encode())
        prefix = q.get("prefix", "")
        keys = [k for k in self.keys if k.startswith(prefix)]
        start = int(q.get("continuation-token", "0"))
        page, more = keys[start:start + 1000], start + 1000 < len(keys)
        body = [f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{XMLNS}">'
                f"<Name>bkt</Name><Prefix>{prefix}</Prefix><KeyCount>{len(page)}</KeyCount>"
                f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>"]
        if more:
            body.append(f"<NextContinuationToken>{start + 1000}</NextContinuationToken>")
        for k in page:
            i = self.index[k]
            body.append(f"<Contents><Key>{k}</Key><LastModified>{STAMP}</LastModified>"
                        f"<ETag>&quot;{i:032x}&quot;</ETag><Size>{i * 37 % 1000}</Size>"
                        "<StorageClass>STANDARD</StorageClass></Contents>")
        body.append("</ListBucketResult>")
        return httpx.Response(200, content="".join(body).encode())


class Room:
    """Stands for pyfuse3's ReaddirToken: how many entries the kernel's buffer still takes."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.names: list[bytes] = []


def reply(token: Room, name: bytes, attrs: object, next_id: int) -> bool:
    if token.n <= 0:
        return False
    token.n -= 1
    token.names.append(name)
    return True


async def getfattr_r(server: Server, background: bool) -> tuple[float, int]:
    """``getfattr -R -d g`` through the handlers; (CPU seconds, files)."""
    own = Ownership(uid=0, gid=0, file_mode=0o444, dir_mode=0o555, dir_mtime=0)
    async with MountClient(transport=httpx.MockTransport(server)) as http:
        client = S3Client(http, bucket="bkt", region="us-east-1", force_path_style=True,
                          endpoint_url="http://127.0.0.1:9", attempts=1, attempt_timeout=60)
        layers = wire(LiveView(client), own, ttl=3600, negative_ttl=5, max_entries=100_000,
                      bound=handler_bound(client.budget),
                      channels=frozenset({"tags", "annotations"}))
        ops: Any = layers.ops
        async with trio.open_nursery() as nursery:
            if background:
                for service in layers.background:
                    service.start_background(nursery)
            t0 = time.process_time()
            d = await ops.lookup(pyfuse3.ROOT_INODE, b"g", None)
            await ops.getattr(d.st_ino, None)
            fh = await ops.opendir(d.st_ino, None)
            names: list[bytes] = []
            pos = 0
            while True:
                room = Room(64)
                await ops.readdir(fh, pos, room)
                if not room.names:
                    break
                names += room.names
                pos = pos + len(room.names) if pos else len(room.names) + 2
            await ops.releasedir(fh)
            files = 0
            for name in names:
                if name in (b".", b".."):
                    continue
                e = await ops.lookup(d.st_ino, name, None)
                await ops.listxattr(e.st_ino, None)
                for x in await ops.listxattr(e.st_ino, None):
                    if x.startswith(b"user."):
                        await ops.getxattr(e.st_ino, x, None)
                        await ops.getxattr(e.st_ino, x, None)
                files += 1
            cpu = time.process_time() - t0
            nursery.cancel_scope.cancel()
    return cpu, files


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("n", type=int, nargs="?", default=2000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--profile", help="write a cProfile of the last run here (needs --runs 2 or more)")
    p.add_argument("--no-readahead", action="store_true", help="without the background services")
    a = p.parse_args()
    pyfuse3.readdir_reply = reply  # type: ignore[assignment]  # no kernel: count what it takes
    metrics.use(metrics.PrometheusRecorder())  # a mount always counts
    per_file = []
    requests = 0
    for run in range(a.runs):
        server = Server(a.n)
        prof = cProfile.Profile() if a.profile and run == a.runs - 1 and run > 0 else None
        if prof:
            prof.enable()
        cpu, files = trio.run(getfattr_r, server, not a.no_readahead)
        if prof:
            prof.disable()
            prof.dump_stats(a.profile)
        else:
            per_file.append(cpu / files)
        requests = server.requests
    print(f"{a.n} files, {requests} requests a run: CPU per file median "
          f"{statistics.median(per_file) * 1e6:.0f} µs, min {min(per_file) * 1e6:.0f} µs "
          f"({len(per_file)} runs)")


if __name__ == "__main__":
    main()

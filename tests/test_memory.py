"""Bytes per listed entry stay bounded (issue 12, target 5): a count of allocations, not a time.

``ls -l`` of 20,000 objects in one directory through the mount's layers (tests.fakes.run_ops),
every entry taken as readdirplus takes it (one inode each); tracemalloc counts what stays.
The bound is this version's cost plus a margin, and fails if either half of README's memory
paragraph goes back to objects per entry: the listing's columns (an entry object, an
ObjectMeta and its key per entry cost ~300 B more) or readdirplus inodes without a Node
(a Node with its dict slots costs ~200 B).  ``scripts/mem_per_entry.py`` measures RSS at 1,000,000.
"""

from __future__ import annotations

import gc
import hashlib
import tracemalloc
from typing import Any

import pyfuse3

from tests.fakes import Bucket, OpsEnv, run_ops

N = 20_000
BOUND = 240  # bytes per entry: 166 now; 552 with an object per entry and a Node per inode


class Room:
    """Stands for the kernel's readdir buffer: how many more entries it takes."""

    def __init__(self, n: int) -> None:
        self.n = n


def _reply(token: Room, name: bytes, attrs: Any, next_id: int) -> bool:
    if token.n <= 0:
        return False
    token.n -= 1
    return True


def test_an_ls_l_of_many_objects_costs_a_bounded_number_of_bytes_per_entry(monkeypatch):
    bucket = Bucket()
    for i in range(N):
        key = f"big/f{i:07d}"
        bucket.put(key, b"x" * (300 + i % 700), etag=f'"{hashlib.md5(key.encode()).hexdigest()}"')
    monkeypatch.setattr(pyfuse3, "readdir_reply", _reply)

    async def ls_l(env: OpsEnv) -> tuple[int, int]:
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            entry = await env.ops.lookup(pyfuse3.ROOT_INODE, b"big", None)  # type: ignore[arg-type]
            fh = await env.ops.opendir(entry.st_ino, None)  # type: ignore[arg-type]
            pos = taken = 0
            while True:
                room = Room(64)
                await env.ops.readdir(fh, pos, room)  # type: ignore[arg-type]
                got = 64 - room.n
                if got == 0:
                    break
                taken += got
                pos = pos + got if pos else got + 2  # "." and ".." first
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        return taken, grown

    taken, grown = run_ops(bucket, ls_l, max_entries=10 * N)
    assert taken == N  # every object
    per_entry = grown / N
    print(f"{per_entry:.0f} B per listed entry")
    assert per_entry <= BOUND, f"{per_entry:.0f} B per listed entry"


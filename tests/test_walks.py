"""Tree walks served from one flat listing (metafs/walks.py).

Kernel-free: the FUSE handlers over the in-memory bucket (tests/fakes.py),
``pyfuse3.readdir_reply`` replaced by a collector, walks driven as find
drives them: opendir and readdir of a directory, lookups of its names,
then opendir of each subdirectory, all from one pid.  Request counts are
the assertion.
"""

from __future__ import annotations

import dataclasses
import stat
from typing import Any

import httpx
import pyfuse3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metafs.dirlist import Listing, key_bytes, name_of
from metafs.s3.model import ListPage, ObjectMeta
from metafs.walks import MAX_PAGES_PER_DIR, FlatSplit
from tests.fakes import Bucket, OpsEnv, list_all, run_ops
from tests.helpers import put_many

TOKEN: Any = object()
ROOT = pyfuse3.ROOT_INODE


@dataclasses.dataclass
class Ctx:
    pid: int


class Reader:
    """readdir to the end through the handlers; collects (name, is_dir) per call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.got: list[tuple[str, int, bool]] = []
        monkeypatch.setattr(pyfuse3, "readdir_reply", self._reply)

    def _reply(self, token: Any, name: bytes, attrs: pyfuse3.EntryAttributes, next_id: int) -> bool:
        self.got.append((name_of(name), next_id, stat.S_ISDIR(attrs.st_mode)))
        return True

    async def ls(self, env: OpsEnv, ino: int, pid: int) -> list[tuple[str, bool]]:
        fh = await env.ops.opendir(ino, Ctx(pid))  # type: ignore[arg-type]
        out: list[tuple[str, bool]] = []
        start = 0
        while True:
            self.got = []
            await env.ops.readdir(fh, start, TOKEN)
            if not self.got:
                break
            out += [(n, d) for n, _, d in self.got if n not in (".", "..")]
            start = self.got[-1][1]
        await env.ops.releasedir(fh)
        return out


async def walk(env: OpsEnv, r: Reader, ino: int, pid: int, path: str = "") -> list[str]:
    """find's order: read a directory, look each name up, then descend into subdirectories."""
    seen: list[str] = []
    subdirs = []
    for name, is_dir in await r.ls(env, ino, pid):
        attrs = await env.ops.lookup(ino, name.encode("utf-8", "surrogateescape"), None)  # type: ignore[arg-type]
        assert stat.S_ISDIR(attrs.st_mode) == is_dir
        seen.append(path + name + ("/" if is_dir else ""))
        if is_dir:
            subdirs.append((attrs.st_ino, path + name + "/"))
    for sub, p in subdirs:
        seen += await walk(env, r, sub, pid, p)
    return seen


async def top_dir(env: OpsEnv, name: bytes) -> int:
    """A directory of the mount root, looked up as ``find .`` reaches it: from the root's listing.

    Not by a probe, whose flat page would list its subtree already and
    leave the walk nothing to do (tests/test_deep_paths.py counts that).
    """
    await list_all(env, "")
    attrs = await env.ops.lookup(ROOT, name, None)  # type: ignore[arg-type]
    assert stat.S_ISDIR(attrs.st_mode)
    return attrs.st_ino


def tree_bucket(top: int = 4, mid: int = 5, files: int = 10, page_size: int = 1000) -> Bucket:
    b = Bucket(page_size=page_size)
    for a in range(top):
        for c in range(mid):
            for f in range(files):
                b.put(f"t/a{a}/c{c}/f{f}")
        b.put(f"t/a{a}/file")
    b.put("t/top")
    return b


def lists(b: Bucket) -> list[dict[str, str]]:
    return [dict(r.url.params) for r in b.lists()]


def flat(params: dict[str, str]) -> bool:
    return "delimiter" not in params and params.get("max-keys") != "1"


def reference(b: Bucket, prefix: str) -> list[str]:
    """What a walk must show: every file and directory under ``prefix``, from the keys."""
    out: set[str] = set()
    for k in b.objects:
        if k.startswith(prefix):
            parts = k[len(prefix):].split("/")
            for i in range(len(parts) - 1):
                out.add("/".join(parts[:i + 1]) + "/")
            out.add(k[len(prefix):])
    return sorted(out)


# -- through the handlers ---------------------------------------------------------------


def test_a_walk_costs_one_flat_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    """find over 24 directories, 205 files: 1 delimiter LIST of the top + 1 flat page, not 25 LISTs."""
    b = tree_bucket()

    async def go(env: OpsEnv) -> None:
        r = Reader(monkeypatch)
        t = await top_dir(env, b"t")
        b.reset()
        seen = await walk(env, r, t, pid=100)
        assert sorted(seen) == reference(b, "t/")
        ls = lists(b)
        assert [flat(p) for p in ls] == [False, True]  # t/ by delimiter, then one flat page
        assert ls[1]["prefix"] == "t/" and ls[1]["start-after"] == "t/a0/"
        assert b.heads() == []
        assert env.ops.walks is not None and env.ops.walks.flat_pages == 1

    run_ops(b, go)


def test_a_walk_from_the_mount_root_lists_the_bucket_flat(monkeypatch: pytest.MonkeyPatch) -> None:
    """find . at the root: the root's delimiter page, then one flat page from the first directory."""
    b = tree_bucket()

    async def go(env: OpsEnv) -> None:
        r = Reader(monkeypatch)
        seen = await walk(env, r, ROOT, pid=100)
        assert sorted(seen) == reference(b, "")
        ls = lists(b)
        assert [flat(p) for p in ls] == [False, True]
        assert ls[1]["prefix"] == "" and ls[1]["start-after"] == "t/"

    run_ops(b, go)


def test_a_walk_pages_through_a_subtree_larger_than_a_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of 7 keys: the walk costs ceil(keys / 7) flat pages (+1 that proves the end), as bare."""
    b = tree_bucket(top=3, mid=3, files=4, page_size=7)
    keys_under = sum(1 for k in b.objects if k.startswith("t/a"))

    async def go(env: OpsEnv) -> None:
        r = Reader(monkeypatch)
        t = await top_dir(env, b"t")
        b.reset()
        seen = await walk(env, r, t, pid=100)
        assert sorted(seen) == reference(b, "t/")
        ls = lists(b)
        top_pages = sum(not flat(p) for p in ls)
        assert top_pages == 1  # t/ holds 4 entries: one delimiter page
        assert sum(flat(p) for p in ls) == -(-keys_under // 7)
        assert b.heads() == []

    run_ops(b, go)


def test_a_lone_ls_and_two_commands_cost_what_they_always_cost(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """ls -l t, then (another process) ls -l t/a1: two delimiter LISTs, no flat listing."""
    b = tree_bucket()

    async def go(env: OpsEnv) -> None:
        r = Reader(monkeypatch)
        t = await top_dir(env, b"t")
        b.reset()
        await r.ls(env, t, pid=1)
        assert len(b.lists()) == 1
        a1 = (await env.ops.lookup(t, b"a1", None)).st_ino  # type: ignore[arg-type]
        names = await r.ls(env, a1, pid=2)
        assert [n for n, _ in names] == ["c0", "c1", "c2", "c3", "c4", "file"]
        assert [flat(p) for p in lists(b)] == [False, False]

    run_ops(b, go)


def test_a_walk_of_one_small_directory_in_a_huge_bucket_lists_at_most_one_page_beyond(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk lists small/'s subtree plus the page that proves it complete, never the bucket."""
    b = Bucket(page_size=10)
    for i in range(3):
        b.put(f"small/d{i}/f")
    for i in range(500):
        b.put(f"zbig/d{i:03d}/f")

    async def go(env: OpsEnv) -> None:
        r = Reader(monkeypatch)
        await r.ls(env, ROOT, pid=5)  # the shell's ls of the root, then find small, same pid
        b.reset()
        small = (await env.ops.lookup(ROOT, b"small", None)).st_ino  # type: ignore[arg-type]
        b.reset()
        seen = await walk(env, r, small, pid=5, path="small/")
        assert sorted(seen) == sorted([f"small/d{i}/" for i in range(3)] + [
            f"small/d{i}/f" for i in range(3)])
        assert len(b.lists()) <= 3  # small/ (delimiter), at most 2 flat pages of 10 keys

    run_ops(b, go)


def test_a_huge_subdirectory_falls_back_to_its_ordinary_listing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A subdirectory still open after MAX_PAGES_PER_DIR flat pages is listed by delimiter."""
    b = Bucket(page_size=5)
    b.put("t/a/x")
    for i in range(5 * (MAX_PAGES_PER_DIR + 4)):
        b.put(f"t/b/f{i:04d}")
    b.put("t/c/y")

    async def go(env: OpsEnv) -> None:
        r = Reader(monkeypatch)
        t = await top_dir(env, b"t")
        b.reset()
        seen = await walk(env, r, t, pid=9)
        assert sorted(seen) == reference(b, "t/")
        ls = lists(b)
        assert sum(flat(p) for p in ls) <= MAX_PAGES_PER_DIR + 3
        assert any(p.get("prefix") == "t/b/" and "delimiter" in p for p in ls)

    run_ops(b, go)


def test_walked_listings_keep_the_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Directory wins, `a!b` before `a/…`, invalid names out, markers, non-UTF-8 kept."""
    b = Bucket(page_size=3)
    raw = name_of(b"caf\xe9")
    for k in ["t/s/a", "t/s/a!b", "t/s/a/x", "t/s/a/.", "t/s/", "t/s/b//c", "t/s/" + raw,
              "t/s/z/", "t/u/v"]:
        b.put(k)

    async def go(env: OpsEnv) -> None:
        r = Reader(monkeypatch)
        t = await top_dir(env, b"t")
        await r.ls(env, t, pid=3)
        s = (await env.ops.lookup(t, b"s", None)).st_ino  # type: ignore[arg-type]
        b.reset()
        got = await r.ls(env, s, pid=3)
        assert all(flat(p) for p in lists(b))  # served by the walk
        assert got == sorted([("a", True), ("a!b", False), ("b", True), (raw, False),
                              ("z", True)], key=lambda e: key_bytes(e[0] + "/" * e[1]))
        a = (await env.ops.lookup(s, b"a", None)).st_ino  # type: ignore[arg-type]
        assert await r.ls(env, a, pid=3) == [("x", False)]  # "." left out
        bb = (await env.ops.lookup(s, b"b", None)).st_ino  # type: ignore[arg-type]
        assert await r.ls(env, bb, pid=3) == []  # "b//c": an empty component, left out
        z = (await env.ops.lookup(s, b"z", None)).st_ino  # type: ignore[arg-type]
        before = len(b.requests)
        assert await r.ls(env, z, pid=3) == []  # only its marker
        assert len(b.requests) == before

    run_ops(b, go)


def test_a_walked_listing_expires_like_any_other(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the TTL, the next readdir of a walked directory lists it again (ordinary LIST)."""
    b = tree_bucket(top=2, mid=2, files=2)

    async def go(env: OpsEnv) -> None:
        r = Reader(monkeypatch)
        t = await top_dir(env, b"t")
        await walk(env, r, t, pid=4)
        a0 = env.inodes.child(t, "a0")
        assert a0 is not None
        b.reset()
        await r.ls(env, a0.ino, pid=77)
        assert b.lists() == []  # fresh: served from the walk's listing
        env.clock.t += 11  # past the TTL (10 s)
        await r.ls(env, a0.ino, pid=77)
        assert [flat(p) for p in lists(b)] == [False]

    run_ops(b, go)


def test_a_server_out_of_order_ends_the_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """A flat page whose keys go backwards: the walk ends, directories are listed ordinarily."""
    b = tree_bucket(top=2, mid=2, files=2)
    inner = b.__call__

    async def handler(request: httpx.Request) -> httpx.Response:
        resp = await inner(request)
        if "start-after" in request.url.params:  # the first flat page, reversed
            body = resp.content.decode()
            head, _, rest = body.partition("<Contents>")
            items = ("<Contents>" + rest.removesuffix("</ListBucketResult>")).split("<Contents>")
            body = head + "<Contents>".join(reversed(items[1:])).join(["<Contents>", ""]) + (
                "</ListBucketResult>")
            return httpx.Response(200, content=body.encode())
        return resp

    async def go(env: OpsEnv) -> None:
        r = Reader(monkeypatch)
        t = await top_dir(env, b"t")
        seen = await walk(env, r, t, pid=4)
        assert sorted(seen) == reference(b, "t/")

    run_ops(b, go, handler=handler)


# -- the pure splitter -----------------------------------------------------------------------


def meta(key: str) -> ObjectMeta:
    return ObjectMeta(key, 1, 0, '"e"')


def delimiter_view(keys: list[str], dir_key: str) -> list[tuple[str, bool]]:
    """The entries of a delimiter listing of ``dir_key`` over ``keys`` (the reference)."""
    ks = sorted(keys, key=key_bytes)
    objects = [meta(k) for k in ks if k.startswith(dir_key) and "/" not in k[len(dir_key):]]
    prefixes = sorted({dir_key + k[len(dir_key):].split("/")[0] + "/" for k in ks
                       if k.startswith(dir_key) and "/" in k[len(dir_key):]}, key=key_bytes)
    lst = Listing(dir_key, 1.0)
    lst.add_page(ListPage(objects, prefixes, False, None))
    return [(e.name, e.is_dir) for e in lst.entries]


_component = st.sampled_from(["a", "a!b", "a-", "b", "c", ".", "", "\udce9", "a0", "ab"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_component, min_size=1, max_size=4).map("/".join), min_size=1,
                max_size=40, unique=True), st.integers(1, 6))
def test_split_directories_equal_their_delimiter_listings(paths: list[str], page: int) -> None:
    """Any keys, any page size: each directory the flat split closes shows exactly what a
    delimiter listing of it shows, and every directory under the root is closed once."""
    keys = sorted({"r/" + p for p in paths}, key=key_bytes)
    split = FlatSplit("r/", "r/")
    closed = []
    for i in range(0, len(keys), page):
        chunk = keys[i:i + page]
        closed += split.add_page(ListPage([meta(k) for k in chunk], [], i + page < len(keys),
                                          "tok" if i + page < len(keys) else None), 1.0)
    assert split.done
    dirs = {k[:j + 1] for k in keys for j in range(len("r/"), len(k)) if k[j] == "/"}
    assert sorted(d.dir_key for d in closed) == sorted(dirs)
    for d in closed:
        lst = Listing(d.dir_key, 1.0)
        lst.add_page(ListPage(d.objects, d.prefixes, False, None))
        assert [(e.name, e.is_dir) for e in lst.entries] == delimiter_view(keys, d.dir_key)


def test_a_directory_is_complete_only_once_a_later_key_proves_it() -> None:
    split = FlatSplit("r/", "r/")
    out = split.add_page(ListPage([meta("r/a!b"), meta("r/a/x")], [], True, "t"), 1.0)
    assert out == [] and split.position("r/a/") == "open"
    out = split.add_page(ListPage([meta("r/a/y"), meta("r/a0")], [], True, "t2"), 1.0)
    assert [d.dir_key for d in out] == ["r/a/"]
    assert [m.key for m in out[0].objects] == ["r/a/x", "r/a/y"]
    assert split.position("r/a/") == "passed" and split.position("r/b/") == "ahead"


# -- through the kernel ---------------------------------------------------------------------

MOUNT_TREE = [f"t/a{a}/b{b}/f{f}" for a in range(5) for b in range(4) for f in range(10)]


def _is_probe(query: dict[str, str]) -> bool:
    """A lookup probe's LIST: the first flat page of the name's subtree (metafs/namespace.py)."""
    return not {"delimiter", "start-after", "continuation-token"} & set(query)


def _lists(s3: Any) -> tuple[int, int, int]:
    """(delimiter LISTs, flat LISTs of a walk, probe LISTs) the server received."""
    recs = s3.log("LIST")
    probes = sum(_is_probe(r.query) for r in recs)
    delim = sum("delimiter" in r.query for r in recs)
    return delim, len(recs) - probes - delim, probes


@pytest.mark.mount
@pytest.mark.parametrize("cmd, out_lines", [("find t -type f", len(MOUNT_TREE)),
                                            ("du -s t", 1),
                                            ("ls -R t", None),
                                            ("getfattr -R -d t", None)])
def test_tree_walks_cost_one_flat_listing_through_the_kernel(mount, bucket, s3, cmd, out_lines):
    """find/du/ls -R/getfattr -R over 25 directories, 200 files: one flat page instead of 26 LISTs.

    Each tool looks t up first (fts stats its start path), and the probe's
    flat page of t/ holds all 200 keys: every directory is complete in it,
    so the walk has nothing left to list (before the probe listed flat:
    the probe, t/'s delimiter page and one walk page).
    """
    put_many(bucket, MOUNT_TREE)
    m = mount(bucket)
    r = m.run(cmd)
    if out_lines is not None:
        assert len(r.stdout.splitlines()) == out_lines
    assert _lists(s3) == (0, 0, 1), s3.log("LIST")
    (probe,) = s3.log("LIST")
    assert probe.query["prefix"] == "t/"
    xattrs = len(MOUNT_TREE) if cmd.startswith("getfattr") else 0  # one HEAD per file's xattrs
    assert s3.counts()["HEAD"] == 1 + xattrs  # and the probe's HEAD of t


@pytest.mark.mount
def test_a_lone_ls_l_costs_what_it_always_cost(mount, bucket, s3):
    """ls -l of one directory, then ls -l of a subdirectory from another process: no walk.

    Both are served from the probe of t (its flat first page holds t's
    200 keys: every directory below is complete in it), so they cost that
    page and one HEAD; no walk's flat listing starts.
    """
    put_many(bucket, MOUNT_TREE)
    m = mount(bucket)
    m.run("ls -l t")
    m.run("ls -l t/a1")
    delim, flat_lists, probes = _lists(s3)
    assert (delim, flat_lists, probes) == (0, 0, 1)
    assert s3.counts()["HEAD"] == 1

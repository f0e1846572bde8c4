"""Deep paths are cheap: a lookup probe's LIST is the first flat page of the name's subtree.

Issue #12, target 2 (metafs/namespace.py, ``walks.adopt_probe_page``,
``Listing.seed``).  The pure part first: a directory seeded from a
truncated flat page and continued by delimiter pages after its last key
shows exactly what its delimiter listing shows, whatever the keys and the
cut (S3 repeats, after a start-after inside a subdirectory, that
subdirectory's common prefix: it is shown once).  Then real mounts against
moto, where the server's request log is the assertion: exact request
counts, and round trips counted as groups of requests in flight together.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metafs.dirlist import Listing, key_bytes
from metafs.s3.model import ListPage, ObjectMeta
from metafs.walks import FlatSplit
from tests.helpers import put_many

# -- pure: seeding and continuing --------------------------------------------------------------


def _meta(key: str) -> ObjectMeta:
    return ObjectMeta(key, 1, 0, '"e"')


def delimiter_items(keys: list[str], prefix: str, after: str | None,
                    token: str | None = None) -> list[tuple[str, bool]]:
    """S3's delimiter listing of ``prefix``: (key or prefix, is_prefix).

    After the key ``after`` (start-after) as S3 does it: keys after it are
    grouped by common prefix, so a start-after inside ``prefix/sub/`` shows
    ``sub/`` again if keys under it follow.  After a continuation ``token``
    (here: the page's last key or common prefix), what it covers is skipped.
    """
    out: list[tuple[str, bool]] = []
    for k in sorted(keys, key=key_bytes):
        if not k.startswith(prefix) or (after is not None and key_bytes(k) <= key_bytes(after)):
            continue
        if token is not None and (key_bytes(k) <= key_bytes(token)
                                  or (token.endswith("/") and k.startswith(token))):
            continue
        rest = k[len(prefix):]
        if "/" in rest:
            cp = prefix + rest[:rest.index("/") + 1]
            if not out or out[-1] != (cp, True):
                out.append((cp, True))
        else:
            out.append((k, False))
    return out


def page_of(items: list[tuple[str, bool]], truncated: bool) -> ListPage:
    return ListPage(objects=[_meta(k) for k, p in items if not p],
                    prefixes=[k for k, p in items if p], truncated=truncated,
                    next_token=items[-1][0] if truncated else None)


def listed(lst: Listing) -> list[tuple[str, bool]]:
    return [(e.name, e.is_dir) for e in lst.entries]


def full_listing(keys: list[str], dir_key: str) -> Listing:
    lst = Listing(dir_key, 100.0)
    lst.add_page(page_of(delimiter_items(keys, dir_key, None), False))
    return lst


def seeded_and_continued(keys: list[str], probed: str, cut: int, size: int
                         ) -> dict[str, Listing]:
    """Seed every directory open at the ``cut``-th key of the flat listing of ``probed``,
    then continue each with delimiter pages of ``size`` after that key, as readdir would."""
    flat = sorted((k for k in keys if k.startswith(probed)), key=key_bytes)
    page = ListPage(objects=[_meta(k) for k in flat[:cut]], prefixes=[], truncated=True,
                    next_token="t")
    parent = probed[:probed.rstrip("/").rfind("/") + 1]
    split = FlatSplit(parent, probed.rstrip("/"))
    split.add_page(page, 100.0)
    out: dict[str, Listing] = {}
    for d in split.stack:
        lst = Listing(d.dir_key, 100.0)
        lst.seed(ListPage(objects=d.objects, prefixes=d.prefixes, truncated=True, next_token=None),
                 flat[cut - 1], 100.0)
        assert lst.after == flat[cut - 1] and lst.token is None
        for _ in range(len(keys) + 2):  # every page makes progress: a bounded loop
            if lst.complete:
                break
            items = delimiter_items(keys, d.dir_key, lst.after, lst.token)
            lst.add_page(page_of(items[:size], len(items) > size))
        assert lst.complete
        out[d.dir_key] = lst
    return out


def test_a_start_after_inside_a_subdirectory_shows_it_once() -> None:
    # The flat page of d/ ends inside d/s/: S3's next delimiter page after
    # d/s/2 starts with the common prefix d/s/ again.
    keys = ["d/a", "d/s/1", "d/s/2", "d/s/3", "d/t"]
    cont = delimiter_items(keys, "d/", "d/s/2")
    assert cont == [("d/s/", True), ("d/t", False)]
    lst = seeded_and_continued(keys, "d/", 3, 1000)["d/"]
    assert listed(lst) == [("a", False), ("s", True), ("t", False)]


def _seeded(page: ListPage, after: str) -> Listing:
    """The listing of ``d/`` seeded with what the flat page ``page`` (ending at ``after``) shows of it."""
    split = FlatSplit("", "d")
    split.add_page(page, 100.0)
    d = split.stack[0]
    lst = Listing("d/", 100.0)
    lst.seed(ListPage(objects=d.objects, prefixes=d.prefixes, truncated=True, next_token=None),
             after, 100.0)
    return lst


def test_a_seed_settles_names_up_to_the_last_key_seen() -> None:
    keys = ["d/a", "d/b", "d/b!x", "d/c/1", "d/c/2", "d/e"]
    flat = sorted(keys, key=key_bytes)
    page = ListPage(objects=[_meta(k) for k in flat[:4]], prefixes=[], truncated=True,
                    next_token="t")  # up to d/c/1
    lst = _seeded(page, "d/c/1")
    # b is a file: d/c/1 comes after d/b/, so no d/b/… can follow (b!x proves nothing).
    assert listed(lst) == [("a", False), ("b", False), ("b!x", False), ("c", True)]
    assert lst.covers("zz") is False and lst.covers("bb") is True  # d/bb/ < d/c/1
    assert lst.covers("c") is True and not lst.complete


def test_a_file_last_in_the_page_is_held_back() -> None:
    # The page ends at d/b: d/b/… may follow, so b is not settled yet.
    page = ListPage(objects=[_meta("d/a"), _meta("d/b")], prefixes=[], truncated=True,
                    next_token="t")
    lst = _seeded(page, "d/b")
    assert listed(lst) == [("a", False)] and not lst.covers("b")
    lst.add_page(page_of([("d/b/", True)], False))  # the next page: b is a directory
    assert listed(lst) == [("a", False), ("b", True)] and lst.shadowed == {"b"}


NAMES = st.sampled_from(["a", "a!b", "a-b", "b", "c"])


@given(paths=st.lists(st.lists(NAMES, min_size=1, max_size=4).map(lambda p: "d/" + "/".join(p)),
                      min_size=1, max_size=25, unique=True),
       cut=st.integers(1, 30), size=st.sampled_from([1, 2, 3, 1000]))
@settings(max_examples=300, deadline=None)
def test_seeded_directories_equal_their_delimiter_listings(paths: list[str], cut: int,
                                                           size: int) -> None:
    """Any keys (directory wins, ``a!b`` before ``a/…``), any cut, any page size after it."""
    flat = [k for k in paths if k.startswith("d/")]
    cut = min(cut, len(flat))
    for dir_key, lst in seeded_and_continued(paths, "d/", cut, size).items():
        assert listed(lst) == listed(full_listing(paths, dir_key)), dir_key


# -- through the kernel --------------------------------------------------------------------------

# 6 levels: tree/aA/bB/cC/dD/fF; 4 x 3 x 3 x 3 x 6 = 648 keys (fits one page).
SMALL_TREE = [f"tree/a{a}/b{b}/c{c}/d{d}/f{f}" for a, b, c, d, f in
              itertools.product(range(4), range(3), range(3), range(3), range(6))]
# 10 x 162 = 1,620 keys: tree/'s first page of 1,000 ends inside tree/a6/b0/c1/d1/ (at f3).
BIG_TREE = [f"tree/a{a}/b{b}/c{c}/d{d}/f{f}" for a, b, c, d, f in
            itertools.product(range(10), range(3), range(3), range(3), range(6))]


def round_trips(s3: Any) -> int:
    """Groups of requests in flight together: each starts after every earlier one ended."""
    recs = sorted(s3.log("HEAD", "LIST"), key=lambda r: r.started)
    trips, end = 0, float("-inf")
    for r in recs:
        if r.started >= end:
            trips += 1
        end = max(end, r.finished) if r.started < end else r.finished
    return trips


def run_cold(m: Any, s3: Any, cmd: str) -> tuple[dict[str, int], int]:
    """``cmd`` with 0.1 s per request (so round trips show), then (counts, round trips)."""
    s3.reset()
    s3.delay = 0.1
    try:
        r = m.run(cmd)
    finally:
        s3.delay = 0.0
    assert r.returncode == 0
    return summary(s3), round_trips(s3)


def summary(s3: Any) -> dict[str, int]:
    c = s3.counts()
    return {"HEAD": c["HEAD"], "LIST": c["LIST"],
            "other": sum(v for k, v in c.items() if k not in ("HEAD", "LIST"))}


@pytest.mark.mount
def test_cold_deep_stat_costs_one_head_and_one_list(mount, bucket, s3):
    """stat tree/a2/b1/c0/d2/f5 on a fresh mount (648 keys under tree/): 1 HEAD + 1 LIST,
    one round trip (was 6 HEAD + 6 LIST in 6); the file's stat comes from the page."""
    put_many(bucket, SMALL_TREE)
    m = mount(bucket)
    counts, trips = run_cold(m, s3, "stat -c %s tree/a2/b1/c0/d2/f5")
    assert counts == {"HEAD": 1, "LIST": 1, "other": 0} and trips == 1
    (head,) = s3.log("HEAD")
    (lst,) = s3.log("LIST")
    assert head.path.endswith("/tree") and lst.query["prefix"] == "tree/"
    assert not {"delimiter", "max-keys", "start-after"} & set(lst.query)
    # Every directory of the subtree is listed now: other deep paths cost nothing.
    s3.reset()
    assert m.run("stat -c %F tree/a3/b2/c2/d0 tree/a0/b0/c0/d0/f0 && ls tree/a1/b1/c1/d1"
                 ).stdout.split() == ["directory", "regular", "file"] + [f"f{i}" for i in range(6)]
    assert sum(s3.counts().values()) == 0


@pytest.mark.mount
def test_cold_deep_stat_beyond_the_first_page_costs_two_round_trips(mount, bucket, s3):
    """1,620 keys under tree/: a target in its first 1,000 costs 1 HEAD + 1 LIST; past them,
    the first unlisted component is probed the same way: 2 HEAD + 2 LIST in 2 round trips."""
    put_many(bucket, BIG_TREE)
    m = mount(bucket)
    counts, trips = run_cold(m, s3, "stat -c %s tree/a2/b1/c0/d2/f5")  # key 396 of tree/
    assert counts == {"HEAD": 1, "LIST": 1, "other": 0} and trips == 1

    m2 = mount(bucket)
    counts, trips = run_cold(m2, s3, "stat -c %s tree/a8/b1/c0/d2/f5")  # key 1,368
    assert counts == {"HEAD": 2, "LIST": 2, "other": 0} and trips == 2
    assert sorted(r.query["prefix"] for r in s3.log("LIST")) == ["tree/", "tree/a8/"]
    assert sorted(r.path.rsplit("/", 2)[-1] for r in s3.log("HEAD")) == ["a8", "tree"]


@pytest.mark.mount
def test_directories_open_at_the_end_of_the_page_answer_up_to_its_last_key(mount, bucket, s3):
    """The first page of tree/ (1,620 keys) ends at tree/a6/b0/c1/d1/f3: tree/, a6/, b0/, c1/
    and d1/ are seeded with what it showed, so f1 there costs nothing more; f3 (the last key:
    f3/… may follow) and f4 (not shown) are probed: 1 HEAD + 1 LIST more each."""
    put_many(bucket, BIG_TREE)
    m = mount(bucket)
    counts, trips = run_cold(m, s3, "stat -c %s tree/a6/b0/c1/d1/f1")
    assert counts == {"HEAD": 1, "LIST": 1, "other": 0} and trips == 1
    counts, trips = run_cold(m, s3, "stat -c %s tree/a6/b0/c1/d1/f3")
    assert counts == {"HEAD": 1, "LIST": 1, "other": 0} and trips == 1
    (lst,) = s3.log("LIST")
    assert lst.query["prefix"] == "tree/a6/b0/c1/d1/f3/"
    # (A fresh mount: a second miss in d1/ would also list d1/ ahead, by the burst rule.)
    counts, trips = run_cold(mount(bucket), s3, "stat -c %s tree/a6/b0/c1/d1/f4")
    assert counts == {"HEAD": 2, "LIST": 2, "other": 0} and trips == 2
    assert sorted(r.query["prefix"] for r in s3.log("LIST")) == ["tree/", "tree/a6/b0/c1/d1/f4/"]
    # ls of a seeded directory: its listing goes on after the page's last key, by delimiter.
    s3.reset()
    assert m.run("ls tree/a6/b0").stdout.split() == ["c0", "c1", "c2"]
    (lst,) = s3.log("LIST")
    assert (lst.query["prefix"], lst.query["delimiter"], lst.query["start-after"]) == (
        "tree/a6/b0/", "/", "tree/a6/b0/c1/d1/f3")
    assert s3.counts()["HEAD"] == 0


@pytest.mark.mount
def test_ls_l_on_a_fresh_mount_costs_the_listing_pages_and_one_head(mount, bucket, s3):
    """ls -l DIR: a small subtree costs 1 HEAD + 1 LIST; a flat directory of 2,500 files,
    1 HEAD + 3 LIST (the probe's flat page of 1,000, then 2 delimiter pages after it)."""
    put_many(bucket, SMALL_TREE)
    m = mount(bucket)
    s3.reset()
    out = m.run("ls -l tree/a1").stdout.splitlines()
    assert [line.split()[-1] for line in out[1:]] == ["b0", "b1", "b2"]
    assert summary(s3) == {"HEAD": 1, "LIST": 1, "other": 0}

    names = [f"f{i:04d}" for i in range(2500)]
    put_many(bucket, [f"flat/{n}" for n in names])
    m2 = mount(bucket)
    s3.reset()
    out = m2.run("ls -l flat").stdout.splitlines()
    assert sorted(line.split()[-1] for line in out[1:]) == names
    assert summary(s3) == {"HEAD": 1, "LIST": 3, "other": 0}
    probe, *pages = s3.log("LIST")
    assert probe.query["prefix"] == "flat/" and "delimiter" not in probe.query
    assert [(p.query["delimiter"], p.query.get("start-after"), "continuation-token" in p.query)
            for p in pages] == [("/", "flat/f0999", False), ("/", None, True)]


@pytest.mark.mount
def test_a_file_name_probe_costs_what_it_did(mount, bucket, s3):
    """A file's name, and a missing one: 1 HEAD + 1 LIST each (the page of name/ is empty)."""
    put_many(bucket, ["x.txt", "other/y"])
    for cmd in ("stat -c %s x.txt", "stat -c %s missing || true"):
        counts, trips = run_cold(mount(bucket), s3, cmd)  # (fresh: no burst of misses)
        assert counts == {"HEAD": 1, "LIST": 1, "other": 0} and trips == 1, cmd


@pytest.mark.mount
def test_directory_wins_and_a_bang_b_in_a_probe_page(mount, bucket, s3):
    """d/a beside d/a/x, and d/a!b between them: the probe's page of d/ lists d/ as a
    delimiter listing would (a is the directory, a!b a file), for 1 HEAD + 1 LIST."""
    put_many(bucket, ["d/a", "d/a!b", "d/a-c/y", "d/a/x", "d/z"])
    m = mount(bucket)
    counts, trips = run_cold(m, s3, "ls -F d && stat -c %F d/a/x && stat -c %F d/a")
    assert counts == {"HEAD": 1, "LIST": 1, "other": 0} and trips == 1
    assert sorted(m.run("ls -F d").stdout.split()) == ["a!b", "a-c/", "a/", "z"]
    assert m.run("stat -c %F d/a d/a!b").stdout.splitlines() == ["directory", "regular file"]
    # The object d/a is reached in the control directory, as with a delimiter listing.
    assert m.run("cat .metafs/objects/d/a").stdout == "x"

"""metafs.dirlist: the rules 1-5 of the module docstring, page by page."""

from __future__ import annotations

import itertools
import logging
import random
from urllib.parse import quote_from_bytes, unquote_to_bytes

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metafs.dirlist import (
    MAX_EMPTY_PAGES,
    NAME_MAX,
    DirEntry,
    Entry,
    FileEntry,
    Listing,
    invalid_reason,
    key_bytes,
    name_of,
    split_key,
)
from metafs.errors import MalformedResponseError
from metafs.s3.model import ListPage, ObjectMeta, parse_list
from metafs.signing import uri_encode
from tests.fakes import listing

_uniq = itertools.count()


def obj(key: str, size: int = 1, etag: str | None = '"e"') -> ObjectMeta:
    return ObjectMeta(key, size, 1_600_000_000, etag)


def page(keys: list[str] = (), prefixes: list[str] = (), token: str | None = None) -> ListPage:
    """A page; truncated exactly when a token is given."""
    return ListPage([obj(k) for k in keys], list(prefixes), token is not None, token)


def names(entries: list[Entry]) -> list[tuple[str, bool]]:
    return [(e.name, e.is_dir) for e in entries]


# -- rule 1: file vs prefix ------------------------------------------------------------

def test_objects_are_files_and_prefixes_are_directories():
    lst = Listing("", expires=100.0)
    out = lst.add_page(page(["a.txt", "b"], ["d/", "e/"]))
    assert names(out) == [("a.txt", False), ("b", False), ("d", True), ("e", True)]
    assert lst.complete and lst.token is None
    assert isinstance(e := lst.index["a.txt"], FileEntry) and e.meta.key == "a.txt"
    assert isinstance(lst.index["d"], DirEntry)
    assert lst.entries == out


def test_names_are_relative_to_the_listed_prefix():
    lst = Listing("dir/sub/", expires=0.0)
    out = lst.add_page(page(["dir/sub/f1", "dir/sub/f2"], ["dir/sub/x/"]))
    assert names(out) == [("f1", False), ("f2", False), ("x", True)]
    assert lst.index["f1"].meta.key == "dir/sub/f1"


def test_keys_outside_the_prefix_are_left_out():
    lst = Listing("dir/", expires=0.0)
    out = lst.add_page(page(["dir/a", "other/b"], ["elsewhere/"]))
    assert names(out) == [("a", False)]


# -- rule 2: the directory wins ------------------------------------------------------

def test_directory_wins_over_same_named_file_in_one_page():
    lst = Listing("", expires=0.0)
    out = lst.add_page(page(["a", "b"], ["a/"]))
    assert names(out) == [("a", True), ("b", False)]
    assert isinstance(lst.index["a"], DirEntry)


def test_keys_between_a_and_a_slash_sort_as_the_docstring_says():
    # The premise of rule 2: these keys sort between "a" and "a/".
    for k in ("a!", "a-b", "a.txt", "a b", "a+"):
        assert "a" < k < "a/"


def test_directory_wins_when_file_ends_one_page_and_prefix_starts_a_later_one():
    lst = Listing("", expires=0.0)
    p1 = lst.add_page(page(["0", "a"], token="t1"))
    # "0" is provably safe (everything later sorts after "0/"); "a" is held.
    assert names(p1) == [("0", False)]
    assert "a" not in lst.index
    assert not lst.complete and lst.token == "t1"
    p2 = lst.add_page(page(["a!", "a-b", "a.txt"], token="t2"))
    # Each of these might still be shadowed by "a/" (or by its own prefix).
    assert p2 == []
    assert lst.token == "t2"
    p3 = lst.add_page(page(["b"], ["a/"]))
    assert names(p3) == [("a!", False), ("a-b", False), ("a.txt", False), ("a", True),
                         ("b", False)]
    assert lst.complete and lst.token is None
    assert lst.index["a"].is_dir
    assert [e.name for e in lst.entries].count("a") == 1


def test_held_file_is_released_by_a_key_after_its_would_be_prefix():
    lst = Listing("", expires=0.0)
    assert names(lst.add_page(page(["a"], token="t"))) == []
    # "a0" sorts after "a/" ('0' > '/'): no "a/" can follow any more.
    out = lst.add_page(page(["a0"], token="t2"))
    assert names(out) == [("a", False)]
    assert not lst.index["a"].is_dir


def test_held_file_is_released_when_the_listing_ends():
    lst = Listing("", expires=0.0)
    assert lst.add_page(page(["x", "y"], token="t")) == [lst.index["x"]]
    out = lst.add_page(page([]))
    assert names(out) == [("y", False)]
    assert lst.complete


def test_prefix_not_shadowing_held_file_is_shown_and_file_stays_held():
    lst = Listing("", expires=0.0)
    out = lst.add_page(page(["a"], ["a-b/"], token="t"))
    # The directory a-b is certain; the file a could still lose to "a/".
    assert names(out) == [("a-b", True)]
    out = lst.add_page(page([], ["a/"]))
    assert names(out) == [("a", True)]
    assert names(lst.entries) == [("a-b", True), ("a", True)]


def test_file_wins_when_no_prefix_follows():
    lst = Listing("", expires=0.0)
    lst.add_page(page(["a"], token="t"))
    lst.add_page(page(["a-b", "a.txt"], token="t2"))
    out = lst.add_page(page(["c"]))
    assert names(out) == [("a", False), ("a-b", False), ("a.txt", False), ("c", False)]


def test_entries_only_get_appended():
    lst = Listing("", expires=0.0)
    seen: list[Entry] = []
    for p in (page(["a", "b"], token="1"), page(["b0", "c"], ["b/"], token="2"), page(["d"])):
        before = list(lst.entries)
        out = lst.add_page(p)
        assert lst.entries[:len(before)] == before
        assert lst.entries[len(before):] == out
        seen += out
    assert lst.entries == seen
    assert names(seen) == [("a", False), ("b", True), ("b0", False), ("c", False), ("d", False)]
    assert lst.pages == 3


# -- rule 3: the directory's own marker ----------------------------------------------

def test_marker_object_of_the_listed_directory_is_skipped(caplog):
    n = next(_uniq)
    lst = Listing(f"m{n}/", expires=0.0)
    with caplog.at_level(logging.DEBUG, logger="metafs.dirlist"):
        out = lst.add_page(page([f"m{n}/", f"m{n}/f"]))
    assert names(out) == [("f", False)]
    assert "" not in lst.index
    assert caplog.records == []  # the directory itself, not an invalid name


def test_marker_of_root_listing_is_not_an_issue_for_subdirs():
    lst = Listing("", expires=0.0)
    # At the root, "d/" as an object would be rolled into a prefix by the server;
    # a prefix is a directory whatever the markers.
    out = lst.add_page(page(["f"], ["d/"]))
    assert names(out) == [("d", True), ("f", False)]


# -- rule 4: invalid names ------------------------------------------------------------

@pytest.mark.parametrize("name", ["", ".", "..", "a\0b", "x" * 256, "日" * 100, "a/b"])
def test_invalid_reason_rejects(name):
    assert invalid_reason(name) is not None


@pytest.mark.parametrize("name", ["a", "...", ".hidden", "x" * NAME_MAX, "日" * 85, "a b", "%",
                                  name_of(b"caf\xe9"), name_of(b"\xff" * NAME_MAX)])
def test_invalid_reason_accepts(name):
    assert invalid_reason(name) is None


def test_invalid_reason_counts_bytes_that_are_not_utf8_as_one_byte_each():
    assert invalid_reason(name_of(b"\xff" * (NAME_MAX + 1))) == "longer than 255 bytes"
    assert invalid_reason("\ud800") == "not a byte string"  # no decoding makes this one


def test_invalid_names_are_left_out_of_listings():
    lst = Listing("d/", expires=0.0)
    long_ok = "x" * 255
    out = lst.add_page(page(
        ["d/ok", "d/.", "d/..", "d/nul\0x", "d/" + "日" * 100, "d/" + long_ok],
        ["d//", "d/./", "d/../", "d/" + "y" * 256 + "/", "d/sub/"]))
    assert sorted(names(out)) == sorted([("ok", False), (long_ok, False), ("sub", True)])
    for bad in ("", ".", "..", "nul\0x", "日" * 100, "y" * 256):
        assert bad not in lst.index


def test_invalid_key_is_logged_once(caplog):
    n = next(_uniq)
    bad = f"d{n}/" + "日" * 100
    lst = Listing(f"d{n}/", expires=0.0)
    with caplog.at_level(logging.WARNING, logger="metafs.dirlist"):
        lst.add_page(page([bad], token="t"))
        lst.add_page(page([bad]))
        lst2 = Listing(f"d{n}/", expires=0.0)
        lst2.add_page(page([bad]))
    assert sum(bad in r.getMessage() or repr(bad) in r.getMessage() for r in caplog.records) == 1


# -- rule 5: unordered listings ---------------------------------------------------------

def test_unordered_listing_held_until_complete_then_sorted():
    lst = Listing("", expires=0.0, ordered=False)
    assert lst.add_page(page(["z", "a", "m"], ["q/"], token="t1")) == []
    assert lst.entries == [] and not lst.complete and lst.token == "t1"
    assert lst.add_page(page(["b"], ["m/", "a/"], token="t2")) == []
    out = lst.add_page(page(["c", "q"]))
    assert names(out) == [("a", True), ("b", False), ("c", False), ("m", True), ("q", True),
                          ("z", False)]
    assert lst.entries == out
    assert lst.complete and lst.token is None
    assert lst.index["a"].is_dir and lst.index["q"].is_dir and lst.index["m"].is_dir


def test_unordered_listing_directory_seen_before_file_still_wins():
    lst = Listing("", expires=0.0, ordered=False)
    lst.add_page(page([], ["x/"], token="t"))
    out = lst.add_page(page(["x"]))
    assert names(out) == [("x", True)]


def test_unordered_listing_applies_rules_3_and_4():
    lst = Listing("d/", expires=0.0, ordered=False)
    out = lst.add_page(page(["d/", "d/..", "d/f", "d/" + "日" * 100], ["d//"]))
    assert names(out) == [("f", False)]


def test_unordered_listing_duplicates_shown_once():
    lst = Listing("", expires=0.0, ordered=False)
    lst.add_page(page(["f"], ["d/"], token="t"))
    out = lst.add_page(page(["f"], ["d/"]))
    assert names(out) == [("d", True), ("f", False)]


# -- complete and token -------------------------------------------------------------------

# -- rule 6: a listing must end ------------------------------------------------------------

def refused(lst: Listing, p: ListPage, says: str) -> None:
    """``p`` is refused before any of it is merged, naming the fault."""
    before = (list(lst.entries), lst.pages, lst.token, lst.watermark, lst.complete)
    with pytest.raises(MalformedResponseError, match="the server's listing would not end") as ei:
        lst.add_page(p)
    assert says in str(ei.value)
    assert (list(lst.entries), lst.pages, lst.token, lst.watermark, lst.complete) == before


def test_truncated_page_without_token_is_refused():
    lst = Listing("d/", expires=0.0)
    refused(lst, ListPage([obj("d/a")], [], True, None),
            "LIST d/: the server's listing would not end: page 1 says the listing is truncated "
            "but gives no continuation token or marker")
    assert "a" not in lst.index


def test_a_token_given_again_is_refused():
    lst = Listing("", expires=0.0)
    lst.add_page(page(["a"], token="T1"))
    lst.add_page(page(["b"], token="T2"))
    refused(lst, page(["c"], token="T1"), "page 3 gives again the continuation token 'T1'")
    refused(lst, page(["c"], token="T2"), "page 3 gives again the continuation token 'T2'")
    lst.add_page(page(["c"]))
    assert lst.complete and names(lst.entries) == [("a", False), ("b", False), ("c", False)]


def test_a_truncated_page_without_progress_is_refused():
    lst = Listing("", expires=0.0)
    lst.add_page(page(["a", "b"], ["c/"], token="T1"))
    refused(lst, page(["a", "b"], ["c/"], token="T2"), "page 2 holds no key after 'c/'")
    refused(lst, page(["c/"], token="T2"), "page 2 holds no key after 'c/'")
    # A page that repeats some keys but brings a new one is progress; the
    # repeated keys are not shown twice.
    assert lst.add_page(page(["b", "d"], ["c/"], token="T3")) == []  # d is held (rule 2)
    lst.add_page(page(["b", "e"]))
    assert names(lst.entries) == [("a", False), ("b", False), ("c", True), ("d", False),
                                  ("e", False)]


def test_a_final_page_ends_the_listing_whatever_it_holds():
    lst = Listing("", expires=0.0)
    lst.add_page(page(["a", "b"], token="T1"))
    assert lst.add_page(ListPage([obj("a")], [], False, "T1")) == [lst.index["b"]]
    assert lst.complete and names(lst.entries) == [("a", False), ("b", False)]


def test_a_few_empty_truncated_pages_are_tolerated_more_are_refused():
    lst = Listing("", expires=0.0)
    for i in range(MAX_EMPTY_PAGES):  # a server that filters pages may send some
        assert lst.add_page(page([], token=f"e{i}")) == []
    refused(lst, page([], token="e-last"), f"{MAX_EMPTY_PAGES + 1} truncated pages in a row")
    lst.add_page(page(["a"], token="k"))  # a key: the run starts again
    for i in range(MAX_EMPTY_PAGES):
        lst.add_page(page([], token=f"f{i}"))
    assert names(lst.add_page(page(["b"]))) == [("a", False), ("b", False)]


def test_unordered_listing_without_progress_is_refused():
    lst = Listing("", expires=0.0, ordered=False)
    lst.add_page(page(["z", "a"], ["m/"], token="T1"))
    refused(lst, page(["a", "z"], token="T2"), "page 2 holds only keys earlier pages showed")
    lst.add_page(page(["a", "b"], token="T2"))  # b is new: progress, in no order
    assert names(lst.add_page(page(["c"]))) == [("a", False), ("b", False), ("c", False),
                                                ("m", True), ("z", False)]


def test_keys_are_ordered_by_their_bytes():
    # U+E000 is EE 80 80 in UTF-8 and the raw byte FF (a lone surrogate)
    # sorts after it, as servers order keys, though Python orders the two
    # strings the other way.  Merging and rule 2 follow the servers' order.
    high, raw = "\ue000", name_of(b"\xff")
    assert raw < high and key_bytes(high) < key_bytes(raw)
    one = Listing("", expires=0.0)
    assert names(one.add_page(page(["b" + raw, "b" + high]))) == [("b" + high, False),
                                                                   ("b" + raw, False)]
    lst = Listing("", expires=0.0)
    assert lst.add_page(page(["b" + high], token="T1")) == []  # held: "b<high>/" may follow
    assert not lst.covers("b" + high)
    # "b<FF>" sorts after "b<high>/": no such prefix can follow any more.
    assert names(lst.add_page(page(["b" + raw], token="T2"))) == [("b" + high, False)]
    assert lst.covers("b" + high) and not lst.covers("b" + raw)


def test_token_is_ignored_on_a_final_page():
    lst = Listing("", expires=0.0)
    lst.add_page(ListPage([obj("a")], [], False, "stale-token"))
    assert lst.complete and lst.token is None


def test_token_follows_pages_and_counts():
    lst = Listing("", expires=0.0)
    assert lst.pages == 0 and not lst.complete and lst.token is None
    lst.add_page(page(["a"], token="T1"))
    assert (lst.pages, lst.token, lst.complete) == (1, "T1", False)
    lst.add_page(page(["b"], token="T2"))
    assert (lst.pages, lst.token, lst.complete) == (2, "T2", False)
    lst.add_page(page(["c"]))
    assert (lst.pages, lst.token, lst.complete) == (3, None, True)
    assert names(lst.entries) == [("a", False), ("b", False), ("c", False)]


def test_empty_listing_completes_with_no_entries():
    lst = Listing("nothing/", expires=0.0)
    assert lst.add_page(page()) == []
    assert lst.complete and lst.entries == [] and lst.index == {}


def test_split_key_gives_parent_prefix_and_name():
    assert split_key("a/b/c") == ("a/b/", "c")
    assert split_key("a/b/c/") == ("a/b/", "c")
    assert split_key("c") == ("", "c")
    assert split_key("c/") == ("", "c")


def test_listing_trust_is_its_own():
    lst = Listing("d/", expires=1010.0)
    assert lst.usable(1000.0) and not lst.usable(1010.0)
    lst.add_page(page(["d/a"], [], token="t"))  # pages do not move it
    assert lst.expires == 1010.0
    lst.fail()
    assert lst.failed and not lst.usable(1000.0)


def test_file_returns_only_files():
    lst = Listing("", expires=0.0)
    lst.add_page(page(["a", "b"], ["c/"]))
    assert lst.file("a") is not None and lst.file("a").meta.key == "a"
    assert lst.file("c") is None and lst.file("zz") is None


def test_each_page_is_trusted_from_its_own_request():
    lst = Listing("", expires=1010.0)
    lst.add_page(page(["a", "b"], [], token="b"), 1010.0)
    lst.add_page(page(["c"], ["d/"], token="d/"), 1020.0)
    assert not lst.complete
    assert lst.usable(1015.0) and not lst.usable(1020.0)  # its newest page decides
    lst.add_page(page(["e"]), 1030.0)
    # A file is emitted with the page that proved no directory shadows it
    # (rule 2): b and c with page 2, e with page 3.
    assert [(e.name, lst.entry_expires(e.pos)) for e in lst.entries] == [
        ("a", 1010.0), ("b", 1020.0), ("c", 1020.0), ("d", 1020.0), ("e", 1030.0)]
    assert lst.expires == 1010.0  # absences: from the creation
    assert lst.usable(1025.0)


# -- properties ---------------------------------------------------------------------------------
#
# Any page split of any key set gives the same directory, and keys and names
# map to each other losslessly.

# Name components that exercise every rule: "a" against "a/..." with the keys
# that sort between them ("a!b", "a-b", "a.b"), "a0" after them, invalid
# components (empty, ".", 256 bytes), and bytes whose order is not Python's
# string order (UTF-8 é, U+E000, the raw byte FF).
_PARTS = st.sampled_from(["a", "b", "a!b", "a-b", "a.b", "a0", "", ".", "é", "\ue000",
                          name_of(b"\xff"), name_of(b"a\xff"), "x" * 256])
_KEYS = st.sets(st.lists(_PARTS, min_size=1, max_size=3).map("/".join), max_size=24)


def delimiter_items(keys: set[str], prefix: str) -> list[tuple[str, bool]]:
    """What a server lists for ``prefix`` with ``delimiter=/``, in its (byte) order."""
    items: set[tuple[str, bool]] = set()
    for key in keys:
        key = prefix + key
        if not key:
            continue  # no key is empty
        rest = key[len(prefix):]
        if "/" in rest:
            items.add((prefix + rest[:rest.index("/") + 1], True))
        else:
            items.add((key, False))
    return sorted(items, key=lambda t: key_bytes(t[0]))


def pages_of(items: list[tuple[str, bool]], cuts: list[int]) -> list[ListPage]:
    """``items`` split at ``cuts``: truncated pages with fresh tokens, then a final one."""
    bounds = [0, *sorted(cuts), len(items)]
    pages = []
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        chunk = items[lo:hi]
        last = i == len(bounds) - 2
        pages.append(ListPage([obj(k) for k, d in chunk if not d], [k for k, d in chunk if d],
                              not last, None if last else f"t{i}"))
    return pages


def expected_directory(items: list[tuple[str, bool]], prefix: str) -> set[tuple[str, bool]]:
    """The rules 1-4 as a set: valid names, directories win, the marker is no entry."""
    dirs = {k[len(prefix):-1] for k, d in items if d}
    files = {k[len(prefix):] for k, d in items if not d}
    return ({(n, True) for n in dirs if invalid_reason(n) is None}
            | {(n, False) for n in files - dirs if n and invalid_reason(n) is None})


@settings(deadline=None, max_examples=300)
@given(keys=_KEYS, prefix=st.sampled_from(["", "a/", "d/"]), data=st.data())
def test_any_page_split_gives_the_same_directory(keys, prefix, data):
    items = delimiter_items(keys, prefix)
    cuts = data.draw(st.lists(st.integers(0, len(items)), max_size=min(MAX_EMPTY_PAGES, 6)))
    whole = Listing(prefix, expires=0.0)
    whole.add_page(pages_of(items, [])[0])
    split = Listing(prefix, expires=0.0)
    for p in pages_of(items, cuts):
        split.add_page(p)
    assert split.complete and whole.complete
    assert names(split.entries) == names(whole.entries)  # entries, kinds and order
    assert set(names(whole.entries)) == expected_directory(items, prefix)
    assert len(whole.index) == len(whole.entries)  # each name once
    # Files come in the order of their keys, directories in that of their
    # prefixes: the servers' (byte) order, whatever Python's string order says.
    files = [key_bytes(n) for n, is_dir in names(whole.entries) if not is_dir]
    dirs = [key_bytes(n + "/") for n, is_dir in names(whole.entries) if is_dir]
    assert files == sorted(files) and dirs == sorted(dirs)

    # Unordered listings (directory buckets): any split of the items in any order.
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    shuffled = items[:]
    rng.shuffle(shuffled)
    unordered = Listing(prefix, expires=0.0, ordered=False)
    for p in pages_of(shuffled, cuts):
        unordered.add_page(p)
    assert names(unordered.entries) == sorted(names(whole.entries), key=lambda t: (t[0], not t[1]))


_NAME_BYTES = st.binary(min_size=1, max_size=NAME_MAX).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b".."))


@settings(deadline=None)
@given(raw=_NAME_BYTES, plus_is_space=st.booleans())
def test_key_bytes_and_names_map_to_each_other_losslessly(raw, plus_is_space):
    key = b"d/" + raw
    # The server lists the key percent-encoded (encoding-type=url)...
    page = parse_list(listing(quote_from_bytes(key, safe="/")), version=2,
                      plus_is_space=plus_is_space)
    (meta,) = page.objects
    assert key_bytes(meta.key) == key
    # ... readdir hands the kernel the name's bytes...
    lst = Listing("d/", expires=0.0)
    (entry,) = lst.add_page(page)
    assert key_bytes(entry.name) == raw and entry.name == meta.key[2:]
    # ... lookup makes the same name of them, and requests carry the key's bytes.
    assert name_of(raw) == entry.name
    assert unquote_to_bytes(uri_encode("d/" + name_of(raw), keep_slash=True)) == key


# -- memory: entries live in columns and are built when read ----------------------------------

def test_every_entry_reads_back_as_the_page_showed_it_whatever_the_columns_can_hold():
    metas = [
        ObjectMeta("d/md5", 5, 1_600_000_000, '"0123456789abcdef0123456789abcdef"'),  # in columns
        ObjectMeta("d/multipart", 7, 1, '"0123456789abcdef0123456789abcdef-2"'),
        ObjectMeta("d/upper", 1, 2, '"0123456789ABCDEF0123456789ABCDEF"'),
        ObjectMeta("d/none", 0, 0, None),
        ObjectMeta("d/huge", 1 << 64, -(1 << 70), '"0123456789abcdef0123456789abcdef"'),
        ObjectMeta("d/xattrs", 3, 3, '"0123456789abcdef0123456789abcdef"', {b"user.a": b"1"}),
    ]
    lst = Listing("d/", expires=0.0)
    shown = lst.add_page(ListPage(list(metas), ["d/sub/"], False, None))
    assert [e.meta for e in shown if isinstance(e, FileEntry)] == sorted(metas, key=lambda m: m.key)
    for m in metas:
        name = m.key[2:]
        e = lst.index[name]
        assert isinstance(e, FileEntry) and e.meta == m and e.meta.etag == m.etag and e.name == name
        assert lst.entries[e.pos] == e and lst.file(name) == e and lst.key_at(e.pos) == m.key
        assert e.meta.xattrs == m.xattrs
    assert set(lst.odd) == {lst.index[n].pos for n in ("multipart", "upper", "none", "huge", "xattrs")}
    assert lst.key_at(lst.index["sub"].pos) == "d/sub/" and isinstance(lst.index["sub"], DirEntry)
    assert "md5" in lst.index and "nope" not in lst.index and lst.index.get("nope") is None
    assert len(lst.index) == len(lst.entries) == 7 and lst.entries[-1] == lst.entries[6]
    assert lst.entries[1:3] == list(lst.entries)[1:3]

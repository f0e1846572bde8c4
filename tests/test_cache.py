"""metafs.cache: TTL trust with an injected clock, revalidation, LRU bounds."""

from __future__ import annotations

from metafs.cache import EvictHook, MetaCache
from metafs.dirlist import DirEntry, FileEntry, Listing
from metafs.s3.model import ObjectMeta
from tests.fakes import Clock

HEAD_XATTRS = {b"user.s3.etag": b"e1", b"user.color": b"blue"}


def listed(key: str, etag: str | None = '"e1"', size: int = 1) -> ObjectMeta:
    return ObjectMeta(key, size, 1_600_000_000, etag)


def headed(key: str, etag: str | None = '"e1"', size: int = 1) -> ObjectMeta:
    return ObjectMeta(key, size, 1_600_000_000, etag, dict(HEAD_XATTRS))


def make(ttl: float = 10.0, neg: float = 5.0, max_entries: int = 100,
         on_evict: EvictHook | None = None) -> tuple[MetaCache, Clock]:
    clock = Clock()
    return MetaCache(ttl, neg, max_entries=max_entries, clock=clock, on_evict=on_evict), clock


# -- time ---------------------------------------------------------------------------

def test_freshness_follows_the_injected_clock():
    c, clock = make(ttl=10)
    e = c.put_object(listed("k"))
    assert e.expires == 1010.0
    assert c.is_fresh(e.expires) and c.remaining(e.expires) == 10.0
    clock.t = 1009.5
    assert c.is_fresh(e.expires) and c.remaining(e.expires) == 0.5
    clock.t = 1010.0
    assert not c.is_fresh(e.expires) and c.remaining(e.expires) == 0.0
    clock.t = 2000.0
    assert c.remaining(e.expires) == 0.0
    assert c.now() == 2000.0


def test_expired_entries_are_kept_with_their_etag():
    c, clock = make(ttl=10)
    c.put_object(listed("k", '"abc"'))
    clock.t += 100
    e = c.known_object("k")
    assert e is not None and e.meta.etag == '"abc"' and not c.is_fresh(e.expires)


# -- objects ------------------------------------------------------------------------

def test_put_object_listing_entry_with_same_etag_keeps_head_headers_and_extends():
    c, clock = make(ttl=10)
    head = c.put_object(headed("k", '"same"'))
    assert head.expires == 1010.0
    clock.t = 1050.0
    out = c.put_object(listed("k", '"same"'))
    assert out is head
    assert out.meta.xattrs == HEAD_XATTRS
    assert out.expires == 1060.0
    assert c.known_object("k") is head


def test_put_object_listing_entry_with_other_etag_replaces():
    c, clock = make(ttl=10)
    c.put_object(headed("k", '"old"'))
    clock.t = 1050.0
    out = c.put_object(listed("k", '"new"', size=7))
    assert out.meta.xattrs is None and out.meta.etag == '"new"' and out.meta.size == 7
    assert out.expires == 1060.0
    assert c.known_object("k") is out


def test_put_object_without_etag_never_counts_as_same():
    c, _ = make()
    c.put_object(headed("k", None))
    out = c.put_object(listed("k", None))
    assert out.meta.xattrs is None


def test_put_object_head_level_replaces_even_with_same_etag():
    c, clock = make(ttl=10)
    c.put_object(headed("k", '"same"'))
    clock.t = 1005.0
    newer = ObjectMeta("k", 1, 1_600_000_000, '"same"', {b"user.color": b"red"})
    out = c.put_object(newer)
    assert out.meta is newer and out.expires == 1015.0


def test_listing_entry_does_not_upgrade_an_older_listing_entry():
    c, _ = make()
    first = c.put_object(listed("k", '"x"', size=1))
    second = c.put_object(listed("k", '"x"', size=2))
    assert second is not first and second.meta.size == 2


def test_touch_object_extends_without_replacing():
    c, clock = make(ttl=10)
    e = c.put_object(headed("k"))
    clock.t = 1100.0
    t = c.touch_object("k")
    assert t is e and e.expires == 1110.0 and e.meta.xattrs is not None
    assert c.touch_object("missing") is None
    assert c.known_object("missing") is None


def test_drop_object():
    c, _ = make()
    c.put_object(listed("k"))
    c.drop_object("k")
    c.drop_object("never")
    assert c.known_object("k") is None


# -- negatives ----------------------------------------------------------------------

def test_negative_entry_expires():
    c, clock = make(ttl=10, neg=5)
    assert c.put_negative("gone") == 1005.0
    assert c.negative_expiry("gone") == 1005.0
    clock.t = 1004.9
    assert c.negative_expiry("gone") == 1005.0
    clock.t = 1005.0
    assert c.negative_expiry("gone") is None
    assert c.figures()["cache.negatives"] == 0
    assert c.negative_expiry("never") is None


def test_zero_negative_ttl_stores_nothing():
    c, _ = make(ttl=10, neg=0)
    c.put_object(listed("k"))
    c.put_prefix("k/")
    assert c.put_negative("k") == 1000.0
    assert c.figures()["cache.negatives"] == 0
    assert c.negative_expiry("k") is None
    # ...but the positive knowledge is still withdrawn.
    assert c.known_object("k") is None
    assert c.prefix_expiry("k/") is None


def test_negative_removes_object_and_prefix_and_positive_removes_negative():
    c, _ = make()
    c.put_object(listed("k"))
    c.put_prefix("k/")
    c.put_negative("k")
    assert c.known_object("k") is None and c.prefix_expiry("k/") is None
    assert c.negative_expiry("k") is not None
    c.put_object(listed("k"))
    assert c.negative_expiry("k") is None
    c.put_negative("d")
    c.put_prefix("d/")
    assert c.negative_expiry("d") is None


# -- prefixes -------------------------------------------------------------------------

def test_prefix_expiry():
    c, clock = make(ttl=10)
    assert c.put_prefix("d/") == 1010.0
    assert c.prefix_expiry("d/") == 1010.0
    assert c.prefix_expiry("e/") is None
    clock.t = 1010.0
    assert c.prefix_expiry("d/") is None
    assert c.knows_prefix("d/")  # kept, like objects, only untrusted
    c.drop_prefix("d/")
    c.drop_prefix("never/")
    assert not c.knows_prefix("d/")


# -- LRU bounds -----------------------------------------------------------------------

def test_objects_lru_bound_holds():
    c, _ = make(max_entries=3)
    for k in "abcd":
        c.put_object(listed(k))
    assert c.figures()["cache.objects"] == 3
    assert c.known_object("a") is None
    assert all(c.known_object(k) is not None for k in "bcd")


def test_objects_lru_evicts_least_recently_used():
    c, _ = make(max_entries=3)
    for k in "abc":
        c.put_object(listed(k))
    assert c.known_object("a") is not None  # a is now the most recent
    c.put_object(listed("d"))
    assert c.known_object("b") is None
    assert c.known_object("a") is not None


def test_negatives_and_prefixes_bounded():
    c, _ = make(max_entries=2)
    for k in "abcde":
        c.put_negative(k)
        c.put_prefix("p" + k + "/")
    assert c.figures()["cache.negatives"] == 2 and c.figures()["cache.prefixes"] == 2
    assert c.negative_expiry("e") is not None and c.negative_expiry("a") is None
    assert c.prefix_expiry("pe/") is not None and c.prefix_expiry("pa/") is None


def grown(dir_key: str, n: int) -> Listing:
    lst = Listing(dir_key, expires=0.0)
    for i in range(n):
        lst._emit(DirEntry(f"f{i}"))
    return lst


def test_listings_weighed_by_entries():
    c, _ = make(max_entries=10)
    a, b = grown("a/", 3), grown("b/", 3)  # weight 4 each
    c.put_listing(a)
    c.put_listing(b)
    assert c.figures()["cache.listed-entries"] == 8
    c.put_listing(grown("c/", 3))  # 12 > 10: the least recent goes
    assert c.listing("a/") is None
    assert c.listing("b/") is b and c.listing("c/") is not None
    assert c.figures()["cache.listed-entries"] <= 10


def test_resize_listing_reweighs_and_evicts_others():
    c, _ = make(max_entries=10)
    other = grown("o/", 2)        # weight 3
    lst = Listing("d/", expires=0.0)  # weight 1 while empty
    c.put_listing(other)
    c.put_listing(lst)
    assert c.figures()["cache.listed-entries"] == 4
    for i in range(8):
        lst._emit(DirEntry(f"f{i}"))
    c.resize_listing(lst)  # weight 9: 9 + 3 > 10
    assert c.listing("d/") is lst
    assert c.listing("o/") is None
    assert c.figures()["cache.listed-entries"] == 9


def test_resize_listing_drops_listing_bigger_than_the_bound():
    c, _ = make(max_entries=10)
    other = grown("o/", 1)
    lst = Listing("d/", expires=0.0)
    c.put_listing(other)
    c.put_listing(lst)
    for i in range(10):  # weight 11 > 10
        lst._emit(DirEntry(f"f{i}"))
    c.resize_listing(lst)
    assert c.listing("d/") is None
    assert c.listing("o/") is other
    assert c.figures()["cache.listed-entries"] <= 10


def test_resize_listing_ignores_a_listing_no_longer_cached():
    c, _ = make(max_entries=10)
    old = grown("d/", 1)
    new = grown("d/", 2)
    c.put_listing(old)
    c.put_listing(new)  # replaced (e.g. re-listed after the TTL)
    c.resize_listing(old)
    assert c.listing("d/") is new
    c2, _ = make(max_entries=10)
    c2.resize_listing(grown("x/", 1))
    assert c2.listing("x/") is None


def _listing(dir_key: str, n: int) -> Listing:
    lst = Listing(dir_key, 2000.0)
    for i in range(n):
        lst._emit(FileEntry(f"f{i}", listed(f"{dir_key}f{i}")))
    return lst


def test_bound_evictions_are_reported_explicit_drops_are_not() -> None:
    seen: list[tuple[str, str]] = []
    c, _ = make(max_entries=2, on_evict=lambda table, key, value: seen.append((table, key)))
    c.put_object(listed("a"))
    c.put_object(listed("b"))
    c.drop_object("a")                        # explicit: not an eviction
    c.put_object(listed("c"))
    c.put_object(listed("d"))                 # bound of 2: 'b' is least recently used
    assert seen == [("objects", "b")]
    c.put_negative("x")
    c.put_negative("y")
    c.put_negative("z")
    c.put_prefix("p/")
    assert seen[1:] == [("negatives", "x")]


def test_listing_evictions_are_reported_and_a_growing_listing_never_evicts_itself() -> None:
    seen: list[tuple[str, str, object]] = []
    c, _ = make(max_entries=10, on_evict=lambda table, key, value: seen.append((table, key, value)))
    old = _listing("old/", 3)
    c.put_listing(old)                        # weight 4
    growing = _listing("new/", 1)
    c.put_listing(growing)                    # weight 2: total 6
    for e in _listing("new/", 6).entries[1:]:
        growing._emit(e)
    c.resize_listing(growing)                 # weight 7: 'old' (4) must go, not 'new'
    assert seen == [("listings", "old/", old)]
    assert c.listing("new/") is growing and c.listing("old/") is None

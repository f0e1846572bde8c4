"""metafs.inodes: allocation, kind changes and the lookup-count contract."""

from __future__ import annotations

from metafs.inodes import ROOT_INODE, InodeTable


def test_root_is_inode_1_and_pinned():
    t = InodeTable("pre/")
    root = t.get(ROOT_INODE)
    assert ROOT_INODE == 1
    assert root is not None and root.is_dir and root.key == "pre/" and root.nlookup == 1
    assert len(t) == 1


def test_allocation_starts_at_2_and_counts_up():
    t = InodeTable()
    root = t.get(1)
    a = t.ensure(root, "a", False)
    b = t.ensure(root, "b", True)
    c = t.ensure(b, "c", False)
    assert (a.ino, b.ino, c.ino) == (2, 3, 4)
    assert a.key == "a" and b.key == "b/" and c.key == "b/c"
    assert c.parent == b.ino and a.parent == ROOT_INODE
    assert t.child(ROOT_INODE, "a") is a and t.child(b.ino, "c") is c
    assert t.child(ROOT_INODE, "c") is None


def test_keys_under_a_mount_prefix():
    t = InodeTable("top/")
    d = t.ensure(t.get(1), "d", True)
    f = t.ensure(d, "f", False)
    assert d.key == "top/d/" and f.key == "top/d/f"


def test_same_parent_name_kind_gives_same_inode():
    t = InodeTable()
    root = t.get(1)
    a1 = t.ensure(root, "a", False)
    a2 = t.ensure(root, "a", False)
    assert a1 is a2 and a1.ino == 2
    assert len(t) == 2
    # ensure does not count lookups
    assert a1.nlookup == 0


def test_same_name_in_different_parents_gives_different_inodes():
    t = InodeTable()
    root = t.get(1)
    d = t.ensure(root, "d", True)
    x1 = t.ensure(root, "x", False)
    x2 = t.ensure(d, "x", False)
    assert x1.ino != x2.ino


def test_inode_numbers_are_never_reused():
    t = InodeTable()
    root = t.get(1)
    a = t.ensure(root, "a", False)
    t.remember(a)
    t.forget([(a.ino, 1)])
    assert t.get(a.ino) is None and t.child(1, "a") is None
    a_again = t.ensure(root, "a", False)
    assert a_again.ino == 3
    t.discard_if_unused(a_again)
    assert t.ensure(root, "a", False).ino == 4


def test_kind_change_gives_new_inode_and_old_survives_until_forgotten():
    t = InodeTable()
    root = t.get(1)
    old = t.ensure(root, "a", False)
    t.remember(old)
    t.remember(old)
    new = t.ensure(root, "a", True)
    assert new.ino != old.ino and new.ino == 3
    assert new.is_dir and new.key == "a/" and not old.is_dir and old.key == "a"
    assert t.child(1, "a") is new
    assert t.get(old.ino) is old  # detached, still answerable
    t.forget([(old.ino, 1)])
    assert t.get(old.ino) is old  # one lookup left
    t.forget([(old.ino, 1)])
    assert t.get(old.ino) is None
    # Forgetting the old inode did not remove the new child mapping.
    assert t.child(1, "a") is new
    assert t.get(new.ino) is new
    # And the kind flipping back yields yet another inode.
    back = t.ensure(root, "a", False)
    assert back.ino == 4 and t.child(1, "a") is back


def test_discard_of_old_kind_does_not_remove_new_mapping():
    t = InodeTable()
    root = t.get(1)
    old = t.ensure(root, "a", True)
    new = t.ensure(root, "a", False)
    t.discard_if_unused(old)
    assert t.get(old.ino) is None
    assert t.child(1, "a") is new


def test_remember_and_forget_counts():
    t = InodeTable()
    f = t.ensure(t.get(1), "f", False)
    for _ in range(3):
        t.remember(f)
    assert f.nlookup == 3
    t.forget([(f.ino, 2)])
    assert f.nlookup == 1 and t.get(f.ino) is f and t.child(1, "f") is f
    t.forget([(f.ino, 1)])
    assert f.nlookup == 0
    assert t.get(f.ino) is None and t.child(1, "f") is None
    assert len(t) == 1


def test_forget_more_than_counted_drops_without_error():
    t = InodeTable()
    f = t.ensure(t.get(1), "f", False)
    t.remember(f)
    t.forget([(f.ino, 5)])
    assert t.get(f.ino) is None


def test_forget_batch_with_several_inodes():
    t = InodeTable()
    root = t.get(1)
    a, b = t.ensure(root, "a", False), t.ensure(root, "b", False)
    t.remember(a)
    t.remember(b)
    t.remember(b)
    t.forget([(a.ino, 1), (b.ino, 1)])
    assert t.get(a.ino) is None and t.get(b.ino) is b and b.nlookup == 1


def test_root_is_never_dropped():
    t = InodeTable()
    t.forget([(ROOT_INODE, 1), (ROOT_INODE, 100)])
    root = t.get(ROOT_INODE)
    assert root is not None and root.nlookup == 1
    t.discard_if_unused(root)
    assert t.get(ROOT_INODE) is root


def test_forget_of_unknown_inode_does_not_raise():
    t = InodeTable()
    f = t.ensure(t.get(1), "f", False)
    t.remember(f)
    t.forget([(999, 1), (f.ino, 1), (f.ino, 1), (12345, 7)])
    assert t.get(f.ino) is None
    assert len(t) == 1


def test_discard_if_unused():
    t = InodeTable()
    root = t.get(1)
    unused = t.ensure(root, "u", False)
    used = t.ensure(root, "v", False)
    t.remember(used)
    t.discard_if_unused(unused)
    t.discard_if_unused(used)
    assert t.get(unused.ino) is None and t.child(1, "u") is None
    assert t.get(used.ino) is used and t.child(1, "v") is used


def test_find_dir_walks_names_the_kernel_holds() -> None:
    t = InodeTable("pre/")
    root = t.get(1)
    a = t.ensure(root, "a", True)
    b = t.ensure(a, "b", True)
    t.ensure(a, "f", False)
    assert t.find_dir("pre/") is root
    assert t.find_dir("pre/a/b/") is b
    assert t.find_dir("pre/a/f/") is None      # a file is no directory
    assert t.find_dir("pre/x/") is None        # never handed to the kernel
    assert t.find_dir("other/a/") is None      # outside the mounted prefix


def test_dentries_for_names_known_or_possibly_negative() -> None:
    t = InodeTable()
    root = t.get(1)
    d = t.ensure(root, "d", True)
    t.ensure(d, "x", False)
    t.ensure(d, "y", True)
    assert t.dentries_for("d/", ["x", "y", "z"]) == [(d.ino, "x"), (d.ino, "y")]
    assert t.dentries_for("d/", ["z"], known_only=False) == [(d.ino, "z")]
    assert t.dentries_for("nope/", ["x"], known_only=False) == []


# -- readdirplus: inodes without a Node (offer / took) ----------------------------------------
def _readdir(t: InodeTable, parent, names: list[str], is_dir: bool = False) -> list[int]:
    """What readdir does per entry the kernel takes: offer, reply, took."""
    inos = []
    for n in names:
        inos.append(t.offer(parent, n, is_dir))
        t.took()
    return inos


def test_readdirplus_inodes_are_counted_without_nodes_and_found_by_number_and_name():
    t = InodeTable("pre/")
    root = t.get(ROOT_INODE)
    d = t.ensure(root, "d", True)
    inos = _readdir(t, d, ["a", "b", "c"])
    assert inos == [3, 4, 5] and len(t) == 5 and t._lazy_live == 3
    assert _readdir(t, d, ["a", "b", "c"]) == inos  # listed again: the same inodes, counted again
    assert sorted(t.nodes) == [1, 2, 3, 4, 5]
    assert t.dentries_for("pre/d/", ["a", "zz"]) == [(2, "a")] and t._lazy_live == 3  # no Node made
    assert t.held(4) == (2, False) and t.held(2) == (0, True) and t.held(99) is None
    assert t._lazy_live == 3
    b = t.get(4)  # the first use of the inode by number makes it a Node, count kept
    assert b is not None and (b.name, b.key, b.parent, b.is_dir, b.nlookup) == ("b", "pre/d/b", 2, False, 2)
    assert t.get(4) is b and t.child(d.ino, "b") is b and t._lazy_live == 2
    assert t.offer(d, "b", False) == 4
    t.took()
    assert b.nlookup == 3
    c = t.child(d.ino, "c")  # ...or by name
    assert c is not None and c.ino == 5 and c.nlookup == 2
    assert t.ensure(d, "a", False).ino == 3  # a lookup of the name gets the same inode


def test_forget_of_readdirplus_inodes_is_exact():
    t = InodeTable()
    root = t.get(ROOT_INODE)
    inos = _readdir(t, root, ["x", "y"])
    _readdir(t, root, ["x"])
    t.forget([(inos[0], 1), (inos[1], 1)])
    assert len(t) == 2 and t.get(inos[1]) is None  # y gone; x held once more
    x = t.get(inos[0])
    assert x is not None and x.nlookup == 1
    t.forget([(inos[0], 1)])
    assert len(t) == 1 and t.get(inos[0]) is None and t._lazy == {}
    # A name listed again after it was forgotten: a new inode, never a reused one.
    assert _readdir(t, root, ["x", "y"]) == [inos[1] + 1, inos[1] + 2]
    t.forget([(inos[1] + 1, 5), (inos[1] + 2, 1), (999, 1)])  # more than held; unknown: ignored
    assert len(t) == 1 and t._run_starts == []  # every table and run released


def test_an_entry_the_kernel_did_not_take_allocates_nothing():
    t = InodeTable()
    root = t.get(ROOT_INODE)
    assert t.offer(root, "a", False) == 2
    t.untaken()
    assert len(t) == 1 and t.offer(root, "a", False) == 2  # the number is offered again
    t.took()
    assert len(t) == 2


def test_a_listed_name_that_changed_kind_gets_a_new_inode_and_the_old_lives_until_forgotten():
    t = InodeTable()
    root = t.get(ROOT_INODE)
    [old] = _readdir(t, root, ["n"], is_dir=False)
    new = t.offer(root, "n", True)
    assert new != old
    t.untaken()  # not taken: the file keeps its slot
    assert t.child(ROOT_INODE, "n").ino == old
    new = t.offer(root, "n", True)
    t.took()
    assert t.child(ROOT_INODE, "n").ino == new and t.get(new).is_dir
    assert t.get(old).nlookup == 1  # detached, held until the kernel forgets it
    t.forget([(old, 1)])
    assert t.get(old) is None and t.child(ROOT_INODE, "n").ino == new


def test_runs_find_inodes_of_interleaved_directories():
    t = InodeTable()
    root = t.get(ROOT_INODE)
    d1, d2 = t.ensure(root, "d1", True), t.ensure(root, "d2", True)
    a = _readdir(t, d1, ["a0", "a1"])
    b = _readdir(t, d2, ["b0"])
    a += _readdir(t, d1, ["a2", "a3"])
    assert a == [4, 5, 7, 8] and b == [6]
    assert [t.get(i).key for i in a + b] == ["d1/a0", "d1/a1", "d1/a2", "d1/a3", "d2/b0"]
    assert sorted(n for _, n in t.dentries_for("d1/", ["a0", "zz"])) == ["a0"]
    assert sorted(name for _, name, _ in t.items()) == ["a0", "a1", "a2", "a3", "b0", "d1", "d2"]

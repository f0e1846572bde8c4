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

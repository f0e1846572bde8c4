"""metafs.compact.NameIndex: names found by name, newest position wins, cleared names gone."""

from __future__ import annotations

from metafs.compact import NameIndex


def test_names_are_found_at_their_position_through_growth():
    idx = NameIndex()
    names = [f"n{i}" for i in range(5000)] + ["", "é", "\udcff", "a/b"]
    for i, n in enumerate(names):
        assert idx.append(n) == i
    assert len(idx) == len(names)
    assert all(idx.find(n) == i for i, n in enumerate(names))
    assert idx.find("n5000") == -1 and idx.find("x") == -1
    assert idx.nbytes() <= 16 * 4 * len(names)  # a table of at most 4 slots of 4 bytes a name, and the list


def test_the_newest_position_of_a_name_wins_and_a_cleared_name_is_not_found():
    idx = NameIndex()
    for n in "abc":
        idx.append(n)
    assert idx.append("b") == 3 and idx.find("b") == 3
    idx.clear(3)
    assert idx.find("b") == -1 and idx.names[3] is None
    assert idx.append("b") == 4 and idx.find("b") == 4
    for i in range(1000):  # growth rebuilds the table from the live names only
        idx.append(f"x{i}")
    assert idx.find("b") == 4 and idx.find("a") == 0 and idx.find("x999") == 1004
    idx.clear(0)
    assert idx.find("a") == -1

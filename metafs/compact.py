"""Names found by name at a few bytes each: the index of a listing and of an inode table.

A ``dict`` of name -> position costs about 75 bytes per name at a million
names (its entry and index slots, and an ``int`` object per position past
256); :class:`NameIndex` keeps the names in one list and the positions in
an open-addressing table of 32-bit integers, 8 to 16 bytes per name (issue
12, target 5: README, memory).  Pure and synchronous.
"""

from __future__ import annotations

from array import array


class NameIndex:
    """Append-only names, each found by name (:meth:`find`) to its newest position.

    ``names[pos]`` is the name appended at ``pos``; :meth:`clear` sets it to
    None (the position stays taken, so positions are stable, and the name
    is no longer found there).  The table holds ``position + 1`` (0: empty),
    linearly probed from the name's ``hash``; it is kept at most half full,
    so a lookup probes about two slots.
    """

    __slots__ = ("names", "_table", "_mask", "_used")

    def __init__(self) -> None:
        self.names: list[str | None] = []
        self._mask = 7
        self._table = array("i", bytes(4 * (self._mask + 1)))
        self._used = 0  # table slots taken (cleared names' included, until the next growth)

    def __len__(self) -> int:
        return len(self.names)

    def find(self, name: str) -> int:
        """The newest position of ``name``, or -1."""
        t, mask, names = self._table, self._mask, self.names
        i = hash(name) & mask
        while p := t[i]:
            if names[p - 1] == name:
                return p - 1
            i = (i + 1) & mask
        return -1

    def append(self, name: str) -> int:
        """Append ``name``; from now on it is found at the returned position."""
        pos = len(self.names)
        self.names.append(name)
        t, mask, names = self._table, self._mask, self.names
        i = hash(name) & mask
        while p := t[i]:
            if names[p - 1] == name:
                t[i] = pos + 1  # an earlier position of the name: the newest one wins
                return pos
            i = (i + 1) & mask
        t[i] = pos + 1
        self._used += 1
        if 2 * self._used > mask:
            self._grow()
        return pos

    def clear(self, pos: int) -> None:
        """Forget the name at ``pos``: it is no longer found (there)."""
        self.names[pos] = None

    def _grow(self) -> None:
        size = 2 * (self._mask + 1)
        while 4 * len(self.names) > size:  # a quarter to a half full after growing
            size *= 2
        self._mask = mask = size - 1
        self._table = t = array("i", bytes(4 * size))
        used = 0
        for pos, name in enumerate(self.names):
            if name is None:
                continue
            i = hash(name) & mask
            while p := t[i]:
                if self.names[p - 1] == name:
                    break
                i = (i + 1) & mask
            else:
                used += 1
            t[i] = pos + 1
        self._used = used

    def nbytes(self) -> int:
        """Bytes of the table and the list's slots (not the names themselves)."""
        return self._table.itemsize * len(self._table) + 8 * len(self.names)

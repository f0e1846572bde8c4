"""Inode numbers and kernel lookup counts.  Pure and synchronous.

Rules (pyfuse3's lookup-count contract, mountpoint-s3's InodeMap):

* An inode number is allocated the first time a (parent, name, kind) is
  handed to the kernel and is never reused (they start at 2; 1 is the
  root), so ``generation`` can stay 0.  Inode numbers are not stable
  across mounts.
* If a name changes kind (object <-> prefix), it gets a *new* inode: the
  kernel treats an inode whose file type changes as corrupt.
* ``remember`` counts one kernel lookup: each successful ``lookup`` reply
  and each ``readdir_reply`` that returned True.  ``forget`` subtracts;
  at zero the node is dropped, and its (parent, name) slot is freed only
  if it still points at this inode.  The root is never dropped.
* Callers do any I/O first, then call these methods with no ``await`` in
  between: in trio that is what makes check-and-increment atomic.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

log = logging.getLogger(__name__)

ROOT_INODE = 1


class Node:
    """One inode: a directory (key ends with '/', or is the root prefix) or a file."""

    __slots__ = ("ino", "parent", "name", "key", "is_dir", "nlookup")

    def __init__(self, ino: int, parent: int, name: str, key: str, is_dir: bool) -> None:
        self.ino = ino
        self.parent = parent
        self.name = name
        self.key = key
        self.is_dir = is_dir
        self.nlookup = 0

    def __repr__(self) -> str:
        return f"Node({self.ino}, {self.key!r}, {'dir' if self.is_dir else 'file'}, n={self.nlookup})"


class InodeTable:
    def __init__(self, root_key: str = "") -> None:
        self.nodes: dict[int, Node] = {}
        # parent inode -> name -> Node: the node itself, not its number, so
        # readdir's per-entry ensure() is two dict probes; one dict per
        # directory rather than one keyed by (parent, name), whose key tuple
        # cost 56 bytes per entry (a fifth of an entry's inode).
        self.children: dict[int, dict[str, Node]] = {}
        # new inode -> the node of the other kind it displaced from its slot
        self._displaced: dict[int, Node] = {}
        self._next = ROOT_INODE + 1
        root = Node(ROOT_INODE, ROOT_INODE, "", root_key, True)
        root.nlookup = 1  # pinned: the kernel never forgets the root
        self.nodes[ROOT_INODE] = root

    def __len__(self) -> int:
        return len(self.nodes)

    def get(self, ino: int) -> Node | None:
        return self.nodes.get(ino)

    def child(self, parent: int, name: str) -> Node | None:
        names = self.children.get(parent)
        return None if names is None else names.get(name)

    def ensure(self, parent: Node, name: str, is_dir: bool, key: str | None = None) -> Node:
        """The node for ``name`` in ``parent`` with this kind, allocating if needed.

        Does not count a lookup: call :meth:`remember` once the kernel has
        actually been told (and :meth:`discard_if_unused` if it was not).
        """
        names = self.children.get(parent.ino)
        if names is None:
            names = self.children[parent.ino] = {}
        node = names.get(name)
        if node is not None and node.is_dir == is_dir:
            return node
        # Absent, or the kind changed: then the old inode lives on until forgotten, detached.
        if key is None:  # callers that hold the key pass it: one string, not two
            key = parent.key + name + ("/" if is_dir else "")
        new = Node(self._next, parent.ino, name, key, is_dir)
        self._next += 1
        self.nodes[new.ino] = new
        names[name] = new
        if node is not None:
            self._displaced[new.ino] = node  # back in its slot if the kernel never takes `new`
        return new

    def find_dir(self, dir_key: str) -> Node | None:
        """The directory node for ``dir_key`` (``a/b/``), if the kernel holds the whole path."""
        root = self.nodes[ROOT_INODE]
        if not dir_key.startswith(root.key):
            return None
        node = root
        for part in dir_key[len(root.key):].split("/")[:-1]:
            child = self.child(node.ino, part)
            if child is None or not child.is_dir:
                return None
            node = child
        return node

    def dentries_for(self, dir_key: str, names: Iterable[str], *, known_only: bool = True
                     ) -> list[tuple[int, str]]:
        """(parent inode, name) of the kernel's entries for ``names`` in ``dir_key``.

        With ``known_only``, only names that have a node (the kernel holds
        them); without, every name (the kernel may also hold a *negative*
        entry, which has no node).  Empty if the kernel does not hold the
        directory itself.
        """
        parent = self.find_dir(dir_key)
        if parent is None:
            return []
        ino, children = parent.ino, self.children.get(parent.ino, {})
        return [(ino, n) for n in names if not known_only or n in children]

    def remember(self, node: Node) -> None:
        node.nlookup += 1

    def discard_if_unused(self, node: Node) -> None:
        """Drop a node allocated for a reply the kernel did not take.

        If it displaced a node of the other kind that the kernel still
        holds, that node gets its slot back: a name the kernel never saw
        change kind keeps its inode.
        """
        if node.nlookup == 0 and node.ino != ROOT_INODE:
            old = self._displaced.get(node.ino)
            self._drop(node)
            if old is not None and self.nodes.get(old.ino) is old:
                self.children.setdefault(node.parent, {}).setdefault(node.name, old)

    def forget(self, items: Iterable[tuple[int, int]]) -> None:
        """Apply the kernel's FORGET batch.  Never raises."""
        for ino, n in items:
            node = self.nodes.get(ino)
            if node is None:
                log.debug("forget of unknown inode %d", ino)
                continue
            if ino == ROOT_INODE:
                continue
            node.nlookup = max(0, node.nlookup - n)
            if node.nlookup == 0:
                self._drop(node)

    def _drop(self, node: Node) -> None:
        del self.nodes[node.ino]
        self._displaced.pop(node.ino, None)
        names = self.children.get(node.parent)
        if names is not None and names.get(node.name) is node:
            del names[node.name]
            if not names:
                del self.children[node.parent]

    def items(self) -> Iterator[tuple[int, str, Node]]:
        """Every (parent inode, name, node) the table holds by name."""
        for pino, names in self.children.items():
            for name, node in names.items():
                yield pino, name, node

    def named_in(self, parent: int) -> list[tuple[str, Node]]:
        """The (name, node) pairs held in directory ``parent``."""
        return list(self.children.get(parent, {}).items())

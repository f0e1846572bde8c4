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

Memory (issue 12, target 5): ``ls -l`` of a million entries hands the
kernel a million inodes through readdirplus, most of which it never asks
about again.  Those are not :class:`Node` objects: readdir's
:meth:`InodeTable.offer` / :meth:`InodeTable.took` keep an inode the
kernel got only from readdirplus in its directory's compact table (the
name, shared with the listing; the number and count in arrays; ~35 bytes
an entry where a Node with its dict slots cost ~200).  Inode numbers of
such entries are handed out in runs, so the table of an inode is found
by bisecting the runs.  The first time anything needs the inode as a
Node (:meth:`get` from any handler, a lookup of its name, :meth:`child`,
:meth:`items`), it becomes one, with its count; from then on it lives
as a Node.  Either way the lookup-count rules above hold exactly.  A
forgotten slot keeps its place (~25 bytes, not its name) until every
inode of its table is forgotten, then the table goes.
"""

from __future__ import annotations

import bisect
import logging
from array import array
from collections.abc import Iterable, Iterator, Mapping

from .compact import NameIndex

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


class _Slots:
    """The inodes of one directory the kernel got only from readdirplus (see the module docstring).

    Slot ``s`` is the name ``index.names[s]``, inode ``inos[s]`` (0: the
    slot is dead: forgotten, or a Node now), kind ``flags[s]``, and kernel
    lookup count ``counts[s]``.  Dead slots keep their place (inode runs
    address slots by position) but not their name.
    """

    __slots__ = ("parent", "dir_key", "index", "inos", "counts", "flags", "live", "runs")

    def __init__(self, parent: int, dir_key: str) -> None:
        self.parent = parent
        self.dir_key = dir_key  # the parent's key: a slot's Node key is dir_key + name
        self.index = NameIndex()
        self.inos = array("q")
        self.counts = array("q")
        self.flags = bytearray()
        self.live = 0
        self.runs = 0  # inode runs that address this table

    def find(self, name: str) -> int:
        """The live slot of ``name``, or -1."""
        s = self.index.find(name)
        return s if s >= 0 and self.inos[s] else -1

    def kill(self, s: int) -> None:
        self.inos[s] = 0
        self.counts[s] = 0
        self.index.clear(s)
        self.live -= 1


class _NodesView(Mapping[int, Node]):
    """``InodeTable.nodes``: every inode by number, each a Node once read (tests, figures)."""

    __slots__ = ("_table",)

    def __init__(self, table: InodeTable) -> None:
        self._table = table

    def __getitem__(self, ino: int) -> Node:
        node = self._table.get(ino)
        if node is None:
            raise KeyError(ino)
        return node

    def __iter__(self) -> Iterator[int]:
        return iter(self._table.inode_numbers())

    def __len__(self) -> int:
        return len(self._table)


class InodeTable:
    def __init__(self, root_key: str = "") -> None:
        self._nodes: dict[int, Node] = {}
        self.nodes = _NodesView(self)
        # Inodes the kernel got only from readdirplus: parent inode -> its compact table...
        self._lazy: dict[int, _Slots] = {}
        self._lazy_live = 0
        # ...and runs of consecutive inode numbers in consecutive slots of one table:
        # run k is inodes _run_starts[k] .. + _run_lens[k], slots _run_first[k] .. of
        # _run_slots[k].  Appended in inode order, so _run_starts stays sorted.
        self._run_starts: list[int] = []
        self._run_lens: list[int] = []
        self._run_first: list[int] = []
        self._run_slots: list[_Slots] = []
        self._dead_runs = 0  # runs of dead tables, dropped when they are half of them
        # What offer() offered, for took(): a Node, a live slot, or a new slot's (parent, name, kind).
        self._offered: Node | tuple[_Slots, int] | tuple[Node, str, bool] | None = None
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
        self._nodes[ROOT_INODE] = root

    def __len__(self) -> int:
        return len(self._nodes) + self._lazy_live

    def inode_numbers(self) -> list[int]:
        """Every inode number the table holds (the kernel's), Nodes or not."""
        return list(self._nodes) + [ino for slots in self._lazy.values() for ino in slots.inos if ino]

    def get(self, ino: int) -> Node | None:
        node = self._nodes.get(ino)
        if node is None:
            found = self._lazy_slot(ino)
            if found is not None:
                node = self._materialize(*found)
        return node

    def held(self, ino: int) -> tuple[int, bool] | None:
        """The kernel's lookup count and the kind (is_dir) of ``ino``, without making it a Node."""
        node = self._nodes.get(ino)
        if node is not None:
            return node.nlookup, node.is_dir
        found = self._lazy_slot(ino)
        if found is None:
            return None
        slots, s = found
        return slots.counts[s], bool(slots.flags[s])

    def child(self, parent: int, name: str) -> Node | None:
        names = self.children.get(parent)
        node = None if names is None else names.get(name)
        if node is None:
            slots = self._lazy.get(parent)
            if slots is not None and (s := slots.find(name)) >= 0:
                node = self._materialize(slots, s)
        return node

    # -- readdirplus: inodes without a Node (see the module docstring) ----------------------
    def offer(self, parent: Node, name: str, is_dir: bool) -> int:
        """The inode readdirplus shows for ``name`` in ``parent`` with this kind.

        The one the kernel holds, or the number :meth:`took` will allocate.
        Counts nothing: call :meth:`took` once the kernel took the entry,
        or :meth:`untaken` if it did not, before anything else uses the table.
        """
        names = self.children.get(parent.ino)
        node = None if names is None else names.get(name)
        if node is None:
            slots = self._lazy.get(parent.ino)
            s = -1 if slots is None else slots.find(name)
            if s < 0:
                self._offered = (parent, name, is_dir)
                return self._next
            assert slots is not None
            if slots.flags[s] == is_dir:
                self._offered = (slots, s)
                return slots.inos[s]
            self._materialize(slots, s)  # the kind changed: the Node rules decide
        node = self.ensure(parent, name, is_dir)
        self._offered = node
        return node.ino

    def took(self) -> None:
        """The kernel took the entry :meth:`offer` offered: count one lookup."""
        o, self._offered = self._offered, None
        if isinstance(o, Node):
            o.nlookup += 1
            return
        assert o is not None, "took() without offer()"
        if len(o) == 2:
            held, s = o
            held.counts[s] += 1
            return
        parent, name, is_dir = o
        slots = self._lazy.get(parent.ino) or _Slots(parent.ino, parent.key)
        self._lazy[parent.ino] = slots
        ino = self._next
        self._next = ino + 1
        s = slots.index.append(name)  # _Slots.add, inlined: readdir's hot loop
        slots.inos.append(ino)
        slots.counts.append(1)
        slots.flags.append(is_dir)
        slots.live += 1
        self._lazy_live += 1
        if (self._run_slots and self._run_slots[-1] is slots
                and self._run_starts[-1] + self._run_lens[-1] == ino
                and self._run_first[-1] + self._run_lens[-1] == s):
            self._run_lens[-1] += 1
        else:
            self._run_starts.append(ino)
            self._run_lens.append(1)
            self._run_first.append(s)
            self._run_slots.append(slots)
            slots.runs += 1

    def untaken(self) -> None:
        """The kernel did not take the entry :meth:`offer` offered."""
        o, self._offered = self._offered, None
        if isinstance(o, Node):
            self.discard_if_unused(o)

    def _lazy_slot(self, ino: int) -> tuple[_Slots, int] | None:
        k = bisect.bisect_right(self._run_starts, ino) - 1
        if k < 0 or ino - self._run_starts[k] >= self._run_lens[k]:
            return None
        slots = self._run_slots[k]
        s = self._run_first[k] + ino - self._run_starts[k]
        return (slots, s) if slots.inos[s] == ino else None

    def _materialize(self, slots: _Slots, s: int) -> Node:
        """The slot's inode becomes a Node, with its count (the slot dies)."""
        name = slots.index.names[s]
        assert name is not None
        is_dir = bool(slots.flags[s])
        node = Node(slots.inos[s], slots.parent, name, slots.dir_key + name + ("/" if is_dir else ""),
                    is_dir)
        node.nlookup = slots.counts[s]
        self._kill(slots, s)
        self._nodes[node.ino] = node
        self.children.setdefault(node.parent, {})[name] = node
        return node

    def _kill(self, slots: _Slots, s: int) -> None:
        slots.kill(s)
        self._lazy_live -= 1
        if slots.live == 0:
            if self._lazy.get(slots.parent) is slots:
                del self._lazy[slots.parent]
            self._dead_runs += slots.runs
            if 2 * self._dead_runs > len(self._run_slots):
                self._drop_dead_runs()

    def _drop_dead_runs(self) -> None:
        keep = [k for k, t in enumerate(self._run_slots) if t.live]
        self._run_starts = [self._run_starts[k] for k in keep]
        self._run_lens = [self._run_lens[k] for k in keep]
        self._run_first = [self._run_first[k] for k in keep]
        self._run_slots = [self._run_slots[k] for k in keep]
        self._dead_runs = 0

    def ensure(self, parent: Node, name: str, is_dir: bool, key: str | None = None) -> Node:
        """The node for ``name`` in ``parent`` with this kind, allocating if needed.

        Does not count a lookup: call :meth:`remember` once the kernel has
        actually been told (and :meth:`discard_if_unused` if it was not).
        """
        names = self.children.get(parent.ino)
        if names is None:
            names = self.children[parent.ino] = {}
        node = names.get(name)
        if node is None and (slots := self._lazy.get(parent.ino)) is not None \
                and (s := slots.find(name)) >= 0:
            node = self._materialize(slots, s)
        if node is not None and node.is_dir == is_dir:
            return node
        # Absent, or the kind changed: then the old inode lives on until forgotten, detached.
        if key is None:  # callers that hold the key pass it: one string, not two
            key = parent.key + name + ("/" if is_dir else "")
        new = Node(self._next, parent.ino, name, key, is_dir)
        self._next += 1
        self._nodes[new.ino] = new
        names[name] = new
        if node is not None:
            self._displaced[new.ino] = node  # back in its slot if the kernel never takes `new`
        return new

    def find_dir(self, dir_key: str) -> Node | None:
        """The directory node for ``dir_key`` (``a/b/``), if the kernel holds the whole path."""
        root = self._nodes[ROOT_INODE]
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
        slots = self._lazy.get(ino)
        return [(ino, n) for n in names if not known_only or n in children
                or (slots is not None and slots.find(n) >= 0)]

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
            if old is not None and self._nodes.get(old.ino) is old:
                self.children.setdefault(node.parent, {}).setdefault(node.name, old)

    def forget(self, items: Iterable[tuple[int, int]]) -> None:
        """Apply the kernel's FORGET batch.  Never raises."""
        for ino, n in items:
            node = self._nodes.get(ino)
            if node is None:
                found = self._lazy_slot(ino)
                if found is None:
                    log.debug("forget of unknown inode %d", ino)
                    continue
                slots, s = found
                slots.counts[s] = left = max(0, slots.counts[s] - n)
                if left == 0:
                    self._kill(slots, s)
                continue
            if ino == ROOT_INODE:
                continue
            node.nlookup = max(0, node.nlookup - n)
            if node.nlookup == 0:
                self._drop(node)

    def _drop(self, node: Node) -> None:
        del self._nodes[node.ino]
        self._displaced.pop(node.ino, None)
        names = self.children.get(node.parent)
        if names is not None and names.get(node.name) is node:
            del names[node.name]
            if not names:
                del self.children[node.parent]

    def _materialize_all(self, parent: int | None = None) -> None:
        """Every inode of ``parent`` (of every directory: None) becomes a Node."""
        tables = list(self._lazy.values()) if parent is None else \
            [t for t in (self._lazy.get(parent),) if t is not None]
        for slots in tables:
            for s, ino in enumerate(slots.inos):
                if ino:
                    self._materialize(slots, s)

    def items(self) -> Iterator[tuple[int, str, Node]]:
        """Every (parent inode, name, node) the table holds by name (all become Nodes)."""
        self._materialize_all()
        for pino, names in self.children.items():
            for name, node in names.items():
                yield pino, name, node

    def named_in(self, parent: int) -> list[tuple[str, Node]]:
        """The (name, node) pairs held in directory ``parent`` (all become Nodes)."""
        self._materialize_all(parent)
        return list(self.children.get(parent, {}).items())

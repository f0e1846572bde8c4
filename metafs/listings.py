"""Directory listings: which listing serves a directory, and fetching its pages.

The one owner of a listing's life (the merge rules are :mod:`dirlist`'s,
the storage and bound the cache's):

* **Shared while fresh.**  ``readdir`` at offset 0 and lookups take the
  directory's kept listing while it is usable (fresh, not failed), even
  if incomplete; otherwise a new one replaces it.  An incomplete listing
  abandoned half-way is not served past its TTL.
* **Pages on demand.**  A page is fetched only when a reader asks past
  what is listed (:meth:`Listings.fill`), one fetch at a time per listing
  (its lock), shared by every reader.
* **Trust runs page by page**, from each page's request (see
  :mod:`dirlist`); a failed page ends the listing's trust for good.
* **Listed files live in their listing only**: a page refreshes what the
  per-key tables already hold (:meth:`MetaCache.listed`) and adds nothing
  to them, so a huge directory costs its entries once.
"""

from __future__ import annotations

import logging

from . import errors
from .cache import MetaCache, Trusted
from .dirlist import Entry, FileEntry, Listing, split_key
from .s3.model import ObjectMeta
from .views import View

log = logging.getLogger(__name__)


class Listings:
    """Listings of one view's directories (see the module docstring)."""

    def __init__(self, view: View, cache: MetaCache, *, ordered: bool = True) -> None:
        self._view = view
        self._cache = cache
        self._ordered = ordered  # directory buckets list in no order: dirlist sorts at the end

    def current(self, dir_key: str) -> Listing:
        """The listing readdir should serve: fresh, in progress, or a new one."""
        lst = self._cache.fresh_listing(dir_key)
        if lst is not None:
            return lst
        lst = Listing(dir_key, self._cache.now() + self._cache.ttl, ordered=self._ordered)
        self._cache.put_listing(lst)
        return lst

    def fresh(self, dir_key: str) -> Listing | None:
        """The kept listing of ``dir_key`` if it may answer lookups now."""
        return self._cache.fresh_listing(dir_key)

    def backed(self, dir_key: str) -> bool:
        """Whether a listing of ``dir_key`` is kept (fresh or not) to back its names.

        False once the bound evicted it, or when it was too large to keep.
        """
        return self._cache.listing(dir_key) is not None

    async def fill(self, lst: Listing, upto: int) -> None:
        """Fetch pages until ``lst`` has an entry at index ``upto`` or is complete.

        Raises the S3 error of a failed page (the listing is then failed).
        """
        while len(lst.entries) <= upto and not lst.complete:
            async with lst.lock:
                if len(lst.entries) > upto or lst.complete:
                    return
                expires = self._cache.now() + self._cache.ttl  # trust runs from the request
                try:
                    page = await self._view.list_page(lst.dir_key, lst.token)
                except errors.MetafsError:
                    lst.fail()
                    raise
                self._absorb(lst, lst.add_page(page, expires))

    def _absorb(self, lst: Listing, entries: list[Entry]) -> None:
        """Let a page refresh what the per-key tables hold (see the module docstring)."""
        c = self._cache
        for e in entries:
            if isinstance(e, FileEntry):
                c.listed(e.meta)
            else:
                c.put_prefix(lst.dir_key + e.name + "/")
        c.resize_listing(lst)

    def listed_file(self, key: str, *, fresh: bool = True) -> Trusted | None:
        """Listing-level metadata of ``key`` from its directory's listing.

        With ``fresh=False`` an expired listing will do: its ETag is what
        revalidation sends as If-None-Match.
        """
        dir_key, name = split_key(key)
        lst = self._cache.listing(dir_key)
        if lst is None or lst.failed:
            return None
        e = lst.file(name)
        if e is None:
            return None
        expires = lst.entry_expires(e.pos)
        return None if fresh and expires <= self._cache.now() else Trusted(e.meta, expires)

    def refute(self, key: str) -> None:
        """A HEAD found ``key`` gone: its kept listing stops vouching for it as a file."""
        dir_key, name = split_key(key)
        lst = self._cache.listing(dir_key)
        if lst is not None:
            lst.refute(name)

    def locate(self, key: str) -> tuple[Listing, FileEntry] | None:
        """The kept listing that shows the file ``key``, and its entry (readahead's map)."""
        dir_key, name = split_key(key)
        lst = self._cache.listing(dir_key)
        e = None if lst is None else lst.file(name)
        return None if lst is None or e is None else (lst, e)

    def overridden(self) -> bool:
        """Whether per-key entries may hold fresher metadata than listings (readdir's hint)."""
        return self._cache.holds_objects()

    def entry_meta(self, e: FileEntry, expires: float) -> tuple[ObjectMeta, float]:
        """The freshest metadata for a listed file (trusted until ``expires``), and its trust."""
        trusted = self._cache.fresh_object(e.meta.key)
        if trusted is not None:
            return trusted.meta, trusted.expires
        return e.meta, expires

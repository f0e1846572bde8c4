"""What a mount shows of a bucket: a *view*, the one source of names and answers.

Everything above this module asks a :class:`View` four questions: a page
of a directory, whether a prefix has anything under it, what HEAD says of
a key, and a range of a key's bytes.  It never talks to the S3 client
itself, so a different view of the same bucket is one new class here, not
a change in the layers above:

* :class:`LiveView` (today): the bucket as it is now: ListObjects, HEAD
  and GET of the current version, revalidated after the TTL.
* :class:`metafs.asof.AsOfView` (``--as-of``): pages from the versions
  listing collapsed to the newest version at or before the moment, HEAD
  and GET with ``versionId``; its answers never change, so
  ``revalidates`` is False and entries are kept until the memory bound
  drops them.
* Every version of every object (``--versions``) is not a view of the
  mount's tree but a subtree of the control directory (:mod:`metafs.versions`).

A view hands up the S3 layer's own vocabulary: :class:`ListPage` and the
typed :data:`HeadOutcome` (``Fresh | NotModified | Absent``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from . import errors
from .s3.client import S3Client
from .s3.model import Absent, AnnotationEntry, Denied, HeadOutcome, ListPage, Unsupported

# Pages of one object's annotation listing: 1,000 annotations fit one page
# (the service's cap per object version), so more than this is a server
# that never ends the listing.
MAX_ANNOTATION_PAGES = 16


class View(Protocol):
    """The requests a mount's metadata layer and reader make (see the module docstring)."""

    revalidates: bool  # whether answers can change, so entries expire after the TTL

    async def list_page(self, dir_key: str, token: str | None, after: str | None = None
                        ) -> ListPage:
        """One page of the delimiter listing of ``dir_key`` (``token`` from the last page).

        ``after`` instead of a token: the page of keys after that one (a
        listing seeded from a probe's flat page; only views that are
        :class:`FlatLister` get one).
        """
        ...

    async def has_children(self, key: str) -> bool:
        """Whether anything exists under ``key/`` (the directory half of a probe)."""
        ...

    async def head(self, key: str, etag: str | None = None, mtime: int = 0) -> HeadOutcome:
        """HEAD of ``key``, conditional on ``etag`` when given, else on ``mtime`` (if not 0)."""
        ...

    async def read(self, key: str, first: int, last: int, etag: str | None) -> bytes:
        """Bytes ``first..last`` (inclusive) of ``key``, pinned to ``etag``."""
        ...

    async def parts_count(self, key: str, etag: str | None) -> int | None:
        """How many parts ``key`` (at ``etag``) was uploaded in; None if not in parts or unknown."""
        ...


@runtime_checkable
class ChannelView(Protocol):
    """A view that also answers the metadata channels beside HEAD (tags, annotations).

    A view without them (a point-in-time view that has not learnt them
    yet) shows HEAD's metadata only.
    """

    @property
    def tags_supported(self) -> bool:
        """Whether the provider has object tags."""
        ...

    @property
    def annotations_supported(self) -> bool:
        """Whether the provider has annotations."""
        ...

    def origin_url(self, key: str) -> str:
        """Where the object ``key`` comes from (``user.xdg.origin.url``)."""
        ...

    async def tags(self, key: str) -> dict[str, str] | Absent | Denied:
        """The object's tags."""
        ...

    async def annotations(self, key: str) -> list[AnnotationEntry] | Absent | Denied | Unsupported:
        """Every annotation of the object (names, sizes, ETags), all pages."""
        ...

    async def annotation(self, key: str, name: str) -> bytes | Absent | Denied | None:
        """One annotation's payload; None if it is gone."""
        ...


@runtime_checkable
class FlatLister(Protocol):
    """A view whose keys can also be listed flat, in byte order: tree walks (walks.py) use it.

    A view without it (the as-of view: its pages are collapsed version
    listings) is never walked flat.
    """

    async def list_flat(self, prefix: str, token: str | None, start_after: str | None) -> ListPage:
        """One page of the listing of every key under ``prefix``, without a delimiter."""
        ...


@runtime_checkable
class RangeLister(Protocol):
    """A view whose delimiter listings can start after a key: huge directories list in ranges.

    A view without it (the as-of view) lists every directory page by page
    (:mod:`metafs.ranges`).
    """

    async def list_range(self, dir_key: str, token: str | None, start_after: str | None
                         ) -> ListPage:
        """One page of the delimiter listing of ``dir_key``: after ``start_after``, or at ``token``."""
        ...


class LiveView:
    """The bucket as it is now (see the module docstring)."""

    revalidates = True

    def __init__(self, client: S3Client) -> None:
        self._client = client

    async def list_page(self, dir_key: str, token: str | None, after: str | None = None
                        ) -> ListPage:
        return await self._client.list_page(dir_key, token=token, start_after=after)

    async def has_children(self, key: str) -> bool:
        page = await self._client.list_page(key + "/", delimiter=None, max_keys=1)
        return bool(page.objects or page.prefixes)

    async def list_range(self, dir_key: str, token: str | None, start_after: str | None
                         ) -> ListPage:
        return await self._client.list_page(dir_key, token=token, start_after=start_after)

    async def list_flat(self, prefix: str, token: str | None, start_after: str | None) -> ListPage:
        return await self._client.list_page(prefix, delimiter=None, token=token,
                                            start_after=start_after)

    async def head(self, key: str, etag: str | None = None, mtime: int = 0) -> HeadOutcome:
        return await self._client.head_object(key, etag, mtime)

    async def read(self, key: str, first: int, last: int, etag: str | None) -> bytes:
        return await self._client.get_range(key, first, last, etag)

    async def parts_count(self, key: str, etag: str | None) -> int | None:
        return await self._client.parts_count(key, etag)

    # -- channels (ChannelView) ---------------------------------------------------
    @property
    def tags_supported(self) -> bool:
        return self._client.dialect.tagging

    @property
    def annotations_supported(self) -> bool:
        return self._client.dialect.annotations

    def origin_url(self, key: str) -> str:
        return self._client.object_url(key)

    async def tags(self, key: str) -> dict[str, str] | Absent | Denied:
        return await self._client.get_tagging(key)

    async def annotations(self, key: str) -> list[AnnotationEntry] | Absent | Denied | Unsupported:
        return await all_annotations(self._client, key)

    async def annotation(self, key: str, name: str) -> bytes | Absent | Denied | None:
        return await self._client.get_annotation(key, name)


async def all_annotations(client: S3Client, key: str, version_id: str | None = None
                          ) -> list[AnnotationEntry] | Absent | Denied | Unsupported:
    """Every annotation of ``key`` (of its version ``version_id``): all ListObjectAnnotations pages.

    At most ``MAX_ANNOTATION_PAGES`` pages; a listing that does not end is an error.
    """
    out: list[AnnotationEntry] = []
    token: str | None = None
    for _ in range(MAX_ANNOTATION_PAGES):
        page = await client.list_annotations(key, token, version_id=version_id)
        if isinstance(page, Absent | Denied | Unsupported):
            return page
        out.extend(page.entries)
        if page.next_token is None:
            return out
        if page.next_token == token:
            break
        token = page.next_token
    raise errors.MalformedResponseError(
        f"LIST annotations {key}: the listing does not end (more than "
        f"{MAX_ANNOTATION_PAGES} pages or a repeated token)")

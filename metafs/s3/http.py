"""The mount's one HTTP client: httpx's, without a cookie jar.

S3 speaks no cookies, and metafs builds every request itself (``httpx.Request``, sent with
``send``; redirects are not followed), so a cookie the server sets would never be sent back.
httpx still parses every response into its jar: a urllib request object and the jar's
header scan per response, about a tenth of the client's CPU per request (issue 12,
target 3).  :class:`MountClient` keeps an empty jar that takes nothing; a ``Set-Cookie``
(an S3-compatible server behind a sticky load balancer) is ignored, as it was in effect.
"""

from __future__ import annotations

import httpx


class _NoCookies(httpx.Cookies):
    """An empty jar that keeps none of the cookies responses set."""

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class MountClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` whose cookie jar stays empty (see the module docstring)."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise AttributeError("a MountClient keeps no cookies")


_NO_COOKIES = _NoCookies()

"""The mount's HTTP client keeps no cookies (metafs.s3.http): it never sends one back."""

from __future__ import annotations

import httpx
import pytest
import trio

from metafs.s3.http import MountClient


def test_a_set_cookie_is_neither_kept_nor_sent():
    seen: list[str | None] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, headers={"set-cookie": "AWSALB=sticky; Path=/"})

    async def go() -> None:
        async with MountClient(transport=httpx.MockTransport(server)) as http:
            for _ in range(2):
                r = await http.send(http.build_request("GET", "http://s3.test/bkt/k"))
                assert r.headers["set-cookie"] == "AWSALB=sticky; Path=/"  # the answer is intact
            assert len(http.cookies) == 0
            with pytest.raises(AttributeError):
                http.cookies = httpx.Cookies({"a": "b"})

    trio.run(go)
    assert seen == [None, None]

"""S3 region discovery, through the start-up path (``mount.prepare``) over httpx.MockTransport.

A bucket in another region than the one metafs starts with still mounts:
the region named by a 301/307 (``x-amz-bucket-region``), a 400
``AuthorizationHeaderMalformed`` body, or a 200 HEAD Bucket whose
``x-amz-bucket-region`` differs, is adopted with exactly one log line (a
warning when ``--region`` named another, info otherwise), remembered for the
bucket, and every later request is signed and addressed for it directly.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
import trio

from metafs.config import Config
from metafs.mount import prepare
from tests.fakes import EXPRESS_BUCKET, ExpressServer, StaticCredentials, listing, scope_region, xml_error


def mount_prepare(handler: Any, **cfg: Any) -> tuple[Any, Any]:
    """Run the start-up check as ``metafs`` does; then three more requests."""
    cfg.setdefault("bucket", "bkt")
    cfg.setdefault("prefix", "")
    cfg.setdefault("mountpoint", "/mnt")
    config = Config(**cfg)

    async def main() -> tuple[Any, Any]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            client, info = await prepare(config, http, StaticCredentials())
            for key in ("a", "b"):
                await client.head_object(key)
            await client.list_page("")
            return client, info

    return trio.run(main)


def region_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "is in region" in r.getMessage()]


class Bucket:
    """A bucket in ``home``: requests signed for another region get ``wrong(req)``."""

    def __init__(self, home: str, wrong: Any) -> None:
        self.home, self.wrong = home, wrong
        self.requests: list[httpx.Request] = []

    def __call__(self, req: httpx.Request) -> httpx.Response:
        self.requests.append(req)
        if scope_region(req) != self.home:
            return self.wrong(req)
        if req.method == "GET":
            return httpx.Response(200, content=listing())
        return httpx.Response(200, headers={"x-amz-bucket-region": self.home})


@pytest.mark.parametrize("status", [301, 307])
def test_redirect_status_names_the_region(status, caplog):
    srv = Bucket("eu-west-1", lambda r: httpx.Response(status, headers={"x-amz-bucket-region": "eu-west-1"}))
    with caplog.at_level(logging.INFO, logger="metafs"):
        client, _ = mount_prepare(srv, region="us-east-1")
    assert client.region == "eu-west-1"
    assert [scope_region(r) for r in srv.requests] == ["us-east-1"] + ["eu-west-1"] * 4
    # The default AWS endpoint follows the region; later requests go straight there.
    assert [r.url.host for r in srv.requests] == ["bkt.s3.amazonaws.com"] + \
        ["bkt.s3.eu-west-1.amazonaws.com"] * 4
    lines = region_lines(caplog)
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING  # --region was explicit
    assert "bucket bkt is in region eu-west-1, not us-east-1" in lines[0].getMessage()


def test_400_authorization_header_malformed_body_names_the_region(caplog):
    def wrong(req: httpx.Request) -> httpx.Response:
        if req.method == "HEAD":  # a HEAD signed for the wrong region: a bare 400
            return httpx.Response(400)
        return httpx.Response(400, content=xml_error(
            "AuthorizationHeaderMalformed", "the region 'us-east-1' is wrong; expecting "
            "'ap-southeast-2'", Region="ap-southeast-2"))

    srv = Bucket("ap-southeast-2", wrong)
    with caplog.at_level(logging.INFO, logger="metafs"):
        client, _info = mount_prepare(srv, region=None)
    assert client.region == "ap-southeast-2"
    # HEAD (bare 400) -> the listing that learns the code -> its body's region -> retried there.
    assert [(r.method, scope_region(r)) for r in srv.requests[:3]] == [
        ("HEAD", "us-east-1"), ("GET", "us-east-1"), ("GET", "ap-southeast-2")]
    assert {scope_region(r) for r in srv.requests[3:]} == {"ap-southeast-2"}
    lines = region_lines(caplog)
    assert len(lines) == 1 and lines[0].levelno == logging.INFO  # no --region: discovery, no warning


def test_200_head_bucket_with_a_different_region_header(caplog):
    # S3-compatible servers and access points answer 200 wherever the signature
    # scope points; the header is then the only hint.
    answers: list[httpx.Request] = []

    def srv(req: httpx.Request) -> httpx.Response:
        answers.append(req)
        if req.method == "GET":
            return httpx.Response(200, content=listing())
        return httpx.Response(200, headers={"x-amz-bucket-region": "eu-central-1"})

    with caplog.at_level(logging.INFO, logger="metafs"):
        client, info = mount_prepare(srv, region="us-east-1")
    assert info.region == "eu-central-1" and client.region == "eu-central-1"
    assert [scope_region(r) for r in answers] == ["us-east-1"] + ["eu-central-1"] * 3
    assert answers[1].url.host == "bkt.s3.eu-central-1.amazonaws.com"
    assert len(region_lines(caplog)) == 1


def test_custom_endpoint_keeps_its_host_and_switches_the_signature(caplog):
    srv = Bucket("eu-west-1", lambda r: httpx.Response(301, headers={"x-amz-bucket-region": "eu-west-1"}))
    with caplog.at_level(logging.INFO, logger="metafs"):
        _client, _ = mount_prepare(srv, region="us-east-1", endpoint_url="https://s3.example.com")
    assert {r.url.host for r in srv.requests} == {"bkt.s3.example.com"}
    assert [scope_region(r) for r in srv.requests] == ["us-east-1"] + ["eu-west-1"] * 4
    assert len(region_lines(caplog)) == 1


def test_right_region_costs_nothing_and_logs_nothing(caplog):
    srv = Bucket("us-east-1", lambda r: httpx.Response(500))
    with caplog.at_level(logging.INFO, logger="metafs"):
        _client, _info = mount_prepare(srv, region="us-east-1")
    assert len(srv.requests) == 4 and region_lines(caplog) == []


def test_region_from_endpoint_host_needs_no_discovery(caplog):
    srv = Bucket("eu-west-3", lambda r: httpx.Response(301, headers={"x-amz-bucket-region": "eu-west-3"}))
    with caplog.at_level(logging.INFO, logger="metafs"):
        _client, _ = mount_prepare(srv, endpoint_url="https://s3.eu-west-3.amazonaws.com")
    assert len(srv.requests) == 4 and region_lines(caplog) == []


def test_directory_bucket_region_from_head_bucket_moves_the_zonal_endpoint(caplog):
    # Directory buckets are checked IAM-signed; a differing region header
    # moves the zonal endpoint and both signers (IAM and session).
    srv = ExpressServer(lambda r: httpx.Response(200, content=listing()) if r.method == "GET"
                        else httpx.Response(200, headers={"x-amz-bucket-region": "us-west-2"}))
    with caplog.at_level(logging.INFO, logger="metafs"):
        _client, _ = mount_prepare(srv, bucket=EXPRESS_BUCKET, region="us-east-1")
    assert srv.requests[0].url.host == f"{EXPRESS_BUCKET}.s3express-usw2-az1.us-east-1.amazonaws.com"
    assert {r.url.host for r in srv.requests[1:]} == {
        f"{EXPRESS_BUCKET}.s3express-usw2-az1.us-west-2.amazonaws.com"}
    assert {scope_region(r) for r in srv.requests[1:]} == {"us-west-2"}
    assert len(region_lines(caplog)) == 1

"""The "bare" baseline of scripts/bench.py: a workload's S3 requests sent directly.

Runs in its own process (like any FUSE daemon) so that the client does not
share the benchmark process's GIL with the in-process moto server:

    python scripts/bench_bare.py URL '["list", "bench", "d2k/", "/"]'
    python scripts/bench_bare.py URL '["head", "bench", ["m200/obj000", ...]]'

Prints {"entries": N, "seconds": S}: entries listed (LIST) or HEADs answered
200 (HEAD), and the time the requests took (interpreter start-up excluded).
Requests are signed with SigV4 like any S3 client's; LIST pages are sequential
by nature (continuation tokens), HEADs go CONCURRENCY at a time.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import sys
import time
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import quote, urlencode

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

import httpx
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

CONCURRENCY = 8
REGION = "us-east-1"
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def credentials() -> Credentials:
    return Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])


def s3_request(http: httpx.Client, method: str, url: str,
               params: dict[str, str] | None = None) -> httpx.Response:
    if params:
        url += "?" + urlencode(sorted(params.items()), quote_via=quote)
    req = AWSRequest(method=method, url=url)
    S3SigV4Auth(credentials(), "s3", REGION).add_auth(req)
    return http.request(method, url, headers=dict(req.headers.items()))


def list_all(http: httpx.Client, url: str, bucket: str, prefix: str, delimiter: str | None) -> int:
    """ListObjectsV2 page by page; returns keys + common prefixes seen."""
    entries, token = 0, None
    while True:
        params = {"list-type": "2", "prefix": prefix}
        if delimiter:
            params["delimiter"] = delimiter
        if token:
            params["continuation-token"] = token
        r = s3_request(http, "GET", f"{url}/{bucket}", params)
        r.raise_for_status()
        root = ET.fromstring(r.content)
        entries += len(root.findall(S3_NS + "Contents")) + len(root.findall(S3_NS + "CommonPrefixes"))
        token = root.findtext(S3_NS + "NextContinuationToken")
        if not token:
            return entries


def head_all(http: httpx.Client, url: str, bucket: str, keys: list[str]) -> int:
    """HeadObject for every key, CONCURRENCY at a time; returns how many answered 200."""
    def head(key: str) -> int:
        return s3_request(http, "HEAD", f"{url}/{bucket}/{quote(key)}").status_code

    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
        return sum(status == 200 for status in pool.map(head, keys))


def describe(spec: list[Any]) -> str:
    kind, bucket, *rest = spec
    if kind == "list":
        prefix, delimiter = rest
        return f"ListObjectsV2 {bucket} prefix={prefix}" + (f" delimiter={delimiter}" if delimiter else "")
    return f"HeadObject x{len(rest[0])} in {bucket}, {CONCURRENCY} in parallel"


def main() -> None:
    url, spec = sys.argv[1], json.loads(sys.argv[2])
    kind, bucket, *rest = spec
    with httpx.Client(timeout=60) as http:
        t0 = time.perf_counter()
        entries = list_all(http, url, bucket, *rest) if kind == "list" else head_all(http, url, bucket, *rest)
        seconds = time.perf_counter() - t0
    print(json.dumps({"entries": entries, "seconds": seconds}))


if __name__ == "__main__":
    main()

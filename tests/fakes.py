"""Shared fakes and helpers for the tests; no tests here.

* :class:`Server` and :class:`ExpressServer`: scripted ``httpx.MockTransport``
  handlers that record what the client sent;
* :func:`run`: one :class:`~metafs.s3.client.S3Client` over such a handler,
  inside ``trio.run``;
* :class:`StaticCredentials`: fixed keys, without the environment or botocore;
* answer bodies (:func:`xml_error`, :func:`listing`, :func:`session_answer`)
  and request readers (:func:`scope_region`, :func:`wire_query`);
* :func:`run_metafs`: the command, as a subprocess;
* :class:`CaseSpace` and :func:`signing_case`: the random requests the
  signing tests sign both with metafs and with each vendor's SDK.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import subprocess
import sys
from typing import Any, Awaitable, Callable, Mapping, Sequence
from urllib.parse import parse_qsl

import httpx
import trio
import trio.testing

from metafs.credentials import CredentialSource
from metafs.s3.client import S3Client
from metafs.signing import Credentials
from tests.conftest import REPO

SECRET = "fake/SECRET+key=never-logged"
TOKEN = "FAKE-TOKEN/never+logged"
NOW = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
UTC = dt.timezone.utc

Handler = Callable[[httpx.Request], Any]


# -- the client over a scripted server ---------------------------------------------------------

class StaticCredentials(CredentialSource):
    """Fixed keys (``SECRET``), without the environment or botocore."""

    def __init__(self, token: str | None = None, key_id: str = "AKID") -> None:
        super().__init__()
        self.token, self.key_id = token, key_id

    async def get(self) -> Credentials | None:
        return Credentials(self.key_id, SECRET, self.token)

    def profile_region(self) -> str | None:  # never the machine's AWS config
        return None


class Server:
    """Answers in turn (the last one repeats); records requests.

    An answer is a response, a status code, an exception to raise, or a
    function of the request returning one of those (or an awaitable of one).
    """

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        a = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if callable(a):
            a = a(request)
            if hasattr(a, "__await__"):
                a = await a
        if isinstance(a, BaseException):
            raise a
        return httpx.Response(a) if isinstance(a, int) else a


async def no_sleep(_: float) -> None:
    return None


def run(handler: Handler, fn: Callable[[S3Client], Awaitable[Any]], *,
        mock_clock: bool = False, **kw: Any) -> Any:
    """``fn(client)`` against ``handler``; ``kw`` are S3Client's arguments.

    Defaults: bucket ``bkt`` in us-east-1 at the provider's endpoint,
    :class:`StaticCredentials`, the clock stopped at ``NOW``, no backoff
    sleeps.  ``mock_clock``: trio's clock jumps whenever all tasks wait.
    """
    kw.setdefault("bucket", "bkt")
    kw.setdefault("region", "us-east-1")
    kw.setdefault("now", lambda: NOW)
    kw.setdefault("sleep", no_sleep)
    kw.setdefault("credentials", StaticCredentials())

    async def main() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            return await fn(S3Client(http, **kw))

    if mock_clock:
        return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return trio.run(main)


def no_secret_in(exc: BaseException) -> None:
    """Neither the secret nor the token may reach an exception's text."""
    for text_ in (str(exc), repr(exc), repr(exc.args), str(exc.__dict__)):
        assert SECRET not in text_ and TOKEN not in text_


# -- answers ------------------------------------------------------------------------------------

def xml_error(code: str, message: str = "msg", **extra: str) -> bytes:
    """An ``<Error>`` document; ``extra`` adds elements (``Region=``, ``Endpoint=``)."""
    more = "".join(f"<{k}>{v}</{k}>" for k, v in extra.items())
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message>{more}<RequestId>R</RequestId></Error>").encode()


def listing(*keys: str, prefixes: tuple[str, ...] = (), truncated: bool = False,
            extra: str = "") -> bytes:
    """A URL-encoded listing page of ``keys`` (size 1, ETag ``"e"``) and ``prefixes``."""
    items = "".join(f"<Contents><Key>{k}</Key><LastModified>2024-01-01T00:00:00.000Z"
                    f"</LastModified><ETag>\"e\"</ETag><Size>1</Size></Contents>" for k in keys)
    cps = "".join(f"<CommonPrefixes><Prefix>{p}</Prefix></CommonPrefixes>" for p in prefixes)
    return (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>b</Name>'
            f"<EncodingType>url</EncodingType><IsTruncated>{str(truncated).lower()}</IsTruncated>"
            f"{extra}{items}{cps}</ListBucketResult>").encode()


# -- requests -----------------------------------------------------------------------------------

def scope_region(req: httpx.Request) -> str:
    """The region a SigV4 (or OSS V4) authorization is scoped to."""
    return req.headers["authorization"].split("Credential=")[1].split("/")[2]


def wire_query(req: httpx.Request) -> list[tuple[str, str]]:
    return parse_qsl(req.url.query.decode(), keep_blank_values=True)


def headers_of(req: httpx.Request) -> dict[str, str]:
    return {k.lower(): v for k, v in req.headers.items()}


# -- S3 directory buckets -----------------------------------------------------------------------

EXPRESS_BUCKET = "logs--usw2-az1--x-s3"


def session_answer(n: int, lifetime: int = 300, date: dt.datetime = NOW) -> httpx.Response:
    """CreateSession's answer: session ``n``, valid ``lifetime`` s from the server's ``date``."""
    exp = (date + dt.timedelta(seconds=lifetime)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = (f'<CreateSessionResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Credentials>'
            f"<SessionToken>SESSION-TOKEN-{n}</SessionToken><SecretAccessKey>SESSION-SECRET-{n}"
            f"</SecretAccessKey><AccessKeyId>SESSIONKEY{n}</AccessKeyId><Expiration>{exp}"
            f"</Expiration></Credentials></CreateSessionResult>")
    return httpx.Response(200, content=body.encode(),
                          headers={"date": date.strftime("%a, %d %b %Y %H:%M:%S GMT")})


class ExpressServer:
    """Answers CreateSession with numbered sessions, everything else with ``other``."""

    def __init__(self, other: Any = 200, lifetime: int = 300) -> None:
        self.other, self.lifetime = other, lifetime
        self.requests: list[httpx.Request] = []
        self.sessions = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.query == b"session":
            self.sessions += 1
            await trio.sleep(0.01)  # let concurrent callers pile up
            return session_answer(self.sessions, self.lifetime)
        other = self.other(request) if callable(self.other) else self.other
        return httpx.Response(other) if isinstance(other, int) else other


# -- the command --------------------------------------------------------------------------------

def run_metafs(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m metafs ARGS`` from the repository, output captured."""
    return subprocess.run([sys.executable, "-m", "metafs", *args], env=env, capture_output=True,
                          text=True, timeout=60, cwd=REPO)


# -- random requests for the signing tests ------------------------------------------------------

def text(rng: random.Random, alphabet: Sequence[str], lo: int, hi: int) -> str:
    """``lo`` to ``hi`` pieces drawn from ``alphabet`` (pieces may be longer than a character)."""
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


@dataclasses.dataclass(frozen=True)
class CaseSpace:
    """What one vendor's random requests are drawn from."""

    key_chars: Sequence[str]
    value_chars: Sequence[str]
    params: Sequence[str]  # up to five are drawn per request
    # Parameters whose value is not free text: name -> value ("" is value-less).
    param_values: Mapping[str, Callable[[random.Random], str]]
    # Each group of headers is sent with its probability.
    headers: Sequence[tuple[float, Callable[[random.Random], dict[str, str]]]]
    token_chars: Sequence[str]  # half the requests carry a token
    token_max: int = 80
    zones: Sequence[dt.tzinfo | None] = (None, UTC)  # of ``now``; None: naive UTC
    fractional_time: bool = False  # ``ts`` with a fraction of a second


@dataclasses.dataclass
class SigningCase:
    method: str
    key: str  # '' (a bucket request) one time in ten
    query: list[tuple[str, str]]
    headers: dict[str, str]
    token: str | None
    ts: float  # seconds since the epoch
    now: dt.datetime  # ``ts`` in one of the space's zones


def signing_case(rng: random.Random, space: CaseSpace) -> SigningCase:
    """One random request from ``space``."""
    key = "" if rng.random() < 0.1 else text(rng, space.key_chars, 1, 12)
    query = []
    for name in rng.sample(list(space.params), rng.randint(0, 5)):
        value = space.param_values.get(name)
        query.append((name, value(rng) if value else text(rng, space.value_chars, 0, 10)))
    headers: dict[str, str] = {}
    for probability, group in space.headers:
        if rng.random() < probability:
            headers.update(group(rng))
    token = None if rng.random() < 0.5 else text(rng, space.token_chars, 20, space.token_max)
    ts = (rng.uniform(1.4e9, 2.1e9) if space.fractional_time
          else float(rng.randint(1_400_000_000, 2_100_000_000)))
    zone = rng.choice(list(space.zones))
    now = (dt.datetime.fromtimestamp(ts, UTC).replace(tzinfo=None) if zone is None
           else dt.datetime.fromtimestamp(ts, zone))
    return SigningCase(rng.choice(["GET", "HEAD"]), key, query, headers, token, ts, now)


def valueless(rng: random.Random) -> str:
    return ""


def count(rng: random.Random) -> str:
    return str(rng.randint(1, 1000))


def url_encoding(rng: random.Random) -> str:
    return "url"

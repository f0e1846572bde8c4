"""Faults only a byte stream can show, through the kernel: broken header blocks and resets.

A :class:`tests.proxy.FaultProxy` sits between metafs and the dev server and
rewrites, cuts or resets the answers to the requests a rule matches.  Every
request still reaches the dev server, which counts it.  Each case asserts
what a process sees (the value, or EIO), how long it took, the requests
sent, what the log says (one warning naming the object and the cause, never
a traceback: the ``mount`` fixture checks that), that the mount keeps
serving other files, and that it recovers, without a remount, once the
proxy passes answers through again.

The first tests check the instruments themselves (no FUSE): the proxy's
faults as an HTTP client sees them, and the dev server's ``reset`` fault.
"""

from __future__ import annotations

import hashlib
import re
import time

import httpx
import pytest

from tests.helpers import ACCESS_KEY, wait_until, xattr
from tests.proxy import (
    FaultProxy,
    add_headers,
    bare_lf,
    is_flat_listing,
    is_get,
    is_head,
    is_listing,
    many_headers,
    reset,
    truncate,
)

RETRIES, TIMEOUT = 1, 2.0
OPTIONS = ("--retries", str(RETRIES), "--request-timeout", str(TIMEOUT))
ATTEMPTS = RETRIES + 1
# The documented bound of a failing operation: every attempt may take the request
# timeout, plus backoff (under 0.2 s for one retry) and a process start.
BOUND = ATTEMPTS * TIMEOUT + 1.0
BODY = bytes(range(256)) * 16  # 4 KiB, so a body can be cut in its middle

GOOD = "café".encode()  # raw UTF-8 on the wire
BAD = b"\xff\xfe\xfd"  # not UTF-8


@pytest.fixture
def proxy(s3):
    with FaultProxy(s3.url, lifetime=300) as p:
        yield p
    assert p.errors == []  # the instrument itself never failed


@pytest.fixture
def tree(boto, bucket):
    """f and g with user metadata (one RFC 2047-encoded), and d/ with two files."""
    for key in ("f", "g", "d/a", "d/b"):
        boto.put_object(Bucket=bucket, Key=key, Body=BODY,
                        Metadata={"plain": "x", "word": "=?UTF-8?B?w6l0w6k=?="})
    return bucket


def eio(m, cmd: str) -> float:
    """Run ``cmd``, require "Input/output error"; the seconds it took."""
    t0 = time.monotonic()
    r = m.run(cmd, check=False)
    elapsed = time.monotonic() - t0
    assert r.returncode != 0 and "Input/output error" in r.stderr, (cmd, r.stdout, r.stderr)
    return elapsed


def raw_xattr(m, path: str, name: str) -> bytes:
    """An xattr's value as ``getfattr -e hex`` shows it, so bytes that are not UTF-8 survive
    (``getfattr --only-values``, as :func:`tests.helpers.xattr` uses, prints them raw)."""
    out = m.run(f"getfattr -e hex -n {name} -- {path}").stdout
    line = next(ln for ln in out.splitlines() if ln.startswith(name + "="))
    return bytes.fromhex(line.split("=", 1)[1].removeprefix("0x"))


def warnings_about(m, what: str) -> list[str]:
    """Log lines at WARNING or above that mention ``what`` (e.g. ``HEAD f``)."""
    return [ln for ln in m.log_text().splitlines()
            if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", ln) and what in ln]


# -- the instruments, without FUSE ------------------------------------------------------------

# moto answers unsigned object requests with 403; it does not check signatures.
SIGNED = {"authorization": f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260101/us-east-1/s3/aws4_request, "
                           "SignedHeaders=host, Signature=00"}


def test_proxy_faults_as_an_http_client_sees_them(s3, boto, bucket, proxy):
    boto.put_object(Bucket=bucket, Key="k", Body=BODY)
    s3.reset()
    url = f"{proxy.url}/{bucket}/k"
    with httpx.Client(headers=SIGNED) as http:
        proxy.inject(add_headers(b"x-amz-meta-good: " + GOOD, b"x-amz-meta-bad: " + BAD),
                     when=is_head("k"), times=1)
        raw = dict(http.head(url).headers.raw)
        assert (raw[b"x-amz-meta-good"], raw[b"x-amz-meta-bad"]) == (GOOD, BAD)
        assert http.head(url).status_code == 200  # times=1: the next one passes through
        proxy.inject(reset("before"), when=is_get("k"), times=1)
        with pytest.raises(httpx.ReadError, match="reset"):
            http.get(url)
        proxy.inject(truncate("in-body"), when=is_get("k"), times=1)
        with pytest.raises(httpx.RemoteProtocolError, match="received 2048 bytes, expected 4096"):
            http.get(url)
        proxy.inject(many_headers(10_000), when=is_head("k"), times=1)
        with pytest.raises(httpx.RemoteProtocolError, match="Receive buffer too long"):
            http.head(url)
        assert http.get(url).content == BODY
        assert [r.method for r in s3.log()] == ["HEAD", "HEAD", "GET", "GET", "HEAD", "GET"]
        assert proxy.seen(is_head("k")) == 3


def test_devserver_reset_fault_resets_without_an_answer(s3, bucket):
    s3.set_fault("reset")
    with pytest.raises(httpx.ReadError, match="Connection reset by peer"):
        httpx.get(f"{s3.url}/{bucket}?list-type=2")
    s3.set_fault(None)
    assert httpx.get(f"{s3.url}/{bucket}?list-type=2").status_code == 200
    assert [r.status for r in s3.log("LIST")] == [0, 200]  # counted, though unanswered


# -- header values, each decoded on its own ---------------------------------------------------

@pytest.mark.mount
def test_one_bad_header_value_leaves_the_others_intact(mount, tree, s3, proxy):
    m = mount(tree, *OPTIONS, endpoint=proxy.url)
    proxy.inject(add_headers(b"x-amz-meta-good: " + GOOD, b"x-amz-meta-bad: " + BAD), when=is_head("f"))
    assert raw_xattr(m, "f", "user.good") == GOOD  # was b"caf\xc3\x83\xc2\xa9" ('cafÃ©')
    assert raw_xattr(m, "f", "user.bad") == BAD  # not UTF-8: its bytes
    assert xattr(m, "f", "user.word") == "été".encode()  # RFC 2047 still decoded beside them
    assert xattr(m, "f", "user.plain") == b"x"
    dump = m.run("getfattr -d -e hex f").stdout
    assert "user.good=0x636166c3a9" in dump and "user.bad=0xfffefd" in dump
    assert s3.counts()["HEAD"] == 1 == proxy.seen(is_head("f"))  # one HEAD answered it all
    assert warnings_about(m, "HEAD f") == []


@pytest.mark.mount
def test_bare_lf_line_endings_are_read_as_usual(mount, tree, s3, proxy):
    # h11 accepts LF alone as a line ending (RFC 9112 section 2.2 allows a recipient to),
    # so such an answer is not a fault: it is read like any other.
    m = mount(tree, *OPTIONS, endpoint=proxy.url)
    proxy.inject(bare_lf(add_headers(b"x-amz-meta-good: " + GOOD)), when=is_head("f"))
    # d/ is listed by the lookup probe of d: its flat page is the listing d/ shows.
    proxy.inject(bare_lf(), when=is_flat_listing("d/"))
    assert xattr(m, "f", "user.good") == GOOD and xattr(m, "f", "user.plain") == b"x"
    assert m.run("stat -c %s f").stdout.strip() == str(len(BODY))
    assert sorted(m.run("ls d").stdout.split()) == ["a", "b"]
    assert proxy.seen(is_head("f")) == 1 and proxy.seen(is_flat_listing("d/")) == 1
    assert proxy.seen(is_listing("d/")) == 0


# -- header blocks the HTTP layer refuses ------------------------------------------------------

REFUSED = {
    # name: (fault, the cause the log line must give)
    "10,000 headers": (many_headers(10_000), "header block too large for the HTTP parser"),
    "NUL in a value": (add_headers(b"x-amz-meta-nul: a\x00b"), "illegal header line"),
    "CR alone in a value": (add_headers(b"x-amz-meta-cr: a\rb"), "illegal header line"),
    "space before the colon": (add_headers(b"x-amz-meta-sp : v"), "illegal header line"),
}


@pytest.mark.mount
@pytest.mark.parametrize("shape", list(REFUSED))
def test_refused_header_block_is_eio_with_one_log_line_then_recovers(mount, tree, s3, proxy, shape):
    fault, cause = REFUSED[shape]
    m = mount(tree, *OPTIONS, endpoint=proxy.url)
    m.run("ls")  # f and g are known from the listing: what follows sends only their HEADs
    proxy.inject(fault, when=is_head("f"))
    assert eio(m, "getfattr -n user.plain f") < BOUND
    assert proxy.seen(is_head("f")) == ATTEMPTS == s3.counts()["HEAD"]  # retried, then EIO
    lines = warnings_about(m, "HEAD f")
    assert len(lines) == 1, lines
    assert cause in lines[0] and "unusable HTTP answer from 127.0.0.1" in lines[0], lines[0]
    assert len(lines[0]) < 400  # the refused bytes are quoted, within a bound
    # The mount keeps serving other files meanwhile ...
    assert xattr(m, "g", "user.plain") == b"x"
    # ... and serves f once the answers are whole again, without a remount.
    proxy.clear()
    assert xattr(m, "f", "user.plain") == b"x"
    assert proxy.seen(is_head("f")) == ATTEMPTS + 1
    assert len(warnings_about(m, "HEAD f")) == 1
    assert m.proc.poll() is None


# -- resets and cut answers -------------------------------------------------------------------

CUTS = [
    # (id, the request, the fault, the command that fails, the kind the dev server counts,
    #  whether the client heard nothing at all: then the endpoint is known down, see below)
    ("HEAD, reset before the answer", is_head("f"), reset("before"), "getfattr -n user.plain f", "HEAD",
     True),
    ("HEAD, reset in the header block", is_head("f"), reset("in-headers"), "getfattr -n user.plain f",
     "HEAD", True),
    ("LIST, reset before the answer", is_listing("d/"), reset("before"), "ls d", "LIST", True),
    ("LIST, reset mid-body", is_listing("d/"), reset("in-body"), "ls d", "LIST", False),
    ("LIST, body cut short", is_listing("d/"), truncate("in-body"), "ls d", "LIST", False),
    ("GET, reset before the answer", is_get("f"), reset("before"), "cat f", "GET", True),
    ("GET, reset mid-body", is_get("f"), reset("in-body"), "cat f", "GET", False),
    ("GET, body cut short", is_get("f"), truncate("in-body"), "cat f", "GET", False),
]
# What the log line of each kind names: the client's "what" (LIST names the prefix).
WHAT = {"HEAD": "HEAD f", "LIST": "LIST d/", "GET": "GET f"}


@pytest.mark.mount
@pytest.mark.parametrize("when, fault, cmd, kind, silent", [c[1:] for c in CUTS],
                         ids=[c[0] for c in CUTS])
def test_reset_or_cut_answer_is_eio_after_retries_then_recovers(mount, tree, s3, proxy,
                                                                 when, fault, cmd, kind, silent):
    m = mount(tree, *OPTIONS, endpoint=proxy.url)
    m.run("ls")  # names known, so the failing command sends only the request under test
    s3.reset()
    proxy.inject(fault, when=when)
    assert eio(m, cmd) < BOUND
    # Each failed FUSE request was tried 1 + retries times.  `cat` makes two: the kernel's
    # readahead fails, then it reads the page itself.  When nothing at all came back (a
    # reset before any byte of the answer), the endpoint is known down after the first
    # (SEMANTICS, Faults: an outage): the second fails at once, sending nothing.
    fuse_requests = 2 if kind == "GET" else 1
    sent = ATTEMPTS if silent else fuse_requests * ATTEMPTS
    assert proxy.seen(when) == sent
    assert s3.counts()[kind] == sent  # every attempt reached the server ...
    assert {r.status for r in s3.log(kind)} == {206 if kind == "GET" else 200}  # ... which answered
    lines = warnings_about(m, WHAT[kind])
    # One line per failed FUSE request, and when silent one more: the outage's.
    assert len(lines) == fuse_requests + silent, lines
    if silent:
        assert sum("is not answering" in line for line in lines) == 1, lines
        # The background probe (HEAD Bucket, not faulted) finds the endpoint up again.
        assert wait_until(lambda: "answers again after" in m.log_text(), timeout=5 + TIMEOUT + 1)
    # Other files are still served ...
    assert m.run("stat -c %s g").stdout.strip() == str(len(BODY))
    assert xattr(m, "g", "user.plain") == b"x"
    # ... and the same command works once the answers are whole again, without a remount.
    proxy.clear()
    if kind == "LIST":
        assert sorted(m.run(cmd).stdout.split()) == ["a", "b"]
    elif kind == "GET":
        assert m.run("md5sum f").stdout.split()[0] == hashlib.md5(BODY).hexdigest()
    else:
        assert xattr(m, "f", "user.plain") == b"x"
    assert m.proc.poll() is None

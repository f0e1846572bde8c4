"""metafs against Ceph RGW (metafs.devrgw): a production S3 server, not a model of one."""

from __future__ import annotations

import pytest

from tests.helpers import ls_names, stat_fields

pytestmark = [pytest.mark.mount, pytest.mark.rgw]


def test_rgw_mount_lists_stats_and_reads(rgw_boto, rgw_bucket, rgw_mount):
    rgw_boto.put_object(Bucket=rgw_bucket, Key="dir/a.txt", Body=b"hello rgw")
    rgw_boto.put_object(Bucket=rgw_bucket, Key="top", Body=b"12345", Metadata={"colour": "blue"})
    m = rgw_mount(rgw_bucket)
    assert ls_names(m) == ["dir", "top"]
    assert ls_names(m, "dir") == ["a.txt"]
    assert stat_fields(m, "dir/a.txt", "%F|%s") == ["regular file", "9"]
    assert m.run("cat dir/a.txt").stdout == "hello rgw"
    assert m.run("getfattr --only-values -n user.colour top").stdout == "blue"


def test_rgw_getfattr_r_reads_the_tags_ahead_and_probes_annotations_once(rgw, rgw_boto, rgw_bucket,
                                                                          rgw_mount):
    """``getfattr -R -d`` over 200 files on RGW: the tag requests overlap, sent ahead of the reader.

    RGW answers GetObjectTagging in ~48 ms (HEAD: ~5 ms; measured with boto3,
    notes/tagrgw.md), so tags read one by one would cost a 2,000-file walk
    ~100 s; read ahead beside the HEADs they overlap (up to the readahead
    concurrency).  Each tag answer is held 50 ms here, so tags sent one by one
    would arrive at least 50 ms apart.  RGW does not speak
    ListObjectAnnotations (it answers ``GET ?annotation`` with the object
    itself, which is not downloaded): one probe turns the channel off for the
    mount, never one per object.
    """
    import threading
    import time

    from tests.proxy import Answer, FaultProxy, Request

    keys = [f"g/d{d}/f{f:02d}" for d in range(4) for f in range(50)]
    for k in keys:  # the first file, which the probe asks about, larger than any annotation page
        rgw_boto.put_object(Bucket=rgw_bucket, Key=k, Body=b"x" * (9 << 20 if k == keys[0] else 1),
                            Metadata={"a": "1"})
    lock = threading.Lock()
    arrivals: list[float] = []  # when each tag request reached the proxy

    def is_tagging(r: Request) -> bool:
        if "tagging" not in r.query:
            return False
        with lock:
            arrivals.append(time.monotonic())
        return True

    def slow(a: Answer) -> tuple[bytes, str]:
        # Every tag answer takes >= 50 ms, whatever RGW's own speed: serial ones are that far apart.
        time.sleep(0.05)
        return a.head + b"\r\n\r\n" + a.body, "close"

    with FaultProxy(rgw.url) as proxy:
        proxy.inject(slow, when=is_tagging)
        m = rgw_mount(rgw_bucket, endpoint=proxy.url)
        m.run("ls g/d0 >/dev/null")
        before = len(proxy.requests)
        out = m.run("getfattr -R -d g").stdout
        assert out.count("user.a=") == 200
        sent = proxy.requests[before:]
        assert not proxy.errors

    def count(match) -> int:
        return sum(1 for r in sent if match(r))

    heads = [r.key for r in sent if r.method == "HEAD" and r.key in set(keys)]
    assert sorted(heads) == sorted(keys)  # one HEAD per file: nothing read twice, nothing beyond
    assert sorted(r.key for r in sent if "tagging" in r.query) == sorted(keys)
    assert count(lambda r: "annotation" in r.query) == 1  # the probe, then the channel is off
    # RGW answered the probe with the 9 MiB object itself; its body was left unread.
    assert "does not speak ListObjectAnnotations" in m.log_text()
    assert "longer than 8 MiB: not read" in m.log_text()
    # Overlap: at some moment several tag requests were on the wire at once.
    arrivals.sort()
    most = max(sum(1 for t in arrivals if s <= t < s + 0.04) for s in arrivals)
    assert most >= 4, f"tag requests were sent one by one (at most {most} within 40 ms)"

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

"""The object behind a directory (issue 10 §4): .metafs/objects/<key>, and s3.shadowed-object."""

from __future__ import annotations

import pytest

from tests.helpers import ls_names, stat_fields, xattr

pytestmark = pytest.mark.mount


@pytest.fixture
def shadowed(boto, bucket):
    boto.put_object(Bucket=bucket, Key="a", Body=b"the object a", Metadata={"k": "hidden"})
    boto.put_object(Bucket=bucket, Key="a/b", Body=b"under a")
    boto.put_object(Bucket=bucket, Key="d/x", Body=b"x")
    return bucket


def test_directory_wins_and_the_object_is_reached_in_the_control_dir(s3, shadowed, mount):
    m = mount(shadowed)
    assert ls_names(m) == ["a", "d"]
    assert stat_fields(m, "a", "%F") == ["directory"]
    # The directory tells (free: the root's listing showed both), with the path to the object.
    s3.reset()
    assert xattr(m, "a", "s3.shadowed-object") == b".metafs/objects/a"
    assert "s3.shadowed-object" in m.run("getfattr -d -m - a").stdout
    r = m.run("getfattr -n s3.shadowed-object d", check=False)
    assert r.returncode != 0 and "No such attribute" in r.stderr
    assert s3.log() == []
    # The object itself: one HEAD for the lookup; stat, xattrs and open send nothing more.
    assert stat_fields(m, ".metafs/objects/a", "%F|%s") == ["regular file", "12"]
    assert [(r.kind, r.path) for r in s3.log()] == [("HEAD", f"/{shadowed}/a")]
    assert xattr(m, ".metafs/objects/a", "user.k") == b"hidden"
    assert m.run('cat "$(getfattr --only-values -n s3.shadowed-object a)"').stdout == "the object a"
    assert [r.kind for r in s3.log()] == ["HEAD", "GET"]
    # The directory is untouched, and the control tree lists nothing by itself.
    assert m.run("cat a/b").stdout == "under a"
    assert ls_names(m, ".metafs/objects") == []
    # Any key is reachable, through directories (a HEAD and a one-key LIST for "d").
    assert m.run("cat .metafs/objects/d/x").stdout == "x"
    r = m.run("stat .metafs/objects/nothing", check=False)
    assert r.returncode != 0 and "No such file" in r.stderr


def test_shadow_known_from_the_lookup_probe(s3, shadowed, mount):
    m = mount(shadowed)
    # No listing of the root: the lookup of "a" probes HEAD a and LIST a/ and finds both.
    assert xattr(m, "a", "s3.shadowed-object") == b".metafs/objects/a"
    assert s3.counts()["LIST"] == 1 and s3.counts()["HEAD"] == 1

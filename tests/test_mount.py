"""Real mounts through the kernel: ls -l, stat, getfattr against moto.

Every claim is checked against what was uploaded and against the
requests the server counted.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time

import pytest

from tests.helpers import ls_names, put_many, stat_fields, xattr

pytestmark = pytest.mark.mount


def test_ls_l_and_stat_match_uploaded_objects(mount, boto, bucket):
    sizes = {"empty": 0, "small.txt": 5, "one-k": 1024, "odd": 4097}
    for name, size in sizes.items():
        boto.put_object(Bucket=bucket, Key=name, Body=b"z" * size)
    listed = {o["Key"]: o for o in boto.list_objects_v2(Bucket=bucket)["Contents"]}
    m = mount(bucket)
    out = m.run("ls -l --time-style=+%s").stdout.splitlines()[1:]
    seen = {}
    for line in out:
        mode, _, _, _, size, mtime, name = line.split(None, 6)
        seen[name] = (mode, int(size), int(mtime))
    assert set(seen) == set(sizes)
    for name, (mode, size, mtime) in seen.items():
        assert mode == "-r--r--r--"
        assert size == sizes[name]
        assert mtime == int(listed[name]["LastModified"].timestamp())
        kind, ssize, smtime = stat_fields(m, name)
        assert (kind, int(ssize), int(smtime)) in {("regular file", size, mtime),
                                                   ("regular empty file", size, mtime)}
    # du works because st_blocks is set (512-byte units)
    assert m.run("stat -c %b odd").stdout.strip() == str((4097 + 511) // 512)


def test_nested_prefixes_markers_and_find(mount, boto, bucket):
    for k in ["a/b/c/deep.txt", "a/b/mid.txt", "a/top.txt", "root.txt",
              "marked/", "marked/inside.txt", "emptydir/"]:
        boto.put_object(Bucket=bucket, Key=k, Body=b"" if k.endswith("/") else b"data")
    m = mount(bucket)
    found = sorted(m.run("find . -mindepth 1").stdout.split())
    assert found == sorted(["./a", "./a/b", "./a/b/c", "./a/b/c/deep.txt", "./a/b/mid.txt",
                            "./a/top.txt", "./root.txt", "./marked", "./marked/inside.txt",
                            "./emptydir"])
    assert stat_fields(m, "emptydir", "%F") == ["directory"]
    assert ls_names(m, "emptydir") == []
    assert stat_fields(m, "a/b", "%F|%A") == ["directory", "dr-xr-xr-x"]


def test_large_directory_pages_through_readdir_without_head(mount, bucket, s3):
    # Long names: each readdir reply holds few of them, so one listing takes
    # many readdir calls, and ListObjectsV2 needs two pages of 1,000.
    names = [f"{i:05d}-" + "n" * 150 for i in range(2000)]
    put_many(bucket, [f"big/{n}" for n in names])
    m = mount(bucket)
    out = m.run("ls -l big").stdout.splitlines()
    assert out[0].startswith("total ")
    assert sorted(line.split(None, 8)[8] for line in out[1:]) == names
    c = s3.counts()
    # The probe of 'big' is the flat first page of big/ (its first 1,000 keys), which
    # readdir continues with one delimiter page after its last key: 2 LISTs in all.
    assert c["LIST"] == 2
    assert c["HEAD"] == 1 and c["HEAD_COND"] == 0  # only the lookup of 'big', none per entry
    probe, listed = s3.log("LIST")
    assert probe.query["prefix"] == "big/" and "delimiter" not in probe.query
    assert listed.query["prefix"] == "big/" and listed.query["delimiter"] == "/"
    assert listed.query["start-after"] == f"big/{names[999]}"
    assert "continuation-token" not in listed.query
    assert all(r.query.get("encoding-type") == "url" for r in (probe, listed))
    s3.reset()
    assert len(m.run("ls -f big").stdout.split()) == 2002  # warm: . and .. too
    assert s3.counts()["LIST"] == 0 and s3.counts()["HEAD"] == 0


def test_ls_l_of_listed_directory_sends_no_head(mount, bucket, s3):
    put_many(bucket, [f"d/file{i}" for i in range(50)])
    m = mount(bucket)
    m.run("ls -l")  # lists the root: 'd' is known from the listing
    s3.reset()
    m.run("ls -l d")
    assert s3.counts() == {**s3.counts(), "LIST": 1, "HEAD": 0, "HEAD_COND": 0}
    s3.reset()
    m.run("ls -l d; stat d/file7 >/dev/null")  # within the TTL: nothing at all
    assert sum(s3.counts().values()) == 0


ODD = ["with space.txt", "plus+sign", "per%cent", "tilde~", "équipe-日本語.txt",
       "semi;colon", "amp&and=eq", "quote'single", "emoji-😀"]


def test_odd_names(mount, boto, bucket):
    for i, n in enumerate(ODD):
        boto.put_object(Bucket=bucket, Key=f"odd dir/{n}", Body=b"x" * (i + 1),
                        Metadata={"idx": str(i)})
    m = mount(bucket)
    assert sorted(ls_names(m, "odd dir")) == sorted(ODD)
    for i, n in enumerate(ODD):
        assert stat_fields(m, f"odd dir/{n}", "%s") == [str(i + 1)]
        assert xattr(m, f"odd dir/{n}", "user.idx") == str(i).encode()


def test_file_and_prefix_clash_directory_wins(mount, boto, bucket, s3):
    boto.put_object(Bucket=bucket, Key="clash", Body=b"i am a file")
    boto.put_object(Bucket=bucket, Key="clash/inner.txt", Body=b"inside")
    boto.put_object(Bucket=bucket, Key="clash-after", Body=b"sorted between")
    m = mount(bucket)
    # Looked up before any listing: HEAD finds the object, LIST the prefix.
    assert stat_fields(m, "clash", "%F") == ["directory"]
    assert ls_names(m, "clash") == ["inner.txt"]
    assert sorted(ls_names(m)) == ["clash", "clash-after"]


def test_invalid_keys_are_left_out_with_a_log_line(mount, boto, bucket):
    good = ["ok.txt", "dir/fine.txt"]
    bad = ["dir//empty-component", "dots/./x", "dots/../y", "long/" + "L" * 256]
    for k in good + bad:
        boto.put_object(Bucket=bucket, Key=k, Body=b"x")
    m = mount(bucket)
    assert sorted(ls_names(m)) == ["dir", "dots", "long", "ok.txt"]
    assert ls_names(m, "dir") == ["fine.txt"]
    assert ls_names(m, "dots") == []
    assert ls_names(m, "long") == []
    log = m.log_text()
    assert "leaving out key 'long/" in log and "longer than 255 bytes" in log
    assert "leaving out key 'dir//'" in log


def test_getfattr_user_and_system_metadata(mount, boto, bucket):
    boto.put_object(Bucket=bucket, Key="doc.json", Body=b"{}", ContentType="application/json",
                    ContentEncoding="identity", CacheControl="max-age=60",
                    StorageClass="STANDARD_IA", ServerSideEncryption="AES256",
                    Metadata={"owner": "data-team", "encoded": "=?UTF-8?B?w6lsw6h2ZSDml6XmnKw=?=",
                              "q-encoded": "=?UTF-8?Q?caf=C3=A9?="})
    head = boto.head_object(Bucket=bucket, Key="doc.json")
    m = mount(bucket)
    dump = m.run("getfattr -d -e text doc.json").stdout
    assert 'user.owner="data-team"' in dump
    assert xattr(m, "doc.json", "user.encoded") == "élève 日本".encode()
    assert xattr(m, "doc.json", "user.q-encoded") == "café".encode()
    assert xattr(m, "doc.json", "s3.etag") == head["ETag"].strip('"').encode()
    assert xattr(m, "doc.json", "s3.content-type") == b"application/json"
    assert xattr(m, "doc.json", "s3.content-encoding") == b"identity"
    assert xattr(m, "doc.json", "s3.cache-control") == b"max-age=60"
    assert xattr(m, "doc.json", "s3.storage-class") == b"STANDARD_IA"
    assert xattr(m, "doc.json", "s3.server-side-encryption") == b"AES256"
    assert xattr(m, "doc.json", "s3.last-modified") == head["ResponseMetadata"]["HTTPHeaders"][
        "last-modified"].encode()
    names = m.run("getfattr -m - doc.json").stdout.split()
    assert {"user.owner", "user.s3.etag", "user.s3.content-type", "user.mime_type"} <= set(names)
    # Everything listed is under user. (so cp -a and rsync -aX can copy it); no key listed twice.
    assert all(n.startswith("user.") for n in os.listxattr(m.path / "doc.json"))
    assert not any(n.startswith("user.s3.meta.") for n in names)
    assert xattr(m, "doc.json", "user.s3.meta.owner") == b"data-team"  # by name, for every key
    assert xattr(m, "doc.json", "user.mime_type") == b"application/json"
    missing = m.run("getfattr -n user.nope doc.json", check=False)
    assert missing.returncode != 0 and "No such attribute" in missing.stderr
    for path, name in [("doc.json", "user.nope"), ("doc.json", "s3.nope"), (".", "s3.nope")]:
        try:
            os.getxattr(m.path / path, name)
        except OSError as e:
            assert e.errno == errno.ENODATA, (path, name, e)
        else:
            raise AssertionError(f"{path} has {name}")


def test_version_id_xattr_on_versioned_bucket(mount, boto, bucket):
    boto.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v = boto.put_object(Bucket=bucket, Key="v.txt", Body=b"1")["VersionId"]
    m = mount(bucket)
    assert xattr(m, "v.txt", "s3.version-id") == v.encode()


STATS = ["metafs.inodes", "metafs.cache.objects", "metafs.cache.negatives", "metafs.cache.prefixes",
         "metafs.cache.listings", "metafs.cache.listed-entries", "metafs.open-dirs",
         "metafs.invalidations", "metafs.walk-pages", "metafs.range-requests"]


def test_root_exposes_head_bucket(mount, bucket, s3):
    put_many(bucket, ["sub/deeper/x"])
    m = mount(bucket)
    assert xattr(m, ".", "s3.bucket-region") == b"us-east-1"
    assert xattr(m, ".", "s3.bucket") == bucket.encode()
    assert xattr(m, ".", "s3.region") == b"us-east-1"
    assert xattr(m, ".", "s3.endpoint") == s3.url.encode()  # path style: the bucket is not in it
    assert xattr(m, ".", "s3.prefix") == b""
    # The root's table, metafs's live figures included, costs no request.
    names = os.listxattr(m.path)
    assert {"user.s3.bucket-region", "user.s3.bucket", "user.s3.region", "user.s3.endpoint",
            "user.s3.prefix"} <= set(names)
    assert {"user." + n for n in STATS} <= set(names)
    assert all(xattr(m, ".", n).isdigit() for n in STATS)
    assert sum(s3.counts().values()) == 0
    # Every directory has s3.prefix: its key prefix in the bucket; only the root has the rest.
    assert xattr(m, "sub", "s3.prefix") == b"sub/"
    assert xattr(m, "sub/deeper", "s3.prefix") == b"sub/deeper/"
    assert os.listxattr(m.path / "sub") == ["user.s3.prefix"]


def test_security_and_system_probes_cost_no_request(mount, bucket, s3):
    put_many(bucket, ["f1", "f2"])
    m = mount(bucket)
    m.run("ls -l")
    s3.reset()
    for name in ("security.selinux", "system.posix_acl_access", "trusted.x"):
        r = m.run(f"getfattr -n {name} f1", check=False)
        assert "Operation not supported" in r.stderr
    assert sum(s3.counts().values()) == 0


def test_repeated_stat_and_getfattr_within_ttl_cost_nothing(mount, bucket, s3):
    put_many(bucket, ["a.txt"])
    m = mount(bucket)
    m.run("stat a.txt")
    first = s3.counts()
    assert first["HEAD"] == 1 and first["LIST"] == 1  # unlisted name: one HEAD + one LIST
    s3.reset()
    m.run("stat a.txt; stat a.txt; ls -l a.txt")
    assert sum(s3.counts().values()) == 0
    m.run("getfattr -d a.txt")  # HEAD-level data: one more HEAD (the probe had it already)
    m.run("getfattr -d a.txt; getfattr -m - a.txt")
    assert s3.counts()["HEAD"] <= 1 and s3.counts()["HEAD_COND"] == 0


def test_unlisted_name_probe_sends_head_and_list_concurrently(mount, bucket, s3):
    put_many(bucket, ["x.txt"])
    m = mount(bucket)
    s3.delay = 0.3
    m.run("stat x.txt")
    s3.delay = 0.0
    head, = s3.log("HEAD")
    lst, = s3.log("LIST")
    # The LIST is the first flat page of x.txt/ (no delimiter, the server's page size).
    assert lst.query["prefix"] == "x.txt/" and not {"delimiter", "max-keys"} & set(lst.query)
    # Both were in flight at once (each took >= 0.3 s).
    assert head.started < lst.finished and lst.started < head.finished


def test_revalidation_after_ttl_is_conditional(mount, boto, bucket, s3):
    boto.put_object(Bucket=bucket, Key="r.txt", Body=b"same", Metadata={"k": "v"})
    etag = boto.head_object(Bucket=bucket, Key="r.txt")["ETag"]
    m = mount(bucket, "--metadata-ttl", "1")
    assert xattr(m, "r.txt", "user.k") == b"v"
    time.sleep(1.2)
    s3.reset()
    assert xattr(m, "r.txt", "user.k") == b"v"
    assert stat_fields(m, "r.txt", "%s") == ["4"]
    cond = s3.log("HEAD_COND")
    assert len(cond) == 1 and s3.counts()["HEAD"] == 0
    assert cond[0].headers["if-none-match"] == etag and cond[0].status == 304


def test_change_and_deletion_behind_the_mount_seen_after_ttl(mount, boto, bucket, s3):
    boto.put_object(Bucket=bucket, Key="c.txt", Body=b"old", Metadata={"gen": "1"})
    m = mount(bucket, "--metadata-ttl", "1")
    assert stat_fields(m, "c.txt", "%s") == ["3"]
    assert xattr(m, "c.txt", "user.gen") == b"1"
    boto.put_object(Bucket=bucket, Key="c.txt", Body=b"newer!", Metadata={"gen": "2"})
    assert stat_fields(m, "c.txt", "%s") == ["3"]  # still trusted (kernel and metafs)
    time.sleep(1.2)
    assert stat_fields(m, "c.txt", "%s") == ["6"]
    assert xattr(m, "c.txt", "user.gen") == b"2"
    boto.delete_object(Bucket=bucket, Key="c.txt")
    time.sleep(1.2)
    r = m.run("stat c.txt", check=False)
    assert r.returncode != 0 and "No such file" in r.stderr


def test_name_known_as_a_file_is_revalidated_by_head_only(mount, boto, bucket, s3):
    boto.put_object(Bucket=bucket, Key="f", Body=b"file")
    m = mount(bucket, "--metadata-ttl", "1")
    assert stat_fields(m, "f", "%F") == ["regular file"]  # the probe: HEAD + LIST, no prefix
    boto.put_object(Bucket=bucket, Key="f/inner", Body=b"x")  # now a directory on the server
    time.sleep(1.2)
    s3.reset()
    assert stat_fields(m, "f", "%F") == ["regular file"]
    cond = s3.log("HEAD_COND")
    assert len(cond) == 1 and cond[0].status == 304
    assert s3.counts() == {**s3.counts(), "HEAD_COND": 1, "HEAD": 0, "LIST": 0}
    assert sum(s3.counts().values()) == 1
    # The next listing of the parent shows the directory.
    assert ls_names(m) == ["f"]
    assert stat_fields(m, "f", "%F") == ["directory"]
    assert ls_names(m, "f") == ["inner"]


def test_negative_lookups_are_cached(mount, boto, bucket, s3):
    m = mount(bucket, "--negative-ttl", "1")
    assert m.run("stat nope", check=False).returncode != 0
    assert s3.counts()["HEAD"] == 1 and s3.counts()["LIST"] == 1
    s3.reset()
    for _ in range(3):
        assert m.run("stat nope", check=False).returncode != 0
    assert sum(s3.counts().values()) == 0
    boto.put_object(Bucket=bucket, Key="nope", Body=b"now here")
    time.sleep(1.2)
    assert stat_fields(m, "nope", "%s") == ["8"]


def test_concurrent_getfattr_share_one_head(mount, bucket, s3):
    put_many(bucket, ["shared.txt"])
    m = mount(bucket)
    m.run("ls -l")
    s3.reset()
    s3.delay = 0.3
    procs = [subprocess.Popen(["getfattr", "-d", "shared.txt"], cwd=m.path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(8)]
    assert all(p.wait(20) == 0 for p in procs)
    assert s3.counts()["HEAD"] == 1


def test_read_contents(mount, boto, bucket):
    data = os.urandom(3 * 1024 * 1024 + 17)
    boto.put_object(Bucket=bucket, Key="blob.bin", Body=data)
    m = mount(bucket)
    assert (m.path / "blob.bin").read_bytes() == data
    r = m.run("touch new-file", check=False)
    assert r.returncode != 0 and "Read-only file system" in r.stderr


def test_reads_are_pinned_to_the_etag_and_a_changed_object_is_estale(mount, boto, bucket, s3):
    mib = 1 << 20
    data = os.urandom(3 * mib)
    boto.put_object(Bucket=bucket, Key="pinned.bin", Body=data)
    etag = boto.head_object(Bucket=bucket, Key="pinned.bin")["ETag"]
    m = mount(bucket)
    fd = os.open(m.path / "pinned.bin", os.O_RDONLY)
    try:
        s3.reset()
        got = b"".join(os.pread(fd, 64 * 1024, off) for off in range(0, mib // 2, 64 * 1024))
        assert got == data[:mib // 2]
        # Half a MiB read (the kernel asks in pieces of 128 KiB at most): one ranged GET
        # of at least 1 MiB, pinned to the ETag seen at open.
        get, = s3.log("GET")
        assert get.headers["if-match"] == etag and get.status == 206
        first, last = (int(x) for x in get.headers["range"].removeprefix("bytes=").split("-"))
        assert first == 0 and last + 1 - first >= mib
        boto.put_object(Bucket=bucket, Key="pinned.bin", Body=os.urandom(3 * mib))
        try:
            os.pread(fd, 4096, 2 * mib)
        except OSError as e:
            assert e.errno == errno.ESTALE, e
        else:
            raise AssertionError("a read of a changed object succeeded")
        last_get = s3.log("GET")[-1]
        assert last_get.headers["if-match"] == etag and last_get.status == 412
    finally:
        os.close(fd)


def test_statfs_reports_no_blocks_and_no_free_space(mount, bucket, s3):
    m = mount(bucket)
    st = os.statvfs(m.path)
    assert (st.f_bsize, st.f_frsize, st.f_namemax) == (4096, 4096, 255)
    assert (st.f_blocks, st.f_bfree, st.f_bavail) == (0, 0, 0)
    assert (st.f_files, st.f_ffree, st.f_favail) == (0, 0, 0)
    assert st.f_flag & os.ST_RDONLY
    for df in ("df -P .", "df -P -i ."):  # blocks, then inodes: all zero, no free space
        _, line = m.run(df).stdout.splitlines()
        # The source as given (here the bucket alone), as `mount -a` compares it with fstab's
        assert line.split() == [bucket, "0", "0", "0", "-", str(m.path)]
    assert sum(s3.counts().values()) == 0


def test_prefix_mount_and_mount_options(mount, boto, bucket, s3):
    put_many(bucket, ["outside.txt", "sub/inside.txt", "sub/deeper/x"])
    m = mount(f"{bucket}/sub", "-o", "metadata-ttl=30,file_mode=0440,_netdev,ro")
    assert sorted(ls_names(m)) == ["deeper", "inside.txt"]
    assert stat_fields(m, "inside.txt", "%a") == ["440"]
    with open("/proc/mounts") as f:
        mounts = f.read()
    line = next(ln for ln in mounts.splitlines() if f" {m.path} " in ln)
    assert line.startswith(f"{bucket}/sub ") and " fuse.metafs ro," in line

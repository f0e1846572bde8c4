"""scripts/install.sh, and mount(8) running the installed metafs from a minimal environment.

The install goes to a temporary root (``--root``): its own venv built from
this tree, the links, the unit, the man page.  mount(8) looks for its
helpers in /sbin only, so the mount tests run in a private mount namespace
(``unshare -m``) where the temporary root's sbin is laid over /usr/sbin
(overlayfs, read-only): inside it the machine looks exactly as after a real
install, and the real /usr/sbin is never written.  Every mount command runs
under ``env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin`` — no /usr/local/bin, no
HOME, no AWS variable — against the moto server, and unmounts after.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ACCESS_KEY, REPO, SECRET_KEY, put_many

pytestmark = pytest.mark.mount

MINIMAL = "env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """metafs installed under a temporary root by scripts/install.sh."""
    root = tmp_path_factory.mktemp("root")
    r = subprocess.run(["bash", str(REPO / "scripts" / "install.sh"), "--root", str(root), "--no-apt"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return root


def in_namespace(root: Path, script: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``script`` (bash) where /usr/sbin also holds the temporary root's sbin."""
    prologue = (f"set -u\nmount -t overlay overlay -o lowerdir={shlex.quote(str(root / 'sbin'))}"
                ":/usr/sbin /usr/sbin || exit 99\n")
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c",
                           prologue + script], capture_output=True, text=True, timeout=timeout)


def credentials(tmp_path: Path) -> Path:
    creds = tmp_path / "bucket.credentials"
    creds.write_text(f"access_key_id={ACCESS_KEY}\nsecret_access_key={SECRET_KEY}\n")
    creds.chmod(0o600)
    return creds


def test_install_puts_each_file_in_place(root):
    venv = root / "opt" / "metafs"
    assert os.readlink(root / "usr/local/bin/metafs") == str(venv / "bin" / "metafs")
    assert os.readlink(root / "sbin/mount.fuse.metafs") == str(venv / "bin" / "mount.fuse.metafs")
    r = subprocess.run([root / "usr/local/bin/metafs", "--version"], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and r.stdout.startswith("metafs ")
    # Runtime dependencies only: no test, server or checker package in the venv.
    frozen = subprocess.run([venv / "bin" / "python", "-m", "pip", "freeze"], capture_output=True,
                            text=True).stdout.lower()
    for name in ("pyfuse3", "trio", "httpx", "botocore", "prometheus-client"):
        assert name in frozen.replace("_", "-"), name
    for name in ("pytest", "moto", "boto3", "mypy", "ruff", "hypothesis"):
        assert f"\n{name}==" not in "\n" + frozen, name
    unit = (root / "etc/systemd/system/metafs@.service").read_text()
    assert f"ExecStart={root}/usr/local/bin/metafs --foreground" in unit
    assert (root / "etc/metafs").stat().st_mode & 0o777 == 0o700
    man = subprocess.run(["man", "-w", "metafs"], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "MANPATH": str(root / "usr/local/share/man")})
    assert man.stdout.strip() == str(root / "usr/local/share/man/man8/metafs.8")
    page = subprocess.run(["man", "-P", "cat", "mount.fuse.metafs"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "MANPATH": str(root / "usr/local/share/man"),
                               "MANWIDTH": "200"})
    assert page.returncode == 0 and "credentials-file" in page.stdout


def test_man_page_names_every_option():
    from metafs.config import build_parser

    page = (REPO / "docs" / "metafs.8").read_text().replace("\\-", "-")
    for action in build_parser()._actions:
        for opt in action.option_strings:
            if opt.startswith("--") and opt not in ("--help", "--version"):
                assert opt in page, opt


def test_mount_t_and_fstab_lines_work_from_a_minimal_environment(root, s3, bucket, tmp_path):
    put_many(bucket, ["logs/a.txt", "logs/b.txt", "other.txt"])
    creds = credentials(tmp_path)
    one, two = tmp_path / "one", tmp_path / "two with space"
    one.mkdir()
    two.mkdir()
    fstab = tmp_path / "fstab"
    fstab.write_text(
        "# a bucket prefix, mounted at boot once the network is up, on first access under systemd\n"
        f"{bucket}/logs {str(two).replace(' ', chr(92) + '040')} fuse.metafs "
        f"_netdev,nofail,x-systemd.automount,credentials-file={creds},endpoint-url={s3.url},"
        f"metadata-ttl=300,log-file={tmp_path}/two.log 0 0\n")
    q = shlex.quote
    script = f"""
cleanup() {{ umount {q(str(one))} 2>/dev/null; umount {q(str(two))} 2>/dev/null; true; }}
trap cleanup EXIT
{MINIMAL} mount -t fuse.metafs {q(bucket)} {q(str(one))} \
    -o endpoint-url={s3.url},credentials-file={q(str(creds))},log-file={q(str(tmp_path / "one.log"))} \
    || exit 10
ls {q(str(one))}; echo "--"
{MINIMAL} mount -a -T {q(str(fstab))} || exit 11
{MINIMAL} mount -a -T {q(str(fstab))} || exit 12
ls {q(str(two))}; echo "--"
findmnt -n -o SOURCE,FSTYPE --target {q(str(two))}; echo "--"
grep -c ' fuse.metafs ' /proc/self/mountinfo
umount {q(str(one))} || exit 13
umount {q(str(two))} || exit 14
grep -c ' fuse.metafs ' /proc/self/mountinfo
exit 0
"""
    r = in_namespace(root, script)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    first, second, mounted, counts = r.stdout.split("--\n")
    assert first.split() == ["logs", "other.txt"]
    assert second.split() == ["a.txt", "b.txt"]
    assert mounted.split() == [f"{bucket}/logs", "fuse.metafs"]  # what `mount -a` compares
    assert counts.split() == ["2", "0"]  # the second `mount -a` mounted nothing: both unmounted
    assert "not found" not in r.stderr
    # Two mounts: each a HEAD Bucket, and one listing per `ls` (the prefix check of the
    # fstab mount is a LIST too); the second `mount -a` sent nothing.
    c = s3.counts()
    assert c["HEAD_BUCKET"] == 2 and c["LIST"] == 3, c


def test_mount_helper_reports_a_failure_as_mount_expects(root, s3, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    creds = credentials(tmp_path)
    script = (f"{MINIMAL} mount -t fuse.metafs no-such-bucket {mnt} "
              f"-o endpoint-url={s3.url},credentials-file={creds},log-file={tmp_path}/x.log; echo rc=$?\n"
              f"{MINIMAL} mount -f -t fuse.metafs whatever {mnt} -o bogus-option; echo rc=$?\n")
    r = in_namespace(root, script)
    assert r.stdout.split() == ["rc=32", "rc=1"], (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert any("bucket 'no-such-bucket' does not exist" in ln for ln in lines), lines
    assert any("unknown mount option 'bogus-option'" in ln for ln in lines), lines
    assert not os.path.ismount(mnt)


def test_uninstall_removes_what_install_added(root):
    (root / "etc/metafs/keep.env").write_text("METAFS_SOURCE=b\n")
    r = subprocess.run(["bash", str(REPO / "scripts" / "install.sh"), "--root", str(root), "--uninstall"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())
    assert left == ["etc/metafs/keep.env"]  # the configuration stays

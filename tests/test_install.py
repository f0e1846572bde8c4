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
import pwd
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from metafs.mountpoint import mounts_at
from tests.helpers import ACCESS_KEY, FUSERMOUNT, REPO, SECRET_KEY, put_many, wait_until

pytestmark = pytest.mark.mount

MINIMAL = "env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    """metafs installed under a temporary root by scripts/install.sh.

    The root is world-readable, as /opt and /usr/local are (pytest's own temporary
    directories are not): ordinary users run the installed metafs too.
    """
    root = Path(tempfile.mkdtemp(prefix="metafs-root-"))
    root.chmod(0o755)
    r = subprocess.run(["bash", str(REPO / "scripts" / "install.sh"), "--root", str(root), "--no-apt"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    yield root
    shutil.rmtree(root, ignore_errors=True)


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
cat /proc/self/mountinfo; echo "--"
umount {q(str(one))} || exit 13
umount {q(str(two))} || exit 14
cat /proc/self/mountinfo
exit 0
"""
    r = in_namespace(root, script)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    first, second, mounted, before, after = r.stdout.split("--\n")
    assert first.split() == ["logs", "other.txt"]
    assert second.split() == ["a.txt", "b.txt"]
    assert mounted.split() == [f"{bucket}/logs", "fuse.metafs"]  # what `mount -a` compares
    # One mount on each (the second `mount -a` stacked nothing), and none after umount.
    assert [len(mounts_at(str(p), before)) for p in (one, two)] == [1, 1]
    assert [len(mounts_at(str(p), after)) for p in (one, two)] == [0, 0]
    assert "not found" not in r.stderr
    # Two mounts: each a HEAD Bucket, and one listing per `ls` (the prefix check of the
    # fstab mount is a LIST too); the second `mount -a` sent nothing.
    c = s3.counts()
    assert c["HEAD_BUCKET"] == 2 and c["LIST"] == 3, c


FSTAB_GENERATOR = "/usr/lib/systemd/system-generators/systemd-fstab-generator"


def unit_section(text: str, section: str) -> dict[str, str]:
    out: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section and "=" in line:
            k, _, v = line.partition("=")
            out[k] = v
    return out


def test_at_boot_systemds_fstab_generator_makes_an_automount_whose_mount_works(root, s3, bucket,
                                                                                tmp_path):
    """What boot does with the fstab line, short of a running systemd: systemd's own
    generator turns it into units, and the mount unit's command (mount WHAT WHERE -t TYPE -o
    OPTIONS) runs from a minimal environment."""
    put_many(bucket, ["boot.txt"])
    creds = credentials(tmp_path)
    mnt = tmp_path / "at-boot"
    mnt.mkdir()
    fstab = tmp_path / "fstab"
    fstab.write_text(f"{bucket} {mnt} fuse.metafs _netdev,nofail,x-systemd.automount,"
                     f"credentials-file={creds},endpoint-url={s3.url},log-file={tmp_path}/boot.log 0 0\n")
    gen = [tmp_path / "generated" / d for d in ("normal", "early", "late")]
    for d in gen:
        d.mkdir(parents=True)
    r = subprocess.run([FSTAB_GENERATOR, *map(str, gen)], capture_output=True, text=True,
                       env={"SYSTEMD_FSTAB": str(fstab), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    name = subprocess.run(["systemd-escape", "--path", str(mnt)], capture_output=True, text=True,
                          check=True).stdout.strip()
    # _netdev (and the fuse type): a network filesystem, mounted on first access once
    # remote-fs.target is reached, i.e. after the network.
    assert (gen[0] / "remote-fs.target.wants" / f"{name}.automount").exists()
    assert unit_section((gen[0] / f"{name}.automount").read_text(), "Automount")["Where"] == str(mnt)
    unit = unit_section((gen[0] / f"{name}.mount").read_text(), "Mount")
    assert (unit["What"], unit["Where"], unit["Type"]) == (bucket, str(mnt), "fuse.metafs")
    q = shlex.quote
    r = in_namespace(root, f"{MINIMAL} mount {q(unit['What'])} {q(unit['Where'])} -t {unit['Type']} "
                           f"-o {q(unit['Options'])} || exit 10\n"
                           f"ls {q(str(mnt))} && umount {q(str(mnt))}")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.split() == ["boot.txt"]


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


# -- ordinary users: mounts through fusermount3 ------------------------------------------------

@pytest.fixture
def user(tmp_path) -> Iterator[pwd.struct_passwd]:
    """A throw-away user (fusermount3 needs a passwd entry), /dev/fuse as Debian's udev sets it.

    /dev/fuse is 0666 on every Debian machine (udev's rule); where no udev runs it is
    created 0600, which only root may open, so the test sets 0666 and restores the mode.
    """
    name = f"metafs-t{os.getpid() % 100000}"
    subprocess.run(["userdel", name], capture_output=True)
    r = subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell",
                        "/usr/sbin/nologin", "--user-group", name], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    mode = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
    os.chmod("/dev/fuse", 0o666)
    try:
        yield pwd.getpwnam(name)
    finally:
        os.chmod("/dev/fuse", mode)
        uid = pwd.getpwnam(name).pw_uid
        subprocess.run(["userdel", name], capture_output=True)
        shutil.rmtree(f"/tmp/metafs-{uid}", ignore_errors=True)  # its runtime dir (control sockets)


@pytest.fixture
def fuse_conf() -> Iterator[Path]:
    """/etc/fuse.conf, restored byte for byte after the test."""
    path = Path("/etc/fuse.conf")
    saved = path.read_bytes() if path.exists() else None
    try:
        yield path
    finally:
        if saved is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(saved)


def as_user(u: pwd.struct_passwd, cmd: str, **env: str) -> subprocess.CompletedProcess:
    """``cmd`` (sh) as ``u``, in a minimal environment with the moto keys."""
    base = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true", **env}
    return subprocess.run(["setpriv", f"--reuid={u.pw_uid}", f"--regid={u.pw_gid}", "--init-groups",
                           "env", "-i", *(f"{k}={v}" for k, v in base.items()), "sh", "-c", cmd],
                          capture_output=True, text=True, timeout=120)


def user_dir(u: pwd.struct_passwd) -> Path:
    d = Path(tempfile.mkdtemp(prefix="metafs-user-"))
    os.chown(d, u.pw_uid, u.pw_gid)
    return d


def release(mnt: Path) -> None:
    if os.path.ismount(mnt):
        subprocess.run([FUSERMOUNT, "-uz", str(mnt)], capture_output=True)


def test_an_ordinary_user_mounts_through_fusermount3(root, user, s3, bucket):
    put_many(bucket, ["d/a.txt"], body=b"hello")
    home = user_dir(user)
    mnt = home / "mnt"
    metafs = root / "usr/local/bin/metafs"
    try:
        r = as_user(user, f"mkdir {mnt} && {metafs} --endpoint-url {s3.url} --log-file {home}/log "
                          f"{bucket} {mnt} && ls -n {mnt}/d && cat {mnt}/d/a.txt && "
                          f"{metafs} status {mnt} && {metafs} refresh {mnt}/d")
        assert r.returncode == 0, (r.stdout, r.stderr)
        lines = r.stdout.splitlines()
        assert lines[1].split()[2:4] == [str(user.pw_uid), str(user.pw_gid)]  # its files are its own
        assert "hello" in r.stdout and f"source:       s3://{bucket}/" in r.stdout
        with open("/proc/self/mountinfo") as f:
            line = next(ln for ln in f if f" {mnt} " in ln)
        assert f"user_id={user.pw_uid}," in line and " fuse.metafs " in line
        # No allow_other: not even root may look in (FUSE's rule, not a permission bit).
        with pytest.raises(PermissionError):
            os.listdir(mnt)
        r = as_user(user, f"fusermount3 -u {mnt}")
        assert r.returncode == 0, r.stderr
        assert wait_until(lambda: not os.path.ismount(mnt))
        assert wait_until(lambda: "unmounted" in (home / "log").read_text())
    finally:
        release(mnt)
        shutil.rmtree(home, ignore_errors=True)


def test_allow_other_follows_the_rules_of_etc_fuse_conf(root, user, fuse_conf, s3, bucket):
    put_many(bucket, ["shared.txt"])
    home = user_dir(user)
    mnt = home / "mnt"
    cmd = (f"mkdir -p {mnt} && {root}/usr/local/bin/metafs --endpoint-url {s3.url} "
           f"--log-file {home}/log -o allow_other {bucket} {mnt}")
    try:
        fuse_conf.write_text("# mount_max = 1000\n#user_allow_other\n")
        s3.reset()
        r = as_user(user, cmd)
        assert r.returncode == 1 and not os.path.ismount(mnt)
        assert r.stderr.splitlines() == [
            f"metafs: cannot mount s3://{bucket}/ on {mnt}: --allow-other (allow_other) for an ordinary "
            "user needs the line user_allow_other in /etc/fuse.conf (root adds it); without it, only "
            "you can see the mount"]
        assert s3.log() == []  # refused before any request
        fuse_conf.write_text("# mount_max = 1000\n  user_allow_other\n")
        r = as_user(user, cmd)
        assert r.returncode == 0, r.stderr
        assert os.listdir(mnt) == ["shared.txt"]  # root, another user, sees it
        assert as_user(user, f"fusermount3 -u {mnt}").returncode == 0
    finally:
        release(mnt)
        shutil.rmtree(home, ignore_errors=True)


def test_an_unusable_dev_fuse_is_named_for_an_ordinary_user(root, user, s3, bucket):
    home = user_dir(user)
    mnt = home / "mnt"
    os.chmod("/dev/fuse", 0o600)  # as where no udev runs (the fixture restores its mode)
    try:
        r = as_user(user, f"mkdir -p {mnt} && {root}/usr/local/bin/metafs --endpoint-url {s3.url} "
                          f"--log-file {home}/log {bucket} {mnt}")
        assert r.returncode == 1
        assert r.stderr.splitlines() == [
            f"metafs: cannot mount s3://{bucket}/ on {mnt}: an ordinary user's mount needs /dev/fuse "
            "readable and writable by all (mode 0600; Debian's udev makes it 0666: as root, "
            "chmod 0666 /dev/fuse)"]
    finally:
        release(mnt)
        shutil.rmtree(home, ignore_errors=True)


def test_uninstall_removes_what_install_added(root):
    (root / "etc/metafs/keep.env").write_text("METAFS_SOURCE=b\n")
    r = subprocess.run(["bash", str(REPO / "scripts" / "install.sh"), "--root", str(root), "--uninstall"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())
    assert left == ["etc/metafs/keep.env"]  # the configuration stays

"""Bad input and bad servers, on real mounts: clear errors, nothing lost.

* start-up failures end the command with one line and a non-zero exit,
  before anything is mounted;
* a failing or hanging server gives EIO within the timeout, after retries;
* a listing that would never end gives EIO at once, and the next one works;
* cached entries keep being served during an outage, within a second of
  the first failure whatever the timeouts, and the mount recovers when the
  server does, by itself;
* SIGTERM unmounts and exits 0; the detached mode returns once live.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.helpers import (
    ACCESS_KEY,
    REPO,
    SECRET_KEY,
    base_env,
    put_many,
    run_metafs,
    wait_for_mount,
    wait_until,
)

pytestmark = pytest.mark.mount


def assert_one_line_failure(r: subprocess.CompletedProcess, *needles: str) -> str:
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    assert SECRET_KEY not in r.stderr
    return lines[0]


@pytest.mark.parametrize("foreground", [True, False])
def test_wrong_bucket(s3, tmp_path, foreground):
    args = ["--foreground"] if foreground else []
    r = run_metafs(*args, "--endpoint-url", s3.url, "no-such-bucket", str(tmp_path))
    assert_one_line_failure(r, "bucket 'no-such-bucket' does not exist")
    assert not os.path.ismount(tmp_path)


def test_bad_credentials(s3, boto, bucket, tmp_path):
    # moto checks real SigV4 signatures once auth is on: create an IAM user
    # with a key, then present that key with the wrong secret.
    import boto3

    iam = boto3.client("iam", endpoint_url=s3.url, region_name="us-east-1",
                       aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    iam.create_user(UserName="metafs-bad-creds")
    key = iam.create_access_key(UserName="metafs-bad-creds")["AccessKey"]
    s3.enable_auth(True)
    wrong = "not-the-" + key["SecretAccessKey"]
    env = base_env(AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=wrong)
    r = run_metafs("--endpoint-url", s3.url, bucket, str(tmp_path), env=env)
    line = assert_one_line_failure(r, "credentials were rejected", "SignatureDoesNotMatch")
    assert wrong not in line
    env = base_env(AWS_ACCESS_KEY_ID="AKIAUNKNOWNUNKNOWN00", AWS_SECRET_ACCESS_KEY="x")
    r = run_metafs("--endpoint-url", s3.url, bucket, str(tmp_path), env=env)
    assert_one_line_failure(r, "credentials were rejected", "InvalidAccessKeyId")
    assert not os.path.ismount(tmp_path)


def test_no_credentials_at_all(s3, bucket, tmp_path):
    env = {k: v for k, v in base_env().items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    r = run_metafs("--endpoint-url", s3.url, bucket, str(tmp_path), env=env)
    assert_one_line_failure(r, "no AWS credentials found")


def test_unreachable_endpoint(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    t0 = time.monotonic()
    r = run_metafs("--endpoint-url", f"http://127.0.0.1:{port}", "--request-timeout", "2",
                   "bkt", str(tmp_path))
    assert_one_line_failure(r, "cannot reach the endpoint", f"127.0.0.1:{port}", "refused")
    assert time.monotonic() - t0 < 15


def test_an_endpoint_url_without_scheme_on_a_plain_http_server_says_https_was_assumed(s3, bucket,
                                                                                      tmp_path):
    hostport = s3.url.removeprefix("http://")
    r = run_metafs("--endpoint-url", hostport, "--retries", "0", bucket, str(tmp_path))
    assert_one_line_failure(r, f"the TLS handshake with {hostport} failed", "https was assumed",
                            f"write http://{hostport}")
    assert not os.path.ismount(tmp_path)


def test_the_aws_endpoint_settings_are_used_without_endpoint_url(s3, bucket, tmp_path):
    put_many(bucket, ["via-env"])
    config = tmp_path / "aws-config"
    config.write_text(f"[default]\nendpoint_url = {s3.url}\n")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    for env in (base_env(AWS_ENDPOINT_URL_S3=s3.url), base_env(AWS_ENDPOINT_URL=s3.url),
                base_env(AWS_CONFIG_FILE=str(config))):
        r = run_metafs(bucket, str(mnt), env=env)
        try:
            assert r.returncode == 0, r.stderr
            assert os.listdir(mnt) == ["via-env"]
        finally:
            subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
        assert wait_until(lambda: not os.path.ismount(mnt))
    # A failure names the setting the endpoint came from.
    r = run_metafs("no-such-bucket", str(mnt), env=base_env(AWS_ENDPOINT_URL_S3=s3.url))
    assert_one_line_failure(r, f"does not exist at {s3.url} (from AWS_ENDPOINT_URL_S3)")


def test_half_an_aws_key_pair_is_named(s3, bucket, tmp_path):
    env = {k: v for k, v in base_env().items() if k != "AWS_SECRET_ACCESS_KEY"}
    r = run_metafs("--endpoint-url", s3.url, bucket, str(tmp_path), env=env)
    assert_one_line_failure(r, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
    assert "PartialCredentialsError" not in r.stderr


def test_hanging_endpoint_at_start(s3, bucket, tmp_path):
    s3.set_fault("hang", hang_seconds=30)
    t0 = time.monotonic()
    r = run_metafs("--endpoint-url", s3.url, "--request-timeout", "0.5", "--retries", "1",
                   bucket, str(tmp_path))
    assert_one_line_failure(r, "cannot reach the endpoint", "within 0.5 s")
    assert time.monotonic() - t0 < 10
    assert len(s3.log("HEAD_BUCKET")) == 2  # one attempt + one retry


def test_server_errors_give_eio_after_retries_then_recover(mount, bucket, s3):
    put_many(bucket, ["cached.txt", "later.txt"])
    m = mount(bucket, "--metadata-ttl", "1", "--retries", "2", "--request-timeout", "2")
    m.run("getfattr -d cached.txt")
    s3.set_fault("500")
    s3.reset()
    t0 = time.monotonic()
    r = m.run("getfattr -d later.txt", check=False)
    assert r.returncode != 0 and "Input/output error" in r.stderr
    assert time.monotonic() - t0 < 10
    heads = s3.log("HEAD")
    assert len(heads) == 3 and all(h.status == 500 for h in heads)  # 1 + 2 retries
    # The cached file is still served, even after its TTL (stale if error).
    time.sleep(1.1)
    assert "user." not in m.run("getfattr -d cached.txt").stderr
    assert m.run("stat -c %s cached.txt").stdout.strip() == "1"
    s3.set_fault(None)
    assert m.run("stat -c %s later.txt").stdout.strip() == "1"
    assert "serving cached metadata" in m.log_text()


def test_hanging_server_gives_eio_within_timeout(mount, bucket, s3):
    put_many(bucket, ["f"])
    m = mount(bucket, "--request-timeout", "0.5", "--retries", "1")
    s3.set_fault("hang", hang_seconds=20)
    t0 = time.monotonic()
    r = m.run("stat f", check=False)
    elapsed = time.monotonic() - t0
    s3.set_fault(None)
    assert r.returncode != 0 and "Input/output error" in r.stderr
    assert elapsed < 5, elapsed
    # Recovered by itself: the next probe (0.5 s after the failure) gets an answer.
    assert wait_until(lambda: "answers again after" in m.log_text(), timeout=5)
    assert m.run("stat -c %s f").stdout.strip() == "1"


def test_outage_known_names_answer_within_a_second_then_the_mount_recovers(mount, bucket, s3,
                                                                            boto):
    """A server that accepts connections and never answers, with 2 s x 3 attempts per request."""
    timeout, retries = 2, 2
    boto.put_object(Bucket=bucket, Key="f", Body=b"hello", Metadata={"color": "blue"})
    put_many(bucket, ["d/a", "d/b", "d/sub/x"])
    m = mount(bucket, "--metadata-ttl", "1", "--request-timeout", str(timeout),
              "--retries", str(retries))
    m.run("ls -l . d d/sub && stat f d/sub/x && getfattr -d f")  # all known...
    time.sleep(1.2)  # ...and all expired
    s3.set_fault("hang", hang_seconds=120)
    s3.reset()

    def timed(cmd: str, check: bool = True) -> tuple[subprocess.CompletedProcess, float]:
        t0 = time.monotonic()
        r = m.run(cmd, check=check)
        return r, time.monotonic() - t0

    r, first = timed("stat -c %s f")
    assert r.stdout.strip() == "5"
    assert first <= (retries + 1) * timeout + 1, first  # one request's budget, once
    times: dict[str, float] = {"stat f (first failure)": first}
    commands = {"stat -c %s f": "5", "getfattr -d f": 'user.color="blue"',
                "stat -c %s d/sub/x": "1", "ls -l d": " sub\n"}
    for round_ in range(2):  # the second round after every grace and kernel timeout is over
        for cmd, expected in commands.items():
            r, spent = timed(cmd)
            assert expected in r.stdout, (cmd, r.stdout)
            times[f"{cmd} ({round_})"] = spent
        time.sleep(1.2)
    r, spent = timed("stat never-seen", check=False)
    assert r.returncode != 0 and "Input/output error" in r.stderr
    times["stat never-seen"] = spent
    print("outage timings:", {k: round(v, 3) for k, v in times.items()})
    assert all(t <= 1.0 for k, t in times.items() if "first" not in k), times
    # Nothing but the first failure's 3 attempts and the probes reached the server.
    assert [r.kind for r in s3.log() if r.kind != "HEAD_BUCKET"] == ["HEAD_COND"] * 3
    assert len(s3.log("HEAD_BUCKET")) >= 1
    log = m.log_text()
    assert log.count("is not answering") == 1, log
    assert log.count("serving the previous listing of 'd/'") == 1, log

    # The server answers again: the same mount notices at its next probe (every 0.5 s
    # doubling to 5 s, each waiting up to the request timeout), with no remount.
    t0 = time.monotonic()
    s3.set_fault(None)
    assert wait_until(lambda: "answers again after" in m.log_text(), timeout=5 + timeout + 1)
    print(f"recovered {time.monotonic() - t0:.2f} s after the server answered again")
    time.sleep(1.2)  # what was served stale is expired

    def sent(cmd: str) -> list[tuple[str, str, str]]:
        s3.reset()
        m.run(cmd)
        return sorted((r.kind, r.path, r.query.get("prefix", "") + (
            "/delimited" if "delimiter" in r.query else "")) for r in s3.log())

    assert sent("stat -c %s f") == [("HEAD_COND", f"/{bucket}/f", "")]  # a 304
    # The HEAD was that 304; its tags and annotation listing (expired long ago, and
    # revalidated whenever the HEAD is) are asked again, nothing else.
    assert sent("getfattr -d f") == [("ANNOTATIONS", f"/{bucket}/f", ""), ("TAGGING", f"/{bucket}/f", "")]
    time.sleep(1.2)  # every name expired once more, and no lookup burst under way
    # d: a known directory, revalidated by the flat first page of d/'s subtree, which
    # lists d/ and d/sub/ again: sub and x (ETag unchanged) are answered from it.
    assert sent("stat -c %s d/sub/x") == [("LIST", f"/{bucket}", "d/")]
    assert sent("ls -l d") == []  # that page listed d/ (within the TTL): no request


def test_malformed_listing_gives_eio_not_a_crash(mount, bucket, s3, monkeypatch):
    put_many(bucket, ["d/a", "d/b"])
    m = mount(bucket)
    original = s3._app

    def broken(environ, start_response):  # every LIST: the probe of d lists d/ too
        if environ.get("QUERY_STRING", "").find("list-type") >= 0:
            body = b"<ListBucketResult><Contents><Key>unterminated"
            start_response("200 OK", [("Content-Type", "application/xml"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        return original(environ, start_response)

    monkeypatch.setattr(s3, "_app", broken)
    r = m.run("ls d", check=False)
    assert r.returncode != 0 and "Input/output error" in r.stderr
    monkeypatch.setattr(s3, "_app", original)
    assert sorted(m.run("ls d").stdout.split()) == ["a", "b"]
    assert "not valid XML" in m.log_text()


@pytest.mark.parametrize(("fault", "lists"), [
    ("list-no-token", 1), ("list-repeated-token", 2), ("list-empty-pages", 11)])
def test_endless_listing_is_eio_in_bounded_time_and_a_later_ls_works(mount, bucket, s3, fault, lists):
    put_many(bucket, ["a", "d/b"])
    m = mount(bucket)
    s3.set_fault(fault)
    t0 = time.monotonic()
    r = m.run("ls", check=False, timeout=60)
    elapsed = time.monotonic() - t0
    assert r.returncode != 0 and "Input/output error" in r.stderr
    assert elapsed < 5, elapsed
    assert len(s3.log("LIST")) == lists  # detected, not retried: no request loop
    s3.set_fault(None)
    s3.reset()
    assert m.run("ls").stdout.split() == ["a", "d"]  # the same mount, a new listing
    assert len(s3.log("LIST")) == 1
    faults = [ln for ln in m.log_text().splitlines() if "listing would not end" in ln]
    assert len(faults) == 1, faults


def test_sigterm_unmounts_and_exits_zero(s3, bucket, tmp_path):
    put_many(bucket, ["x"])
    proc = subprocess.Popen([sys.executable, "-m", "metafs", "--foreground", "--endpoint-url", s3.url,
                             bucket, str(tmp_path)], env=base_env(), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with proc.stdout:  # the pipe is closed however the test ends
        wait_for_mount(tmp_path, proc)
        assert os.listdir(tmp_path) == ["x"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert not os.path.ismount(tmp_path)
        assert b"Traceback" not in proc.stdout.read()


def test_detached_mount_is_live_when_command_returns(s3, bucket, tmp_path):
    put_many(bucket, ["y"])
    t0 = time.monotonic()
    r = run_metafs("--endpoint-url", s3.url, bucket, str(tmp_path))
    try:
        assert r.returncode == 0, r.stderr
        assert os.path.ismount(tmp_path)  # no waiting: live on return
        assert os.listdir(tmp_path) == ["y"]
        assert time.monotonic() - t0 < 5
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert SECRET_KEY not in ps
    finally:
        subprocess.run(["fusermount3", "-u", str(tmp_path)], capture_output=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and str(tmp_path) in subprocess.run(
            ["ps", "-eo", "args"], capture_output=True, text=True).stdout:
        time.sleep(0.05)
    assert str(tmp_path) not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


def test_bad_command_lines(tmp_path):
    # A missing mountpoint is a start-up failure (exit 1) naming its cause: tests/test_mountpoint.py.
    r = run_metafs("bkt", str(tmp_path / "missing"))
    assert r.returncode == 1 and "the mountpoint does not exist" in r.stderr
    r = run_metafs("-o", "bogus=1", "bkt", str(tmp_path))
    assert r.returncode == 2 and "unknown mount option 'bogus'" in r.stderr
    r = run_metafs("--metadata-ttl", "-3", "bkt", str(tmp_path))
    assert r.returncode == 2


def _unmount_and_wait(mnt) -> None:
    subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
    assert wait_until(lambda: not os.path.ismount(mnt))
    assert wait_until(lambda: str(mnt) not in subprocess.run(
        ["ps", "-eo", "args"], capture_output=True, text=True).stdout)


def test_a_detached_mount_warns_on_the_terminal_and_logs_to_a_named_file_without_syslog(
        s3, bucket, tmp_path):
    put_many(bucket, ["real/x"])
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    state = tmp_path / "state"
    env = base_env(METAFS_SYSLOG_SOCKET=str(tmp_path / "no-such-socket"), XDG_STATE_HOME=str(state))
    r = run_metafs("--endpoint-url", s3.url, f"{bucket}/mistyped", str(mnt), env=env)
    try:
        assert r.returncode == 0, r.stderr
        assert os.listdir(mnt) == []
        # The warning found before detaching reaches the terminal...
        assert f"prefix 'mistyped/' of bucket {bucket} is empty or does not exist" in r.stderr
        # ...and so does where the log goes, since there is no syslog socket.
        logfile = state / "metafs" / (str(mnt).strip("/").replace("/", "-") + ".log")
        assert f"no syslog socket ({tmp_path / 'no-such-socket'}): logging to {logfile}" in r.stderr
        assert logfile.exists()
        text = logfile.read_text()
        assert "is empty or does not exist" in text
        assert f"mounted s3://{bucket}/mistyped/ at {mnt}" in text
    finally:
        _unmount_and_wait(mnt)
    text = logfile.read_text()
    assert f"unmounted {mnt}" in text  # the detached process kept logging there
    assert SECRET_KEY not in text and SECRET_KEY not in r.stderr
    assert "Traceback" not in text


def test_a_detached_mount_logs_to_the_syslog_socket_when_there_is_one(s3, bucket, tmp_path):
    put_many(bucket, ["x"])
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    path = str(tmp_path / "log.sock")
    lines: list[str] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        env = base_env(METAFS_SYSLOG_SOCKET=path, XDG_STATE_HOME=str(tmp_path / "state"))
        r = run_metafs("--endpoint-url", s3.url, bucket, str(mnt), env=env)
        try:
            assert r.returncode == 0, r.stderr
            assert "logging to" not in r.stderr
            assert not (tmp_path / "state").exists()  # no file when syslog is there
        finally:
            _unmount_and_wait(mnt)
        while not any("unmounted" in ln for ln in lines):
            lines.append(sock.recv(65536).decode())
    assert any("metafs[" in ln and f"mounted s3://{bucket}/ at {mnt}" in ln for ln in lines), lines
    assert not any(SECRET_KEY in ln for ln in lines)

"""``metafs`` command: parse, set up logging, detach if asked, run the mount.

Without ``--foreground`` the command forks before anything else starts
(no threads, no trio loop yet); the child runs the mount and reports over
a pipe, and the parent returns only once the mount is live (exit 0) or
the child has failed (its one-line message, exit 1).

``metafs refresh [--all] PATH`` (the first argument ``refresh``) is the
forced refresh of a running mount: :mod:`metafs.refresh`; ``metafs status
MOUNTPOINT`` its figures: :mod:`metafs.status`.

Exit status: 0 after a clean unmount; 1 when the mount could not be made
or ended in error; 2 for a bad command line.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import stat
import sys
import tempfile
from collections.abc import Callable

from . import errors
from .config import Config, parse_args, with_aws_endpoint
from .s3.endpoint import shown

log = logging.getLogger("metafs")


def explain(exc: BaseException, cfg: Config) -> str:
    """The one-line reason a mount failed, naming the cause."""
    where = _where(cfg)
    if isinstance(exc, errors.NoSuchBucketError):
        return f"bucket {cfg.bucket!r} does not exist at {where}"
    if isinstance(exc, errors.BadCredentialsError):
        return (f"the credentials were rejected by {where} ({exc.code}): "
                "check the access key id and secret")
    if isinstance(exc, errors.AccessDeniedError):
        hints = []
        if cfg.expected_bucket_owner:
            hints.append(f"is the bucket owned by account {cfg.expected_bucket_owner} "
                         "(--expected-bucket-owner)?")
        if not cfg.requester_pays:
            hints.append("a requester-pays bucket needs --requester-pays")
        return (f"access to bucket {cfg.bucket!r} was denied ({exc.code or 'HTTP 403'})"
                + (": " + "; ".join(hints) if hints else ""))
    if isinstance(exc, errors.TransportError):
        return f"cannot reach the endpoint: {exc}"
    if isinstance(exc, errors.ServerError):
        return f"the server failed: {exc}"
    if isinstance(exc, errors.MetafsError):
        return str(exc)
    return f"unexpected error: {type(exc).__name__}: {exc}"


def _where(cfg: Config) -> str:
    """The endpoint, for messages: its URL (and the AWS setting it came from), or the service."""
    if not cfg.endpoint_url:
        return _provider_title(cfg)
    url = shown(cfg.endpoint_url)
    if cfg.endpoint_source and cfg.endpoint_source != "--endpoint-url":
        return f"{url} (from {cfg.endpoint_source})"
    return url


def _provider_title(cfg: Config) -> str:
    """The service a mount without --endpoint-url talks to, for messages."""
    from .s3 import dialects

    try:
        return dialects.dialect_for(cfg.provider, cfg.bucket).title
    except Exception:  # noqa: BLE001 - naming the service must never hide the real error
        return cfg.provider


SYSLOG_SOCKETS = ("/dev/log", "/run/systemd/journal/dev-log")
SYSLOG_ENV = "METAFS_SYSLOG_SOCKET"  # another syslog socket path (tests: a missing one)


def syslog_socket() -> str | None:
    """The syslog socket a detached mount logs to: ``$METAFS_SYSLOG_SOCKET`` or the usual ones.

    ``/run/systemd/journal/dev-log`` is journald's syslog socket (``/dev/log``
    links to it); ``/run/systemd/journal/socket`` speaks journald's native
    protocol, not syslog, so it is not used.
    """
    override = os.environ.get(SYSLOG_ENV)
    for path in ([override] if override else SYSLOG_SOCKETS):
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                return path
        except OSError:
            continue
    return None


def fallback_log_file(mountpoint: str) -> str:
    """Where a detached mount logs when there is no syslog socket (and no --log-file).

    ``$XDG_STATE_HOME/metafs/`` when set, else ``/var/log/metafs/`` as root,
    else ``~/.local/state/metafs/``; the file is named after the mountpoint's
    path (``/mnt/data`` -> ``mnt-data.log``).
    """
    name = mountpoint.strip("/").replace("/", "-") or "root"
    dirs: list[str] = []
    if os.environ.get("XDG_STATE_HOME"):
        dirs.append(os.path.join(os.environ["XDG_STATE_HOME"], "metafs"))
    if os.geteuid() == 0:
        dirs.append("/var/log/metafs")
    dirs.append(os.path.join(os.path.expanduser("~"), ".local", "state", "metafs"))
    dirs.append(os.path.join(tempfile.gettempdir(), f"metafs-{os.geteuid()}"))
    for d in dirs:
        try:
            os.makedirs(d, mode=0o700, exist_ok=True)
            path = os.path.join(d, name + ".log")
            with open(path, "a"):
                pass
            return path
        except OSError:
            continue
    raise errors.ConfigError("no syslog socket and no writable log directory: use --log-file")


def log_destination(cfg: Config, detached: bool) -> tuple[str, str | None]:
    """("file", PATH), ("syslog", SOCKET) or ("stderr", None): never nowhere."""
    if cfg.log_file:
        return "file", cfg.log_file
    if not detached:
        return "stderr", None
    sock = syslog_socket()
    if sock is not None:
        return "syslog", sock
    return "file", fallback_log_file(cfg.mountpoint)


class _NoTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is None


def setup_logging(cfg: Config, detached: bool, destination: tuple[str, str | None] | None = None
                  ) -> logging.Handler | None:
    """Install the log handler; detached, also return the terminal's (removed once live)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    kind, where = destination or log_destination(cfg, detached)
    handler: logging.Handler
    if kind == "syslog" and where is not None:
        from logging.handlers import SysLogHandler  # imported only for syslog

        try:
            handler = SysLogHandler(where)
        except OSError:  # a socket nobody reads: a file instead
            kind, where = "file", fallback_log_file(cfg.mountpoint)
        else:
            handler.setFormatter(logging.Formatter("metafs[%(process)d]: %(levelname)s %(message)s"))
    if kind == "file" and where is not None:
        handler = logging.FileHandler(where)
        handler.setFormatter(logging.Formatter(
            "%(asctime)s metafs[%(process)d] %(levelname)s %(name)s: %(message)s"))
    elif kind == "stderr":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("metafs: %(levelname)s %(message)s"))
    root.addHandler(handler)
    terminal: logging.Handler | None = None
    if detached:
        # Until the mount is live, warnings (empty prefix, region fallback…) reach the
        # terminal too: the command's stderr is still the user's.
        terminal = logging.StreamHandler(sys.stderr)
        terminal.setLevel(logging.WARNING)
        terminal.addFilter(_NoTraceback())
        terminal.setFormatter(logging.Formatter("metafs: %(levelname)s %(message)s"))
        root.addHandler(terminal)
    root.setLevel(logging.WARNING)
    logging.getLogger("metafs").setLevel(cfg.log_level.upper())
    # httpx logs every request at INFO: only with --log-level debug.
    logging.getLogger("httpx").setLevel(logging.DEBUG if cfg.log_level == "debug" else logging.WARNING)
    return terminal


def _serve(cfg: Config, on_ready: Callable[[], None] | None = None) -> int:
    import trio

    from . import mount

    faulthandler.enable()
    faulthandler.register(signal.SIGUSR1)  # dump stacks of a hung mount
    try:
        cfg = with_aws_endpoint(cfg)  # AWS_ENDPOINT_URL_S3 & co: read at start, failing as one line
        trio.run(mount.run, cfg, on_ready)
    except BaseException as e:  # everything ends as one line and an exit code
        if isinstance(e, KeyboardInterrupt):
            return 0
        msg = explain(_unwrap(e), cfg)
        if not isinstance(_unwrap(e), errors.MetafsError):
            log.exception("metafs stopped")
        raise SystemExit(f"metafs: cannot mount {cfg.source} on {cfg.mountpoint}: {msg}") from None
    return 0


def _unwrap(e: BaseException) -> BaseException:
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return e


def _detach(cfg: Config) -> int:
    """Fork; the parent waits for READY or an error line from the child.

    Where the mount will log is settled first: --log-file, else syslog when
    its socket exists, else a file named on the terminal once live.
    """
    try:
        destination = log_destination(cfg, detached=True)
    except errors.ConfigError as e:
        sys.stderr.write(f"metafs: cannot mount {cfg.source} on {cfg.mountpoint}: {e}\n")
        return 1
    r, w = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(w)
        with os.fdopen(r, "rb") as pipe:
            report = pipe.read().decode("utf-8", "replace")
        if report.startswith("READY"):
            kind, where = destination
            if kind == "file" and not cfg.log_file:
                sys.stderr.write(f"metafs: no syslog socket ({syslog_socket_names()}): "
                                 f"logging to {where}\n")
            return 0
        _, status = os.waitpid(pid, 0)
        sys.stderr.write(report or f"metafs: the mount process exited early (status {status})\n")
        return 1
    os.close(r)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    terminal = setup_logging(cfg, detached=True, destination=destination)

    def ready() -> None:
        if terminal is not None:
            logging.getLogger().removeHandler(terminal)
        os.write(w, b"READY\n")
        os.close(w)
        os.dup2(devnull, 2)  # stderr stays the parent's terminal only until the mount is live

    try:
        code = _serve(cfg, ready)
    except SystemExit as e:
        if terminal is not None:
            logging.getLogger().removeHandler(terminal)  # the one-line reason says it
        try:
            os.write(w, (str(e.code) + "\n").encode())
        except OSError:
            pass
        os._exit(1)
    os._exit(code)


def syslog_socket_names() -> str:
    override = os.environ.get(SYSLOG_ENV)
    return override or " nor ".join(SYSLOG_SOCKETS)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "refresh":  # a bucket named "refresh" is mounted as s3://refresh
        from . import refresh

        return refresh.main(argv[1:])
    if argv and argv[0] == "status":  # likewise: s3://status mounts the bucket "status"
        from . import status

        return status.main(argv[1:])
    try:
        cfg = parse_args(argv)
    except errors.ConfigError as e:
        sys.stderr.write(f"metafs: {e}\n")
        return 2
    if cfg.foreground:
        setup_logging(cfg, detached=False)
        return _serve(cfg)
    return _detach(cfg)


if __name__ == "__main__":
    sys.exit(main())

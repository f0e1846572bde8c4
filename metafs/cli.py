"""``metafs`` command: parse, set up logging, detach if asked, run the mount.

Without ``--foreground`` the command forks before anything else starts
(no threads, no trio loop yet); the child runs the mount and reports over
a pipe, and the parent returns only once the mount is live (exit 0) or
the child has failed (its one-line message, exit 1).

Exit status: 0 after a clean unmount; 1 when the mount could not be made
or ended in error; 2 for a bad command line.
"""

from __future__ import annotations

import faulthandler
import logging
import logging.handlers
import os
import signal
import sys
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
        return f"access to bucket {cfg.bucket!r} was denied ({exc.code or 'HTTP 403'})"
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


def setup_logging(cfg: Config, detached: bool) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler: logging.Handler
    if cfg.log_file:
        handler = logging.FileHandler(cfg.log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    elif detached and os.path.exists("/dev/log"):
        handler = logging.handlers.SysLogHandler("/dev/log")
        handler.setFormatter(logging.Formatter("metafs[%(process)d]: %(levelname)s %(message)s"))
    elif detached:
        handler = logging.NullHandler()
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("metafs: %(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("metafs").setLevel(cfg.log_level.upper())
    # httpx logs every request at INFO: only with --log-level debug.
    logging.getLogger("httpx").setLevel(logging.DEBUG if cfg.log_level == "debug" else logging.WARNING)


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
    """Fork; the parent waits for READY or an error line from the child."""
    r, w = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(w)
        with os.fdopen(r, "rb") as pipe:
            report = pipe.read().decode("utf-8", "replace")
        if report.startswith("READY"):
            return 0
        _, status = os.waitpid(pid, 0)
        sys.stderr.write(report or f"metafs: the mount process exited early (status {status})\n")
        return 1
    os.close(r)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    setup_logging(cfg, detached=True)

    def ready() -> None:
        os.write(w, b"READY\n")
        os.close(w)
        os.dup2(devnull, 2)  # stderr stays the parent's terminal only until the mount is live

    try:
        code = _serve(cfg, ready)
    except SystemExit as e:
        try:
            os.write(w, (str(e.code) + "\n").encode())
        except OSError:
            pass
        os._exit(1)
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
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

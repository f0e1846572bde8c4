"""``metafs status MOUNTPOINT``: what the running mount knows about itself.

The mount answers over its control socket (:mod:`metafs.refresh`: same
socket, same rules: the mounting user or root), so the figures are the live
process's, not a new mount's: source, provider, endpoint, region, uptime,
cache sizes, requests by operation and outcome, errors, FUSE errors, stale
answers served during outages.  The counts are the ones ``--metrics-addr``
serves (:mod:`metafs.metrics`); the report is built by :func:`report`, plain
bookkeeping over what the mount hands it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from .metrics import OK, PrometheusRecorder


def _is_error(outcome: str) -> bool:
    """An attempt that failed: no answer, or an error status (404 is an answer: "absent")."""
    return not outcome.isdigit() or (int(outcome) >= 400 and outcome != "404")


def report(*, source: str, mountpoint: str, provider: str, endpoint: str, region: str | None,
           endpoint_down: bool, figures: dict[str, int], rec: PrometheusRecorder,
           metrics_url: str | None, now: Callable[[], float] = time.time) -> dict[str, Any]:
    """The status of one mount, as JSON-able data."""
    requests: dict[str, dict[str, int]] = {}
    for (operation, outcome), n in sorted(rec.totals("metafs_s3_requests").items()):
        requests.setdefault(operation, {})[outcome] = int(n)
    errors = sum(n for by in requests.values() for o, n in by.items() if _is_error(o))
    fuse_errors: dict[str, int] = {}
    for (_op, err), n in rec.totals("metafs_fuse_ops").items():
        if err != OK:
            fuse_errors[err] = fuse_errors.get(err, 0) + int(n)
    return {
        "source": source,
        "mountpoint": mountpoint,
        "pid": os.getpid(),
        "provider": provider,
        "endpoint": endpoint,
        "region": region,
        "endpoint_down": endpoint_down,
        "uptime_seconds": round(now() - rec.started, 1),
        "cache": figures,
        "requests": requests,
        "requests_total": sum(n for by in requests.values() for n in by.values()),
        "request_errors": errors,
        "retries": int(sum(rec.totals("metafs_s3_retries").values())),
        "fuse_errors": dict(sorted(fuse_errors.items())),
        "stale_served": int(sum(rec.totals("metafs_stale_served").values())),
        "metrics": metrics_url,
    }


def _duration(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def render(st: dict[str, Any]) -> str:
    """The report for a terminal: one ``name: value`` per line."""
    lines = [
        f"source:       {st['source']}",
        f"mountpoint:   {st['mountpoint']} (pid {st['pid']})",
        f"provider:     {st['provider']}",
        f"endpoint:     {st['endpoint']}" + ("  (DOWN: not answering)" if st["endpoint_down"] else ""),
        f"region:       {st['region'] or '-'}",
        f"uptime:       {_duration(st['uptime_seconds'])}",
        "cache:        " + ", ".join(f"{k.removeprefix('cache.')} {v}" for k, v in st["cache"].items()),
        f"requests:     {st['requests_total']} ({st['request_errors']} failed, {st['retries']} retries)",
    ]
    for op, by in st["requests"].items():
        lines.append(f"  {op + ':':<20}" + ", ".join(f"{o} {n}" for o, n in by.items()))
    fe = st["fuse_errors"]
    lines.append("fuse errors:  " + (", ".join(f"{k} {v}" for k, v in fe.items()) if fe else "none"))
    lines.append(f"stale served: {st['stale_served']}")
    lines.append(f"metrics:      {st['metrics'] or 'not served (--metrics-addr)'}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """``metafs status [--json] MOUNTPOINT``: 0 with the report, 1 if no mount answers."""
    import argparse

    from .refresh import call, find_mount, socket_path

    p = argparse.ArgumentParser(prog="metafs status",
                                description="Show what a running metafs mount knows about itself.")
    p.add_argument("--json", action="store_true", help="the report as one JSON object")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    args = p.parse_args(argv)
    path = os.path.normpath(os.path.abspath(args.mountpoint))
    mnt = find_mount(path)
    if mnt is None:
        print(f"metafs status: {args.mountpoint}: not on a metafs mount", file=sys.stderr)
        return 1
    try:
        reply = call(mnt, {"op": "status"})
    except OSError as e:
        print(f"metafs status: {args.mountpoint}: no metafs process answers at {socket_path(mnt)} "
              f"({e.strerror or e}); only the user who mounted it, or root, may ask", file=sys.stderr)
        return 1
    if not reply.get("ok"):
        print(f"metafs status: {args.mountpoint}: {reply.get('error')}", file=sys.stderr)
        return 1
    st = reply["status"]
    sys.stdout.write(json.dumps(st) + "\n" if args.json else render(st))
    return 0

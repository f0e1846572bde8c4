"""Mount lifecycle: check the bucket, mount, serve, unmount.  Nothing else.

Order matters (S3QL's mount.py, pyfuse3's examples and their bugs):

1. The signal receiver opens *before* ``pyfuse3.init``: a SIGTERM in the
   gap would take its default action and leave a dead mount behind.
2. The mountpoint check (:mod:`metafs.mountpoint`: missing, dead mount,
   already a metafs mount, not empty) runs first, and again just before
   ``pyfuse3.init``.  The bucket check (HEAD Bucket; OSS: ``GET /?location``) runs before
   anything is mounted, so a wrong bucket, bad
   credentials or an unreachable endpoint end the command with a message
   and an empty mountpoint.
3. One ``httpx.AsyncClient`` lives inside the trio loop, so its pool
   closes before the loop ends.
4. ``pyfuse3.close(unmount=True)`` runs in ``finally``: after a signal,
   an external ``fusermount3 -u``, or a crash, the mountpoint is released.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import httpx
import pyfuse3
import trio

from . import errors, exact, metrics, mountpoint, refresh, sdnotify, status
from .attrs import Ownership
from .cache import MetaCache
from .config import Config
from .contents import READ_CHUNK, FileReader
from .control import ControlRoot
from .credentials import CredentialSource
from .fuse_ops import Operations, handler_bound
from .inodes import InodeTable
from .invalidate import Invalidator, KernelInvalidation
from .listings import Listings
from .namespace import Namespace
from .objects import ObjectMetadata
from .ranges import FANOUT
from .s3 import dialects, ssec
from .s3.client import BucketInfo, S3Client
from .s3.endpoint import has_scheme, shown, starting_region
from .s3.http import MountClient
from .s3.ssec import CustomerKeys
from .s3.tls import client_context
from .views import ChannelView, LiveView, View
from .walks import Walks
from .xattrs import SYSTEM_NS, bucket_xattrs

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

# Imported where used, not here, so that a mount that does not use them does not load them
# before it is live (issue 12, target 6; tests/test_startup.py): .asof (--as-of), .versions
# (--versions), .annotation_files (--channels annotations).

log = logging.getLogger(__name__)


def fuse_options(cfg: Config) -> set[str]:
    opts = set(pyfuse3.default_options)  # default_permissions
    opts |= {"ro", "noatime", f"fsname={cfg.given_source or cfg.source}", "subtype=metafs"}
    if cfg.allow_other:
        opts.add("allow_other")
    return opts


def request_headers(cfg: Config, dialect: dialects.Dialect) -> dict[str, str]:
    """What every request carries: the requester-pays and expected-owner headers, if asked for.

    The command line refused them for a dialect that has none (config.py).
    """
    out: dict[str, str] = {}
    if cfg.requester_pays and dialect.request_payer_header:
        out[dialect.request_payer_header] = "requester"
    if cfg.expected_bucket_owner and dialect.expected_owner_header:
        out[dialect.expected_owner_header] = cfg.expected_bucket_owner
    return out


async def prepare(cfg: Config, http: httpx.AsyncClient, creds: CredentialSource,
                  customer_keys: CustomerKeys | None = None) -> tuple[S3Client, BucketInfo]:
    """Build the client and check the bucket (HEAD Bucket or the dialect's way); raise on failure."""
    dialect = dialects.dialect_for(cfg.provider, cfg.bucket)
    client = S3Client(
        http,
        bucket=cfg.bucket,
        region=starting_region(cfg.endpoint_url, cfg.region, dialect, creds.profile_region),
        endpoint_url=cfg.endpoint_url,
        force_path_style=cfg.force_path_style,
        credentials=creds,
        attempts=cfg.retries + 1,
        attempt_timeout=cfg.request_timeout,
        dialect=dialect,
        oss_signature=cfg.oss_signature,
        explicit_region=cfg.region is not None,
        customer_keys=customer_keys,
        request_headers=request_headers(cfg, dialect),
    )
    info = await client.check_bucket()
    # A bucket elsewhere than --region still mounts: one log line (a
    # warning if --region named another), then every request goes there.
    client.adopt_bucket_region(info.region)
    if cfg.prefix:
        page = await client.list_page(cfg.prefix, delimiter=None, max_keys=1)
        if not (page.objects or page.prefixes):
            log.warning("prefix %r of bucket %s is empty or does not exist", cfg.prefix, cfg.bucket)
    if cfg.as_of_ms is not None:
        await check_versions(cfg, client)
    return client, info


async def check_versions(cfg: Config, client: S3Client) -> None:
    """An as-of mount: the versions listing must answer (else the mount ends with its
    error); a bucket that never had versioning mounts with one warning."""
    from .asof import moment_text

    await client.list_versions(cfg.prefix, delimiter=None, max_keys=1)
    try:
        status = await client.bucket_versioning()
    except errors.S3Error as e:  # may list versions, may not read the setting: no warning then
        log.info("bucket versioning unknown (%s)", e)
        return
    if status is None:
        log.warning("bucket %s never had versioning: --as-of can show only current objects "
                    "(those last written at or before %s)", cfg.bucket, moment_text(cfg.as_of_ms
                                                                                   or 0))


def root_xattrs(cfg: Config, client: S3Client, info: BucketInfo) -> dict[bytes, bytes]:
    """The mount root's xattrs: the bucket check's answer plus what metafs knows."""
    extra = {SYSTEM_NS + "bucket": cfg.bucket, SYSTEM_NS + "provider": client.dialect.provider,
             SYSTEM_NS + "endpoint": f"{client.endpoint.scheme}://{client.endpoint.netloc(cfg.bucket)}"}
    if client.region:
        extra[SYSTEM_NS + "region"] = client.region
    if client.dialect.region_header is None and info.region:
        extra[SYSTEM_NS + "bucket-region"] = info.region  # OSS: from GET /?location, not a header
    table = bucket_xattrs(info.headers, extra)
    if cfg.as_of_ms is not None:
        from .asof import moment_text

        table[(SYSTEM_NS + "as-of").encode()] = moment_text(cfg.as_of_ms).encode()
    return table


@dataclasses.dataclass(frozen=True)
class Layers:
    """One mount's wired layers (see README "How it is built")."""

    inodes: InodeTable
    invalidation: KernelInvalidation
    cache: MetaCache
    listings: Listings
    objects: ObjectMetadata
    namespace: Namespace
    ops: Operations

    @property
    def background(self) -> list[ObjectMetadata | Namespace | Listings]:
        """The services whose background tasks (readahead, list-ahead, listing ranges) run in
        the mount's nursery."""
        return [self.objects, self.namespace, self.listings]


def wire(view: View, own: Ownership, *, ttl: float, negative_ttl: float, max_entries: int,
         root_key: str = "", root_xattrs: dict[bytes, bytes] | None = None,
         ordered: bool = True, submit: Callable[[int, bytes], None] | None = None,
         clock: Callable[[], float] = time.monotonic, stale_grace: float = 1.0,
         read_chunk: int = READ_CHUNK, bound: float,
         control: ControlRoot | None = None,
         channels: frozenset[str] = frozenset(),
         annotations_dir: Callable[[str], str | None] | None = None,
         fanout: int = FANOUT) -> Layers:
    """Wire the layers over one view: cache -> listings, objects, namespace -> FUSE handlers.

    The one place they are put together, for the mount and for the tests
    that drive the handlers without a kernel.  ``submit`` sends a kernel
    invalidation (the :class:`Invalidator`'s queue); ``ordered`` is False
    for directory buckets, which list in no order (dirlist sorts them);
    ``bound`` is the longest any FUSE request may run (seconds);
    ``control`` the reserved control directory (:mod:`metafs.control`);
    ``channels`` the metadata channels shown beside HEAD (``tags``,
    ``annotations``; none unless asked), ``annotations_dir`` where the
    files of annotations too large for xattrs are, per key; ``fanout`` how
    many ranges of a huge directory are listed at once (:mod:`metafs.ranges`).
    """
    inodes = InodeTable(root_key)
    invalidation = KernelInvalidation(inodes, submit)
    # The bound's evictions reach the kernel: the cache reports them downward
    # to the invalidation policy, never up to the FUSE layer.
    cache = MetaCache(ttl, negative_ttl, max_entries, clock=clock, on_evict=invalidation.evicted)
    listings = Listings(view, cache, ordered=ordered, stale_grace=stale_grace, fanout=fanout)
    objects = ObjectMetadata(view, cache, listings, stale_grace=stale_grace, channels=channels,
                             annotations_dir=annotations_dir)
    namespace = Namespace(view, cache, listings, objects)
    walks = Walks(view, cache, listings, ordered=ordered)

    def figures() -> dict[str, int]:
        return {**cache.figures(), "invalidations": invalidation.count,
                "walk-pages": walks.flat_pages, "range-requests": listings.range_requests}

    # Every handler is bounded by what two requests may take with the
    # configured retries and timeout (fuse_ops.handler_bound).
    ops = Operations(namespace, objects, listings, FileReader(view, read_chunk), inodes, own,
                     clock=cache.clock, dir_ttl=ttl, bound=bound, root_xattrs=root_xattrs,
                     invalidation=invalidation, figures=figures, control=control,
                     walks=walks)
    return Layers(inodes, invalidation, cache, listings, objects, namespace, ops)


def control_subtrees(cfg: Config, client: S3Client, control: ControlRoot) -> None:
    """Plug the enabled subtrees into the control directory: one registration each."""
    # The object at exactly a key, e.g. one a directory of its name hides (always on: free until used).
    control.register(exact.SUBTREE, exact.ExactObjects(LiveView(client), cfg.prefix, cfg.metadata_ttl,
                                                       max_entries=cfg.cache_entries))
    if cfg.versions:
        from .versions import VersionsTree

        channels = frozenset(c for c in cfg.channels if (
            client.dialect.tagging if c == "tags" else client.dialect.annotations))
        control.register("versions", VersionsTree(client, cfg.prefix, ttl=cfg.metadata_ttl,
                                                  clock=time.monotonic, channels=channels))


def build(cfg: Config, client: S3Client, info: BucketInfo,
          submit: Callable[[int, bytes], None] | None) -> Layers:
    """The layers of a live mount of ``cfg`` (see :func:`wire`)."""
    own = Ownership(cfg.uid, cfg.gid, cfg.file_mode, cfg.dir_mode, int(time.time()))
    view: View = LiveView(client)
    ttl, negative_ttl = cfg.metadata_ttl, cfg.negative_ttl
    if cfg.as_of_ms is not None:
        from .asof import PERMANENT, AsOfView

        # A version never changes: nothing expires, the kernel keeps it too (asof.py).
        view = AsOfView(client, cfg.as_of_ms, max_keys=cfg.cache_entries)
        ttl = negative_ttl = PERMANENT
    control = ControlRoot(cfg.control_dir, dir_ttl=ttl)
    control_subtrees(cfg, client, control)
    # Tags and annotations: where the view answers them (the live and as-of views do,
    # the latter with the version's id; see views.ChannelView).
    annotations = ("annotations" in cfg.channels and client.dialect.annotations
                   and isinstance(view, ChannelView))

    def annotations_dir(key: str) -> str:
        from .annotation_files import AnnotationFiles

        return AnnotationFiles.where(cfg.mountpoint, control.name, cfg.prefix, key)

    layers = wire(view, own, ttl=ttl, negative_ttl=negative_ttl,
                  max_entries=cfg.cache_entries, root_key=cfg.prefix,
                  root_xattrs=root_xattrs(cfg, client, info),
                  ordered=client.dialect.ordered_listings, submit=submit,
                  bound=handler_bound(client.budget), control=control, channels=cfg.channels,
                  annotations_dir=annotations_dir if annotations else None,
                  fanout=min(FANOUT, cfg.max_connections))
    if annotations:
        from .annotation_files import SUBTREE as ANNOTATION_SUBTREE
        from .annotation_files import AnnotationFiles

        # Needs the metadata layer (its cache and requests), so it is plugged in once wired.
        control.register(ANNOTATION_SUBTREE, AnnotationFiles(layers.objects, cfg.prefix,
                                                             ttl=cfg.metadata_ttl))
    return layers


async def run(cfg: Config, on_ready: Callable[[], None] | None = None) -> None:
    """Mount ``cfg`` and serve until a signal or an unmount."""
    mountpoint.check(cfg.mountpoint, cfg.nonempty)  # before any request: the cheapest refusal
    mountpoint.check_user_mount(cfg.allow_other)  # /dev/fuse, fusermount3, /etc/fuse.conf
    if cfg.endpoint_source and cfg.endpoint_source != "--endpoint-url":
        log.info("endpoint %s, from %s", shown(cfg.endpoint_url or ""), cfg.endpoint_source)
    if cfg.endpoint_url and not has_scheme(cfg.endpoint_url):
        log.info("endpoint %s names no scheme: https is assumed", shown(cfg.endpoint_url))
    # Read before any request, so a bad key file ends the command at once (one line).
    customer_keys = (CustomerKeys(ssec.load_key_file(cfg.sse_c_key_file), cfg.cache_entries)
                     if cfg.sse_c_key_file else None)
    creds = CredentialSource(cfg.profile, anonymous=cfg.no_sign_request, provider=cfg.provider,
                             credentials_file=cfg.credentials_file)
    # Always counting (metafs status; served with --metrics-addr): in a list until the
    # PrometheusRecorder is built, once live or when first needed (see _counts).
    early = metrics.EarlyRecorder()
    metrics.use(early)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        limits = httpx.Limits(max_connections=cfg.max_connections,
                              max_keepalive_connections=cfg.max_connections)
        timeout = httpx.Timeout(cfg.request_timeout)
        tls = client_context(cfg.endpoint_url, os.environ)  # built only when TLS can be used
        async with MountClient(limits=limits, timeout=timeout, follow_redirects=False,
                               verify=tls) as http:
            await trio.to_thread.run_sync(creds.resolve)
            client, info = await prepare(cfg, http, creds, customer_keys)
            mountpoint.check(cfg.mountpoint, cfg.nonempty)  # again: a mount made during the bucket check
            invalidator = Invalidator()
            layers = build(cfg, client, info, invalidator.invalidate)
            counts = _counts(cfg, client, layers, early)
            exporter = _export(cfg, counts)  # before mounting: a port in use fails the command
            report = _status(cfg, client, layers, counts, exporter)
            try:
                pyfuse3.init(layers.ops, cfg.mountpoint, fuse_options(cfg))
            except BaseException as e:
                _stop(exporter)
                if isinstance(e, RuntimeError):  # libfuse printed its reason on stderr
                    raise errors.MountpointError(f"the kernel or fusermount3 refused the mount ({e}): "
                                                 "libfuse's reason is on the line before") from None
                raise
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_terminate_on_signal, signals)
                    # Readahead, list-ahead, and the client's probes of an endpoint
                    # that stopped answering: they end with the mount.
                    for service in [*layers.background, client]:
                        service.start_background(nursery)
                    # metafs refresh PATH: the control socket, removed when the mount ends.
                    refresher = refresh.Refresher(layers.cache, layers.listings, layers.inodes,
                                                  invalidator)
                    await nursery.start(functools.partial(
                        refresh.serve, refresh.socket_path(cfg.mountpoint), refresher, status=report))
                    log.info("mounted %s at %s", cfg.source, cfg.mountpoint)
                    sdnotify.notify("READY=1")
                    if on_ready is not None:
                        on_ready()
                    counts()  # prometheus_client: once live
                    await pyfuse3.main(max_tasks=cfg.max_connections)
                    nursery.cancel_scope.cancel()
            finally:
                sdnotify.notify("STOPPING=1")
                invalidator.close()  # before the session goes: drop what is queued
                _stop(exporter)
                pyfuse3.close(unmount=True)
                log.info("unmounted %s", cfg.mountpoint)


def _counts(cfg: Config, client: S3Client, layers: Layers, early: metrics.EarlyRecorder
            ) -> Callable[[], metrics.PrometheusRecorder]:
    """The mount's PrometheusRecorder, built at the first call with what ``early`` counted."""
    @functools.cache
    def counts() -> metrics.PrometheusRecorder:
        rec = early.hand_over(metrics.PrometheusRecorder(started=early.started))
        rec.describe_mount(cfg.source, client.dialect.provider, client.region or "")
        rec.watch_cache(layers.cache.figures)
        return rec

    return counts


def _status(cfg: Config, client: S3Client, layers: Layers,
            counts: Callable[[], metrics.PrometheusRecorder],
            exporter: WSGIServer | None) -> Callable[[], dict[str, Any]]:
    """The mount's ``metafs status`` report, built when asked (see metafs.status)."""
    endpoint = f"{client.endpoint.scheme}://{client.endpoint.netloc(cfg.bucket)}"
    url = None
    if exporter is not None:
        host, port = str(exporter.server_address[0]), exporter.server_address[1]
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"

    def report() -> dict[str, Any]:
        return status.report(
            source=cfg.source, mountpoint=cfg.mountpoint, provider=client.dialect.title,
            endpoint=endpoint, region=client.region, endpoint_down=client.health.down,
            figures={**layers.cache.figures(), "invalidations": layers.invalidation.count},
            rec=counts(), metrics_url=url)

    return report


def _export(cfg: Config, counts: Callable[[], metrics.PrometheusRecorder]) -> WSGIServer | None:
    """Serve the metrics when ``--metrics-addr`` asks; a port that cannot be had fails the mount."""
    if cfg.metrics_addr is None:
        return None
    try:
        server = metrics.serve(counts(), cfg.metrics_addr)
    except OSError as e:
        host, port = cfg.metrics_addr
        raise errors.ConfigError(f"--metrics-addr {host}:{port}: {e.strerror or e}") from None
    log.info("metrics at http://%s:%s/metrics", *server.server_address[:2])
    return server


def _stop(exporter: WSGIServer | None) -> None:
    if exporter is not None:
        exporter.shutdown()
        exporter.server_close()


async def _terminate_on_signal(signals: AsyncIterator[int]) -> None:
    async for signum in signals:
        log.info("received %s: unmounting", signal.Signals(signum).name)
        pyfuse3.terminate()
        return

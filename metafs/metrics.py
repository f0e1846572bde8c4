"""What the mount counts: one recorder, called in one line at each choke point.

The layers never import prometheus_client: they call ``metrics.recorder.X(...)``
at the places every event of a kind passes through — the S3 client's attempt
loop, the FUSE boundary (``fuse_ops._boundary``), the cache's look-ups and its
bound, the invalidation thread, the readahead of ``objects``.  ``recorder`` is
a :class:`Recorder` that does nothing until the mount installs a
:class:`PrometheusRecorder` with :func:`use` (the kernel-free tests install
their own, or none).  Until the mount is live it counts into an
:class:`EarlyRecorder` (its bucket check: a few events kept in a list),
handed over to the PrometheusRecorder built once it is, so prometheus_client
is not imported before (issue 12, target 6), unless ``--metrics-addr``
needs it to bind its port before mounting.  A mount always counts (``metafs status`` reads the
counts); ``--metrics-addr`` also serves them over HTTP (:func:`serve`).

Names follow Prometheus conventions (``_total`` counters, ``_seconds``
histograms, base units), adapted from gcsfuse (``fs_ops_count{fs_op}``,
``metadata_cache_read_count{cache_hit}``) and mountpoint-s3
(``s3.request_count{s3_request}``, ``s3.request_errors{http_status}``):

=======================================================  ==========================================
metafs_s3_requests_total{operation,outcome}              attempts on the wire; outcome: the HTTP
                                                         status ("200", "304", "404", "503"…) or
                                                         the error class ("timeout", "transport")
metafs_s3_request_duration_seconds{operation}            each attempt's latency (histogram)
metafs_s3_retries_total{operation}                       attempts after a failed one
metafs_s3_requests_in_flight                             attempts on the wire now
metafs_fuse_ops_total{op,errno}                          FUSE handlers; errno "OK" or its name
metafs_cache_lookups_total{table,result}                 result "hit" or "miss"
metafs_cache_evictions_total{table}                      entries the bound pushed out
metafs_cache_entries{table}                              sizes now
metafs_stale_served_total{what}                          metadata served past its TTL because the
                                                         revalidation failed (outages)
metafs_kernel_invalidations_total{kind,outcome}          entry / inode notifications to the kernel
metafs_readahead_sent_total, metafs_readahead_used_total HEADs sent ahead, and those a later
                                                         access used
metafs_read_bytes_total                                  file bytes returned to readers
metafs_mount_info{source,provider,region}, metafs_start_time_seconds
=======================================================  ==========================================
"""

from __future__ import annotations

import errno as errno_mod
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.metrics import MetricWrapperBase

    M = TypeVar("M", bound=MetricWrapperBase)

OK = "OK"


def s3_operation(method: str, key: str, query: Sequence[tuple[str, str]]) -> str:
    """The S3 API name of a request (the label mountpoint-s3 and AWS use)."""
    names = {k for k, _ in query}
    if method == "HEAD":
        return "HeadObject" if key else "HeadBucket"
    if method == "GET":
        if "session" in names:
            return "CreateSession"
        if "location" in names:
            return "GetBucketLocation"
        if "versions" in names:
            return "ListObjectVersions"
        if "versioning" in names:
            return "GetBucketVersioning"
        if not key:
            return "ListObjects"
        if "tagging" in names:
            return "GetObjectTagging"
        if "annotation" in names:
            return "GetObjectAnnotation" if "annotationName" in names else "ListObjectAnnotations"
        return "GetObject"
    return method


class Attempt:
    """One attempt on the wire; :meth:`done` says how it ended."""

    def done(self, status: int | None, timed_out: bool = False) -> None:
        pass


class Recorder:
    """Does nothing: the recorder of code running outside a mount."""

    def s3_attempt(self, method: str, key: str, query: Sequence[tuple[str, str]]
                   ) -> AbstractContextManager[Attempt]:
        return _nothing()

    def s3_retry(self, method: str, key: str, query: Sequence[tuple[str, str]]) -> None:
        pass

    def fuse_op(self, op: str, err: int = 0) -> None:
        pass

    def cache_lookup(self, table: str, hit: bool) -> None:
        pass

    def cache_eviction(self, table: str) -> None:
        pass

    def stale_served(self, what: str) -> None:
        pass

    def kernel_invalidation(self, kind: str, outcome: str) -> None:
        pass

    def readahead_sent(self, key: str) -> None:
        pass

    def readahead_used(self, key: str) -> None:
        pass

    def bytes_read(self, n: int) -> None:
        pass


@contextmanager
def _nothing() -> Iterator[Attempt]:
    yield Attempt()


recorder: Recorder = Recorder()


def use(r: Recorder) -> Recorder:
    """Install ``r`` as the process's recorder; the previous one is returned."""
    global recorder
    previous, recorder = recorder, r
    return previous


def errno_name(err: int) -> str:
    return OK if err == 0 else errno_mod.errorcode.get(err, str(err))


_LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60)
_READAHEAD_REMEMBERED = 4096  # prefetched keys kept to tell "used" (oldest forgotten first)


def _outcome(status: int | None, timed_out: bool) -> str:
    return str(status) if status is not None else ("timeout" if timed_out else "transport")


class _EarlyAttempt(Attempt):
    def __init__(self, rec: EarlyRecorder, operation: str) -> None:
        self._rec = rec
        self._operation = operation
        self._start = time.perf_counter()

    def done(self, status: int | None, timed_out: bool = False) -> None:
        self._rec.note("attempt_done", self._operation, _outcome(status, timed_out),
                       time.perf_counter() - self._start)


class EarlyRecorder(Recorder):
    """What happens before a mount is live, kept to be counted by the recorder built after.

    A handful of events (the bucket check's attempts, its retries): each is a
    method name and its arguments, replayed by :meth:`hand_over` into the
    PrometheusRecorder, which then also receives whatever still reaches this
    one (an attempt that ends after the hand-over).
    """

    def __init__(self) -> None:
        self.started = time.time()
        self.events: list[tuple[str, tuple[object, ...]]] = []
        self._target: PrometheusRecorder | None = None

    def note(self, method: str, *args: object) -> None:
        if self._target is not None:
            getattr(self._target, method)(*args)
        else:
            self.events.append((method, args))

    def hand_over(self, target: PrometheusRecorder) -> PrometheusRecorder:
        """Count what was kept into ``target``, send it all from now on, and install it (:func:`use`)."""
        for method, args in self.events:
            getattr(target, method)(*args)
        self.events.clear()
        self._target = target
        use(target)
        return target

    @contextmanager
    def _attempt(self, operation: str) -> Iterator[Attempt]:
        yield _EarlyAttempt(self, operation)

    def s3_attempt(self, method: str, key: str, query: Sequence[tuple[str, str]]
                   ) -> AbstractContextManager[Attempt]:
        return self._attempt(s3_operation(method, key, query))

    def s3_retry(self, method: str, key: str, query: Sequence[tuple[str, str]]) -> None:
        self.note("s3_retry", method, key, query)

    def fuse_op(self, op: str, err: int = 0) -> None:
        self.note("fuse_op", op, err)

    def cache_lookup(self, table: str, hit: bool) -> None:
        self.note("cache_lookup", table, hit)

    def cache_eviction(self, table: str) -> None:
        self.note("cache_eviction", table)

    def stale_served(self, what: str) -> None:
        self.note("stale_served", what)

    def kernel_invalidation(self, kind: str, outcome: str) -> None:
        self.note("kernel_invalidation", kind, outcome)

    def readahead_sent(self, key: str) -> None:
        self.note("readahead_sent", key)

    def readahead_used(self, key: str) -> None:
        self.note("readahead_used", key)

    def bytes_read(self, n: int) -> None:
        self.note("bytes_read", n)


class _PromAttempt(Attempt):
    def __init__(self, rec: PrometheusRecorder, operation: str) -> None:
        self._rec = rec
        self._operation = operation
        self._start = time.perf_counter()
        self.outcome = "transport"

    def done(self, status: int | None, timed_out: bool = False) -> None:
        self._rec.attempt_done(self._operation, _outcome(status, timed_out),
                               time.perf_counter() - self._start)


class PrometheusRecorder(Recorder):
    """Counts into its own prometheus_client registry (one per mount, never the global one).

    ``started``: when the mount started (Unix time), if before this recorder was built.
    """

    def __init__(self, started: float | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

        disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: one series per count, as scrapers expect

        self.registry = CollectorRegistry()
        r = self.registry
        self.s3_requests = Counter("metafs_s3_requests", "S3 requests sent (each attempt), by outcome",
                                   ["operation", "outcome"], registry=r)
        self.s3_latency = Histogram("metafs_s3_request_duration_seconds",
                                    "Latency of each S3 attempt", ["operation"], registry=r,
                                    buckets=_LATENCY_BUCKETS)
        self.s3_retries = Counter("metafs_s3_retries", "S3 attempts after a failed attempt",
                                  ["operation"], registry=r)
        self.in_flight = Gauge("metafs_s3_requests_in_flight", "S3 attempts on the wire", registry=r)
        # The two counts of every FUSE request (tens of thousands a second in a scan) are plain
        # dict entries, turned into samples when collected: a prometheus_client child's inc()
        # takes a lock and checks its type each time (issue 12, target 3).
        self.fuse_ops: dict[tuple[str, str], int] = {}
        self.lookups: dict[tuple[str, str], int] = {}
        r.register(_Counts(  # type: ignore[arg-type]  # a collector: collect() is what it needs
            ("metafs_fuse_ops", "FUSE requests answered, by errno ('OK': success)", ("op", "errno"),
             self.fuse_ops),
            ("metafs_cache_lookups", "Metadata cache look-ups", ("table", "result"), self.lookups)))
        self.evictions = Counter("metafs_cache_evictions", "Entries evicted by the cache's bound",
                                 ["table"], registry=r)
        self.entries = Gauge("metafs_cache_entries", "Entries held by each cache table", ["table"],
                             registry=r)
        self.stale = Counter("metafs_stale_served", "Metadata served past its TTL because "
                             "revalidating it failed", ["what"], registry=r)
        self.invalidations = Counter("metafs_kernel_invalidations", "Invalidations sent to the kernel",
                                     ["kind", "outcome"], registry=r)
        self.ra_sent = Counter("metafs_readahead_sent", "HEADs sent ahead of a scan", registry=r)
        self.ra_used = Counter("metafs_readahead_used", "HEADs sent ahead that a later access used",
                               registry=r)
        self.read_bytes = Counter("metafs_read_bytes", "File bytes returned to readers", registry=r)
        self.info = Gauge("metafs_mount_info", "The mount (value 1)", ["source", "provider", "region"],
                          registry=r)
        self.start_time = Gauge("metafs_start_time_seconds", "When the mount started (Unix time)",
                                registry=r)
        self.started = time.time() if started is None else started
        self.start_time.set(self.started)
        self._prefetched: dict[str, None] = {}  # insertion-ordered: the oldest goes first
        self._children: dict[tuple[int, tuple[str, ...]], object] = {}

    def child(self, metric: M, *labels: str) -> M:
        """``metric.labels(*labels)``, kept: prometheus_client's look-up costs more than the count."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found  # type: ignore[return-value]  # stored by this method under this metric
    def describe_mount(self, source: str, provider: str, region: str) -> None:
        self.info.labels(source, provider, region).set(1)

    def watch_cache(self, figures: Callable[[], dict[str, int]]) -> None:
        """Report the cache's sizes at each scrape (``MetaCache.figures``: ``cache.<table>``)."""
        def size(name: str) -> Callable[[], float]:
            return lambda: figures().get(name, 0)

        for name in figures():
            self.entries.labels(name.removeprefix("cache.")).set_function(size(name))

    def attempt_done(self, operation: str, outcome: str, seconds: float) -> None:
        """One attempt ended with ``outcome`` after ``seconds``."""
        self.child(self.s3_requests, operation, outcome).inc()
        self.child(self.s3_latency, operation).observe(seconds)

    @contextmanager
    def _attempt(self, operation: str) -> Iterator[Attempt]:
        self.in_flight.inc()
        try:
            yield _PromAttempt(self, operation)
        finally:
            self.in_flight.dec()

    def s3_attempt(self, method: str, key: str, query: Sequence[tuple[str, str]]
                   ) -> AbstractContextManager[Attempt]:
        return self._attempt(s3_operation(method, key, query))

    def s3_retry(self, method: str, key: str, query: Sequence[tuple[str, str]]) -> None:
        self.child(self.s3_retries, s3_operation(method, key, query)).inc()

    def fuse_op(self, op: str, err: int = 0) -> None:
        k = (op, OK if err == 0 else errno_name(err))
        self.fuse_ops[k] = self.fuse_ops.get(k, 0) + 1

    def cache_lookup(self, table: str, hit: bool) -> None:
        k = (table, "hit" if hit else "miss")
        self.lookups[k] = self.lookups.get(k, 0) + 1

    def cache_eviction(self, table: str) -> None:
        self.child(self.evictions, table).inc()

    def stale_served(self, what: str) -> None:
        self.child(self.stale, what).inc()

    def kernel_invalidation(self, kind: str, outcome: str) -> None:
        self.child(self.invalidations, kind, outcome).inc()

    def readahead_sent(self, key: str) -> None:
        self.ra_sent.inc()
        self._prefetched[key] = None
        if len(self._prefetched) > _READAHEAD_REMEMBERED:
            del self._prefetched[next(iter(self._prefetched))]

    def readahead_used(self, key: str) -> None:
        if self._prefetched.pop(key, 0) is None:
            self.ra_used.inc()

    def bytes_read(self, n: int) -> None:
        self.read_bytes.inc(n)

    # -- reading the counts back (metafs status) ------------------------------------------
    def totals(self, metric: str) -> dict[tuple[str, ...], float]:
        """``{label values: value}`` of one counter or gauge (``_total`` samples for counters)."""
        out: dict[tuple[str, ...], float] = {}
        for family in self.registry.collect():
            if family.name != metric:
                continue
            for s in family.samples:
                if s.name in (metric, metric + "_total"):
                    out[tuple(s.labels.values())] = s.value
        return out


class _Counts:
    """A prometheus_client collector of counters kept in dicts ``{label values: count}``.

    Each is (name, help, label names, dict); collected as prometheus_client's own
    ``Counter`` is, ``NAME_total`` samples.  The dicts are written by the trio thread
    and read here by the exporter's: ``list(d.items())`` copies one atomically (GIL).
    """

    def __init__(self, *counters: tuple[str, str, tuple[str, ...], dict[tuple[str, str], int]]
                 ) -> None:
        self._counters = counters

    def collect(self) -> Iterator[object]:
        from prometheus_client.core import CounterMetricFamily

        for name, doc, labels, counts in self._counters:
            family = CounterMetricFamily(name, doc, labels=labels)
            for values, n in list(counts.items()):
                family.add_metric(values, n)
            yield family


def serve(rec: PrometheusRecorder, addr: tuple[str, int]) -> WSGIServer:
    """Serve ``rec``'s registry at http://HOST:PORT/metrics (a daemon thread); the server.

    ``server.shutdown()`` stops it.  A port in use is an OSError, reported
    by the caller as one line.
    """
    from prometheus_client import start_http_server

    server, _thread = start_http_server(addr[1], addr[0], registry=rec.registry)
    return server


def parse_addr(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` -> (host, port); the host defaults to 127.0.0.1 (never all interfaces
    unless asked, e.g. ``0.0.0.0:9464``); ``[::1]:9464`` for IPv6."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host = ""
    host = host.strip("[]") or "127.0.0.1"
    try:
        n = int(port)
    except ValueError:
        raise ValueError(f"{text!r}: expected [HOST:]PORT") from None
    if not 0 <= n <= 65535:
        raise ValueError(f"{text!r}: port out of range")
    return host, n

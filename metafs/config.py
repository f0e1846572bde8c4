"""Command line -> :class:`Config`.

The command line keeps one shape (``metafs [OPTIONS] BUCKET[/PREFIX]
MOUNTPOINT``), and every long option can also be given as a mount option
(``-o metadata-ttl=30,allow_other``), which is how fstab and
``mount.fuse3`` pass them.  Generic mount options that make no sense for
a read-only network filesystem's own parser (``ro``, ``rw``, ``nosuid``,
``_netdev``, ``x-systemd.*``...) are accepted and ignored.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re

from . import __version__
from .control import check_name
from .errors import ConfigError
from .s3 import dialects
from .s3.endpoint import endpoint_host, path_style

# Mount options meant for mount(8), fstab or systemd, not for us.
_GENERIC_MOUNT_OPTIONS = frozenset({
    "ro", "rw", "defaults", "auto", "noauto", "user", "nouser", "users", "owner", "group",
    "nofail", "_netdev", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "atime", "noatime",
    "relatime", "norelatime", "strictatime", "nodiratime", "sync", "async", "dirsync",
    "default_permissions",
})


@dataclasses.dataclass(frozen=True)
class Config:
    bucket: str
    prefix: str  # '' or ending with '/'
    mountpoint: str
    provider: str = "s3"  # s3, cos, oss, obs (given, from the source URL, or inferred)
    oss_signature: str = "v4"
    credentials_file: str | None = None
    endpoint_url: str | None = None
    # Where endpoint_url came from, for messages: "--endpoint-url", or an AWS
    # setting (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile's), see with_aws_endpoint.
    endpoint_source: str | None = None
    region: str | None = None
    profile: str | None = None
    no_sign_request: bool = False
    force_path_style: bool = False
    metadata_ttl: float = 60.0
    negative_ttl: float = 60.0
    uid: int = 0
    gid: int = 0
    file_mode: int = 0o444
    dir_mode: int = 0o555
    allow_other: bool = False
    nonempty: bool = False  # mount over a non-empty directory (metafs.mountpoint)
    foreground: bool = False
    request_timeout: float = 10.0
    retries: int = 2
    max_connections: int = 64
    cache_entries: int = 250_000
    log_level: str = "info"
    log_file: str | None = None
    sse_c_key_file: str | None = None  # SSE-C customer keys (metafs.s3.ssec), read at start
    requester_pays: bool = False  # send the dialect's request-payer header on every request
    expected_bucket_owner: str | None = None  # account id sent on every request (S3)
    # Metadata channels beside HEAD shown as xattrs (--no-tags, --no-annotations turn one off).
    channels: frozenset[str] = frozenset({"tags", "annotations"})
    control_dir: str = ".metafs"  # the reserved control directory at the root (control.py)
    as_of_ms: int | None = None  # --as-of: the moment shown, ms since the epoch (asof.py)
    versions: bool = False  # --versions: <control dir>/versions/ shows every version (versions.py)
    metrics_addr: tuple[str, int] | None = None  # --metrics-addr: serve Prometheus metrics there
    # The source as written on the command line or in fstab: the mount's fsname, so that
    # `mount -a` finds the fstab line's source in /proc/self/mountinfo and skips it once mounted.
    given_source: str | None = None

    @property
    def source(self) -> str:
        return f"{self.provider}://{self.bucket}/{self.prefix}"


def split_source(source: str) -> tuple[str | None, str, str]:
    """``[SCHEME://]BUCKET[/PREFIX]`` -> (scheme or None, bucket, prefix ending in '/' or '').

    The scheme names the provider: ``s3``, ``cos``, ``oss`` or ``obs``.
    """
    s = source
    scheme = None
    if "://" in s:
        scheme, _, s = s.partition("://")
        if scheme not in dialects.PROVIDERS:
            raise ConfigError(f"unsupported source scheme {scheme!r}:// "
                              f"(expected one of {', '.join(p + '://' for p in dialects.PROVIDERS)})")
    bucket, _, prefix = s.partition("/")
    if not bucket:
        raise ConfigError(f"no bucket name in {source!r}")
    prefix = prefix.strip("/")
    return scheme, bucket, (prefix + "/" if prefix else "")


def parse_source(source: str) -> tuple[str, str]:
    """``[SCHEME://]BUCKET[/PREFIX]`` -> (bucket, prefix ending in '/' or '')."""
    _, bucket, prefix = split_source(source)
    return bucket, prefix


def resolve_provider(explicit: str | None, scheme: str | None, endpoint_url: str | None) -> str:
    """``--provider``, else the source URL's scheme, else the endpoint's host, else s3.

    The two explicit forms must agree; either beats the endpoint's host
    (``s3://`` with a COS endpoint means COS's S3-compatible API).
    """
    if explicit and scheme and explicit != scheme:
        raise ConfigError(f"--provider {explicit} contradicts the source URL {scheme}://")
    return explicit or scheme or dialects.infer_provider(endpoint_host(endpoint_url))


def _check_provider_options(cfg_provider: str, bucket: str, args: argparse.Namespace) -> None:
    """Options that make no sense together, as one clear line each."""
    dialect = dialects.dialect_for(cfg_provider, bucket)
    title = dialect.title
    if cfg_provider != "s3" and args.profile:
        raise ConfigError(f"--profile is an AWS setting: {title} takes credentials from its "
                          "environment variables or --credentials-file")
    if args.oss_signature and cfg_provider != "oss":
        raise ConfigError(f"--oss-signature applies to OSS only, not to {title}")
    if args.credentials_file and args.no_sign_request:
        raise ConfigError("--credentials-file and --no-sign-request contradict each other")
    if args.sse_c_key_file and dialect.sse_c_prefix is None:
        what = "S3 directory buckets have" if dialect.name == "s3express" else f"{title} has"
        raise ConfigError(f"--sse-c-key-file: {what} no customer-provided keys (SSE-C)")
    if args.requester_pays and dialect.request_payer_header is None:
        what = "S3 directory buckets have" if dialect.name == "s3express" else f"{title} has"
        raise ConfigError(f"--requester-pays: {what} no requester-pays buckets")
    if args.expected_bucket_owner is not None:
        if dialect.expected_owner_header is None:
            raise ConfigError(f"--expected-bucket-owner is an S3 setting, not one of {title}")
        if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z$._:-]{0,63}", args.expected_bucket_owner):
            raise ConfigError(f"--expected-bucket-owner {args.expected_bucket_owner!r} is not an "
                              "account id (AWS: 12 digits)")
    host = endpoint_host(args.endpoint_url)
    # Refuses the path style a dialect cannot address (COS, OBS, directory buckets).
    path_style(dialect, host, bucket, force=args.force_path_style)
    if cfg_provider == "cos" and not re.search(r"-\d+$", bucket):
        raise ConfigError(f"COS bucket names end with the APPID, e.g. {bucket}-1250000000 "
                          "(see the COS console)")
    if cfg_provider != "s3" and not args.endpoint_url and not args.region:
        example = {"cos": "ap-guangzhou", "oss": "cn-hangzhou", "obs": "cn-north-4"}[cfg_provider]
        raise ConfigError(f"{title} needs --region (e.g. --region {example}) or --endpoint-url")
    if dialect.name == "s3express" and not args.endpoint_url and not args.region:
        raise ConfigError(f"directory bucket {bucket!r} needs --region (its zonal endpoint "
                          "names the region)")
    if (cfg_provider == "oss" and dialect.signing_region_needed(args.oss_signature or "v4")
            and not args.region and not dialects.region_from_host(dialect, host)):
        raise ConfigError(f"OSS V4 signatures name the region, and endpoint {host} does not: "
                          "add --region (e.g. cn-hangzhou), or --oss-signature v1")


def with_aws_endpoint(cfg: Config) -> Config:
    """``cfg`` with the S3 endpoint the AWS configuration names, when the command line names none.

    Only for ``--provider s3`` (also inferred): ``AWS_ENDPOINT_URL_S3``,
    ``AWS_ENDPOINT_URL`` and the profile's ``endpoint_url`` are AWS SDK
    settings for the S3 API, so they neither choose the provider nor reach
    COS, OSS or OBS.  Reads the AWS config files (botocore), so it runs at
    start, not while parsing; an unusable URL is a ConfigError naming its source.
    """
    if cfg.endpoint_url or cfg.provider != "s3":
        return cfg
    from .credentials import aws_configured_endpoint

    found = aws_configured_endpoint(cfg.profile)
    if found is None:
        return cfg
    url, where = found
    try:
        host = endpoint_host(url)
        path_style(dialects.dialect_for(cfg.provider, cfg.bucket), host, cfg.bucket,
                   force=cfg.force_path_style)
    except ConfigError as e:
        raise ConfigError(f"{e} (from {where})") from None
    return dataclasses.replace(cfg, endpoint_url=url, endpoint_source=where)


def _mode(text: str) -> int:
    try:
        v = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an octal mode") from None
    if not 0 <= v <= 0o7777:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range")
    return v


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if v < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="metafs",
        description="Mount an object-storage bucket (S3, COS, OSS, OBS) read-only; object metadata "
        "as stat fields and xattrs.",
        epilog="Every long option is also accepted as a mount option: -o metadata-ttl=30,allow_other",
    )
    p.add_argument("source", metavar="[SCHEME://]BUCKET[/PREFIX]",
                   help="SCHEME is s3, cos, oss or obs (the provider)")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    p.add_argument("--provider", choices=list(dialects.PROVIDERS), default=None,
                   help="s3 (AWS and S3-compatible), cos (Tencent), oss (Alibaba), obs (Huawei); "
                   "default: from the source URL's scheme, else the endpoint's host, else s3")
    p.add_argument("--endpoint-url", metavar="URL",
                   help="endpoint (default for S3: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or the AWS "
                   "profile's endpoint_url; else the provider's endpoint for the region); "
                   "HOST[:PORT] without a scheme means https")
    p.add_argument("--region", help="S3: default discovered from HEAD Bucket, else the profile's, "
                   "else us-east-1; COS/OSS/OBS: needed without --endpoint-url")
    p.add_argument("--profile", metavar="NAME", help="AWS shared-config profile (S3 only)")
    p.add_argument("--credentials-file", metavar="PATH",
                   help="KEY=VALUE file with access_key_id, secret_access_key, session_token "
                   "(mode 0600); instead of the environment")
    p.add_argument("--sse-c-key-file", metavar="PATH",
                   help="customer keys (SSE-C) for encrypted objects: 32 raw bytes, or one base64 "
                   "key per line (mode 0600); S3, COS, OBS")
    p.add_argument("--requester-pays", action="store_true",
                   help="the reader pays for requests: needed by requester-pays buckets "
                   "(S3, OSS, OBS)")
    p.add_argument("--expected-bucket-owner", metavar="ACCOUNT",
                   help="refuse the bucket unless this account owns it (S3)")
    p.add_argument("--oss-signature", choices=["v4", "v1"], default=None,
                   help="OSS signature version (default v4; v1 is being retired by Alibaba)")
    p.add_argument("--no-sign-request", action="store_true", help="anonymous access (public buckets)")
    p.add_argument("--force-path-style", action="store_true",
                   help="path-style addressing (automatic for IP and localhost endpoints)")
    p.add_argument("--metadata-ttl", type=_seconds, default=60.0, metavar="SECONDS",
                   help="how long metadata is trusted before revalidation (default 60)")
    p.add_argument("--negative-ttl", type=_seconds, default=None, metavar="SECONDS",
                   help='how long a "no such object" answer is trusted (default: the metadata TTL)')
    p.add_argument("--uid", type=int, default=None, help="owner of every file (default: yours)")
    p.add_argument("--gid", type=int, default=None, help="group of every file (default: yours)")
    p.add_argument("--file-mode", type=_mode, default=0o444, help="permission bits of files (default 0444)")
    p.add_argument("--dir-mode", type=_mode, default=0o555,
                   help="permission bits of directories (default 0555)")
    p.add_argument("--allow-other", action="store_true", help="let other users see the mount")
    p.add_argument("--no-tags", action="store_true",
                   help="do not show object tags (user.s3.tag.*): no GET ?tagging is sent")
    p.add_argument("--no-annotations", action="store_true",
                   help="do not show S3 annotations (user.s3.annotation.*): no "
                        "ListObjectAnnotations/GetObjectAnnotation is sent")
    p.add_argument("--nonempty", action="store_true",
                   help="mount over a non-empty directory, hiding what is in it until unmounted")
    p.add_argument("--foreground", "-f", action="store_true",
                   help="stay attached; without it, return once the mount is live")
    p.add_argument("--request-timeout", type=_seconds, default=10.0, metavar="SECONDS",
                   help="limit for one attempt of one request (default 10)")
    p.add_argument("--retries", type=int, default=2,
                   help="retries after a failed attempt, with backoff and jitter (default 2)")
    p.add_argument("--max-connections", type=int, default=64, help="HTTP connections (default 64)")
    p.add_argument("--cache-entries", type=int, default=250_000,
                   help="bound of each metadata table, in entries (default 250000)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-file", metavar="PATH", help="log here (default: stderr in the foreground; "
                   "detached: syslog, else a file named on the terminal)")
    p.add_argument("--as-of", metavar="TIME",
                   help="show the bucket as it was at TIME (ISO 8601 date or date-time, UTC unless "
                   "a zone is given, e.g. 2026-11-01T00:00:00Z); needs a versioned bucket")
    p.add_argument("--versions", action="store_true",
                   help="show every version of every object under .metafs/versions/ (listed only "
                   "when a process looks inside)")
    p.add_argument("--control-dir", metavar="NAME", default=".metafs",
                   help="name of metafs's own directory at the mount root, hidden from listings "
                   "(default .metafs; pick another if the bucket has an entry of that name)")
    p.add_argument("--metrics-addr", metavar="[HOST:]PORT", default=None,
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (HOST default 127.0.0.1; "
                   "off by default)")
    p.add_argument("--version", action="version", version=f"metafs {__version__}")
    p.add_argument("-o", dest="mount_options", action="append", default=[], metavar="KEY[=VALUE],...",
                   help="options in mount(8) form")
    return p


def expand_mount_options(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """Turn ``-o a=b,c`` into ``--a=b --c``; drop generic mount options."""
    longs = {s[2:] for a in parser._actions for s in a.option_strings if s.startswith("--")}
    out: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "-o" or (arg.startswith("-o") and len(arg) > 2 and not arg.startswith("--")):
            value = next(it, "") if arg == "-o" else arg[2:]
            for opt in filter(None, (o.strip() for o in value.split(","))):
                name, eq, val = opt.partition("=")
                if name in _GENERIC_MOUNT_OPTIONS or name.startswith(("x-systemd.", "x-", "comment")):
                    continue
                dashed = name.replace("_", "-")
                if dashed not in longs:
                    raise ConfigError(f"unknown mount option {name!r}")
                out.append(f"--{dashed}={val}" if eq else f"--{dashed}")
        else:
            out.append(arg)
    return out


def parse_args(argv: list[str]) -> Config:
    parser = build_parser()
    args = parser.parse_args(expand_mount_options(argv, parser))
    scheme, bucket, prefix = split_source(args.source)
    provider = resolve_provider(args.provider, scheme, args.endpoint_url)
    _check_provider_options(provider, bucket, args)
    # Whether the mountpoint can take the mount is checked at start (metafs.mountpoint).
    mnt = os.path.abspath(args.mountpoint)
    as_of_ms = None
    if args.as_of is not None:
        from .asof import parse_moment  # imports the client: only for --as-of

        as_of_ms = int(parse_moment(args.as_of).timestamp() * 1000)
    if (args.as_of is not None or args.versions) and dialects.dialect_for(
            provider, bucket).versions_query is None:
        raise ConfigError(f"{'--as-of' if args.as_of is not None else '--versions'}: directory "
                          f"bucket {bucket!r} keeps no versions (S3 Express One Zone has no "
                          "versioning)")
    metrics_addr = None
    if args.metrics_addr is not None:
        from .metrics import parse_addr

        try:
            metrics_addr = parse_addr(args.metrics_addr)
        except ValueError as e:
            raise ConfigError(f"--metrics-addr {e}") from None
    if args.retries < 0 or args.max_connections < 1 or args.cache_entries < 1:
        raise ConfigError("--retries, --max-connections and --cache-entries must be positive")
    return Config(
        bucket=bucket,
        prefix=prefix,
        mountpoint=mnt,
        provider=provider,
        oss_signature=args.oss_signature or "v4",
        credentials_file=(os.path.abspath(args.credentials_file)
                          if args.credentials_file else None),
        endpoint_url=args.endpoint_url,
        endpoint_source="--endpoint-url" if args.endpoint_url else None,
        region=args.region,
        profile=args.profile,
        no_sign_request=args.no_sign_request,
        force_path_style=args.force_path_style,
        metadata_ttl=args.metadata_ttl,
        negative_ttl=args.metadata_ttl if args.negative_ttl is None else args.negative_ttl,
        uid=os.getuid() if args.uid is None else args.uid,
        gid=os.getgid() if args.gid is None else args.gid,
        file_mode=args.file_mode,
        dir_mode=args.dir_mode,
        allow_other=args.allow_other,
        nonempty=args.nonempty,
        channels=frozenset(c for c, off in (("tags", args.no_tags),
                                            ("annotations", args.no_annotations)) if not off),
        foreground=args.foreground,
        request_timeout=args.request_timeout,
        retries=args.retries,
        max_connections=args.max_connections,
        cache_entries=args.cache_entries,
        log_level=args.log_level,
        log_file=args.log_file,
        sse_c_key_file=os.path.abspath(args.sse_c_key_file) if args.sse_c_key_file else None,
        requester_pays=args.requester_pays,
        expected_bucket_owner=args.expected_bucket_owner,
        control_dir=check_name(args.control_dir),
        as_of_ms=as_of_ms,
        versions=args.versions,
        given_source=args.source,
        metrics_addr=metrics_addr,
    )

"""Where requests go: the endpoint URL, how the bucket is addressed, the starting region.  Pure.

The command line, the mount and the client all ask these questions, and
each has one answer here, so they cannot disagree:

* an endpoint URL is parsed by :func:`_split` only (a bare host means
  ``https://``, and the endpoint remembers it was assumed, so a failed TLS
  handshake can say so; an unparsable URL is a ConfigError wherever it is
  first read); :func:`endpoint_host` and :meth:`Endpoint.build` read its
  parts; :func:`shown` is how messages print one;
* :func:`path_style` is the addressing rule: ``config`` asks it to refuse
  a command line, :class:`Endpoint` to address requests;
* :func:`starting_region` is the region to sign and address for before
  the bucket has said anything.

What differs between providers is read from the :class:`Dialect`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable
from urllib.parse import SplitResult, urlsplit

from ..errors import ConfigError
from .dialects import S3, Dialect, region_from_host


def is_ip_or_localhost(host: str) -> bool:
    """Hosts that ``BUCKET.host`` cannot name: IP literals and localhost."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def has_scheme(endpoint_url: str) -> bool:
    """Whether the URL says http or https (``HOST[:PORT]`` alone does not: https is assumed)."""
    return "://" in endpoint_url


def shown(endpoint_url: str) -> str:
    """An endpoint URL as messages print it: without any ``user:password@``."""
    scheme, sep, rest = endpoint_url.rpartition("://")
    netloc, slash, path = rest.partition("/")
    return f"{scheme}{sep}{netloc.rpartition('@')[2]}{slash}{path}"


def _split(endpoint_url: str) -> SplitResult:
    """The one parse of an endpoint URL; a bare ``HOST[:PORT]`` means https.

    An unparsable URL (an unclosed IPv6 bracket, a port that is no number)
    is a :class:`~metafs.errors.ConfigError` wherever it is first read.
    """
    try:
        u = urlsplit(endpoint_url if has_scheme(endpoint_url) else "https://" + endpoint_url)
        _ = u.port  # not used: read only to validate, as urlsplit checks the port only when it is read
    except ValueError as e:
        raise ConfigError(f"bad endpoint URL {shown(endpoint_url)!r} ({e})") from None
    return u


def endpoint_host(endpoint_url: str | None) -> str | None:
    """The host an endpoint URL names (lowercase, IPv6 without brackets); None without one."""
    if not endpoint_url:
        return None
    return _split(endpoint_url).hostname


def path_style(dialect: Dialect, host: str | None, bucket: str, *, force: bool = False) -> bool:
    """Whether requests put the bucket in the path (``host/bucket/key``), not the host name.

    ``host`` is the endpoint's host, None for the provider's own endpoint
    for the region.  Path style is what ``force`` (``--force-path-style``)
    asks, what IP and localhost endpoints need (no DNS name for
    ``bucket.host``), and what a dotted bucket on the provider's endpoint
    needs if the dialect says so.  A dialect that has no path style
    refuses the first two with a :class:`~metafs.errors.ConfigError`.
    """
    if force:
        why = "--force-path-style"
    elif host is not None and is_ip_or_localhost(host):
        why = f"endpoint {host} (path style)"
    else:
        return host is None and dialect.path_style_for_dotted_bucket and "." in bucket
    if not dialect.path_style_allowed:
        raise ConfigError(f"{dialect.title}: buckets are addressed virtual-hosted only, so {why} "
                          "cannot be used")
    return True


def starting_region(endpoint_url: str | None, region: str | None, dialect: Dialect,
                    profile_region: Callable[[], str | None]) -> str:
    """The region to sign and address for before the bucket has said anything.

    ``region`` (``--region``), else the one the endpoint's host names, else
    where the dialect says so the AWS profile's (``profile_region`` is asked
    only then: it reads the AWS configuration), else us-east-1; COS and OBS
    sign no region, so for them it may stay unknown ('').
    """
    named = region or region_from_host(dialect, endpoint_host(endpoint_url))
    if named:
        # OSS's own spelling (oss-cn-hangzhou) names the same region as its general id.
        return named.removeprefix(dialect.region_prefix) if dialect.region_prefix else named
    if dialect.region_from_profile:
        return profile_region() or "us-east-1"
    return ""


@dataclasses.dataclass
class Endpoint:
    """Where requests go and how the bucket is addressed."""

    scheme: str
    host: str  # without port
    port: int | None
    path_style: bool
    from_region: bool  # the provider's default for the region, so it follows region discovery
    scheme_assumed: bool = False  # the URL named no scheme: https was assumed (messages say so)

    @classmethod
    def build(cls, endpoint_url: str | None, region: str, bucket: str,
              force_path_style: bool = False, dialect: Dialect = S3) -> Endpoint:
        if endpoint_url is None:
            style = path_style(dialect, None, bucket, force=force_path_style)
            if not region:
                raise ConfigError(f"{dialect.title} needs --region (or --endpoint-url)")
            return cls("https", dialect.default_host(region, bucket), None, style, True)
        u = _split(endpoint_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ConfigError(f"bad endpoint URL {shown(endpoint_url)!r} "
                              "(expected http(s)://HOST[:PORT])")
        style = path_style(dialect, u.hostname, bucket, force=force_path_style)
        return cls(u.scheme, u.hostname, u.port, style, False, not has_scheme(endpoint_url))

    def netloc(self, bucket: str) -> str:
        host = self.host if self.path_style else f"{bucket}.{self.host}"
        if ":" in host:  # an IPv6 literal keeps its brackets in URLs and Host
            host = f"[{host}]"
        default = 443 if self.scheme == "https" else 80
        return host if self.port in (None, default) else f"{host}:{self.port}"

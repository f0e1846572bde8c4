"""The object-storage dialects metafs speaks, and what each one changes.  Pure.

S3, Tencent COS, Alibaba OSS and Huawei OBS share one data model (HEAD
Object for metadata, a delimiter listing for directories) and differ in a
short list of protocol details, which is all a :class:`Dialect` holds:

* the signature (SigV4, COS ``q-sign-algorithm=sha1``, OSS V4 or V1, OBS
  ``OBS ak:sig``) and where a temporary-credential token goes (the signers
  know their own token header);
* the listing API: ListObjectsV2 with ``continuation-token`` (S3, OSS) or
  ListObjects V1 with ``marker`` (COS, OBS: V2 is undocumented for both),
  and how URL-encoded keys in it are decoded (each SDK's choice: ``+`` is a
  space for S3 and OBS, a literal ``+`` for COS and OSS);
* how the bucket is checked at start: HEAD Bucket, except OSS, which
  documents none and answers ``GET /?location`` instead;
* which header names the bucket's region;
* the default endpoint for a region, and the region an endpoint names;
* whether user-metadata values come back percent-encoded (OBS keeps them
  as the client sent them, and clients percent-encode non-ASCII);
* whether listings are lexicographic (not in S3 directory buckets).

S3 directory buckets (``NAME--ZONE--x-s3``) are a dialect of their own,
chosen by the bucket name: zonal endpoint, virtual-hosted only, session
authentication (see :mod:`metafs.s3.express`), unordered listings.

See ``object-storage-protocols.md`` §0-§6 for the sources of each fact.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable

from ..errors import ConfigError
from ..signing import Signer
from ..signing.cos import CosSigner
from ..signing.obs import ObsSigner
from ..signing.oss import OssV1Signer, OssV4Signer
from ..signing.sigv4 import SigV4Signer

__all__ = ["Dialect", "PROVIDERS", "S3", "S3EXPRESS", "COS", "OSS", "OBS", "dialect_for",
           "infer_provider", "is_directory_bucket", "directory_bucket_zone", "region_from_host"]

PROVIDERS = ("s3", "cos", "oss", "obs")

_DIRECTORY_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]*--([a-z0-9-]+)--x-s3$")


def is_directory_bucket(bucket: str) -> bool:
    """``NAME--ZONE--x-s3``: an S3 Express One Zone directory bucket."""
    return _DIRECTORY_BUCKET.match(bucket) is not None


def directory_bucket_zone(bucket: str) -> str:
    """The zone id of a directory bucket name (``usw2-az1``)."""
    m = _DIRECTORY_BUCKET.match(bucket)
    if m is None:
        raise ConfigError(f"{bucket!r} is not a directory bucket name (NAME--ZONE--x-s3)")
    return m.group(1)


def _aws_host(region: str, bucket: str) -> str:
    if region == "us-east-1":
        return "s3.amazonaws.com"
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"s3.{region}.{suffix}"


def _express_host(region: str, bucket: str) -> str:
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"s3express-{directory_bucket_zone(bucket)}.{region}.{suffix}"


def _s3_list_query(prefix: str, delimiter: str | None, token: str | None,
                   max_keys: int | None) -> list[tuple[str, str]]:
    # Always encoding-type=url: XML 1.0 cannot carry some bytes keys may hold.
    q = [("list-type", "2"), ("prefix", prefix), ("encoding-type", "url")]
    if delimiter:
        q.append(("delimiter", delimiter))
    if token:
        q.append(("continuation-token", token))
    if max_keys is not None:
        q.append(("max-keys", str(max_keys)))
    return q


def _oss_list_query(prefix: str, delimiter: str | None, token: str | None,
                    max_keys: int | None) -> list[tuple[str, str]]:
    # ListObjectsV2 as for S3, without an empty prefix: a value-less
    # parameter is signed differently by every vendor, so send none.
    return [(k, v) for k, v in _s3_list_query(prefix, delimiter, token, max_keys)
            if k != "prefix" or v]


def _v1_list_query(prefix: str, delimiter: str | None, token: str | None,
                   max_keys: int | None) -> list[tuple[str, str]]:
    q = [("prefix", prefix)] if prefix else []
    q.append(("encoding-type", "url"))
    if delimiter:
        q.append(("delimiter", delimiter))
    if token:
        q.append(("marker", token))
    if max_keys is not None:
        q.append(("max-keys", str(max_keys)))
    return q


def _sigv4(region: str, oss_signature: str) -> Signer:
    return SigV4Signer(region)


def _express_iam(region: str, oss_signature: str) -> Signer:
    # CreateSession and HEAD Bucket: IAM credentials, signing name s3express.
    return SigV4Signer(region, service="s3express")


def _cos(region: str, oss_signature: str) -> Signer:
    return CosSigner()


def _oss(region: str, oss_signature: str) -> Signer:
    if oss_signature == "v1":
        return OssV1Signer()
    return OssV4Signer(region)


def _obs(region: str, oss_signature: str) -> Signer:
    return ObsSigner()


@dataclasses.dataclass(frozen=True)
class Dialect:
    """What differs between providers (see the module docstring)."""

    name: str                 # s3, s3express, cos, oss, obs
    provider: str             # the --provider value / source URL scheme
    title: str                # for messages
    region_header: str | None  # HEAD Bucket header that names the bucket's region
    list_query: Callable[[str, str | None, str | None, int | None], list[tuple[str, str]]]
    list_plus_is_space: bool  # how URL-encoded keys in listings are decoded
    bucket_check: str         # "head" (HEAD Bucket) or "location" (GET /?location)
    default_host: Callable[[str, str], str]  # (region, bucket) -> endpoint host
    make_signer: Callable[[str, str], Signer]  # (region, oss_signature) -> signer
    signs_region: bool        # the signature covers a region (SigV4, OSS V4)
    percent_decode_values: bool = False
    ordered_listings: bool = True
    # COS signs the path without the bucket and OBS signs "/bucket/" for
    # bucket requests, both right only for virtual-hosted requests (and
    # both vendors refuse path style for new buckets); directory buckets
    # have no path style at all.
    path_style_allowed: bool = True
    checksum_mode: bool = False  # ask HEAD for x-amz-checksum-* (S3 only)
    session_auth: bool = False   # S3 Express: data requests use CreateSession keys

    def signing_region_needed(self, oss_signature: str) -> bool:
        return self.signs_region and not (self.name == "oss" and oss_signature == "v1")


S3 = Dialect(
    name="s3", provider="s3", title="AWS S3", region_header="x-amz-bucket-region",
    list_query=_s3_list_query, list_plus_is_space=True, bucket_check="head",
    default_host=_aws_host, make_signer=_sigv4, signs_region=True, checksum_mode=True,
)
S3EXPRESS = Dialect(
    name="s3express", provider="s3", title="S3 directory bucket",
    region_header="x-amz-bucket-region", list_query=_s3_list_query, list_plus_is_space=True,
    bucket_check="head", default_host=_express_host, make_signer=_express_iam,
    signs_region=True, ordered_listings=False, path_style_allowed=False, checksum_mode=True,
    session_auth=True,
)
COS = Dialect(
    name="cos", provider="cos", title="Tencent COS", region_header="x-cos-bucket-region",
    list_query=_v1_list_query, list_plus_is_space=False, bucket_check="head",
    default_host=lambda region, bucket: f"cos.{region}.myqcloud.com",
    make_signer=_cos, signs_region=False, path_style_allowed=False,
)
OSS = Dialect(
    name="oss", provider="oss", title="Alibaba Cloud OSS", region_header=None,
    list_query=_oss_list_query, list_plus_is_space=False, bucket_check="location",
    default_host=lambda region, bucket: f"oss-{region.removeprefix('oss-')}.aliyuncs.com",
    make_signer=_oss, signs_region=True,
)
OBS = Dialect(
    name="obs", provider="obs", title="Huawei Cloud OBS", region_header="x-obs-bucket-location",
    list_query=_v1_list_query, list_plus_is_space=True, bucket_check="head",
    default_host=lambda region, bucket: f"obs.{region}.myhuaweicloud.com",
    make_signer=_obs, signs_region=False, percent_decode_values=True, path_style_allowed=False,
)

_BY_PROVIDER = {"s3": S3, "cos": COS, "oss": OSS, "obs": OBS}


def dialect_for(provider: str, bucket: str) -> Dialect:
    """The dialect of ``bucket`` at ``provider`` (directory buckets by their name)."""
    if provider not in _BY_PROVIDER:
        raise ConfigError(f"unknown provider {provider!r} (expected one of {', '.join(PROVIDERS)})")
    if provider == "s3" and is_directory_bucket(bucket):
        return S3EXPRESS
    return _BY_PROVIDER[provider]


def infer_provider(host: str | None) -> str:
    """The provider an endpoint host belongs to; ``s3`` for any other host.

    An ``s3.`` label in a vendor domain is that vendor's S3-compatible
    endpoint (``s3.oss-cn-hangzhou.aliyuncs.com``), which speaks SigV4.
    """
    if not host:
        return "s3"
    h = host.lower().rstrip(".")
    labels = h.split(".")
    if "s3" in labels[:-2]:
        return "s3"
    if h.endswith((".myqcloud.com", ".tencentcos.cn")):
        return "cos"
    if h.endswith(".aliyuncs.com"):
        return "oss"
    if h.endswith((".myhuaweicloud.com", ".myhuaweicloud.eu")):
        return "obs"
    return "s3"


# The region each vendor's endpoint names, as the endpoint tables spell them.
_REGION_IN_HOST = {
    "s3": re.compile(r"(?:^|\.)s3[.-](?:dualstack\.)?(?!external-1\.)([a-z]{2}(?:-[a-z]+)+-\d+)"
                     r"\.amazonaws\.com(?:\.cn)?$"),
    "s3express": re.compile(r"(?:^|\.)s3express-[a-z0-9-]+\.([a-z]{2}(?:-[a-z]+)+-\d+)"
                            r"\.amazonaws\.com(?:\.cn)?$"),
    "cos": re.compile(r"(?:^|\.)cos(?:-internal)?\.([a-z]+-[a-z0-9-]+?)\.(?:myqcloud\.com|tencentcos\.cn)$"),
    "oss": re.compile(r"(?:^|\.)oss-(?!accelerate)([a-z]+-[a-z0-9-]+?)(?:-internal)?\.aliyuncs\.com$"),
    "obs": re.compile(r"(?:^|\.)obs\.([a-z]+-[a-z0-9-]+?)\.myhuaweicloud\.(?:com|eu)$"),
}


def region_from_host(dialect: Dialect, host: str | None) -> str | None:
    """The region a provider's own endpoint host names, e.g. ``oss-cn-hangzhou…`` -> ``cn-hangzhou``."""
    if not host:
        return None
    pattern = _REGION_IN_HOST.get(dialect.name)
    m = pattern.search(host.lower().rstrip(".")) if pattern else None
    return m.group(1) if m else None

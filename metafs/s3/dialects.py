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
* whether listings are lexicographic (not in S3 directory buckets);
* how a bucket in another region shows: S3 names the region in a
  301/307/400 and is followed there, OSS names the endpoint in a 403, COS
  and OBS redirect elsewhere (an error naming the ``Location``);
* whether the region the bucket check reports is adopted: only SigV4
  signs for a region that answer can contradict (COS and OBS sign none,
  and an OSS answer that arrived was signed for the right region already);
* where the starting region comes from when nothing names it;
* the request headers of SSE-C (``x-amz-``, ``x-cos-``, ``x-obs-``
  ``server-side-encryption-customer-*``; OSS has no SSE-C), of a
  requester-pays bucket (``x-amz-``, ``x-oss-``, ``x-obs-request-payer``;
  COS has none) and of the expected bucket owner (S3 only);
* which metadata channels beside HEAD it has: object tags (``GET
  ?tagging``, all four, not directory buckets) and annotations (S3 only,
  not directory buckets); answers that say "no tags" differ (S3: an empty
  ``TagSet``; OBS: 404 ``NoSuchTagSet``), which is a list of codes here;
* the versions listing's query (``GET /?versions``, paged by
  ``key-marker`` / ``version-id-marker``; COS wants an empty
  ``version-id-marker`` sent, OBS refuses one, OSS takes no empty
  ``prefix``; none in directory buckets).

S3 directory buckets (``NAME--ZONE--x-s3``) are a dialect of their own,
chosen by the bucket name: zonal endpoint, virtual-hosted only, session
authentication (see :mod:`metafs.s3.express`), unordered listings.

Every difference is a field: the client, :mod:`~metafs.s3.endpoint` and
:mod:`~metafs.s3.answers` read fields and never ask which provider
they talk to, so a new provider is a signer module and a constant here.

See ``object-storage-protocols.md`` §0-§6 for the sources of each fact.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

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
                   max_keys: int | None, start_after: str | None = None) -> list[tuple[str, str]]:
    # Always encoding-type=url: XML 1.0 cannot carry some bytes keys may hold.
    q = [("list-type", "2"), ("prefix", prefix), ("encoding-type", "url")]
    if delimiter:
        q.append(("delimiter", delimiter))
    if token:
        q.append(("continuation-token", token))
    elif start_after:  # the server ignores start-after once a token is sent
        q.append(("start-after", start_after))
    if max_keys is not None:
        q.append(("max-keys", str(max_keys)))
    return q


def _oss_list_query(prefix: str, delimiter: str | None, token: str | None,
                    max_keys: int | None, start_after: str | None = None) -> list[tuple[str, str]]:
    # ListObjectsV2 as for S3, without an empty prefix: a value-less
    # parameter is signed differently by every vendor, so send none.
    return [(k, v) for k, v in _s3_list_query(prefix, delimiter, token, max_keys, start_after)
            if k != "prefix" or v]


def _v1_list_query(prefix: str, delimiter: str | None, token: str | None,
                   max_keys: int | None, start_after: str | None = None) -> list[tuple[str, str]]:
    q = [("prefix", prefix)] if prefix else []
    q.append(("encoding-type", "url"))
    if delimiter:
        q.append(("delimiter", delimiter))
    if token or start_after:  # V1's marker is a start-after key
        q.append(("marker", token or start_after or ""))
    if max_keys is not None:
        q.append(("max-keys", str(max_keys)))
    return q


def _versions_query(prefix: str, delimiter: str | None, key_marker: str | None,
                    version_id_marker: str | None, max_keys: int | None,
                    *, empty_prefix: bool = True, empty_version_marker: bool = False
                    ) -> list[tuple[str, str]]:
    # ``versions`` is a value-less sub-resource: sent as a bare name.
    q = [("versions", "")]
    if prefix or empty_prefix:
        q.append(("prefix", prefix))
    q.append(("encoding-type", "url"))
    if delimiter:
        q.append(("delimiter", delimiter))
    if key_marker:
        q.append(("key-marker", key_marker))
        if version_id_marker or empty_version_marker:
            q.append(("version-id-marker", version_id_marker or ""))
    if max_keys is not None:
        q.append(("max-keys", str(max_keys)))
    return q


def _s3_versions_query(prefix: str, delimiter: str | None, key_marker: str | None,
                       version_id_marker: str | None, max_keys: int | None) -> list[tuple[str, str]]:
    return _versions_query(prefix, delimiter, key_marker, version_id_marker, max_keys)


def _cos_versions_query(prefix: str, delimiter: str | None, key_marker: str | None,
                        version_id_marker: str | None, max_keys: int | None
                        ) -> list[tuple[str, str]]:
    # COS: "if the previous NextVersionIdMarker was empty, send an empty version-id-marker".
    return _versions_query(prefix, delimiter, key_marker, version_id_marker, max_keys,
                           empty_version_marker=True)


def _oss_obs_versions_query(prefix: str, delimiter: str | None, key_marker: str | None,
                            version_id_marker: str | None, max_keys: int | None
                            ) -> list[tuple[str, str]]:
    # OSS: no value-less parameter but the sub-resource; OBS: an empty
    # version-id-marker is refused, so none is sent.
    return _versions_query(prefix, delimiter, key_marker, version_id_marker, max_keys,
                           empty_prefix=False)


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


def _express_session(region: str) -> Signer:
    # Data requests: session keys, token in x-amz-s3session-token.
    return SigV4Signer(region, service="s3express", token_header="x-amz-s3session-token")


# The cheapest listing, sent only to carry an error code in its body: S3
# documents max-keys=0; not every vendor does, and one key costs the same.
_S3_PROBE = (("list-type", "2"), ("max-keys", "0"))
_V1_PROBE = tuple(_v1_list_query("", None, None, 1))
_OSS_PROBE = tuple(_oss_list_query("", None, None, 1))

# The region each vendor's endpoint names, as the endpoint tables spell them.
_AWS_HOST_REGION = re.compile(r"(?:^|\.)s3[.-](?:dualstack\.)?(?!external-1\.)([a-z]{2}(?:-[a-z]+)+-\d+)"
                              r"\.amazonaws\.com(?:\.cn)?$")
_EXPRESS_HOST_REGION = re.compile(r"(?:^|\.)s3express-[a-z0-9-]+\.([a-z]{2}(?:-[a-z]+)+-\d+)"
                                  r"\.amazonaws\.com(?:\.cn)?$")
_COS_HOST_REGION = re.compile(
    r"(?:^|\.)cos(?:-internal)?\.([a-z]+-[a-z0-9-]+?)\.(?:myqcloud\.com|tencentcos\.cn)$")
_OSS_HOST_REGION = re.compile(r"(?:^|\.)oss-(?!accelerate)([a-z]+-[a-z0-9-]+?)(?:-internal)?\.aliyuncs\.com$")
_OBS_HOST_REGION = re.compile(r"(?:^|\.)obs\.([a-z]+-[a-z0-9-]+?)\.myhuaweicloud\.(?:com|eu)$")


@dataclasses.dataclass(frozen=True)
class Dialect:
    """What differs between providers (see the module docstring), one fact per field."""

    name: str                 # s3, s3express, cos, oss, obs
    provider: str             # the --provider value / source URL scheme
    title: str                # for messages
    region_header: str | None  # HEAD Bucket header that names the bucket's region
    # (prefix, delimiter, token, max_keys, start_after) -> query
    list_query: Callable[[str, str | None, str | None, int | None, str | None],
                         list[tuple[str, str]]]
    list_version: int         # 2: ListObjectsV2, paged by continuation token; 1: V1, by marker
    list_plus_is_space: bool  # how URL-encoded keys in listings are decoded
    bucket_check: str         # "head" (HEAD Bucket) or "location" (GET /?location)
    bucket_probe: tuple[tuple[str, str], ...]  # cheapest listing query, sent to learn an error code
    default_host: Callable[[str, str], str]  # (region, bucket) -> endpoint host
    host_region: re.Pattern[str]  # group 1: the region one of the provider's endpoint hosts names
    make_signer: Callable[[str, str], Signer]  # (region, oss_signature) -> signer
    signs_region: bool        # the signature covers a region (SigV4, OSS V4)
    regionless_signatures: frozenset[str] = frozenset()  # --oss-signature values naming no region
    region_prefix: str = ""   # the provider's own region spelling, stripped: oss-cn-hangzhou
    region_from_profile: bool = False  # nothing names the region: the AWS profile's, else us-east-1
    follows_region_redirects: bool = False  # follow a 301/307/400 naming the region (else: an error)
    wrong_endpoint_403: bool = False  # a 403 naming an <Endpoint> gives the bucket's region (OSS)
    adopts_bucket_region: bool = False  # the bucket check's region replaces the starting one
    percent_decode_values: bool = False  # user-metadata values come back percent-encoded (OBS)
    ordered_listings: bool = True  # listings are in key order (not in S3 directory buckets)
    # COS signs the path without the bucket and OBS signs "/bucket/" for
    # bucket requests, both right only for virtual-hosted requests (and
    # both vendors refuse path style for new buckets); directory buckets
    # have no path style at all.
    path_style_allowed: bool = True
    path_style_for_dotted_bucket: bool = False  # dots break the provider's *.host certificate (S3)
    checksum_mode: bool = False  # ask HEAD for x-amz-checksum-* (S3 only)
    make_session_signer: Callable[[str], Signer] | None = None  # S3 Express: signs with session keys
    sse_c_prefix: str | None = None  # SSE-C headers: prefix + algorithm, key, key-md5; None: no SSE-C
    request_payer_header: str | None = None  # "requester" in it: the reader pays (--requester-pays)
    expected_owner_header: str | None = None  # the account that must own the bucket
    parts_count_header: str | None = None  # HEAD ?partNumber=1 answers the part count in it (S3)
    tagging: bool = True  # GET ?tagging exists (not on directory buckets)
    no_tags_codes: frozenset[str] = frozenset()  # a 404 with one of these codes means "no tags"
    annotations: bool = False  # ListObjectAnnotations / GetObjectAnnotation (S3, 2026)
    # The versions listing (GET /?versions: key-marker / version-id-marker
    # paging); None where there is none (directory buckets).
    versions_query: Callable[[str, str | None, str | None, str | None, int | None],
                             list[tuple[str, str]]] | None = _s3_versions_query
    version_header: str = "x-amz-version-id"  # names the version a HEAD or GET answered

    def signing_region_needed(self, oss_signature: str) -> bool:
        return self.signs_region and oss_signature not in self.regionless_signatures


S3 = Dialect(
    name="s3", provider="s3", title="AWS S3", region_header="x-amz-bucket-region",
    list_version=2, list_query=_s3_list_query, list_plus_is_space=True, bucket_check="head",
    bucket_probe=_S3_PROBE, default_host=_aws_host, host_region=_AWS_HOST_REGION,
    make_signer=_sigv4, signs_region=True, region_from_profile=True,
    follows_region_redirects=True, adopts_bucket_region=True, path_style_for_dotted_bucket=True,
    checksum_mode=True, annotations=True, sse_c_prefix="x-amz-server-side-encryption-customer-",
    request_payer_header="x-amz-request-payer", expected_owner_header="x-amz-expected-bucket-owner",
    parts_count_header="x-amz-mp-parts-count",
)
S3EXPRESS = Dialect(
    name="s3express", provider="s3", title="S3 directory bucket",
    region_header="x-amz-bucket-region", list_version=2, list_query=_s3_list_query,
    list_plus_is_space=True, bucket_check="head", bucket_probe=_S3_PROBE, default_host=_express_host,
    host_region=_EXPRESS_HOST_REGION, make_signer=_express_iam, signs_region=True,
    region_from_profile=True, follows_region_redirects=True, adopts_bucket_region=True,
    ordered_listings=False, path_style_allowed=False, checksum_mode=True,
    make_session_signer=_express_session, tagging=False, versions_query=None,
    # Directory buckets have neither SSE-C nor requester pays (object-storage-protocols.md §1.2).
    expected_owner_header="x-amz-expected-bucket-owner", parts_count_header="x-amz-mp-parts-count",
)
COS = Dialect(
    name="cos", provider="cos", title="Tencent COS", region_header="x-cos-bucket-region",
    list_version=1, list_query=_v1_list_query, list_plus_is_space=False, bucket_check="head",
    bucket_probe=_V1_PROBE, default_host=lambda region, bucket: f"cos.{region}.myqcloud.com",
    host_region=_COS_HOST_REGION, make_signer=_cos, signs_region=False, path_style_allowed=False,
    sse_c_prefix="x-cos-server-side-encryption-customer-",
    versions_query=_cos_versions_query, version_header="x-cos-version-id",
)
OSS = Dialect(
    name="oss", provider="oss", title="Alibaba Cloud OSS", region_header=None,
    list_version=2, list_query=_oss_list_query, list_plus_is_space=False, bucket_check="location",
    bucket_probe=_OSS_PROBE,
    default_host=lambda region, bucket: f"oss-{region.removeprefix('oss-')}.aliyuncs.com",
    host_region=_OSS_HOST_REGION, make_signer=_oss, signs_region=True,
    regionless_signatures=frozenset({"v1"}), region_prefix="oss-", wrong_endpoint_403=True,
    request_payer_header="x-oss-request-payer",  # alibabacloud-oss-v2's request_payer
    versions_query=_oss_obs_versions_query, version_header="x-oss-version-id",
)
OBS = Dialect(
    name="obs", provider="obs", title="Huawei Cloud OBS", region_header="x-obs-bucket-location",
    list_version=1, list_query=_v1_list_query, list_plus_is_space=True, bucket_check="head",
    bucket_probe=_V1_PROBE, default_host=lambda region, bucket: f"obs.{region}.myhuaweicloud.com",
    host_region=_OBS_HOST_REGION, make_signer=_obs, signs_region=False,
    percent_decode_values=True, path_style_allowed=False,
    sse_c_prefix="x-obs-server-side-encryption-customer-",
    request_payer_header="x-obs-request-payer",  # esdk-obs-python's convertor
    no_tags_codes=frozenset({"NoSuchTagSet"}),
    versions_query=_oss_obs_versions_query, version_header="x-obs-version-id",
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


def region_from_host(dialect: Dialect, host: str | None) -> str | None:
    """The region a provider's own endpoint host names, e.g. ``oss-cn-hangzhou…`` -> ``cn-hangzhou``."""
    if not host:
        return None
    m = dialect.host_region.search(host.lower().rstrip("."))
    return m.group(1) if m else None

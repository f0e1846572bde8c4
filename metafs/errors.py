"""The exceptions metafs raises below the FUSE boundary, and their errno.

Everything the S3 layer or the metadata layer can fail with is a subclass
of :class:`MetafsError`, and each class carries its errno as the class
attribute ``errno``: this tree is the one table.  ``fuse_ops`` reads
``e.errno`` at its one boundary (anything else is a bug, reported as EIO
with a traceback), so the choice of errno is made in exactly one place::

    MetafsError                       errno   notes
     +-- ConfigError                  EINVAL  bad command line / options (exit 2)
     +-- MountpointError              EINVAL  the mountpoint is missing, dead, mounted or not empty (exit 1)
     +-- CredentialsError             EACCES  no credentials, unknown profile
     +-- S3Error                      EIO     any other error answer
     |    +-- NotFoundError           ENOENT  404 on an object (not a bucket)
     |    +-- NoSuchBucketError       EIO     404 on the bucket
     |    +-- AccessDeniedError       EACCES  403 AccessDenied
     |    +-- BadCredentialsError     EACCES  403 InvalidAccessKeyId / SignatureDoesNotMatch
     |    +-- WrongRegionError        EIO     301/400 naming another region (OSS: 403 naming an endpoint)
     |    +-- ChangedError            ESTALE  412: the object changed while open
     |    +-- CustomerKeyError        EACCES  400/403: the object needs a customer key (SSE-C) we lack
     |    +-- ServerError             EIO     5xx / 429 after all retries
     +-- TransportError               EIO     unreachable, reset, timed out (after retries)
     |    +-- EndpointDownError       EIO     failed fast: the endpoint is known not to answer (s3/health.py)
     +-- MalformedResponseError       EIO     a reply we cannot parse

Messages are one line, name the cause and never contain credentials
(only the access key id may appear, as servers' own messages do).
"""

from __future__ import annotations

import errno


class MetafsError(Exception):
    """Base of every error metafs raises on purpose."""

    errno: int = errno.EIO
    repeated: bool = False  # the same failure, already logged once: the FUSE boundary logs it at debug


class ConfigError(MetafsError):
    errno = errno.EINVAL


class MountpointError(MetafsError):
    """The mountpoint cannot take the mount (see :mod:`metafs.mountpoint`)."""

    errno = errno.EINVAL


class CredentialsError(MetafsError):
    errno = errno.EACCES


class S3Error(MetafsError):
    """An error answer from the server: status, S3 error code, message."""

    def __init__(self, status: int, code: str = "", message: str = "", *, what: str = "") -> None:
        self.status = status
        self.code = code
        self.message = message
        self.what = what
        detail = f"{code}: {message}" if code and message else (code or message or "")
        super().__init__(
            f"{what + ': ' if what else ''}HTTP {status}{' ' + detail if detail else ''}".strip()
        )


class NotFoundError(S3Error):
    errno = errno.ENOENT


class NoSuchBucketError(S3Error):
    pass


class AccessDeniedError(S3Error):
    errno = errno.EACCES


class BadCredentialsError(S3Error):
    errno = errno.EACCES


class WrongRegionError(S3Error):
    """The bucket is elsewhere: another region, or (OSS) another endpoint."""

    def __init__(self, status: int, region: str, *, endpoint: str | None = None,
                 **kw: str) -> None:
        self.region = region
        self.endpoint = endpoint
        where = (f"must be addressed at {endpoint}" + (f" (--region {region})" if region else "")
                 if endpoint else f"is in {region}")
        super().__init__(status, "WrongRegion", f"the bucket {where}", **kw)


class ChangedError(S3Error):
    errno = errno.ESTALE


class CustomerKeyError(S3Error):
    """The object is encrypted with a customer key (SSE-C) that no request could give.

    The message says so and names ``--sse-c-key-file``; it never holds a key.
    """

    errno = errno.EACCES

    def __init__(self, status: int, keys: int, *, what: str = "") -> None:
        self.keys = keys  # how many keys were tried
        if keys:
            hint = (f"none of the {keys} keys of --sse-c-key-file opens it" if keys > 1
                    else "the key of --sse-c-key-file does not open it")
        else:
            hint = "give the key with --sse-c-key-file"
        super().__init__(status, "CustomerKeyNeeded",
                         f"the object is encrypted with a customer key (SSE-C): {hint}", what=what)


class ServerError(S3Error):
    pass


class TransportError(MetafsError):
    """The request never got an answer (connect error, reset, timeout)."""


class EndpointDownError(TransportError):
    """Failed fast, without a request: the endpoint is known not to answer (an outage).

    A :class:`TransportError` like the failure that opened the outage, so
    whatever serves stale entries on one does on the other; the outage
    itself was logged once when it began, so callers may log this one quietly.
    """


class MalformedResponseError(MetafsError):
    """The server answered something we cannot parse."""


# What a failed request raises when no answer about the object itself came
# back (unreachable, 5xx after retries, unparseable): stale entries may be
# served instead.
UNAVAILABLE = (TransportError, ServerError, MalformedResponseError)

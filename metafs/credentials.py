"""Where credentials come from: a file, the provider's variables, botocore, or nobody.

In order, the first that applies:

1. ``--no-sign-request``: nobody; requests go unsigned.
2. ``--credentials-file PATH``: ``KEY=VALUE`` lines (see :func:`parse_credentials_file`),
   re-read when the file changes, so a sidecar can rotate temporary keys.
3. S3 (``--provider s3``): botocore's whole AWS chain (environment,
   shared files, ``--profile`` with role assumption, SSO, web identity,
   container and instance metadata) and its refresh of temporary
   credentials; metafs only adapts it to trio.
4. COS, OSS, OBS: the vendor's own environment variables (:data:`VENDOR_ENV`).
   There is deliberately **no fallback to the AWS chain** for them: AWS
   keys sent to another vendor can only be rejected, and they would
   reveal an AWS key id (or an instance-metadata lookup) to a third party.

Secrets never reach a log line or an exception message: only variable
names and file paths do.

The AWS configuration also says where S3 is (:func:`aws_configured_endpoint`):
read here because it is read by the same botocore session machinery.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import trio

from .errors import ConfigError, CredentialsError
from .signing import Credentials

if TYPE_CHECKING:  # botocore is imported only when the AWS chain is used
    import botocore.credentials
    import botocore.session

log = logging.getLogger(__name__)

# provider -> (key-id/secret pairs in order of preference, token variable, what to call them)
VENDOR_ENV: dict[str, tuple[tuple[tuple[str, str], ...], str, str]] = {
    "cos": ((("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"),
             ("COS_SECRET_ID", "COS_SECRET_KEY")), "TENCENTCLOUD_SESSION_TOKEN", "Tencent COS"),
    "oss": ((("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET"),), "OSS_SESSION_TOKEN", "Alibaba Cloud OSS"),
    "obs": ((("OBS_ACCESS_KEY_ID", "OBS_SECRET_ACCESS_KEY"),), "OBS_SECURITY_TOKEN", "Huawei Cloud OBS"),
}
AWS_ENV = (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),)
# Where botocore's PartialCredentialsError found half a key pair (its provider METHOD names).
_PARTIAL_WHERE = {"env": "the environment", "shared-credentials-file": "the shared credentials file",
                  "config-file": "the AWS config file", "custom-process": "the credential_process"}
# Names a credentials file may use for any provider.
FILE_KEYS = ("access_key_id", "secret_access_key", "session_token")


def static_from_env(provider: str, environ: Mapping[str, str]) -> Credentials | None:
    """A vendor's key pair (and token) from its variables; None if none is set.

    A pair set by half is an error that names the missing variable: it is
    a typo, and guessing would send the wrong key.
    """
    pairs, token_var, _ = VENDOR_ENV[provider]
    for id_var, secret_var in pairs:
        key_id, secret = environ.get(id_var, ""), environ.get(secret_var, "")
        if key_id and secret:
            return Credentials(key_id, secret, environ.get(token_var) or None)
        if key_id or secret:
            present, absent = (id_var, secret_var) if key_id else (secret_var, id_var)
            raise CredentialsError(f"{present} is set but {absent} is not")
    return None


# Where botocore reads the shared AWS files (its ``config_file``/``credentials_file`` settings).
_AWS_FILES = (("AWS_CONFIG_FILE", "~/.aws/config"),
              ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"))


def aws_config_is_env_only(profile: str | None, environ: Mapping[str, str]) -> bool:
    """True when botocore's configuration could only come from the environment.

    That is: no profile named (``--profile``, ``AWS_PROFILE``,
    ``AWS_DEFAULT_PROFILE``) and neither shared file exists (botocore treats a
    missing file as empty, expanding variables and ``~`` as here).  Then
    botocore's answers (the environment's keys first, ``AWS_DEFAULT_REGION``,
    the endpoint variables) can be read straight from the environment,
    without importing botocore (a third of the start-up time); anything
    else keeps botocore, so its semantics never change.
    """
    if profile is not None or environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE"):
        return False
    for var, default in _AWS_FILES:
        path = os.path.expanduser(os.path.expandvars(environ.get(var) or default))
        if os.path.isfile(path):
            return False
    return True


def env_only_aws_credentials(environ: Mapping[str, str]) -> Credentials | None:
    """The environment's AWS key pair as botocore's EnvProvider reads it; None if it would not.

    Only static keys: with ``AWS_CREDENTIAL_EXPIRATION`` botocore makes them
    refreshable from the environment, so that case stays with botocore.
    The token is the first of ``AWS_SECURITY_TOKEN``, ``AWS_SESSION_TOKEN``
    that is set (botocore's order).
    """
    (id_var, secret_var), = AWS_ENV
    key_id, secret = environ.get(id_var, ""), environ.get(secret_var, "")
    if not key_id or not secret or environ.get("AWS_CREDENTIAL_EXPIRATION"):
        return None
    token = next((t for v in ("AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN") if (t := environ.get(v))),
                 None)
    return Credentials(key_id, secret, token)


def aws_configured_endpoint(profile: str | None) -> tuple[str, str] | None:
    """The S3 endpoint the AWS configuration names, and where it was found; None if none.

    The order is botocore's and the AWS SDKs' ("service-specific endpoints",
    botocore >= 1.31, AWS CLI v2): ``AWS_ENDPOINT_URL_S3``, then
    ``AWS_ENDPOINT_URL``, then ``endpoint_url`` in the ``s3`` subsection of
    the ``[services NAME]`` section the profile names (``services = NAME``),
    then the profile's own ``endpoint_url``; none of them when
    ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` (or the profile's
    ``ignore_configured_endpoint_urls``) is true.  The command line's
    ``--endpoint-url`` comes before all of them (the caller's business).

    The files are read by botocore's session (``AWS_CONFIG_FILE``,
    ``AWS_PROFILE``, ``--profile``), not by hand; the four steps are spelled
    out here because botocore's own provider for them is private API, and
    because messages name the setting that was used
    (``tests/test_credentials.py`` checks each step against botocore's own
    client).  Raises CredentialsError for an unknown profile, ConfigError
    for a missing services section.
    """
    if aws_config_is_env_only(profile, os.environ) and not (
            os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")):
        return None  # nothing could name an endpoint: no need for botocore
    import botocore.exceptions
    import botocore.session

    try:
        session = botocore.session.Session(profile=profile)
        if session.get_config_variable("ignore_configured_endpoint_urls"):
            return None
        for var in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
            if os.environ.get(var):
                return os.environ[var], var
        scoped = session.get_scoped_config()
        name = session.profile or "default"
        if services := scoped.get("services"):
            section = session.full_config.get("services", {}).get(services)
            if not section:
                raise ConfigError(f"AWS profile {name!r} names services section {services!r}, "
                                  "which the AWS config file does not define")
            s3 = section.get("s3")
            if isinstance(s3, dict) and s3.get("endpoint_url"):
                return str(s3["endpoint_url"]), f"s3 endpoint_url of [services {services}]"
        if url := scoped.get("endpoint_url"):
            return str(url), f"endpoint_url of AWS profile {name!r}"
    except botocore.exceptions.ProfileNotFound:
        raise CredentialsError(f"AWS profile {profile!r} not found") from None
    except botocore.exceptions.BotoCoreError as e:  # a config file botocore cannot parse
        raise ConfigError(f"cannot read the AWS configuration: {e}") from None
    return None


def aws_half_pair(environ: Mapping[str, str]) -> str | None:
    """The message for ``AWS_ACCESS_KEY_ID`` or ``AWS_SECRET_ACCESS_KEY`` set alone; None if not.

    botocore reports a lone key id as a bare ``PartialCredentialsError``,
    and passes over a lone secret to the next source (shared files, instance
    metadata): both are typos, and the second would sign with keys nobody
    meant (the same rule as :func:`static_from_env`).
    """
    (id_var, secret_var), = AWS_ENV
    key_id, secret = environ.get(id_var, ""), environ.get(secret_var, "")
    if bool(key_id) == bool(secret):
        return None
    present, absent = (id_var, secret_var) if key_id else (secret_var, id_var)
    return f"{present} is set but {absent} is not: set both, or neither to use another AWS source"


def parse_credentials_file(text: str, provider: str, path: str) -> Credentials:
    """Credentials from ``KEY=VALUE`` lines.

    Keys: ``access_key_id``, ``secret_access_key``, ``session_token``, or
    the provider's environment variable names (so an environment file
    written for systemd works as is).  ``#`` comments, blank lines, an
    ``export`` prefix and quotes around values are allowed; other keys are
    ignored.
    """
    pairs = VENDOR_ENV[provider][0] if provider in VENDOR_ENV else AWS_ENV
    token_var = VENDOR_ENV[provider][1] if provider in VENDOR_ENV else "AWS_SESSION_TOKEN"
    values: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, eq, value = line.partition("=")
        if not eq:
            raise CredentialsError(f"{path}, line {n}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    aliases = {"access_key_id": [p[0] for p in pairs], "secret_access_key": [p[1] for p in pairs],
               "session_token": [token_var]}
    found = {}
    for generic, names in aliases.items():
        found[generic] = values.get(generic) or next((values[v] for v in names if values.get(v)), "")
    if not found["access_key_id"] or not found["secret_access_key"]:
        raise CredentialsError(f"{path} does not set access_key_id and secret_access_key")
    return Credentials(found["access_key_id"], found["secret_access_key"],
                       found["session_token"] or None)


def read_private_file(path: str, what: str) -> tuple[bytes, float]:
    """The bytes and mtime of a secret-holding file, refused unless only its owner can read it.

    Like ssh with its keys, refuse a file others can read or that someone
    else owns: a secret there is already compromised, or can be replaced.
    ``what`` names the file in messages ("credentials file").
    """
    try:
        st = os.stat(path)
        if st.st_uid not in (os.geteuid(), 0):
            raise CredentialsError(f"{what} {path} is owned by uid {st.st_uid}, "
                                   "not by you or root")
        if st.st_mode & 0o077:
            raise CredentialsError(f"{what} {path} is accessible by group or others "
                                   f"(mode {stat.S_IMODE(st.st_mode):04o}): chmod 600 it")
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CredentialsError(f"cannot read {what} {path}: {e.strerror}") from None
    return data, st.st_mtime


def read_credentials_file(path: str, provider: str) -> tuple[Credentials, float]:
    """Read and check ``path`` (:func:`read_private_file`); the credentials and the file's mtime."""
    data, mtime = read_private_file(path, "credentials file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialsError(f"credentials file {path} is not UTF-8 text") from None
    return parse_credentials_file(text, provider, path), mtime


class CredentialSource:
    """Resolves credentials once at start, refreshes them when they expire.

    ``anonymous`` (``--no-sign-request``) sends unsigned requests;
    ``provider`` chooses where keys come from when no ``credentials_file``
    is given (see the module docstring).  ``clock`` (monotonic seconds)
    paces the re-checks of the credentials file.
    """

    FILE_RECHECK = 1.0  # seconds between checks of the file's mtime

    def __init__(self, profile: str | None = None, anonymous: bool = False, *,
                 provider: str = "s3", credentials_file: str | None = None,
                 environ: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.profile = profile
        self.anonymous = anonymous
        self.provider = provider
        self.credentials_file = credentials_file
        self.environ = os.environ if environ is None else environ
        self._clock = clock
        # botocore's Credentials, or RefreshableCredentials (which refresh themselves)
        self._creds: botocore.credentials.Credentials | None = None
        self._static: Credentials | None = None  # file or vendor variables
        self._file_mtime = 0.0
        self._file_checked = 0.0
        self._file_warned = False
        self._session: botocore.session.Session | None = None

    def session(self) -> botocore.session.Session:
        """The botocore session (also the source of the profile's region)."""
        if self._session is None:
            import botocore.exceptions
            import botocore.session

            try:
                self._session = botocore.session.Session(profile=self.profile)
                # Touch the profile now, so a missing one fails at start.
                self._session.get_scoped_config()
            except botocore.exceptions.ProfileNotFound as e:
                raise CredentialsError(f"AWS profile {self.profile!r} not found") from e
        return self._session

    def profile_region(self) -> str | None:
        """The AWS profile's region (S3 only: vendors have no shared config)."""
        if self.provider != "s3" or (self.anonymous and self.profile is None):
            return None
        if aws_config_is_env_only(self.profile, self.environ):
            return self.environ.get("AWS_DEFAULT_REGION") or None  # botocore's only source then
        try:
            region: str | None = self.session().get_config_variable("region")
        except CredentialsError:
            raise
        except Exception:  # noqa: BLE001 - a malformed config file must not stop an explicit --region
            return None
        return region

    def resolve(self) -> None:
        """Find credentials (blocking; call before the trio loop serves FUSE)."""
        if self.anonymous:
            return
        if self.credentials_file:
            self._static, self._file_mtime = read_credentials_file(self.credentials_file,
                                                                   self.provider)
            self._file_checked = self._clock()
            return
        if self.provider in VENDOR_ENV:
            self._static = static_from_env(self.provider, self.environ)
            if self._static is None:
                pairs, token_var, title = VENDOR_ENV[self.provider]
                names = " or ".join(f"{a}/{b}" for a, b in pairs)
                raise CredentialsError(
                    f"no {title} credentials found: set {names} (plus {token_var} for "
                    "temporary keys), use --credentials-file, or --no-sign-request for a "
                    "public bucket")
            return
        # With --profile botocore skips the environment's keys, so a half pair there is no typo.
        if self.profile is None and (half := aws_half_pair(self.environ)):
            raise CredentialsError(half)
        if aws_config_is_env_only(self.profile, self.environ):
            # botocore's chain starts with these variables: the same keys, without botocore.
            self._static = env_only_aws_credentials(self.environ)
            if self._static is not None:
                return
        import botocore.exceptions

        try:
            creds = self.session().get_credentials()
        except botocore.exceptions.PartialCredentialsError as e:
            # Its fields name a source and a variable, never a value.
            where = _PARTIAL_WHERE.get(str(e.kwargs.get("provider")), str(e.kwargs.get("provider")))
            raise CredentialsError(f"incomplete AWS credentials in {where}: "
                                   f"{e.kwargs.get('cred_var')} is missing") from None
        except botocore.exceptions.BotoCoreError as e:
            raise CredentialsError(f"cannot load AWS credentials: {type(e).__name__}") from e
        if creds is None:
            raise CredentialsError(
                "no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "use --profile, or --no-sign-request for a public bucket)"
            )
        self._creds = creds

    def _recheck_file(self, path: str) -> None:
        """Re-read the credentials file ``path`` if it changed (at most once a second).

        A file that has become unreadable or invalid keeps the keys we
        have, with a warning: the next check may find it fixed.
        """
        now = self._clock()
        if now - self._file_checked < self.FILE_RECHECK:
            return
        self._file_checked = now
        try:
            mtime = os.stat(path).st_mtime
            if mtime != self._file_mtime:
                self._static, self._file_mtime = read_credentials_file(path, self.provider)
                log.info("credentials file %s re-read", path)
            self._file_warned = False
        except (OSError, CredentialsError) as e:
            if not self._file_warned:  # once per breakage, not once a second
                log.warning("keeping the current credentials: %s", e)
                self._file_warned = True

    async def get(self) -> Credentials | None:
        """Current credentials, refreshed off the trio thread when due."""
        if self.anonymous:
            return None
        if self.credentials_file and self._static is not None:
            self._recheck_file(self.credentials_file)
            return self._static
        if self._static is not None:
            return self._static
        if self._creds is None:
            await trio.to_thread.run_sync(self.resolve)
            if self._static is not None:
                return self._static
        c = self._creds
        assert c is not None  # resolve() found AWS credentials or raised
        refresh_needed = getattr(c, "refresh_needed", None)
        if refresh_needed is not None and refresh_needed():
            frozen = await trio.to_thread.run_sync(c.get_frozen_credentials)
        else:
            frozen = c.get_frozen_credentials()
        if frozen.access_key is None or frozen.secret_key is None:  # botocore's types allow it
            raise CredentialsError("the AWS credential chain gave no access key pair")
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token or None)

"""Where credentials come from: botocore's provider chain, or nobody.

botocore already implements the whole AWS chain (environment, shared
credentials and config files, profiles with role assumption, SSO, web
identity, ECS and instance metadata) and the refresh of temporary
credentials; metafs only adapts it to trio and to our
:class:`~metafs.signing.Credentials`.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from .errors import CredentialsError
from .signing import Credentials

log = logging.getLogger(__name__)


class CredentialSource:
    """Resolves credentials once at start, refreshes them when they expire.

    ``anonymous`` (``--no-sign-request``) sends unsigned requests.
    """

    def __init__(self, profile: str | None = None, anonymous: bool = False) -> None:
        self.profile = profile
        self.anonymous = anonymous
        self._creds: Any = None  # botocore Credentials or RefreshableCredentials
        self._session: Any = None

    def session(self) -> Any:
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
        if self.anonymous and self.profile is None:
            return None
        try:
            return self.session().get_config_variable("region")
        except CredentialsError:
            raise
        except Exception:  # a malformed config file must not stop an explicit --region
            return None

    def resolve(self) -> None:
        """Find credentials (blocking; call before the trio loop serves FUSE)."""
        if self.anonymous:
            return
        import botocore.exceptions

        try:
            creds = self.session().get_credentials()
        except botocore.exceptions.BotoCoreError as e:
            raise CredentialsError(f"cannot load AWS credentials: {type(e).__name__}") from e
        if creds is None:
            raise CredentialsError(
                "no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "use --profile, or --no-sign-request for a public bucket)"
            )
        self._creds = creds

    async def get(self) -> Credentials | None:
        """Current credentials, refreshed off the trio thread when due."""
        if self.anonymous:
            return None
        if self._creds is None:
            await trio.to_thread.run_sync(self.resolve)
        c = self._creds
        refresh_needed = getattr(c, "refresh_needed", None)
        if refresh_needed is not None and refresh_needed():
            frozen = await trio.to_thread.run_sync(c.get_frozen_credentials)
        else:
            frozen = c.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token or None)

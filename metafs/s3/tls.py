"""The TLS context of the one HTTP client: built only when a request can use TLS.

httpx builds a context by default, loading the whole CA bundle (about a
fifth of the start-up time), even when every request goes to an
``http://`` endpoint.  Here it is built only for an ``https`` endpoint
(also the assumed scheme of a URL that names none, and AWS's) or when a
proxy is configured in the environment (a proxy may be reached over TLS),
and then exactly as httpx builds it: ``SSL_CERT_FILE``, else
``SSL_CERT_DIR``, else certifi's bundle.  Otherwise the client gets a
context that trusts no certificate at all, so a TLS connection that
should never happen fails verification rather than going unchecked.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

from .endpoint import has_scheme


def needs_tls(endpoint_url: str | None, environ: Mapping[str, str]) -> bool:
    """Whether requests to ``endpoint_url`` (None: the provider's own, https) may use TLS."""
    if any(environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                                    "ALL_PROXY", "all_proxy")):
        return True
    if not endpoint_url or not has_scheme(endpoint_url):
        return True
    return urlsplit(endpoint_url).scheme.lower() != "http"


def client_context(endpoint_url: str | None, environ: Mapping[str, str]) -> ssl.SSLContext:
    """The ``verify=`` context for the HTTP client of a mount of ``endpoint_url``."""
    if needs_tls(endpoint_url, environ):
        import httpx

        return httpx.create_ssl_context(trust_env=True)  # httpx's own default, unchanged
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificates, trusts none

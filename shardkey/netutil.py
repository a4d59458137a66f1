"""TLS settings for the HTTP clients (JSON-RPC and holder APIs)."""

from __future__ import annotations

import functools
import ssl
from urllib.parse import urlsplit

import certifi


@functools.cache
def verifying_context() -> ssl.SSLContext:
    """One certificate-verifying TLS context for every client: building one (and loading the
    CA bundle into it) costs tens of ms, so it is made once."""
    return ssl.create_default_context(cafile=certifi.where())


def tls_verify(url: str) -> ssl.SSLContext | bool:
    """The TLS setting for a client of ``url``: the verifying context for ``https``. A plain
    ``http`` endpoint never does a TLS handshake (and the clients follow no redirects), so
    no CA bundle is loaded for it (False)."""
    return verifying_context() if urlsplit(url).scheme != "http" else False

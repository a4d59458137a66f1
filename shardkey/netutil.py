"""TLS settings for the HTTP clients (JSON-RPC and holder APIs)."""

from __future__ import annotations

import functools
import ssl
from urllib.parse import urlsplit

import certifi


@functools.cache
def verifying_context() -> ssl.SSLContext:
    """One certificate-verifying TLS context for every client: httpx builds (and loads the
    CA bundle into) a new one per client otherwise, tens of ms each."""
    return ssl.create_default_context(cafile=certifi.where())


def tls_verify(url: str) -> ssl.SSLContext | bool:
    """``verify=`` for an httpx client of ``url``: the verifying context for ``https``. A
    plain ``http`` endpoint never does a TLS handshake (and the clients follow no
    redirects), so no CA bundle is loaded for it."""
    return verifying_context() if urlsplit(url).scheme != "http" else False

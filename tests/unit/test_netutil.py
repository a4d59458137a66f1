"""Which endpoints get certificate verification."""

from __future__ import annotations

import ssl

import pytest

from shardkey.netutil import tls_verify


@pytest.mark.parametrize("url", ["https://rpc.example/v3/key", "HTTPS://rpc.example", "wss://x",
                                 "rpc.example"])
def test_anything_but_plain_http_verifies_certificates_and_host_names(url: str) -> None:
    context = tls_verify(url)
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_plain_http_loads_no_ca_bundle() -> None:
    assert tls_verify("http://127.0.0.1:8545") is False

"""Signed HTTP requests at the holder: chain time and header verification.

The scheme and its checks are :mod:`shardkey.httpauth`'s: :func:`verify_headers` checks
the signature over the declared body hash and length before a single body byte is read;
the upload path then refuses a body that differs from the declaration. ChainTime is the
chain layer's (:mod:`shardkey.chain.chaintime`).
"""

from __future__ import annotations

from shardkey.chain.chaintime import ChainTime
from shardkey.httpauth import verify_headers

__all__ = ["ChainTime", "verify_headers"]

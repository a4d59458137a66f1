"""Signed HTTP requests at the holder: chain time, header pre-checks, digest verification.

The scheme and both checks are :mod:`shardkey.httpauth`'s: :func:`precheck` runs before
a single body byte is read; uploads are streamed to disk, so :func:`verify_digest`
checks the signature given the body's SHA-256.
"""

from __future__ import annotations

from shardkey.httpauth import precheck, verify_request_digest
from shardkey.service.chaintime import ChainTime

__all__ = ["ChainTime", "precheck", "verify_digest"]

# ChainTime is the service core's (shardkey.service.chaintime); the checks live in
# shardkey.httpauth (one implementation for whole and streamed bodies).
verify_digest = verify_request_digest

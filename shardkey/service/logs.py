"""Structured logging of the services: one JSON object per line on stderr.

Pass event fields with ``extra={"fields": {...}}``. Only identifiers (dataset and request
ids, shard indices, addresses, transaction hashes) are logged, never a key, a wrap key, a
fragment, a token's plaintext or a passphrase; as a second line of defence a field whose
name says it holds a secret is written as ``"[redacted]"``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

REDACTED = "[redacted]"
# Field names (lower case, any part of the name) that never carry a loggable value.
SECRET_FIELD_PARTS = ("passphrase", "password", "secret", "private_key", "wrap_key", "mnemonic", "rpc_url")
# Third-party loggers that would echo RPC URLs (which carry API keys) or payloads at INFO.
QUIET_LOGGERS = ("web3", "urllib3", "asyncio", "httpx", "httpcore")
RESERVED = ("ts", "level", "logger", "msg", "exc")


def is_secret_field(name: str) -> bool:
    """Whether a log field called ``name`` must not be written."""
    lowered = name.lower()
    return any(part in lowered for part in SECRET_FIELD_PARTS)


class JsonLinesFormatter(logging.Formatter):
    """Formats a record as ``{"ts", "level", "logger", "msg", ...fields, "exc"}``."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line for ``record``."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update({str(k): (REDACTED if is_secret_field(str(k)) else v)
                          for k, v in fields.items() if k not in RESERVED})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Route every logger (uvicorn's included) to stderr as JSON lines at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLinesFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)

"""The holder's access log: successful shard transfers are DEBUG, refusals stay INFO."""

from __future__ import annotations

import logging

import pytest

from holder_agent.service import QuietTransfers

SHARD = "/v1/datasets/0x" + "ab" * 32 + "/shards/3"


def _line(method: str, path: str, status: int) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                             ("127.0.0.1:5000", method, path, "1.1", status), None)


@pytest.mark.parametrize(("method", "path", "status", "kept"), [
    ("PUT", SHARD, 201, False), ("GET", SHARD + "?request=7", 200, False),
    ("PUT", "/v1/datasets/0x" + "ab" * 32 + "/bundle", 201, False),
    ("GET", "/v1/repair/datasets/0x" + "ab" * 32 + "/shards/3", 200, False),
    ("GET", SHARD + "?request=7", 403, True), ("PUT", SHARD, 401, True), ("PUT", SHARD, 507, True),
    ("GET", "/v1/health", 200, True), ("GET", "/v1/datasets/0x" + "ab" * 32 + "/receipts", 200, True),
])
def test_successful_transfers_are_dropped_at_info(method: str, path: str, status: int, kept: bool) -> None:
    root = logging.getLogger()
    level = root.level
    try:
        root.setLevel(logging.INFO)
        record = _line(method, path, status)
        assert QuietTransfers().filter(record) is kept
        assert record.levelno == logging.INFO
        root.setLevel(logging.DEBUG)  # at DEBUG every line is written, transfers as DEBUG
        record = _line(method, path, status)
        assert QuietTransfers().filter(record)
        assert record.levelno == (logging.INFO if kept else logging.DEBUG)
    finally:
        root.setLevel(level)

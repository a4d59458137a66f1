"""Exit-code mapping, confirmation defaults, and the JSON-lines formatter of the service core."""

from __future__ import annotations

import io
import json
import logging

import pytest
from pydantic import ValidationError

from holder_agent.settings import HolderSettings
from kos.errors import KosConfigError
from kos.settings import KosSettings
from shardkey.chain.errors import ChainError, DeploymentError, TransactionReverted
from shardkey.keys import KeyFileError
from shardkey.service.exits import BindError, IdentityError, ServiceExit, service_exit_code
from shardkey.service.logs import REDACTED, JsonLinesFormatter, configure_logging
from shardkey.settings import (
    DEVNET_CHAIN_ID,
    MAX_CONFIRMATIONS,
    SAFE_CONFIRMATIONS,
    SettingsError,
    default_confirmations,
    resolve_confirmations,
)


@pytest.mark.parametrize(("error", "code"), [
    (SettingsError("x"), ServiceExit.CONFIG), (KeyFileError("x"), ServiceExit.CONFIG),
    (DeploymentError("x"), ServiceExit.CONFIG), (KosConfigError("x"), ServiceExit.CONFIG),
    (IdentityError("x"), ServiceExit.IDENTITY), (BindError("x"), ServiceExit.BIND),
    (ChainError("x"), ServiceExit.UNEXPECTED), (TransactionReverted("X"), ServiceExit.UNEXPECTED),
    (RuntimeError("x"), ServiceExit.UNEXPECTED),
])
def test_one_exit_code_table(error: BaseException, code: ServiceExit) -> None:
    assert service_exit_code(error) is code
    assert [int(c) for c in ServiceExit] == [0, 1, 2, 3, 4]


def test_confirmations_default_is_fast_only_on_the_devnet() -> None:
    assert DEVNET_CHAIN_ID == 31337
    assert default_confirmations(31337) == 1
    for chain_id in (1, 10, 137, 8453, 42161, 11155111, 17000, 31338):
        assert default_confirmations(chain_id) == SAFE_CONFIRMATIONS == 12
    assert resolve_confirmations(None, 11155111) == 12
    assert resolve_confirmations(0, 11155111) == 0  # an explicit setting always wins
    assert resolve_confirmations(3, 31337) == 3


@pytest.mark.parametrize("cls", [KosSettings, HolderSettings])
def test_both_services_leave_confirmations_unset_by_default(cls: type[KosSettings | HolderSettings]) -> None:
    assert cls.model_fields["confirmations"].default is None


def _format(record_fields: dict[str, object], msg: str = "event") -> dict[str, object]:
    record = logging.LogRecord("kos.service", logging.INFO, __file__, 1, msg, (), None)
    record.fields = record_fields
    out: dict[str, object] = json.loads(JsonLinesFormatter().format(record))
    return out


def test_formatter_writes_one_json_object_with_the_fields() -> None:
    out = _format({"request": 7, "dataset": "0xab"})
    assert out["msg"] == "event" and out["level"] == "INFO" and out["logger"] == "kos.service"
    assert out["request"] == 7 and out["dataset"] == "0xab"
    assert str(out["ts"]).endswith("+00:00")


def test_formatter_redacts_fields_named_as_secrets_and_keeps_reserved_keys() -> None:
    out = _format({"passphrase": "hunter2", "wrap_key": "00ff", "rpc_url": "https://x/v3/KEY",
                   "private_key": "0x1", "msg": "overwritten?", "address": "0xabc"})
    assert out["passphrase"] == out["wrap_key"] == out["rpc_url"] == out["private_key"] == REDACTED
    assert out["msg"] == "event" and out["address"] == "0xabc"
    assert "hunter2" not in json.dumps(out)


def test_configure_logging_quiets_httpx_and_routes_to_one_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("info")
        assert logging.getLogger("httpx").level == logging.WARNING
        assert logging.getLogger("web3").level == logging.WARNING
        logging.getLogger("httpx").info("HTTP Request: POST https://rpc.example/v3/SECRETKEY")
        logging.getLogger("uvicorn.error").info("started")
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert [line["msg"] for line in lines] == ["started"]
    finally:
        root.handlers[:], root.level = saved


@pytest.mark.parametrize("cls", [KosSettings, HolderSettings])
def test_both_services_bound_confirmations_by_the_one_shared_limit(
        cls: type[KosSettings | HolderSettings]) -> None:
    def problems(value: int) -> list[object]:
        with pytest.raises(ValidationError) as info:  # other required fields are missing
            cls(confirmations=value)
        return [e["type"] for e in info.value.errors() if e["loc"] == ("confirmations",)]

    assert MAX_CONFIRMATIONS == 256
    assert problems(MAX_CONFIRMATIONS) == []
    assert problems(MAX_CONFIRMATIONS + 1) == ["less_than_equal"]

"""Settings of a KOS committee member: a TOML file (written by the devnet) plus ``SHARDKEY_KOS_*``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import SettingsConfigDict

from shardkey.service.health import DEFAULT_MAX_LAG_BLOCKS, DEFAULT_MAX_POLL_AGE
from shardkey.settings import MAX_CONFIRMATIONS, ServiceSettings, load_settings

REMOVED = ("committee_member", "replicas", "takeover_after")
"""Settings of the single-key KOS, gone now that every ``kos`` process is a committee member."""
REMOVED_MESSAGE = ("{key} is no longer a KOS setting (every kos process is a committee member; "
                   "replicas and leader turns are gone): delete the line")


class KosSettings(ServiceSettings):
    """One KOS committee member's configuration."""

    model_config = SettingsConfigDict(env_prefix="SHARDKEY_KOS_", extra="forbid",
                                      use_attribute_docstrings=True)

    deployment: Path
    """The deployment JSON file (contract addresses, chain id, start block)."""

    rpc_url: str | None = None
    """RPC endpoint; overrides the deployment file's ``rpc_url`` when set."""

    rpc_urls: list[str] = Field(default_factory=list)
    """RPC endpoints in fail-over order; override the deployment file's (and ``rpc_url``) when set."""

    max_fee_gwei: float | None = Field(default=None, gt=0)
    """Ceiling of the EIP-1559 max fee per gas, in gwei: a transaction is not sent above it
    (and a stuck one is replaced with higher fees only up to it); unset: no ceiling."""

    account_key: Path
    """This member's Ethereum account (devnet hex key file or eth-account keystore): an account of
    its committee epoch (it needs no KOS_ROLE)."""

    hpke_keystore: Path
    """The member's own HPKE keystore: its public key is the member's key in the committee epoch
    (owners seal its shares of their wrap keys to it)."""

    passphrase_file: Path | None = None
    """File holding the keystore passphrase; when unset, ``SHARDKEY_KOS_PASSPHRASE`` is read."""

    state_dir: Path
    """Where this member keeps its event cursor, pending requests and heartbeat (private, 0700)."""

    confirmations: int | None = Field(default=None, ge=0, le=MAX_CONFIRMATIONS)
    """Blocks an event must be buried under before the KOS acts on it; unset: 1 on the
    devnet (chain id 31337), 12 on any other chain (``shardkey.settings.default_confirmations``); at most
    ``shardkey.settings.MAX_CONFIRMATIONS`` (256)."""

    poll_interval: float = Field(default=0.25, gt=0, le=60)
    """Seconds between two polls of the chain."""

    workers: int = Field(default=8, ge=1, le=64)
    """Requests settled in parallel within one poll (threads: the work is mostly RPC round trips)."""

    issue_rate_limit: int = Field(default=8, ge=1)
    """Requests per requester this member releases shares of within ``issue_rate_window`` when
    the policy is open to anyone (no requester list); more are deferred (logged, released
    later), not dropped."""

    issue_rate_window: int = Field(default=3600, ge=1)
    """Seconds of chain time of the release rate window."""

    metrics_host: str = "127.0.0.1"
    """Interface of the metrics port."""

    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """TCP port serving ``/health`` and ``/metrics`` (Prometheus); unset: no HTTP port."""

    health_max_poll_age: float = Field(default=DEFAULT_MAX_POLL_AGE, gt=0)
    """Seconds since the last successful chain poll after which ``/health`` answers 503."""

    health_max_lag_blocks: int = Field(default=DEFAULT_MAX_LAG_BLOCKS, ge=0)
    """Blocks the event cursor may fall behind the head (less the confirmation depth)
    before ``/health`` answers 503."""

    log_level: str = "INFO"
    """Python logging level name (DEBUG, INFO, WARNING, ERROR)."""

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in REMOVED:
                if key in data:
                    raise PydanticCustomError("removed_setting", REMOVED_MESSAGE, {"key": key})
        return data

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"unknown log level {value!r}")
        return level


def load(path: Path | None) -> KosSettings:
    """Read a KOS settings file; environment variables win over it."""
    return load_settings(KosSettings, path)

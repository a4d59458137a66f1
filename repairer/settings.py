"""Settings of the repair service: a TOML file plus ``SHARDKEY_REPAIRER_*`` variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from shardkey.audit.health import DEFAULT_REPAIR_MARGIN
from shardkey.service.health import DEFAULT_MAX_LAG_BLOCKS, DEFAULT_MAX_POLL_AGE
from shardkey.settings import MAX_CONFIRMATIONS, ServiceSettings, load_settings


class RepairerSettings(ServiceSettings):
    """The repair service's configuration."""

    model_config = SettingsConfigDict(env_prefix="SHARDKEY_REPAIRER_", extra="forbid",
                                      use_attribute_docstrings=True)

    deployment: Path
    """The deployment JSON file (contract addresses, chain id, start block)."""

    rpc_url: str | None = None
    """RPC endpoint; overrides the deployment file's ``rpc_url`` when set."""

    rpc_urls: list[str] = Field(default_factory=list)
    """RPC endpoints in fail-over order; override the deployment file's (and ``rpc_url``) when set."""

    max_fee_gwei: float | None = Field(default=None, gt=0)
    """Ceiling of the EIP-1559 max fee per gas, in gwei; unset: no ceiling."""

    account_key: Path
    """The service's Ethereum account (devnet hex key file or eth-account keystore); needs
    REPAIRER_ROLE on the HolderRegistry and ETH for gas. It holds no dataset key."""

    passphrase_file: Path | None = None
    """File holding the keystore passphrase; when unset, ``SHARDKEY_REPAIRER_PASSPHRASE`` is read
    (only when ``account_key`` is a keystore)."""

    state_dir: Path
    """Where the service keeps its event cursor and heartbeat (private, 0700)."""

    confirmations: int | None = Field(default=None, ge=0, le=MAX_CONFIRMATIONS)
    """Blocks an event must be buried under before the service acts on it; unset: 1 on the
    devnet (chain id 31337), 12 on any other chain."""

    poll_interval: float = Field(default=1.0, gt=0, le=60)
    """Seconds between two polls of the chain."""

    scan_interval: float = Field(default=60.0, gt=0, le=86400)
    """Seconds between two full scans of every Active dataset (a missed event or a restart
    loses nothing: the next scan finds what it missed)."""

    repair_margin: int = Field(default=DEFAULT_REPAIR_MARGIN, ge=0, le=255)
    """A stripe with at most ``k + repair_margin`` good shards is repaired (shards of a
    holder that is not Active are always moved)."""

    same_region: bool = False
    """Place a rebuilt shard in a region its stripe already uses when no holder of another
    region is free (``shardkey repair --same-region``)."""

    retry_cap: float = Field(default=300.0, gt=0)
    """Longest wait, in seconds, before a dataset whose repair failed is tried again (the wait
    doubles with each failure in a row, from twice ``poll_interval``)."""

    metrics_host: str = "127.0.0.1"
    """Interface of the metrics port."""

    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """TCP port serving ``/health`` and ``/metrics`` (Prometheus); unset: no HTTP port."""

    health_max_poll_age: float = Field(default=DEFAULT_MAX_POLL_AGE, gt=0)
    """Seconds since the last successful poll after which ``/health`` answers 503."""

    health_max_lag_blocks: int = Field(default=DEFAULT_MAX_LAG_BLOCKS, ge=0)
    """Blocks the event cursor may fall behind the head (less the confirmation depth)
    before ``/health`` answers 503."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Level of the JSON-lines log written to stderr."""

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


def load(path: Path | None) -> RepairerSettings:
    """Read a repairer settings file; environment variables win over it."""
    return load_settings(RepairerSettings, path)

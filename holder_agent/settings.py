"""Settings of the holder agent: a TOML file, overridden by ``SHARDKEY_HOLDER_*`` variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from shardkey.service.health import DEFAULT_MAX_LAG_BLOCKS, DEFAULT_MAX_POLL_AGE
from shardkey.settings import MAX_CONFIRMATIONS, ServiceSettings

GIB = 1024**3
MIB = 1024**2
KIB = 1024


class HolderSettings(ServiceSettings):
    """Everything one holder agent needs; unknown keys are refused."""

    model_config = SettingsConfigDict(env_prefix="SHARDKEY_HOLDER_", extra="forbid",
                                      use_attribute_docstrings=True)

    deployment: Path
    """The deployment JSON file (contract addresses, chain id, start block)."""

    rpc_url: str | None = None
    """RPC endpoint overriding the one in the deployment file."""

    rpc_urls: list[str] = Field(default_factory=list)
    """RPC endpoints in fail-over order; override the deployment file's (and ``rpc_url``) when set."""

    max_fee_gwei: float | None = Field(default=None, gt=0)
    """Ceiling of the EIP-1559 max fee per gas, in gwei: a transaction is not sent above it
    (and a stuck one is replaced with higher fees only up to it); unset: no ceiling."""

    account_key: Path
    """The holder's Ethereum account: a devnet hex key file or an eth-account keystore
    (unlocked with the same passphrase as the HPKE keystore)."""

    hpke_keystore: Path
    """The holder's encrypted HPKE keystore (the key registered on chain)."""

    passphrase_file: Path | None = None
    """File holding the keystore passphrase; when unset, ``SHARDKEY_HOLDER_PASSPHRASE``."""

    data_dir: Path
    """Where staged uploads, committed datasets and the event cursor live."""

    listen_host: str = "127.0.0.1"
    """Interface the HTTP API listens on."""

    listen_port: int = Field(ge=1, le=65535)
    """TCP port of the HTTP API."""

    confirmations: int | None = Field(default=None, ge=0, le=MAX_CONFIRMATIONS)
    """Blocks an event must be buried under before the agent acts on it; unset: 1 on the
    devnet (chain id 31337), 12 on any other chain (``shardkey.settings.default_confirmations``); at most
    ``shardkey.settings.MAX_CONFIRMATIONS`` (256)."""

    poll_interval: float = Field(default=0.25, gt=0, le=60)
    """Seconds between polls of the chain for new events."""

    staging_ttl: int = Field(default=3600, ge=1)
    """Seconds staged uploads wait for a registration before they are deleted."""

    quota_bytes: int = Field(default=10 * GIB, ge=0)
    """Maximum staged bytes per uploading account."""

    max_body_bytes: int = Field(default=256 * MIB, ge=1)
    """Largest accepted upload body (larger ones get 413)."""

    staging_total_bytes: int = Field(default=64 * GIB, ge=0)
    """Maximum staged bytes of all uploading accounts together (accounts are free to
    create, so the per-account quota alone does not bound the disk); 507 once full."""

    staging_min_charge: int = Field(default=4 * KIB, ge=0)
    """Bytes every staged file counts for at least, against both quotas (an empty file
    still costs an inode)."""

    pending_custody_blocks: int = Field(default=7200, ge=1)
    """Blocks after its registration during which a registration naming this holder is
    retried while its uploads are incomplete (about a day at 12 s blocks); then it is
    dropped from ``pending_custody.json`` and logged."""

    delivery_rate_limit: int = Field(default=8, ge=1)
    """Fragment deliveries per requester within ``delivery_rate_window`` when the policy is
    open to anyone (no requester list); more are deferred, not dropped."""

    delivery_rate_window: int = Field(default=3600, ge=1)
    """Seconds of chain time of the delivery rate window."""

    max_deferred_deliveries: int = Field(default=1024, ge=1)
    """Deferred deliveries kept at most (``deferred_deliveries.json``); a request deferred
    while the list is full is dropped and logged (``delivery dropped: deferred list full``),
    not answered."""

    capacity_bytes: int | None = Field(default=None, ge=0)
    """Space allocated to this holder: stored plus staged bytes never exceed it (uploads
    past it get 507 ``capacity_exceeded``); unset: only the disk and ``reserve_free_bytes``
    bound it. Shown in ``/v1/health`` as ``storage.allocated``."""

    reserve_free_bytes: int = Field(default=1 * GIB, ge=0)
    """Free disk space the holder keeps for itself: an upload that would leave less free
    on the ``data_dir`` filesystem gets 507 ``capacity_exceeded``."""

    drop_cache: bool = True
    """Shards leave the page cache once they are on disk (each upload is written to disk
    as it is sealed) and whenever a read of one (a download, a repair read, a re-hash)
    closes. A holder stores far more than its memory and serves each shard rarely; set
    false on a host whose memory should keep recently stored shards."""

    health_max_poll_age: float = Field(default=DEFAULT_MAX_POLL_AGE, gt=0)
    """Seconds since the last successful chain poll after which ``/v1/health`` answers 503."""

    health_max_lag_blocks: int = Field(default=DEFAULT_MAX_LAG_BLOCKS, ge=0)
    """Blocks the event cursor may fall behind the head (less the confirmation depth)
    before ``/v1/health`` answers 503."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Level of the JSON-lines log written to stderr."""

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

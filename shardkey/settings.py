"""Service settings: a TOML file plus environment variables (which win).

Each service defines one pydantic-settings class with a docstring per field;
:func:`load_settings` reads the file, lets the environment override it, and turns any
validation failure into a :class:`SettingsError` naming the offending key.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from shardkey.errors import UsageError

S = TypeVar("S", bound="ServiceSettings")


class SettingsError(UsageError):
    """A settings file or variable is missing, malformed or out of range."""


class ServiceSettings(BaseSettings):
    """Base: environment variables override values from the file."""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)


def load_settings(cls: type[S], path: Path | None, **overrides: Any) -> S:
    """Load ``cls`` from a TOML file (relative paths resolved against its folder)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise SettingsError(f"{path}: no such settings file") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: not valid TOML ({exc})") from None
        base = Path(path).resolve().parent
        for name, field in cls.model_fields.items():
            if name in data and field.annotation in (Path, Path | None) and isinstance(data[name], str):
                candidate = Path(data[name]).expanduser()
                data[name] = candidate if candidate.is_absolute() else base / candidate
    data.update(overrides)
    try:
        return cls(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "?"
        where = f"{path}: " if path else ""
        raise SettingsError(f"{where}{key}: {first['msg']}") from None


# --- confirmation depth ---------------------------------------------------------------

DEVNET_CHAIN_ID = 31337
"""anvil's chain id, as ``shardkey devnet up`` starts it: the only chain with the fast default."""

DEVNET_CONFIRMATIONS = 1
"""Confirmation depth on the devnet: one block, so the demo and the tests stay quick."""

SAFE_CONFIRMATIONS = 12
"""Confirmation depth on every other chain, unless the settings say otherwise.

Post-merge Ethereum and its testnets (Sepolia, Holesky) reorganise one or two blocks at a
time; the deepest seen on the beacon chain was seven (May 2022). Optimistic and ZK rollups
reorganise their unsafe head rarely and shallowly. Twelve blocks (~2.4 min at 12 s) covers
those with margin; it is not finality (two epochs, 64+ blocks), and chains known for deep
reorgs (Polygon PoS has had reorgs of over a hundred blocks) need ``confirmations`` set
explicitly (docs/KOS.md, docs/HOLDER_API.md).
"""


MAX_CONFIRMATIONS = 256
"""Largest ``confirmations`` a service accepts (the KOS and the holder alike).

It covers the deepest public reorgs seen (Polygon PoS, ~150 blocks) with margin, and it
is the EVM's ``BLOCKHASH`` window: an event deeper than that is as final as the chain
gets for contracts too. A larger value only delays every release by more blocks.
"""


def default_confirmations(chain_id: int) -> int:
    """The confirmation depth a service uses on ``chain_id`` when its settings leave it unset."""
    return DEVNET_CONFIRMATIONS if chain_id == DEVNET_CHAIN_ID else SAFE_CONFIRMATIONS


def resolve_confirmations(configured: int | None, chain_id: int) -> int:
    """The depth a service acts at: the configured one, else :func:`default_confirmations`."""
    return configured if configured is not None else default_confirmations(chain_id)

"""``HOME/devnet.json`` as the CLI reads it: no process, chain or key code is imported here
(every ``shardkey`` command run against a devnet reads it, and most need nothing else of it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def members(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every service of a ``devnet.json``: KOS committee members, holders, then the repairer (if any)."""
    repairer = data.get("repairer")
    return [*data["kos_members"], *data["holders"], *([repairer] if repairer else [])]


@dataclass
class DevnetInfo:
    """The parsed ``devnet.json``."""

    home: Path
    data: dict[str, Any]

    @property
    def rpc_url(self) -> str:
        return str(self.data["rpc_url"])

    @property
    def deployment_path(self) -> Path:
        return Path(self.data["deployment"])

    def key_file(self, name: str) -> Path | None:
        """Key file of a named account, or None."""
        entry = self.data["accounts"].get(name)
        return Path(entry["key_file"]) if entry else None

    def address_names(self) -> dict[str, str]:
        """Checksummed address to account name."""
        return {v["address"]: k for k, v in self.data["accounts"].items()}

    def services(self) -> list[dict[str, Any]]:
        """KOS committee members, holders, then the repairer."""
        return members(self.data)

    @classmethod
    def load(cls, home: Path) -> DevnetInfo | None:
        path = Path(home) / "devnet.json"
        if not path.exists():
            return None
        return cls(Path(home), json.loads(path.read_text()))

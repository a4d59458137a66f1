"""Where the ShardKey contracts live on a chain: a small JSON file.

``shardkey network deploy`` writes it; every service and command reads it.
docs/OPERATIONS.md documents every key. No KOS key travels in it: owners deal wrap keys to the
members of the ``KosCommittee``'s current epoch, whose HPKE keys are on chain.
``rpc_urls`` (optional) lists several endpoints of the chain, tried in order with
fail-over (:class:`shardkey.chain.rpc.JsonRpc`); ``rpc_url`` alone is one endpoint, and
a file with only ``rpc_urls`` takes its first as ``rpc_url``.
A file written before the committee (no ``contracts.KosCommittee``, or a ``kos_public_key``: the
single-key KOS it named is gone) is refused with the fix: redeploy.

```json
{"rpc_url": "...", "rpc_urls": ["...", "..."], "chain_id": 31337, "start_block": 1,
 "contracts": {"HolderRegistry": "0x..", "DatasetRegistry": "0x..",
               "RetrievalCoordinator": "0x..", "KosCommittee": "0x.."}}
```
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from eth_utils.address import is_address, to_checksum_address

from shardkey.chain.errors import DeploymentError
from shardkey.fsutil import atomic_write_bytes

COMMITTEE = "KosCommittee"
REQUIRED_CONTRACTS = ("HolderRegistry", "DatasetRegistry", "RetrievalCoordinator", COMMITTEE)
REDEPLOY = ("redeploy with 'shardkey network deploy' (or 'shardkey devnet up' on a devnet), start a KOS "
            "committee epoch ('shardkey kos committee start') and use the new deployment file")


@dataclass(frozen=True)
class Deployment:
    """RPC endpoint, chain id, contract addresses and the block to start watching from."""

    rpc_url: str
    chain_id: int
    start_block: int
    holder_registry: str
    dataset_registry: str
    retrieval_coordinator: str
    kos_committee: str
    rpc_urls: tuple[str, ...] = ()

    @property
    def urls(self) -> list[str]:
        """Every RPC endpoint in fail-over order (``rpc_urls``, else ``rpc_url`` alone)."""
        return list(self.rpc_urls) if self.rpc_urls else [self.rpc_url]

    @property
    def addresses(self) -> dict[str, str]:
        """Contract name to address."""
        return {"HolderRegistry": self.holder_registry, "DatasetRegistry": self.dataset_registry,
                "RetrievalCoordinator": self.retrieval_coordinator, COMMITTEE: self.kos_committee}

    def to_json(self) -> dict[str, object]:
        """The file form."""
        data: dict[str, object] = {"rpc_url": self.rpc_url, "chain_id": self.chain_id,
                                   "start_block": self.start_block, "contracts": self.addresses}
        if self.rpc_urls:
            data["rpc_urls"] = list(self.rpc_urls)
        return data

    @classmethod
    def from_json(cls, data: dict[str, object], source: str = "deployment") -> Deployment:
        """Parse the file form, naming the bad key on error."""
        try:
            contracts = data["contracts"]
            if not isinstance(contracts, dict):
                raise DeploymentError(f"{source}: contracts must be a mapping")
            if COMMITTEE not in contracts or "kos_public_key" in data:
                what = "names a single KOS key (kos_public_key)" if "kos_public_key" in data \
                    else f"has no contracts.{COMMITTEE}"
                raise DeploymentError(f"{source} {what}: it was written before the KOS became a threshold "
                                      f"committee, and no KOS serves it any more; {REDEPLOY}")
            for name in REQUIRED_CONTRACTS:
                if not is_address(contracts.get(name, "")):
                    raise DeploymentError(f"{source}: contracts.{name} is not an address")
            urls = _rpc_urls(data, source)
            return cls(rpc_url=str(data["rpc_url"]) if "rpc_url" in data else urls[0],
                       rpc_urls=tuple(urls), chain_id=int(data["chain_id"]),  # type: ignore[call-overload]
                       start_block=int(data.get("start_block", 0)),  # type: ignore[call-overload]
                       holder_registry=to_checksum_address(contracts["HolderRegistry"]),
                       dataset_registry=to_checksum_address(contracts["DatasetRegistry"]),
                       retrieval_coordinator=to_checksum_address(contracts["RetrievalCoordinator"]),
                       kos_committee=to_checksum_address(contracts[COMMITTEE]))
        except KeyError as exc:
            raise DeploymentError(f"{source}: missing key {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise DeploymentError(f"{source}: {exc}") from None

    def save(self, path: Path) -> None:
        """Write the file form to ``path`` (atomically, 0644: it holds nothing secret)."""
        atomic_write_bytes(path, (json.dumps(self.to_json(), indent=2) + "\n").encode(), mode=0o644)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        """Read a deployment file."""
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise DeploymentError(f"{path}: no such deployment file") from None
        except json.JSONDecodeError as exc:
            raise DeploymentError(f"{path}: not JSON ({exc})") from None
        return cls.from_json(data, str(path))


def _rpc_urls(data: dict[str, object], source: str) -> list[str]:
    """``rpc_urls`` as a list of non-empty strings ([] when absent and ``rpc_url`` is set)."""
    raw = data.get("rpc_urls")
    if raw is None:
        if "rpc_url" not in data:
            raise KeyError("rpc_url")
        return []
    if not isinstance(raw, list) or not raw or not all(isinstance(u, str) and u for u in raw):
        raise DeploymentError(f"{source}: rpc_urls must be a non-empty list of URLs")
    return [str(u) for u in raw]

"""Where the ShardKey contracts live on a chain: a small JSON file.

``shardkey network deploy`` writes it; every service and command reads it. The KOS HPKE
public key (to which owners seal wrap keys) travels in the same file, so the KOS key
exists before the deployment file does. docs/OPERATIONS.md documents every key.

```json
{"rpc_url": "...", "chain_id": 31337, "start_block": 1, "kos_public_key": "<hex>",
 "contracts": {"HolderRegistry": "0x..", "DatasetRegistry": "0x..",
               "RetrievalCoordinator": "0x.."}}
```
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from eth_utils.address import is_address, to_checksum_address

from shardkey.chain.artifacts import CONTRACT_NAMES
from shardkey.chain.errors import DeploymentError
from shardkey.fsutil import atomic_write_bytes


@dataclass(frozen=True)
class Deployment:
    """RPC endpoint, chain id, contract addresses and the block to start watching from."""

    rpc_url: str
    chain_id: int
    start_block: int
    holder_registry: str
    dataset_registry: str
    retrieval_coordinator: str
    kos_public_key: bytes = b""

    @property
    def addresses(self) -> dict[str, str]:
        """Contract name to address."""
        return {"HolderRegistry": self.holder_registry, "DatasetRegistry": self.dataset_registry,
                "RetrievalCoordinator": self.retrieval_coordinator}

    def to_json(self) -> dict[str, object]:
        """The file form."""
        return {"rpc_url": self.rpc_url, "chain_id": self.chain_id,
                "start_block": self.start_block, "contracts": self.addresses,
                "kos_public_key": self.kos_public_key.hex()}

    @classmethod
    def from_json(cls, data: dict[str, object], source: str = "deployment") -> Deployment:
        """Parse the file form, naming the bad key on error."""
        try:
            contracts = data["contracts"]
            if not isinstance(contracts, dict):
                raise DeploymentError(f"{source}: contracts must be a mapping")
            for name in CONTRACT_NAMES:
                if not is_address(contracts.get(name, "")):
                    raise DeploymentError(f"{source}: contracts.{name} is not an address")
            return cls(rpc_url=str(data["rpc_url"]), chain_id=int(data["chain_id"]),  # type: ignore[call-overload]
                       start_block=int(data.get("start_block", 0)),  # type: ignore[call-overload]
                       holder_registry=to_checksum_address(contracts["HolderRegistry"]),
                       dataset_registry=to_checksum_address(contracts["DatasetRegistry"]),
                       retrieval_coordinator=to_checksum_address(contracts["RetrievalCoordinator"]),
                       kos_public_key=bytes.fromhex(str(data.get("kos_public_key", ""))))
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

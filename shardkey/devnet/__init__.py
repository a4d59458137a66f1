"""The embedded devnet: anvil, the contracts, a KOS and holder agents on loopback."""

from shardkey.devnet.network import DevnetInfo, down, status, up

__all__ = ["DevnetInfo", "down", "status", "up"]

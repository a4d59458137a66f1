"""The embedded devnet: anvil, the contracts, a KOS and holder agents on loopback.

:mod:`shardkey.devnet.network` starts and stops it (``up``, ``down``, ``status``);
:mod:`shardkey.devnet.info` reads its ``devnet.json`` without importing any of that.
"""

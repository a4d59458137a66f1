"""ShardKey repair service.

Watches holder status (``HolderExiting``, ``HolderFailed``, ``HolderRetired``) and shard
events (``ShardReleased``, ``ShardIntegrityFailureProven``, ``DatasetActivated``,
``ShardRepaired``), rescans every Active dataset every ``scan_interval`` seconds, and
repairs each dataset that is due (:mod:`shardkey.client.repair_need`) with the one
keyless repair implementation, :class:`shardkey.client.repair.Repairer`, as an account
holding REPAIRER_ROLE. It holds no key of any dataset and cannot re-deal fragments: a
dataset whose fragment holders include a non-Active holder is reported for its owner to
run ``shardkey redeal``. Imports ``shardkey`` only (never ``kos`` or ``holder_agent``).
See docs/OPERATIONS.md, "Running the repair service".
"""

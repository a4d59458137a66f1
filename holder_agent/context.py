"""What a holder's request handlers share: the chain, its account, its storage, and the
caches that spare a download chain calls (:class:`ApiContext`, :class:`DownloadCache`).
Both servers of the public port use it: the data plane (:mod:`holder_agent.dataplane`) and
the application (:mod:`holder_agent.api`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount

from holder_agent.auth import ChainTime
from holder_agent.leaving import Leaving
from holder_agent.placement import PlacementCache
from holder_agent.receipts import ServedSigner, ShardDigests
from holder_agent.storage import Store
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.model import DatasetInfo, RequestInfo
from shardkey.httpauth import NonceCache
from shardkey.ratelimit import RateLimiter
from shardkey.service.health import WatchHealth
from shardkey.service.metrics import HolderMetrics

# Downloads judge a request against the chain head read at most this often (seconds of
# host monotonic time; ChainTime, shared with the signature clock), and a request's chain
# state is kept only for the block it was read at: a request completed, expired or revoked
# at block B is refused by every download that starts HEAD_MAX_AGE after the holder's
# node has B (plus one head read). docs/HOLDER_API.md, docs/THREAT_MODEL.md.
HEAD_MAX_AGE = 0.25
# A download about to be refused for a state the chain may have moved past since the cached
# head (a request just approved, a dataset just activated, a shard just placed here) is
# judged again on a head at most this old: the cache never refuses what the chain allows,
# and refusals cost at most one head read per REFUSAL_HEAD_AGE, however many arrive.
REFUSAL_HEAD_AGE = 0.02
REPAIR_READS = 10_000  # shards one repairer may read per hour of chain time


@dataclass
class ApiContext:
    """What the endpoints need: the chain, this holder's account, its storage."""

    chain: ShardKeyChain
    account: LocalAccount
    store: Store
    clock: ChainTime
    nonces: NonceCache
    max_body_bytes: int
    downloads: DownloadCache = field(default_factory=lambda: DownloadCache())
    placements: PlacementCache = field(default_factory=PlacementCache)
    repair_reads: RateLimiter = field(default_factory=lambda: RateLimiter(REPAIR_READS, 3600))
    digests: ShardDigests = field(default_factory=ShardDigests)
    metrics: HolderMetrics = field(default_factory=HolderMetrics)
    health: WatchHealth = field(default_factory=WatchHealth)
    confirmations: int = 1
    cursor_block: Callable[[], int] = lambda: 0
    leaving: Leaving | None = None  # the exit check: uploads refused while leaving
    _served: ServedSigner | None = None

    def __post_init__(self) -> None:
        if self.digests.known is None:
            self.digests.known = self.store.committed_digest

    @property
    def served(self) -> ServedSigner:
        """The signer of this holder's ``ShardServed`` receipts."""
        if self._served is None:
            self._served = ServedSigner(self.chain.retrievals.domain, self.account)
        return self._served

    @property
    def address(self) -> str:
        """This holder's address."""
        return str(self.account.address)


class DownloadCache:
    """What serving a shard reads, kept so a fetch does not cost chain calls per shard.

    - A request's requester and dataset, and an Active dataset's parameters (placement,
      shard count), and ``isOpen``: all kept only for the block they were read at. The
      block is the shared chain head (:class:`ChainTime`, re-read at most every
      ``HEAD_MAX_AGE`` seconds), and they are read again on a new block. Request ids are
      sequential, so a reorg can give an id to another request (another requester):
      nothing read about a request id outlives its block.

    Shard digests are kept by :class:`holder_agent.receipts.ShardDigests`.
    """

    MAX_ENTRIES = 4096
    _GUARDS = 64

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._views: dict[int, tuple[int, RequestInfo, DatasetInfo]] = {}
        self._open: dict[int, tuple[int, bool]] = {}
        self._guards = [threading.Lock() for _ in range(self._GUARDS)]

    def guard(self, request_id: int) -> threading.Lock:
        """Held while a request's state is read, so the downloads of one request that all miss
        on a new block share one set of chain reads instead of each making its own."""
        return self._guards[request_id % self._GUARDS]

    def view(self, request_id: int, block: int) -> tuple[RequestInfo, DatasetInfo] | None:
        with self._lock:
            hit = self._views.get(request_id)
        return (hit[1], hit[2]) if hit is not None and hit[0] == block else None

    def keep_view(self, request_id: int, block: int, info: RequestInfo, dataset: DatasetInfo) -> None:
        """Keep, for this block, a request whose dataset was Active."""
        with self._lock:
            if len(self._views) >= self.MAX_ENTRIES:
                self._views.clear()
            self._views[request_id] = (block, info, dataset)

    def is_open(self, request_id: int, block: int) -> bool | None:
        with self._lock:
            hit = self._open.get(request_id)
        return hit[1] if hit is not None and hit[0] == block else None

    def keep_open(self, request_id: int, block: int, is_open: bool) -> None:
        with self._lock:
            if len(self._open) >= self.MAX_ENTRIES:
                self._open.clear()
            self._open[request_id] = (block, is_open)

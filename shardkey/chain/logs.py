"""Log queries in ranges the provider accepts: the one ``eth_getLogs`` loop of ShardKey.

Every hosted provider caps ``eth_getLogs``: by blocks per query, by results per answer,
and some answer "beyond current head" when their view of the chain lags. :func:`scan`
walks a block range in chunks and yields each chunk's logs in order; a refused chunk
is asked again smaller (the provider's suggested range when it gives one, its stated
cap, else half), and after successes the chunk grows back slowly, never past a hard
cap a provider stated. A chunk is yielded once and the next starts right after it, so
no block is skipped or read twice. The watcher and every look-up use it
(:meth:`shardkey.chain.connection.ChainClient.scan_logs`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from shardkey.chain.errors import ChainError
from shardkey.chain.retry import RangeRefusal, range_refusal
from shardkey.chain.rpc import RpcError

log = logging.getLogger(__name__)

T = TypeVar("T")
# an eth_getLogs filter's topics: by position, one value, any of several, or any (None)
Topics = list[str | list[str] | None]

DEFAULT_SPAN = 2000  # blocks per query to start with
GROW_AFTER = 4  # successes in a row before the span grows
MAX_REFUSALS = 40  # refusals in a row before giving up on a range (a 2000-block span halves to 1 in 11)


class ProviderBehind(ChainError):
    """The provider's head is behind the first block asked for: try again later."""


@dataclass
class RangeAdapter:
    """How many blocks to ask for next; shared across scans so what was learnt is kept."""

    span: int = DEFAULT_SPAN
    max_span: int = DEFAULT_SPAN
    hard_cap: int | None = None  # the largest span a provider said it accepts
    _successes: int = 0

    def succeeded(self, asked: int) -> None:
        """A query of ``asked`` blocks was answered: after a few, grow the span by a quarter."""
        self._successes += 1
        if asked < self.span or self._successes < GROW_AFTER:
            return
        self._successes = 0
        limit = self.max_span if self.hard_cap is None else min(self.max_span, self.hard_cap)
        self.span = min(limit, self.span + max(1, self.span // 4))

    def refused(self, refusal: RangeRefusal, start: int, end: int) -> int:
        """A query of ``[start, end]`` was refused: the new ``end`` to ask for (>= start)."""
        self._successes = 0
        asked = end - start + 1
        if refusal.suggested is not None:
            low, high = refusal.suggested
            size = high - low + 1
            if low == start and start <= high < end:
                new = high - start + 1
            elif 0 < size < asked:
                new = size
            else:
                new = asked // 2
        elif refusal.cap is not None and refusal.cap < asked:
            new = refusal.cap
            self.hard_cap = refusal.cap
        else:
            new = asked // 2
        if refusal.kind == "cap" and refusal.cap is None:
            self.hard_cap = max(1, new)
        self.span = max(1, min(new, self.span))
        return start + self.span - 1


def scan(fetch: Callable[[int, int], list[T]], start: int, end: int, adapter: RangeAdapter,
         head: Callable[[], int]) -> Iterator[tuple[int, int, list[T]]]:
    """``(first, last, logs)`` chunks covering ``[start, end]`` in order, each block once.

    ``fetch(first, last)`` runs one query and raises :class:`RpcError` when refused;
    ``head()`` reads the provider's head after a "beyond current head" refusal: the chunk
    is cut to that head (never past it); when the head is before ``start`` of a chunk
    :class:`ProviderBehind` is raised (the caller polls again later, nothing was skipped).
    """
    position = start
    refusals = 0
    while position <= end:
        last = min(end, position + adapter.span - 1)
        try:
            logs = fetch(position, last)
        except RpcError as exc:
            refusal = range_refusal(exc.rpc_message)
            if refusal is None:
                raise
            refusals += 1
            if refusals > MAX_REFUSALS:
                raise ChainError(f"the provider refused every range from block {position}: "
                                 f"{exc.rpc_message[:200]}") from None
            if refusal.kind == "head":
                provider_head = head()
                if provider_head < position:
                    raise ProviderBehind(f"the provider's head {provider_head} is behind block "
                                         f"{position}; polling again later") from None
                end = min(end, provider_head)
                log.warning("provider head lags: reading up to its head", extra={
                    "block": position, "head": provider_head})
                continue
            if last == position:
                raise ChainError(f"the provider refused the single block {position}: "
                                 f"{exc.rpc_message[:200]}") from None
            adapter.refused(refusal, position, last)
            log.info("log range refused (%s): %d blocks from %d now", refusal.kind, adapter.span, position)
            continue
        refusals = 0
        adapter.succeeded(last - position + 1)
        yield position, last, logs
        position = last + 1


def log_filter(addresses: str | list[str], first: int, last: int,
               topics: Topics | None = None) -> dict[str, Any]:
    """The ``eth_getLogs`` filter object of one chunk."""
    query: dict[str, Any] = {"address": addresses, "fromBlock": hex(first), "toBlock": hex(last)}
    if topics:
        query["topics"] = topics
    return query

"""Which provider answers are worth another try, how long to wait, and which refuse a range.

Hosted RPC providers rate-limit (HTTP 429, HTTP 402 when a plan's quota is spent,
JSON-RPC ``-32005 limit exceeded``), often saying how long to wait (a ``Retry-After``
header, ``backoff_seconds`` in the error data), and fail now and then (5xx, dropped
connections). :func:`classify` turns one answer into a :class:`Transient` (wait and try
again, maybe on another URL) or None (a real answer, good or bad); :class:`RetryPolicy`
bounds the attempts and the total time. :class:`shardkey.chain.rpc.JsonRpc` applies both
to every call. :func:`range_refusal` recognises the providers' refusals of an
``eth_getLogs`` range, which :mod:`shardkey.chain.logs` answers with a smaller range.
This module does no I/O.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shardkey.service.loop import Backoff

RATE_LIMIT_CODE = -32005  # EIP-1474 "limit exceeded" (Infura, Alchemy, QuickNode...)
RATE_LIMIT_STATUSES = (429, 402)
RATE_LIMIT_WORDS = ("rate limit", "too many requests", "exceeded its throughput", "capacity exceeded",
                    "compute units")
MAX_HINT = 60.0  # seconds: a provider's wait hint above this is clipped (we would rather fail over)


_HEX_RANGE = re.compile(r"\[\s*(0x[0-9a-fA-F]+)\s*,\s*(0x[0-9a-fA-F]+)\s*\]")
_NUMBER = re.compile(r"(\d+)")
# Refusals naming a hard block-range cap (the number in the message, when there is one).
_CAP_PHRASES = ("exceed maximum block range", "exceeds max block range", "query exceeds max block range",
                "block range is too large", "block range too large", "range limit exceeded",
                "max range")
_SIZE_PHRASES = ("query returned more than", "log response size exceeded", "response size exceeded",
                 "too many results", "response is too big", "limit the query to")
_HEAD_PHRASES = ("block range extends beyond current head block", "beyond current head",
                 "block number exceeds latest", "after last accepted block")
_OTHER_RANGE_WORDS = ("block range", "range of blocks", "too many logs", "logs limit")


@dataclass(frozen=True)
class RangeRefusal:
    """A provider refused an ``eth_getLogs`` range. ``kind``: ``size`` (too many results),
    ``cap`` (a hard block-range limit, ``cap`` blocks when it said), ``head`` (the range
    passes the provider's head), ``unknown`` (some other range complaint: halve).
    ``suggested``: the (from, to) range the provider said would work."""

    kind: str
    suggested: tuple[int, int] | None = None
    cap: int | None = None


def range_refusal(message: str) -> RangeRefusal | None:
    """The range refusal a JSON-RPC error message states, or None when it states none."""
    lowered = message.lower()
    suggested = None
    if (found := _HEX_RANGE.search(message)) is not None:
        suggested = (int(found.group(1), 16), int(found.group(2), 16))
    if any(p in lowered for p in _HEAD_PHRASES):
        return RangeRefusal("head")
    if any(p in lowered for p in _SIZE_PHRASES):
        return RangeRefusal("size", suggested)
    if any(p in lowered for p in _CAP_PHRASES):
        tail = lowered.split("range", 1)[-1]
        numbers = [int(n) for n in _NUMBER.findall(tail) if int(n) > 0]
        return RangeRefusal("cap", suggested, numbers[0] if numbers and suggested is None else None)
    if any(p in lowered for p in _OTHER_RANGE_WORDS):
        return RangeRefusal("unknown", suggested)
    return None


@dataclass(frozen=True)
class Transient:
    """A failure another attempt may not see: ``kind`` for logs and metrics, ``hint`` the wait
    the provider asked for (seconds, None: our own back-off), ``bench`` whether to set the
    URL aside for a while (it is down, or keeps refusing us)."""

    kind: str
    detail: str
    hint: float | None = None
    bench: bool = False


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    try:
        return min(MAX_HINT, max(0.0, float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return min(MAX_HINT, max(0.0, when - (time.time() if now is None else now)))


def _data_hint(data: Any) -> float | None:
    """``backoff_seconds`` (or ``retry_after``) in JSON-RPC error data."""
    if not isinstance(data, Mapping):
        return None
    for key in ("backoff_seconds", "retry_after", "retryAfter"):
        value = data.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return min(MAX_HINT, max(0.0, float(value)))
    return None


def classify(status: int, headers: Mapping[str, str], reply: Any) -> Transient | None:
    """Whether one HTTP answer (status, headers, parsed JSON body or None) is transient.

    A JSON-RPC error that only says a log range is too large is *not* transient here:
    :mod:`shardkey.chain.logs` answers it by asking for a smaller range.
    """
    hint = retry_after(headers.get("retry-after"))
    error = reply.get("error") if isinstance(reply, dict) else None
    if status in RATE_LIMIT_STATUSES:
        detail = str(error.get("message", "")) if isinstance(error, dict) else ""
        data_hint = _data_hint(error.get("data")) if isinstance(error, dict) else None
        return Transient(f"http_{status}", f"HTTP {status} {detail}".strip(),
                         hint if hint is not None else data_hint)
    if status >= 500:
        return Transient("http_5xx", f"HTTP {status}", hint, bench=True)
    if not isinstance(error, dict):
        return None
    message = str(error.get("message", ""))
    data_hint = _data_hint(error.get("data"))
    if range_refusal(message) is not None:
        return None
    lowered = message.lower()
    if error.get("code") == RATE_LIMIT_CODE or data_hint is not None or \
            any(word in lowered for word in RATE_LIMIT_WORDS):
        return Transient("rate_limited", message[:200], data_hint if data_hint is not None else hint)
    return None


@dataclass
class RetryPolicy:
    """At most ``attempts`` tries within ``total`` seconds; waits from ``backoff`` unless the
    provider gave a hint. ``sleep`` and ``clock`` are injectable (tests do not sleep)."""

    attempts: int = 10  # hosted providers answer 429 in streaks; ``total`` bounds the time
    total: float = 30.0
    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.2, cap=8.0))
    bench_for: float = 30.0  # seconds a failing URL is set aside when another one exists
    bench_after: int = 3  # rate-limit answers in a row from one URL before it is set aside
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def delay(self, failures: int, transient: Transient) -> float:
        """Seconds to wait after the ``failures``-th failure in a row: the provider's hint is a
        floor, never a reason to retry sooner than the back-off (``Retry-After: 0`` in a burst
        of 429s would otherwise spend every attempt in the same instant)."""
        backoff = self.backoff.delay(failures)
        return backoff if transient.hint is None else max(transient.hint, backoff)

    def gives_up(self, failures: int, started: float, wait: float) -> bool:
        """Whether ``failures`` attempts so far (and ``wait`` more seconds) exhaust the budget."""
        return failures >= self.attempts or self.clock() + wait - started > self.total

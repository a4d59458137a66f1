"""EIP-1559 fees under a ceiling, and the raised fees of a replacement transaction (pure).

A transaction offers ``maxFeePerGas`` (at most this per gas, base fee included) and
``maxPriorityFeePerGas`` (the tip). We offer twice the current base fee plus the tip,
which stays valid through six full blocks of base-fee rises. A node accepts a
replacement (same nonce) only when both fields rise by at least 10 % (geth; some
clients want 12.5 %): :func:`bumped_fees` raises them by 12.5 %, rounded up, and to the
current market when that is higher.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shardkey.chain.errors import ChainError
from shardkey.errors import UsageError

GWEI = 10**9
BUMP_NUM, BUMP_DEN = 9, 8  # +12.5 %


class FeeCeilingError(ChainError):
    """The chain's fees are above the configured ``max_fee_gwei``: nothing was sent."""

    exit_code = UsageError.exit_code


def _gwei(wei: int) -> str:
    return f"{wei / GWEI:.3f}".rstrip("0").rstrip(".") + " gwei"


def _bump(value: int) -> int:
    return -(-value * BUMP_NUM // BUMP_DEN)  # ceiling division: never a hair under 12.5 %


def max_fee_per_gas(base_fee: int, tip: int, ceiling: int | None) -> int:
    """The ``maxFeePerGas`` a new transaction offers: twice the base fee plus the tip, cut to
    ``ceiling`` (wei) when set. What an account must be able to pay per gas (funds check)."""
    max_fee = 2 * base_fee + tip
    return max_fee if ceiling is None else min(max_fee, ceiling)


def initial_fees(base_fee: int, tip: int, ceiling: int | None) -> dict[str, int]:
    """Fees of a new transaction (:func:`max_fee_per_gas`), :class:`FeeCeilingError` when
    even ``ceiling`` cannot pay the base fee and the tip."""
    if ceiling is not None and base_fee + tip > ceiling:
        raise FeeCeilingError(
            f"the chain's fee is {_gwei(base_fee)} base + {_gwei(tip)} tip per gas, above "
            f"max_fee_gwei ({_gwei(ceiling)}); nothing was sent: raise max_fee_gwei or wait "
            "for fees to fall")
    return {"maxFeePerGas": max_fee_per_gas(base_fee, tip, ceiling), "maxPriorityFeePerGas": tip}


def bumped_fees(sent: Mapping[str, Any], base_fee: int, tip: int, ceiling: int | None) -> dict[str, int]:
    """Fees of a replacement for a transaction sent with ``sent``'s fees: each at least
    12.5 % above, and no lower than today's market; :class:`FeeCeilingError` when the
    raised max fee would pass ``ceiling``."""
    new_tip = max(_bump(int(sent["maxPriorityFeePerGas"])), tip)
    new_max = max(_bump(int(sent["maxFeePerGas"])), 2 * base_fee + new_tip)
    if ceiling is not None and new_max > ceiling:
        lowest = _bump(int(sent["maxFeePerGas"]))
        if lowest > ceiling:
            raise FeeCeilingError(f"a replacement needs a max fee of {_gwei(lowest)}, above "
                                  f"max_fee_gwei ({_gwei(ceiling)})")
        new_max = ceiling
        new_tip = min(new_tip, new_max)
    return {"maxFeePerGas": new_max, "maxPriorityFeePerGas": new_tip}

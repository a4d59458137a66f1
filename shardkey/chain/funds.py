"""Whether an account can pay for its transactions: one rule for start-up and the CLI."""

from __future__ import annotations

from eth_utils.address import to_checksum_address

from shardkey.chain.connection import ChainClient
from shardkey.chain.rpc import quantity

GAS_RESERVE = 500_000
"""Gas an account must be able to pay, at the max fee per gas its transactions offer, to be
considered funded: about two custody confirmations or one token issue with margin
(docs/OPERATIONS.md)."""


def balance_wei(client: ChainClient, address: str) -> int:
    """The balance of ``address`` at the latest block, in wei."""
    return quantity(client.raw("eth_getBalance", [to_checksum_address(address), "latest"]))


def minimum_wei(client: ChainClient) -> int:
    """The balance below which an account is refused: ``GAS_RESERVE`` at the EIP-1559 max fee
    per gas the client would offer now (twice the base fee plus the tip, under its
    ``max_fee_gwei``): what the node checks a sender's balance against."""
    return GAS_RESERVE * max(1, client.max_fee_per_gas())


def funds_problem(client: ChainClient, address: str) -> str | None:
    """None when ``address`` can pay for gas, else what is missing (amounts in ETH)."""
    have, need = balance_wei(client, address), minimum_wei(client)
    if have >= need:
        return None
    return (f"account {to_checksum_address(address)} holds {format_eth(have)} ETH, less than the "
            f"{format_eth(need)} ETH its transactions need at the current max fee per gas")


def format_eth(wei: int) -> str:
    """Wei as ETH with up to 6 decimals."""
    return f"{wei / 10**18:.6f}".rstrip("0").rstrip(".") or "0"

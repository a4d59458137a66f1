"""The funds check prices gas at the EIP-1559 max fee the account's transactions would offer."""

from __future__ import annotations

from eth_account import Account

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.connection import ChainClient
from shardkey.chain.funds import GAS_RESERVE, funds_problem, minimum_wei
from shardkey.chain.rpc import quantity

GWEI = 10**9


def _base_fee(chain: ShardKeyChain, wei: int) -> tuple[int, int]:
    """Mine a block whose base fee is ``wei``; (base fee, the node's tip) now."""
    chain.client.raw("anvil_setNextBlockBaseFeePerGas", [hex(wei)])
    chain.client.raw("evm_mine", [])
    base = int(chain.client.latest_block()["baseFeePerGas"])
    return base, quantity(chain.client.raw("eth_maxPriorityFeePerGas", []))


def test_an_account_must_afford_the_max_fee_not_the_gas_price(automine_chain: ShardKeyChain) -> None:
    chain = automine_chain
    base, tip = _base_fee(chain, 20 * GWEI)
    gas_price = quantity(chain.client.raw("eth_gasPrice", []))
    assert gas_price < 2 * base + tip  # eth_gasPrice is about base + tip: not what a sender offers
    assert minimum_wei(chain.client) == GAS_RESERVE * (2 * base + tip)

    account = Account.create()  # enough at eth_gasPrice, not at the max fee the node checks
    chain.client.raw("anvil_setBalance", [account.address, hex(GAS_RESERVE * gas_price + 1)])
    problem = funds_problem(chain.client, account.address)
    assert problem is not None and "max fee per gas" in problem


def test_the_max_fee_ceiling_bounds_what_the_funds_check_asks(automine_chain: ShardKeyChain) -> None:
    chain = automine_chain
    _base_fee(chain, 20 * GWEI)
    capped = ChainClient(chain.client.rpc_url, max_fee_gwei=25)
    assert minimum_wei(capped) == GAS_RESERVE * 25 * GWEI
    account = Account.create()
    capped.raw("anvil_setBalance", [account.address, hex(GAS_RESERVE * 25 * GWEI)])
    assert funds_problem(capped, account.address) is None
    assert funds_problem(chain.client, account.address) is not None  # uncapped: 2 * 20 gwei + tip

"""A holder paces its expecting polls by the chain's block interval, read off the chain's
timestamps at start: every 50 ms for 5 s on a devnet of 0.2 s blocks, a tenth of a block for
several blocks on a chain of 12 s blocks (a public testnet), whose provider a flat 50 ms for
5 s asked 100 times per store and left before the registration was deep enough to handle.
Its own anvil: the 12 s blocks would slow every agent assembled after them on a shared one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from holder_agent.expectations import registration_of
from shardkey.chain.chaintime import INTERVAL_SPAN, block_interval
from tests.support.devchain import running_anvil


@pytest.fixture(scope="module")
def anvil_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_anvil(tmp_path_factory) as url:
        yield url


def test_expecting_polls_follow_the_block_interval(world, tmp_path: Path) -> None:
    fast = world.make_agent(tmp_path / "fast", poll_interval=30.0)
    assert (fast.store.expected.poll, fast.store.expected.window) == (0.05, 5.0)
    fast.store.expected.expect(registration_of(b"\x01" * 32))
    assert fast.poll_interval() == 0.05

    stamp = world.now()
    for n in range(1, INTERVAL_SPAN + 2):  # a history of 12 s blocks (the anvil's own 0.2 s
        world.dev.set_next_timestamp(stamp + 12 * n)  # ticks may add a block of +1 s among them)
        world.dev.mine()
    assert 11.0 < block_interval(world.dev.client) <= 12.0

    slow = world.make_agent(tmp_path / "slow", poll_interval=30.0, confirmations=2)
    assert slow.store.expected.poll == pytest.approx(1.2, abs=0.1)
    assert slow.store.expected.window == pytest.approx(5 * 12, abs=5)  # 2 confirmations + 3 blocks
    assert slow.poll_interval() == 30.0  # nothing expected
    slow.store.expected.expect(registration_of(b"\x02" * 32))
    assert slow.poll_interval() == pytest.approx(1.2, abs=0.1)

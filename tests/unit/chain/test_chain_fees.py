"""EIP-1559 fees under the max_fee_gwei ceiling and the fees of a replacement."""

from __future__ import annotations

import pytest

from shardkey.chain.fees import GWEI, FeeCeilingError, bumped_fees, initial_fees


def test_fees_offer_twice_the_base_plus_tip_cut_to_the_ceiling() -> None:
    assert initial_fees(10 * GWEI, GWEI, None) == {"maxFeePerGas": 21 * GWEI, "maxPriorityFeePerGas": GWEI}
    assert initial_fees(10 * GWEI, GWEI, 15 * GWEI)["maxFeePerGas"] == 15 * GWEI


def test_fees_above_the_ceiling_are_refused_naming_the_setting() -> None:
    with pytest.raises(FeeCeilingError, match=r"40 gwei base \+ 2 gwei tip.*max_fee_gwei \(30 gwei\)"):
        initial_fees(40 * GWEI, 2 * GWEI, 30 * GWEI)


def test_a_replacement_raises_both_fees_by_at_least_an_eighth() -> None:
    sent = {"maxFeePerGas": 21 * GWEI + 1, "maxPriorityFeePerGas": GWEI + 1}
    new = bumped_fees(sent, base_fee=1, tip=1, ceiling=None)
    assert new["maxFeePerGas"] * 8 >= sent["maxFeePerGas"] * 9
    assert new["maxPriorityFeePerGas"] * 8 >= sent["maxPriorityFeePerGas"] * 9
    market = bumped_fees(sent, base_fee=50 * GWEI, tip=3 * GWEI, ceiling=None)
    assert market == {"maxFeePerGas": 103 * GWEI, "maxPriorityFeePerGas": 3 * GWEI}


def test_a_replacement_stops_at_the_ceiling() -> None:
    sent = {"maxFeePerGas": 20 * GWEI, "maxPriorityFeePerGas": GWEI}
    assert bumped_fees(sent, 50 * GWEI, GWEI, 25 * GWEI)["maxFeePerGas"] == 25 * GWEI
    with pytest.raises(FeeCeilingError, match=r"22\.5 gwei, above max_fee_gwei"):
        bumped_fees(sent, GWEI, GWEI, 22 * GWEI)

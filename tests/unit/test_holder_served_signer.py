"""The holder's fast ShardServed signer makes eip712's digest and signature, byte for byte."""

from __future__ import annotations

import os

import pytest
from eth_account import Account

from holder_agent.receipts import ServedSigner
from shardkey.chain import eip712

HOLDER = Account.from_key("0x" + "22" * 32)


@pytest.mark.parametrize("domain", [eip712.Domain(31337, "0x" + "5f" * 20),
                                    eip712.Domain(1, "0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A")])
def test_served_receipts_match_eip712(domain: eip712.Domain) -> None:
    signer = ServedSigner(domain, HOLDER)
    for request_id, index in ((0, 0), (1, 7), (2**256 - 1, 2**32 - 1), (12345, 99)):
        dataset_id, digest = os.urandom(32), os.urandom(32)
        message = eip712.served_message(request_id, dataset_id, index, digest)
        expected = eip712.digest(domain, "ShardServed", message)
        assert signer.digest(request_id, dataset_id, index, digest) == expected
        signature = signer.sign(request_id, dataset_id, index, digest)
        assert signature == eip712.sign(domain, "ShardServed", message, HOLDER)
        assert eip712.recover(domain, "ShardServed", message, signature) == HOLDER.address


def test_served_receipt_refuses_fields_out_of_range() -> None:
    signer = ServedSigner(eip712.Domain(31337, "0x" + "5f" * 20), HOLDER)
    for args in ((1, bytes(31), 0, bytes(32)), (1, bytes(32), 2**32, bytes(32)), (1, bytes(32), 0, b"")):
        with pytest.raises(ValueError, match="ShardServed"):
            signer.digest(*args)

"""The KosCommittee bindings against the real contract on anvil, driven by the pure committee
crypto: an owner's deal sealed to real members' HPKE keys, members' signed envelopes sealed to a
holder, the holder's checks and combine, and the on-chain proof of a member's wrong share. The
Python and Solidity digests and commitments agree over random fields."""

from __future__ import annotations

import os

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardkey.chain.committee import KosCommittee, recover_signer, sign_envelope
from shardkey.chain.errors import TransactionReverted
from shardkey.crypto import committee as kc
from shardkey.crypto.committee_envelope import (
    ShareEnvelope,
    decode_envelope,
    encode_envelope,
    envelope_digest,
)
from shardkey.crypto.errors import ShareCommitmentMismatch
from shardkey.crypto.hpke import (
    HpkePrivateKey,
    HpkeSuiteId,
    committee_release_info,
    committee_share_info,
    seal,
)


def _addr(account: LocalAccount) -> bytes:
    return bytes.fromhex(account.address[2:])


@pytest.fixture
def committee(devchain):
    """Epoch 1 of three members with X25519 keys, threshold 2."""
    contract = KosCommittee(devchain.client, devchain.deployment.require_kos_committee())
    members = [devchain.account(f"member-{i}") for i in range(3)]
    keys = [HpkePrivateKey.generate(os.urandom, HpkeSuiteId.X25519) for _ in members]
    contract.start_epoch(devchain.accounts["admin"], [m.address for m in members],
                         [k.public_key_bytes() for k in keys], 2)
    return contract, members, keys


def test_epochs_read_back(devchain, committee) -> None:
    contract, members, keys = committee
    assert contract.current_epoch() == 1
    epoch = contract.committee()
    assert epoch.members == tuple(m.address for m in members) and epoch.threshold == 2
    assert epoch.hpke_public_keys == tuple(k.public_key_bytes() for k in keys)
    assert [epoch.index_of(m.address) for m in members] == [0, 1, 2]
    assert contract.member_index(1, members[2].address) == 2 and contract.threshold(1) == 2
    assert contract.is_member(1, members[0].address)
    assert not contract.is_member(1, devchain.account("x").address)
    with pytest.raises(TransactionReverted, match="CommitteeInvalidThreshold"):
        contract.start_epoch(devchain.accounts["admin"], [members[0].address],
                             [keys[0].public_key_bytes()], 2)


def test_store_release_combine_and_prove_a_wrong_share(devchain, committee) -> None:
    contract, members, member_keys = committee
    chain_id, dataset_id, request_id = devchain.client.chain_id, os.urandom(32), 41
    holders = devchain.register_holders(2)
    wrap_keys = [os.urandom(32) for _ in holders]
    deal = kc.deal(chain_id, dataset_id, 1, [h.address for h in holders], wrap_keys, 2, 3, os.urandom)
    # store: the owner seals share (j, i) to member i
    sealed = [[seal(member_keys[i].public_key_bytes(), deal.shares[j][i],
                    committee_share_info(chain_id, dataset_id, _addr(h), _addr(m), 1))
               for i, m in enumerate(members)] for j, h in enumerate(holders)]
    # release to holder 0: each member opens its share and seals a signed envelope to the holder;
    # member 1 cheats with a wrong share
    holder, holder_key = holders[0], devchain.holder_keys["holder-1"]
    released = []
    for i, m in enumerate(members):
        share = member_keys[i].open(sealed[0][i], committee_share_info(chain_id, dataset_id, _addr(holder),
                                                                       _addr(m), 1))
        if i == 1:
            share = bytes(b ^ 0xFF for b in share)
        env = sign_envelope(m, ShareEnvelope(request_id, dataset_id, _addr(holder), _addr(m), 1, share),
                            chain_id, contract.address)
        info = committee_release_info(chain_id, request_id, dataset_id, holder.address, m.address)
        released.append(seal(holder_key.public_key_bytes(), encode_envelope(env), info))
    # the holder opens, checks and combines; the wrong share is named and proven on chain
    epoch = contract.committee(1)
    verified, bad = [], []
    for i, m in enumerate(members):
        info = committee_release_info(chain_id, request_id, dataset_id, holder.address, m.address)
        slot = kc.ShareSlot(chain_id, contract.address, request_id, dataset_id, holder.address, m.address,
                            epoch.index_of(m.address), 1)
        try:
            verified.append(kc.verify_share(holder_key.open(released[i], info), slot, deal.commitments[0][i],
                                            recover_signer))
        except ShareCommitmentMismatch as exc:
            assert exc.member == members[1].address
            bad.append(exc.member)
            evidence = exc.envelope
            assert isinstance(evidence, ShareEnvelope)
            receipt = contract.prove_wrong_share(holder, evidence, deal.commitments[0][i], deal.proof(0, i),
                                                 deal.root)
            [event] = contract.contract.process_receipt("ShareFaultProven", receipt)
            assert (event.args["requestId"], event.args["member"], event.args["holder"]) == (
                request_id, members[1].address, holder.address)
    assert bad == [members[1].address]
    assert kc.combine_shares(verified, epoch.threshold, bad) == wrap_keys[0]
    assert contract.share_fault_proven(request_id, members[1].address, holder.address)
    assert not contract.share_fault_proven(request_id, members[0].address, holder.address)
    # an honest member's share cannot be proven wrong
    honest = decode_envelope(holder_key.open(released[0], committee_release_info(
        chain_id, request_id, dataset_id, holder.address, members[0].address)))
    with pytest.raises(TransactionReverted, match="ShareMatchesCommitment"):
        contract.prove_wrong_share(holder, honest, deal.commitments[0][0], deal.proof(0, 0), deal.root)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request_id=st.integers(0, 2**256 - 1), dataset_id=st.binary(min_size=32, max_size=32),
       epoch=st.integers(0, 2**64 - 1), share=st.binary(min_size=32, max_size=32),
       holder_key=st.binary(min_size=32, max_size=32).filter(lambda b: 0 < int.from_bytes(b) < 2**255),
       member_index=st.integers(0, 2))
def test_python_and_solidity_digests_agree(devchain, committee, request_id: int, dataset_id: bytes,
                                           epoch: int, share: bytes, holder_key: bytes,
                                           member_index: int) -> None:
    contract, members, _ = committee
    holder = Account.from_key(holder_key).address
    env = sign_envelope(members[member_index],
                        ShareEnvelope(request_id, dataset_id, holder, members[member_index].address, epoch,
                                      share),
                        devchain.client.chain_id, contract.address)
    digest = envelope_digest(env, devchain.client.chain_id, contract.address)
    assert contract.share_digest(env) == digest
    assert recover_signer(digest, env.signature) == members[member_index].address
    assert contract.share_commitment(dataset_id, holder, member_index, epoch, share) == kc.share_commitment(
        devchain.client.chain_id, dataset_id, holder, member_index, epoch, share)

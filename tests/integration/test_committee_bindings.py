"""The KosCommittee bindings against the real contracts on anvil, driven by the pure committee
crypto: an owner's deal of a registered dataset sealed to real members' HPKE keys (root computed
on chain), members' signed envelopes sealed to the holders and released for a real request (the
t_k-th issues the marker tokens), the holder's checks and combine, the on-chain proof of a
member's wrong share against the stored root, and members' denials. The Python and Solidity
digests and commitments agree over random fields."""

from __future__ import annotations

import functools
import os
import threading

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.committee import KosCommittee, recover_signer, sign_envelope
from shardkey.chain.connection import ChainClient, SentTx
from shardkey.chain.errors import ChainError, TransactionReverted
from shardkey.chain.model import DatasetParams, RequestStatus
from shardkey.chain.watcher import EventWatcher
from shardkey.crypto import committee as kc
from shardkey.crypto.committee_envelope import (
    ShareEnvelope,
    committee_marker,
    decode_envelope,
    encode_envelope,
    envelope_digest,
    parse_committee_marker,
)
from shardkey.crypto.errors import ShareCommitmentMismatch
from shardkey.crypto.hpke import (
    HpkePrivateKey,
    HpkeSuiteId,
    committee_release_info,
    committee_share_info,
    seal,
)
from shardkey.policy.model import Policy
from tests.support.hostile_rpc import HostileRpc, ProxyConfig, hostile_rpc
from tests.support.waiting import wait_until


def _addr(account: LocalAccount) -> bytes:
    return bytes.fromhex(account.address[2:])


@pytest.fixture
def committee(devchain):
    """Epoch 1 of three members with X25519 keys, threshold 2."""
    contract = KosCommittee(devchain.client, devchain.deployment.kos_committee)
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


K, P, SHARD_SIZE, STRIPES = 3, 2, 1024, 2


def _register_committee_dataset(devchain, holders: list[LocalAccount], epoch: int) -> bytes:
    """A Pending dataset whose two fragment holders' wrap key slots are the committee marker."""
    chain: ShardKeyChain = devchain.chain
    owner = devchain.account("owner")
    salt, count = os.urandom(32), STRIPES * (K + P)
    fragment = holders[:2]
    params = DatasetParams(merkle_root=keccak(b"root"), k=K, p=P, shard_size=SHARD_SIZE,
                           plaintext_length=STRIPES * K * SHARD_SIZE, shard_count=count, threshold=2,
                           shard_holders=tuple(h.address for h in holders[:5]),
                           fragment_holders=tuple(h.address for h in fragment))
    chain.datasets.register(owner, salt, params, Policy(), [keccak(bytes([i])) for i in range(count)],
                            [committee_marker(epoch)] * len(fragment),
                            [keccak(b"fr%d" % i) for i in range(len(fragment))])
    return chain.datasets.compute_dataset_id(owner.address, salt)


def _confirm(devchain, holders: list[LocalAccount], dataset_id: bytes) -> None:
    for h in holders[:5]:
        devchain.chain.datasets.confirm_custody(h, dataset_id)


def _request(devchain, dataset_id: bytes) -> int:
    chain: ShardKeyChain = devchain.chain
    chain.retrievals.request_retrieval(devchain.account("requester"), dataset_id, b"epk")
    return chain.retrievals.request_count()


def test_deal_release_combine_and_prove_a_wrong_share(devchain, committee, tmp_path) -> None:
    """Owner deals (root computed on chain), members open their shares from the DealRegistered
    event and release through the bindings, the t_k-th release issues the marker tokens; the
    holder reads the releases, combines, and proves member 1's wrong share against the stored root.
    A watcher over ``chain.contracts`` sees the committee's events."""
    contract, members, member_keys = committee
    chain: ShardKeyChain = devchain.chain
    assert chain.committee is not None and chain.committee.address == contract.address
    assert chain.retrievals.has_kos_role(contract.address)  # deploy_all grants it
    chain_id, owner = devchain.client.chain_id, devchain.account("owner")
    holders = devchain.register_holders(5)
    fragment = holders[:2]
    dataset_id = _register_committee_dataset(devchain, holders, 1)
    wrap_keys = [os.urandom(32) for _ in fragment]
    deal = kc.deal(chain_id, dataset_id, 1, [h.address for h in fragment], wrap_keys, 2, 3, os.urandom)
    sealed = [seal(member_keys[i].public_key_bytes(), deal.shares[j][i],
                   committee_share_info(chain_id, dataset_id, _addr(h), _addr(m), 1))
              for j, h in enumerate(fragment) for i, m in enumerate(members)]
    assert contract.deal(dataset_id, 1) == (0, b"\0" * 32)
    receipt = contract.register_deal(owner, dataset_id, 1, deal.flat_commitments(), sealed)
    assert contract.deal(dataset_id, 1) == (1, deal.root)
    with pytest.raises(TransactionReverted) as again:
        contract.register_deal(owner, dataset_id, 1, deal.flat_commitments(), sealed)
    assert again.value.error == "DealAlreadyRegistered"
    record = contract.deal_record(dataset_id, 1, devchain.deployment.start_block)
    assert (record.dataset_id, record.fragment_epoch, record.committee_epoch, record.root) == (
        dataset_id, 1, 1, deal.root)
    assert record.block_number == receipt["blockNumber"]
    assert record.commitment(1, 2, 3) == deal.commitments[1][2] and record.sealed_share(1, 2, 3) == sealed[5]
    with pytest.raises(ChainError, match="no committee deal"):
        contract.deal_record(dataset_id, 2, devchain.deployment.start_block)
    _confirm(devchain, holders, dataset_id)
    request_id = _request(devchain, dataset_id)

    # each member opens its share of every holder's key from the event and releases them all;
    # member 1 cheats on holder 0
    def release(i: int) -> None:
        m, envelopes = members[i], []
        for j, h in enumerate(fragment):
            share = member_keys[i].open(record.sealed_share(j, i, 3),
                                        committee_share_info(chain_id, dataset_id, _addr(h), _addr(m), 1))
            expected = record.commitment(j, i, 3)
            assert kc.share_commitment(chain_id, dataset_id, h.address, i, 1, share) == expected
            if i == 1 and j == 0:
                share = bytes(b ^ 0xFF for b in share)
            env = sign_envelope(m, ShareEnvelope(request_id, dataset_id, _addr(h), _addr(m), 1, share),
                                chain_id, contract.address)
            info = committee_release_info(chain_id, request_id, dataset_id, h.address, m.address)
            envelopes.append(seal(devchain.holder_keys[f"holder-{j + 1}"].public_key_bytes(),
                                  encode_envelope(env), info))
        devchain.client.wait(contract.submit_release(m, request_id, envelopes))

    release(1)
    assert contract.release_state(request_id, members[1].address) == 1
    assert contract.release_counts(request_id) == (1, 0)
    assert not chain.retrievals.token_issued(request_id, fragment[0].address)
    release(0)
    assert contract.release_counts(request_id) == (2, 0)
    assert all(chain.retrievals.token_issued(request_id, h.address) for h in fragment)
    tokens = chain.retrievals.contract.get_logs("TokenIssued", devchain.deployment.start_block,
                                                requestId=request_id)
    assert [(bytes(t.args["token"]), t.args["holder"]) for t in tokens] == [
        (committee_marker(1), h.address) for h in fragment]
    assert parse_committee_marker(bytes(tokens[0].args["token"])) == 1
    with pytest.raises(TransactionReverted) as twice:
        contract.submit_release(members[0], request_id, [b"x", b"y"])
    assert twice.value.error == "ReleaseAlreadyDone"

    # the holder: every release from the chain, opened, verified, combined; the wrong one proven
    holder, holder_key = fragment[0], devchain.holder_keys["holder-1"]
    releases = contract.releases(request_id, devchain.deployment.start_block)
    assert [(r.member, r.released, r.reason, len(r.sealed_envelopes)) for r in releases] == [
        (members[1].address, True, 0, 2), (members[0].address, True, 0, 2)]
    epoch = contract.committee(1)
    verified, bad = [], []
    for r in releases:
        info = committee_release_info(chain_id, request_id, dataset_id, holder.address, r.member)
        i = epoch.index_of(r.member)
        slot = kc.ShareSlot(chain_id, contract.address, request_id, dataset_id, holder.address, r.member,
                            i, 1)
        try:
            verified.append(kc.verify_share(holder_key.open(r.sealed_envelopes[0], info), slot,
                                            record.commitment(0, i, 3), recover_signer))
        except ShareCommitmentMismatch as exc:
            bad.append(exc.member)
            assert isinstance(exc.envelope, ShareEnvelope)
            rows = kc.commitment_rows(record.commitments, len(fragment), 3)
            proof = kc.commitment_proof([h.address for h in fragment], rows, 0, i)
            receipt = contract.prove_wrong_share(holder, exc.envelope, record.commitment(0, i, 3), proof)
            [event] = contract.contract.process_receipt("ShareFaultProven", receipt)
            assert (event.args["requestId"], event.args["member"], event.args["holder"],
                    bytes(event.args["root"])) == (request_id, members[1].address, holder.address, deal.root)
    assert bad == [members[1].address]
    release(2)  # a third member's share lets the holder combine t_k honest ones
    third = contract.releases(request_id, devchain.deployment.start_block)[-1]
    info = committee_release_info(chain_id, request_id, dataset_id, holder.address, third.member)
    slot = kc.ShareSlot(chain_id, contract.address, request_id, dataset_id, holder.address, third.member,
                        2, 1)
    verified.append(kc.verify_share(holder_key.open(third.sealed_envelopes[0], info), slot,
                                    record.commitment(0, 2, 3), recover_signer))
    assert kc.combine_shares(verified, epoch.threshold, bad) == wrap_keys[0]
    assert contract.share_fault_proven(request_id, members[1].address, holder.address)
    assert not contract.share_fault_proven(request_id, members[0].address, holder.address)
    honest = decode_envelope(holder_key.open(releases[1].sealed_envelopes[0], committee_release_info(
        chain_id, request_id, dataset_id, holder.address, members[0].address)))
    with pytest.raises(TransactionReverted, match="ShareMatchesCommitment"):
        contract.prove_wrong_share(holder, honest, record.commitment(0, 0, 3),
                                   kc.commitment_proof([h.address for h in fragment],
                                                       kc.commitment_rows(record.commitments, 2, 3), 0, 0))

    # the committee's events reach a watcher of the deployment's contracts
    seen: list[str] = []
    watcher = EventWatcher(devchain.client, chain.contracts, tmp_path / "cursor.json",
                           start_block=devchain.deployment.start_block, confirmations=0)
    for name in ("DealRegistered", "SharesReleased", "ShareFaultProven", "TokenIssued"):
        watcher.on(name, lambda e: seen.append(e.name))
    watcher.poll_once()
    assert seen == ["DealRegistered", "SharesReleased", "SharesReleased", "TokenIssued", "TokenIssued",
                    "ShareFaultProven", "SharesReleased"]


def _dealt_request(devchain, contract: KosCommittee) -> tuple[list[LocalAccount], int]:
    """Five active holders, a committee dataset of the first two dealt to epoch 1 (placeholder
    sealed shares: these tests never open them), and an approved request for it."""
    holders = devchain.register_holders(5)
    dataset_id = _register_committee_dataset(devchain, holders, 1)
    deal = kc.deal(devchain.client.chain_id, dataset_id, 1, [h.address for h in holders[:2]],
                   [os.urandom(32)] * 2, 2, 3, os.urandom)
    contract.register_deal(devchain.account("owner"), dataset_id, 1, deal.flat_commitments(), [b"s"] * 6)
    _confirm(devchain, holders, dataset_id)
    return holders, _request(devchain, dataset_id)


def test_denials_through_the_bindings(devchain, committee) -> None:
    """m - t_k + 1 = 2 denials deny the request; releases() lists them with their reasons."""
    contract, members, _ = committee
    chain: ShardKeyChain = devchain.chain
    _, request_id = _dealt_request(devchain, contract)
    devchain.client.wait(contract.submit_denial(members[0], request_id, 17))
    assert chain.retrievals.request(request_id).status is RequestStatus.APPROVED
    devchain.client.wait(contract.submit_denial(members[2], request_id, 18))
    info = chain.retrievals.request(request_id)
    assert (info.status, info.denial_reason) == (RequestStatus.DENIED, 18)
    assert contract.release_counts(request_id) == (0, 2)
    assert contract.release_state(request_id, members[2].address) == 2
    assert contract.release_state(request_id, members[1].address) == 0
    assert [(r.member, r.released, r.reason, r.sealed_envelopes) for r in contract.releases(request_id)] == [
        (members[0].address, False, 17, ()), (members[2].address, False, 18, ())]
    with pytest.raises(TransactionReverted) as closed:
        contract.submit_release(members[1], request_id, [b"e", b"e"])
    assert closed.value.error == "ReleaseRequestNotOpen"


def _held(proxy: HostileRpc, count: int) -> bool:
    return proxy.held() == count


def test_a_release_estimated_before_another_lands_still_issues_the_tokens(devchain, committee) -> None:
    """Two members estimate their releases at the same state (neither is the threshold one yet)
    while a slow provider holds the first transaction; the second lands as the t_k-th release
    and must carry the gas of issuing every token, which its estimate did not include."""
    contract, members, _ = committee
    chain: ShardKeyChain = devchain.chain
    holders, request_id = _dealt_request(devchain, contract)
    with hostile_rpc(devchain.client.rpc_url, ProxyConfig(range_cap=None, hold_sends=True)) as proxy:
        sent: list[SentTx] = []
        threads = []
        for member in members[:2]:  # each member its own connection, as its own process has
            slow = KosCommittee(ChainClient(proxy.url), contract.address)
            thread = threading.Thread(target=lambda m=member, c=slow: sent.append(
                c.submit_release(m, request_id, [b"e", b"e"])))
            thread.start()
            threads.append(thread)
            wait_until(functools.partial(_held, proxy, len(threads)), 30, "the release to reach the provider")
        assert contract.release_counts(request_id) == (0, 0)  # both estimated with no release in
        proxy.release_sends()
        for thread in threads:
            thread.join(30)
    receipts = [devchain.client.wait(tx) for tx in sent]
    assert [r["status"] for r in receipts] == [1, 1]
    assert contract.release_counts(request_id) == (2, 0)
    assert all(chain.retrievals.token_issued(request_id, h.address) for h in holders[:2])


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

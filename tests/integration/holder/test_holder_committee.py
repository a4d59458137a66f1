"""Committee datasets at the holder agent, on anvil with the real contracts: the test is the
owner (deals every wrap key 2 of 3 to a committee epoch, registers the deal) and the three
members (release signed share envelopes sealed to each holder); holder-1 is the agent.

Custody waits for the deal; two honest releases give a delivery the requester opens; a signed
wrong share is proven on chain naming its member and the holder waits, across a restart,
for the third member; an envelope that does not open is claimed; the marker token is never
opened as an HPKE blob."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount

from shardkey.chain.committee import KosCommittee, sign_envelope
from shardkey.crypto import committee as kc
from shardkey.crypto import seal, unpack_bundle
from shardkey.crypto.committee_envelope import ShareEnvelope, committee_marker, encode_envelope
from shardkey.crypto.hpke import HpkePrivateKey, committee_release_info, committee_share_info, delivery_info
from tests.integration.holder.conftest import BuiltDataset, OpenRequest, World

THRESHOLD = 2


@dataclass
class Dealt:
    built: BuiltDataset
    deal: kc.CommitteeDeal
    epoch: int


@pytest.fixture
def members(world: World) -> list[tuple[LocalAccount, HpkePrivateKey]]:
    accounts = [world.dev.account(f"member-{i}") for i in range(3)]
    keys = [HpkePrivateKey.generate(os.urandom) for _ in accounts]
    committee = world.chain.committee
    assert committee is not None
    committee.start_epoch(world.dev.accounts["admin"], [a.address for a in accounts],
                          [k.public_key_bytes() for k in keys], THRESHOLD)
    return list(zip(accounts, keys, strict=True))


def _committee_dataset(world: World, members: list[tuple[LocalAccount, HpkePrivateKey]],
                       register_deal: bool = True) -> Dealt:
    committee = world.chain.committee
    assert committee is not None
    epoch = committee.current_epoch()
    built = world.build()
    built.sealed_wrap_keys = [committee_marker(epoch)] * len(built.wrap_keys)
    holders = [h.address for h in world.holders]
    deal = kc.deal(world.dev.client.chain_id, built.dataset_id, epoch, holders, built.wrap_keys, THRESHOLD,
                   len(members), os.urandom)
    world.upload(built)
    world.register(built)
    dealt = Dealt(built, deal, epoch)
    if register_deal:
        _register_deal(world, members, dealt)
    return dealt


def _register_deal(world: World, members: list[tuple[LocalAccount, HpkePrivateKey]], dealt: Dealt) -> None:
    chain_id, ds = world.dev.client.chain_id, dealt.built.dataset_id
    sealed = [seal(key.public_key_bytes(), dealt.deal.shares[j][i],
                   committee_share_info(chain_id, ds, holder, account.address, dealt.epoch))
              for j, holder in enumerate(dealt.deal.holders) for i, (account, key) in enumerate(members)]
    assert world.chain.committee is not None
    world.chain.committee.register_deal(world.owner, ds, 1, dealt.deal.flat_commitments(), sealed)


def _release(world: World, members: list[tuple[LocalAccount, HpkePrivateKey]], dealt: Dealt, request_id: int,
             i: int, *, flip: bool = False, garbage: bool = False) -> None:
    """Member ``i`` releases to every holder (its share for holder-1 flipped or unreadable if asked)."""
    account = members[i][0]
    chain_id, ds = world.dev.client.chain_id, dealt.built.dataset_id
    committee = world.chain.committee
    assert committee is not None
    envelopes = []
    for j, holder in enumerate(world.holders):
        share = bytearray(dealt.deal.shares[j][i])
        if flip and j == 0:
            share[5] ^= 0x10
        unsigned = ShareEnvelope(request_id, ds, holder.address, account.address, dealt.epoch, bytes(share))
        env = sign_envelope(account, unsigned, chain_id, committee.address)
        holder_key = world.dev.holder_keys[f"holder-{j + 1}"]
        info = committee_release_info(chain_id, request_id, ds, holder.address, account.address)
        blob = b"\x01" + os.urandom(80) if garbage and j == 0 else seal(holder_key.public_key_bytes(),
                                                                        encode_envelope(env), info)
        envelopes.append(blob)
    world.dev.client.wait(committee.submit_release(account, request_id, envelopes))


def _delivered_bundle(world: World, dealt: Dealt, req: OpenRequest) -> None:
    events = world.deliveries(req.request_id)
    assert len(events) == 1 and events[0]["args"]["holder"] == world.me
    info = delivery_info(world.dev.client.chain_id, req.request_id, dealt.built.dataset_id, world.me)
    plaintext = req.ephemeral.open(bytes(events[0]["args"]["sealedFragments"]), info)
    bundle = unpack_bundle(plaintext, dataset_id=dealt.built.dataset_id, x=1)
    assert bundle.entries  # opened with w_1 from the members' shares: its fragments


def _requested(world: World, members: list[tuple[LocalAccount, HpkePrivateKey]]) \
        -> tuple[Dealt, OpenRequest, KosCommittee]:
    """An active committee dataset and an open request for it."""
    dealt = _committee_dataset(world, members)
    world.settle()
    committee = world.chain.committee
    assert committee is not None
    return dealt, world.request(dealt.built), committee


def test_custody_waits_for_the_owners_deal(world: World, members) -> None:
    dealt = _committee_dataset(world, members, register_deal=False)
    ds = dealt.built.dataset_id
    world.settle()
    assert not world.chain.datasets.custody_confirmed(ds, world.me)
    _register_deal(world, members, dealt)
    world.settle()  # DealRegistered retries the waiting registration at once
    assert world.chain.datasets.custody_confirmed(ds, world.me)


def test_two_verified_shares_give_a_delivery_the_requester_opens(world: World, members) -> None:
    dealt = _committee_dataset(world, members)
    world.settle()
    req = world.request(dealt.built)
    _release(world, members, dealt, req.request_id, 2)
    world.settle()
    assert world.deliveries(req.request_id) == []  # one share; no token yet
    _release(world, members, dealt, req.request_id, 0)  # the threshold: tokens (the marker) issued
    assert world.chain.retrievals.token_issued(req.request_id, world.me)
    world.settle()
    _delivered_bundle(world, dealt, req)
    assert not (world.tmp / "holder-1" / "committee_requests.json").read_text().strip("{}")


def test_a_wrong_share_is_proven_and_the_third_member_is_waited_for_across_a_restart(
        world: World, members) -> None:
    dealt, req, committee = _requested(world, members)
    _release(world, members, dealt, req.request_id, 0, flip=True)
    _release(world, members, dealt, req.request_id, 1)
    world.settle()
    bad = members[0][0].address
    assert committee.share_fault_proven(req.request_id, bad, world.me)
    assert not committee.share_fault_proven(req.request_id, members[1][0].address, world.me)
    assert world.deliveries(req.request_id) == []  # one verified share: waiting

    restarted = world.make_agent(world.tmp / "holder-1")  # same data dir, nothing in memory
    world.settle(restarted)
    _release(world, members, dealt, req.request_id, 2)
    world.settle(restarted)
    _delivered_bundle(world, dealt, req)
    proven = committee.contract.get_logs("ShareFaultProven", world.dev.deployment.start_block,
                                         requestId=req.request_id)
    assert [(e.args["member"], e.args["holder"]) for e in proven] == [(bad, world.me)]


def test_an_envelope_that_does_not_open_is_claimed(world: World, members) -> None:
    dealt, req, committee = _requested(world, members)
    _release(world, members, dealt, req.request_id, 1, garbage=True)
    _release(world, members, dealt, req.request_id, 2)
    world.settle()
    claims = committee.contract.get_logs("ShareFailureReported", world.dev.deployment.start_block,
                                         requestId=req.request_id)
    assert [(c.args["member"], c.args["holder"], int(c.args["kind"])) for c in claims] == \
        [(members[1][0].address, world.me, 1)]  # UNREADABLE
    assert not committee.share_fault_proven(req.request_id, members[1][0].address, world.me)
    assert world.deliveries(req.request_id) == []
    _release(world, members, dealt, req.request_id, 0)
    world.settle()
    _delivered_bundle(world, dealt, req)

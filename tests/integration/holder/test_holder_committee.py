"""Committee datasets at the holder agent, on anvil with the real contracts: the test is the
owner (deals every wrap key 2 of 3 to a committee epoch, registers the deal) and the three
members (release signed share envelopes sealed to each holder); holder-1 is the agent.

Custody waits for the deal; two honest releases give a delivery the requester opens; a signed
wrong share is proven on chain naming its member and the holder waits, across a restart,
for the third member; an envelope that does not open is claimed; one member down still
serves; the marker token is never opened as an HPKE blob."""

from __future__ import annotations

from shardkey.chain.committee import KosCommittee
from shardkey.crypto import unpack_bundle
from shardkey.crypto.hpke import delivery_info
from tests.integration.holder.conftest import BuiltDataset, OpenRequest, World


def _flip_mine(j: int, share: bytes) -> bytes:
    """A signed share for holder-1 that does not match its commitment."""
    return share[:5] + bytes([share[5] ^ 0x10]) + share[6:] if j == 0 else share


def _garble_mine(j: int, share: bytes) -> bytes | None:
    """An envelope for holder-1 that does not open."""
    return None if j == 0 else share


def _delivered_bundle(world: World, built: BuiltDataset, req: OpenRequest) -> None:
    events = world.deliveries(req.request_id)
    assert len(events) == 1 and events[0]["args"]["holder"] == world.me
    info = delivery_info(world.dev.client.chain_id, req.request_id, built.dataset_id, world.me)
    plaintext = req.ephemeral.open(bytes(events[0]["args"]["sealedFragments"]), info)
    bundle = unpack_bundle(plaintext, dataset_id=built.dataset_id, x=1)
    assert bundle.entries  # opened with w_1 from the members' shares: its fragments


def _requested(world: World) -> tuple[BuiltDataset, OpenRequest, KosCommittee]:
    """An active committee dataset and an open request for it."""
    built = world.active_dataset()
    return built, world.request(built), world.dev.committee


def test_custody_waits_for_the_owners_deal(world: World) -> None:
    built = world.build()
    world.upload(built)
    world.register(built, deal=False)
    world.settle()
    assert not world.chain.datasets.custody_confirmed(built.dataset_id, world.me)
    world.register_deal(built)
    world.settle()  # DealRegistered retries the waiting registration at once
    assert world.chain.datasets.custody_confirmed(built.dataset_id, world.me)


def test_two_verified_shares_give_a_delivery_the_requester_opens(world: World) -> None:
    built, req, _ = _requested(world)
    world.release(req.request_id, 2)
    world.settle()
    assert world.deliveries(req.request_id) == []  # one share; no token yet
    world.release(req.request_id, 0)  # the threshold: tokens (the marker) issued
    assert world.chain.retrievals.token_issued(req.request_id, world.me)
    world.settle()
    _delivered_bundle(world, built, req)
    assert not (world.tmp / "holder-1" / "committee_requests.json").read_text().strip("{}")


def test_a_member_down_still_serves(world: World) -> None:
    """``m - t_k`` = 1 member never answers: the other two are enough, and the holder does not
    wait for the silent one."""
    built, req, committee = _requested(world)
    world.unlock(req.request_id, members=(1, 2))
    world.settle()
    _delivered_bundle(world, built, req)
    assert committee.release_state(req.request_id, world.members[0].address) == 0


def test_a_wrong_share_is_proven_and_the_third_member_is_waited_for_across_a_restart(world: World) -> None:
    built, req, committee = _requested(world)
    world.release(req.request_id, 0, _flip_mine)
    world.release(req.request_id, 1)
    world.settle()
    bad = world.members[0].address
    assert committee.share_fault_proven(req.request_id, bad, world.me)
    assert not committee.share_fault_proven(req.request_id, world.members[1].address, world.me)
    assert world.deliveries(req.request_id) == []  # one verified share: waiting

    restarted = world.make_agent(world.tmp / "holder-1")  # same data dir, nothing in memory
    world.settle(restarted)
    world.release(req.request_id, 2)
    world.settle(restarted)
    _delivered_bundle(world, built, req)
    proven = committee.contract.get_logs("ShareFaultProven", world.dev.deployment.start_block,
                                         requestId=req.request_id)
    assert [(e.args["member"], e.args["holder"]) for e in proven] == [(bad, world.me)]


def test_an_envelope_that_does_not_open_is_claimed(world: World) -> None:
    built, req, committee = _requested(world)
    world.release(req.request_id, 1, _garble_mine)
    world.release(req.request_id, 2)
    world.settle()
    claims = committee.contract.get_logs("ShareFailureReported", world.dev.deployment.start_block,
                                         requestId=req.request_id)
    assert [(c.args["member"], c.args["holder"], int(c.args["kind"])) for c in claims] == \
        [(world.members[1].address, world.me, 1)]  # UNREADABLE
    assert not committee.share_fault_proven(req.request_id, world.members[1].address, world.me)
    assert world.deliveries(req.request_id) == []
    world.release(req.request_id, 0)
    world.settle()
    _delivered_bundle(world, built, req)

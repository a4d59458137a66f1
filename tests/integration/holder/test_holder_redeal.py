"""A re-dealt fragment epoch at the holder (docs/DESIGN.md "Re-deal"), committee-only: the new
epoch's custody is confirmed once the owner's committee deal of it is in; a re-deal whose slots
are not the committee marker is refused for good."""

from __future__ import annotations

import logging
import os

from shardkey.crypto import FragmentBundle, holder_fragments_root, wrap_bundle
from shardkey.crypto.hpke import HpkePrivateKey
from tests.integration.holder.conftest import BuiltDataset, World


def _redeal(world: World, built: BuiltDataset, slots: list[bytes] | None = None):
    """The owner's re-deal of ``built`` to the same three holders (fragment epoch 2): the keys
    retrieved through the committee, new wrap keys, holder-1's new bundle staged, then
    ``redealFragments`` with the committee's slots (or ``slots``); the deal call is returned."""
    rid = _redeal_request(world, built)
    world.unlock(rid)
    world.settle()  # holder-1 answers the owner's re-deal request
    ds, holders = built.dataset_id, [h.address for h in world.holders]
    wraps = [os.urandom(32) for _ in holders]
    fragments = [{i: os.urandom(32) for i in range(2)} for _ in holders]
    bundle = wrap_bundle(wraps[0], FragmentBundle.build(ds, 1, fragments[0]), os.urandom)
    reply = world.put(world.owner, f"/v1/datasets/{built.hex}/bundles/2", bundle)
    assert reply.status_code == 201, reply.text
    markers, deal = world.dev.slots(ds, wraps)
    roots = [holder_fragments_root(ds, j + 1, f) for j, f in enumerate(fragments)]
    world.chain.datasets.redeal_fragments(world.owner, ds, rid, holders, 2, slots or markers, roots)
    return deal


def _redeal_request(world: World, built: BuiltDataset) -> int:
    ephemeral = HpkePrivateKey.generate(os.urandom)
    world.chain.retrievals.request_redeal(world.owner, built.dataset_id, ephemeral.public_key_bytes())
    return int(world.chain.retrievals.request_count())


def test_a_redealt_epoch_is_confirmed_once_its_committee_deal_is_in(world: World) -> None:
    built = world.active_dataset()
    deal = _redeal(world, built)
    world.settle()
    epochs = world.agent.handlers.epochs
    assert (built.dataset_id, 2) in epochs.pending  # waits for the owner's deal of epoch 2
    deal(world.owner, 2, [h.address for h in world.holders])
    world.settle()
    assert epochs.pending == {}
    for holder in world.holders[1:]:
        world.chain.datasets.confirm_fragment_custody(holder, built.dataset_id, 2)
    assert world.chain.datasets.fragment_epochs(built.dataset_id) == (2, 2)  # holder-1 confirmed too


def test_a_redeal_whose_slots_are_not_the_committee_marker_is_refused(world: World, caplog) -> None:
    caplog.set_level(logging.INFO, logger="holder_agent.epochs")
    built = world.active_dataset()
    deal = _redeal(world, built, slots=[os.urandom(120) for _ in world.holders])
    deal(world.owner, 2, [h.address for h in world.holders])  # even with a deal registered
    world.settle()
    world.settle()
    assert world.agent.handlers.epochs.pending == {}
    refused = [r for r in caplog.records if r.getMessage().startswith("re-dealt fragment epoch refused")]
    assert len(refused) == 1 and "not a dataset this network serves" in refused[0].fields["reason"]
    for holder in world.holders[1:]:
        world.chain.datasets.confirm_fragment_custody(holder, built.dataset_id, 2)
    assert world.chain.datasets.fragment_epochs(built.dataset_id) == (1, 2)  # holder-1 never confirmed

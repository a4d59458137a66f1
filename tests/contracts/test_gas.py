"""Registration storage is constant in the shard count; gas figures for docs/CONTRACTS.md."""

import os

import pytest
from contract_helpers import (
    APPROVAL_TYPES,
    EMPTY_ATT,
    FRAGMENT_WRONG,
    SERVED_TYPES,
    ZERO,
    approval_message,
    domain,
    merkle_root_and_proofs,
    params,
    policy,
    shard_hashes,
    sign_typed,
)
from eth_utils import keccak

from shardkey.crypto.hpke import HpkePrivateKey, HpkeSuiteId, seal


def _sstores(chain, tx) -> int:
    trace = chain.provider.make_request(
        "debug_traceTransaction",
        [tx.txn_hash, {"disableStack": True, "disableMemory": True, "disableStorage": True}],
    )
    return sum(1 for step in trace["structLogs"] if step["op"] == "SSTORE")


def _register(kit, stripes, salt):
    prm = params(kit.shard_holders, kit.fragment_holders, stripes=stripes)
    return kit.dataset_registry.registerDataset(
        keccak(salt), prm, policy(), shard_hashes(prm[5]), [b"w" * 80] * 5,
        [keccak(bytes([i])) for i in range(5)], sender=kit.owner,
    )


def test_register_storage_constant_in_shard_count(kit, chain):
    txs = {n: _register(kit, n // 5, n.to_bytes(4, "big")) for n in (10, 100, 1000)}
    sstores = {n: _sstores(chain, tx) for n, tx in txs.items()}
    assert sstores[10] == sstores[100] == sstores[1000], sstores
    gas = {n: tx.gas_used for n, tx in txs.items()}
    per_shard = (gas[1000] - gas[100]) / 900
    # calldata (<= 512) + log data (256) + copying; a storage slot per shard would be >= 20k
    assert per_shard < 1_500, gas
    print("\nGAS register", gas, "sstores", sstores, f"per extra shard {per_shard:.0f}")


def _sealed_sizes(suite: HpkeSuiteId) -> tuple[bytes, bytes, bytes]:
    """A real ephemeral key, unlock token and delivery of ``suite`` (10 shards per holder)."""
    key = HpkePrivateKey.generate(os.urandom, suite)
    holder = HpkePrivateKey.generate(os.urandom, suite)
    token = seal(holder.public_key_bytes(), os.urandom(32), b"shardkey/token/v1")
    bundle = bytes(38) + bytes(36) * 10  # version, dataset, x, count, 10 x (index, share)
    delivery = seal(key.public_key_bytes(), bundle, b"shardkey/delivery/v1")
    return key.public_key_bytes(), token, delivery


@pytest.mark.parametrize("suite", [HpkeSuiteId.MLKEM768_X25519, HpkeSuiteId.X25519], ids=["hybrid", "x25519"])
def test_retrieval_gas(kit, chain, coordinator, approvers, kos, wallet, outsider, suite):
    """Gas and calldata of one retrieval with real key and payload sizes of each HPKE suite."""
    a0, a1, _ = approvers
    ephemeral, token, delivery = _sealed_sizes(suite)
    gas, calldata = {}, {}
    open_ds = kit.register()
    rid, tx = kit.request(open_ds, key=ephemeral)
    gas["requestRetrieval (no groups, approved at once)"] = tx.gas_used
    calldata["requestRetrieval"] = len(coordinator.requestRetrieval.encode_input(
        open_ds, ephemeral, EMPTY_ATT, ZERO, b""))
    grp = kit.register(policy(groups=[("legal", [str(a0), str(a1)], 2)]))
    rid2, tx = kit.request(grp, key=ephemeral)
    gas["requestRetrieval (one group, pending)"] = tx.gas_used
    subject = kit.subject(rid2)
    gas["approve (first)"] = coordinator.approve(subject, sender=a0).gas_used
    deadline = kit.now + 1000
    sig = sign_typed(a1.private_key, domain(coordinator, kit.chain_id), APPROVAL_TYPES,
                     approval_message(subject, a1, 1, deadline))
    gas["approveBySig (completes approval)"] = coordinator.approveBySig(
        subject, a1, 1, deadline, sig, sender=outsider).gas_used
    fh = kit.fragment_holders
    one = coordinator.issueTokens(rid, fh[:1], [token], sender=kos).gas_used
    four = coordinator.issueTokens(rid, fh[1:], [token] * 4, sender=kos).gas_used
    gas[f"issueTokens (1 holder, {len(token)}-byte token)"] = one
    gas["issueTokens (marginal per holder)"] = round((four - one) / 3)
    gas[f"issueTokens (4 holders, {len(token)}-byte tokens)"] = four
    calldata["issueTokens per holder"] = len(coordinator.issueTokens.encode_input(rid, fh[:1], [token]))
    gas[f"deliverFragments ({len(delivery)} B: 10 fragments)"] = coordinator.deliverFragments(
        rid, delivery, sender=fh[0]).gas_used
    calldata["deliverFragments"] = len(coordinator.deliverFragments.encode_input(rid, delivery))
    gas["completeRetrieval"] = coordinator.completeRetrieval(rid, sender=kit.requester).gas_used
    hashes = shard_hashes(10, b"real")
    root, proofs = merkle_root_and_proofs(hashes)
    mds = kit.register(prm=params(kit.shard_holders, kit.fragment_holders, merkle_root=root), hashes=hashes)
    rid3, _ = kit.request(mds, key=ephemeral)
    served = keccak(b"garbage")
    sig = sign_typed(kit.shard_holders[2].private_key, domain(coordinator, kit.chain_id), SERVED_TYPES,
                     {"requestId": rid3, "datasetId": mds, "shardIndex": 7, "ciphertextHash": served})
    gas["reportShardFailure (10 shards)"] = coordinator.reportShardFailure(
        rid3, 7, served, sig, hashes[7], proofs[7], sender=kit.requester).gas_used
    coordinator.issueTokens(rid3, fh[:1], [b"t"], sender=kos)
    coordinator.deliverFragments(rid3, b"f", sender=fh[0])
    gas["reportFragmentFailure (wrong)"] = coordinator.reportFragmentFailure(
        rid3, fh[0], FRAGMENT_WRONG, sender=kit.requester).gas_used
    print(f"\nGAS retrieval {suite.name}: key {len(ephemeral)} B, token {len(token)} B, "
          f"delivery {len(delivery)} B", gas, "calldata bytes", calldata)
    assert len(ephemeral) == {HpkeSuiteId.X25519: 32, HpkeSuiteId.MLKEM768_X25519: 1216}[suite]
    assert all(g < 1_500_000 for g in gas.values()), gas


def test_request_storage_independent_of_key_size(kit, chain):
    """Only the ephemeral key's hash is stored: a 1216-byte hybrid key costs calldata and log
    data, not 38 storage slots (which alone would be ~800k gas)."""
    ds = kit.register()
    small = HpkePrivateKey.generate(os.urandom, HpkeSuiteId.X25519).public_key_bytes()
    large = HpkePrivateKey.generate(os.urandom, HpkeSuiteId.MLKEM768_X25519).public_key_bytes()
    kit.request(ds, key=small)  # the first request pays for the zero-to-nonzero request counter
    txs = {len(k): kit.request(ds, key=k)[1] for k in (small, large)}
    sstores = {n: _sstores(chain, tx) for n, tx in txs.items()}
    assert sstores[32] == sstores[1216], sstores
    extra = txs[1216].gas_used - txs[32].gas_used
    assert extra < 40 * (1216 - 32), (extra, {n: tx.gas_used for n, tx in txs.items()})


def test_repair_and_redeal_gas(kit, chain, coordinator, holder_registry, spare, admin, kos):
    """Gas of one shard repair (assign + confirm) and of one re-deal, for docs/CONTRACTS.md."""
    ds = kit.register()
    gas = {"markFailed": holder_registry.markFailed(kit.shard_holders[0], sender=admin).gas_used}
    gas["announceExit"] = holder_registry.announceExit(sender=kit.shard_holders[1]).gas_used
    gas["assignShard"] = kit.dataset_registry.assignShard(ds, 0, spare, sender=kit.owner).gas_used
    gas["confirmShardPlacement"] = kit.dataset_registry.confirmShardPlacement(ds, 0, sender=spare).gas_used
    gas["releaseShard"] = kit.dataset_registry.releaseShard(ds, 2, sender=kit.shard_holders[2]).gas_used
    gas["completeExit"] = holder_registry.completeExit(sender=kit.shard_holders[1]).gas_used
    key = HpkePrivateKey.generate(os.urandom, HpkeSuiteId.MLKEM768_X25519).public_key_bytes()
    tx = coordinator.requestRedeal(ds, key, EMPTY_ATT, ZERO, b"", sender=kit.owner)
    gas["requestRedeal (hybrid key, no groups)"] = tx.gas_used
    rid = tx.events.filter(coordinator.RetrievalRequested)[0].requestId
    coordinator.issueTokens(rid, kit.fragment_holders[:3], [b"t"] * 3, sender=kos)
    new_set = [*kit.active_holders[2:6], spare]
    wraps = [b"w" * 80] * 5  # an X25519 sealed wrap key is 80 bytes
    gas["redealFragments (5 holders)"] = kit.dataset_registry.redealFragments(
        ds, rid, [str(h) for h in new_set], 3, wraps, [keccak(bytes([i])) for i in range(5)],
        sender=kit.owner).gas_used
    confirms = [kit.dataset_registry.confirmFragmentCustody(ds, 2, sender=h).gas_used for h in new_set]
    gas["confirmFragmentCustody (not last)"] = confirms[0]
    gas["confirmFragmentCustody (last, activates)"] = confirms[-1]
    print("\nGAS repair/redeal", gas)
    assert all(g < 600_000 for g in gas.values()), gas

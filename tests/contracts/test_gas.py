"""Registration storage is constant in the shard count; gas figures for docs/CONTRACTS.md."""

from contract_helpers import (
    APPROVAL_TYPES,
    FRAGMENT_WRONG,
    SERVED_TYPES,
    domain,
    merkle_root_and_proofs,
    params,
    policy,
    shard_hashes,
    sign_typed,
)
from eth_utils import keccak


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


def test_retrieval_gas(kit, chain, coordinator, approvers, kos, wallet, outsider):
    a0, a1, _ = approvers
    gas = {}
    open_ds = kit.register()
    rid, tx = kit.request(open_ds)
    gas["requestRetrieval (no groups, approved at once)"] = tx.gas_used
    grp = kit.register(policy(groups=[("legal", [str(a0), str(a1)], 2)]))
    rid2, tx = kit.request(grp)
    gas["requestRetrieval (one group, pending)"] = tx.gas_used
    gas["approve (first)"] = coordinator.approve(rid2, sender=a0).gas_used
    deadline = kit.now + 1000
    sig = sign_typed(a1.private_key, domain(coordinator, kit.chain_id), APPROVAL_TYPES,
                     {"requestId": rid2, "approver": str(a1), "nonce": 1, "deadline": deadline})
    gas["approveBySig (completes approval)"] = coordinator.approveBySig(
        rid2, a1, 1, deadline, sig, sender=outsider).gas_used
    fh = kit.fragment_holders
    tokens = [b"\x01" + b"t" * 79 for _ in fh]  # ~ an X25519 HPKE-sealed 32-byte key
    gas["issueTokens (5 holders, 80-byte tokens)"] = coordinator.issueTokens(
        rid, fh, tokens, sender=kos).gas_used
    gas["deliverFragments (1 KiB)"] = coordinator.deliverFragments(
        rid, b"f" * 1024, sender=fh[0]).gas_used
    gas["completeRetrieval"] = coordinator.completeRetrieval(rid, sender=kit.requester).gas_used
    hashes = shard_hashes(10, b"real")
    root, proofs = merkle_root_and_proofs(hashes)
    mds = kit.register(prm=params(kit.shard_holders, kit.fragment_holders, merkle_root=root), hashes=hashes)
    rid3, _ = kit.request(mds)
    served = keccak(b"garbage")
    sig = sign_typed(kit.shard_holders[2].private_key, domain(coordinator, kit.chain_id), SERVED_TYPES,
                     {"requestId": rid3, "datasetId": mds, "shardIndex": 7, "ciphertextHash": served})
    gas["reportShardFailure (10 shards)"] = coordinator.reportShardFailure(
        rid3, 7, served, sig, hashes[7], proofs[7], sender=kit.requester).gas_used
    coordinator.issueTokens(rid3, fh[:1], [b"t"], sender=kos)
    coordinator.deliverFragments(rid3, b"f", sender=fh[0])
    gas["reportFragmentFailure (wrong)"] = coordinator.reportFragmentFailure(
        rid3, fh[0], FRAGMENT_WRONG, sender=kit.requester).gas_used
    print("\nGAS retrieval", gas)
    assert all(g < 1_000_000 for g in gas.values())

"""Lost holders and corrupted pieces: what survives, what fails cleanly, who is named.

k = 3, p = 2 over 5 holders (every holder stores shards and is one of the n = 5 fragment
holders, t = 3), so losing p shard holders is also losing n - t fragment holders.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from shardkey.chain.attestation import find_requested
from shardkey.chain.model import HolderStatus
from shardkey.crypto import pack_bundle, seal
from shardkey.crypto.bundle import FragmentBundle
from shardkey.crypto.hpke import delivery_info
from tests.faults.conftest import Net

DATA_SIZE = 30_000  # 3 stripes of 3 x 4 KiB: 15 shards, 3 per holder


def _dataset(net: Net, tmp_path: Path) -> tuple[str, bytes]:
    data = os.urandom(DATA_SIZE)
    return net.store(tmp_path, data), data


def _nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")], \
        list(out.parent.iterdir())


def test_fetch_survives_p_shard_and_n_minus_t_fragment_holders_lost(net: Net, tmp_path: Path) -> None:
    dataset, data = _dataset(net, tmp_path)
    params = net.chain.datasets.dataset(bytes.fromhex(dataset[2:])).params
    assert (params.k, params.p, len(params.fragment_holders), params.threshold) == (3, 2, 5, 3)
    for name in ("holder-1", "holder-2"):
        net.kill(name)
    out = tmp_path / "restored.bin"
    net.fetch(net.request(dataset), out)
    assert out.read_bytes() == data

    # One more gone: 2 of the 3 fragments needed per shard key. Exit 4, the silent holders
    # are named, nothing is written.
    net.kill("holder-3")
    out = tmp_path / "never.bin"
    proc = net.fetch(net.request(dataset), out, "--timeout", "6", check=4)
    for name in ("holder-1", "holder-2", "holder-3"):
        assert net.address(name) in proc.stderr, proc.stderr
    for name in ("holder-4", "holder-5"):
        assert net.address(name) not in proc.stderr.split("missing:")[1].split(";")[0]
    _nothing_written(out)


def test_fetch_fails_cleanly_when_a_stripe_has_fewer_than_k_shards(net: Net, tmp_path: Path) -> None:
    dataset, _ = _dataset(net, tmp_path)
    rid = net.request(dataset)
    net.wait_for("5 deliveries", lambda: len(net.deliveries(rid)) == 5)
    for name in ("holder-1", "holder-2", "holder-3"):
        net.kill(name)  # every key is rebuilt, but 3 of 5 shards of each stripe are gone
    out = tmp_path / "never.bin"
    proc = net.fetch(rid, out, check=4)
    assert "shards could be restored" in proc.stderr
    assert any(net.address(n) in proc.stderr for n in ("holder-1", "holder-2", "holder-3"))
    _nothing_written(out)


def _shard_file(net: Net, dataset: str, index: int) -> tuple[str, Path]:
    params = net.chain.datasets.dataset(bytes.fromhex(dataset[2:])).params
    name = net.name_of(params.shard_holder(index))
    data_dir = Path(net.service(name)["data_dir"]) / "store"
    return name, data_dir / "datasets" / dataset[2:] / "shards" / str(index)


def test_corrupted_shards_are_proven_on_chain_and_the_file_restored(net: Net, tmp_path: Path) -> None:
    dataset, data = _dataset(net, tmp_path)
    # stripe 0: bit flip in shard 0; stripe 1: shard 5 truncated; stripe 2: shard 10 replaced
    # by another shard's valid ciphertext held by the same holder (shard 0 of stripe 0 is at
    # the same placement position, 10 % 5 == 0).
    flipped_holder, flipped = _shard_file(net, dataset, 0)
    truncated_holder, truncated = _shard_file(net, dataset, 5)
    swapped_holder, swapped = _shard_file(net, dataset, 10)
    assert flipped_holder == swapped_holder  # placement: index % 5
    other = flipped.parent / "0"
    original_0 = other.read_bytes()
    swapped.write_bytes(original_0)  # before the flip: a valid ciphertext of shard 0
    raw = bytearray(original_0)
    raw[len(raw) // 2] ^= 0x01
    flipped.write_bytes(bytes(raw))
    truncated.write_bytes(truncated.read_bytes()[:-100])

    out = tmp_path / "restored.bin"
    rid = net.request(dataset)
    assert flipped_holder == truncated_holder  # all three at placement position 0
    liar = net.address(flipped_holder)
    before = net.chain.holders.proven_failures(liar)
    summary = json.loads(net.fetch(rid, out, "--json").stdout)
    assert out.read_bytes() == data
    assert sorted((w["shard"], w["holder"]) for w in summary["wrong_shards"]) == \
        [(0, flipped_holder), (5, truncated_holder), (10, swapped_holder)]
    # each proven shard counts against its holder: three make it Failed (repair starts)
    assert (before, net.chain.holders.proven_failures(liar)) == (0, 3)
    assert net.chain.holders.holder(liar).status == HolderStatus.FAILED
    log = net.json("audit", "log", "--dataset", dataset)
    proven = sorted((e["actor"], e["details"].split()[1]) for e in log["events"]
                    if e["event"] == "ShardIntegrityFailureProven")
    assert proven == sorted([(flipped_holder, "0"), (truncated_holder, "5"), (swapped_holder, "10")])
    (history,) = [h for h in log["requests"] if h["request_id"] == rid]
    assert sorted(p.split(":")[0] for p in history["proofs"]) == \
        sorted([flipped_holder, truncated_holder, swapped_holder])
    assert history["claims"] == []  # proofs are not claims
    # (a holder still delivering when t had arrived is reported too: a skipped missing claim)
    assert sorted((r["shard"], r["outcome"]) for r in summary["reports"] if r["kind"] == "shard proof") \
        == [(0, "mined"), (5, "mined"), (10, "mined")]

    # the same corrupted content served again under a new request is not proven twice, and
    # the CLI says so: the proof was sent and reverted, nothing is "proven on chain"
    rid2 = net.request(dataset)
    proc = net.fetch(rid2, tmp_path / "again.bin")
    lines = [line.strip() for line in proc.stdout.splitlines()[1:] if "served a shard" in line]
    assert sorted(lines) == sorted(
        f"{holder} served a shard that failed its hash (shard {i}): shard proof sent but reverted "
        "(RetrievalShardFailureAlreadyProven); nothing recorded"
        for i, holder in ((0, flipped_holder), (5, truncated_holder), (10, swapped_holder))), proc.stdout
    assert "proven on chain" not in proc.stdout
    again = [e for e in net.json("audit", "log", "--dataset", dataset)["events"]
             if e["event"] == "ShardIntegrityFailureProven"]
    assert len(again) == 3 and {e["request"] for e in again} == {rid}


def test_wrong_fragments_are_reported_with_their_holder(net: Net, tmp_path: Path) -> None:
    dataset, data = _dataset(net, tmp_path)
    ds = bytes.fromhex(dataset[2:])
    params = net.chain.datasets.dataset(ds).params
    liar = "holder-1"
    liar_address = net.address(liar)
    net.kill(liar)  # its agent will not answer; the test forges its delivery instead
    rid = net.request(dataset)
    net.wait_for("the liar's token", lambda: net.chain.retrievals.token_issued(rid, liar_address))
    request = net.chain.retrievals.request(rid)
    x = params.fragment_x(liar_address)
    forged = FragmentBundle.build(ds, x, {i: os.urandom(32) for i in range(params.shard_count)})
    key = find_requested(net.chain, request, 0).ephemeral_key  # the contract keeps only its hash
    sealed = seal(key, pack_bundle(forged),
                  delivery_info(net.chain.client.chain_id, rid, ds, liar_address))
    net.fresh_chain().retrievals.deliver(net.account(liar), rid, sealed)
    net.wait_for("4 honest deliveries", lambda: len(net.deliveries(rid)) == 5)

    out = tmp_path / "restored.bin"
    summary = json.loads(net.fetch(rid, out, "--json").stdout)
    assert out.read_bytes() == data
    assert summary["wrong_fragments"] == [liar]
    assert [(r["kind"], r["holder"], r["outcome"]) for r in summary["reports"]] == \
        [("wrong fragments claim", liar, "mined")]
    assert liar not in summary["fragment_holders"]
    log = net.json("audit", "log", "--dataset", dataset)
    reported = [(e["actor"], e["details"]) for e in log["events"] if e["event"] == "FragmentFailureReported"]
    assert reported == [(liar, "claim: wrong fragments (did not verify against their commitments)")]
    (history,) = [h for h in log["requests"] if h["request_id"] == rid]
    assert history["claims"] == [f"{liar}: wrong fragments (did not verify against their commitments)"]
    assert history["proofs"] == []


def test_silent_fragment_holders_are_claimed_missing_only_after_the_deadline(net: Net, tmp_path: Path
                                                                             ) -> None:
    dataset, _ = _dataset(net, tmp_path)
    silent = ("holder-1", "holder-2", "holder-3")
    for name in silent:
        net.kill(name)
    rid = net.request(dataset)
    net.wait_for("5 tokens and 2 deliveries",
                 lambda: len(net.tokens(rid)) == 5 and len(net.deliveries(rid)) == 2)

    # before the deadline: the fetch gives up, but claims nothing (they may still deliver)
    proc = net.fetch(rid, tmp_path / "never.bin", "--timeout", "3", check=4)
    assert "claimed missing" not in proc.stderr
    assert not net.events("retrievals", "FragmentFailureReported", requestId=rid)

    # past the request's deadline on chain: each silent holder is claimed missing, once
    deadline = net.chain.retrievals.request(rid).deadline
    net.rpc("evm_setNextBlockTimestamp", [deadline + 1])
    net.rpc("evm_mine", [])
    proc = net.fetch(rid, tmp_path / "never.bin", "--timeout", "3", check=4)
    assert "claimed missing on chain" in proc.stderr
    log = net.json("audit", "log", "--dataset", dataset)
    claims = sorted((e["actor"], e["details"]) for e in log["events"]
                    if e["event"] == "FragmentFailureReported")
    assert claims == [(name, "claim: missing fragments (none delivered by the deadline)") for name in silent]
    # that fetch deleted the expired request's ephemeral key; a rerun needs none: it says the
    # request expired (exit 4) and claims nothing new
    proc = net.fetch(rid, tmp_path / "never.bin", "--timeout", "3", check=4)
    assert "passed its deadline" in proc.stderr and "no new claim" in proc.stderr
    assert len(net.events("retrievals", "FragmentFailureReported", requestId=rid)) == 3
    _nothing_written(tmp_path / "never.bin")

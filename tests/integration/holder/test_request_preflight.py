"""The CLI's pre-flight before ``shardkey request`` predicts the chain's verdict with the same
engine and attestation rule the KOS and the holders use (real anvil, real contracts)."""

from __future__ import annotations

from pathlib import Path

from shardkey.client.retrieval import attest_location, request_retrieval
from shardkey.policy import Circle, DenialReason, Policy

PARIS = (48.8566, 2.3522)


def _dataset(world, policy: Policy) -> bytes:
    built = world.build(policy)
    world.register(built)
    world.chain.datasets.confirm_custody(world.holders[0], built.dataset_id)
    return built.dataset_id


def test_preflight_matches_the_recorded_reason(world, tmp_path: Path) -> None:
    attestor = world.dev.account("attestor")
    geo = Policy(attestors=(attestor.address,), max_attestation_age=600,
                 circles=(Circle(48_856_600, 2_352_200, 50_000),))
    geo_ds = _dataset(world, geo)
    proof = attest_location(world.chain, attestor, world.requester.address, *PARIS, 30)
    cases = [
        (_dataset(world, Policy()), None, DenialReason.NONE),
        (_dataset(world, Policy(requesters=(world.dev.account("someone").address,))), None,
         DenialReason.NOT_ALLOWED_REQUESTER),
        (geo_ds, None, DenialReason.MISSING_ATTESTATION),
        (geo_ds, proof, DenialReason.NONE),
        (geo_ds, proof, DenialReason.ATTESTATION_REPLAYED),  # the first use consumed its digest
    ]
    for dataset_id, attestation, expected in cases:
        outcome = request_retrieval(world.chain, world.requester, dataset_id, attestation, tmp_path)
        assert (outcome.reason, outcome.predicted) == (expected, expected)
        assert outcome.disagreement is None


def test_disagreement_is_reported(world, tmp_path: Path) -> None:
    outcome = request_retrieval(world.chain, world.requester, _dataset(world, Policy()), None, tmp_path)
    changed = type(outcome)(outcome.request_id, outcome.status, outcome.reason, outcome.key_file,
                            DenialReason.TOO_LATE, 123)
    assert changed.disagreement == ("warning: the off-chain pre-flight (block time 123) predicted "
                                    "TooLate, the chain recorded None")

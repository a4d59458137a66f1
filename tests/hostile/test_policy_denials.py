"""Every policy denial path is refused on chain, by the KOS committee's members and by a holder,
each on its own, and every on-chain denial shows in the audit log with its reason.

Three layers, three kinds of test:

- on chain: a request that fails its policy is stored Denied with the reason; no member can
  release shares for it (``releaseShares`` reverts) and a holder asked to deliver it anyway
  (``Handlers.deliver`` called directly) delivers nothing; the audit log names the reason.
- conditions that change after approval (the window closes, the day or hour leaves the
  allowed set, the approval deadline passes, the dataset is revoked): the chain approved; on
  one request the threshold released while everything held (the marker tokens are out), and
  holder-1's own check refuses it, while the member that had not released denies it with the
  reason; on a second request the members deny on chain with the reason (audit log again).
- defence in depth: the chain's check is assumed broken (the policy the off-chain checkers
  read is made stricter than the one the contract enforced, or an approval the contract
  counted is made to include the requester). Each path must then still be refused by the
  holder alone (members that do not check release: no delivery) and by the KOS members alone
  (denied on chain with the reason).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest

from kos.orchestrator import Outcome
from shardkey.audit.log import collect_events, request_histories
from shardkey.chain import eip712
from shardkey.chain.eip712 import Domain
from shardkey.chain.errors import TransactionReverted
from shardkey.chain.model import RequestStatus
from shardkey.crypto.hpke import HpkePrivateKey
from shardkey.policy import ApprovalGroup, Circle, DenialReason
from shardkey.policy.model import Policy
from shardkey.policy.window import minute_of_day, weekday
from tests.hostile.conftest import refusals

PARIS = Circle(48_856_600, 2_352_200, 50_000)
LONDON = Circle(51_507_400, -127_800, 10_000)


@pytest.fixture
def world(shared_world: Any) -> Any:
    """Every test of this module shares one deployment (each uses its own requests)."""
    return shared_world


_CACHE: dict[tuple[int, str], Any] = {}


def shared_dataset(world: Any, name: str) -> Any:
    """A time-independent dataset reused by the module: "open" or "geo" (Paris, 600 s)."""
    key = (id(world), name)
    if key not in _CACHE:
        if name == "geo":
            policy = Policy(attestors=(world.dev.account("attestor").address,),
                            max_attestation_age=600, circles=(PARIS,))
        else:
            policy = Policy()
        _CACHE[key] = cheap_active_dataset(world, policy)
    return _CACHE[key]


# --- helpers ----------------------------------------------------------------------------

def attested_request(world: Any, built: Any, attestor: Any, *, requester: Any = None,
                     lat: int = 48_857_000, lon: int = 2_352_000, accuracy: int = 50,
                     issued_at: int | None = None, signer: Any = None, nonce: bytes | None = None,
                     for_requester: Any = None) -> int:
    """Request with a location attestation (signed by ``signer``, default the attestor)."""
    requester = requester or world.requester
    fields = ((for_requester or requester).address, lat, lon, accuracy,
              world.now() - 100 if issued_at is None else issued_at, nonce or os.urandom(32))
    signature = eip712.sign(world.chain.retrievals.domain, "LocationAttestation",
                            eip712.attestation_message(*fields), signer or attestor)
    receipt = world.chain.retrievals.request_retrieval(
        requester, built.dataset_id, HpkePrivateKey.generate(os.urandom).public_key_bytes(),
        fields, attestor.address, signature)
    events = world.chain.retrievals.contract.process_receipt("RetrievalRequested", receipt)
    return int(events[0].args["requestId"])


def cheap_active_dataset(world: Any, policy: Policy) -> Any:
    """Registered and Active without the agent's uploads (for on-chain-only denials)."""
    built = world.build(policy)
    world.register(built)
    world.chain.datasets.confirm_custody(world.holders[0], built.dataset_id)
    return built


def assert_no_release(world: Any, request_id: int) -> None:
    """No member can release shares of the request (the committee checks it is open)."""
    with pytest.raises(TransactionReverted) as info:
        world.release(request_id, 0)
    assert info.value.error == "ReleaseRequestNotOpen"


def outcome(world: Any, request_id: int) -> str:
    events = collect_events(world.chain)
    history = {h.request_id: h for h in request_histories(events, {})}
    return history[request_id].outcome


def assert_denied(world: Any, request_id: int, reason: DenialReason, by: str) -> None:
    req = world.chain.retrievals.request(request_id)
    assert req.status == RequestStatus.DENIED
    assert req.denial_reason == int(reason), DenialReason(req.denial_reason)
    assert outcome(world, request_id) == f"denied by {by}: {reason.label}: {reason.description}"


def assert_holder_refuses(world: Any, built: Any, request_id: int, caplog: Any, why: str) -> None:
    """holder-1 got its marker token (the threshold released) and its own check refused it."""
    assert world.chain.retrievals.token_issued(request_id, world.me)
    world.settle()
    assert world.deliveries(request_id) == []
    lines = refusals(caplog)
    assert lines and why in lines[-1], lines


def assert_kos_denies(world: Any, request_id: int, reason: DenialReason) -> None:
    """The members deny with ``reason`` until ``m - t_k + 1`` (two) did: the request is Denied."""
    for member in world.kos:
        if world.chain.retrievals.request(request_id).status == RequestStatus.DENIED:
            break
        outcome = member.poll().outcomes.get(request_id)
        if outcome is not Outcome.DROPPED:  # dropped: this member denied it in an earlier poll
            assert outcome == Outcome.DENIED
    denials = world.chain.committee.releases(request_id, world.dev.deployment.start_block)
    assert [(d.released, d.reason) for d in denials] == [(False, int(reason))] * 2
    assert_denied(world, request_id, reason, world.chain.committee.address)


# --- 1. the contract's own denials --------------------------------------------------------

ON_CHAIN = ["requester", "too-early", "too-late", "daily-window", "weekdays", "missing-attestation",
            "untrusted-attestor", "forged-signature", "other-requester", "stale", "from-future",
            "replayed-attestation", "outside-regions", "too-coarse", "revoked"]


@pytest.mark.parametrize("path", ON_CHAIN)
def test_contract_denies_and_holder_refuses_on_its_own(world, caplog, path: str) -> None:
    now = world.now()
    attestor, other = world.dev.account("attestor"), world.dev.account("other-attestor")
    geo = {"attestors": (attestor.address,), "max_attestation_age": 600, "circles": (PARIS,)}
    minute, today = minute_of_day(now), weekday(now)
    policies: dict[str, tuple[dict[str, Any], DenialReason]] = {
        "requester": ({"requesters": (world.dev.account("someone").address,)},
                      DenialReason.NOT_ALLOWED_REQUESTER),
        "too-early": ({"not_before": now + 86_400}, DenialReason.TOO_EARLY),
        "too-late": ({"not_before": now - 7200, "not_after": now - 3600}, DenialReason.TOO_LATE),
        "daily-window": ({"daily_start_minute": (minute + 120) % 1440,
                          "daily_end_minute": (minute + 180) % 1440}, DenialReason.OUTSIDE_DAILY_WINDOW),
        "weekdays": ({"weekday_mask": 0x7F & ~(1 << today)}, DenialReason.OUTSIDE_WEEKDAYS),
        "missing-attestation": (geo, DenialReason.MISSING_ATTESTATION),
        "untrusted-attestor": (geo, DenialReason.UNTRUSTED_ATTESTOR),
        "forged-signature": (geo, DenialReason.BAD_ATTESTATION_SIGNATURE),
        "other-requester": (geo, DenialReason.ATTESTATION_FOR_OTHER_REQUESTER),
        "stale": (geo, DenialReason.STALE_ATTESTATION),
        "from-future": (geo, DenialReason.ATTESTATION_FROM_FUTURE),
        "replayed-attestation": (geo, DenialReason.ATTESTATION_REPLAYED),
        "outside-regions": (geo, DenialReason.OUTSIDE_REGIONS),
        "too-coarse": ({**geo, "max_accuracy_m": 100}, DenialReason.ATTESTATION_TOO_COARSE),
        "revoked": ({}, DenialReason.DATASET_REVOKED),
    }
    changes, reason = policies[path]
    built = shared_dataset(world, "geo") if changes is geo else cheap_active_dataset(world, Policy(**changes))
    if path == "revoked":
        world.chain.datasets.revoke(world.owner, built.dataset_id)
    if path in ("requester", "too-early", "too-late", "daily-window", "weekdays", "revoked",
                "missing-attestation"):
        rid = world.request(built).request_id
    elif path == "untrusted-attestor":
        rid = attested_request(world, built, other)
    elif path == "forged-signature":
        rid = attested_request(world, built, attestor, signer=other)
    elif path == "other-requester":
        rid = attested_request(world, built, attestor, for_requester=world.dev.account("someone"))
    elif path == "stale":
        rid = attested_request(world, built, attestor, issued_at=now - 3600)
    elif path == "from-future":
        rid = attested_request(world, built, attestor, issued_at=now + 3600)
    elif path == "replayed-attestation":
        nonce = os.urandom(32)
        issued = now - 10
        first = attested_request(world, built, attestor, nonce=nonce, issued_at=issued)
        assert world.chain.retrievals.request(first).status == RequestStatus.APPROVED
        rid = attested_request(world, built, attestor, nonce=nonce, issued_at=issued)
    elif path == "outside-regions":
        rid = attested_request(world, built, attestor, lat=LONDON.lat_e6, lon=LONDON.lon_e6)
    else:  # too-coarse
        rid = attested_request(world, built, attestor, accuracy=500)

    assert_denied(world, rid, reason, "contract")
    # no member can release shares for it ...
    assert_no_release(world, rid)
    # ... and a holder asked to deliver it anyway answers nothing
    assert world.agent.handlers.deliver(rid) is False
    assert world.deliveries(rid) == []
    assert "request not open" in refusals(caplog)[-1]


def test_missing_self_and_replayed_approvals_never_open_a_request(world, caplog) -> None:
    approver = world.dev.account("approver")
    policy = Policy(groups=(ApprovalGroup("ops", (approver.address, world.requester.address), 1),))
    built = cheap_active_dataset(world, policy)
    rid = world.request(built).request_id
    retrievals = world.chain.retrievals
    assert retrievals.request(rid).status == RequestStatus.PENDING          # missing approvals
    with pytest.raises(TransactionReverted) as info:                          # self-approval
        retrievals.approve(world.requester, retrievals.approval_subject(rid))
    assert info.value.error == "RetrievalSelfApproval"
    deadline = world.now() + 600
    subject = retrievals.approval_subject(rid)
    own = eip712.sign(retrievals.domain, "Approval",
                      eip712.approval_message(subject, world.requester.address, 1, deadline), world.requester)
    with pytest.raises(TransactionReverted) as info:                          # self-approval by sig
        retrievals.approve_by_sig(world.owner, subject, world.requester.address, 1, deadline, own)
    assert info.value.error == "RetrievalSelfApproval"
    # a signature approving *another* request cannot be replayed here, nor reused once used
    other = retrievals.approval_subject(world.request(built).request_id)
    sig = eip712.sign(retrievals.domain, "Approval",
                      eip712.approval_message(other, approver.address, 7, deadline), approver)
    with pytest.raises(TransactionReverted):
        retrievals.approve_by_sig(world.owner, subject, approver.address, 7, deadline, sig)
    retrievals.approve_by_sig(world.owner, other, approver.address, 7, deadline, sig)
    with pytest.raises(TransactionReverted) as info:
        retrievals.approve_by_sig(world.owner, other, approver.address, 7, deadline, sig)
    assert info.value.error == "RetrievalNonceUsed"
    assert retrievals.request(rid).status == RequestStatus.PENDING
    assert not retrievals.has_approved(rid, approver.address)
    # nothing to act on: no member can release, the members leave it alone, holder-1 refuses
    assert_no_release(world, rid)
    assert all(rid not in member.poll().outcomes for member in world.kos)
    assert world.agent.handlers.deliver(rid) is False
    assert outcome(world, rid) == "pending"


# --- 2. conditions that change after approval ----------------------------------------------

@pytest.mark.parametrize("path", ["too-late", "daily-window", "weekdays", "expired", "revoked"])
def test_window_closing_after_approval_is_refused_by_holder_and_kos(world, caplog, path: str) -> None:
    now = world.now()
    minute = minute_of_day(now)
    changes: dict[str, Any] = {"approval_window": 3 * 86_400}
    if path == "too-late":
        changes["not_after"] = now + 60
        step, reason, why = 600, DenialReason.TOO_LATE, "TOO_LATE"
    elif path == "daily-window":
        changes.update(daily_start_minute=minute, daily_end_minute=(minute + 30) % 1440)
        step, reason, why = 3 * 3600, DenialReason.OUTSIDE_DAILY_WINDOW, "OUTSIDE_DAILY_WINDOW"
    elif path == "weekdays":
        changes["weekday_mask"] = 1 << weekday(now)
        step, reason, why = 86_400, DenialReason.OUTSIDE_WEEKDAYS, "OUTSIDE_WEEKDAYS"
    elif path == "expired":
        changes["approval_window"] = 60
        step, reason, why = 120, DenialReason.APPROVAL_EXPIRED, "request not open"
    else:
        step, reason, why = 1, DenialReason.DATASET_REVOKED, "request not open"
    built = cheap_active_dataset(world, Policy(**changes))
    rid, later = world.request(built).request_id, world.request(built).request_id
    assert world.chain.retrievals.is_open(rid) and world.chain.retrievals.is_open(later)
    world.unlock(rid)  # members 1 and 2 released while everything still held: tokens are out
    if path == "revoked":
        world.chain.datasets.revoke(world.owner, built.dataset_id)
    world.advance(step)
    assert_holder_refuses(world, built, rid, caplog, why)
    third = world.kos[2].poll().outcomes.get(rid)  # the member that had not released
    if path == "expired":  # tokens were issued before expiry: it drops the request, nothing to deny
        assert third == Outcome.DROPPED
        assert world.chain.retrievals.request(rid).status == RequestStatus.APPROVED
        return
    assert third == Outcome.DENIED  # recorded with the reason; past the threshold it stays Approved
    assert world.chain.committee.releases(rid, world.dev.deployment.start_block)[-1].reason == int(reason)
    assert world.chain.retrievals.request(rid).status == RequestStatus.APPROVED
    assert_kos_denies(world, later, reason)


def test_expired_deadline_without_tokens_is_denied_by_the_kos(world) -> None:
    built = cheap_active_dataset(world, Policy(approval_window=60))
    rid = world.request(built).request_id
    world.advance(120)
    assert_no_release(world, rid)
    assert_kos_denies(world, rid, DenialReason.APPROVAL_EXPIRED)


# --- 3. defence in depth: the chain's check assumed broken ------------------------------------

DEPTH = ["requester", "too-early", "too-late", "daily-window", "weekdays", "missing-attestation",
         "untrusted-attestor", "forged-signature", "stale", "outside-regions", "missing-approvals",
         "self-approval"]


@pytest.mark.parametrize("path", DEPTH)
def test_holder_and_kos_refuse_what_a_broken_contract_let_through(world, caplog, monkeypatch,
                                                                  path: str) -> None:
    now = world.now()
    attestor = world.dev.account("attestor")
    approver = world.dev.account("approver")
    geo_paths = ("untrusted-attestor", "forged-signature", "stale", "outside-regions")
    built = shared_dataset(world, "geo" if path in geo_paths else "open")
    real = built.policy

    def open_request() -> int:
        if path in geo_paths:
            made = attested_request(world, built, attestor)
        else:
            made = world.request(built).request_id
        assert world.chain.retrievals.is_open(made)
        return int(made)

    rid, for_kos = open_request(), open_request()

    minute, today = minute_of_day(now), weekday(now)
    stricter: dict[str, tuple[dict[str, Any], DenialReason, str]] = {
        "requester": ({"requesters": (world.dev.account("someone").address,)},
                      DenialReason.NOT_ALLOWED_REQUESTER, "NOT_ALLOWED_REQUESTER"),
        "too-early": ({"not_before": now + 86_400}, DenialReason.TOO_EARLY, "TOO_EARLY"),
        "too-late": ({"not_before": now - 7200, "not_after": now - 3600}, DenialReason.TOO_LATE,
                     "TOO_LATE"),
        "daily-window": ({"daily_start_minute": (minute + 120) % 1440,
                          "daily_end_minute": (minute + 180) % 1440},
                         DenialReason.OUTSIDE_DAILY_WINDOW, "OUTSIDE_DAILY_WINDOW"),
        "weekdays": ({"weekday_mask": 0x7F & ~(1 << today)}, DenialReason.OUTSIDE_WEEKDAYS,
                     "OUTSIDE_WEEKDAYS"),
        "missing-attestation": ({"attestors": (attestor.address,), "max_attestation_age": 600,
                                 "circles": (PARIS,)}, DenialReason.MISSING_ATTESTATION,
                                "MISSING_ATTESTATION"),
        "untrusted-attestor": ({"attestors": (world.dev.account("other-attestor").address,)},
                               DenialReason.UNTRUSTED_ATTESTOR, "UNTRUSTED_ATTESTOR"),
        "forged-signature": ({}, DenialReason.BAD_ATTESTATION_SIGNATURE, "BAD_ATTESTATION_SIGNATURE"),
        "stale": ({"max_attestation_age": 10}, DenialReason.STALE_ATTESTATION, "STALE_ATTESTATION"),
        "outside-regions": ({"circles": (LONDON,)}, DenialReason.OUTSIDE_REGIONS, "OUTSIDE_REGIONS"),
        "missing-approvals": ({"groups": (ApprovalGroup("legal", (approver.address,), 1),)},
                              DenialReason.KOS_POLICY_MISMATCH, "KOS_POLICY_MISMATCH"),
        "self-approval": ({"groups": (ApprovalGroup("ops", (world.requester.address,), 1),)},
                          DenialReason.KOS_POLICY_MISMATCH, "KOS_POLICY_MISMATCH"),
    }
    changes, reason, why = stricter[path]
    lie = dataclasses.replace(real, **changes)
    read_policy = world.chain.datasets.policy

    def policy(dataset_id: bytes, version: int | None = None) -> Policy:
        return lie if dataset_id == built.dataset_id else read_policy(dataset_id, version)

    monkeypatch.setattr(world.chain.datasets, "policy", policy)
    if path == "self-approval":  # the broken contract counted the requester's own approval
        monkeypatch.setattr(world.chain.retrievals, "has_approved", lambda _rid, _member: True)
    if path == "forged-signature":  # the signature does not verify in the checkers' domain
        real_domain = world.chain.retrievals.domain
        monkeypatch.setattr(world.chain.retrievals, "domain",
                            Domain(real_domain.chain_id + 1, real_domain.coordinator))

    world.unlock(rid)  # members that do not check: only the holder stands in the way
    assert_holder_refuses(world, built, rid, caplog, why)
    assert_kos_denies(world, for_kos, reason)

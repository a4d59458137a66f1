"""The contract, the KOS and the holder reach the same verdict, reason code included.

Real contracts on anvil. For each drawn case a policy is installed, a request is made at a
chosen block time (``requestRetrieval`` records the contract's verdict), approvals are
given, and then the KOS's check (``KapCheck.reason``) and the holder's
(``holder_agent.kap.recheck_reason``) judge the same request through the project's own
chain layer, at chain time ``requestedAt``. The contract's verdict is the denial reason it
recorded, ``KosPolicyMismatch`` (17) when the request waits for approvals, 0 when approved.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest
from contract_helpers import EMPTY_ATT, REQ_APPROVED, REQ_DENIED, REQ_PENDING, ZERO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holder_agent.kap import recheck_reason, recheck_request
from kos.checks import KapCheck, PollCache
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.connection import ChainClient
from shardkey.chain.deployment import Deployment
from shardkey.policy import ApprovalGroup, Circle, DenialReason, Policy, Polygon
from shardkey.policy.errors import PolicyValueError

PARIS = (48_856_600, 2_352_200)
LONDON = (51_507_400, -127_800)
PARIS_CIRCLE = Circle(*PARIS, 50_000)
PARIS_SQUARE = Polygon((48_500_000, 48_500_000, 49_200_000, 49_200_000),
                       (2_000_000, 2_700_000, 2_700_000, 2_000_000))


@pytest.fixture(scope="module")
def sk(chain, project, admin, holder_registry, dataset_registry, coordinator) -> ShardKeyChain:
    """The project's chain layer over the test's anvil and contracts."""
    client = ChainClient(chain.provider.uri)
    committee = project.KosCommittee.deploy(admin, coordinator, sender=admin)
    deployment = Deployment(chain.provider.uri, chain.chain_id, 0, str(holder_registry.address),
                            str(dataset_registry.address), str(coordinator.address), str(committee.address))
    return ShardKeyChain(deployment, client)


def kos_verdict(sk: ShardKeyChain, rid: int) -> DenialReason:
    req = sk.retrievals.request(rid)
    dataset = sk.datasets.dataset(req.dataset_id)
    return KapCheck(sk, 0).reason(req, dataset, req.requested_at, PollCache(sk))


def holder_verdict(sk: ShardKeyChain, rid: int) -> DenialReason:
    req = sk.retrievals.request(rid)
    return recheck_reason(sk, req, sk.datasets.dataset(req.dataset_id), req.requested_at, 0)


def contract_verdict(kit: Any, rid: int) -> DenialReason:
    status, reason = kit.status(rid)
    if status == REQ_DENIED:
        return DenialReason(reason)
    assert status in (REQ_PENDING, REQ_APPROVED)
    return DenialReason.KOS_POLICY_MISMATCH if status == REQ_PENDING else DenialReason.NONE


# --- explicit cases that the old checkers got wrong ------------------------------------------

def test_contract_attestor_signature_is_checked_on_chain(kit, sk, ds, wallet, approvers, outsider):
    """A wallet attestor's signature by a non-owner: 8 everywhere (the KOS used to trust any
    contract attestor, the holder any signature it could not recover from one)."""
    pol = Policy(attestors=(str(wallet.address),), max_attestation_age=600, circles=(PARIS_CIRCLE,))
    kit.dataset_registry.updatePolicy(ds, pol.to_abi_tuple(), sender=kit.owner)
    forged = kit.attest(*PARIS, 10, signer=outsider, nonce=os.urandom(32))
    rid, _ = kit.request(ds, att=forged[0], attestor=wallet, sig=forged[2], key=os.urandom(8))
    assert contract_verdict(kit, rid) is DenialReason.BAD_ATTESTATION_SIGNATURE
    assert kos_verdict(sk, rid) is DenialReason.BAD_ATTESTATION_SIGNATURE
    req = sk.retrievals.request(rid)
    problem = recheck_request(sk, req, sk.datasets.dataset(req.dataset_id), 0)
    assert problem is not None and "BAD_ATTESTATION_SIGNATURE" in problem
    good = kit.attest(*PARIS, 10, signer=approvers[2], nonce=os.urandom(32))  # the wallet's owner
    rid, _ = kit.request(ds, att=good[0], attestor=wallet, sig=good[2], key=os.urandom(8))
    assert contract_verdict(kit, rid) is kos_verdict(sk, rid) is DenialReason.NONE
    req = sk.retrievals.request(rid)
    assert recheck_request(sk, req, sk.datasets.dataset(req.dataset_id), 0) is None


def test_attestor_without_signature_is_a_missing_attestation(kit, sk, ds):
    """Attestor named, signature empty: 6 everywhere (the holder used to say 8)."""
    pol = Policy(attestors=(str(kit.attestor),), max_attestation_age=600, circles=(PARIS_CIRCLE,))
    kit.dataset_registry.updatePolicy(ds, pol.to_abi_tuple(), sender=kit.owner)
    att = kit.attest(*PARIS, 10, nonce=os.urandom(32))
    rid, _ = kit.request(ds, att=att[0], attestor=kit.attestor, sig=b"", key=os.urandom(8))
    assert contract_verdict(kit, rid) is kos_verdict(sk, rid) is DenialReason.MISSING_ATTESTATION
    req = sk.retrievals.request(rid)
    problem = recheck_request(sk, req, sk.datasets.dataset(req.dataset_id), 0)
    assert problem is not None and "MISSING_ATTESTATION" in problem


# --- the property -------------------------------------------------------------------------------

@dataclass
class Case:
    """One drawn policy and request."""

    policy: dict[str, Any]  # names and offsets from the request time, resolved by Runner.policy
    sender: str  # "requester" or "outsider"
    dataset: str  # "active", "pending" or "revoked"
    second_of_day: int
    days: int
    attestation: dict[str, Any] | None
    approvals: tuple[int, ...]


OFFSET = st.integers(-900, 900)


# Hypothesis favours the ends of a range (and the first choice of sampled_from), so rare
# values sit in the middle and the common one at both ends: most cases then get past the
# early checks and reach the attestation and approvals.

def one_in(n: int) -> st.SearchStrategy[bool]:
    """True about one time in ``n``."""
    return st.integers(0, 999).map(lambda k: 400 <= k < 400 + 1000 // n)


def mostly(common: Any, *rare: Any) -> st.SearchStrategy[Any]:
    """``common`` about 60% of the time, the ``rare`` ones share the rest."""
    def pick(k: int) -> Any:
        if 300 <= k < 700:
            return rare[(k - 300) * len(rare) // 400]
        return common
    return st.integers(0, 999).map(pick)


def rarely(strategy: st.SearchStrategy[Any], n: int = 4) -> st.SearchStrategy[Any]:
    """``strategy`` about one time in ``n``, else None."""
    return one_in(n).flatmap(lambda yes: strategy if yes else st.none())


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """Relative times (offsets from the request time) are resolved when the case runs."""
    geo = not draw(one_in(4))
    shapes = draw(st.sampled_from(["circle", "polygon", "both"])) if geo else ""
    groups: tuple[tuple[str, tuple[str, ...], int], ...] = ()
    layout = draw(mostly("none", "one", "two"))
    if layout == "one":
        groups = (("legal", ("a0", "a1"), draw(st.integers(1, 2))),)
    elif layout == "two":
        groups = (("legal", ("a0",), 1), ("ops", ("a1", "a2"), draw(st.integers(1, 2))))
    spec = {
        "requesters": draw(mostly((), ("requester",), ("outsider",), ("requester", "outsider"))),
        "not_before": draw(rarely(OFFSET)),
        "not_after": draw(rarely(OFFSET)),
        "weekday_mask": draw(mostly(0, 0x7F, draw(st.integers(1, 127)))),
        "daily": draw(rarely(st.tuples(st.integers(-120, 120), st.integers(-120, 120)))),
        "attestors": draw(mostly(("attestor",), ("wallet",), ("attestor", "wallet"))) if geo else (),
        "max_age": draw(st.integers(30, 600)) if geo else 0,
        "max_accuracy": draw(st.integers(1 if shapes != "circle" else 0, 200)) if geo else 0,
        "shapes": shapes,
        "groups": groups,
    }
    attestation = None
    if not draw(one_in(5)):  # mostly present
        attestation = {
            "claimed": draw(mostly("attestor", "wallet", "wallet", "outsider", "zero")),
            "signer": draw(mostly("right", "wrong")),
            "empty_sig": draw(one_in(10)),
            "for_other": draw(one_in(6)),
            "where": draw(mostly("paris", "london", "edge")),
            "accuracy": draw(st.integers(0, 300)),
            # issued_at = request time - age (< 0: from the future)
            "age": draw(st.one_of(st.integers(0, 30), st.integers(-60, 700))),
        }
    return Case(policy=spec, sender=draw(mostly("requester", "outsider")),
                dataset=draw(mostly("active", "active", "active", "pending", "revoked")),
                second_of_day=draw(st.integers(0, 86_399)), days=draw(st.integers(1, 7)),
                attestation=attestation,
                approvals=tuple(draw(st.lists(st.integers(0, 2), max_size=3, unique=True))))


class Runner:
    """Resolves drawn cases against the deployment, with a clock that only moves forward."""

    def __init__(self, kit: Any, wallet: Any, outsider: Any) -> None:
        self.kit, self.wallet, self.outsider = kit, wallet, outsider
        self.day = kit.day_start(1)
        self.pending = kit.register(confirm=False)
        self.revoked = kit.register()
        kit.dataset_registry.revokeDataset(self.revoked, sender=kit.owner)
        self.active = kit.register()
        self.seen: dict[DenialReason, int] = {}

    def account(self, name: str) -> Any:
        a0, a1, a2 = self.kit.approvers
        return {"requester": self.kit.requester, "outsider": self.outsider, "attestor": self.kit.attestor,
                "wallet": self.wallet, "a0": a0, "a1": a1, "a2": a2}[name]

    def addr(self, name: str) -> str:
        return str(self.account(name).address)

    def policy(self, spec: dict[str, Any], ts: int) -> Policy | None:
        daily = spec["daily"]
        minute = (ts % 86_400) // 60
        start, end = ((minute + daily[0]) % 1440, (minute + daily[1]) % 1440) if daily else (0, 0)
        circles = (PARIS_CIRCLE,) if spec["shapes"] in ("circle", "both") else ()
        polygons = (PARIS_SQUARE,) if spec["shapes"] in ("polygon", "both") else ()
        pol = Policy(
            requesters=tuple(self.addr(n) for n in spec["requesters"]),
            not_before=0 if spec["not_before"] is None else ts + spec["not_before"],
            not_after=0 if spec["not_after"] is None else ts + spec["not_after"],
            daily_start_minute=start, daily_end_minute=end, weekday_mask=spec["weekday_mask"],
            attestors=tuple(self.addr(n) for n in spec["attestors"]), max_attestation_age=spec["max_age"],
            max_accuracy_m=spec["max_accuracy"], circles=circles, polygons=polygons,
            groups=tuple(ApprovalGroup(name, tuple(self.addr(m) for m in members), required)
                         for name, members, required in spec["groups"]),
            approval_window=86_400)
        try:
            pol.validate()
        except PolicyValueError:  # e.g. not_after before not_before: the contract refuses it too
            return None
        return pol

    def attestation(self, spec: dict[str, Any] | None, sender: Any, ts: int) -> tuple[Any, Any, bytes]:
        if spec is None:
            return EMPTY_ATT, ZERO, b""
        lat, lon = {"paris": PARIS, "london": LONDON, "edge": (49_199_000, 2_699_000)}[spec["where"]]
        claimed = {"attestor": self.kit.attestor, "wallet": self.wallet, "outsider": self.outsider,
                   "zero": ZERO}[spec["claimed"]]
        right = self.kit.approvers[2] if spec["claimed"] == "wallet" else self.kit.attestor
        signer = right if spec["signer"] == "right" else self.outsider
        other = self.kit.requester if str(sender.address) == self.addr("outsider") else self.outsider
        for_whom = other if spec["for_other"] else sender
        att, _, sig = self.kit.attest(lat, lon, spec["accuracy"], issued_at=max(0, ts - spec["age"]),
                                      requester=for_whom, signer=signer, nonce=os.urandom(32))
        return att, claimed, b"" if spec["empty_sig"] else sig

    def run(self, case: Case) -> int | None:
        """Install the policy, make the request at its time, approve; the request id."""
        self.day += case.days * 86_400
        # The previous case mined blocks just after its own time (late in its day, maybe):
        # stay clear of them, the chain's clock never goes back.
        ts = max(self.day + case.second_of_day, self.kit.now + 20)
        ds = {"active": self.active, "pending": self.pending, "revoked": self.revoked}[case.dataset]
        members: set[str] = set()
        if case.dataset == "active":
            pol = self.policy(case.policy, ts)
            if pol is None:
                return None
            members = {m for g in pol.groups for m in g.members}
            self.kit.at(ts - 10)
            self.kit.dataset_registry.updatePolicy(ds, pol.to_abi_tuple(), sender=self.kit.owner)
        sender = self.account(case.sender)
        att, attestor, sig = self.attestation(case.attestation, sender, ts)
        self.kit.at(ts)
        rid, _ = self.kit.request(ds, sender=sender, att=att, attestor=attestor, sig=sig, key=os.urandom(8))
        for index in case.approvals:
            approver = self.kit.approvers[index]
            status, _ = self.kit.status(rid)
            if status != REQ_PENDING:
                break
            if str(approver.address) in members:
                self.kit.coordinator.approve(self.kit.subject(rid), sender=approver)
        return int(rid)


@pytest.fixture(scope="module")
def runner(kit, wallet, outsider) -> Runner:
    return Runner(kit, wallet, outsider)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_contract_kos_and_holder_agree(runner, sk, case: Case) -> None:
    rid = runner.run(case)
    if rid is None:
        return
    expected = contract_verdict(runner.kit, rid)
    assert (expected, kos_verdict(sk, rid), holder_verdict(sk, rid)) == (expected,) * 3, case
    runner.seen[expected] = runner.seen.get(expected, 0) + 1


"""Property tests: random sequences of calls from random accounts, invariants after each.

A seeded random loop (reproducible: the seed is in the test id) drives the three contracts
with every state-changing call of a retrieval's life, sent by an account drawn from everyone
the fixtures know (owner, requester, approvers, KOS, admin, holders, an outsider), with
valid and invalid arguments mixed. After every call the observable state is read back and
checked against these invariants:

- no token without approval: ``tokenIssued(r, h)`` only for a request that reached Approved
  (a ``RetrievalApproved`` event), and only for a fragment holder of its dataset;
- at most one token and one delivery per (request, holder): counted over every event, and a
  delivery only after that holder's token;
- policy versions only grow (and a request keeps the version it was made under);
- only listed parties change state: every call that succeeded was made by an account the
  design allows for it (KOS role for tokens/denials, the dataset owner for policy and
  revocation, a non-requester group member for approvals, a fragment holder with a token for
  deliveries, the requester for completion); a reverted call leaves the snapshot unchanged;
- request status moves only along the documented lifecycle (Denied and Completed are final).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from ape.exceptions import ContractLogicError
from contract_helpers import (
    APPROVAL_TYPES,
    EMPTY_ATT,
    REQ_APPROVED,
    REQ_COMPLETED,
    REQ_DENIED,
    REQ_PENDING,
    ZERO,
    approval_message,
    domain,
    policy,
    sign_typed,
)

STEPS = 40
SEEDS = [1, 2, 3]

# status -> statuses it may move to
TRANSITIONS = {
    REQ_PENDING: {REQ_PENDING, REQ_APPROVED, REQ_DENIED},
    REQ_APPROVED: {REQ_APPROVED, REQ_DENIED, REQ_COMPLETED},
    REQ_DENIED: {REQ_DENIED},
    REQ_COMPLETED: {REQ_COMPLETED},
}


class Model:
    """Drives random calls and checks the invariants after each one."""

    def __init__(self, kit: Any, rng: random.Random, datasets: list[bytes], wallet_free: list) -> None:
        self.kit = kit
        self.c = kit.coordinator
        self.reg = kit.dataset_registry
        self.rng = rng
        self.datasets = datasets
        self.approvers = wallet_free
        self.actors = [kit.owner, kit.requester, *wallet_free, kit.kos, kit.admin,
                       *kit.fragment_holders, kit.shard_holders[0], kit.outsider]
        self.requests: list[int] = []
        self.approved_ever: set[int] = set()
        self.tokens: dict[tuple[int, str], int] = {}
        self.deliveries: dict[tuple[int, str], int] = {}
        self.versions = {d: self.reg.datasetStatus(d)[1] for d in datasets}
        self.request_version: dict[int, int] = {}
        self.used_sigs: list[tuple] = []
        self.nonce = 0
        self.done = {"ok": 0, "reverted": 0}
        self.steps = 0

    # --- snapshot and invariants -------------------------------------------------

    def snapshot(self, target: int | None = None) -> dict:
        """Every request's record; per-holder flags and approvals of ``target`` (the request
        the call named) and of every request when ``target`` is None. A call can only change
        per-holder state of the request it names; the counters of the others catch any
        other change."""
        holders = [str(h) for h in self.kit.fragment_holders] + [str(self.kit.shard_holders[0])]
        snap: dict[Any, Any] = {"datasets": {d: tuple(self.reg.datasetStatus(d)) for d in self.datasets}}
        for rid in self.requests:
            r = self.c.request(rid)
            snap[rid] = (r.status, r.denialReason, r.tokensIssued, r.deliveries, r.policyVersion)
            if target is None or rid == target:
                snap[("holders", rid)] = (tuple(self.c.tokenIssued(rid, h) for h in holders),
                                          tuple(self.c.delivered(rid, h) for h in holders),
                                          tuple(self.c.hasApproved(rid, a) for a in self.approvers))
        return snap

    def check(self, before: dict, after: dict, ok: bool, what: str) -> None:
        if not ok:
            assert before == after, f"{what}: a reverted call changed state"
            return
        for rid in self.requests:
            if rid in before and rid in after:
                assert after[rid][0] in TRANSITIONS[before[rid][0]], f"{what}: {before[rid]} -> {after[rid]}"
        for d, (_, version) in after["datasets"].items():
            assert version >= before["datasets"][d][1], f"{what}: policy version went down"
            assert version >= self.versions[d]
            self.versions[d] = version
        holders = [str(h) for h in self.kit.fragment_holders] + [str(self.kit.shard_holders[0])]
        for rid in self.requests:
            r = after[rid]
            assert r[4] == self.request_version[rid], "a request's policy version changed"
            if ("holders", rid) not in after:
                if rid in before:  # not named by the call: its counters must not move
                    assert r[2:4] == before[rid][2:4], f"{what} changed request {rid}"
                continue
            tokens, deliveries, _ = after[("holders", rid)]
            for h, issued, delivered in zip(holders, tokens, deliveries, strict=True):
                if issued:
                    assert rid in self.approved_ever, f"token without approval: {rid} {h}"
                    assert h != str(self.kit.shard_holders[0]), "token to a non-fragment holder"
                assert not delivered or issued, f"delivery without token: {rid} {h}"
            assert r[2] == sum(tokens) and r[3] == sum(deliveries)
        assert all(n == 1 for n in self.tokens.values()), "two tokens for one (request, holder)"
        assert all(n == 1 for n in self.deliveries.values()), "two deliveries for one (request, holder)"

    def record(self, tx: Any) -> None:
        for e in tx.events:
            name = e.event_name
            if name == "RetrievalApproved":
                self.approved_ever.add(e.requestId)
            elif name == "TokenIssued":
                key = (e.requestId, str(e.holder))
                self.tokens[key] = self.tokens.get(key, 0) + 1
            elif name == "FragmentsDelivered":
                key = (e.requestId, str(e.holder))
                self.deliveries[key] = self.deliveries.get(key, 0) + 1
            elif name == "RetrievalRequested":
                self.requests.append(e.requestId)
                self.request_version[e.requestId] = e.policyVersion

    # --- actions -----------------------------------------------------------------------

    def pick_request(self, prefer_approved: bool = False) -> int:
        if not self.requests or self.rng.random() < 0.1:
            return self.rng.choice([0, 10_000])  # unknown ids
        if prefer_approved and self.approved_ever and self.rng.random() < 0.7:
            return self.rng.choice(sorted(self.approved_ever))
        return self.rng.choice(self.requests)

    def allowed(self, action: str, sender: Any, args: tuple) -> bool:
        """Whether `sender` is a party the design lets make this call succeed."""
        s = str(sender)
        k = self.kit
        if action in ("issueTokens", "denyRequest"):
            return s == str(k.kos)
        if action in ("updatePolicy", "revokeDataset"):
            return s == str(k.owner)
        if action == "approve":
            r = self.c.request(args[0][0])
            members = {m for g in self.reg.policy(r.datasetId, r.policyVersion).groups for m in g.members}
            return s in {str(m) for m in members} and s != str(r.requester)
        if action == "approveBySig":
            return True  # anyone relays; the signer is checked separately below
        if action == "deliverFragments":
            return s in {str(h) for h in k.fragment_holders}
        if action == "completeRetrieval":
            return s == str(self.c.request(args[0]).requester)
        if action == "requestRetrieval":
            return True  # anyone may ask; the policy decides the outcome
        return False

    def step(self) -> None:
        rng, k = self.rng, self.kit
        action = rng.choice(["requestRetrieval", "requestRetrieval", "approve", "approve",
                             "approveBySig", "issueTokens", "issueTokens", "issueTokens", "deliverFragments",
                             "deliverFragments", "completeRetrieval", "denyRequest", "updatePolicy",
                             "revokeDataset", "advance"])
        if action == "revokeDataset" and self.steps < STEPS * 2 // 3:
            action = "advance"  # revoke late, so the last dataset is usable for most of the run
        self.steps += 1
        # mostly an account that may succeed, otherwise anyone at all
        plausible = {"requestRetrieval": [k.requester, k.outsider], "approve": self.approvers,
                     "issueTokens": [k.kos], "denyRequest": [k.kos], "updatePolicy": [k.owner],
                     "revokeDataset": [k.owner], "deliverFragments": list(k.fragment_holders),
                     "completeRetrieval": [k.requester]}
        sender = rng.choice(plausible.get(action, self.actors) if rng.random() < 0.75 else self.actors)
        if action == "advance":
            k.chain.mine(1, deltatime=rng.choice([1, 60, 600, 600, 4000]) if rng.random() < 0.5 else 1)
            return
        signer = None
        if action == "requestRetrieval":
            args: tuple = (rng.choice(self.datasets), b"epk", *_empty_attestation())
        elif action == "approve":
            args = (self.kit.subject(self.pick_request()),)
        elif action == "approveBySig":
            args, signer = self.approval_sig()
        elif action == "issueTokens":
            pool = list(k.fragment_holders) if rng.random() < 0.8 else [*k.fragment_holders,
                                                                          k.shard_holders[0]]
            holders = rng.sample(pool, rng.choice([1, 2]))
            args = (self.pick_request(prefer_approved=True), holders, [b"tok"] * len(holders))
        elif action == "deliverFragments":
            args = (self.pick_request(prefer_approved=True), b"sealed")
        elif action == "completeRetrieval":
            args = (self.pick_request(),)
        elif action == "denyRequest":
            args = (self.pick_request(), rng.choice([1, 16, 17]))
        elif action == "updatePolicy":
            args = (rng.choice(self.datasets), self.random_policy())
        else:  # revokeDataset: only the last dataset, so the others stay usable
            args = (self.datasets[-1],)
        self.do(action, args, sender, signer)

    def do(self, action: str, args: tuple, sender: Any, signer: Any = None) -> None:
        """Send one call, then check every invariant (a revert must change nothing)."""
        target = self.reg if action in ("updatePolicy", "revokeDataset") else self.c
        named = args[0] if action not in ("requestRetrieval", "updatePolicy", "revokeDataset") else -1
        if action in ("approve", "approveBySig"):
            named = args[0][0]  # an ApprovalSubject: the request id comes first
        before = self.snapshot(named)
        try:
            tx = getattr(target, action)(*args, sender=sender)
        except ContractLogicError:
            self.done["reverted"] += 1
            self.check(before, self.snapshot(named), False, f"{action} by {sender}")
            return
        self.done["ok"] += 1
        self.record(tx)
        what = f"{action}{args[:1]} by {sender}"
        assert self.allowed(action, sender, args), f"{what} succeeded for a party not listed"
        if action in ("approve", "approveBySig"):
            assert tuple(args[0]) == self.kit.subject(args[0][0]), f"{what}: approved other fields"
        if action == "approveBySig":
            assert signer is not None and str(signer) != str(self.c.request(args[0][0]).requester), what
        self.check(before, self.snapshot(named), True, what)

    def approval_sig(self) -> tuple[tuple, Any]:
        """A signed approval: fresh, replayed, signed by someone else, or by the requester."""
        rng, k = self.rng, self.kit
        if self.used_sigs and rng.random() < 0.25:
            return rng.choice(self.used_sigs), None  # replay of an accepted or refused signature
        rid = self.pick_request()
        claimed = rng.choice([*self.approvers, k.requester, k.outsider])
        actual = claimed if rng.random() < 0.8 else rng.choice(self.approvers)
        self.nonce += 1
        deadline = k.now + rng.choice([-10, 3600])
        subject = k.subject(rid)
        if self.nonce % 10 == 0:  # signed for another request with this id (no rng draw: seeds keep runs)
            subject = (rid, subject[1], str(k.outsider), subject[3])
        msg = approval_message(subject, claimed, self.nonce, deadline)
        sig = sign_typed(actual.private_key, domain(self.c, k.chain_id), APPROVAL_TYPES, msg)
        args = (subject, claimed, self.nonce, deadline, sig)
        self.used_sigs.append(args)
        return args, claimed

    def random_policy(self) -> tuple:
        rng = self.rng
        members = [str(a) for a in self.approvers]
        groups = [] if rng.random() < 0.3 else [("g", rng.sample(members, 2), rng.choice([1, 2]))]
        requesters = [] if rng.random() < 0.5 else [str(self.kit.requester)]
        return policy(groups=groups, requesters=requesters, approvalWindow=rng.choice([60, 3600, 3600]))


def _empty_attestation() -> tuple:
    return (EMPTY_ATT, ZERO, b"")


@pytest.mark.parametrize("seed", SEEDS)
def test_random_call_sequences_keep_invariants(kit, approvers, outsider, seed: int) -> None:
    a0, a1, _ = approvers
    kit.outsider = outsider
    rng = random.Random(seed)
    members = [str(a0), str(a1), str(approvers[2])]
    datasets = [
        kit.register(policy(groups=[("legal", members[:2], 1), ("ops", members[2:], 1)])),
        kit.register(policy()),
        kit.register(policy(requesters=[str(kit.requester)], groups=[("g", members, 2)])),
    ]
    model = Model(kit, rng, datasets, list(approvers))
    # one honest retrieval first, so the random calls have tokens and deliveries to abuse
    model.do("requestRetrieval", (datasets[1], b"epk", *_empty_attestation()), kit.requester)
    first = model.requests[-1]
    model.do("issueTokens", (first, [kit.fragment_holders[0]], [b"tok"]), kit.kos)
    model.do("deliverFragments", (first, b"sealed"), kit.fragment_holders[0])
    assert model.tokens and model.deliveries
    for _ in range(STEPS):
        model.step()
    model.check(model.snapshot(), model.snapshot(), True, "final full snapshot")
    # the run must have exercised both outcomes, or the invariants prove little
    assert model.done["ok"] >= 10 and model.done["reverted"] >= 10, model.done

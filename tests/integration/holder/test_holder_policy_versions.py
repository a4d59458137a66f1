"""The holder judges a request under the dataset's current policy version too, as the
committee members do.

A request made (and approved) under v1 still gets the committee's token after the owner
published v2 (the test's members release all the same); if v2 no longer allows the requester,
the holder must not serve it (``KosPolicyMismatch``, the reason a member gives for the same case).
"""

from __future__ import annotations

from shardkey.policy import ApprovalGroup
from shardkey.policy.model import Policy


def _refusals(caplog) -> list[str]:
    return [str(getattr(r, "fields", {}).get("reason"))
            for r in caplog.records if r.getMessage().startswith("token not answered")]


def test_token_under_superseded_policy_is_not_served(world, caplog) -> None:
    built = world.active_dataset(Policy())  # v1: anyone
    req = world.request(built)
    assert world.chain.retrievals.is_open(req.request_id)
    someone = world.dev.account("someone-else")
    world.chain.datasets.update_policy(world.owner, built.dataset_id, Policy(requesters=(someone.address,)))
    assert world.chain.datasets.dataset(built.dataset_id).policy_version == 2
    world.unlock(req.request_id)  # the token is valid on chain: v1 approved the request
    world.settle()
    assert world.deliveries(req.request_id) == []
    assert not world.chain.retrievals.delivered(req.request_id, world.me)
    refusals = _refusals(caplog)
    assert refusals and refusals[-1].startswith("policy v1: KOS_POLICY_MISMATCH"), refusals


def test_token_under_superseded_policy_that_still_allows_is_served(world) -> None:
    built = world.active_dataset(Policy())
    req = world.request(built)
    world.chain.datasets.update_policy(world.owner, built.dataset_id,
                                       Policy(requesters=(world.requester.address,)))
    world.unlock(req.request_id)
    world.settle()
    assert world.chain.retrievals.delivered(req.request_id, world.me)


def test_current_version_adding_approvals_stops_delivery(world, caplog) -> None:
    built = world.active_dataset(Policy())
    req = world.request(built)
    approver = world.dev.account("approver")
    world.chain.datasets.update_policy(world.owner, built.dataset_id,
                                       Policy(groups=(ApprovalGroup("legal", (approver.address,), 1),)))
    world.unlock(req.request_id)
    world.settle()
    assert world.deliveries(req.request_id) == []
    assert _refusals(caplog)[-1].startswith("policy v1: KOS_POLICY_MISMATCH")

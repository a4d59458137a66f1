"""A member's releases per requester are rate limited (chain time) where the policy is open
to anyone: one over the limit is deferred (logged, left waiting), then released once the
requester's window allows; listed requesters are not limited."""

from __future__ import annotations

import logging

from kos.orchestrator import Outcome
from shardkey.ratelimit import RateLimiter


def test_releases_over_the_limit_are_deferred_then_released(world, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="kos.orchestrator")
    dataset = world.dataset()  # open to anyone, one approval needed
    ids = [world.request(dataset) for _ in range(3)]
    for request_id in ids:
        world.approve(request_id)
    limit = RateLimiter(limit=2, window=600)
    member = world.member(0, issue_limit=limit)

    report = member.poll()
    outcomes = sorted(report.outcomes[i].value for i in ids)
    assert outcomes == ["issued", "issued", "waiting"]  # requests are settled in parallel
    late = next(i for i in ids if report.outcomes[i] == Outcome.WAITING)
    assert world.released_by(late) == []
    assert list(member.orchestrator.deferred()) == [late]
    other = world.request(dataset, world.dev.account("second-requester"))  # its own allowance
    world.approve(other)
    report = member.poll()
    assert report.outcomes.get(other) == Outcome.ISSUED and report.outcomes[late] == Outcome.WAITING
    deferred = [r for r in caplog.records if r.getMessage().startswith("release deferred")]
    assert [r.fields["request"] for r in deferred] == [late]  # logged once, not every poll

    world.advance(601)
    report = member.poll()
    assert report.outcomes[late] == Outcome.ISSUED
    assert world.released_by(late) == [world.members[0].address]
    assert member.orchestrator.deferred() == {}
    world.serve(late, members=(1,))
    world.assert_served(late, dataset)


def test_listed_requesters_are_not_limited(world) -> None:
    dataset = world.dataset(world.policy(requesters=(world.requester.address,)))
    ids = [world.request(dataset) for _ in range(3)]
    for request_id in ids:
        world.approve(request_id)
    report = world.member(0, issue_limit=RateLimiter(limit=1, window=600)).poll()
    assert [report.outcomes[i] for i in ids] == [Outcome.ISSUED] * 3

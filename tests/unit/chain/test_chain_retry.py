"""Back-off on recorded provider answers: which are transient, how long they ask us to wait,
and the bounds of the retry policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shardkey.chain.retry import RetryPolicy, Transient, classify, retry_after
from shardkey.service.loop import Backoff

ANSWERS = json.loads((Path(__file__).parent / "fixtures" / "provider_answers.json").read_text())


@pytest.mark.parametrize("answer", ANSWERS["transients"], ids=lambda a: a["name"])
def test_each_recorded_rate_limit_or_outage_is_transient_with_its_hint(answer: dict[str, Any]) -> None:
    transient = classify(answer["status"], answer["headers"], answer["body"])
    assert transient is not None
    expected = (answer["kind"], answer["hint"], answer["bench"])
    assert (transient.kind, transient.hint, transient.bench) == expected


@pytest.mark.parametrize("answer", ANSWERS["answers"] + ANSWERS["range_refusals"], ids=lambda a: a["name"])
def test_real_answers_and_range_refusals_are_not_retried_as_they_are(answer: dict[str, Any]) -> None:
    # Infura's "more than 10000 results" is code -32005 too: a smaller range answers it, not a wait.
    assert classify(answer["status"], answer["headers"], answer["body"]) is None


def test_retry_after_takes_seconds_or_an_http_date_and_clips_long_waits() -> None:
    assert retry_after("3") == 3.0
    assert retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_after("86400") == 60.0
    assert retry_after("soon") is None and retry_after(None) is None


def test_the_policy_waits_the_hint_else_backs_off_and_gives_up_within_its_bounds() -> None:
    now = [100.0]
    policy = RetryPolicy(attempts=4, total=10.0, backoff=Backoff(base=0.5, cap=4.0), clock=lambda: now[0])
    assert policy.delay(1, Transient("http_429", "x", hint=2.5)) == 2.5
    assert policy.delay(3, Transient("http_429", "x", hint=0.0)) == 2  # Retry-After: 0 still backs off
    assert policy.delay(3, Transient("http_429", "x", hint=1.0)) == 2  # a hint is a floor
    assert [policy.delay(n, Transient("http_5xx", "x")) for n in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 4, 4]
    assert not policy.gives_up(3, started=100.0, wait=1.0)
    assert policy.gives_up(4, started=100.0, wait=0.0)  # attempts spent
    now[0] = 108.0
    assert policy.gives_up(1, started=100.0, wait=2.5)  # the wait would pass the total


def test_receipt_polls_start_within_milliseconds_and_settle_at_fifty() -> None:
    """A devnet mines on arrival: the first polls come a few ms apart, then 50 ms apart."""
    from shardkey.chain.connection import RECEIPT_POLLS

    delays = [RECEIPT_POLLS.delay(polls) for polls in range(1, 10)]
    assert delays[:4] == [0.005, 0.01, 0.02, 0.04]
    assert set(delays[4:]) == {0.05}

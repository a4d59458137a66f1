"""Range adaptation of log queries against recorded provider refusals, and a property test:
whatever a range-capping provider answers, every block is read exactly once, in order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardkey.chain.errors import ChainError
from shardkey.chain.logs import ProviderBehind, RangeAdapter, scan
from shardkey.chain.retry import range_refusal
from shardkey.chain.rpc import RpcError

ANSWERS = json.loads((Path(__file__).parent / "fixtures" / "provider_answers.json").read_text())
REFUSALS = {a["name"]: a for a in ANSWERS["range_refusals"]}


def refusal_error(name: str, **replace: str) -> RpcError:
    error = dict(REFUSALS[name]["body"]["error"])
    for old, new in replace.items():
        error["message"] = error["message"].replace(old, new)
    return RpcError("http://rpc.example", "eth_getLogs", error)


@pytest.mark.parametrize("answer", ANSWERS["range_refusals"], ids=lambda a: a["name"])
def test_each_recorded_refusal_is_recognised(answer: dict[str, Any]) -> None:
    refusal = range_refusal(answer["body"]["error"]["message"])
    assert refusal is not None
    assert refusal.kind == answer["kind"]
    assert refusal.suggested == (tuple(answer["suggested"]) if answer["suggested"] else None)
    assert refusal.cap == answer["cap"]


@pytest.mark.parametrize("answer", ANSWERS["transients"] + ANSWERS["answers"], ids=lambda a: a["name"])
def test_other_answers_are_not_range_refusals(answer: dict[str, Any]) -> None:
    body = answer["body"] or {}
    assert range_refusal(str(body.get("error", {}).get("message", ""))) is None


def test_alchemy_suggested_range_is_used_as_given() -> None:
    adapter = RangeAdapter()
    start = 0x1312d00
    assert adapter.refused(range_refusal(REFUSALS["alchemy_log_response_size"]["body"]["error"]["message"]),
                           start, start + 1999) == 0x13130f7
    assert adapter.span == 1016


def test_a_stated_cap_is_used_and_never_grown_past() -> None:
    adapter = RangeAdapter()
    assert adapter.refused(range_refusal("exceed maximum block range: 500"), 0, 1999) == 499
    for _ in range(100):
        adapter.succeeded(adapter.span)
    assert adapter.span == 500


def test_an_unrecognised_range_refusal_halves_and_successes_grow_back_slowly() -> None:
    adapter = RangeAdapter()
    assert adapter.refused(range_refusal("try a smaller block range"), 10, 2009) == 1009
    assert adapter.span == 1000
    spans = []
    for _ in range(12):
        adapter.succeeded(adapter.span)
        spans.append(adapter.span)
    assert spans[:3] == [1000, 1000, 1000] and spans[3] == 1250  # a quarter after four
    assert spans[-1] == 1952 and max(spans) <= 2000


def test_head_lag_reads_up_to_the_providers_head_never_past() -> None:
    asked: list[tuple[int, int]] = []
    provider_head = [105]

    def fetch(first: int, last: int) -> list[int]:
        asked.append((first, last))
        if last > provider_head[0]:
            raise refusal_error("beyond_current_head")
        return list(range(first, last + 1))

    chunks = list(scan(fetch, 100, 120, RangeAdapter(), lambda: provider_head[0]))
    assert [(a, b) for a, b, _ in chunks] == [(100, 105)]
    assert max(last for _, last in asked if (_, last) != (100, 120)) == 105
    with pytest.raises(ProviderBehind, match="behind block 106"):
        list(scan(fetch, 106, 120, RangeAdapter(), lambda: provider_head[0]))


def test_an_error_that_is_no_range_refusal_propagates() -> None:
    def fetch(first: int, last: int) -> list[int]:
        raise RpcError("http://rpc.example", "eth_getLogs", {"code": -32000, "message": "invalid params"})

    with pytest.raises(RpcError, match="invalid params"):
        list(scan(fetch, 0, 10, RangeAdapter(), lambda: 10))


def test_a_provider_refusing_even_one_block_is_an_error_not_a_loop() -> None:
    def fetch(first: int, last: int) -> list[int]:
        raise refusal_error("geth_10000_results")

    with pytest.raises(ChainError, match="single block 0"):
        list(scan(fetch, 0, 10_000, RangeAdapter(), lambda: 10_000))


MESSAGES = ["geth_10000_results", "infura_10000_results", "alchemy_log_response_size",
            "exceed_maximum_block_range", "query_exceeds_max_block_range", "unrecognised_block_range"]


@settings(max_examples=300, deadline=None)
@given(start=st.integers(0, 10_000), length=st.integers(1, 6_000), cap=st.integers(1, 3_000),
       message=st.sampled_from(MESSAGES), lag=st.lists(st.integers(0, 50), max_size=30),
       initial=st.integers(1, 5_000))
def test_every_block_is_read_exactly_once_in_order(start: int, length: int, cap: int, message: str,
                                                   lag: list[int], initial: int) -> None:
    """A fake provider caps ranges at ``cap`` blocks with one refusal message (suggesting a
    range or stating the cap where the real one does) and now and then lags its head."""
    end = start + length - 1
    lags = iter(lag)
    head = [end]

    def fetch(first: int, last: int) -> list[int]:
        head[0] = end - next(lags, 0)
        if last > head[0]:
            raise refusal_error("beyond_current_head")
        if last - first + 1 > cap:
            if message == "infura_10000_results":
                raise refusal_error(message, **{"0x30D40": hex(first), "0x30E3F": hex(first + cap - 1)})
            if message == "alchemy_log_response_size":
                raise refusal_error(message, **{"0x1312d00": hex(first), "0x13130f7": hex(first + cap - 1)})
            if message in ("exceed_maximum_block_range", "query_exceeds_max_block_range"):
                number = "5000" if message.startswith("exceed") else "100000"
                raise refusal_error(message, **{number: str(cap)})
            raise refusal_error(message)
        return list(range(first, last + 1))

    read: list[int] = []
    position = start
    adapter = RangeAdapter(span=initial, max_span=5_000)
    while position <= end:  # a lagging head ends a scan early: the caller scans on from there
        try:
            for first, last, blocks in scan(fetch, position, end, adapter, lambda: head[0]):
                assert first == position and blocks == list(range(first, last + 1))
                read.extend(blocks)
                position = last + 1
        except ProviderBehind:
            pass
    assert read == list(range(start, end + 1))

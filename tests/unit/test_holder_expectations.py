"""The holder's expectations: announced events keep it polling fast until they are seen, or
for a window at most; expired ones are dropped, not kept for ever."""

from __future__ import annotations

from holder_agent.expectations import (
    EXPECTING_POLL,
    EXPECTING_WINDOW,
    Expectations,
    paced,
    registration_of,
    token_of,
)


def test_an_expectation_lasts_until_met_or_until_its_window_passes() -> None:
    now = [0.0]
    expected = Expectations(window=5.0, clock=lambda: now[0])
    assert not expected.pending()
    expected.expect(registration_of(b"\x01" * 32))
    expected.expect(token_of(3))
    now[0] = 4.9
    expected.met(registration_of(b"\x01" * 32))
    assert expected.pending()  # the token is still awaited
    expected.met(token_of(3))
    assert not expected.pending()
    expected.expect(token_of(4))
    now[0] = 9.9
    assert not expected.pending()  # never met: over after its window
    expected.met(token_of(4))  # meeting it late is harmless


def test_expecting_again_restarts_the_window_and_keys_do_not_collide() -> None:
    now = [0.0]
    expected = Expectations(window=5.0, clock=lambda: now[0])
    expected.expect(token_of(1))
    now[0] = 4.0
    expected.expect(token_of(1))  # a second herald (another bundle of the same dataset)
    now[0] = 8.0
    assert expected.pending()
    expected.met(registration_of(b"\x00" * 32))  # another kind of key: the token stays
    assert expected.pending()
    assert registration_of(b"\x01") != token_of(1)


def test_polls_and_window_are_paced_by_the_block_interval() -> None:
    assert paced(0.0, 1) == (EXPECTING_POLL, EXPECTING_WINDOW)  # a devnet mining on arrival
    assert paced(0.5, 1) == (0.05, 5.0)  # the embedded devnet
    assert paced(2.0, 1) == (0.2, 8.0)
    assert paced(12.0, 2) == (1.2, 60.0)  # a public testnet

"""Temporal conditions: weekday formula, daily windows, not_before / not_after."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardkey.policy.window import (
    in_daily_window,
    minute_of_day,
    too_early,
    too_late,
    weekday,
    weekday_allowed,
    weekday_mask_from_names,
    weekday_names_from_mask,
)

DAY = 86_400
MONDAY_2026_01_05 = 1_767_571_200  # 2026-01-05T00:00:00Z


def at(minute: int, day: int = 0) -> int:
    return MONDAY_2026_01_05 + day * DAY + minute * 60


@given(st.integers(min_value=0, max_value=(1 << 37)))
def test_weekday_and_minute_match_datetime(ts: int) -> None:
    dt = datetime.fromtimestamp(ts, tz=UTC)
    assert weekday(ts) == dt.weekday()
    assert minute_of_day(ts) == dt.hour * 60 + dt.minute


def test_epoch_was_a_thursday() -> None:
    assert weekday(0) == 3
    assert weekday(MONDAY_2026_01_05) == 0
    assert weekday(MONDAY_2026_01_05 - 1) == 6


def test_weekday_mask() -> None:
    weekdays = weekday_mask_from_names(["mon", "tue", "wed", "thu", "fri"])
    assert weekdays == 0b0011111
    assert weekday_names_from_mask(0b1000001) == ["mon", "sun"]
    assert all(weekday_allowed(0, at(0, d)) for d in range(7))
    assert [weekday_allowed(weekdays, at(0, d)) for d in range(7)] == [True] * 5 + [False] * 2
    assert weekday_allowed(1 << 6, at(1439, 6)) and not weekday_allowed(1 << 6, at(0, 7))


@pytest.mark.parametrize(
    ("start", "end", "minute", "inside"),
    [
        (480, 1080, 479, False),
        (480, 1080, 480, True),  # start inclusive
        (480, 1080, 1079, True),
        (480, 1080, 1080, False),  # end exclusive
        (1320, 360, 1319, False),  # 22:00-06:00 wraps midnight
        (1320, 360, 1320, True),
        (1320, 360, 1439, True),
        (1320, 360, 0, True),
        (1320, 360, 359, True),
        (1320, 360, 360, False),
        (1320, 360, 720, False),
        (0, 1, 0, True),
        (0, 1, 1, False),
        (1439, 0, 1439, True),
        (1439, 0, 0, False),
        (600, 600, 0, True),  # start == end: no daily window
        (600, 600, 600, True),
    ],
)
def test_daily_window(start: int, end: int, minute: int, inside: bool) -> None:
    assert in_daily_window(start, end, at(minute)) is inside
    assert in_daily_window(start, end, at(minute) + 59) is inside  # seconds ignored


@given(st.integers(0, 1439), st.integers(0, 1439), st.integers(min_value=0, max_value=(1 << 36)))
def test_daily_window_matches_definition(start: int, end: int, ts: int) -> None:
    m = (ts % DAY) // 60
    expected = start == end or (start <= m < end if start < end else (m >= start or m < end))
    assert in_daily_window(start, end, ts) is expected


def test_not_before_not_after_bounds_inclusive() -> None:
    assert not too_early(0, 0) and not too_late(0, 1 << 63)
    assert too_early(100, 99) and not too_early(100, 100)
    assert too_late(100, 101) and not too_late(100, 100)

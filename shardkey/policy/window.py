"""Temporal conditions of the Key Access Policy, identical to the contract.

``now`` is always a Unix timestamp (seconds, UTC) taken from the latest block; nothing
here reads a clock. See ``docs/ARCHITECTURE.md``, "Policy struct".
"""

from __future__ import annotations

SECONDS_PER_DAY = 86_400
MINUTES_PER_DAY = 1_440
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday names by index; bit ``i`` of ``weekday_mask`` is ``WEEKDAY_NAMES[i]``."""
ALL_WEEKDAYS_MASK = 0x7F


def weekday(ts: int) -> int:
    """Return the UTC weekday of ``ts``, Monday = 0 .. Sunday = 6: ``((ts / 86400) + 3) % 7``."""
    return (ts // SECONDS_PER_DAY + 3) % 7


def minute_of_day(ts: int) -> int:
    """Return the UTC minute of the day of ``ts`` (0..1439)."""
    return (ts % SECONDS_PER_DAY) // 60


def weekday_allowed(weekday_mask: int, ts: int) -> bool:
    """Return whether ``ts`` falls on an allowed weekday (mask 0 allows every day)."""
    return weekday_mask == 0 or (weekday_mask >> weekday(ts)) & 1 == 1


def in_daily_window(start_minute: int, end_minute: int, ts: int) -> bool:
    """Return whether ``ts`` is inside the daily UTC window ``[start, end)``.

    ``start == end`` means no daily window (always inside); ``end < start`` wraps
    midnight (inside when ``minute >= start or minute < end``).
    """
    if start_minute == end_minute:
        return True
    minute = minute_of_day(ts)
    if start_minute < end_minute:
        return start_minute <= minute < end_minute
    return minute >= start_minute or minute < end_minute


def too_early(not_before: int, now: int) -> bool:
    """Return whether ``now`` is before ``not_before`` (0 = unbounded)."""
    return not_before != 0 and now < not_before


def too_late(not_after: int, now: int) -> bool:
    """Return whether ``now`` is after ``not_after`` (0 = unbounded; ``now == not_after`` is in)."""
    return not_after != 0 and now > not_after


def weekday_mask_from_names(names: list[str] | tuple[str, ...]) -> int:
    """Return the weekday mask for three-letter names (``["mon", "fri"]`` gives ``0b10001``)."""
    mask = 0
    for name in names:
        mask |= 1 << WEEKDAY_NAMES.index(name)
    return mask


def weekday_names_from_mask(mask: int) -> list[str]:
    """Return the three-letter names of the days set in ``mask``, Monday first."""
    return [name for i, name in enumerate(WEEKDAY_NAMES) if (mask >> i) & 1]

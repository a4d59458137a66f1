// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title PolicyTime
 * @notice Time conditions of a Key Access Policy, evaluated against `block.timestamp`
 * (UTC; docs/ARCHITECTURE.md). Weekday: `((ts / 86400) + 3) % 7`, Monday = 0.
 */
library PolicyTime {
    /// @notice Day of week of `ts`, Monday = 0 .. Sunday = 6 (1970-01-01 was a Thursday).
    function weekday(uint256 ts) internal pure returns (uint256) {
        return ((ts / 86400) + 3) % 7;
    }

    /// @notice UTC minute of day of `ts`, 0..1439.
    function minuteOfDay(uint256 ts) internal pure returns (uint256) {
        return (ts % 86400) / 60;
    }

    /// @notice `notBefore == 0 || ts >= notBefore`.
    function afterStart(uint256 ts, uint64 notBefore) internal pure returns (bool) {
        return notBefore == 0 || ts >= notBefore;
    }

    /// @notice `notAfter == 0 || ts <= notAfter`.
    function beforeEnd(uint256 ts, uint64 notAfter) internal pure returns (bool) {
        return notAfter == 0 || ts <= notAfter;
    }

    /// @notice Mask 0 means every day; otherwise bit `weekday(ts)` must be set.
    function onAllowedWeekday(uint256 ts, uint8 mask) internal pure returns (bool) {
        return mask == 0 || (uint256(mask) >> weekday(ts)) & 1 == 1;
    }

    /// @notice `start == end`: no daily window; `start < end`: `[start, end)`; else wraps midnight.
    function inDailyWindow(uint256 ts, uint16 start, uint16 end) internal pure returns (bool) {
        if (start == end) return true;
        uint256 m = minuteOfDay(ts);
        return start < end ? (m >= start && m < end) : (m >= start || m < end);
    }
}

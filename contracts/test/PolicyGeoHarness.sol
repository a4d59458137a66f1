// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IDatasetRegistry} from "../interfaces/IDatasetRegistry.sol";
import {PolicyGeo} from "../PolicyGeo.sol";
import {PolicyTime} from "../PolicyTime.sol";

/// @notice Test-only: exposes the policy libraries so Python can cross-check its mirror.
contract PolicyGeoHarness {
    function cosE6(int32 latE6) external pure returns (uint256) {
        return PolicyGeo.cosE6(latE6 < 0 ? uint256(-int256(latE6)) : uint256(int256(latE6)));
    }

    function insideCircle(IDatasetRegistry.Circle calldata c, int32 latE6, int32 lonE6, uint32 accuracyM)
        external
        pure
        returns (bool)
    {
        return PolicyGeo.insideCircle(c, latE6, lonE6, accuracyM);
    }

    function insidePolygon(IDatasetRegistry.Polygon calldata poly, int32 latE6, int32 lonE6)
        external
        pure
        returns (bool)
    {
        return PolicyGeo.insidePolygon(poly, latE6, lonE6);
    }

    function weekday(uint256 ts) external pure returns (uint256) {
        return PolicyTime.weekday(ts);
    }

    function inDailyWindow(uint256 ts, uint16 start, uint16 end) external pure returns (bool) {
        return PolicyTime.inDailyWindow(ts, start, end);
    }
}

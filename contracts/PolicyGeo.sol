// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IDatasetRegistry} from "./interfaces/IDatasetRegistry.sol";

/**
 * @title PolicyGeo
 * @notice Integer geometry of Key Access Policy regions, bit-for-bit identical to
 * `shardkey/policy/geo.py` (docs/ARCHITECTURE.md, "Policy geometry"). Coordinates are
 * micro-degrees, distances metres. Every intermediate value of the circle test is
 * non-negative, so truncating division agrees with Python's floor division.
 */
library PolicyGeo {
    /// @dev Metres per degree of latitude (and of longitude at the equator).
    uint256 internal constant METRES_PER_DEGREE = 111195;
    /// @dev 180^2 degrees^2 in micro-degrees^2 (Bhaskara I, degrees form).
    uint256 internal constant BHASKARA_C = 32400e12;

    /// @dev Largest |latitude| and |longitude| in micro-degrees.
    uint256 internal constant LAT_MAX_E6 = 90e6;
    uint256 internal constant LON_MAX_E6 = 180e6;

    /// @notice cos(lat) * 1e6 by Bhaskara I's approximation, for |lat| = `a` micro-degrees (<= 90e6).
    function cosE6(uint256 a) internal pure returns (uint256) {
        return (1e6 * (BHASKARA_C - 4 * a * a)) / (BHASKARA_C + a * a);
    }

    /// @notice Whether the disc of radius `accuracyM` around (latE6, lonE6) lies inside `c`.
    function insideCircle(IDatasetRegistry.Circle memory c, int32 latE6, int32 lonE6, uint32 accuracyM)
        internal
        pure
        returns (bool)
    {
        if (accuracyM > c.radiusM) return false;
        if (_abs(int256(latE6)) > LAT_MAX_E6 || _abs(int256(lonE6)) > LON_MAX_E6) return false;
        // cos at the mean latitude of point and centre: within 1.4% of haversine up to
        // 1000 km at |lat| <= 70 (cos at the centre alone was off by up to 11.6%).
        uint256 meanLat = _abs(int256(latE6) + int256(c.latE6)) / 2;
        uint256 yS = _abs(int256(latE6) - int256(c.latE6)) * METRES_PER_DEGREE;
        uint256 xS = (_abs(int256(lonE6) - int256(c.lonE6)) * METRES_PER_DEGREE * cosE6(meanLat)) / 1e6;
        uint256 r = uint256(c.radiusM - accuracyM) * 1e6;
        return xS * xS + yS * yS <= r * r;
    }

    /// @notice Integer ray casting on (y = lat, x = lon): whether the point is inside `poly`.
    function insidePolygon(IDatasetRegistry.Polygon memory poly, int32 latE6, int32 lonE6)
        internal
        pure
        returns (bool inside)
    {
        int256 py = latE6;
        int256 px = lonE6;
        uint256 n = poly.latsE6.length;
        uint256 j = n - 1;
        for (uint256 i = 0; i < n; j = i++) {
            int256 yi = poly.latsE6[i];
            int256 yj = poly.latsE6[j];
            if ((yi > py) != (yj > py)) {
                int256 xi = poly.lonsE6[i];
                int256 xj = poly.lonsE6[j];
                int256 lhs = (px - xi) * (yj - yi);
                int256 rhs = (xj - xi) * (py - yi);
                if (yj > yi ? lhs < rhs : lhs > rhs) inside = !inside;
            }
        }
    }

    /// @notice Whether the attested disc/point is inside any circle (whole disc) or polygon (point).
    function insideAnyRegion(IDatasetRegistry.Policy memory policy, int32 latE6, int32 lonE6, uint32 accuracyM)
        internal
        pure
        returns (bool)
    {
        for (uint256 i = 0; i < policy.circles.length; ++i) {
            if (insideCircle(policy.circles[i], latE6, lonE6, accuracyM)) return true;
        }
        for (uint256 i = 0; i < policy.polygons.length; ++i) {
            if (insidePolygon(policy.polygons[i], latE6, lonE6)) return true;
        }
        return false;
    }

    function _abs(int256 v) private pure returns (uint256) {
        return uint256(v >= 0 ? v : -v);
    }
}

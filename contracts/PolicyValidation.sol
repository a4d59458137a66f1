// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IDatasetRegistry} from "./interfaces/IDatasetRegistry.sol";

/**
 * @title PolicyValidation
 * @notice Bounds every Key Access Policy must meet before it is stored. Reverts with the
 * `Policy*` errors of {IDatasetRegistry}, naming the offending index and value. Caps bound the
 * gas of evaluating a policy on chain.
 */
library PolicyValidation {
    uint256 internal constant MAX_REQUESTERS = 64;
    uint256 internal constant MAX_ATTESTORS = 16;
    uint256 internal constant MAX_MEMBERS = 32; // per group
    uint256 internal constant MAX_GROUPS = 8;
    uint256 internal constant MAX_REGIONS = 16; // circles + polygons
    /// @dev Bound on `abi.encode(policy).length`: storing it costs < 6M gas, reading it for a
    /// request or an approval < 600k gas, whatever the mix of lists.
    uint256 internal constant MAX_ENCODED_BYTES = 8192;
    uint256 internal constant MIN_VERTICES = 3;
    uint256 internal constant MAX_VERTICES = 32;
    int32 internal constant MAX_LAT = 90e6;
    int32 internal constant MAX_LON = 180e6;
    uint16 internal constant MINUTES_PER_DAY = 1440;

    function validate(IDatasetRegistry.Policy calldata p) internal pure {
        _cap("requesters", p.requesters.length, MAX_REQUESTERS);
        _cap("attestors", p.attestors.length, MAX_ATTESTORS);
        _cap("regions", p.circles.length + p.polygons.length, MAX_REGIONS);
        _cap("groups", p.groups.length, MAX_GROUPS);
        if (p.notBefore != 0 && p.notAfter != 0 && p.notBefore > p.notAfter) {
            revert IDatasetRegistry.PolicyInvalidPeriod(p.notBefore, p.notAfter);
        }
        if (p.dailyStartMinute >= MINUTES_PER_DAY || p.dailyEndMinute >= MINUTES_PER_DAY) {
            revert IDatasetRegistry.PolicyInvalidDailyWindow(p.dailyStartMinute, p.dailyEndMinute);
        }
        if (p.weekdayMask >= 128) revert IDatasetRegistry.PolicyInvalidWeekdayMask(p.weekdayMask);
        if (p.approvalWindow == 0) revert IDatasetRegistry.PolicyZeroApprovalWindow();
        _validateGeo(p);
        for (uint256 i = 0; i < p.groups.length; ++i) {
            _validateGroup(i, p.groups[i]);
        }
        _checkDisjointGroups(p.groups);
    }

    /// @notice Reverts when the stored encoding of a policy would exceed {MAX_ENCODED_BYTES}.
    function checkEncodedSize(bytes memory encoded) internal pure {
        if (encoded.length > MAX_ENCODED_BYTES) {
            revert IDatasetRegistry.PolicyTooLarge(encoded.length, MAX_ENCODED_BYTES);
        }
    }

    function _validateGeo(IDatasetRegistry.Policy calldata p) private pure {
        uint256 regions = p.circles.length + p.polygons.length;
        if (p.attestors.length == 0) {
            if (regions != 0) revert IDatasetRegistry.PolicyRegionsWithoutAttestors();
            return;
        }
        if (p.maxAttestationAge == 0) revert IDatasetRegistry.PolicyZeroAttestationAge();
        if (regions == 0) revert IDatasetRegistry.PolicyNoRegions();
        for (uint256 i = 0; i < p.circles.length; ++i) {
            IDatasetRegistry.Circle calldata c = p.circles[i];
            if (!_inRange(c.latE6, c.lonE6)) revert IDatasetRegistry.PolicyCircleOutOfRange(i, c.latE6, c.lonE6);
            if (c.radiusM == 0) revert IDatasetRegistry.PolicyCircleZeroRadius(i);
        }
        for (uint256 i = 0; i < p.polygons.length; ++i) {
            IDatasetRegistry.Polygon calldata poly = p.polygons[i];
            uint256 n = poly.latsE6.length;
            if (n != poly.lonsE6.length || n < MIN_VERTICES || n > MAX_VERTICES) {
                revert IDatasetRegistry.PolicyPolygonInvalidVertexCount(i, n, poly.lonsE6.length);
            }
            for (uint256 v = 0; v < n; ++v) {
                if (!_inRange(poly.latsE6[v], poly.lonsE6[v])) {
                    revert IDatasetRegistry.PolicyPolygonOutOfRange(i, v, poly.latsE6[v], poly.lonsE6[v]);
                }
            }
        }
        if (p.polygons.length != 0 && p.maxAccuracyM == 0) revert IDatasetRegistry.PolicyPolygonsWithoutAccuracy();
    }

    function _validateGroup(uint256 index, IDatasetRegistry.ApprovalGroup calldata g) private pure {
        uint256 n = g.members.length;
        if (n == 0) revert IDatasetRegistry.PolicyGroupEmpty(index);
        _cap("members", n, MAX_MEMBERS);
        if (g.required == 0 || g.required > n) {
            revert IDatasetRegistry.PolicyGroupInvalidRequired(index, g.required, n);
        }
        for (uint256 a = 1; a < n; ++a) {
            for (uint256 b = 0; b < a; ++b) {
                if (g.members[a] == g.members[b]) {
                    revert IDatasetRegistry.PolicyGroupDuplicateMember(index, g.members[a]);
                }
            }
        }
    }

    /// @dev A member listed in two groups would count twice towards the approvals; refused.
    function _checkDisjointGroups(IDatasetRegistry.ApprovalGroup[] calldata groups) private pure {
        for (uint256 g = 1; g < groups.length; ++g) {
            address[] calldata members = groups[g].members;
            for (uint256 f = 0; f < g; ++f) {
                address[] calldata earlier = groups[f].members;
                for (uint256 a = 0; a < members.length; ++a) {
                    for (uint256 b = 0; b < earlier.length; ++b) {
                        if (members[a] == earlier[b]) {
                            revert IDatasetRegistry.PolicyMemberInTwoGroups(f, g, members[a]);
                        }
                    }
                }
            }
        }
    }

    function _cap(string memory list, uint256 length, uint256 max) private pure {
        if (length > max) revert IDatasetRegistry.PolicyListTooLong(list, length, max);
    }

    function _inRange(int32 latE6, int32 lonE6) private pure returns (bool) {
        return latE6 >= -MAX_LAT && latE6 <= MAX_LAT && lonE6 >= -MAX_LON && lonE6 <= MAX_LON;
    }
}

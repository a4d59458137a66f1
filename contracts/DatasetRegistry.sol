// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {IDatasetRegistry} from "./interfaces/IDatasetRegistry.sol";
import {IHolderRegistry} from "./interfaces/IHolderRegistry.sol";
import {PolicyValidation} from "./PolicyValidation.sol";

/**
 * @title DatasetRegistry
 * @notice See {IDatasetRegistry}. Policies are stored as their ABI encoding, one `bytes` per
 * version, and decoded on read (Solidity cannot copy nested dynamic structs to storage).
 */
contract DatasetRegistry is IDatasetRegistry {
    /// @notice Cap on each holder list (fragment holders are further capped at 255 by Shamir).
    uint256 public constant MAX_HOLDERS = 256;

    struct Record {
        address owner;
        uint16 k;
        uint16 p;
        uint32 shardSize;
        uint32 shardCount;
        bytes32 merkleRoot;
        uint64 plaintextLength;
        uint8 threshold;
        DatasetStatus status;
        uint16 confirmations;
        uint16 requiredConfirmations;
        uint64 registeredAt;
        address[] shardHolders;
        address[] fragmentHolders;
    }

    /// @dev Positions are index + 1 (0: not in that list).
    struct Membership {
        uint16 shardPos;
        uint16 fragmentPos;
        bool confirmed;
    }

    IHolderRegistry private immutable _holderRegistry;
    mapping(bytes32 datasetId => Record) private _datasets;
    mapping(bytes32 datasetId => bytes[]) private _policies;
    mapping(bytes32 datasetId => mapping(address holder => Membership)) private _members;

    constructor(IHolderRegistry holderRegistry_) {
        _holderRegistry = holderRegistry_;
    }

    /// @notice The holder registry consulted at registration.
    function holderRegistry() external view returns (IHolderRegistry) {
        return _holderRegistry;
    }

    /// @inheritdoc IDatasetRegistry
    function registerDataset(
        bytes32 salt,
        DatasetParams calldata params,
        Policy calldata policy_,
        bytes32[] calldata shardHashes,
        bytes[] calldata sealedWrapKeys,
        bytes32[] calldata fragmentRoots
    ) external returns (bytes32 datasetId) {
        datasetId = computeDatasetId(msg.sender, salt);
        if (_datasets[datasetId].status != DatasetStatus.None) revert DatasetAlreadyRegistered(datasetId);
        _checkParams(params, shardHashes.length);
        _checkFragments(params, sealedWrapKeys, fragmentRoots);
        PolicyValidation.validate(policy_);
        _storeDataset(datasetId, params);
        emit DatasetRegistered(datasetId, msg.sender, salt, params, sealedWrapKeys, fragmentRoots, shardHashes);
        _storePolicy(datasetId, policy_);
    }

    /// @inheritdoc IDatasetRegistry
    function confirmCustody(bytes32 datasetId) external {
        Record storage r = _record(datasetId);
        if (r.status != DatasetStatus.Pending) revert DatasetInvalidStatus(datasetId, r.status);
        Membership storage m = _members[datasetId][msg.sender];
        if (m.shardPos == 0 && m.fragmentPos == 0) revert DatasetNotHolder(datasetId, msg.sender);
        if (m.confirmed) revert DatasetCustodyAlreadyConfirmed(datasetId, msg.sender);
        m.confirmed = true;
        uint16 confirmations = r.confirmations + 1;
        r.confirmations = confirmations;
        emit CustodyConfirmed(datasetId, msg.sender, confirmations, r.requiredConfirmations);
        if (confirmations == r.requiredConfirmations) {
            r.status = DatasetStatus.Active;
            emit DatasetActivated(datasetId);
        }
    }

    /// @inheritdoc IDatasetRegistry
    function updatePolicy(bytes32 datasetId, Policy calldata policy_) external returns (uint32 version) {
        Record storage r = _ownedRecord(datasetId);
        if (r.status == DatasetStatus.Revoked) revert DatasetInvalidStatus(datasetId, r.status);
        PolicyValidation.validate(policy_);
        return _storePolicy(datasetId, policy_);
    }

    /// @inheritdoc IDatasetRegistry
    function revokeDataset(bytes32 datasetId) external {
        Record storage r = _ownedRecord(datasetId);
        if (r.status == DatasetStatus.Revoked) revert DatasetInvalidStatus(datasetId, r.status);
        r.status = DatasetStatus.Revoked;
        emit DatasetRevoked(datasetId, msg.sender);
    }

    /// @inheritdoc IDatasetRegistry
    function computeDatasetId(address owner, bytes32 salt) public view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), owner, salt));
    }

    /// @inheritdoc IDatasetRegistry
    function dataset(bytes32 datasetId) external view returns (Dataset memory d) {
        Record storage r = _record(datasetId);
        d.owner = r.owner;
        d.merkleRoot = r.merkleRoot;
        d.k = r.k;
        d.p = r.p;
        d.shardSize = r.shardSize;
        d.plaintextLength = r.plaintextLength;
        d.shardCount = r.shardCount;
        d.threshold = r.threshold;
        d.status = r.status;
        d.policyVersion = uint32(_policies[datasetId].length);
        d.confirmations = r.confirmations;
        d.requiredConfirmations = r.requiredConfirmations;
        d.registeredAt = r.registeredAt;
        d.shardHolders = r.shardHolders;
        d.fragmentHolders = r.fragmentHolders;
    }

    /// @inheritdoc IDatasetRegistry
    function datasetStatus(bytes32 datasetId) external view returns (DatasetStatus, uint32) {
        return (_datasets[datasetId].status, uint32(_policies[datasetId].length));
    }

    /// @inheritdoc IDatasetRegistry
    function policy(bytes32 datasetId, uint32 version) public view returns (Policy memory) {
        _record(datasetId);
        bytes[] storage versions = _policies[datasetId];
        if (version == 0 || version > versions.length) revert DatasetUnknownPolicyVersion(datasetId, version);
        return abi.decode(versions[version - 1], (Policy));
    }

    /// @inheritdoc IDatasetRegistry
    function currentPolicy(bytes32 datasetId) external view returns (Policy memory) {
        return policy(datasetId, uint32(_policies[datasetId].length));
    }

    /// @inheritdoc IDatasetRegistry
    function isShardHolder(bytes32 datasetId, address account) external view returns (bool) {
        return _members[datasetId][account].shardPos != 0;
    }

    /// @inheritdoc IDatasetRegistry
    function isFragmentHolder(bytes32 datasetId, address account) external view returns (bool) {
        return _members[datasetId][account].fragmentPos != 0;
    }

    /// @inheritdoc IDatasetRegistry
    function fragmentHolderIndex(bytes32 datasetId, address account) external view returns (uint256) {
        uint16 pos = _members[datasetId][account].fragmentPos;
        if (pos == 0) revert DatasetNotFragmentHolder(datasetId, account);
        return pos - 1;
    }

    /// @inheritdoc IDatasetRegistry
    function shardHolderOf(bytes32 datasetId, uint256 shardIndex) external view returns (address) {
        Record storage r = _record(datasetId);
        if (shardIndex >= r.shardCount) revert DatasetShardIndexOutOfRange(datasetId, shardIndex, r.shardCount);
        return r.shardHolders[shardIndex % r.shardHolders.length];
    }

    /// @inheritdoc IDatasetRegistry
    function custodyConfirmed(bytes32 datasetId, address holder) external view returns (bool) {
        return _members[datasetId][holder].confirmed;
    }

    function _checkParams(DatasetParams calldata params, uint256 hashCount) private pure {
        if (params.merkleRoot == bytes32(0)) revert DatasetZeroMerkleRoot();
        uint256 m = uint256(params.k) + params.p;
        if (params.k == 0 || m > 256) revert DatasetInvalidCoding(params.k, params.p);
        if (params.shardSize == 0) revert DatasetZeroShardSize();
        uint256 stripes = Math.max(1, Math.ceilDiv(params.plaintextLength, uint256(params.k) * params.shardSize));
        uint256 expected = stripes * m;
        if (expected != params.shardCount || expected != hashCount) {
            revert DatasetShardCountMismatch(expected, params.shardCount, hashCount);
        }
        uint256 holderCount = params.shardHolders.length;
        if (holderCount < m) revert DatasetTooFewShardHolders(holderCount, m);
        if (holderCount > MAX_HOLDERS) revert DatasetTooManyHolders(holderCount, MAX_HOLDERS);
    }

    function _checkFragments(
        DatasetParams calldata params,
        bytes[] calldata sealedWrapKeys,
        bytes32[] calldata fragmentRoots
    ) private pure {
        uint256 n = params.fragmentHolders.length;
        if (params.threshold == 0 || params.threshold > n || n > 255) {
            revert DatasetInvalidThreshold(params.threshold, n);
        }
        if (sealedWrapKeys.length != n || fragmentRoots.length != n) {
            revert DatasetFragmentLengthMismatch(n, sealedWrapKeys.length, fragmentRoots.length);
        }
        for (uint256 i = 0; i < n; ++i) {
            if (sealedWrapKeys[i].length == 0) revert DatasetEmptyWrapKey(i);
        }
    }

    /// @dev Writes the record and one membership slot per holder; checks holders are distinct
    /// within each list and Active. Constant in the shard count.
    function _storeDataset(bytes32 datasetId, DatasetParams calldata params) private {
        mapping(address => Membership) storage members = _members[datasetId];
        uint256 distinct = 0;
        for (uint256 i = 0; i < params.shardHolders.length; ++i) {
            address h = params.shardHolders[i];
            if (members[h].shardPos != 0) revert DatasetDuplicateHolder(h);
            _requireActive(h);
            members[h].shardPos = uint16(i + 1);
            ++distinct;
        }
        for (uint256 i = 0; i < params.fragmentHolders.length; ++i) {
            address h = params.fragmentHolders[i];
            Membership storage m = members[h];
            if (m.fragmentPos != 0) revert DatasetDuplicateHolder(h);
            if (m.shardPos == 0) {
                _requireActive(h);
                ++distinct;
            }
            m.fragmentPos = uint16(i + 1);
        }
        Record storage r = _datasets[datasetId];
        r.owner = msg.sender;
        r.k = params.k;
        r.p = params.p;
        r.shardSize = params.shardSize;
        r.shardCount = params.shardCount;
        r.merkleRoot = params.merkleRoot;
        r.plaintextLength = params.plaintextLength;
        r.threshold = params.threshold;
        r.status = DatasetStatus.Pending;
        r.requiredConfirmations = uint16(distinct);
        r.registeredAt = uint64(block.timestamp);
        r.shardHolders = params.shardHolders;
        r.fragmentHolders = params.fragmentHolders;
    }

    function _storePolicy(bytes32 datasetId, Policy calldata policy_) private returns (uint32 version) {
        bytes memory encoded = abi.encode(policy_);
        PolicyValidation.checkEncodedSize(encoded);
        _policies[datasetId].push(encoded);
        version = uint32(_policies[datasetId].length);
        emit PolicyUpdated(datasetId, version, policy_);
    }

    function _requireActive(address holder) private view {
        if (!_holderRegistry.isActive(holder)) revert DatasetHolderNotActive(holder);
    }

    function _record(bytes32 datasetId) private view returns (Record storage r) {
        r = _datasets[datasetId];
        if (r.status == DatasetStatus.None) revert DatasetUnknown(datasetId);
    }

    function _ownedRecord(bytes32 datasetId) private view returns (Record storage r) {
        r = _record(datasetId);
        if (r.owner != msg.sender) revert DatasetUnauthorizedAccount(datasetId, msg.sender);
    }
}

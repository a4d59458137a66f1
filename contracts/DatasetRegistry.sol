// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {IDatasetRegistry} from "./interfaces/IDatasetRegistry.sol";
import {IHolderRegistry} from "./interfaces/IHolderRegistry.sol";
import {IRetrievalCoordinator} from "./interfaces/IRetrievalCoordinator.sol";
import {PolicyValidation} from "./PolicyValidation.sol";

/**
 * @title DatasetRegistry
 * @notice See {IDatasetRegistry}. Policies are stored as their ABI encoding, one `bytes` per
 * version, and decoded on read (Solidity cannot copy nested dynamic structs to storage).
 * Repair and re-deal state is written only when used: a dataset never repaired or re-dealt
 * costs what it did before (epoch fields 0 mean epoch 1).
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
        uint32 epoch; // current fragment epoch; 0 means 1
        uint32 lastEpoch; // latest registered fragment epoch; 0 means 1
        address[] shardHolders;
        address[] fragmentHolders;
    }

    /// @dev Positions are index + 1 (0: not in that list). `shards`: shards held now.
    struct Membership {
        uint16 shardPos;
        uint16 fragmentPos;
        bool confirmed;
        uint32 shards;
    }

    /// @dev A shard's repair state: `placed` overrides the placement rule when non-zero.
    struct ShardSlot {
        address placed;
        address pending;
        address released;
    }

    /// @dev A fragment epoch after the first.
    struct Epoch {
        uint8 threshold;
        uint16 confirmations;
        address[] holders;
    }

    struct EpochMember {
        uint16 pos;
        bool confirmed;
    }

    IHolderRegistry private immutable _holderRegistry;
    mapping(bytes32 datasetId => Record) private _datasets;
    mapping(bytes32 datasetId => bytes[]) private _policies;
    mapping(bytes32 datasetId => mapping(address holder => Membership)) private _members;
    mapping(bytes32 datasetId => mapping(uint256 shardIndex => ShardSlot)) private _shards;
    /// @dev Repaired placements and pending assignments per (dataset, stripe, holder).
    mapping(bytes32 datasetId => mapping(uint256 stripe => mapping(address holder => uint16))) private _claims;
    mapping(bytes32 datasetId => mapping(uint32 epoch => Epoch)) private _epochs;
    mapping(bytes32 datasetId => mapping(uint32 epoch => mapping(address holder => EpochMember))) private
        _epochMembers;
    mapping(uint256 requestId => bool) private _redealUsed;
    IRetrievalCoordinator private _coordinator;

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
        _checkFragments(params.fragmentHolders.length, params.threshold, sealedWrapKeys, fragmentRoots);
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
        d.fragmentEpoch = _current(r);
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
        Membership storage m = _members[datasetId][account];
        return m.shardPos != 0 || m.shards != 0;
    }

    /// @inheritdoc IDatasetRegistry
    function isFragmentHolder(bytes32 datasetId, address account) external view returns (bool) {
        return _fragmentPos(datasetId, account) != 0;
    }

    /// @inheritdoc IDatasetRegistry
    function fragmentHolderIndex(bytes32 datasetId, address account) external view returns (uint256) {
        uint16 pos = _fragmentPos(datasetId, account);
        if (pos == 0) revert DatasetNotFragmentHolder(datasetId, account);
        return pos - 1;
    }

    /// @inheritdoc IDatasetRegistry
    function shardHolderOf(bytes32 datasetId, uint256 shardIndex) external view returns (address) {
        Record storage r = _record(datasetId);
        _checkIndex(datasetId, r, shardIndex);
        return _holderOf(r, _shards[datasetId][shardIndex], shardIndex);
    }

    // ----- repair -----

    /// @inheritdoc IDatasetRegistry
    function setRetrievalCoordinator(address coordinator) external {
        if (!_holderRegistry.isAdmin(msg.sender)) revert DatasetNotAdmin(msg.sender);
        if (address(_coordinator) != address(0)) revert DatasetCoordinatorAlreadySet(address(_coordinator));
        _coordinator = IRetrievalCoordinator(coordinator);
        emit RetrievalCoordinatorSet(coordinator, msg.sender);
    }

    /// @inheritdoc IDatasetRegistry
    function retrievalCoordinator() external view returns (address) {
        return address(_coordinator);
    }

    /// @inheritdoc IDatasetRegistry
    function releaseShard(bytes32 datasetId, uint32 shardIndex) external {
        Record storage r = _activeRecord(datasetId);
        _checkIndex(datasetId, r, shardIndex);
        ShardSlot storage s = _shards[datasetId][shardIndex];
        if (_holderOf(r, s, shardIndex) != msg.sender) revert DatasetNotShardHolderOf(datasetId, shardIndex, msg.sender);
        if (s.released == msg.sender) revert DatasetShardAlreadyReleased(datasetId, shardIndex, msg.sender);
        s.released = msg.sender;
        emit ShardReleased(datasetId, shardIndex, msg.sender);
    }

    /// @inheritdoc IDatasetRegistry
    function assignShard(bytes32 datasetId, uint32 shardIndex, address newHolder) external {
        Record storage r = _activeRecord(datasetId);
        if (msg.sender != r.owner && !_holderRegistry.isRepairer(msg.sender)) {
            revert DatasetNotRepairer(datasetId, msg.sender);
        }
        _checkIndex(datasetId, r, shardIndex);
        _requireActive(newHolder);
        ShardSlot storage s = _shards[datasetId][shardIndex];
        address pending = s.pending;
        if (pending == newHolder) revert DatasetShardAlreadyAssigned(datasetId, shardIndex, newHolder);
        address current = _holderOf(r, s, shardIndex);
        if (!_repairable(datasetId, shardIndex, current, s.released)) {
            revert DatasetShardNotRepairable(datasetId, shardIndex, current);
        }
        uint256 stripe = shardIndex / (uint256(r.k) + r.p);
        if (_inStripe(datasetId, r, stripe, newHolder)) revert DatasetHolderInStripe(datasetId, stripe, newHolder);
        mapping(address => uint16) storage claims = _claims[datasetId][stripe];
        if (pending != address(0)) --claims[pending];
        ++claims[newHolder];
        s.pending = newHolder;
        emit ShardAssigned(datasetId, shardIndex, current, newHolder, msg.sender);
    }

    /// @inheritdoc IDatasetRegistry
    function confirmShardPlacement(bytes32 datasetId, uint32 shardIndex) external {
        Record storage r = _activeRecord(datasetId);
        ShardSlot storage s = _shards[datasetId][shardIndex];
        if (s.pending != msg.sender) revert DatasetNotAssignedHolder(datasetId, shardIndex, msg.sender);
        address old = _holderOf(r, s, shardIndex);
        // A repaired holder's claim on the stripe ends with its shard; a rule holder has none.
        if (s.placed != address(0)) --_claims[datasetId][shardIndex / (uint256(r.k) + r.p)][old];
        s.placed = msg.sender;
        s.pending = address(0);
        s.released = address(0);
        mapping(address => Membership) storage members = _members[datasetId];
        --members[old].shards;
        ++members[msg.sender].shards;
        emit ShardRepaired(datasetId, shardIndex, old, msg.sender);
    }

    /// @inheritdoc IDatasetRegistry
    function pendingShardHolder(bytes32 datasetId, uint32 shardIndex) external view returns (address) {
        return _shards[datasetId][shardIndex].pending;
    }

    /// @inheritdoc IDatasetRegistry
    function shardReleased(bytes32 datasetId, uint32 shardIndex) external view returns (bool) {
        Record storage r = _record(datasetId);
        _checkIndex(datasetId, r, shardIndex);
        ShardSlot storage s = _shards[datasetId][shardIndex];
        return s.released != address(0) && s.released == _holderOf(r, s, shardIndex);
    }

    /// @inheritdoc IDatasetRegistry
    function shardsHeld(bytes32 datasetId, address holder) external view returns (uint32) {
        return _members[datasetId][holder].shards;
    }

    // ----- fragment epochs -----

    /// @inheritdoc IDatasetRegistry
    function redealFragments(
        bytes32 datasetId,
        uint256 redealRequestId,
        address[] calldata fragmentHolders,
        uint8 threshold,
        bytes[] calldata sealedWrapKeys,
        bytes32[] calldata fragmentRoots
    ) external returns (uint32 epoch) {
        Record storage r = _ownedRecord(datasetId);
        if (r.status != DatasetStatus.Active) revert DatasetInvalidStatus(datasetId, r.status);
        _checkRedealRequest(datasetId, r, redealRequestId);
        _checkFragments(fragmentHolders.length, threshold, sealedWrapKeys, fragmentRoots);
        epoch = (r.lastEpoch == 0 ? 1 : r.lastEpoch) + 1;
        mapping(address => EpochMember) storage members = _epochMembers[datasetId][epoch];
        for (uint256 i = 0; i < fragmentHolders.length; ++i) {
            address h = fragmentHolders[i];
            if (members[h].pos != 0) revert DatasetDuplicateHolder(h);
            _requireActive(h);
            members[h].pos = uint16(i + 1);
        }
        Epoch storage e = _epochs[datasetId][epoch];
        e.threshold = threshold;
        e.holders = fragmentHolders;
        r.lastEpoch = epoch;
        _redealUsed[redealRequestId] = true;
        emit FragmentsRedealt(
            datasetId, epoch, redealRequestId, threshold, fragmentHolders, sealedWrapKeys, fragmentRoots
        );
    }

    /// @inheritdoc IDatasetRegistry
    function confirmFragmentCustody(bytes32 datasetId, uint32 epoch) external {
        Record storage r = _activeRecord(datasetId);
        if (epoch <= _current(r) || epoch > r.lastEpoch) revert DatasetFragmentEpochNotPending(datasetId, epoch);
        EpochMember storage m = _epochMembers[datasetId][epoch][msg.sender];
        if (m.pos == 0) revert DatasetNotEpochHolder(datasetId, epoch, msg.sender);
        if (m.confirmed) revert DatasetFragmentCustodyAlreadyConfirmed(datasetId, epoch, msg.sender);
        m.confirmed = true;
        Epoch storage e = _epochs[datasetId][epoch];
        uint16 confirmations = e.confirmations + 1;
        e.confirmations = confirmations;
        uint16 required = uint16(e.holders.length);
        emit FragmentCustodyConfirmed(datasetId, epoch, msg.sender, confirmations, required);
        if (confirmations == required) {
            r.epoch = epoch;
            emit FragmentEpochActivated(datasetId, epoch);
        }
    }

    /// @inheritdoc IDatasetRegistry
    function fragmentEpochs(bytes32 datasetId) external view returns (uint32 current, uint32 latest) {
        Record storage r = _record(datasetId);
        return (_current(r), r.lastEpoch == 0 ? 1 : r.lastEpoch);
    }

    /// @inheritdoc IDatasetRegistry
    function fragmentSet(bytes32 datasetId, uint32 epoch) external view returns (FragmentSet memory f) {
        Record storage r = _record(datasetId);
        uint32 latest = r.lastEpoch == 0 ? 1 : r.lastEpoch;
        if (epoch == 0 || epoch > latest) revert DatasetUnknownFragmentEpoch(datasetId, epoch);
        f.epoch = epoch;
        f.current = epoch == _current(r);
        if (epoch == 1) {
            f.threshold = r.threshold;
            f.holders = r.fragmentHolders;
            f.required = uint16(f.holders.length);
            f.confirmations = f.required;
        } else {
            Epoch storage e = _epochs[datasetId][epoch];
            f.threshold = e.threshold;
            f.holders = e.holders;
            f.required = uint16(f.holders.length);
            f.confirmations = e.confirmations;
        }
    }

    /// @inheritdoc IDatasetRegistry
    function redealUsed(uint256 requestId) external view returns (bool) {
        return _redealUsed[requestId];
    }

    /// @inheritdoc IDatasetRegistry
    function requestContext(bytes32 datasetId)
        external
        view
        returns (DatasetStatus status, uint32 policyVersion, uint32 fragmentEpoch, address owner)
    {
        Record storage r = _datasets[datasetId];
        return (r.status, uint32(_policies[datasetId].length), _current(r), r.owner);
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
        uint256 n,
        uint8 threshold,
        bytes[] calldata sealedWrapKeys,
        bytes32[] calldata fragmentRoots
    ) private pure {
        if (threshold == 0 || threshold > n || n > 255) revert DatasetInvalidThreshold(threshold, n);
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
        uint256 len = params.shardHolders.length;
        for (uint256 i = 0; i < len; ++i) {
            address h = params.shardHolders[i];
            if (members[h].shardPos != 0) revert DatasetDuplicateHolder(h);
            _requireActive(h);
            // Position i holds shards i, i + len, ...: ceil((shardCount - i) / len) of them.
            uint32 held = i < params.shardCount ? uint32(Math.ceilDiv(params.shardCount - i, len)) : 0;
            members[h] = Membership({shardPos: uint16(i + 1), fragmentPos: 0, confirmed: false, shards: held});
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

    /// @dev The re-deal request must be the owner's (the caller's), for this dataset, of purpose
    /// Redeal, made under the current epoch, unused, and released (Approved or Completed with at
    /// least the current threshold of tokens).
    function _checkRedealRequest(bytes32 datasetId, Record storage r, uint256 requestId) private view {
        if (address(_coordinator) == address(0)) revert DatasetNoCoordinator();
        if (_redealUsed[requestId]) revert DatasetRedealRequestUsed(requestId);
        IRetrievalCoordinator.Request memory q = _coordinator.request(requestId);
        uint32 current = _current(r);
        if (
            q.datasetId != datasetId || q.requester != msg.sender
                || q.purpose != IRetrievalCoordinator.RequestPurpose.Redeal || q.fragmentEpoch != current
        ) revert DatasetRedealRequestMismatch(datasetId, requestId);
        uint8 t = current == 1 ? r.threshold : _epochs[datasetId][current].threshold;
        if (
            (q.status != IRetrievalCoordinator.RequestStatus.Approved
                && q.status != IRetrievalCoordinator.RequestStatus.Completed) || q.tokensIssued < t
        ) revert DatasetRedealNotReleased(requestId, q.tokensIssued, t);
    }

    /// @dev A shard may be repaired away from `current` when it is not Active, released the
    /// shard, or was proven (on the coordinator) to serve a wrong copy of it.
    function _repairable(bytes32 datasetId, uint32 shardIndex, address current, address released)
        private
        view
        returns (bool)
    {
        if (!_holderRegistry.isActive(current) || released == current) return true;
        return address(_coordinator) != address(0)
            && _coordinator.shardFailureProvenAgainst(datasetId, shardIndex, current);
    }

    /// @dev Whether `holder` holds or is assigned a shard of `stripe`: a repaired placement or
    /// pending assignment (counted in `_claims`), or the one shard of the stripe the placement
    /// rule gives its position (stripes span `k + p <= len` consecutive indices) if not moved.
    function _inStripe(bytes32 datasetId, Record storage r, uint256 stripe, address holder)
        private
        view
        returns (bool)
    {
        if (_claims[datasetId][stripe][holder] != 0) return true;
        uint256 pos = _members[datasetId][holder].shardPos;
        if (pos == 0) return false;
        uint256 len = r.shardHolders.length;
        uint256 m = uint256(r.k) + r.p;
        uint256 base = stripe * m;
        uint256 offset = (pos - 1 + len - (base % len)) % len;
        return offset < m && _shards[datasetId][base + offset].placed == address(0);
    }

    function _holderOf(Record storage r, ShardSlot storage s, uint256 shardIndex) private view returns (address) {
        address placed = s.placed;
        return placed != address(0) ? placed : r.shardHolders[shardIndex % r.shardHolders.length];
    }

    function _fragmentPos(bytes32 datasetId, address account) private view returns (uint16) {
        uint32 current = _current(_datasets[datasetId]);
        if (current == 1) return _members[datasetId][account].fragmentPos;
        return _epochMembers[datasetId][current][account].pos;
    }

    function _current(Record storage r) private view returns (uint32) {
        uint32 e = r.epoch;
        return e == 0 ? 1 : e;
    }

    function _checkIndex(bytes32 datasetId, Record storage r, uint256 shardIndex) private view {
        if (shardIndex >= r.shardCount) revert DatasetShardIndexOutOfRange(datasetId, shardIndex, r.shardCount);
    }

    function _activeRecord(bytes32 datasetId) private view returns (Record storage r) {
        r = _record(datasetId);
        if (r.status != DatasetStatus.Active) revert DatasetInvalidStatus(datasetId, r.status);
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

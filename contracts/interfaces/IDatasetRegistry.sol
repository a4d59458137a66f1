// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IDatasetRegistry
 * @notice Datasets, their versioned Key Access Policies and holder custody.
 *
 * Lifecycle: registerDataset -> Pending; every distinct holder (shard or fragment holder)
 * calls confirmCustody, the last confirmation makes it Active; the owner may revoke at any
 * time (Pending or Active -> Revoked; also the way to cancel a registration). Storage written
 * at registration is constant in the number of shards: the shard hashes live only in
 * calldata and in the {DatasetRegistered} event, the Merkle root is stored.
 * Shard `i` is held by `shardHolders[i % shardHolders.length]` unless a repair moved it
 * ({shardHolderOf} answers either way); fragment holder at position `j` of the current
 * fragment epoch holds the Shamir share with x-coordinate `j + 1`.
 *
 * Repair (docs/CONTRACTS.md, "Repair, exit and re-deal"): the owner or a REPAIRER_ROLE account
 * (holder registry) assigns a shard whose holder is not Active, released it, or was proven to
 * serve a wrong copy, to an Active holder outside the shard's stripe ({assignShard}); the new
 * holder checks the rebuilt shard against its leaf and confirms ({confirmShardPlacement}),
 * which moves the placement. Re-deal: after a re-deal retrieval approved by the policy, the
 * owner registers fragment epoch `e + 1` ({redealFragments}); it becomes current once every
 * new fragment holder confirmed custody ({confirmFragmentCustody}).
 */
interface IDatasetRegistry {
    enum DatasetStatus {
        None,
        Pending,
        Active,
        Revoked
    }

    /// @notice A circle region: centre in micro-degrees, radius in metres.
    struct Circle {
        int32 latE6;
        int32 lonE6;
        uint32 radiusM;
    }

    /// @notice A polygon region of 3..32 vertices (micro-degrees); must not cross the antimeridian.
    struct Polygon {
        int32[] latsE6;
        int32[] lonsE6;
    }

    /// @notice `required` distinct members of the group must approve.
    struct ApprovalGroup {
        string name;
        address[] members;
        uint8 required;
    }

    /// @notice A Key Access Policy (see docs/ARCHITECTURE.md for the semantics of each field).
    struct Policy {
        address[] requesters;
        uint64 notBefore;
        uint64 notAfter;
        uint16 dailyStartMinute;
        uint16 dailyEndMinute;
        uint8 weekdayMask;
        address[] attestors;
        uint32 maxAttestationAge;
        uint32 maxAccuracyM;
        Circle[] circles;
        Polygon[] polygons;
        ApprovalGroup[] groups;
        uint32 approvalWindow;
    }

    /// @notice Coding and placement parameters given at registration.
    struct DatasetParams {
        bytes32 merkleRoot;
        uint16 k;
        uint16 p;
        uint32 shardSize;
        uint64 plaintextLength;
        uint32 shardCount;
        uint8 threshold;
        address[] shardHolders;
        address[] fragmentHolders;
    }

    /// @notice The stored dataset as returned by {dataset}.
    struct Dataset {
        address owner;
        bytes32 merkleRoot;
        uint16 k;
        uint16 p;
        uint32 shardSize;
        uint64 plaintextLength;
        uint32 shardCount;
        uint8 threshold;
        DatasetStatus status;
        uint32 policyVersion;
        uint16 confirmations;
        uint16 requiredConfirmations;
        uint64 registeredAt;
        address[] shardHolders;
        address[] fragmentHolders;
        uint32 fragmentEpoch;
    }

    /// @notice The fragment holders of one epoch as returned by {fragmentSet}. Epoch 1 is the
    /// registration's (`confirmations == required`: its custody is the dataset's).
    struct FragmentSet {
        uint32 epoch;
        uint8 threshold;
        uint16 confirmations;
        uint16 required;
        bool current;
        address[] holders;
    }

    /// @notice A dataset was registered (status Pending). Carries everything needed to audit
    /// and to fetch it: parameters, placement, per-fragment-holder sealed wrap keys and
    /// fragment roots, and every shard's ciphertext hash (index order).
    event DatasetRegistered(
        bytes32 indexed datasetId,
        address indexed owner,
        bytes32 salt,
        DatasetParams params,
        bytes[] sealedWrapKeys,
        bytes32[] fragmentRoots,
        bytes32[] shardHashes
    );
    /// @notice Policy `version` of the dataset is now in force (also emitted for version 1).
    event PolicyUpdated(bytes32 indexed datasetId, uint32 indexed version, Policy policy);
    /// @notice `holder` confirmed custody; `confirmations` of `required` so far.
    event CustodyConfirmed(bytes32 indexed datasetId, address indexed holder, uint16 confirmations, uint16 required);
    /// @notice Every holder confirmed custody; the dataset is Active.
    event DatasetActivated(bytes32 indexed datasetId);
    /// @notice The owner revoked the dataset; no further retrievals.
    event DatasetRevoked(bytes32 indexed datasetId, address indexed by);
    /// @notice The holder-registry admin `by` named the retrieval coordinator (once).
    event RetrievalCoordinatorSet(address coordinator, address by);
    /// @notice The current holder of shard `shardIndex` says it lost it (the shard may be repaired).
    event ShardReleased(bytes32 indexed datasetId, uint32 indexed shardIndex, address indexed holder);
    /// @notice `by` assigned shard `shardIndex`, held by `from`, to `to` (pending its confirmation).
    event ShardAssigned(
        bytes32 indexed datasetId, uint32 indexed shardIndex, address from, address indexed to, address by
    );
    /// @notice `newHolder` confirmed the rebuilt shard: it now holds `shardIndex` instead of `oldHolder`.
    event ShardRepaired(
        bytes32 indexed datasetId, uint32 indexed shardIndex, address oldHolder, address indexed newHolder
    );
    /// @notice The owner re-dealt the shard keys to a new fragment-holder set: epoch `epoch`
    /// (pending until every holder confirms), from re-deal request `redealRequestId`; the same
    /// fragment data a registration carries.
    event FragmentsRedealt(
        bytes32 indexed datasetId,
        uint32 indexed epoch,
        uint256 indexed redealRequestId,
        uint8 threshold,
        address[] fragmentHolders,
        bytes[] sealedWrapKeys,
        bytes32[] fragmentRoots
    );
    /// @notice `holder` confirmed custody of its bundle of pending epoch `epoch`.
    event FragmentCustodyConfirmed(
        bytes32 indexed datasetId, uint32 indexed epoch, address indexed holder, uint16 confirmations, uint16 required
    );
    /// @notice Fragment epoch `epoch` is current: tokens and deliveries of older epochs are refused.
    event FragmentEpochActivated(bytes32 indexed datasetId, uint32 indexed epoch);

    /// @dev A dataset with this id exists already (ids are never reused, even after revocation).
    error DatasetAlreadyRegistered(bytes32 datasetId);
    /// @dev No dataset with this id.
    error DatasetUnknown(bytes32 datasetId);
    /// @dev `account` is not the owner of the dataset.
    error DatasetUnauthorizedAccount(bytes32 datasetId, address account);
    /// @dev The operation is not allowed in `status`.
    error DatasetInvalidStatus(bytes32 datasetId, DatasetStatus status);
    /// @dev Merkle root must be non-zero.
    error DatasetZeroMerkleRoot();
    /// @dev `k >= 1` and `k + p <= 256` required.
    error DatasetInvalidCoding(uint16 k, uint16 p);
    /// @dev Shard size must be non-zero.
    error DatasetZeroShardSize();
    /// @dev `expected = max(1, ceil(L / (k * shardSize))) * (k + p)` must equal the declared
    /// count and the number of shard hashes.
    error DatasetShardCountMismatch(uint256 expected, uint256 declared, uint256 hashes);
    /// @dev At least `k + p` shard holders are needed.
    error DatasetTooFewShardHolders(uint256 count, uint256 required);
    /// @dev Too many shard holders (cap {MAX_HOLDERS}).
    error DatasetTooManyHolders(uint256 count, uint256 max);
    /// @dev The holder appears twice in the same list.
    error DatasetDuplicateHolder(address holder);
    /// @dev The holder is not Active in the holder registry.
    error DatasetHolderNotActive(address holder);
    /// @dev `1 <= threshold <= fragmentHolders <= 255` required.
    error DatasetInvalidThreshold(uint8 threshold, uint256 fragmentHolders);
    /// @dev One sealed wrap key and one fragments root per fragment holder.
    error DatasetFragmentLengthMismatch(uint256 fragmentHolders, uint256 sealedWrapKeys, uint256 fragmentRoots);
    /// @dev The sealed wrap key at `index` is empty.
    error DatasetEmptyWrapKey(uint256 index);
    /// @dev `account` is neither a shard nor a fragment holder of the dataset.
    error DatasetNotHolder(bytes32 datasetId, address account);
    /// @dev `holder` confirmed already.
    error DatasetCustodyAlreadyConfirmed(bytes32 datasetId, address holder);
    /// @dev No policy with this version.
    error DatasetUnknownPolicyVersion(bytes32 datasetId, uint32 version);
    /// @dev `shardIndex >= shardCount`.
    error DatasetShardIndexOutOfRange(bytes32 datasetId, uint256 shardIndex, uint32 shardCount);
    /// @dev `account` is not a fragment holder of the dataset.
    error DatasetNotFragmentHolder(bytes32 datasetId, address account);

    /// @dev `account` is not the admin of the holder registry.
    error DatasetNotAdmin(address account);
    /// @dev The retrieval coordinator was set already.
    error DatasetCoordinatorAlreadySet(address coordinator);
    /// @dev No retrieval coordinator is set (re-deals need one).
    error DatasetNoCoordinator();
    /// @dev `account` is neither the owner nor a REPAIRER_ROLE account.
    error DatasetNotRepairer(bytes32 datasetId, address account);
    /// @dev `holder`, the shard's current holder, is Active, did not release it and was not
    /// proven to serve a wrong copy of it.
    error DatasetShardNotRepairable(bytes32 datasetId, uint32 shardIndex, address holder);
    /// @dev The shard is already assigned to `holder`, pending its confirmation.
    error DatasetShardAlreadyAssigned(bytes32 datasetId, uint32 shardIndex, address holder);
    /// @dev `holder` holds (or is assigned) another shard of stripe `stripe`.
    error DatasetHolderInStripe(bytes32 datasetId, uint256 stripe, address holder);
    /// @dev `account` is not the pending holder of the shard.
    error DatasetNotAssignedHolder(bytes32 datasetId, uint32 shardIndex, address account);
    /// @dev `account` is not the current holder of the shard.
    error DatasetNotShardHolderOf(bytes32 datasetId, uint32 shardIndex, address account);
    /// @dev `holder` released the shard already.
    error DatasetShardAlreadyReleased(bytes32 datasetId, uint32 shardIndex, address holder);
    /// @dev Request `requestId` is not a re-deal request of this dataset by its owner made
    /// under the current fragment epoch.
    error DatasetRedealRequestMismatch(bytes32 datasetId, uint256 requestId);
    /// @dev The re-deal request is not Approved/Completed with at least `threshold` tokens.
    error DatasetRedealNotReleased(uint256 requestId, uint16 tokensIssued, uint8 threshold);
    /// @dev The re-deal request was used for a re-deal already.
    error DatasetRedealRequestUsed(uint256 requestId);
    /// @dev No fragment epoch `epoch` (epochs are 1..latest).
    error DatasetUnknownFragmentEpoch(bytes32 datasetId, uint32 epoch);
    /// @dev Epoch `epoch` is not pending (current or superseded already, or unknown).
    error DatasetFragmentEpochNotPending(bytes32 datasetId, uint32 epoch);
    /// @dev `account` is not a fragment holder of epoch `epoch`.
    error DatasetNotEpochHolder(bytes32 datasetId, uint32 epoch, address account);
    /// @dev `holder` confirmed epoch `epoch` already.
    error DatasetFragmentCustodyAlreadyConfirmed(bytes32 datasetId, uint32 epoch, address holder);

    /// @dev The list named `list` has `length` entries, more than `max` (requesters 64,
    /// attestors 16, members of a group 32, groups 8, regions = circles + polygons 16).
    error PolicyListTooLong(string list, uint256 length, uint256 max);
    /// @dev The ABI encoding of the policy is `size` bytes, more than `max` (8192).
    error PolicyTooLarge(uint256 size, uint256 max);
    /// @dev Circle `index` has a centre outside [-90e6, 90e6] x [-180e6, 180e6].
    error PolicyCircleOutOfRange(uint256 index, int32 latE6, int32 lonE6);
    /// @dev Circle `index` has a zero radius.
    error PolicyCircleZeroRadius(uint256 index);
    /// @dev Polygon `index` needs 3..32 vertices and equal-length coordinate arrays.
    error PolicyPolygonInvalidVertexCount(uint256 index, uint256 lats, uint256 lons);
    /// @dev Polygon `index` has vertex `vertex` out of range.
    error PolicyPolygonOutOfRange(uint256 index, uint256 vertex, int32 latE6, int32 lonE6);
    /// @dev Group `index` has no members.
    error PolicyGroupEmpty(uint256 index);
    /// @dev Group `index` lists `member` twice.
    error PolicyGroupDuplicateMember(uint256 index, address member);
    /// @dev Group `index` needs `1 <= required <= members`.
    error PolicyGroupInvalidRequired(uint256 index, uint8 required, uint256 members);
    /// @dev `approvalWindow` must be > 0.
    error PolicyZeroApprovalWindow();
    /// @dev With attestors set, `maxAttestationAge` must be > 0.
    error PolicyZeroAttestationAge();
    /// @dev With attestors set, at least one circle or polygon is needed.
    error PolicyNoRegions();
    /// @dev Regions given without any attestor (the geographic condition would be silently off).
    error PolicyRegionsWithoutAttestors();
    /// @dev `notBefore > notAfter` with both set.
    error PolicyInvalidPeriod(uint64 notBefore, uint64 notAfter);
    /// @dev Daily minutes must be < 1440.
    error PolicyInvalidDailyWindow(uint16 startMinute, uint16 endMinute);
    /// @dev Weekday mask must be < 128.
    error PolicyInvalidWeekdayMask(uint8 weekdayMask);
    /// @dev With a polygon region, `maxAccuracyM` must be > 0: the polygon test ignores the fix's
    /// accuracy, so without a bound a coarse fix whose centre falls inside would pass.
    error PolicyPolygonsWithoutAccuracy();
    /// @dev `member` of group `group` is already a member of the earlier group `firstGroup`; an
    /// approver may be in one approval group only.
    error PolicyMemberInTwoGroups(uint256 firstGroup, uint256 group, address member);

    /// @notice Registers a dataset owned by the caller; returns
    /// `keccak256(abi.encode(block.chainid, address(this), msg.sender, salt))`.
    function registerDataset(
        bytes32 salt,
        DatasetParams calldata params,
        Policy calldata policy,
        bytes32[] calldata shardHashes,
        bytes[] calldata sealedWrapKeys,
        bytes32[] calldata fragmentRoots
    ) external returns (bytes32 datasetId);

    /// @notice A holder of the Pending dataset confirms it stores its shards/bundle.
    function confirmCustody(bytes32 datasetId) external;

    /// @notice Owner: installs a new policy version (Pending or Active dataset).
    function updatePolicy(bytes32 datasetId, Policy calldata policy) external returns (uint32 version);

    /// @notice Owner: revokes the dataset (Pending or Active).
    function revokeDataset(bytes32 datasetId) external;

    /// @notice The id `owner` gets for `salt`.
    function computeDatasetId(address owner, bytes32 salt) external view returns (bytes32);

    /// @notice The dataset; reverts with {DatasetUnknown} if none.
    function dataset(bytes32 datasetId) external view returns (Dataset memory);

    /// @notice Status and current policy version (None, 0 for an unknown id); cheap.
    function datasetStatus(bytes32 datasetId) external view returns (DatasetStatus status, uint32 policyVersion);

    /// @notice Policy `version` (1-based).
    function policy(bytes32 datasetId, uint32 version) external view returns (Policy memory);

    /// @notice The policy in force.
    function currentPolicy(bytes32 datasetId) external view returns (Policy memory);

    /// @notice Whether `account` is in the registration's shard holders or holds a repaired shard.
    function isShardHolder(bytes32 datasetId, address account) external view returns (bool);

    /// @notice Whether `account` is a fragment holder of the current fragment epoch.
    function isFragmentHolder(bytes32 datasetId, address account) external view returns (bool);

    /// @notice Position `j` of a fragment holder of the current epoch (x-coordinate `j + 1`).
    function fragmentHolderIndex(bytes32 datasetId, address account) external view returns (uint256);

    /// @notice The holder of shard `shardIndex`: the repaired holder when a repair moved it,
    /// else `shardHolders[shardIndex % shardHolders.length]`.
    function shardHolderOf(bytes32 datasetId, uint256 shardIndex) external view returns (address);

    /// @notice Holder-registry admin, once: the coordinator whose re-deal requests and shard
    /// failure proofs this registry accepts.
    function setRetrievalCoordinator(address coordinator) external;

    /// @notice The coordinator set by {setRetrievalCoordinator} (zero until then).
    function retrievalCoordinator() external view returns (address);

    /// @notice The current holder of the shard of an Active dataset says it lost it.
    function releaseShard(bytes32 datasetId, uint32 shardIndex) external;

    /// @notice Owner or REPAIRER_ROLE: assigns a repairable shard to Active `newHolder`, which
    /// must not hold (or be assigned) another shard of the stripe. A pending assignment may be
    /// moved to another holder; the same holder again reverts.
    function assignShard(bytes32 datasetId, uint32 shardIndex, address newHolder) external;

    /// @notice The assigned holder, having checked the shard against its leaf, takes it over.
    function confirmShardPlacement(bytes32 datasetId, uint32 shardIndex) external;

    /// @notice Owner: registers fragment epoch `latest + 1` (pending) from a released re-deal
    /// request of its own made under the current epoch; holders Active and distinct.
    function redealFragments(
        bytes32 datasetId,
        uint256 redealRequestId,
        address[] calldata fragmentHolders,
        uint8 threshold,
        bytes[] calldata sealedWrapKeys,
        bytes32[] calldata fragmentRoots
    ) external returns (uint32 epoch);

    /// @notice A fragment holder of pending epoch `epoch` confirms custody of its bundle; the
    /// last confirmation makes the epoch current.
    function confirmFragmentCustody(bytes32 datasetId, uint32 epoch) external;

    /// @notice The holder a shard is assigned to, pending its confirmation (zero if none).
    function pendingShardHolder(bytes32 datasetId, uint32 shardIndex) external view returns (address);

    /// @notice Whether the shard's current holder released it.
    function shardReleased(bytes32 datasetId, uint32 shardIndex) external view returns (bool);

    /// @notice How many shards of the dataset `holder` holds now.
    function shardsHeld(bytes32 datasetId, address holder) external view returns (uint32);

    /// @notice The current fragment epoch and the latest registered one (pending if greater).
    function fragmentEpochs(bytes32 datasetId) external view returns (uint32 current, uint32 latest);

    /// @notice The fragment holders, threshold and confirmations of epoch `epoch`.
    function fragmentSet(bytes32 datasetId, uint32 epoch) external view returns (FragmentSet memory);

    /// @notice Whether a re-deal used request `requestId`.
    function redealUsed(uint256 requestId) external view returns (bool);

    /// @notice What the coordinator reads at a request: status, policy version, current
    /// fragment epoch, owner (None, 0, 1, 0 for an unknown id). One call.
    function requestContext(bytes32 datasetId)
        external
        view
        returns (DatasetStatus status, uint32 policyVersion, uint32 fragmentEpoch, address owner);

    /// @notice Whether `holder` has confirmed custody.
    function custodyConfirmed(bytes32 datasetId, address holder) external view returns (bool);
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IHolderRegistry
 * @notice Storage holders of ShardKey: each holder account registers itself (Pending), the
 * admin activates or retires it. Only Active holders can be placed in a new dataset or
 * receive a repaired shard or a re-dealt fragment set; a Retired, Exiting or Failed holder
 * keeps serving (confirming custody, delivering fragments) the datasets it is already part
 * of, so no status change destroys data. A holder leaves by {announceExit} (Active ->
 * Exiting: repairers move its shards and owners re-deal its fragments) and, once it holds
 * nothing, {completeExit} (Exiting -> Retired). The admin marks a holder Failed, which starts
 * the same repair. Values of {HolderStatus} are append-only.
 */
interface IHolderRegistry {
    enum HolderStatus {
        None,
        Pending,
        Active,
        Retired,
        Exiting,
        Failed
    }

    /// @notice A holder record. Coordinates are micro-degrees.
    struct Holder {
        HolderStatus status;
        int32 latE6;
        int32 lonE6;
        uint64 registeredAt;
        bytes hpkePublicKey;
        string endpoint;
        string region;
    }

    /// @notice `holder` registered itself (status Pending).
    event HolderRegistered(
        address indexed holder, bytes hpkePublicKey, string endpoint, string region, int32 latE6, int32 lonE6
    );
    /// @notice The admin `by` activated `holder`.
    event HolderActivated(address indexed holder, address indexed by);
    /// @notice The admin `by` retired `holder`.
    event HolderRetired(address indexed holder, address indexed by);
    /// @notice `holder` announced it is leaving (Active -> Exiting).
    event HolderExiting(address indexed holder);
    /// @notice The admin `by` marked `holder` Failed.
    event HolderFailed(address indexed holder, address indexed by);
    /// @notice `holder` rotated its HPKE key and/or endpoint.
    event HolderUpdated(address indexed holder, bytes hpkePublicKey, string endpoint);

    /// @dev `holder` is already registered.
    error HolderAlreadyRegistered(address holder);
    /// @dev `holder` never registered.
    error HolderNotRegistered(address holder);
    /// @dev The transition is not allowed from `status`.
    error HolderInvalidStatus(address holder, HolderStatus status);
    /// @dev An empty HPKE public key was given.
    error HolderEmptyPublicKey(address holder);
    /// @dev An empty endpoint was given.
    error HolderEmptyEndpoint(address holder);
    /// @dev Coordinates outside [-90e6, 90e6] x [-180e6, 180e6].
    error HolderCoordinatesOutOfRange(int32 latE6, int32 lonE6);

    /// @notice Registers the caller as a holder (status Pending).
    function registerHolder(
        bytes calldata hpkePublicKey,
        string calldata endpoint,
        string calldata region,
        int32 latE6,
        int32 lonE6
    ) external;

    /// @notice Rotates the caller's HPKE key and endpoint (any registered status).
    function updateHolder(bytes calldata hpkePublicKey, string calldata endpoint) external;

    /// @notice Admin: Pending, Retired or Failed -> Active.
    function activateHolder(address holder) external;

    /// @notice Admin: Pending, Active, Exiting or Failed -> Retired.
    function retireHolder(address holder) external;

    /// @notice The caller (a holder) announces it is leaving: Active -> Exiting. It is no
    /// longer Active (never placed again) but keeps serving what it holds.
    function announceExit() external;

    /// @notice The caller (an Exiting holder) retires itself: Exiting -> Retired. Its agent
    /// calls it only once `DatasetRegistry.shardsHeld` is zero and it is in no current fragment
    /// set of any dataset it stores (not enforced here; see docs/CONTRACTS.md).
    function completeExit() external;

    /// @notice Admin: Pending, Active or Exiting -> Failed.
    function markFailed(address holder) external;

    /// @notice FAILURE_PROVER_ROLE (the RetrievalCoordinator): `holder` was proven on chain to
    /// serve a wrong copy of one more shard. At `PROVEN_FAILURES_TO_FAIL` distinct shards an
    /// Active, Pending or Exiting holder becomes Failed (emits {HolderFailed} with the prover).
    function recordProvenFailure(address holder) external;

    /// @notice How many distinct shards `holder` was proven to serve wrong.
    function provenFailures(address holder) external view returns (uint32);

    /// @notice Whether `account` holds REPAIRER_ROLE (may assign repaired shards of any dataset).
    function isRepairer(address account) external view returns (bool);

    /// @notice Whether `account` holds DEFAULT_ADMIN_ROLE.
    function isAdmin(address account) external view returns (bool);

    /// @notice The record of `holder`; reverts with {HolderNotRegistered} if unknown.
    function getHolder(address holder) external view returns (Holder memory);

    /// @notice Whether `holder` is Active.
    function isActive(address holder) external view returns (bool);

    /// @notice Every registered holder address, in registration order.
    function holders() external view returns (address[] memory);
}

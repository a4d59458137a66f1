// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IHolderRegistry
 * @notice Storage holders of ShardKey: each holder account registers itself (Pending), the
 * admin activates or retires it. Only Active holders can be placed in a new dataset; a
 * Retired holder keeps serving (confirming custody, delivering fragments) the datasets it is
 * already part of, so retiring a holder never destroys data.
 */
interface IHolderRegistry {
    enum HolderStatus {
        None,
        Pending,
        Active,
        Retired
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

    /// @notice Admin: Pending or Retired -> Active.
    function activateHolder(address holder) external;

    /// @notice Admin: Pending or Active -> Retired.
    function retireHolder(address holder) external;

    /// @notice The record of `holder`; reverts with {HolderNotRegistered} if unknown.
    function getHolder(address holder) external view returns (Holder memory);

    /// @notice Whether `holder` is Active.
    function isActive(address holder) external view returns (bool);

    /// @notice Every registered holder address, in registration order.
    function holders() external view returns (address[] memory);
}

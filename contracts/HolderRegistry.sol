// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IHolderRegistry} from "./interfaces/IHolderRegistry.sol";

/**
 * @title HolderRegistry
 * @notice See {IHolderRegistry}. The admin (DEFAULT_ADMIN_ROLE) activates, retires and fails
 * holders and grants REPAIRER_ROLE.
 */
contract HolderRegistry is IHolderRegistry, AccessControl {
    /// @notice Role of repair accounts: may assign a lost shard of any dataset to a new holder.
    bytes32 public constant REPAIRER_ROLE = keccak256("REPAIRER_ROLE");
    int32 private constant MAX_LAT = 90e6;
    int32 private constant MAX_LON = 180e6;

    mapping(address holder => Holder) private _holders;
    address[] private _holderList;

    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IHolderRegistry
    function registerHolder(
        bytes calldata hpkePublicKey,
        string calldata endpoint,
        string calldata region,
        int32 latE6,
        int32 lonE6
    ) external {
        if (_holders[msg.sender].status != HolderStatus.None) revert HolderAlreadyRegistered(msg.sender);
        _checkKeyAndEndpoint(hpkePublicKey, endpoint);
        if (latE6 < -MAX_LAT || latE6 > MAX_LAT || lonE6 < -MAX_LON || lonE6 > MAX_LON) {
            revert HolderCoordinatesOutOfRange(latE6, lonE6);
        }
        _holders[msg.sender] = Holder({
            status: HolderStatus.Pending,
            latE6: latE6,
            lonE6: lonE6,
            registeredAt: uint64(block.timestamp),
            hpkePublicKey: hpkePublicKey,
            endpoint: endpoint,
            region: region
        });
        _holderList.push(msg.sender);
        emit HolderRegistered(msg.sender, hpkePublicKey, endpoint, region, latE6, lonE6);
    }

    /// @inheritdoc IHolderRegistry
    function updateHolder(bytes calldata hpkePublicKey, string calldata endpoint) external {
        Holder storage h = _holders[msg.sender];
        if (h.status == HolderStatus.None) revert HolderNotRegistered(msg.sender);
        _checkKeyAndEndpoint(hpkePublicKey, endpoint);
        h.hpkePublicKey = hpkePublicKey;
        h.endpoint = endpoint;
        emit HolderUpdated(msg.sender, hpkePublicKey, endpoint);
    }

    /// @inheritdoc IHolderRegistry
    function activateHolder(address holder) external onlyRole(DEFAULT_ADMIN_ROLE) {
        HolderStatus s = _statusOf(holder);
        if (s != HolderStatus.Pending && s != HolderStatus.Retired && s != HolderStatus.Failed) {
            revert HolderInvalidStatus(holder, s);
        }
        _holders[holder].status = HolderStatus.Active;
        emit HolderActivated(holder, msg.sender);
    }

    /// @inheritdoc IHolderRegistry
    function retireHolder(address holder) external onlyRole(DEFAULT_ADMIN_ROLE) {
        HolderStatus s = _statusOf(holder);
        if (s == HolderStatus.Retired) revert HolderInvalidStatus(holder, s);
        _holders[holder].status = HolderStatus.Retired;
        emit HolderRetired(holder, msg.sender);
    }

    /// @inheritdoc IHolderRegistry
    function announceExit() external {
        HolderStatus s = _statusOf(msg.sender);
        if (s != HolderStatus.Active) revert HolderInvalidStatus(msg.sender, s);
        _holders[msg.sender].status = HolderStatus.Exiting;
        emit HolderExiting(msg.sender);
    }

    /// @inheritdoc IHolderRegistry
    function completeExit() external {
        HolderStatus s = _statusOf(msg.sender);
        if (s != HolderStatus.Exiting) revert HolderInvalidStatus(msg.sender, s);
        _holders[msg.sender].status = HolderStatus.Retired;
        emit HolderRetired(msg.sender, msg.sender);
    }

    /// @inheritdoc IHolderRegistry
    function markFailed(address holder) external onlyRole(DEFAULT_ADMIN_ROLE) {
        HolderStatus s = _statusOf(holder);
        if (s == HolderStatus.Retired || s == HolderStatus.Failed) revert HolderInvalidStatus(holder, s);
        _holders[holder].status = HolderStatus.Failed;
        emit HolderFailed(holder, msg.sender);
    }

    /// @inheritdoc IHolderRegistry
    function isRepairer(address account) external view returns (bool) {
        return hasRole(REPAIRER_ROLE, account);
    }

    /// @inheritdoc IHolderRegistry
    function isAdmin(address account) external view returns (bool) {
        return hasRole(DEFAULT_ADMIN_ROLE, account);
    }

    /// @inheritdoc IHolderRegistry
    function getHolder(address holder) external view returns (Holder memory) {
        _statusOf(holder);
        return _holders[holder];
    }

    /// @inheritdoc IHolderRegistry
    function isActive(address holder) external view returns (bool) {
        return _holders[holder].status == HolderStatus.Active;
    }

    /// @inheritdoc IHolderRegistry
    function holders() external view returns (address[] memory) {
        return _holderList;
    }

    function _statusOf(address holder) private view returns (HolderStatus s) {
        s = _holders[holder].status;
        if (s == HolderStatus.None) revert HolderNotRegistered(holder);
    }

    function _checkKeyAndEndpoint(bytes calldata hpkePublicKey, string calldata endpoint) private view {
        if (hpkePublicKey.length == 0) revert HolderEmptyPublicKey(msg.sender);
        if (bytes(endpoint).length == 0) revert HolderEmptyEndpoint(msg.sender);
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IHolderRegistry} from "./interfaces/IHolderRegistry.sol";

/**
 * @title HolderRegistry
 * @notice See {IHolderRegistry}. The admin (DEFAULT_ADMIN_ROLE) activates, retires and fails
 * holders and grants REPAIRER_ROLE and FAILURE_PROVER_ROLE (given to the RetrievalCoordinator
 * at deployment, so proven shard failures fail a holder without the admin).
 */
contract HolderRegistry is IHolderRegistry, AccessControl {
    /// @notice Role of repair accounts: may assign a lost shard of any dataset to a new holder.
    bytes32 public constant REPAIRER_ROLE = keccak256("REPAIRER_ROLE");
    /// @notice Role of the contract that proves shard failures (the RetrievalCoordinator).
    bytes32 public constant FAILURE_PROVER_ROLE = keccak256("FAILURE_PROVER_ROLE");
    /// @notice Distinct shards proven wrong that make a holder Failed. One proof already makes
    /// that shard repairable; three say the holder, not one sector, is broken or cheating.
    uint32 public constant PROVEN_FAILURES_TO_FAIL = 3;
    int32 private constant MAX_LAT = 90e6;
    int32 private constant MAX_LON = 180e6;

    mapping(address holder => Holder) private _holders;
    mapping(address holder => uint32 shards) private _provenFailures;
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
    function recordProvenFailure(address holder) external onlyRole(FAILURE_PROVER_ROLE) {
        uint32 count = ++_provenFailures[holder];
        HolderStatus s = _statusOf(holder);
        if (count >= PROVEN_FAILURES_TO_FAIL && s != HolderStatus.Retired && s != HolderStatus.Failed) {
            _holders[holder].status = HolderStatus.Failed;
            emit HolderFailed(holder, msg.sender);
        }
    }

    /// @inheritdoc IHolderRegistry
    function provenFailures(address holder) external view returns (uint32) {
        return _provenFailures[holder];
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

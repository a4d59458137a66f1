// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {IDatasetRegistry} from "./interfaces/IDatasetRegistry.sol";
import {IHolderRegistry} from "./interfaces/IHolderRegistry.sol";
import {IRetrievalCoordinator} from "./interfaces/IRetrievalCoordinator.sol";
import {PolicyGeo} from "./PolicyGeo.sol";
import {PolicyTime} from "./PolicyTime.sol";

/**
 * @title RetrievalCoordinator
 * @notice See {IRetrievalCoordinator}. EIP-712 domain ("ShardKey", "1"); KOS_ROLE posts tokens
 * and denials. Fragment holders that were retired in the holder registry still deliver for
 * the datasets they are part of.
 */
contract RetrievalCoordinator is IRetrievalCoordinator, AccessControl, EIP712 {
    /// @notice Role of the Key Orchestration Service accounts.
    bytes32 public constant KOS_ROLE = keccak256("KOS_ROLE");
    bytes32 public constant APPROVAL_TYPEHASH =
        keccak256(
            "Approval(uint256 requestId,bytes32 datasetId,address requester,bytes32 ephemeralKeyHash,address approver,uint256 nonce,uint256 deadline)"
        );
    bytes32 public constant LOCATION_ATTESTATION_TYPEHASH = keccak256(
        "LocationAttestation(address requester,int32 latE6,int32 lonE6,uint32 accuracyM,uint64 issuedAt,bytes32 nonce)"
    );
    /// @notice The custody receipt type of a holder's public `/receipts`; not accepted on chain.
    bytes32 public constant SHARD_RECEIPT_TYPEHASH =
        keccak256("ShardReceipt(bytes32 datasetId,uint32 shardIndex,bytes32 ciphertextHash)");
    /// @notice The receipt a holder signs when serving a shard under a request.
    bytes32 public constant SHARD_SERVED_TYPEHASH =
        keccak256("ShardServed(uint256 requestId,bytes32 datasetId,uint32 shardIndex,bytes32 ciphertextHash)");

    uint8 private constant APPROVED = 1;
    uint8 private constant TOKEN = 2;
    uint8 private constant DELIVERED = 4;
    uint8 private constant FRAGMENT_REPORTED = 8;
    uint8 private constant MAX_REASON = uint8(type(DenialReason).max);

    IDatasetRegistry private immutable _datasets;
    IHolderRegistry private immutable _holders;
    uint256 private _requestCount;
    mapping(uint256 requestId => Request) private _requests;
    /// @dev Approval count of group g in bits [8g, 8g + 8) (at most 8 groups of at most 32 members).
    mapping(uint256 requestId => uint256) private _approvalCounts;
    mapping(uint256 requestId => mapping(address account => uint8)) private _flags;
    mapping(address approver => mapping(uint256 nonce => bool)) private _nonceUsed;
    mapping(bytes32 digest => bool) private _attestationUsed;
    mapping(bytes32 datasetId => mapping(uint32 shardIndex => mapping(bytes32 servedHash => bool))) private
        _shardFailureProven;
    mapping(bytes32 datasetId => mapping(uint32 shardIndex => mapping(address holder => bool))) private
        _provenAgainst;

    constructor(address admin, IDatasetRegistry datasetRegistry_, IHolderRegistry holderRegistry_)
        EIP712("ShardKey", "1")
    {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _datasets = datasetRegistry_;
        _holders = holderRegistry_;
    }

    // ----- requests -----

    /// @inheritdoc IRetrievalCoordinator
    function requestRetrieval(
        bytes32 datasetId,
        bytes calldata ephemeralKey,
        LocationAttestation calldata attestation,
        address attestor,
        bytes calldata attestationSig
    ) external returns (uint256 requestId) {
        return _request(RequestPurpose.Retrieval, datasetId, ephemeralKey, attestation, attestor, attestationSig);
    }

    /// @inheritdoc IRetrievalCoordinator
    function requestRedeal(
        bytes32 datasetId,
        bytes calldata ephemeralKey,
        LocationAttestation calldata attestation,
        address attestor,
        bytes calldata attestationSig
    ) external returns (uint256 requestId) {
        requestId = _request(RequestPurpose.Redeal, datasetId, ephemeralKey, attestation, attestor, attestationSig);
        emit RedealRequested(requestId, datasetId, msg.sender);
    }

    /// @inheritdoc IRetrievalCoordinator
    function approve(ApprovalSubject calldata subject) external {
        _recordApproval(subject, msg.sender, false, 0);
    }

    /// @inheritdoc IRetrievalCoordinator
    function approveBySig(
        ApprovalSubject calldata subject,
        address approver,
        uint256 nonce,
        uint256 deadline,
        bytes calldata sig
    ) external {
        if (block.timestamp > deadline) revert RetrievalSignatureExpired(deadline);
        if (_nonceUsed[approver][nonce]) revert RetrievalNonceUsed(approver, nonce);
        if (!SignatureChecker.isValidSignatureNow(approver, hashApproval(subject, approver, nonce, deadline), sig)) {
            revert RetrievalInvalidSignature(approver);
        }
        _nonceUsed[approver][nonce] = true;
        _recordApproval(subject, approver, true, nonce);
    }

    // ----- KOS -----

    /// @inheritdoc IRetrievalCoordinator
    function issueTokens(uint256 requestId, address[] calldata holders, bytes[] calldata tokens)
        external
        onlyRole(KOS_ROLE)
    {
        Request storage r = _keysRequest(requestId);
        uint256 n = holders.length;
        if (n == 0 || n != tokens.length) revert RetrievalInvalidBatch(n, tokens.length);
        for (uint256 i = 0; i < n; ++i) {
            address h = holders[i];
            if (!_datasets.isFragmentHolder(r.datasetId, h)) revert RetrievalNotFragmentHolder(requestId, h);
            if (_flags[requestId][h] & TOKEN != 0) revert RetrievalTokenAlreadyIssued(requestId, h);
            if (tokens[i].length == 0) revert RetrievalEmptyPayload(requestId, h);
            _flags[requestId][h] |= TOKEN;
            emit TokenIssued(requestId, h, tokens[i]);
        }
        r.tokensIssued += uint16(n);
    }

    /// @inheritdoc IRetrievalCoordinator
    function denyRequest(uint256 requestId, uint8 reason) external onlyRole(KOS_ROLE) {
        if (reason == 0 || reason > MAX_REASON) revert RetrievalInvalidDenialReason(reason);
        Request storage r = _existing(requestId);
        if (r.status != RequestStatus.Pending && r.status != RequestStatus.Approved) {
            revert RetrievalInvalidStatus(requestId, r.status);
        }
        _deny(requestId, r, DenialReason(reason), msg.sender);
    }

    // ----- holders and requester -----

    /// @inheritdoc IRetrievalCoordinator
    function deliverFragments(uint256 requestId, bytes calldata sealedFragments) external {
        Request storage r = _keysRequest(requestId);
        uint8 flags = _flags[requestId][msg.sender];
        if (flags & TOKEN == 0) revert RetrievalNoToken(requestId, msg.sender);
        if (flags & DELIVERED != 0) revert RetrievalAlreadyDelivered(requestId, msg.sender);
        if (sealedFragments.length == 0) revert RetrievalEmptyPayload(requestId, msg.sender);
        _flags[requestId][msg.sender] = flags | DELIVERED;
        r.deliveries += 1;
        emit FragmentsDelivered(requestId, msg.sender, sealedFragments);
    }

    /// @inheritdoc IRetrievalCoordinator
    function completeRetrieval(uint256 requestId) external {
        Request storage r = _ownRequest(requestId);
        if (r.status != RequestStatus.Approved) revert RetrievalInvalidStatus(requestId, r.status);
        r.status = RequestStatus.Completed;
        emit RetrievalCompleted(requestId, r.datasetId, msg.sender);
    }

    /// @inheritdoc IRetrievalCoordinator
    function reportShardFailure(
        uint256 requestId,
        uint32 shardIndex,
        bytes32 servedHash,
        bytes calldata holderSig,
        bytes32 expectedHash,
        bytes32[] calldata proof
    ) external {
        bytes32 datasetId = _ownRequest(requestId).datasetId;
        IDatasetRegistry.Dataset memory d = _datasets.dataset(datasetId);
        // A dataset becomes Active only once every holder checked its shards against the
        // registered root, so a root that disagrees with the published hashes never gets here.
        if (d.status != IDatasetRegistry.DatasetStatus.Active) revert RetrievalDatasetNotActive(requestId, datasetId);
        _openRequest(requestId);
        if (_shardFailureProven[datasetId][shardIndex][servedHash]) {
            revert RetrievalShardFailureAlreadyProven(datasetId, shardIndex, servedHash);
        }
        if (servedHash == expectedHash) revert RetrievalShardHashMatches(shardIndex, servedHash);
        address holder = _provenCheater(requestId, d, shardIndex, servedHash, holderSig, expectedHash, proof);
        _shardFailureProven[datasetId][shardIndex][servedHash] = true;
        bool firstForShard = !_provenAgainst[datasetId][shardIndex][holder];
        _provenAgainst[datasetId][shardIndex][holder] = true;
        emit ShardIntegrityFailureProven(datasetId, requestId, holder, shardIndex, servedHash, expectedHash);
        // counted once per (dataset, shard, holder): wrong copies of one shard are one failure
        if (firstForShard) _holders.recordProvenFailure(holder);
    }

    /// @inheritdoc IRetrievalCoordinator
    function reportFragmentFailure(uint256 requestId, address holder, uint8 kind) external {
        if (kind == 0 || kind > uint8(type(FragmentFailureKind).max)) revert RetrievalInvalidFragmentFailureKind(kind);
        Request storage r = _ownRequest(requestId);
        if (r.status != RequestStatus.Approved && r.status != RequestStatus.Completed) {
            revert RetrievalInvalidStatus(requestId, r.status);
        }
        uint8 flags = _flags[requestId][holder];
        // Tokens go to fragment holders of the dataset only, so this also names a fragment holder.
        if (flags & TOKEN == 0) revert RetrievalNoToken(requestId, holder);
        if (flags & FRAGMENT_REPORTED != 0) revert RetrievalFragmentFailureAlreadyReported(requestId, holder);
        FragmentFailureKind claim = FragmentFailureKind(kind);
        if (claim == FragmentFailureKind.Wrong) {
            if (flags & DELIVERED == 0) revert RetrievalNotDelivered(requestId, holder);
        } else {
            if (flags & DELIVERED != 0) revert RetrievalAlreadyDelivered(requestId, holder);
            if (block.timestamp <= r.deadline) revert RetrievalDeliveryWindowOpen(requestId, r.deadline);
        }
        _flags[requestId][holder] = flags | FRAGMENT_REPORTED;
        emit FragmentFailureReported(requestId, r.datasetId, holder, claim);
    }

    // ----- views -----

    /// @inheritdoc IRetrievalCoordinator
    function checkPolicy(
        bytes32 datasetId,
        address requester,
        LocationAttestation calldata attestation,
        address attestor,
        bytes calldata attestationSig
    ) external view returns (DenialReason reason) {
        (IDatasetRegistry.DatasetStatus ds, uint32 version) = _datasets.datasetStatus(datasetId);
        if (ds == IDatasetRegistry.DatasetStatus.None) revert RetrievalUnknownDataset(datasetId);
        (reason,,) = _evaluate(datasetId, ds, version, requester, attestation, attestor, attestationSig);
    }

    /// @inheritdoc IRetrievalCoordinator
    function request(uint256 requestId) external view returns (Request memory) {
        return _existing(requestId);
    }

    /// @inheritdoc IRetrievalCoordinator
    function requestCount() external view returns (uint256) {
        return _requestCount;
    }

    /// @inheritdoc IRetrievalCoordinator
    function isOpen(uint256 requestId) external view returns (bool) {
        Request storage r = _requests[requestId];
        if (r.status != RequestStatus.Approved || block.timestamp > r.deadline) return false;
        (IDatasetRegistry.DatasetStatus ds,, uint32 epoch,) = _datasets.requestContext(r.datasetId);
        return ds != IDatasetRegistry.DatasetStatus.Revoked && epoch == r.fragmentEpoch;
    }

    /// @inheritdoc IRetrievalCoordinator
    function tokenIssued(uint256 requestId, address holder) external view returns (bool) {
        return _flags[requestId][holder] & TOKEN != 0;
    }

    /// @inheritdoc IRetrievalCoordinator
    function delivered(uint256 requestId, address holder) external view returns (bool) {
        return _flags[requestId][holder] & DELIVERED != 0;
    }

    /// @inheritdoc IRetrievalCoordinator
    function hasApproved(uint256 requestId, address approver) external view returns (bool) {
        return _flags[requestId][approver] & APPROVED != 0;
    }

    /// @inheritdoc IRetrievalCoordinator
    function approvalCounts(uint256 requestId) external view returns (uint8[] memory counts) {
        Request storage r = _existing(requestId);
        uint256 groups = _datasets.policy(r.datasetId, r.policyVersion).groups.length;
        uint256 packed = _approvalCounts[requestId];
        counts = new uint8[](groups);
        for (uint256 g = 0; g < groups; ++g) {
            counts[g] = uint8(packed >> (8 * g));
        }
    }

    /// @inheritdoc IRetrievalCoordinator
    function nonceUsed(address approver, uint256 nonce) external view returns (bool) {
        return _nonceUsed[approver][nonce];
    }

    /// @inheritdoc IRetrievalCoordinator
    function attestationUsed(bytes32 digest) external view returns (bool) {
        return _attestationUsed[digest];
    }

    /// @inheritdoc IRetrievalCoordinator
    function shardFailureProvenAgainst(bytes32 datasetId, uint32 shardIndex, address holder)
        external
        view
        returns (bool)
    {
        return _provenAgainst[datasetId][shardIndex][holder];
    }

    /// @inheritdoc IRetrievalCoordinator
    function shardFailureProven(bytes32 datasetId, uint32 shardIndex, bytes32 servedHash)
        external
        view
        returns (bool)
    {
        return _shardFailureProven[datasetId][shardIndex][servedHash];
    }

    /// @inheritdoc IRetrievalCoordinator
    function registries() external view returns (IDatasetRegistry datasetRegistry, IHolderRegistry holderRegistry) {
        return (_datasets, _holders);
    }

    /// @inheritdoc IRetrievalCoordinator
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @inheritdoc IRetrievalCoordinator
    function hashApproval(ApprovalSubject calldata subject, address approver, uint256 nonce, uint256 deadline)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    APPROVAL_TYPEHASH,
                    subject.requestId,
                    subject.datasetId,
                    subject.requester,
                    subject.ephemeralKeyHash,
                    approver,
                    nonce,
                    deadline
                )
            )
        );
    }

    /// @inheritdoc IRetrievalCoordinator
    function approvalSubject(uint256 requestId) external view returns (ApprovalSubject memory) {
        Request storage r = _existing(requestId);
        return ApprovalSubject(requestId, r.datasetId, r.requester, r.ephemeralKeyHash);
    }

    /// @inheritdoc IRetrievalCoordinator
    function hashAttestation(LocationAttestation calldata a) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    LOCATION_ATTESTATION_TYPEHASH, a.requester, a.latE6, a.lonE6, a.accuracyM, a.issuedAt, a.nonce
                )
            )
        );
    }

    /// @inheritdoc IRetrievalCoordinator
    function hashShardReceipt(bytes32 datasetId, uint32 shardIndex, bytes32 ciphertextHash)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(SHARD_RECEIPT_TYPEHASH, datasetId, shardIndex, ciphertextHash)));
    }

    /// @inheritdoc IRetrievalCoordinator
    function hashShardServed(uint256 requestId, bytes32 datasetId, uint32 shardIndex, bytes32 ciphertextHash)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(abi.encode(SHARD_SERVED_TYPEHASH, requestId, datasetId, shardIndex, ciphertextHash))
        );
    }

    // ----- internals -----

    /// @dev The one path of {requestRetrieval} and {requestRedeal}: create, evaluate, settle.
    function _request(
        RequestPurpose purpose,
        bytes32 datasetId,
        bytes calldata ephemeralKey,
        LocationAttestation calldata attestation,
        address attestor,
        bytes calldata attestationSig
    ) private returns (uint256 requestId) {
        Request storage r;
        IDatasetRegistry.DatasetStatus ds;
        (requestId, r, ds) = _createRequest(purpose, datasetId, ephemeralKey, attestation, attestor, attestationSig);
        (DenialReason reason, bytes32 digest, IDatasetRegistry.Policy memory p) =
            _evaluate(datasetId, ds, r.policyVersion, msg.sender, attestation, attestor, attestationSig);
        _settle(requestId, r, reason, digest, p);
    }

    /// @dev Checks the input, stores a new request (status set by {_settle}) and emits
    /// {RetrievalRequested}.
    function _createRequest(
        RequestPurpose purpose,
        bytes32 datasetId,
        bytes calldata ephemeralKey,
        LocationAttestation calldata attestation,
        address attestor,
        bytes calldata attestationSig
    ) private returns (uint256 requestId, Request storage r, IDatasetRegistry.DatasetStatus ds) {
        requestId = ++_requestCount;
        r = _requests[requestId];
        {
            uint32 version;
            uint32 epoch;
            address owner;
            (ds, version, epoch, owner) = _datasets.requestContext(datasetId);
            if (ds == IDatasetRegistry.DatasetStatus.None) revert RetrievalUnknownDataset(datasetId);
            if (ephemeralKey.length == 0) revert RetrievalEmptyEphemeralKey();
            if (purpose == RequestPurpose.Redeal && owner != msg.sender) {
                revert RetrievalNotDatasetOwner(datasetId, msg.sender);
            }
            r.policyVersion = version;
            r.fragmentEpoch = epoch;
        }
        r.datasetId = datasetId;
        r.requester = msg.sender;
        r.purpose = purpose;
        r.requestedAt = uint64(block.timestamp);
        // Only the hash is stored (one slot, not 38 for a 1216-byte hybrid key): the key is
        // in the event, and readers take it from there checked against this hash.
        r.ephemeralKeyHash = keccak256(ephemeralKey);
        emit RetrievalRequested(
            requestId, datasetId, msg.sender, r.policyVersion, ephemeralKey, attestor, attestation, attestationSig
        );
    }

    /// @dev Stores the outcome of a new request. The attestation digest is consumed only when
    /// the request is not denied.
    function _settle(
        uint256 requestId,
        Request storage r,
        DenialReason reason,
        bytes32 digest,
        IDatasetRegistry.Policy memory p
    ) private {
        if (reason != DenialReason.None) {
            _deny(requestId, r, reason, address(0));
            return;
        }
        if (digest != bytes32(0)) _attestationUsed[digest] = true;
        if (p.groups.length == 0) {
            _markApproved(requestId, r, p.approvalWindow);
        } else {
            r.status = RequestStatus.Pending;
        }
    }

    function _recordApproval(ApprovalSubject calldata subject, address approver, bool bySig, uint256 nonce)
        private
    {
        uint256 requestId = subject.requestId;
        Request storage r = _existing(requestId);
        // The id alone is not enough: across a reorg a sequential id can name another request.
        if (
            subject.datasetId != r.datasetId || subject.requester != r.requester
                || subject.ephemeralKeyHash != r.ephemeralKeyHash
        ) {
            revert RetrievalApprovalMismatch(requestId, r.datasetId, r.requester, r.ephemeralKeyHash);
        }
        if (r.status != RequestStatus.Pending) revert RetrievalInvalidStatus(requestId, r.status);
        if (approver == r.requester) revert RetrievalSelfApproval(requestId, approver);
        if (_flags[requestId][approver] & APPROVED != 0) revert RetrievalAlreadyApproved(requestId, approver);
        IDatasetRegistry.Policy memory p = _datasets.policy(r.datasetId, r.policyVersion);
        uint256 counts = _approvalCounts[requestId];
        bool member = false;
        bool complete = true;
        for (uint256 g = 0; g < p.groups.length; ++g) {
            uint256 shift = 8 * g;
            uint256 c = (counts >> shift) & 0xff;
            if (_contains(p.groups[g].members, approver)) {
                member = true;
                ++c;
                counts = (counts & ~(uint256(0xff) << shift)) | (c << shift);
            }
            if (c < p.groups[g].required) complete = false;
        }
        if (!member) revert RetrievalNotApprover(requestId, approver);

        _flags[requestId][approver] |= APPROVED;
        _approvalCounts[requestId] = counts;
        emit ApprovalRecorded(requestId, approver, bySig, nonce);
        if (complete) _markApproved(requestId, r, p.approvalWindow);
    }

    function _markApproved(uint256 requestId, Request storage r, uint32 window) private {
        uint64 nowTs = uint64(block.timestamp);
        uint64 deadline = nowTs + window;
        r.status = RequestStatus.Approved;
        r.approvedAt = nowTs;
        r.deadline = deadline;
        emit RetrievalApproved(requestId, r.datasetId, nowTs, deadline);
    }

    function _deny(uint256 requestId, Request storage r, DenialReason reason, address by) private {
        r.status = RequestStatus.Denied;
        r.denialReason = reason;
        emit RetrievalDenied(requestId, r.datasetId, reason, by);
    }

    /// @dev The policy decision in the order of docs/ARCHITECTURE.md; also returns the
    /// attestation digest (zero when no geographic condition) and the decoded policy.
    function _evaluate(
        bytes32 datasetId,
        IDatasetRegistry.DatasetStatus ds,
        uint32 version,
        address requester,
        LocationAttestation calldata a,
        address attestor,
        bytes calldata sig
    ) private view returns (DenialReason, bytes32 digest, IDatasetRegistry.Policy memory p) {
        if (ds == IDatasetRegistry.DatasetStatus.Pending) return (DenialReason.DatasetNotActive, 0, p);
        if (ds == IDatasetRegistry.DatasetStatus.Revoked) return (DenialReason.DatasetRevoked, 0, p);
        p = _datasets.policy(datasetId, version);
        DenialReason reason = _checkAccess(p, requester);
        if (reason != DenialReason.None || p.attestors.length == 0) return (reason, 0, p);
        (reason, digest) = _checkAttestation(p, requester, a, attestor, sig);
        return (reason, digest, p);
    }

    function _checkAccess(IDatasetRegistry.Policy memory p, address requester) private view returns (DenialReason) {
        uint256 ts = block.timestamp;
        if (p.requesters.length != 0 && !_contains(p.requesters, requester)) return DenialReason.NotAllowedRequester;
        if (!PolicyTime.afterStart(ts, p.notBefore)) return DenialReason.TooEarly;
        if (!PolicyTime.beforeEnd(ts, p.notAfter)) return DenialReason.TooLate;
        if (!PolicyTime.onAllowedWeekday(ts, p.weekdayMask)) return DenialReason.OutsideWeekdays;
        if (!PolicyTime.inDailyWindow(ts, p.dailyStartMinute, p.dailyEndMinute)) {
            return DenialReason.OutsideDailyWindow;
        }
        return DenialReason.None;
    }

    function _checkAttestation(
        IDatasetRegistry.Policy memory p,
        address requester,
        LocationAttestation calldata a,
        address attestor,
        bytes calldata sig
    ) private view returns (DenialReason, bytes32 digest) {
        if (attestor == address(0) || sig.length == 0) return (DenialReason.MissingAttestation, 0);
        if (!_contains(p.attestors, attestor)) return (DenialReason.UntrustedAttestor, 0);
        digest = hashAttestation(a);
        if (!SignatureChecker.isValidSignatureNow(attestor, digest, sig)) {
            return (DenialReason.BadAttestationSignature, digest);
        }
        if (a.requester != requester) return (DenialReason.AttestationForOtherRequester, digest);
        if (a.issuedAt > block.timestamp) return (DenialReason.AttestationFromFuture, digest);
        if (block.timestamp - a.issuedAt > p.maxAttestationAge) return (DenialReason.StaleAttestation, digest);
        if (_attestationUsed[digest]) return (DenialReason.AttestationReplayed, digest);
        if (p.maxAccuracyM > 0 && a.accuracyM > p.maxAccuracyM) return (DenialReason.AttestationTooCoarse, digest);
        if (!PolicyGeo.insideAnyRegion(p, a.latE6, a.lonE6, a.accuracyM)) return (DenialReason.OutsideRegions, digest);
        return (DenialReason.None, digest);
    }

    /// @dev Checks a shard-failure proof and returns the placement holder that signed the
    /// `ShardServed` receipt for this request.
    function _provenCheater(
        uint256 requestId,
        IDatasetRegistry.Dataset memory d,
        uint32 shardIndex,
        bytes32 servedHash,
        bytes calldata holderSig,
        bytes32 expectedHash,
        bytes32[] calldata proof
    ) private view returns (address holder) {
        if (shardIndex >= d.shardCount) revert RetrievalShardIndexOutOfRange(requestId, shardIndex, d.shardCount);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(uint256(shardIndex), expectedHash))));
        if (!MerkleProof.verifyCalldata(proof, d.merkleRoot, leaf)) {
            revert RetrievalInvalidShardProof(shardIndex, expectedHash);
        }
        holder = _datasets.shardHolderOf(_requests[requestId].datasetId, shardIndex);
        bytes32 digest = hashShardServed(requestId, _requests[requestId].datasetId, shardIndex, servedHash);
        if (!SignatureChecker.isValidSignatureNow(holder, digest, holderSig)) {
            revert RetrievalInvalidReceiptSignature(holder, shardIndex);
        }
    }

    /// @dev An Approved, unexpired request of a dataset not revoked, and the dataset's current
    /// fragment epoch (one registry call).
    function _openRequestAt(uint256 requestId) private view returns (Request storage r, uint32 epoch) {
        r = _existing(requestId);
        if (r.status != RequestStatus.Approved) revert RetrievalInvalidStatus(requestId, r.status);
        if (block.timestamp > r.deadline) revert RetrievalApprovalExpired(requestId, r.deadline);
        IDatasetRegistry.DatasetStatus ds;
        (ds,, epoch,) = _datasets.requestContext(r.datasetId);
        if (ds == IDatasetRegistry.DatasetStatus.Revoked) revert RetrievalDatasetRevoked(requestId, r.datasetId);
    }

    /// @dev An open request whose fragment epoch is still current: tokens and deliveries only.
    function _keysRequest(uint256 requestId) private view returns (Request storage r) {
        uint32 epoch;
        (r, epoch) = _openRequestAt(requestId);
        if (epoch != r.fragmentEpoch) revert RetrievalStaleFragmentEpoch(requestId, r.fragmentEpoch, epoch);
    }

    function _openRequest(uint256 requestId) private view returns (Request storage r) {
        (r,) = _openRequestAt(requestId);
    }

    function _ownRequest(uint256 requestId) private view returns (Request storage r) {
        r = _existing(requestId);
        if (r.requester != msg.sender) revert RetrievalNotRequester(requestId, msg.sender);
    }

    function _existing(uint256 requestId) private view returns (Request storage r) {
        r = _requests[requestId];
        if (r.status == RequestStatus.None) revert RetrievalUnknownRequest(requestId);
    }

    function _contains(address[] memory list, address account) private pure returns (bool) {
        for (uint256 i = 0; i < list.length; ++i) {
            if (list[i] == account) return true;
        }
        return false;
    }
}

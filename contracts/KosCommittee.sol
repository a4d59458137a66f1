// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Hashes} from "@openzeppelin/contracts/utils/cryptography/Hashes.sol";
import {IDatasetRegistry} from "./interfaces/IDatasetRegistry.sol";
import {IKosCommittee} from "./interfaces/IKosCommittee.sol";
import {IRetrievalCoordinator} from "./interfaces/IRetrievalCoordinator.sol";

/**
 * @title KosCommittee
 * @notice See {IKosCommittee}. EIP-712 domain ("ShardKey KOS committee", "1"). The admin
 * (DEFAULT_ADMIN_ROLE) starts epochs. Members sign with EOAs or EIP-1271 wallets. Needs KOS_ROLE
 * on its coordinator (deploy grants it): it issues the tokens and denies requests.
 */
contract KosCommittee is IKosCommittee, AccessControl, EIP712 {
    bytes32 public constant SHARE_TYPEHASH = keccak256(
        "KosShare(uint256 requestId,bytes32 datasetId,address holder,address member,uint64 epoch,bytes32 share)"
    );
    /// @notice Domain word of every share commitment.
    bytes32 public constant COMMITMENT_DOMAIN = keccak256("shardkey/kos-share/v1");
    uint256 private constant MAX_MEMBERS = 255;
    uint256 private constant X25519_KEY_LEN = 32;
    uint256 private constant HYBRID_KEY_LEN = 1216;
    uint8 private constant PROVEN = 1;
    uint8 private constant REPORTED = 2;
    uint8 private constant RELEASED = 1;
    uint8 private constant DENIED = 2;
    uint8 private constant MAX_REASON = uint8(type(IRetrievalCoordinator.DenialReason).max);
    /// @dev The committee marker's tag: a token is `MARKER_TAG | uint64 committeeEpoch`.
    bytes4 private constant MARKER_TAG = "SKC1";

    struct Committee {
        uint8 threshold;
        address[] members;
        bytes[] hpkePublicKeys;
    }

    uint64 private _currentEpoch;
    mapping(uint64 epoch => Committee) private _committees;
    /// @dev Member index + 1 (0: not a member).
    mapping(uint64 epoch => mapping(address account => uint256)) private _indexPlusOne;
    mapping(uint256 requestId => mapping(address member => mapping(address holder => uint8))) private _faults;

    struct Deal {
        uint64 committeeEpoch;
        bytes32 root;
    }

    struct Tally {
        uint8 released;
        uint8 denied;
    }

    IRetrievalCoordinator private immutable _coordinator;
    IDatasetRegistry private immutable _datasets;
    mapping(bytes32 datasetId => mapping(uint32 fragmentEpoch => Deal)) private _deals;
    mapping(uint256 requestId => Tally) private _tallies;
    mapping(uint256 requestId => mapping(address member => uint8)) private _releaseStates;

    constructor(address admin, IRetrievalCoordinator coordinator_) EIP712("ShardKey KOS committee", "1") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _coordinator = coordinator_;
        (_datasets,) = coordinator_.registries();
    }

    /// @inheritdoc IKosCommittee
    function startEpoch(address[] calldata members, bytes[] calldata hpkePublicKeys, uint8 threshold_)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
        returns (uint64 epoch)
    {
        uint256 m = members.length;
        if (hpkePublicKeys.length != m) revert CommitteeLengthMismatch(m, hpkePublicKeys.length);
        if (threshold_ == 0 || threshold_ > m || m > MAX_MEMBERS) revert CommitteeInvalidThreshold(threshold_, m);
        epoch = _currentEpoch + 1;
        mapping(address => uint256) storage index = _indexPlusOne[epoch];
        for (uint256 i = 0; i < m; ++i) {
            address member = members[i];
            if (member == address(0)) revert CommitteeZeroMember(i);
            if (index[member] != 0) revert CommitteeDuplicateMember(member);
            uint256 len = hpkePublicKeys[i].length;
            if (len != X25519_KEY_LEN && len != HYBRID_KEY_LEN) revert CommitteeInvalidPublicKey(member, len);
            index[member] = i + 1;
        }
        _currentEpoch = epoch;
        Committee storage c = _committees[epoch];
        c.threshold = threshold_;
        c.members = members;
        for (uint256 i = 0; i < m; ++i) {
            c.hpkePublicKeys.push(hpkePublicKeys[i]);
        }
        emit CommitteeEpochStarted(epoch, members, hpkePublicKeys, threshold_);
    }

    /// @inheritdoc IKosCommittee
    function currentEpoch() external view returns (uint64) {
        return _currentEpoch;
    }

    /// @inheritdoc IKosCommittee
    function committee(uint64 epoch)
        external
        view
        returns (address[] memory members, bytes[] memory hpkePublicKeys, uint8 threshold_)
    {
        Committee storage c = _committee(epoch);
        return (c.members, c.hpkePublicKeys, c.threshold);
    }

    /// @inheritdoc IKosCommittee
    function isMember(uint64 epoch, address account) external view returns (bool) {
        return _indexPlusOne[epoch][account] != 0;
    }

    /// @inheritdoc IKosCommittee
    function memberIndex(uint64 epoch, address account) public view returns (uint8) {
        _committee(epoch);
        uint256 i = _indexPlusOne[epoch][account];
        if (i == 0) revert CommitteeNotMember(epoch, account);
        return uint8(i - 1);
    }

    /// @inheritdoc IKosCommittee
    function threshold(uint64 epoch) external view returns (uint8) {
        return _committee(epoch).threshold;
    }

    /// @inheritdoc IKosCommittee
    function shareDigest(ShareEnvelope calldata env) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(SHARE_TYPEHASH, env.requestId, env.datasetId, env.holder, env.member, env.epoch, env.share)
            )
        );
    }

    /// @inheritdoc IKosCommittee
    function shareCommitment(bytes32 datasetId, address holder, uint8 memberIndex_, uint64 epoch, bytes32 share)
        public
        view
        returns (bytes32)
    {
        return keccak256(abi.encode(COMMITMENT_DOMAIN, block.chainid, datasetId, holder, memberIndex_, epoch, share));
    }

    /// @inheritdoc IKosCommittee
    function commitmentLeaf(address holder, uint8 memberIndex_, bytes32 c) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(holder, memberIndex_, c))));
    }

    /// @inheritdoc IKosCommittee
    function proveWrongShare(
        ShareEnvelope calldata env,
        bytes calldata signature,
        bytes32 commitment,
        bytes32[] calldata proof
    ) external {
        if (msg.sender != env.holder) revert ShareCallerNotHolder(msg.sender, env.holder);
        IRetrievalCoordinator.Request memory r = _coordinator.request(env.requestId);
        if (r.datasetId != env.datasetId) revert ShareWrongDataset(env.requestId, env.datasetId, r.datasetId);
        Deal storage d = _dealOf(env.requestId, r);
        bytes32 root = d.root;
        if (env.epoch != d.committeeEpoch) revert ShareWrongEpoch(env.requestId, env.epoch, d.committeeEpoch);
        uint8 index = memberIndex(env.epoch, env.member);
        if (!SignatureChecker.isValidSignatureNow(env.member, shareDigest(env), signature)) {
            revert ShareSignatureInvalid(env.member);
        }
        if (!MerkleProof.verifyCalldata(proof, root, commitmentLeaf(env.holder, index, commitment))) {
            revert ShareProofInvalid(commitment, root);
        }
        if (shareCommitment(env.datasetId, env.holder, index, env.epoch, env.share) == commitment) {
            revert ShareMatchesCommitment(env.member);
        }
        _record(env.requestId, env.member, env.holder, PROVEN);
        emit ShareFaultProven(env.requestId, env.datasetId, env.member, env.holder, env.epoch, root);
    }

    /// @inheritdoc IKosCommittee
    function reportShareFailure(uint256 requestId, bytes32 datasetId, uint64 epoch, address member, uint8 kind)
        external
    {
        if (kind == 0 || kind > uint8(type(ShareFailureKind).max)) revert ShareInvalidFailureKind(kind);
        memberIndex(epoch, member);
        _record(requestId, member, msg.sender, REPORTED);
        emit ShareFailureReported(requestId, datasetId, member, msg.sender, ShareFailureKind(kind));
    }

    /// @inheritdoc IKosCommittee
    function shareFaultProven(uint256 requestId, address member, address holder) external view returns (bool) {
        return _faults[requestId][member][holder] & PROVEN != 0;
    }

    // ----- deals -----

    /// @inheritdoc IKosCommittee
    function registerDeal(
        bytes32 datasetId,
        uint32 fragmentEpoch,
        bytes32[] calldata commitments,
        bytes[] calldata sealedShares
    ) external returns (bytes32 root) {
        address[] memory holders = _pendingHolders(datasetId, fragmentEpoch);
        uint64 epoch = _currentEpoch;
        if (epoch == 0) revert DealNoCommittee();
        Deal storage d = _deals[datasetId][fragmentEpoch];
        if (d.committeeEpoch != 0) revert DealAlreadyRegistered(datasetId, fragmentEpoch);
        uint256 m = _committees[epoch].members.length;
        uint256 total = holders.length * m;
        if (commitments.length != total || sealedShares.length != total) {
            revert DealLengthMismatch(total, commitments.length, sealedShares.length);
        }
        for (uint256 k = 0; k < total; ++k) {
            if (sealedShares[k].length == 0) revert DealEmptyShare(k);
        }
        root = _commitmentsRoot(holders, m, commitments);
        d.committeeEpoch = epoch;
        d.root = root;
        emit DealRegistered(datasetId, fragmentEpoch, epoch, root, commitments, sealedShares);
    }

    /// @inheritdoc IKosCommittee
    function deal(bytes32 datasetId, uint32 fragmentEpoch) external view returns (uint64, bytes32) {
        Deal storage d = _deals[datasetId][fragmentEpoch];
        return (d.committeeEpoch, d.root);
    }

    // ----- releases -----

    /// @inheritdoc IKosCommittee
    function releaseShares(uint256 requestId, bytes[] calldata sealedEnvelopes) external {
        IRetrievalCoordinator.Request memory r = _coordinator.request(requestId);
        if (!_coordinator.isOpen(requestId)) revert ReleaseRequestNotOpen(requestId);
        uint64 epoch = _dealOf(requestId, r).committeeEpoch;
        _act(requestId, epoch, RELEASED);
        address[] memory holders = _datasets.fragmentSet(r.datasetId, r.fragmentEpoch).holders;
        uint256 n = holders.length;
        if (sealedEnvelopes.length != n) revert ReleaseLengthMismatch(requestId, n, sealedEnvelopes.length);
        for (uint256 j = 0; j < n; ++j) {
            if (sealedEnvelopes[j].length == 0) revert ReleaseEmptyEnvelope(requestId, j);
        }
        uint8 released = ++_tallies[requestId].released;
        emit SharesReleased(requestId, r.datasetId, msg.sender, epoch, sealedEnvelopes);
        if (released == _committees[epoch].threshold) _issueMarkers(requestId, holders, epoch);
    }

    /// @dev The marker token to every fragment holder that has no token yet: another KOS_ROLE
    /// account (a single-key KOS run beside the committee) may have posted one first, and the
    /// coordinator refuses a second, which would otherwise revert the threshold release.
    function _issueMarkers(uint256 requestId, address[] memory holders, uint64 epoch) private {
        uint256 n = holders.length;
        bool[] memory has = new bool[](n);
        uint256 count = 0;
        for (uint256 j = 0; j < n; ++j) {
            has[j] = _coordinator.tokenIssued(requestId, holders[j]);
            if (!has[j]) ++count;
        }
        if (count == 0) return;
        address[] memory missing = new address[](count);
        bytes[] memory tokens = new bytes[](count);
        bytes memory marker = abi.encodePacked(MARKER_TAG, epoch);
        uint256 k = 0;
        for (uint256 j = 0; j < n; ++j) {
            if (has[j]) continue;
            missing[k] = holders[j];
            tokens[k++] = marker;
        }
        _coordinator.issueTokens(requestId, missing, tokens);
    }

    /// @inheritdoc IKosCommittee
    function denyRelease(uint256 requestId, uint8 reason) external {
        if (reason == 0 || reason > MAX_REASON) revert ReleaseInvalidReason(reason);
        IRetrievalCoordinator.Request memory r = _coordinator.request(requestId);
        if (r.status != IRetrievalCoordinator.RequestStatus.Pending
                && r.status != IRetrievalCoordinator.RequestStatus.Approved) {
            revert ReleaseRequestClosed(requestId, uint8(r.status));
        }
        uint64 epoch = _dealOf(requestId, r).committeeEpoch;
        _act(requestId, epoch, DENIED);
        uint8 denied = ++_tallies[requestId].denied;
        emit ReleaseDenied(requestId, r.datasetId, msg.sender, reason);
        Committee storage c = _committees[epoch];
        if (denied == c.members.length - c.threshold + 1) _coordinator.denyRequest(requestId, reason);
    }

    /// @inheritdoc IKosCommittee
    function releaseState(uint256 requestId, address member) external view returns (uint8) {
        return _releaseStates[requestId][member];
    }

    /// @inheritdoc IKosCommittee
    function releaseCounts(uint256 requestId) external view returns (uint8 released, uint8 denied) {
        Tally storage tally = _tallies[requestId];
        return (tally.released, tally.denied);
    }

    /// @dev The fragment holders of `fragmentEpoch`, which must be pending, of the caller's dataset.
    function _pendingHolders(bytes32 datasetId, uint32 fragmentEpoch) private view returns (address[] memory) {
        (IDatasetRegistry.DatasetStatus status,,, address owner) = _datasets.requestContext(datasetId);
        if (owner != msg.sender) revert DealNotOwner(datasetId, msg.sender);
        (uint32 current, uint32 latest) = _datasets.fragmentEpochs(datasetId);
        if (fragmentEpoch == 0 || fragmentEpoch > latest) revert DealUnknownFragmentEpoch(datasetId, fragmentEpoch);
        bool pending = fragmentEpoch == 1
            ? status == IDatasetRegistry.DatasetStatus.Pending
            : fragmentEpoch > current && status != IDatasetRegistry.DatasetStatus.Revoked;
        if (!pending) revert DealFragmentEpochNotPending(datasetId, fragmentEpoch);
        return _datasets.fragmentSet(datasetId, fragmentEpoch).holders;
    }

    /// @dev The deal of the request's fragment epoch (reverts if none).
    function _dealOf(uint256 requestId, IRetrievalCoordinator.Request memory r)
        private
        view
        returns (Deal storage d)
    {
        d = _deals[r.datasetId][r.fragmentEpoch];
        if (d.committeeEpoch == 0) revert ReleaseNoDeal(requestId, r.datasetId, r.fragmentEpoch);
    }

    /// @dev The caller, a member of `epoch` that has not acted on `requestId`, does `state`.
    function _act(uint256 requestId, uint64 epoch, uint8 state) private {
        if (_indexPlusOne[epoch][msg.sender] == 0) revert CommitteeNotMember(epoch, msg.sender);
        uint8 done = _releaseStates[requestId][msg.sender];
        if (done != 0) revert ReleaseAlreadyDone(requestId, msg.sender, done);
        _releaseStates[requestId][msg.sender] = state;
    }

    /// @dev Root over leaves commitmentLeaf(holders[j], i, commitments[j * m + i]), in that order:
    /// pairs left to right with commutative keccak, an odd last node promoted (shardkey/crypto/merkle.py).
    function _commitmentsRoot(address[] memory holders, uint256 m, bytes32[] calldata commitments)
        private
        pure
        returns (bytes32)
    {
        uint256 len = commitments.length;
        bytes32[] memory level = new bytes32[](len);
        for (uint256 k = 0; k < len; ++k) {
            level[k] = commitmentLeaf(holders[k / m], uint8(k % m), commitments[k]);
        }
        while (len > 1) {
            uint256 half = len / 2;
            for (uint256 k = 0; k < half; ++k) {
                level[k] = Hashes.commutativeKeccak256(level[2 * k], level[2 * k + 1]);
            }
            if (len % 2 == 1) {
                level[half] = level[len - 1];
                ++half;
            }
            len = half;
        }
        return level[0];
    }

    function _record(uint256 requestId, address member, address holder, uint8 flag) private {
        uint8 flags = _faults[requestId][member][holder];
        if (flags & flag != 0) revert ShareFaultAlreadyRecorded(requestId, member, holder);
        _faults[requestId][member][holder] = flags | flag;
    }

    function _committee(uint64 epoch) private view returns (Committee storage c) {
        c = _committees[epoch];
        if (c.threshold == 0) revert CommitteeUnknownEpoch(epoch);
    }
}

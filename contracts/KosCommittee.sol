// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {IKosCommittee} from "./interfaces/IKosCommittee.sol";

/**
 * @title KosCommittee
 * @notice See {IKosCommittee}. EIP-712 domain ("ShardKey KOS committee", "1"). The admin
 * (DEFAULT_ADMIN_ROLE) starts epochs. Members sign with EOAs or EIP-1271 wallets.
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

    constructor(address admin) EIP712("ShardKey KOS committee", "1") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
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
        bytes32[] calldata proof,
        bytes32 root
    ) external {
        if (msg.sender != env.holder) revert ShareCallerNotHolder(msg.sender, env.holder);
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

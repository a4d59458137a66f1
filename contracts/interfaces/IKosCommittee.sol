// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IKosCommittee
 * @notice The threshold KOS committee of ShardKey: numbered epochs, each a list of members
 * (accounts and HPKE public keys) and a threshold t_k. Owners split each wrap key t_k of m to
 * the members of an epoch, with one commitment per share (docs/DESIGN.md, "Threshold KOS").
 * Members sign every share they release ({shareDigest}, EIP-712); a fragment holder that gets
 * a signed share not matching its commitment proves it here ({proveWrongShare}) and the member
 * is named on chain; a share envelope that does not open or is not signed by its member is a
 * claim ({reportShareFailure}). Epochs are never changed once started.
 */
interface IKosCommittee {
    /// @notice A member's share of fragment holder `holder`'s wrap key, released for `requestId`.
    struct ShareEnvelope {
        uint256 requestId;
        bytes32 datasetId;
        address holder;
        address member;
        uint64 epoch;
        bytes32 share;
    }

    /// @notice What a fragment holder claims about a member's share envelope.
    enum ShareFailureKind {
        None,
        /// @dev The sealed envelope did not open or did not decode.
        Unreadable,
        /// @dev The envelope's signature does not recover the member.
        BadSignature
    }

    /// @notice The admin started committee `epoch`; member `i` has share x-coordinate i + 1.
    event CommitteeEpochStarted(uint64 indexed epoch, address[] members, bytes[] hpkePublicKeys, uint8 threshold);
    /// @notice `holder` proved that `member` signed a share for it that does not match its
    /// commitment under `root` (the dataset's committee root; the caller's until it is wired).
    event ShareFaultProven(
        uint256 indexed requestId,
        bytes32 indexed datasetId,
        address indexed member,
        address holder,
        uint64 epoch,
        bytes32 root
    );
    /// @notice `holder` claims (unproven) that `member`'s envelope for it failed as `kind`.
    event ShareFailureReported(
        uint256 indexed requestId, bytes32 indexed datasetId, address indexed member, address holder, ShareFailureKind kind
    );

    /// @dev The threshold is outside 1..members (members at most 255).
    error CommitteeInvalidThreshold(uint256 threshold, uint256 members);
    /// @dev members[] and hpkePublicKeys[] differ in length.
    error CommitteeLengthMismatch(uint256 members, uint256 keys);
    /// @dev The zero address was given as member `index`.
    error CommitteeZeroMember(uint256 index);
    /// @dev `member` appears twice.
    error CommitteeDuplicateMember(address member);
    /// @dev The HPKE public key of `member` is not 32 (X25519) or 1216 (ML-KEM-768+X25519) bytes.
    error CommitteeInvalidPublicKey(address member, uint256 length);
    /// @dev No committee `epoch` was started.
    error CommitteeUnknownEpoch(uint64 epoch);
    /// @dev `account` is not a member of `epoch`.
    error CommitteeNotMember(uint64 epoch, address account);
    /// @dev Only the envelope's fragment holder may prove or report; `caller` is not `holder`.
    error ShareCallerNotHolder(address caller, address holder);
    /// @dev The signature does not recover the envelope's member (nothing provable).
    error ShareSignatureInvalid(address member);
    /// @dev The commitment's Merkle proof does not lead to the root.
    error ShareProofInvalid(bytes32 commitment, bytes32 root);
    /// @dev The share matches its commitment: the member is not at fault.
    error ShareMatchesCommitment(address member);
    /// @dev `member` was already proven faulty (or reported) for `requestId` by `holder`.
    error ShareFaultAlreadyRecorded(uint256 requestId, address member, address holder);
    /// @dev Unknown {ShareFailureKind}.
    error ShareInvalidFailureKind(uint8 kind);

    /// @notice Admin: start the next epoch (the first is 1) with these members, keys and threshold.
    function startEpoch(address[] calldata members, bytes[] calldata hpkePublicKeys, uint8 threshold)
        external
        returns (uint64 epoch);

    /// @notice The latest epoch (0 before the first).
    function currentEpoch() external view returns (uint64);

    /// @notice The members, HPKE public keys and threshold of `epoch`.
    function committee(uint64 epoch)
        external
        view
        returns (address[] memory members, bytes[] memory hpkePublicKeys, uint8 threshold);

    /// @notice Whether `account` is a member of `epoch`.
    function isMember(uint64 epoch, address account) external view returns (bool);

    /// @notice The index (0-based; share x = index + 1) of `account` in `epoch`; reverts if none.
    function memberIndex(uint64 epoch, address account) external view returns (uint8);

    /// @notice The threshold t_k of `epoch`.
    function threshold(uint64 epoch) external view returns (uint8);

    /// @notice The EIP-712 digest a member signs for `env`.
    function shareDigest(ShareEnvelope calldata env) external view returns (bytes32);

    /// @notice c = keccak256(abi.encode(keccak256("shardkey/kos-share/v1"), chainid, datasetId,
    /// holder, memberIndex, epoch, share)).
    function shareCommitment(bytes32 datasetId, address holder, uint8 memberIndex_, uint64 epoch, bytes32 share)
        external
        view
        returns (bytes32);

    /// @notice Merkle leaf of commitment `c`: keccak256(keccak256(abi.encode(holder, memberIndex, c))).
    function commitmentLeaf(address holder, uint8 memberIndex_, bytes32 c) external pure returns (bytes32);

    /// @notice Fragment holder `env.holder` proves `env.member` signed a share that is not the
    /// one committed under `root`: `commitment` is c[holder][member index] with Merkle `proof`.
    function proveWrongShare(
        ShareEnvelope calldata env,
        bytes calldata signature,
        bytes32 commitment,
        bytes32[] calldata proof,
        bytes32 root
    ) external;

    /// @notice Fragment holder (caller) claims `member`'s envelope for request `requestId` failed.
    function reportShareFailure(uint256 requestId, bytes32 datasetId, uint64 epoch, address member, uint8 kind)
        external;

    /// @notice Whether `member` was proven to have sent `holder` a wrong share for `requestId`.
    function shareFaultProven(uint256 requestId, address member, address holder) external view returns (bool);
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IKosCommittee
 * @notice The threshold KOS committee of ShardKey: numbered epochs, each a list of members
 * (accounts and HPKE public keys) and a threshold t_k. Owners split each wrap key t_k of m to
 * the members of an epoch, with one commitment per share (docs/DESIGN.md, "Threshold KOS").
 *
 * Deal: the dataset's owner registers each fragment epoch's deal here ({registerDeal}) while
 * that fragment set is pending; the contract computes the commitments' Merkle root itself and
 * stores it with the committee epoch current at the call. Release: for an open request, each
 * member of the deal's epoch posts its shares sealed to the fragment holders ({releaseShares})
 * or denies ({denyRelease}), once. The t_k-th release makes this contract (KOS_ROLE on the
 * coordinator) issue every fragment holder a token carrying the committee marker
 * `"SKC1" | uint64 epoch`; more than m - t_k denials deny the request. Members sign every share
 * they release ({shareDigest}, EIP-712); a fragment holder that gets a signed share not matching
 * its commitment proves it here ({proveWrongShare}, against the stored root) and the member is
 * named on chain; a share envelope that does not open or is not signed by its member is a
 * claim ({reportShareFailure}). Epochs and deals are never changed once registered.
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
    /// commitment under `root` (the stored root of the request's deal).
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
    /// @notice The owner's deal of fragment epoch `fragmentEpoch` to committee epoch `committeeEpoch`
    /// (the current one at the call): `commitments[j * m + i]` and `sealedShares[j * m + i]` are
    /// member i's share commitment and sealed share for fragment holder j; `root` is their
    /// Merkle root as this contract computed it.
    event DealRegistered(
        bytes32 indexed datasetId,
        uint32 indexed fragmentEpoch,
        uint64 indexed committeeEpoch,
        bytes32 root,
        bytes32[] commitments,
        bytes[] sealedShares
    );
    /// @notice `member` released its shares for `requestId`: `sealedEnvelopes[j]` is for
    /// fragment holder j of the request's fragment epoch.
    event SharesReleased(
        uint256 indexed requestId,
        bytes32 indexed datasetId,
        address indexed member,
        uint64 committeeEpoch,
        bytes[] sealedEnvelopes
    );
    /// @notice `member` judged the request's policy unmet (`reason`: IRetrievalCoordinator.DenialReason).
    event ReleaseDenied(uint256 indexed requestId, bytes32 indexed datasetId, address indexed member, uint8 reason);

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
    /// @dev The envelope names dataset `datasetId`, its request `requestId` is for `requestDataset`.
    error ShareWrongDataset(uint256 requestId, bytes32 datasetId, bytes32 requestDataset);
    /// @dev The envelope names committee epoch `epoch`; the request's deal is to `dealEpoch`.
    error ShareWrongEpoch(uint256 requestId, uint64 epoch, uint64 dealEpoch);
    /// @dev `account` is not the owner of dataset `datasetId` (or no such dataset).
    error DealNotOwner(bytes32 datasetId, address account);
    /// @dev No committee epoch was started: there is nobody to deal to.
    error DealNoCommittee();
    /// @dev Fragment epoch `fragmentEpoch` of the dataset was never registered.
    error DealUnknownFragmentEpoch(bytes32 datasetId, uint32 fragmentEpoch);
    /// @dev The fragment set is not pending any more (its custody was confirmed, or the dataset revoked).
    error DealFragmentEpochNotPending(bytes32 datasetId, uint32 fragmentEpoch);
    /// @dev This fragment epoch of the dataset was dealt already.
    error DealAlreadyRegistered(bytes32 datasetId, uint32 fragmentEpoch);
    /// @dev commitments[] and sealedShares[] must both hold `expected` = holders x members entries.
    error DealLengthMismatch(uint256 expected, uint256 commitments, uint256 sealedShares);
    /// @dev Sealed share `index` (deal order) is empty.
    error DealEmptyShare(uint256 index);
    /// @dev The request's fragment epoch `fragmentEpoch` of `datasetId` has no deal (a legacy dataset).
    error ReleaseNoDeal(uint256 requestId, bytes32 datasetId, uint32 fragmentEpoch);
    /// @dev The request is not open (approved, before its deadline, dataset not revoked, epoch current).
    error ReleaseRequestNotOpen(uint256 requestId);
    /// @dev A denial needs a Pending or Approved request; it is in `status` (IRetrievalCoordinator.RequestStatus).
    error ReleaseRequestClosed(uint256 requestId, uint8 status);
    /// @dev `member` released (state 1) or denied (state 2) this request already.
    error ReleaseAlreadyDone(uint256 requestId, address member, uint8 state);
    /// @dev One sealed envelope per fragment holder: `holders` expected, `envelopes` given.
    error ReleaseLengthMismatch(uint256 requestId, uint256 holders, uint256 envelopes);
    /// @dev The sealed envelope for fragment holder `index` is empty.
    error ReleaseEmptyEnvelope(uint256 requestId, uint256 index);
    /// @dev Denial reasons are 1..max IRetrievalCoordinator.DenialReason.
    error ReleaseInvalidReason(uint8 reason);

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

    /// @notice Fragment holder `env.holder` (the caller) proves `env.member` signed a share that
    /// is not the one committed in the deal of `env.datasetId`'s fragment epoch of request
    /// `env.requestId`: `commitment` is c[holder][member index] with Merkle `proof` to the deal's
    /// stored root. `env.datasetId` must be the request's dataset and `env.epoch` the deal's
    /// committee epoch.
    function proveWrongShare(
        ShareEnvelope calldata env,
        bytes calldata signature,
        bytes32 commitment,
        bytes32[] calldata proof
    ) external;

    /// @notice Fragment holder (caller) claims `member`'s envelope for request `requestId` failed.
    function reportShareFailure(uint256 requestId, bytes32 datasetId, uint64 epoch, address member, uint8 kind)
        external;

    /// @notice Whether `member` was proven to have sent `holder` a wrong share for `requestId`.
    function shareFaultProven(uint256 requestId, address member, address holder) external view returns (bool);

    /// @notice The owner of `datasetId` deals pending fragment epoch `fragmentEpoch` to the current
    /// committee epoch (> 0), once: `commitments` and `sealedShares` hold holders x members entries
    /// in deal order (holder j, then member i: index j * m + i), every sealed share non-empty.
    /// Computes and stores the root over leaves {commitmentLeaf}(holder_j, i, c) (pairs left to
    /// right with commutative keccak, an odd node promoted: shardkey/crypto/merkle.py).
    function registerDeal(
        bytes32 datasetId,
        uint32 fragmentEpoch,
        bytes32[] calldata commitments,
        bytes[] calldata sealedShares
    ) external returns (bytes32 root);

    /// @notice The deal of a fragment epoch: its committee epoch and root ((0, 0) if none).
    function deal(bytes32 datasetId, uint32 fragmentEpoch) external view returns (uint64 committeeEpoch, bytes32 root);

    /// @notice A member of the deal's committee epoch releases its shares for the open request
    /// `requestId`, once (release or denial): one non-empty sealed envelope per fragment holder of
    /// the request's fragment epoch. The t_k-th release issues every holder its token (the marker).
    function releaseShares(uint256 requestId, bytes[] calldata sealedEnvelopes) external;

    /// @notice A member of the deal's committee epoch denies the Pending or Approved request,
    /// once (release or denial), with `reason` (a DenialReason, 1..max). Once the denials
    /// exceed m - t_k the coordinator denies the request with this `reason`.
    function denyRelease(uint256 requestId, uint8 reason) external;

    /// @notice What `member` did for `requestId`: 0 nothing, 1 released, 2 denied.
    function releaseState(uint256 requestId, address member) external view returns (uint8);

    /// @notice Releases and denials so far for `requestId`.
    function releaseCounts(uint256 requestId) external view returns (uint8 released, uint8 denied);
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IDatasetRegistry} from "./IDatasetRegistry.sol";
import {IHolderRegistry} from "./IHolderRegistry.sol";

/**
 * @title IRetrievalCoordinator
 * @notice Retrieval requests against a dataset's Key Access Policy, approvals, unlock tokens
 * (posted by the KOS), fragment deliveries (posted by holders) and misbehaviour reports.
 *
 * Request lifecycle: requestRetrieval -> Pending (policy met, approvals outstanding),
 * Approved (policy met and no groups, or every group reached its count) or Denied (policy
 * failure, stored with a {DenialReason}; it does not revert). Pending/Approved -> Denied by the
 * KOS ({denyRequest}); Approved -> Completed by the requester. An Approved request is open
 * (tokens can be issued and fragments delivered) while `block.timestamp <= deadline` and the
 * dataset is not revoked. A request is evaluated under the policy version current when it was
 * made; if the owner changes the policy later, the KOS may deny it (reason 17).
 *
 * Misbehaviour: a shard integrity failure is a proof (the placement holder's EIP-712
 * `ShardServed` receipt for this request, a Merkle proof of the committed hash, and the two
 * differ), accepted from the requester of an open request of an Active dataset, once per
 * (dataset, shard, served hash). A fragment failure is a claim by the requester, bounded by
 * what the chain can check: `Wrong` only after the holder delivered, `Missing` only after the
 * request's deadline passed without a delivery, both only for a holder that got a token.
 */
interface IRetrievalCoordinator {
    enum RequestStatus {
        None,
        Pending,
        Denied,
        Approved,
        Completed
    }

    /// @notice Reason codes shared with the KOS (16..18 are only ever set by the KOS).
    enum DenialReason {
        None,
        NotAllowedRequester,
        TooEarly,
        TooLate,
        OutsideDailyWindow,
        OutsideWeekdays,
        MissingAttestation,
        UntrustedAttestor,
        BadAttestationSignature,
        AttestationForOtherRequester,
        StaleAttestation,
        AttestationFromFuture,
        AttestationReplayed,
        OutsideRegions,
        DatasetNotActive,
        DatasetRevoked,
        ApprovalExpired,
        KosPolicyMismatch,
        KosWrapKeyInvalid,
        AttestationTooCoarse
    }

    /// @notice Why a request was made: an ordinary retrieval, or the owner's re-deal of the
    /// shard keys to a new fragment-holder set ({requestRedeal}; the same policy decides).
    enum RequestPurpose {
        Retrieval,
        Redeal
    }

    /// @notice What a requester claims about a fragment holder's delivery ({reportFragmentFailure}).
    /// `Wrong`: the delivered fragments did not verify against their commitments. `Missing`:
    /// the request's deadline passed and the holder delivered nothing. `None` is never valid.
    enum FragmentFailureKind {
        None,
        Wrong,
        Missing
    }

    /// @notice EIP-712 `LocationAttestation(address requester,int32 latE6,int32 lonE6,
    /// uint32 accuracyM,uint64 issuedAt,bytes32 nonce)`, signed by an attestor.
    struct LocationAttestation {
        address requester;
        int32 latE6;
        int32 lonE6;
        uint32 accuracyM;
        uint64 issuedAt;
        bytes32 nonce;
    }

    /// @notice What an approval approves: the request id and the request's own fields, so an
    /// approval cannot count for another request that got the same id (e.g. across a reorg).
    /// `ephemeralKeyHash` is keccak256 of the request's ephemeral HPKE public key.
    struct ApprovalSubject {
        uint256 requestId;
        bytes32 datasetId;
        address requester;
        bytes32 ephemeralKeyHash;
    }

    /// @notice A request as returned by {request}. `ephemeralKeyHash` is keccak256 of the
    /// requester's ephemeral HPKE public key; the key itself is only in the request's
    /// {RetrievalRequested} event (readers check it against this hash). `fragmentEpoch` is the
    /// dataset's fragment epoch current when the request was made: tokens and deliveries are
    /// refused once another epoch is current. Fields are ordered to pack into four slots.
    struct Request {
        bytes32 datasetId;
        address requester;
        uint32 policyVersion;
        RequestStatus status;
        DenialReason denialReason;
        RequestPurpose purpose;
        uint64 requestedAt;
        uint64 approvedAt;
        uint64 deadline;
        uint16 tokensIssued;
        uint16 deliveries;
        uint32 fragmentEpoch;
        bytes32 ephemeralKeyHash;
    }

    /// @notice A request was made (whatever its outcome); carries the attestation and its
    /// signature as given, so the KOS, holders and auditors can re-verify it from the log alone.
    event RetrievalRequested(
        uint256 indexed requestId,
        bytes32 indexed datasetId,
        address indexed requester,
        uint32 policyVersion,
        bytes ephemeralKey,
        address attestor,
        LocationAttestation attestation,
        bytes attestationSig
    );
    /// @notice Request `requestId` (its {RetrievalRequested} precedes this) is the owner's
    /// retrieval of the keys to re-deal them to a new fragment-holder set.
    event RedealRequested(uint256 indexed requestId, bytes32 indexed datasetId, address indexed owner);
    /// @notice The request was denied; `by` is address(0) for the coordinator's own policy
    /// check, the KOS account for {denyRequest}.
    event RetrievalDenied(uint256 indexed requestId, bytes32 indexed datasetId, DenialReason reason, address by);
    /// @notice `approver` approved (`bySignature`: through {approveBySig} with `nonce`).
    event ApprovalRecorded(uint256 indexed requestId, address indexed approver, bool bySignature, uint256 nonce);
    /// @notice The request is approved and open until `deadline`.
    event RetrievalApproved(uint256 indexed requestId, bytes32 indexed datasetId, uint64 approvedAt, uint64 deadline);
    /// @notice The KOS posted `holder`'s unlock token (the wrap key HPKE-sealed to the holder).
    event TokenIssued(uint256 indexed requestId, address indexed holder, bytes token);
    /// @notice `holder` delivered its fragments HPKE-sealed to the request's ephemeral key.
    event FragmentsDelivered(uint256 indexed requestId, address indexed holder, bytes sealedFragments);
    /// @notice The requester marked the request complete.
    event RetrievalCompleted(uint256 indexed requestId, bytes32 indexed datasetId, address indexed requester);
    /// @notice `holder` provably served `servedHash` under request `requestId` for a shard whose
    /// committed hash is `expectedHash` (its signed `ShardServed` receipt and a Merkle proof).
    event ShardIntegrityFailureProven(
        bytes32 indexed datasetId,
        uint256 indexed requestId,
        address indexed holder,
        uint32 shardIndex,
        bytes32 servedHash,
        bytes32 expectedHash
    );
    /// @notice The requester claims a `kind` fragment failure of `holder`, which had a token for the
    /// request (a claim, not a proof: the chain cannot open the sealed fragments).
    event FragmentFailureReported(
        uint256 indexed requestId, bytes32 indexed datasetId, address indexed holder, FragmentFailureKind kind
    );

    /// @dev No dataset with this id.
    error RetrievalUnknownDataset(bytes32 datasetId);
    /// @dev The ephemeral HPKE public key is empty.
    error RetrievalEmptyEphemeralKey();
    /// @dev No request with this id.
    error RetrievalUnknownRequest(uint256 requestId);
    /// @dev The request is in `status`, the operation needs another.
    error RetrievalInvalidStatus(uint256 requestId, RequestStatus status);
    /// @dev The requester tried to approve its own request.
    error RetrievalSelfApproval(uint256 requestId, address approver);
    /// @dev `approver` is in no approval group of the request's policy.
    error RetrievalNotApprover(uint256 requestId, address approver);
    /// @dev `approver` approved this request already.
    error RetrievalAlreadyApproved(uint256 requestId, address approver);
    /// @dev The approval names fields other than the stored request's (given here): it was made
    /// for another request, e.g. one that held this id before a reorg.
    error RetrievalApprovalMismatch(
        uint256 requestId, bytes32 datasetId, address requester, bytes32 ephemeralKeyHash
    );
    /// @dev The (approver, nonce) pair was used already.
    error RetrievalNonceUsed(address approver, uint256 nonce);
    /// @dev The signed approval's deadline passed.
    error RetrievalSignatureExpired(uint256 deadline);
    /// @dev The signature does not verify for `signer`.
    error RetrievalInvalidSignature(address signer);
    /// @dev The approval window of the request ended at `deadline`.
    error RetrievalApprovalExpired(uint256 requestId, uint64 deadline);
    /// @dev The request's dataset was revoked.
    error RetrievalDatasetRevoked(uint256 requestId, bytes32 datasetId);
    /// @dev Holder and token arrays differ in length or are empty.
    error RetrievalInvalidBatch(uint256 holders, uint256 tokens);
    /// @dev `holder` is not a fragment holder of the request's dataset.
    error RetrievalNotFragmentHolder(uint256 requestId, address holder);
    /// @dev A token was already issued to `holder` for this request.
    error RetrievalTokenAlreadyIssued(uint256 requestId, address holder);
    /// @dev An empty token or delivery was given for `holder`.
    error RetrievalEmptyPayload(uint256 requestId, address holder);
    /// @dev Reason codes 1..19 only.
    error RetrievalInvalidDenialReason(uint8 reason);
    /// @dev `holder` has no token for this request.
    error RetrievalNoToken(uint256 requestId, address holder);
    /// @dev `holder` delivered already.
    error RetrievalAlreadyDelivered(uint256 requestId, address holder);
    /// @dev `account` is not the request's requester.
    error RetrievalNotRequester(uint256 requestId, address account);
    /// @dev `shardIndex >= shardCount`.
    error RetrievalShardIndexOutOfRange(uint256 requestId, uint32 shardIndex, uint32 shardCount);
    /// @dev The served hash equals the expected one: no failure to prove.
    error RetrievalShardHashMatches(uint32 shardIndex, bytes32 hash);
    /// @dev The Merkle proof does not show `expectedHash` at `shardIndex`.
    error RetrievalInvalidShardProof(uint32 shardIndex, bytes32 expectedHash);
    /// @dev `holder`'s receipt signature for the shard does not verify.
    error RetrievalInvalidReceiptSignature(address holder, uint32 shardIndex);
    /// @dev A failure of this shard serving `servedHash` was proven already (under any request).
    error RetrievalShardFailureAlreadyProven(bytes32 datasetId, uint32 shardIndex, bytes32 servedHash);
    /// @dev The request's dataset is not Active (a shard failure is provable only for an Active dataset).
    error RetrievalDatasetNotActive(uint256 requestId, bytes32 datasetId);
    /// @dev `kind` is not a {FragmentFailureKind} other than None.
    error RetrievalInvalidFragmentFailureKind(uint8 kind);
    /// @dev A `Wrong` fragment claim needs a delivery by `holder`, and it has none.
    error RetrievalNotDelivered(uint256 requestId, address holder);
    /// @dev A `Missing` fragment claim needs the request's `deadline` to have passed.
    error RetrievalDeliveryWindowOpen(uint256 requestId, uint64 deadline);
    /// @dev A fragment failure of `holder` was reported already for this request.
    error RetrievalFragmentFailureAlreadyReported(uint256 requestId, address holder);
    /// @dev The request was made under fragment epoch `requestEpoch`; `currentEpoch` is current
    /// now, so its tokens and deliveries (old bundles) are refused.
    error RetrievalStaleFragmentEpoch(uint256 requestId, uint32 requestEpoch, uint32 currentEpoch);
    /// @dev Only the dataset's owner may request a re-deal.
    error RetrievalNotDatasetOwner(bytes32 datasetId, address account);

    /// @notice Opens a request. Malformed input reverts; a policy failure is stored as Denied.
    /// The attestation digest is marked used only when the request is not denied: a replay is
    /// then visible as {DenialReason.AttestationReplayed} in a later request.
    function requestRetrieval(
        bytes32 datasetId,
        bytes calldata ephemeralKey,
        LocationAttestation calldata attestation,
        address attestor,
        bytes calldata attestationSig
    ) external returns (uint256 requestId);

    /// @notice The dataset owner's retrieval of the keys for a re-deal: the same inputs, checks
    /// and policy decision as {requestRetrieval}, recorded with purpose Redeal; also emits
    /// {RedealRequested}. Reverts {RetrievalNotDatasetOwner} for anyone else.
    function requestRedeal(
        bytes32 datasetId,
        bytes calldata ephemeralKey,
        LocationAttestation calldata attestation,
        address attestor,
        bytes calldata attestationSig
    ) external returns (uint256 requestId);

    /// @notice The caller approves the Pending request `subject.requestId`; counts in every group
    /// listing it. Reverts with {RetrievalApprovalMismatch} unless dataset, requester and
    /// ephemeral key hash are the stored request's.
    function approve(ApprovalSubject calldata subject) external;

    /// @notice Records an EIP-712 `Approval(uint256 requestId,bytes32 datasetId,address requester,
    /// bytes32 ephemeralKeyHash,address approver,uint256 nonce,uint256 deadline)` signed by
    /// `approver` (EOA or EIP-1271 wallet); anyone may relay it. The subject must match the
    /// stored request as for {approve}.
    function approveBySig(
        ApprovalSubject calldata subject,
        address approver,
        uint256 nonce,
        uint256 deadline,
        bytes calldata sig
    ) external;

    /// @notice KOS: posts unlock tokens, one per (request, holder), for an open request.
    function issueTokens(uint256 requestId, address[] calldata holders, bytes[] calldata tokens) external;

    /// @notice KOS: denies a Pending or Approved request with `reason` (1..19).
    function denyRequest(uint256 requestId, uint8 reason) external;

    /// @notice A fragment holder with a token posts its fragments sealed to the requester, once, while open.
    function deliverFragments(uint256 requestId, bytes calldata sealedFragments) external;

    /// @notice The requester marks an Approved request complete.
    function completeRetrieval(uint256 requestId) external;

    /// @notice The requester of an open request of an Active dataset proves that the placement
    /// holder of `shardIndex` signed `ShardServed(requestId, datasetId, shardIndex, servedHash)`
    /// while the Merkle root commits to `expectedHash`; once per (dataset, shard, servedHash).
    function reportShardFailure(
        uint256 requestId,
        uint32 shardIndex,
        bytes32 servedHash,
        bytes calldata holderSig,
        bytes32 expectedHash,
        bytes32[] calldata proof
    ) external;

    /// @notice The requester of an Approved or Completed request claims a fragment failure of
    /// `holder`, which must have a token: `kind` 1 (Wrong) needs its delivery, 2 (Missing) needs
    /// the deadline passed without one. Once per (request, holder).
    function reportFragmentFailure(uint256 requestId, address holder, uint8 kind) external;

    /// @notice Previews the policy decision for `requester` now; reverts for an unknown dataset.
    function checkPolicy(
        bytes32 datasetId,
        address requester,
        LocationAttestation calldata attestation,
        address attestor,
        bytes calldata attestationSig
    ) external view returns (DenialReason);

    /// @notice The request; reverts with {RetrievalUnknownRequest} if none.
    function request(uint256 requestId) external view returns (Request memory);

    /// @notice Number of requests made so far (ids are 1..requestCount).
    function requestCount() external view returns (uint256);

    /// @notice Approved, `block.timestamp <= deadline`, dataset not revoked and the request's
    /// fragment epoch still current.
    function isOpen(uint256 requestId) external view returns (bool);

    /// @notice Whether the KOS posted `holder`'s token for the request.
    function tokenIssued(uint256 requestId, address holder) external view returns (bool);
    /// @notice Whether `holder` delivered its fragments for the request.
    function delivered(uint256 requestId, address holder) external view returns (bool);
    /// @notice Whether `approver` approved the request.
    function hasApproved(uint256 requestId, address approver) external view returns (bool);
    /// @notice Approvals so far per group of the request's policy version.
    function approvalCounts(uint256 requestId) external view returns (uint8[] memory);
    /// @notice Whether `approver`'s signed-approval `nonce` was used.
    function nonceUsed(address approver, uint256 nonce) external view returns (bool);
    /// @notice Whether a request consumed the attestation with this EIP-712 digest.
    function attestationUsed(bytes32 digest) external view returns (bool);
    /// @notice Whether `holder`, as the shard's holder, was proven to serve a wrong copy of it.
    function shardFailureProvenAgainst(bytes32 datasetId, uint32 shardIndex, address holder)
        external
        view
        returns (bool);
    /// @notice Whether a failure of shard `shardIndex` serving `servedHash` was proven.
    function shardFailureProven(bytes32 datasetId, uint32 shardIndex, bytes32 servedHash)
        external
        view
        returns (bool);
    /// @notice The registries this coordinator reads.
    function registries() external view returns (IDatasetRegistry datasetRegistry, IHolderRegistry holderRegistry);
    /// @notice The EIP-712 domain separator ("ShardKey", "1", chain id, this contract).
    function domainSeparator() external view returns (bytes32);
    /// @notice EIP-712 digests of the signed types (for off-chain cross-checks). `ShardReceipt`
    /// is the custody receipt of the holder's public `/receipts` (never accepted on chain);
    /// `ShardServed` binds a served shard to its request and is what {reportShardFailure} takes.
    function hashApproval(ApprovalSubject calldata subject, address approver, uint256 nonce, uint256 deadline)
        external
        view
        returns (bytes32);
    /// @notice The fields an approval of `requestId` must name (reverts for an unknown id).
    function approvalSubject(uint256 requestId) external view returns (ApprovalSubject memory);
    function hashAttestation(LocationAttestation calldata attestation) external view returns (bytes32);
    function hashShardReceipt(bytes32 datasetId, uint32 shardIndex, bytes32 ciphertextHash)
        external
        view
        returns (bytes32);
    function hashShardServed(uint256 requestId, bytes32 datasetId, uint32 shardIndex, bytes32 ciphertextHash)
        external
        view
        returns (bytes32);
}

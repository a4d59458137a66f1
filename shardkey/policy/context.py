"""The inputs and outcome of a Key Access Policy decision (pure, no I/O).

:class:`DenialReason` (codes shared with the contracts and the KOS), :class:`DatasetStatus`
(the only dataset-status enum of the code base), the submitted :class:`Attestation` with
the chain layer's verdict on it, and the :class:`RequestContext` a check is judged in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from shardkey.policy.errors import PolicyValueError
from shardkey.policy.model import normalize_address

_DESCRIPTIONS: dict[int, str] = {
    0: "allowed",
    1: "the requester is not allowed by the policy",
    2: "the policy is not valid yet (before not_before)",
    3: "the policy has expired (after not_after)",
    4: "outside the daily time window (UTC)",
    5: "not on an allowed weekday (UTC)",
    6: "the policy requires a location attestation and none was given",
    7: "the location attestor is not trusted by the policy",
    8: "the location attestation signature is invalid",
    9: "the location attestation was issued for another requester",
    10: "the location attestation is too old",
    11: "the location attestation is dated in the future",
    12: "the location attestation was already used",
    13: "the attested location is outside every allowed region",
    14: "the dataset is not active",
    15: "the dataset has been revoked",
    16: "the approval window has expired",
    17: "the policy is not met at release (approvals missing, or a newer version refuses it)",
    18: "the KOS could not unseal the dataset's wrap key",
    19: "the location attestation is less accurate than the policy allows",
}


class DenialReason(IntEnum):
    """Why a request was denied; codes shared with the contracts and the KOS (``uint8``)."""

    NONE = 0
    NOT_ALLOWED_REQUESTER = 1
    TOO_EARLY = 2
    TOO_LATE = 3
    OUTSIDE_DAILY_WINDOW = 4
    OUTSIDE_WEEKDAYS = 5
    MISSING_ATTESTATION = 6
    UNTRUSTED_ATTESTOR = 7
    BAD_ATTESTATION_SIGNATURE = 8
    ATTESTATION_FOR_OTHER_REQUESTER = 9
    STALE_ATTESTATION = 10
    ATTESTATION_FROM_FUTURE = 11
    ATTESTATION_REPLAYED = 12
    OUTSIDE_REGIONS = 13
    DATASET_NOT_ACTIVE = 14
    DATASET_REVOKED = 15
    APPROVAL_EXPIRED = 16
    KOS_POLICY_MISMATCH = 17
    KOS_WRAP_KEY_INVALID = 18
    ATTESTATION_TOO_COARSE = 19

    @property
    def description(self) -> str:
        """A sentence for CLI messages and the audit log."""
        return _DESCRIPTIONS[self.value]

    @property
    def label(self) -> str:
        """The contract's enum name (``OutsideRegions``), as shown to users and auditors."""
        return "".join(word.capitalize() for word in self.name.split("_"))

    @classmethod
    def text(cls, code: int) -> str:
        """``Label: description`` of a reason code read from the chain (an unknown one is named)."""
        try:
            reason = cls(code)
        except ValueError:
            return f"unknown reason {code}"
        return f"{reason.label}: {reason.description}"


class DatasetStatus(IntEnum):
    """Dataset lifecycle status, as in ``DatasetRegistry`` (the one enum of the code base;
    ``shardkey.chain.model.DatasetStatus`` is this class)."""

    NONE = 0
    PENDING = 1
    ACTIVE = 2
    REVOKED = 3


def _check_int(path: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PolicyValueError(path, f"must be an integer between {low} and {high}")


@dataclass(frozen=True)
class Attestation:
    """A location attestation as submitted, plus the chain layer's verdicts on it.

    ``attestor`` is the account the request claims signed it; ``signature_valid`` says
    whether that signature verified (EIP-712 + EIP-1271); ``replayed`` whether its
    digest was already used.
    """

    requester: str
    lat_e6: int
    lon_e6: int
    accuracy_m: int
    issued_at: int
    nonce: bytes
    attestor: str
    signature_valid: bool
    replayed: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "requester", normalize_address(self.requester, "requester"))
        object.__setattr__(self, "attestor", normalize_address(self.attestor, "attestor"))
        _check_int("lat_e6", self.lat_e6, -(1 << 31), (1 << 31) - 1)
        _check_int("lon_e6", self.lon_e6, -(1 << 31), (1 << 31) - 1)
        _check_int("accuracy_m", self.accuracy_m, 0, (1 << 32) - 1)
        _check_int("issued_at", self.issued_at, 0, (1 << 64) - 1)
        if not isinstance(self.nonce, bytes) or len(self.nonce) != 32:
            raise PolicyValueError("nonce", "must be 32 bytes")


@dataclass(frozen=True)
class RequestContext:
    """Everything a policy decision depends on besides the policy itself.

    ``now`` is the latest block's timestamp; ``dataset_status`` the dataset's status;
    ``approvers`` the accounts that approved the request (only the approvals check reads it).
    """

    requester: str
    now: int
    dataset_status: DatasetStatus
    attestation: Attestation | None = None
    approvers: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "requester", normalize_address(self.requester, "requester"))
        _check_int("now", self.now, 0, (1 << 64) - 1)
        object.__setattr__(self, "dataset_status", DatasetStatus(self.dataset_status))
        object.__setattr__(self, "approvers",
                           frozenset(normalize_address(a, "approver") for a in self.approvers))

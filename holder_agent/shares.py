"""Committee shares at a fragment holder, pure part: judge one member's release, keep the
verified shares of one request, combine them into the wrap key.

docs/DESIGN.md "Threshold KOS (committee)". Every input comes from the chain (the request, the
fragment set of its epoch, the committee epoch, the owner's deal); nothing here reads it, signs
or sends: :mod:`holder_agent.committee` does, and acts on the verdicts (a wrong share is proven
on chain with :meth:`ShareContext.proof`, an unreadable envelope or a bad signature is reported
as a claim). Opening an envelope is a callable passed in (the holder's HPKE key), so the tests
need no chain.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from shardkey.crypto.committee import (
    Recover,
    ShareSlot,
    VerifiedShare,
    combine_shares,
    commitment_proof,
    commitment_rows,
    verify_share,
)
from shardkey.crypto.committee_envelope import UNSEALABLE_ENVELOPE, ShareEnvelope
from shardkey.crypto.errors import (
    CommitteeInputError,
    CryptoError,
    ShareCommitmentMismatch,
    ShareEnvelopeError,
    ShareSignatureError,
)

Opener = Callable[[bytes, bytes], bytes]
"""``open(sealed, info)``: the plaintext of an HPKE blob sealed to this holder (raises CryptoError)."""
ReleaseInfo = Callable[[str], bytes]
"""``info(member)``: the HPKE info a member sealed its envelope for this holder under."""


class Verdict(enum.Enum):
    """What a fragment holder concluded about one member's release to it."""

    VERIFIED = "verified"
    UNREADABLE = "unreadable"  # the sealed envelope did not open or decode, or is for another slot
    BAD_SIGNATURE = "bad_signature"  # the signature does not recover the member
    WRONG_SHARE = "wrong_share"  # signed by the member, not its committed share: provable
    NOT_MEMBER = "not_member"  # the sender is no member of the deal's committee epoch
    UNSEALED = "unsealed"  # the member could not seal to this holder's registered key: nothing to claim


@dataclass(frozen=True)
class ShareContext:
    """Everything one fragment holder needs to judge the releases of one request (all from chain).

    ``holders`` is the fragment set of the request's epoch (deal order), ``position`` this
    holder's index in it; ``members``/``threshold`` the committee epoch of the deal;
    ``commitments`` the deal's flat list (holder ``j`` then member ``i``).
    """

    chain_id: int
    committee: str
    request_id: int
    dataset_id: bytes
    holders: tuple[str, ...]
    position: int
    epoch: int
    members: tuple[str, ...]
    threshold: int
    commitments: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.position < len(self.holders):
            raise CommitteeInputError(f"holder position {self.position} is not in the fragment set "
                                      f"of {len(self.holders)}")
        commitment_rows(self.commitments, len(self.holders), len(self.members))  # a wrong deal raises

    @property
    def holder(self) -> str:
        """This fragment holder."""
        return self.holders[self.position]

    def member_index(self, member: str) -> int | None:
        """The index of ``member`` in the committee epoch (None if it is not a member)."""
        wanted = member.lower()
        for i, m in enumerate(self.members):
            if m.lower() == wanted:
                return i
        return None

    def commitment(self, member_index: int) -> bytes:
        """``c[position][member_index]``; the list must have exactly ``n * m`` entries."""
        rows = commitment_rows(self.commitments, len(self.holders), len(self.members))
        return rows[self.position][member_index]

    def proof(self, member_index: int) -> list[bytes]:
        """The Merkle proof of :meth:`commitment` under the deal's root (for ``proveWrongShare``)."""
        rows = commitment_rows(self.commitments, len(self.holders), len(self.members))
        return commitment_proof(self.holders, rows, self.position, member_index)

    def slot(self, member: str, member_index: int) -> ShareSlot:
        """What this holder expects from ``member`` for this request."""
        return ShareSlot(chain_id=self.chain_id, committee=self.committee, request_id=self.request_id,
                         dataset_id=self.dataset_id, holder=self.holder, member=member,
                         member_index=member_index, epoch=self.epoch)


@dataclass(frozen=True)
class Judgement:
    """One member's release judged: the share when verified, the envelope when provably wrong."""

    member: str
    verdict: Verdict
    member_index: int | None = None
    share: VerifiedShare | None = None
    envelope: ShareEnvelope | None = None  # WRONG_SHARE: the signed evidence
    detail: str = ""

    def __repr__(self) -> str:  # never the share
        return (f"Judgement(member={self.member}, verdict={self.verdict.value}, index={self.member_index}, "
                f"detail={self.detail!r})")


def judge(ctx: ShareContext, member: str, sealed_envelopes: Sequence[bytes], open_sealed: Opener,
          info: ReleaseInfo, recover: Recover) -> Judgement:
    """Open this holder's envelope of ``member``'s release and check it (never raises on bad input)."""
    index = ctx.member_index(member)
    if index is None:
        return Judgement(member, Verdict.NOT_MEMBER, detail=f"not a member of committee epoch {ctx.epoch}")
    if ctx.position >= len(sealed_envelopes):
        return Judgement(member, Verdict.UNREADABLE, index,
                         detail=f"release has {len(sealed_envelopes)} envelopes, none for position "
                                f"{ctx.position}")
    if sealed_envelopes[ctx.position] == UNSEALABLE_ENVELOPE:
        return Judgement(member, Verdict.UNSEALED, index,
                         detail="the member could not seal to this holder's registered HPKE key: "
                                "re-register a good one ('shardkey holder status' shows hpke_key_matches)")
    try:
        plaintext = open_sealed(sealed_envelopes[ctx.position], info(member))
    except CryptoError as exc:
        return Judgement(member, Verdict.UNREADABLE, index, detail=f"envelope does not open: {exc}")
    try:
        share = verify_share(plaintext, ctx.slot(member, index), ctx.commitment(index), recover)
    except ShareCommitmentMismatch as exc:
        evidence = exc.envelope if isinstance(exc.envelope, ShareEnvelope) else None
        return Judgement(member, Verdict.WRONG_SHARE, index, envelope=evidence, detail=str(exc))
    except ShareSignatureError as exc:
        return Judgement(member, Verdict.BAD_SIGNATURE, index, detail=str(exc))
    except ShareEnvelopeError as exc:
        return Judgement(member, Verdict.UNREADABLE, index, detail=str(exc))
    return Judgement(member, Verdict.VERIFIED, index, share=share)


@dataclass
class ShareCollection:
    """The judged releases of one request at one holder (verified shares kept in memory only)."""

    threshold: int
    judged: dict[str, Judgement] = field(default_factory=dict)  # by member (lowercase)

    def seen(self, member: str) -> bool:
        """Whether ``member``'s release was judged already (each member releases once)."""
        return member.lower() in self.judged

    def add(self, judgement: Judgement) -> None:
        """Record a judgement (the first one per member counts)."""
        self.judged.setdefault(judgement.member.lower(), judgement)

    @property
    def verified(self) -> list[VerifiedShare]:
        """The verified shares, by member index."""
        shares = [j.share for j in self.judged.values() if j.share is not None]
        return sorted(shares, key=lambda s: s.member_index)

    @property
    def rejected(self) -> list[str]:
        """Members whose release did not verify."""
        return [j.member for j in self.judged.values() if j.verdict is not Verdict.VERIFIED]

    def ready(self) -> bool:
        """Whether ``threshold`` verified shares are in."""
        return len(self.verified) >= self.threshold

    def wrap_key(self) -> bytearray:
        """The wrap key from ``threshold`` verified shares (the caller wipes it);
        :class:`~shardkey.crypto.errors.CommitteeThresholdError` names the bad members when short."""
        return bytearray(combine_shares(self.verified, self.threshold, self.rejected))

    def wipe(self) -> None:
        """Forget every share (they are secret; the envelopes stay on chain)."""
        self.judged.clear()


__all__ = ["Judgement", "Opener", "ReleaseInfo", "ShareCollection", "ShareContext", "Verdict", "judge"]

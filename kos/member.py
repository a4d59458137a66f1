"""A KOS committee member's release: open its shares of a request's wrap keys and post them.

For a committee dataset (docs/DESIGN.md "Threshold KOS (committee)"), once the policy checks
of :class:`kos.orchestrator.Orchestrator` pass, member ``i`` of the deal's committee epoch, for
every fragment holder ``j`` of the request's fragment epoch:

1. opens its sealed share ``(j, i)`` of the owner's deal (``DealRegistered``) with its HPKE key
   under ``committee_share_info`` and checks it against the commitment ``c[j][i]``; a share
   that does not open or does not match is :class:`ShareInvalid` (the orchestrator denies
   ``KosWrapKeyInvalid``, 18);
2. makes the share envelope (request, dataset, holder ``j``, itself, epoch, share), signs its
   EIP-712 digest with its account, and seals the encoded envelope to holder ``j``'s registered
   HPKE key under ``committee_release_info``.

All ``n`` envelopes go in one ``releaseShares``. Share buffers are bytearrays zeroed after use
(an envelope's immutable copy is dropped at once). The test-only fault hook
:func:`shardkey.faults.corrupt_shares_for` flips one bit of the share signed for the listed
holders (so a holder can prove the member wrong); unset, it costs one lookup.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

from eth_account.signers.local import LocalAccount

from kos.checks import KeyCapability, wipe
from kos.errors import KosError
from shardkey.chain.committee import CommitteeEpoch, DealRecord, KosCommittee, sign_envelope
from shardkey.chain.model import FragmentDeal, RequestInfo
from shardkey.crypto.committee import share_commitment
from shardkey.crypto.committee_envelope import (
    UNSEALABLE_ENVELOPE,
    ShareEnvelope,
    address_bytes,
    dealt_committee_epoch,
    encode_envelope,
)
from shardkey.crypto.errors import HpkeKeyError
from shardkey.crypto.hpke import committee_release_info, committee_share_info, seal
from shardkey.faults import corrupt_shares_for

log = logging.getLogger(__name__)

DEAL_CACHE = 256


class ShareInvalid(KosError):
    """This member's share of a wrap key does not open, or does not match its commitment.

    Carries the dataset and the fragment holder position, never key material.
    """

    def __init__(self, dataset_id: bytes, position: int, why: str) -> None:
        super().__init__(f"committee share #{position} of dataset 0x{dataset_id.hex()} {why}")
        self.dataset_id = dataset_id
        self.position = position


class ShareOpener(KeyCapability):
    """A member's own HPKE key: opens its shares of the owners' deals."""

    def open(self, dataset_id: bytes, position: int, holder: str, member: str, epoch: int,
             sealed: bytes) -> bytearray:
        """Open share ``(position, member)``; a bytearray the caller must zero after use."""
        info = committee_share_info(self._chain_id, dataset_id, holder, member, epoch)
        return self._open32(sealed, info, lambda why: ShareInvalid(
            dataset_id, position, f"{why} with this member's key" if why == "does not open" else why))


class CommitteeMember:
    """One member account: which requests are its to act on, and its sealed envelopes."""

    def __init__(self, committee: KosCommittee, account: LocalAccount, opener: ShareOpener,
                 chain_id: int, start_block: int) -> None:
        self.committee = committee
        self.account = account
        self.opener = opener
        self.chain_id = chain_id
        self.start_block = start_block
        self._lock = threading.Lock()
        self._epochs: dict[int, CommitteeEpoch] = {}
        self._deals: OrderedDict[tuple[bytes, int], DealRecord] = OrderedDict()

    @property
    def address(self) -> str:
        """The member's account."""
        return str(self.account.address)

    def epoch(self, epoch: int) -> CommitteeEpoch:
        """Members, keys and threshold of a committee epoch (immutable, cached)."""
        with self._lock:
            known = self._epochs.get(epoch)
        if known is None:
            known = self.committee.committee(epoch)
            with self._lock:
                self._epochs[epoch] = known
        return known

    def index_in(self, epoch: int) -> int | None:
        """This member's index in ``epoch``, or None when it is not a member of it."""
        record = self.epoch(epoch)
        return record.members.index(self.address) if self.address in record.members else None

    def key_problem(self, epoch: int) -> str | None:
        """None when this member's HPKE key is its registered key in ``epoch``, else what is wrong."""
        index = self.index_in(epoch)
        if index is None:
            return f"account {self.address} is not a member of committee epoch {epoch}"
        if self.epoch(epoch).hpke_public_keys[index] != self.opener.public_key_bytes():
            return (f"the HPKE keystore's public key is not member {self.address}'s key in committee "
                    f"epoch {epoch}")
        return None

    def acted(self, request_id: int, block: int | str = "latest") -> bool:
        """Whether this member's release or denial of ``request_id`` is on chain at ``block``."""
        return self.acted_on([request_id], block)[0]

    def acted_on(self, request_ids: Sequence[int], block: int | str = "latest") -> list[bool]:
        """:meth:`acted` for several requests, read at one block in one round trip."""
        return [state != 0 for state in self.committee.release_states(request_ids, self.address, block)]

    def deal(self, dataset_id: bytes, fragment_epoch: int) -> DealRecord | None:
        """The owner's deal of one fragment epoch (None if none was registered); cached."""
        key = (dataset_id, fragment_epoch)
        with self._lock:
            if key in self._deals:
                self._deals.move_to_end(key)
                return self._deals[key]
        if self.committee.deal(dataset_id, fragment_epoch)[0] == 0:
            return None
        record = self.committee.deal_record(dataset_id, fragment_epoch, self.start_block)
        with self._lock:
            self._deals[key] = record
            while len(self._deals) > DEAL_CACHE:
                self._deals.popitem(last=False)
        return record

    def envelopes(self, req: RequestInfo, fragments: FragmentDeal, deal: DealRecord,
                  holder_key: Callable[[str], bytes]) -> list[bytes]:
        """One sealed, signed share envelope per fragment holder, in holder order.

        Raises :class:`ShareInvalid` (deny 18). A holder whose registered HPKE key cannot be
        sealed to gets :data:`UNSEALABLE_ENVELOPE` (logged), so the others are still served.
        """
        marked = dealt_committee_epoch(fragments.sealed_wrap_keys)
        if deal.committee_epoch != marked:
            raise ShareInvalid(req.dataset_id, 0, f"deal is to committee epoch {deal.committee_epoch}, the "
                                                  f"dataset's marker names {marked}")
        epoch = self.epoch(deal.committee_epoch)
        index = self.index_in(epoch.epoch)
        if index is None:
            raise ShareInvalid(req.dataset_id, 0, f"deal is to committee epoch {epoch.epoch}, which "
                                                  f"{self.address} is not a member of")
        m, holders = len(epoch.members), fragments.holders
        if len(deal.commitments) != m * len(holders) or len(deal.sealed_shares) != m * len(holders):
            raise ShareInvalid(req.dataset_id, 0, f"deal lists {len(deal.commitments)} commitments, "
                                                  f"{m} x {len(holders)} expected")
        corrupt = corrupt_shares_for()
        out: list[bytes] = []
        for j, holder in enumerate(holders):
            share = self.opener.open(req.dataset_id, j, holder, self.address, epoch.epoch,
                                     deal.sealed_share(j, index, m))
            try:
                expected = deal.commitment(j, index, m)
                # any buffer works; a bytes copy of the share could not be wiped
                got = share_commitment(self.chain_id, req.dataset_id, holder, index, epoch.epoch,
                                       share)  # type: ignore[arg-type]
                if not hmac.compare_digest(got, expected):
                    raise ShareInvalid(req.dataset_id, j, "does not match its commitment")
                if corrupt and holder.lower() in corrupt:
                    share[0] ^= 1  # test-only fault: a signed share the holder can prove wrong
                out.append(self._sealed_envelope(req, holder, epoch.epoch, share, holder_key))
            finally:
                wipe(share)
        return out

    def _sealed_envelope(self, req: RequestInfo, holder: str, epoch: int, share: bytearray,
                         holder_key: Callable[[str], bytes]) -> bytes:
        unsigned = ShareEnvelope(req.request_id, req.dataset_id, address_bytes(holder, "holder"),
                                 address_bytes(self.address, "member"), epoch, bytes(share))
        env = sign_envelope(self.account, unsigned, self.chain_id, self.committee.address)
        del unsigned
        wire = bytearray(encode_envelope(env))
        del env
        try:
            info = committee_release_info(self.chain_id, req.request_id, req.dataset_id, holder, self.address)
            return seal(holder_key(holder), bytes(wire), info)
        except HpkeKeyError as exc:
            log.warning("fragment holder's HPKE key is unusable; it gets no share", extra={"fields": {
                "request": req.request_id, "holder": holder, "detail": str(exc)}})
            return UNSEALABLE_ENVELOPE
        finally:
            wipe(wire)


"""Where the owner's wrap keys go at store and re-deal: the KOS committee, else the single KOS key.

The mode is decided once per store or re-deal (:func:`kos_target`): when the deployment has a
``KosCommittee`` with a current epoch, every fragment holder's wrap key ``w_j`` is split
``t_k``-of-``m`` to that epoch's members (docs/DESIGN.md "Threshold KOS (committee)") and the
dataset registry slot gets the committee marker; otherwise ``w_j`` is sealed to the deployment's
``kos_public_key`` as before; a deployment with neither is a :class:`UsageError`.

Committee flow: :meth:`KosTarget.slot` keeps a wipeable copy of each ``w_j`` (the bundle is
encrypted under it as today) and answers the marker; once the registry has the fragment epoch,
:meth:`KosTarget.register_deal` splits every key, seals share ``(j, i)`` to member ``i``'s HPKE key
under ``committee_share_info`` and posts ``registerDeal``. :meth:`KosTarget.wipe` zeroes the copies.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.committee import CommitteeEpoch
from shardkey.chain.rpc import Receipt as TxReceipt
from shardkey.crypto.committee import deal as committee_deal
from shardkey.crypto.committee_envelope import committee_marker
from shardkey.crypto.hpke import committee_share_info, seal, wrap_info
from shardkey.crypto.shamir import Rng
from shardkey.errors import UsageError


@dataclass
class KosTarget:
    """The key holder(s) of one store or re-deal; see the module docstring."""

    chain_id: int
    kos_public_key: bytes = b""
    committee: CommitteeEpoch | None = None
    _keys: dict[int, bytearray] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def mode(self) -> str:
        """``committee`` or ``legacy``."""
        return "committee" if self.committee is not None else "legacy"

    def slot(self, dataset_id: bytes, position: int, wrap_key: bytes | bytearray) -> bytes:
        """The registry's sealed wrap key slot of fragment holder ``position`` (x = position + 1)."""
        if self.committee is None:
            info = wrap_info(self.chain_id, dataset_id, position + 1)
            return seal(self.kos_public_key, bytes(wrap_key), info)
        with self._lock:
            self._keys[position] = bytearray(wrap_key)
        return committee_marker(self.committee.epoch)

    def register_deal(self, chain: ShardKeyChain, owner: LocalAccount, dataset_id: bytes,
                      fragment_epoch: int, holders: Sequence[str], rng: Rng) -> TxReceipt | None:
        """Committee mode: deal the kept wrap keys of ``holders`` (fragment epoch ``fragment_epoch``)
        and post ``registerDeal``; legacy mode: nothing to do (None). Wipes the kept keys."""
        if self.committee is None:
            return None
        epoch = self.committee
        try:
            made = committee_deal(self.chain_id, dataset_id, epoch.epoch, holders,
                                  # any buffer works; bytes copies of the keys could not be wiped
                                  [self._keys[j] for j in range(len(holders))],  # type: ignore[misc]
                                  epoch.threshold, len(epoch.members), rng)
        finally:
            self.wipe()
        sealed = [seal(epoch.hpke_public_keys[i], made.shares[j][i],
                       committee_share_info(self.chain_id, dataset_id, holder, member, epoch.epoch))
                  for j, holder in enumerate(holders) for i, member in enumerate(epoch.members)]
        commitments = made.flat_commitments()
        del made  # the shares are immutable bytes: drop them as soon as they are sealed
        assert chain.committee is not None  # a committee epoch came from it
        return chain.committee.register_deal(owner, dataset_id, fragment_epoch, commitments, sealed)

    def wipe(self) -> None:
        """Zero every kept wrap key."""
        with self._lock:
            for key in self._keys.values():
                key[:] = bytes(len(key))
            self._keys.clear()


def kos_target(chain: ShardKeyChain) -> KosTarget:
    """The committee's current epoch when there is one, else the deployment's KOS key."""
    chain_id = chain.client.chain_id
    committee = chain.committee
    if committee is not None and committee.current_epoch() > 0:
        return KosTarget(chain_id, committee=committee.committee())
    if chain.deployment.kos_public_key:
        return KosTarget(chain_id, kos_public_key=chain.deployment.kos_public_key)
    raise UsageError("the deployment has neither a KOS committee epoch nor a kos_public_key: deploy with "
                     "'shardkey network deploy' (it names the KOS key, or start a committee epoch)")

"""Where the owner's wrap keys go at store and re-deal: the KOS committee's current epoch.

:func:`kos_target` reads the ``KosCommittee``'s current epoch once per store or re-deal; every
fragment holder's wrap key ``w_j`` is split ``t_k``-of-``m`` to that epoch's members
(docs/DESIGN.md "Threshold KOS (committee)") and the dataset registry slot gets the committee
marker. A deployment whose committee has no epoch yet is a :class:`UsageError`.

:meth:`KosTarget.slot` keeps a wipeable copy of each ``w_j`` (the bundle is encrypted under it)
and answers the marker; once the registry has the fragment epoch, :meth:`KosTarget.register_deal`
splits every key, seals share ``(j, i)`` to member ``i``'s HPKE key under ``committee_share_info``
and posts ``registerDeal``. :meth:`KosTarget.wipe` zeroes the copies.
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
from shardkey.crypto.hpke import committee_share_info, seal
from shardkey.crypto.shamir import Rng
from shardkey.errors import UsageError


@dataclass
class KosTarget:
    """The committee epoch one store or re-deal deals to; see the module docstring."""

    chain_id: int
    committee: CommitteeEpoch
    _keys: dict[int, bytearray] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def slot(self, position: int, wrap_key: bytes | bytearray) -> bytes:
        """The registry's wrap key slot of fragment holder ``position`` (x = position + 1): the
        committee marker; a copy of ``wrap_key`` is kept for :meth:`register_deal`."""
        with self._lock:
            self._keys[position] = bytearray(wrap_key)
        return committee_marker(self.committee.epoch)

    def register_deal(self, chain: ShardKeyChain, owner: LocalAccount, dataset_id: bytes,
                      fragment_epoch: int, holders: Sequence[str], rng: Rng) -> TxReceipt:
        """Deal the kept wrap keys of ``holders`` (fragment epoch ``fragment_epoch``) and post
        ``registerDeal``. Wipes the kept keys."""
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
        return chain.committee.register_deal(owner, dataset_id, fragment_epoch, commitments, sealed)

    def wipe(self) -> None:
        """Zero every kept wrap key."""
        with self._lock:
            for key in self._keys.values():
                key[:] = bytes(len(key))
            self._keys.clear()


def kos_target(chain: ShardKeyChain) -> KosTarget:
    """The committee's current epoch, or a :class:`UsageError` when none was started."""
    committee = chain.committee
    epoch = committee.current_epoch()
    if epoch == 0:
        raise UsageError("the KOS committee has no epoch yet, so no KOS could release this dataset: the "
                         "committee admin starts one with `shardkey kos committee start --member "
                         "ACCOUNT=HPKE_KEY ... --threshold T`")
    return KosTarget(chain.client.chain_id, committee.committee(epoch))  # not read a second time

"""KOS integration fixtures: a committee epoch, committee datasets dealt as ``store`` deals
them, requests, approvals and in-process committee members."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from kos.orchestrator import Outcome
from kos.service import KosService
from shardkey.chain.committee import KosCommittee, recover_signer
from shardkey.chain.model import DatasetParams
from shardkey.client.kos_target import KosTarget, kos_target
from shardkey.crypto.committee import ShareSlot, VerifiedShare, combine_shares, deal, verify_share
from shardkey.crypto.committee_envelope import committee_marker
from shardkey.crypto.hpke import (
    HpkePrivateKey,
    committee_release_info,
    committee_share_info,
    seal,
)
from shardkey.policy.model import ApprovalGroup, Policy
from shardkey.ratelimit import RateLimiter
from shardkey.service.health import WatchHealth
from tests.support.devchain import DevChain

MEMBERS, THRESHOLD = 3, 2


@dataclass
class Dataset:
    """A registered, active committee dataset and the wrap keys dealt for it."""

    dataset_id: bytes
    holders: list[LocalAccount]
    wrap_keys: list[bytes]
    policy: Policy


class World:
    """Test helper around ``devchain``: a committee epoch, datasets, requests, approvals, members.

    The committee (``MEMBERS`` accounts ``member-1..``, each with its own HPKE key, threshold
    ``THRESHOLD``) is started on first use, so a test can look at a deployment without one.
    """

    def __init__(self, devchain: DevChain, tmp_path: Path) -> None:
        self.dev = devchain
        self.chain = devchain.chain
        self.tmp = tmp_path
        self.holders = devchain.register_holders(3)
        self.approvers = [devchain.account("approver-1"), devchain.account("approver-2")]
        self.requester = devchain.account("requester")
        self.owner = devchain.account("owner")
        self.start = devchain.deployment.start_block
        self.members: list[LocalAccount] = []
        self.member_keys: list[HpkePrivateKey] = []
        self.threshold = 0

    @property
    def committee(self) -> KosCommittee:
        """The deployment's KosCommittee contract."""
        assert self.chain.committee is not None
        return self.chain.committee

    def start_committee(self, members: int = MEMBERS, threshold: int = THRESHOLD) -> None:
        """Start the next committee epoch: ``members`` fresh accounts and keys, ``threshold``."""
        first = len(self.members)
        accounts = [self.dev.account(f"member-{first + i + 1}") for i in range(members)]
        keys = [HpkePrivateKey.generate(os.urandom) for _ in range(members)]
        self.committee.start_epoch(self.dev.accounts["admin"], [a.address for a in accounts],
                                   [k.public_key_bytes() for k in keys], threshold)
        self.members += accounts
        self.member_keys += keys
        self.threshold = threshold

    def ensure_committee(self) -> None:
        """Start the default committee epoch unless one was started."""
        if not self.members:
            self.start_committee()

    def policy(self, **changes: Any) -> Policy:
        """Anyone may ask; one of the two approvers must approve; one hour to fetch."""
        members = tuple(a.address for a in self.approvers)
        base: dict[str, Any] = {"groups": (ApprovalGroup("ops", members, 1),)}
        base.update(changes)
        return Policy(**base)

    def register(self, policy: Policy | None = None,
                 sealed_to: HpkePrivateKey | None = None) -> tuple[Dataset, KosTarget]:
        """Register a dataset whose slots are the owner's ``kos_target`` markers; not yet dealt.

        ``sealed_to``: the slots hold the wrap keys sealed to that one key instead (the removed
        single-key KOS's format): a dataset no committee member serves.
        """
        self.ensure_committee()
        policy = policy or self.policy()
        target = kos_target(self.chain)
        salt = os.urandom(32)
        dataset_id = self.chain.datasets.compute_dataset_id(self.owner.address, salt)
        wrap_keys = [os.urandom(32) for _ in self.holders]
        slots = [seal(sealed_to.public_key_bytes(), w, b"single-key slot") if sealed_to
                 else target.slot(j, bytearray(w)) for j, w in enumerate(wrap_keys)]
        addresses = tuple(h.address for h in self.holders)
        params = DatasetParams(merkle_root=os.urandom(32), k=2, p=1, shard_size=1024,
                               plaintext_length=2048, shard_count=3, threshold=2,
                               shard_holders=addresses, fragment_holders=addresses)
        self.chain.datasets.register(self.owner, salt, params, policy, [os.urandom(32) for _ in range(3)],
                                     slots, [os.urandom(32) for _ in self.holders])
        return Dataset(dataset_id, self.holders, wrap_keys, policy), target

    def activate(self, dataset: Dataset) -> None:
        """Every holder confirms custody: the dataset is Active."""
        for holder in dataset.holders:
            self.chain.datasets.confirm_custody(holder, dataset.dataset_id)

    def dataset(self, policy: Policy | None = None,
                wrong_commitment: tuple[int, int] | None = None) -> Dataset:
        """A committee dataset dealt as ``store`` deals it (``KosTarget.register_deal``), Active.

        ``wrong_commitment=(j, i)``: the owner deals commitment ``c[j][i]`` wrong (random), so
        member ``i``'s share for holder ``j`` does not match it.
        """
        dataset, target = self.register(policy)
        holders = [h.address for h in dataset.holders]
        if wrong_commitment is None:
            target.register_deal(self.chain, self.owner, dataset.dataset_id, 1, holders, os.urandom)
        else:
            target.wipe()
            self._deal_wrong(dataset, holders, *wrong_commitment)
        self.activate(dataset)
        return dataset

    def _deal_wrong(self, dataset: Dataset, holders: list[str], j: int, i: int) -> None:
        epoch = self.committee.committee()
        chain_id = self.dev.client.chain_id
        m = len(epoch.members)
        made = deal(chain_id, dataset.dataset_id, epoch.epoch, holders, dataset.wrap_keys, epoch.threshold, m,
                    os.urandom)
        commitments = made.flat_commitments()
        commitments[j * m + i] = os.urandom(32)
        sealed = [seal(epoch.hpke_public_keys[b], made.shares[a][b],
                       committee_share_info(chain_id, dataset.dataset_id, h, epoch.members[b], epoch.epoch))
                  for a, h in enumerate(holders) for b in range(m)]
        self.committee.register_deal(self.owner, dataset.dataset_id, 1, commitments, sealed)

    def request(self, dataset: Dataset, requester: LocalAccount | None = None) -> int:
        """Open a request (no attestation); return its id."""
        ephemeral = HpkePrivateKey.generate(os.urandom).public_key_bytes()
        receipt = self.chain.retrievals.request_retrieval(requester or self.requester,
                                                          dataset.dataset_id, ephemeral)
        events = self.chain.retrievals.contract.process_receipt("RetrievalRequested", receipt)
        return int(events[0].args["requestId"])

    def approve(self, request_id: int) -> None:
        """The first approver approves (the group needs one)."""
        self.chain.retrievals.approve(self.approvers[0], self.chain.retrievals.approval_subject(request_id))

    def member(self, i: int = 0, *, state: str | None = None, confirmations: int = 0,
               issue_limit: RateLimiter | None = None, health: WatchHealth | None = None,
               chain: Any = None) -> KosService:
        """Committee member ``i`` in process, with its own state directory (``member-{i+1}``)."""
        self.ensure_committee()
        return KosService(chain or self.chain, self.members[i], self.member_keys[i],
                          self.tmp / (state or f"member-{i + 1}"), confirmations=confirmations,
                          issue_limit=issue_limit, health=health)

    def serve(self, request_id: int, members: tuple[int, ...] = (0, 1)) -> None:
        """Members ``members`` each poll once and release: ``request_id`` gets its tokens."""
        for i in members:
            assert self.member(i, state=f"serve-{i + 1}").poll().outcomes.get(request_id) == Outcome.ISSUED

    def token_events(self, request_id: int) -> list[Any]:
        """Every TokenIssued event of a request."""
        event = self.chain.retrievals.contract.events.TokenIssued()
        return list(event.get_logs(from_block=self.start, argument_filters={"requestId": request_id}))

    def released_by(self, request_id: int) -> list[str]:
        """The members whose release of ``request_id`` is on chain, in chain order."""
        return [r.member for r in self.committee.releases(request_id, self.start) if r.released]

    def verified(self, request_id: int, dataset: Dataset, member: int, j: int,
                 sealed: bytes) -> VerifiedShare:
        """What holder ``j`` makes of member ``member``'s envelope for it (raises if it is wrong)."""
        holder = dataset.holders[j].address
        chain_id = self.dev.client.chain_id
        info = committee_release_info(chain_id, request_id, dataset.dataset_id, holder,
                                      self.members[member].address)
        opened = self.dev.holder_keys[f"holder-{j + 1}"].open(sealed, info)
        record = self.committee.deal_record(dataset.dataset_id, 1, self.start)
        epoch = self.committee.committee(record.committee_epoch)
        index = epoch.members.index(self.members[member].address)
        slot = ShareSlot(chain_id=chain_id, committee=self.committee.address, request_id=request_id,
                         dataset_id=dataset.dataset_id, holder=holder, member=self.members[member].address,
                         member_index=index, epoch=epoch.epoch)
        return verify_share(opened, slot, record.commitment(j, index, len(epoch.members)), recover_signer)

    def assert_served(self, request_id: int, dataset: Dataset) -> None:
        """One marker token per holder, and every holder's verified shares combine to its wrap key."""
        events = self.token_events(request_id)
        assert len(events) == len(dataset.holders) == len({e["args"]["holder"] for e in events})
        epoch = self.committee.deal_record(dataset.dataset_id, 1, self.start).committee_epoch
        assert {bytes(e["args"]["token"]) for e in events} == {committee_marker(epoch)}
        releases = [r for r in self.committee.releases(request_id, self.start) if r.released]
        assert len(releases) >= self.threshold
        index = {a.address: i for i, a in enumerate(self.members)}
        for j in range(len(dataset.holders)):
            shares = [self.verified(request_id, dataset, index[r.member], j, r.sealed_envelopes[j])
                      for r in releases]
            assert combine_shares(shares, self.threshold) == dataset.wrap_keys[j]

    def advance(self, seconds: int) -> None:
        """Move chain time forward and mine a block."""
        latest = self.dev.client.latest_timestamp()
        self.dev.set_next_timestamp(latest + seconds)
        self.dev.mine()


@pytest.fixture
def world(devchain: DevChain, tmp_path: Path) -> World:
    """A deployment with three active holders, two approvers, a requester and an owner; the
    committee epoch (three members, threshold two) starts on first use."""
    return World(devchain, tmp_path)

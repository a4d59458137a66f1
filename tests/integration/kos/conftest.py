"""KOS integration fixtures: registered active datasets, requests, approvals, replicas."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from kos.service import KosService
from shardkey.chain.bindings import KOS_ROLE
from shardkey.chain.model import DatasetParams
from shardkey.crypto.hpke import HpkePrivateKey, seal, token_info, wrap_info
from shardkey.policy.model import ApprovalGroup, Policy
from shardkey.ratelimit import RateLimiter
from tests.support.devchain import FUNDING, DevChain


@dataclass
class Dataset:
    """A registered, active dataset and the wrap keys sealed in its registration."""

    dataset_id: bytes
    holders: list[LocalAccount]
    wrap_keys: list[bytes]
    policy: Policy


class World:
    """Test helper around ``devchain``: datasets, requests, approvals and KOS replicas."""

    def __init__(self, devchain: DevChain, tmp_path: Path) -> None:
        self.dev = devchain
        self.chain = devchain.chain
        self.tmp = tmp_path
        self.holders = devchain.register_holders(3)
        self.approvers = [devchain.account("approver-1"), devchain.account("approver-2")]
        self.requester = devchain.account("requester")
        self.owner = devchain.account("owner")

    def policy(self, **changes: Any) -> Policy:
        """Anyone may ask; one of the two approvers must approve; one hour to fetch."""
        members = tuple(a.address for a in self.approvers)
        base: dict[str, Any] = {"groups": (ApprovalGroup("ops", members, 1),)}
        base.update(changes)
        return Policy(**base)

    def dataset(self, policy: Policy | None = None, wrong_info_at: int | None = None) -> Dataset:
        """Register a dataset over every holder and confirm custody so it is Active."""
        policy = policy or self.policy()
        salt = os.urandom(32)
        dataset_id = self.chain.datasets.compute_dataset_id(self.owner.address, salt)
        chain_id = self.dev.client.chain_id
        wrap_keys = [os.urandom(32) for _ in self.holders]
        kos_pk = self.dev.kos_key.public_key_bytes()
        sealed = []
        for j, w in enumerate(wrap_keys):
            x = j + 2 if j == wrong_info_at else j + 1
            sealed.append(seal(kos_pk, w, wrap_info(chain_id, dataset_id, x)))
        addresses = tuple(h.address for h in self.holders)
        params = DatasetParams(merkle_root=os.urandom(32), k=2, p=1, shard_size=1024,
                               plaintext_length=2048, shard_count=3, threshold=2,
                               shard_holders=addresses, fragment_holders=addresses)
        self.chain.datasets.register(self.owner, salt, params, policy, [os.urandom(32) for _ in range(3)],
                                     sealed, [os.urandom(32) for _ in self.holders])
        for holder in self.holders:
            self.chain.datasets.confirm_custody(holder, dataset_id)
        return Dataset(dataset_id, self.holders, wrap_keys, policy)

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

    def replica(self, name: str = "kos", *, replicas: list[str] | None = None,
                takeover_after: int = 10, confirmations: int = 0, state: str | None = None,
                issue_limit: RateLimiter | None = None) -> KosService:
        """An in-process KOS replica with its own state directory."""
        account = self.kos_account(name)
        return KosService(self.chain, account, self.dev.kos_key, self.tmp / (state or name),
                          replicas=replicas or [account.address], takeover_after=takeover_after,
                          confirmations=confirmations, issue_limit=issue_limit)

    def kos_account(self, name: str) -> LocalAccount:
        """A funded account holding KOS_ROLE (granted by the admin on first use)."""
        if name not in self.dev.accounts:
            account = Account.create()
            self.dev.client.w3.provider.make_request("anvil_setBalance", [account.address, FUNDING])
            self.dev.accounts[name] = account
            fn = self.chain.retrievals.contract.functions.grantRole(KOS_ROLE, account.address)
            self.dev.client.send(fn, self.dev.accounts["admin"])
        return self.dev.accounts[name]

    def token_events(self, request_id: int) -> list[Any]:
        """Every TokenIssued event of a request."""
        event = self.chain.retrievals.contract.events.TokenIssued()
        return list(event.get_logs(from_block=self.dev.deployment.start_block,
                                   argument_filters={"requestId": request_id}))

    def assert_tokens_open(self, request_id: int, dataset: Dataset) -> None:
        """One token per holder, each opening with that holder's key to its wrap key."""
        events = self.token_events(request_id)
        by_holder = {e["args"]["holder"]: bytes(e["args"]["token"]) for e in events}
        assert len(events) == len(dataset.holders) == len(by_holder)
        chain_id = self.dev.client.chain_id
        for j, holder in enumerate(dataset.holders):
            key = self.dev.holder_keys[f"holder-{j + 1}"]
            info = token_info(chain_id, request_id, dataset.dataset_id, holder.address)
            assert key.open(by_holder[holder.address], info) == dataset.wrap_keys[j]

    def advance(self, seconds: int) -> None:
        """Move chain time forward and mine a block."""
        latest = self.dev.client.latest_timestamp()
        self.dev.set_next_timestamp(latest + seconds)
        self.dev.mine()


@pytest.fixture
def world(devchain: DevChain, tmp_path: Path) -> World:
    """A deployment with three active holders, two approvers, a requester and an owner."""
    return World(devchain, tmp_path)

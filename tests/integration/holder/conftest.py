"""Holder agent fixtures: a real dataset (erasure coding, shard encryption, Shamir, bundles,
wrap keys dealt 2 of 3 to a committee epoch) registered on anvil, and an in-process holder
agent (``assemble_agent`` + Starlette ``TestClient``) acting as holder-1 of three. The test
plays the owner and the three committee members (``World.release``, ``World.unlock``)."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from holder_agent.api import create_app
from holder_agent.service import Agent, assemble_agent
from holder_agent.settings import HolderSettings
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.model import DatasetParams
from shardkey.crypto import (
    FragmentBundle,
    HpkePrivateKey,
    MerkleTree,
    holder_fragments_root,
    seal_stripe,
    split,
    stripe_bounds,
    stripe_count,
    wrap_bundle,
)
from shardkey.httpauth import sign_request
from shardkey.policy.model import Policy
from tests.support.devchain import DevChain, Member, Tamper

with warnings.catch_warnings():  # starlette suggests httpx2; httpx is what the project uses
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


@dataclass
class BuiltDataset:
    """Everything the owner knows about a dataset it built (the test keeps the secrets)."""

    dataset_id: bytes
    salt: bytes
    params: DatasetParams
    policy: Policy
    shards: list[bytes]
    shard_hashes: list[bytes]
    tree: MerkleTree
    wrap_keys: list[bytes]
    wrapped_bundles: list[bytes]
    sealed_wrap_keys: list[bytes]  # the committee marker in every slot
    fragment_roots: list[bytes]
    deal: Callable[..., Any]  # posts registerDeal (once: it wipes the dealt keys)

    def my_shards(self, holder: str) -> list[int]:
        """Indices placed at ``holder``."""
        return [i for i in range(self.params.shard_count) if self.params.shard_holder(i) == holder]

    @property
    def hex(self) -> str:
        return "0x" + self.dataset_id.hex()


@dataclass
class OpenRequest:
    """A retrieval request and its requester's ephemeral key."""

    request_id: int
    requester: LocalAccount
    ephemeral: HpkePrivateKey


@dataclass
class World:
    """Three active holders on a fresh deployment; the agent under test is holder-1."""

    dev: DevChain
    tmp: Path
    holders: list[LocalAccount]
    owner: LocalAccount
    requester: LocalAccount
    agent: Agent
    http: TestClient
    extra_agents: list[Agent] = field(default_factory=list)
    members: list[Member] = field(default_factory=list)  # the committee epoch datasets are dealt to

    @property
    def me(self) -> str:
        return str(self.holders[0].address)

    @property
    def chain(self) -> Any:
        return self.dev.chain

    # --- agents -----------------------------------------------------------------

    def make_agent(self, data_dir: Path, chain: ShardKeyChain | None = None, **settings: Any) -> Agent:
        """Another in-process agent for holder-1 (own data dir and limits; ``chain``: another
        connection to the same deployment, such as one through a proxy)."""
        values: dict[str, Any] = {
            "deployment": self.tmp / "deployment.json", "account_key": self.tmp / "unused.key",
            "hpke_keystore": self.tmp / "unused.hpke", "data_dir": data_dir, "listen_port": 1,
            "confirmations": 1, "poll_interval": 0.05}
        values.update(settings)
        return assemble_agent(HolderSettings(**values), chain or self.dev.chain, self.holders[0],
                              self.dev.holder_keys["holder-1"])

    def settle(self, agent: Agent | None = None) -> None:
        """Mine a block so everything sent so far is confirmed, then poll once."""
        self.dev.mine()
        (agent or self.agent).poll()

    # --- signed HTTP --------------------------------------------------------------

    def now(self) -> int:
        return self.dev.client.latest_timestamp()

    def headers(self, account: LocalAccount, method: str, path: str, body: bytes = b"",
                timestamp: int | None = None) -> dict[str, str]:
        ts = self.now() if timestamp is None else timestamp
        return sign_request(account, self.me, method, path, body, ts)

    def put(self, account: LocalAccount, path: str, body: bytes, client: TestClient | None = None) -> Any:
        return (client or self.http).put(path, content=body,
                                         headers=self.headers(account, "PUT", path, body))

    def get(self, account: LocalAccount, path: str) -> Any:
        return self.http.get(path, headers=self.headers(account, "GET", path))

    # --- datasets ---------------------------------------------------------------------

    def build(self, policy: Policy | None = None, length: int = 4000, k: int = 2, p: int = 1,
              shard_size: int = 1024, threshold: int = 2,
              fragment_holders: list[LocalAccount] | None = None) -> BuiltDataset:
        """Encrypt, encode (shard format v2), split and wrap a random file; the wrap-key slots
        are the committee marker and the keys are kept for the deal (nothing sent yet).
        Every holder holds shards; ``fragment_holders`` (default: all) hold the fragments."""
        policy = policy or Policy()
        if not self.members:  # a World built without the fixture (a module-wide one) starts it here
            self.members = self.dev.members or self.dev.start_committee(3, 2)
        salt = os.urandom(32)
        ds = self.chain.datasets.compute_dataset_id(self.owner.address, salt)
        data = os.urandom(length)
        shards, keys = [], {}
        for s in range(stripe_count(length, k, shard_size)):
            start, end = stripe_bounds(s, length, k, shard_size)
            stripe_keys = [os.urandom(32) for _ in range(k)]
            keys.update({s * (k + p) + j: key for j, key in enumerate(stripe_keys)})
            shards += [c for c, _ in seal_stripe(stripe_keys, ds, s, data[start:end], k, p, shard_size,
                                                 os.urandom)]
        hashes = [hashlib.sha256(c).digest() for c in shards]
        tree = MerkleTree.from_digests(hashes)
        addresses = tuple(h.address for h in self.holders)
        fragment_addresses = tuple(h.address for h in fragment_holders or self.holders)
        shares = {i: split(key, threshold, len(fragment_addresses), os.urandom) for i, key in keys.items()}
        wrap_keys, wrapped, roots = [], [], []
        for j in range(len(fragment_addresses)):
            fragments = {i: s[j].value for i, s in shares.items()}
            w = os.urandom(32)
            wrap_keys.append(w)
            wrapped.append(wrap_bundle(w, FragmentBundle.build(ds, j + 1, fragments), os.urandom))
            roots.append(holder_fragments_root(ds, j + 1, fragments))
        sealed, deal = self.dev.slots(ds, wrap_keys)
        params = DatasetParams(merkle_root=tree.root, k=k, p=p, shard_size=shard_size,
                               plaintext_length=length, shard_count=len(shards), threshold=threshold,
                               shard_holders=addresses, fragment_holders=fragment_addresses)
        return BuiltDataset(ds, salt, params, policy, shards, hashes, tree, wrap_keys, wrapped,
                            sealed, roots, deal)

    def upload(self, built: BuiltDataset, skip: set[int] | None = None, bundle: bool = True) -> None:
        """The owner uploads holder-1's shards and bundle (signed PUTs)."""
        for i in built.my_shards(self.me):
            if skip and i in skip:
                continue
            reply = self.put(self.owner, f"/v1/datasets/{built.hex}/shards/{i}", built.shards[i])
            assert reply.status_code == 201, reply.text
        if bundle:
            reply = self.put(self.owner, f"/v1/datasets/{built.hex}/bundle", built.wrapped_bundles[0])
            assert reply.status_code == 201, reply.text

    def register(self, built: BuiltDataset, others_confirm: bool = True, deal: bool = True) -> None:
        """Register on chain and deal to the committee (unless ``deal`` is False: then
        :meth:`register_deal` later); the simulated holders 2 and 3 confirm custody at once."""
        self.chain.datasets.register(self.owner, built.salt, built.params, built.policy,
                                     built.shard_hashes, built.sealed_wrap_keys, built.fragment_roots)
        if deal:
            self.register_deal(built)
        if others_confirm:
            for holder in self.holders[1:]:
                self.chain.datasets.confirm_custody(holder, built.dataset_id)

    def register_deal(self, built: BuiltDataset) -> None:
        """The owner's ``registerDeal`` of the dataset's first fragment epoch."""
        built.deal(self.owner, 1, built.params.fragment_holders)

    def active_dataset(self, policy: Policy | None = None) -> BuiltDataset:
        """Built, uploaded, registered, custody confirmed by the agent: Active."""
        built = self.build(policy)
        self.upload(built)
        self.register(built)
        self.settle()
        assert self.chain.datasets.custody_confirmed(built.dataset_id, self.me)
        return built

    # --- requests -----------------------------------------------------------------------

    def request(self, built: BuiltDataset, requester: LocalAccount | None = None) -> OpenRequest:
        requester = requester or self.requester
        ephemeral = HpkePrivateKey.generate(os.urandom)
        receipt = self.chain.retrievals.request_retrieval(requester, built.dataset_id,
                                                          ephemeral.public_key_bytes())
        events = self.chain.retrievals.contract.process_receipt("RetrievalRequested", receipt)
        request_id = int(events[0].args["requestId"])
        return OpenRequest(request_id, requester, ephemeral)

    def release(self, request_id: int, member: int, tamper: Tamper | None = None) -> None:
        """Committee member ``member`` releases its shares of the request to every holder."""
        self.dev.release(self.members[member], request_id, tamper)

    def unlock(self, request_id: int, members: tuple[int, ...] = (0, 1)) -> None:
        """Honest releases from ``members`` (the threshold, 2): the last one issues the marker
        tokens to every fragment holder."""
        for member in members:
            self.release(request_id, member)
        assert self.chain.retrievals.token_issued(request_id, self.me)

    def deliveries(self, request_id: int) -> list[Any]:
        event = self.chain.retrievals.contract.events.FragmentsDelivered()
        return list(event.get_logs(from_block=self.dev.deployment.start_block,
                                   argument_filters={"requestId": request_id}))

    def advance(self, seconds: int) -> None:
        """Move chain time forward and mine a block."""
        self.dev.set_next_timestamp(self.now() + seconds)
        self.dev.mine()


@pytest.fixture
def world(devchain: DevChain, tmp_path: Path) -> World:
    holders = devchain.register_holders(3)
    members = devchain.start_committee(3, 2)
    owner, requester = devchain.account("owner"), devchain.account("requester")
    partial = World(devchain, tmp_path, holders, owner, requester, agent=None, http=None,  # type: ignore[arg-type]
                    members=members)
    partial.agent = partial.make_agent(tmp_path / "holder-1")
    partial.http = TestClient(create_app(partial.agent.api))
    return partial

"""Pytest fixtures: a real anvil chain with freshly deployed ShardKey contracts.

``anvil_url`` starts one anvil for the test session (interval mining every 0.2 s plus
automine, so confirmations advance). ``devchain`` deploys a fresh set of contracts for
each test and hands out funded named accounts; ``register_holders`` registers and
activates holders with HPKE keys. The KOS is the committee (``KosCommittee`` holds the
coordinator's KOS_ROLE; no account does): ``start_committee`` starts an epoch of members,
``deal`` deals an owner's wrap keys to it with the store's own code
(:mod:`shardkey.client.kos_target`), and ``release`` acts as one member answering a request
(its share opened from the deal, signed, sealed to each fragment holder).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.committee import KosCommittee, sign_envelope
from shardkey.chain.connection import ChainClient
from shardkey.chain.deploy import deploy_all
from shardkey.chain.deployment import Deployment
from shardkey.chain.rpc import Receipt
from shardkey.client.kos_target import kos_target
from shardkey.crypto.committee_envelope import ShareEnvelope, encode_envelope
from shardkey.crypto.hpke import HpkePrivateKey, committee_release_info, committee_share_info, seal
from shardkey.devnet.anvil import start_anvil
from shardkey.devnet.process import stop

FUNDING = hex(10_000 * 10**18)
# What a test may do to member i's release to fragment holder j: (j, share) -> share or None
# (None: that holder's sealed envelope is replaced by bytes that do not open).
Tamper = Callable[[int, bytes], bytes | None]


@dataclass(frozen=True)
class Member:
    """A committee member the test plays: its account and HPKE key."""

    account: LocalAccount
    key: HpkePrivateKey

    @property
    def address(self) -> str:
        return str(self.account.address)


@dataclass
class DevChain:
    """A fresh deployment on the session's anvil, with named funded accounts."""

    client: ChainClient
    deployment: Deployment
    chain: ShardKeyChain
    accounts: dict[str, LocalAccount]
    holder_keys: dict[str, HpkePrivateKey] = field(default_factory=dict)
    members: list[Member] = field(default_factory=list)  # the latest committee epoch's

    def account(self, name: str) -> LocalAccount:
        """A named account, created and funded on first use."""
        if name not in self.accounts:
            account = Account.create()
            self.client.w3.provider.make_request("anvil_setBalance", [account.address, FUNDING])
            self.accounts[name] = account
        return self.accounts[name]

    def register_holders(self, count: int, endpoint: str = "http://127.0.0.1:9") -> list[LocalAccount]:
        """Register and activate ``count`` holders named holder-1..N."""
        holders = []
        for i in range(count):
            name = f"holder-{i + 1}"
            account = self.account(name)
            key = HpkePrivateKey.generate(os.urandom)
            self.holder_keys[name] = key
            self.chain.holders.register(account, key.public_key_bytes(), endpoint, f"region-{i}",
                                        48_000_000 + i, 2_000_000 + i)
            self.chain.holders.activate(self.accounts["admin"], account.address)
            holders.append(account)
        return holders

    def mine(self, blocks: int = 1) -> None:
        """Mine blocks now."""
        for _ in range(blocks):
            self.client.w3.provider.make_request("evm_mine", [])

    def set_next_timestamp(self, timestamp: int) -> None:
        """The next block gets this timestamp."""
        self.client.w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])

    # --- the committee ------------------------------------------------------------

    @property
    def committee(self) -> KosCommittee:
        assert self.chain.committee is not None, "deploy_all deploys a KosCommittee"
        return self.chain.committee

    def start_committee(self, m: int = 3, t: int = 2) -> list[Member]:
        """Start the next committee epoch: ``m`` new members (named member-E-i), threshold ``t``."""
        epoch = self.committee.current_epoch() + 1
        members = [Member(self.account(f"member-{epoch}-{i}"), HpkePrivateKey.generate(os.urandom))
                   for i in range(m)]
        self.committee.start_epoch(self.accounts["admin"], [x.address for x in members],
                                   [x.key.public_key_bytes() for x in members], t)
        self.members = members
        return members

    def slots(self, dataset_id: bytes,
              wrap_keys: Sequence[bytes]) -> tuple[list[bytes], Callable[..., Receipt]]:
        """The registry's wrap-key slots for ``wrap_keys`` (the current epoch's marker) and the
        call that deals them once the fragment epoch is registered:
        ``deal(owner, fragment_epoch, holders)`` posts ``registerDeal``."""
        target = kos_target(self.chain)
        slots = [target.slot(j, w) for j, w in enumerate(wrap_keys)]

        def deal(owner: LocalAccount, fragment_epoch: int, holders: Sequence[str]) -> Receipt:
            receipt = target.register_deal(self.chain, owner, dataset_id, fragment_epoch, holders, os.urandom)
            assert receipt is not None, "dealt to a committee"
            return receipt
        return slots, deal

    def release(self, member: Member, request_id: int, tamper: Tamper | None = None) -> Receipt:
        """``member`` answers ``request_id``: for every fragment holder its dealt share, opened
        from the deal record, signed and sealed to the holder's registered HPKE key."""
        committee, chain_id = self.committee, self.client.chain_id
        request = self.chain.retrievals.request(request_id)
        ds, fe = request.dataset_id, request.fragment_epoch
        record = committee.deal_record(ds, fe, self.deployment.start_block)
        epoch = committee.committee(record.committee_epoch)
        index = epoch.index_of(member.address)
        envelopes = []
        for j, holder in enumerate(self.chain.datasets.fragment_set(ds, fe).holders):
            share: bytes | None = member.key.open(
                record.sealed_share(j, index, len(epoch.members)),
                committee_share_info(chain_id, ds, holder, member.address, epoch.epoch))
            if tamper is not None:
                share = tamper(j, share)  # type: ignore[arg-type]
            if share is None:
                envelopes.append(b"\x01" + os.urandom(80))
                continue
            unsigned = ShareEnvelope(request_id, ds, holder, member.address, epoch.epoch, share)
            env = sign_envelope(member.account, unsigned, chain_id, committee.address)
            info = committee_release_info(chain_id, request_id, ds, holder, member.address)
            holder_key = self.chain.holders.holder(holder).hpke_public_key
            envelopes.append(seal(holder_key, encode_envelope(env), info))
        return self.client.wait(committee.submit_release(member.account, request_id, envelopes))


@contextlib.contextmanager
def running_anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An anvil mining every 0.2 s and on every transaction, stopped on exit."""
    log = Path(tmp_path_factory.mktemp("anvil")) / "anvil.log"
    pid, url = start_anvil(log, block_time=0.2)
    try:
        yield url
    finally:
        stop(pid)


@pytest.fixture(scope="session")
def anvil_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's anvil. Never pause its mining: anvil cannot be put back into mining both
    on an interval and on transactions (``evm_setAutomine(true)`` leaves it mining only on
    transactions, and every later test waiting for blocks would hang). A test that pauses
    mining overrides this fixture with its own anvil (tests/integration/kos/test_kos_volume.py)."""
    with running_anvil(tmp_path_factory) as url:
        yield url


@pytest.fixture
def devchain(anvil_url: str) -> DevChain:
    """Fresh contracts; the coordinator's KOS_ROLE is the KosCommittee's alone."""
    client = ChainClient(anvil_url)
    admin = Account.create()
    client.w3.provider.make_request("anvil_setBalance", [admin.address, FUNDING])
    deployment = deploy_all(client, admin)
    return DevChain(client=client, deployment=deployment, chain=ShardKeyChain(deployment, client),
                    accounts={"admin": admin})

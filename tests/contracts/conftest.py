"""Fixtures: the three contracts deployed on anvil, six active holders and one Active dataset.

ape's isolation snapshots the chain around every test, so the session fixtures deploy once.
"""

from __future__ import annotations

from typing import Any

import pytest
from contract_helpers import (
    ATTESTATION_TYPES,
    EMPTY_ATT,
    ZERO,
    ZERO32,
    att_tuple,
    attestation,
    domain,
    params,
    policy,
    shard_hashes,
    sign_typed,
)
from eth_utils import keccak

N_HOLDERS = 6


@pytest.fixture(scope="session")
def admin(accounts):
    return accounts[0]


@pytest.fixture(scope="session")
def kos(accounts):
    return accounts[1]


@pytest.fixture(scope="session")
def owner(accounts):
    return accounts[2]


@pytest.fixture(scope="session")
def requester(accounts):
    return accounts[3]


@pytest.fixture(scope="session")
def approvers(accounts):
    return [accounts[4], accounts[5], accounts[6]]


@pytest.fixture(scope="session")
def attestor(accounts):
    return accounts[7]


@pytest.fixture(scope="session")
def outsider(accounts):
    return accounts[8]


@pytest.fixture(scope="session")
def holders(accounts, chain):
    hs = [accounts.generate_test_account() for _ in range(N_HOLDERS + 2)]
    for h in hs:
        chain.provider.set_balance(h.address, 10**21)
    return hs


@pytest.fixture(scope="session")
def holder_registry(project, admin):
    return admin.deploy(project.HolderRegistry, admin)


@pytest.fixture(scope="session")
def dataset_registry(project, admin, holder_registry):
    return admin.deploy(project.DatasetRegistry, holder_registry)


@pytest.fixture(scope="session")
def coordinator(project, admin, kos, dataset_registry, holder_registry):
    c = admin.deploy(project.RetrievalCoordinator, admin, dataset_registry, holder_registry)
    c.grantRole(c.KOS_ROLE(), kos, sender=admin)
    dataset_registry.setRetrievalCoordinator(c, sender=admin)
    holder_registry.grantRole(holder_registry.FAILURE_PROVER_ROLE(), c, sender=admin)
    return c


@pytest.fixture(scope="session")
def wallet(project, admin, approvers):
    """EIP-1271 wallet owned by approvers[2]."""
    return admin.deploy(project.TestERC1271Wallet, approvers[2])


@pytest.fixture(scope="session")
def geo(project, admin):
    return admin.deploy(project.PolicyGeoHarness)


@pytest.fixture(scope="session")
def active_holders(holder_registry, admin, holders):
    """The first N_HOLDERS holders registered and activated; the rest only exist as accounts."""
    for i, h in enumerate(holders[:N_HOLDERS]):
        holder_registry.registerHolder(
            b"pk" + bytes([i]), f"http://h{i}", "eu", 48_000_000 + i, 2_000_000, sender=h
        )
        holder_registry.activateHolder(h, sender=admin)
    return holders[:N_HOLDERS]


@pytest.fixture
def spare(holder_registry, holders, admin):
    """A seventh Active holder, in no dataset (a repair or re-deal target)."""
    h = holders[6]
    holder_registry.registerHolder(b"pk-spare", "http://spare", "us", 40_000_000, -74_000_000, sender=h)
    holder_registry.activateHolder(h, sender=admin)
    return h


class Kit:
    """Test driver: registers datasets, makes requests, signs attestations."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)
        self.chain_id = self.chain.chain_id
        self.salt_counter = 0

    @property
    def shard_holders(self) -> list:
        return self.active_holders[:5]

    @property
    def fragment_holders(self) -> list:
        return self.active_holders[1:6]

    @property
    def now(self) -> int:
        return self.chain.blocks.head.timestamp

    def at(self, ts: int) -> None:
        """The next transaction is mined at `ts`."""
        self.chain.pending_timestamp = ts

    def day_start(self, days_ahead: int = 2) -> int:
        """Midnight UTC `days_ahead` days after the latest block."""
        return (self.now // 86400 + days_ahead) * 86400

    def register(self, pol: tuple | None = None, *, confirm: bool = True, prm: tuple | None = None,
                 hashes: list | None = None, sender: Any = None) -> bytes:
        self.salt_counter += 1
        salt = keccak(b"salt" + self.salt_counter.to_bytes(4, "big"))
        prm = prm or params(self.shard_holders, self.fragment_holders)
        hashes = hashes if hashes is not None else shard_hashes(prm[5])
        n = len(prm[8])
        sender = sender or self.owner
        tx = self.dataset_registry.registerDataset(
            salt, prm, pol or policy(), hashes, [b"wrap" + bytes([i]) for i in range(n)],
            [keccak(bytes([i])) for i in range(n)], sender=sender,
        )
        ds_id = tx.events.filter(self.dataset_registry.DatasetRegistered)[0].datasetId
        if confirm:
            for h in sorted({str(a) for a in prm[7]} | {str(a) for a in prm[8]}):
                self.dataset_registry.confirmCustody(ds_id, sender=h)
        return bytes(ds_id)

    def request(self, ds_id: bytes, sender: Any = None, att: Any = EMPTY_ATT,
                attestor: Any = ZERO, sig: bytes = b"", key: bytes = b"epk") -> tuple[int, Any]:
        sender = sender or self.requester
        tx = self.coordinator.requestRetrieval(ds_id, key, att, attestor, sig, sender=sender)
        rid = tx.events.filter(self.coordinator.RetrievalRequested)[0].requestId
        return rid, tx

    def subject(self, rid: int) -> tuple:
        """The ``ApprovalSubject`` of a stored request (zero fields for an unknown id)."""
        if not 1 <= rid <= self.coordinator.requestCount():
            return (rid, ZERO32, ZERO, ZERO32)
        r = self.coordinator.request(rid)
        return (rid, bytes(r.datasetId), str(r.requester), bytes(r.ephemeralKeyHash))

    def status(self, rid: int) -> tuple[int, int]:
        r = self.coordinator.request(rid)
        return r.status, r.denialReason

    def attest(self, lat: int, lon: int, acc: int = 10, *, issued_at: int | None = None,
               requester: Any = None, signer: Any = None, nonce: bytes = b"\x01" * 32
               ) -> tuple[tuple, Any, bytes]:
        a = attestation(requester or self.requester, lat, lon, acc,
                        self.now if issued_at is None else issued_at, nonce)
        signer = signer or self.attestor
        sig = sign_typed(signer.private_key, domain(self.coordinator, self.chain_id),
                         ATTESTATION_TYPES, a)
        return att_tuple(a), self.attestor, sig


@pytest.fixture(scope="session")
def kit(chain, holder_registry, dataset_registry, coordinator, active_holders, owner, requester,
        attestor, approvers, kos, admin):
    return Kit(chain=chain, holder_registry=holder_registry, dataset_registry=dataset_registry,
               coordinator=coordinator, active_holders=active_holders, owner=owner,
               requester=requester, attestor=attestor, approvers=approvers, kos=kos, admin=admin)


@pytest.fixture(scope="session")
def ds(kit):
    """An Active dataset with the default (open) policy."""
    return kit.register()


@pytest.fixture(scope="session")
def gds(kit, approvers, wallet):
    """An Active dataset whose policy needs legal (2 of a0, a1) and ops (1 of a2, wallet)."""
    a0, a1, a2 = approvers
    return kit.register(policy(groups=[("legal", [str(a0), str(a1)], 2),
                                       ("ops", [str(a2), str(wallet.address)], 1)],
                               approvalWindow=600))

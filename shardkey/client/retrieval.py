"""Location attestations, retrieval requests and approvals (the client side)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak

from shardkey.chain.attestation import parse_attestation
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.eip712 import attestation_message, sign
from shardkey.chain.model import RequestStatus
from shardkey.chain.release import preflight_reason
from shardkey.crypto.errors import CryptoError
from shardkey.crypto.hpke import DEFAULT_SUITE, HpkePrivateKey, HpkeSuiteId
from shardkey.errors import UsageError
from shardkey.fsutil import atomic_write_bytes
from shardkey.policy.evaluate import DenialReason
from shardkey.policy.geo import degrees_to_e6

ATTESTATION_FIELDS = ("requester", "lat_e6", "lon_e6", "accuracy_m", "issued_at", "nonce", "attestor",
                      "signature")


@dataclass(frozen=True)
class SignedAttestation:
    """An EIP-712 location attestation with its signature."""

    requester: str
    lat_e6: int
    lon_e6: int
    accuracy_m: int
    issued_at: int
    nonce: bytes
    attestor: str
    signature: bytes

    def as_tuple(self) -> tuple[Any, ...]:
        """The ``LocationAttestation`` struct tuple."""
        return (self.requester, self.lat_e6, self.lon_e6, self.accuracy_m, self.issued_at, self.nonce)

    def to_json(self) -> dict[str, Any]:
        """The proof file form."""
        return {"requester": self.requester, "lat_e6": self.lat_e6, "lon_e6": self.lon_e6,
                "accuracy_m": self.accuracy_m, "issued_at": self.issued_at,
                "nonce": "0x" + self.nonce.hex(), "attestor": self.attestor,
                "signature": "0x" + self.signature.hex()}

    @classmethod
    def load(cls, path: Path) -> SignedAttestation:
        """Read a proof file written by ``shardkey geo attest``, naming the bad field."""
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise UsageError(f"--location {path}: no such file") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UsageError(f"--location {path}: not a JSON attestation") from None
        if not isinstance(data, dict):
            raise UsageError(f"--location {path}: not a JSON object")
        unknown = sorted(set(data) - set(ATTESTATION_FIELDS))
        missing = [f for f in ATTESTATION_FIELDS if f not in data]
        if unknown or missing:
            raise UsageError(f"--location {path}: " + (f"unknown field {unknown[0]}" if unknown
                                                      else f"missing field {missing[0]}"))
        try:
            for name in ("requester", "attestor"):
                if not is_address(data[name]):
                    raise ValueError(f"{name} is not an address")
            for name in ("lat_e6", "lon_e6", "accuracy_m", "issued_at"):
                if not isinstance(data[name], int) or isinstance(data[name], bool):
                    raise ValueError(f"{name} must be an integer")
            nonce = bytes.fromhex(str(data["nonce"]).removeprefix("0x"))
            signature = bytes.fromhex(str(data["signature"]).removeprefix("0x"))
            if len(nonce) != 32:
                raise ValueError("nonce must be 32 bytes")
        except ValueError as exc:
            raise UsageError(f"--location {path}: {exc}") from None
        return cls(to_checksum_address(data["requester"]), data["lat_e6"], data["lon_e6"],
                   data["accuracy_m"], data["issued_at"], nonce, to_checksum_address(data["attestor"]),
                   signature)


def attest_location(chain: ShardKeyChain, attestor: LocalAccount, requester: str, lat: float, lon: float,
                    accuracy_m: int) -> SignedAttestation:
    """Sign a location attestation for ``requester``, issued at the latest block's time."""
    if not is_address(requester):
        raise UsageError(f"--for {requester!r} is not an address or account name")
    if not 0 <= accuracy_m < 2**32:
        raise UsageError(f"--accuracy {accuracy_m}: must be between 0 and 4294967295 metres")
    lat_e6, lon_e6 = degrees_to_e6(lat, "lat"), degrees_to_e6(lon, "lon")
    nonce = os.urandom(32)
    issued_at = chain.client.latest_timestamp()
    message = attestation_message(requester, lat_e6, lon_e6, accuracy_m, issued_at, nonce)
    signature = sign(chain.retrievals.domain, "LocationAttestation", message, attestor)
    return SignedAttestation(to_checksum_address(requester), lat_e6, lon_e6, accuracy_m, issued_at,
                             nonce, attestor.address, signature)


@dataclass(frozen=True)
class RequestOutcome:
    """A request id and its state after the request transaction."""

    request_id: int
    status: RequestStatus
    reason: DenialReason
    key_file: Path
    predicted: DenialReason = DenialReason.NONE  # the pre-flight's verdict
    predicted_at: int = 0  # the block time the pre-flight judged at

    @property
    def disagreement(self) -> str | None:
        """A warning when the chain recorded another verdict than the pre-flight predicted."""
        if self.predicted == self.reason:
            return None
        return (f"warning: the off-chain pre-flight (block time {self.predicted_at}) predicted "
                f"{self.predicted.label}, the chain recorded {self.reason.label}")

    @property
    def state(self) -> str:
        """``pending``, ``approved``, or ``denied: <reason>``."""
        if self.status == RequestStatus.DENIED:
            return f"denied: {self.reason.label} ({self.reason.description})"
        return self.status.name.lower()


def request_retrieval(chain: ShardKeyChain, requester: LocalAccount, dataset_id: bytes,
                      attestation: SignedAttestation | None, keys_dir: Path,
                      suite: HpkeSuiteId = DEFAULT_SUITE, redeal: bool = False) -> RequestOutcome:
    """Pre-flight the policy off chain, make an ephemeral HPKE key, send the request, keep
    the key (0600) for ``fetch``. The outcome carries both the chain's and the pre-flight's
    verdict (:attr:`RequestOutcome.disagreement`).

    The key is kept only while the request can still be served: a request denied at once
    leaves no key file, and :func:`prune_ephemeral_keys` removes the others later. With
    ``redeal`` the owner asks ``requestRedeal`` instead (same inputs, policy and approvals;
    purpose Redeal on chain).
    """
    if chain.datasets.dataset(dataset_id).status == 0:
        raise UsageError(f"dataset 0x{dataset_id.hex()} is not registered on this chain")
    given = None
    if attestation is not None:
        given = (attestation.attestor, parse_attestation(attestation.as_tuple()), attestation.signature)
    predicted, predicted_at = preflight_reason(chain, requester.address, dataset_id, given)
    ephemeral = HpkePrivateKey.generate(os.urandom, suite)
    send = chain.retrievals.request_redeal if redeal else chain.retrievals.request_retrieval
    if attestation is not None:
        receipt = send(requester, dataset_id, ephemeral.public_key_bytes(), attestation.as_tuple(),
                       attestation.attestor, attestation.signature)
    else:
        receipt = send(requester, dataset_id, ephemeral.public_key_bytes())
    events = chain.retrievals.contract.process_receipt("RetrievalRequested", receipt)
    request_id = int(events[0].args["requestId"])
    key_file = keys_dir / f"{request_id}.hpke"
    info = chain.retrievals.request(request_id)
    if info.status != RequestStatus.DENIED:  # a denied request is never served: keep nothing
        atomic_write_bytes(key_file, ephemeral.to_bytes().hex().encode(), mode=0o600)
    return RequestOutcome(request_id, info.status, DenialReason(info.denial_reason), key_file,
                          predicted, predicted_at)


def load_ephemeral_key(keys_dir: Path, request_id: int) -> HpkePrivateKey:
    """The ephemeral key kept by :func:`request_retrieval`."""
    path = keys_dir / f"{request_id}.hpke"
    try:
        return HpkePrivateKey.from_bytes(bytes.fromhex(path.read_text().strip()))
    except FileNotFoundError:
        raise UsageError(f"no ephemeral key for request {request_id} in {keys_dir} (fetch must run "
                         "where the request was made; the key is deleted once the request is "
                         "completed, denied or expired)") from None


def forget_ephemeral_key(keys_dir: Path, request_id: int) -> bool:
    """Overwrite and delete a request's key file; whether there was one."""
    path = keys_dir / f"{request_id}.hpke"
    try:
        with open(path, "r+b") as f:  # best effort: the file system may keep old blocks
            f.write(bytes(path.stat().st_size))
            f.flush()
            os.fsync(f.fileno())
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def prune_ephemeral_keys(chain: ShardKeyChain, keys_dir: Path, only: int | None = None) -> list[int]:
    """Delete the keys of requests that can no longer be served; returns their ids.

    With the deliveries public on chain, a kept key would open every fragment later. A key
    goes once its request is completed or denied, once its approval window is over (chain
    time), or when the request under its id has another ephemeral key (the id was reused
    after a reorg). An id the chain does not know (yet) is kept.
    """
    ids = [only] if only is not None else sorted(
        int(p.stem) for p in keys_dir.glob("*.hpke") if p.stem.isdigit())
    now: int | None = None
    gone: list[int] = []
    known = chain.retrievals.request_count() if ids else 0
    for request_id in ids:
        try:
            key = load_ephemeral_key(keys_dir, request_id)
        except (UsageError, ValueError, CryptoError):
            continue  # not a key file this code wrote: leave it
        if request_id > known:
            continue
        info = chain.retrievals.request(request_id)
        done = info.status in (RequestStatus.COMPLETED, RequestStatus.DENIED)
        if not done and info.status == RequestStatus.APPROVED:
            now = chain.client.latest_timestamp() if now is None else now
            done = now > info.deadline
        if done or info.ephemeral_key_hash != keccak(key.public_key_bytes()):
            forget_ephemeral_key(keys_dir, request_id)
            gone.append(request_id)
    return gone

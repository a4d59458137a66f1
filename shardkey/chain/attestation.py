"""A request's location attestation as the chain recorded it, and the verdict on it.

The one place that reads attestations (KOS, holders and the CLI pre-flight all use it):

- :func:`parse_attestation` is the one parser of the ``LocationAttestation`` tuple;
- :func:`find_requested` reads a request's ``RetrievalRequested`` event, matched by
  :func:`~shardkey.chain.model.request_origin` (a reorg can give the id to another
  request), in the blocks whose timestamp is the request's ``requestedAt`` (found by
  bisection), falling back to the whole range from the deployment block;
- :func:`ephemeral_key` gives the request's ephemeral HPKE public key from that event
  (the contract stores only its keccak256): a key that does not hash to the stored value
  is never returned;
- :func:`signature_valid` decides the signature exactly as OpenZeppelin's
  ``SignatureChecker.isValidSignatureNow`` does: an attestor without code by ECDSA
  recovery of the EIP-712 digest (65 bytes, low ``s``, ``v`` 27/28), an attestor with code
  by calling its ``isValidSignature(digest, sig)`` (EIP-1271) and requiring the magic
  value. The EIP-1271 call is made at the block the decision is taken at (``latest`` by
  default, the block whose time is the caller's ``now``): a contract signature is
  revocable, and a wallet that withdraws it (a rotated, compromised key) stops releases;
  it also needs no archive state;
- an attestation counts as absent when the attestor is the zero address or the signature
  is empty (the contract's rule).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_abi.abi import encode as abi_encode
from eth_keys.datatypes import Signature
from eth_utils.crypto import keccak

from shardkey.chain import eip712
from shardkey.chain.codec import ZERO_ADDRESS, checksum
from shardkey.chain.errors import ChainError
from shardkey.chain.events import ChainEvent
from shardkey.chain.model import RequestInfo, RequestOrigin, request_origin
from shardkey.chain.rpc import RpcError, data_bytes
from shardkey.policy.context import Attestation

if TYPE_CHECKING:  # bindings imports the committee, which imports ecdsa_signer from here
    from shardkey.chain.bindings import ShardKeyChain

FIELDS = ("requester", "latE6", "lonE6", "accuracyM", "issuedAt", "nonce")
ERC1271_MAGIC = bytes.fromhex("1626ba7e")
_SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
CACHE_SIZE = 4096


@dataclass(frozen=True)
class AttestationFields:
    """The ``LocationAttestation`` struct."""

    requester: str
    lat_e6: int
    lon_e6: int
    accuracy_m: int
    issued_at: int
    nonce: bytes

    def message(self) -> dict[str, Any]:
        """The EIP-712 message."""
        return eip712.attestation_message(self.requester, self.lat_e6, self.lon_e6, self.accuracy_m,
                                          self.issued_at, self.nonce)


def parse_attestation(raw: Any) -> AttestationFields:
    """The struct from an event argument or call result (a mapping by name, or a tuple)."""
    values = [raw[n] for n in FIELDS] if isinstance(raw, Mapping) else list(raw)
    if len(values) != len(FIELDS):
        raise ChainError(f"LocationAttestation has {len(FIELDS)} fields, not {len(values)}")
    return AttestationFields(checksum(values[0]), int(values[1]), int(values[2]), int(values[3]),
                             int(values[4]), bytes(values[5]))


@dataclass(frozen=True)
class RequestedRecord:
    """What a ``RetrievalRequested`` event says about the attestation and key given."""

    attestor: str
    fields: AttestationFields
    signature: bytes  # attestationSig, as the event recorded it
    origin: RequestOrigin
    ephemeral_key: bytes  # as the event recorded it; origin[2] is its keccak256

    @property
    def given(self) -> bool:
        """False when the request carried no attestation (zero attestor or empty signature)."""
        return self.attestor != ZERO_ADDRESS and self.signature != b""


def record_from_event(args: Mapping[str, Any]) -> RequestedRecord:
    """The record of a ``RetrievalRequested`` event's arguments."""
    return RequestedRecord(checksum(args["attestor"]), parse_attestation(args["attestation"]),
                           bytes(args["attestationSig"]), request_origin(args),
                           bytes(args["ephemeralKey"]))


def ephemeral_key(record: RequestedRecord, req: RequestInfo) -> bytes:
    """The ephemeral key of ``record`` if it is the key ``req`` stores the hash of.

    Raises :class:`ChainError` otherwise (the record is another request's, or forged):
    a key that does not hash to the stored value is never used.
    """
    if keccak(record.ephemeral_key) != req.ephemeral_key_hash:
        raise ChainError(f"the RetrievalRequested key of request {req.request_id} does not hash to "
                         f"its stored ephemeralKeyHash 0x{req.ephemeral_key_hash.hex()}")
    return record.ephemeral_key


class RequestEventNotFound(ChainError):
    """No ``RetrievalRequested`` event describes the request as stored (from the start block)."""


def request_blocks(chain: ShardKeyChain, requested_at: int, from_block: int) -> tuple[int, int]:
    """The block range whose timestamp equals ``requested_at`` (where the request was mined)."""
    return chain.client.blocks_at(requested_at, from_block)


def find_requested(chain: ShardKeyChain, req: RequestInfo, from_block: int) -> RequestedRecord:
    """The ``RetrievalRequested`` record of ``req`` as stored now; raises :class:`ChainError`."""
    contract = chain.retrievals.contract
    first, last = request_blocks(chain, req.requested_at, from_block)
    for start, end in ((first, last), (from_block, None)):
        logs = contract.get_logs("RetrievalRequested", start, end if end is not None else "latest",
                                 requestId=req.request_id)
        matching = [e for e in logs if request_origin(e.args) == req.origin]
        if matching:
            return record_from_event(matching[-1].args)
    raise RequestEventNotFound(f"no RetrievalRequested event for request {req.request_id} as stored")


def ecdsa_signer(digest: bytes, signature: bytes) -> str | None:
    """OpenZeppelin's ``ECDSA.tryRecover``: the signer, or None on any error."""
    if len(signature) != 65:
        return None
    r, s, v = int.from_bytes(signature[:32]), int.from_bytes(signature[32:64]), signature[64]
    if s > _SECP256K1_HALF_N or v not in (27, 28):
        return None
    try:
        public = Signature(vrs=(v - 27, r, s)).recover_public_key_from_msg_hash(digest)
    except Exception:  # eth_keys' BadSignature / ValidationError: r or s out of range
        return None
    signer = checksum(public.to_checksum_address())
    return None if signer == ZERO_ADDRESS else signer


def _erc1271_valid(chain: ShardKeyChain, wallet: str, digest: bytes, signature: bytes,
                   block: int | str) -> bool:
    data = ERC1271_MAGIC + abi_encode(["bytes32", "bytes"], [digest, signature])
    tag = hex(block) if isinstance(block, int) else block
    try:
        result = data_bytes(chain.client.raw("eth_call", [{"to": wallet, "data": "0x" + data.hex()}, tag]))
    except RpcError:  # the wallet reverted: not a valid signature
        return False
    return len(result) >= 32 and result[:32] == ERC1271_MAGIC + bytes(28)


def signature_valid(chain: ShardKeyChain, attestor: str, fields: AttestationFields, signature: bytes,
                    block: int | str = "latest") -> bool:
    """Whether ``signature`` is the attestor's over the attestation (EOA or EIP-1271)."""
    digest = eip712.digest(chain.retrievals.domain, "LocationAttestation", fields.message())
    tag = hex(block) if isinstance(block, int) else block
    code = data_bytes(chain.client.raw("eth_getCode", [attestor, tag]))
    if not code:
        return ecdsa_signer(digest, signature) == attestor
    return _erc1271_valid(chain, attestor, digest, signature, block)


def digest_used(chain: ShardKeyChain, fields: AttestationFields) -> bool:
    """Whether the coordinator already consumed this attestation's digest (a replay)."""
    digest = eip712.digest(chain.retrievals.domain, "LocationAttestation", fields.message())
    return bool(chain.client.read(chain.retrievals.contract, "attestationUsed", digest))


def verdict(chain: ShardKeyChain, attestor: str, fields: AttestationFields, signature: bytes, *,
            replayed: bool = False, block: int | str = "latest") -> Attestation | None:
    """The attestation with the chain's verdict on its signature; None when none was given."""
    if attestor == ZERO_ADDRESS or signature == b"":
        return None
    return Attestation(requester=fields.requester, lat_e6=fields.lat_e6, lon_e6=fields.lon_e6,
                       accuracy_m=fields.accuracy_m, issued_at=fields.issued_at, nonce=fields.nonce,
                       attestor=attestor,
                       signature_valid=signature_valid(chain, attestor, fields, signature, block),
                       replayed=replayed)


class AttestationReader:
    """Reads (and caches) the ``RetrievalRequested`` record of requests for one chain
    (attestation and ephemeral key).

    The KOS feeds it the events its watcher sees (:meth:`remember`); anything else is read
    from the logs. A cached record that does not describe the request as stored now (a
    reorg gave its id to another request) is never used. The verdict is not cached: an
    EIP-1271 wallet can withdraw a signature.
    """

    def __init__(self, chain: ShardKeyChain, from_block: int) -> None:
        self._chain = chain
        self._from_block = from_block
        self._lock = threading.Lock()
        self._records: OrderedDict[int, RequestedRecord] = OrderedDict()

    def remember(self, event: ChainEvent) -> None:
        """Watcher handler of ``RetrievalRequested``: keep the record for later."""
        self._store(int(event.args["requestId"]), record_from_event(event.args))

    def _store(self, request_id: int, record: RequestedRecord) -> None:
        with self._lock:
            self._records[request_id] = record
            while len(self._records) > CACHE_SIZE:
                self._records.popitem(last=False)

    def record(self, req: RequestInfo) -> RequestedRecord:
        """The record of ``req`` (cached, else from the logs); raises :class:`ChainError`."""
        with self._lock:
            record = self._records.get(req.request_id)
        if record is not None and record.origin == req.origin:
            return record
        record = find_requested(self._chain, req, self._from_block)
        self._store(req.request_id, record)
        return record

    def ephemeral_key(self, req: RequestInfo) -> bytes:
        """The request's ephemeral HPKE public key, checked against its stored hash."""
        return ephemeral_key(self.record(req), req)

    def verdict(self, req: RequestInfo, block: int | str = "latest") -> Attestation | None:
        """The request's attestation and signature verdict (None when it gave none).

        Never a replay: the request consumed its own digest (a denied request is never
        released, whatever this says).
        """
        record = self.record(req)
        return verdict(self._chain, record.attestor, record.fields, record.signature, block=block)

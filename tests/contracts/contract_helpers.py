"""Helpers for the contract tests: struct builders, EIP-712 signing, Merkle proofs, reverts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from ape.exceptions import ContractLogicError, CustomError
from eth_abi import decode, encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes

ZERO = "0x0000000000000000000000000000000000000000"
ZERO32 = b"\x00" * 32
DAY = 86400

REASONS = {
    name: i
    for i, name in enumerate(
        [
            "None", "NotAllowedRequester", "TooEarly", "TooLate", "OutsideDailyWindow",
            "OutsideWeekdays", "MissingAttestation", "UntrustedAttestor",
            "BadAttestationSignature", "AttestationForOtherRequester", "StaleAttestation",
            "AttestationFromFuture", "AttestationReplayed", "OutsideRegions",
            "DatasetNotActive", "DatasetRevoked", "ApprovalExpired", "KosPolicyMismatch",
            "KosWrapKeyInvalid", "AttestationTooCoarse",
        ]
    )
}
# RequestStatus / DatasetStatus / HolderStatus enum values
REQ_NONE, REQ_PENDING, REQ_DENIED, REQ_APPROVED, REQ_COMPLETED = range(5)
DS_NONE, DS_PENDING, DS_ACTIVE, DS_REVOKED = range(4)
H_NONE, H_PENDING, H_ACTIVE, H_RETIRED, H_EXITING, H_FAILED = range(6)
PURPOSE_RETRIEVAL, PURPOSE_REDEAL = range(2)


def policy(**kw: Any) -> tuple:
    """A Policy tuple in struct order; defaults: anyone, any time, no geo, no groups."""
    d: dict[str, Any] = {
        "requesters": [], "notBefore": 0, "notAfter": 0, "dailyStartMinute": 0,
        "dailyEndMinute": 0, "weekdayMask": 0, "attestors": [], "maxAttestationAge": 0,
        "maxAccuracyM": 0, "circles": [], "polygons": [], "groups": [], "approvalWindow": 3600,
    }
    unknown = set(kw) - set(d)
    assert not unknown, unknown
    d.update(kw)
    return tuple(d.values())


def params(
    shard_holders: Sequence[Any],
    fragment_holders: Sequence[Any],
    *,
    k: int = 3,
    p: int = 2,
    shard_size: int = 1024,
    stripes: int = 2,
    threshold: int = 3,
    merkle_root: bytes | None = None,
    shard_count: int | None = None,
    length: int | None = None,
) -> tuple:
    """A DatasetParams tuple; by default `stripes` full stripes."""
    plaintext_length = stripes * k * shard_size if length is None else length
    count = stripes * (k + p) if shard_count is None else shard_count
    return (
        merkle_root if merkle_root is not None else keccak(b"root"),
        k, p, shard_size, plaintext_length, count, threshold,
        [str(a) for a in shard_holders], [str(a) for a in fragment_holders],
    )


def shard_hashes(n: int, seed: bytes = b"shard") -> list[bytes]:
    return [keccak(seed + i.to_bytes(4, "big")) for i in range(n)]


# ----- Merkle (docs/ARCHITECTURE.md: double-hashed indexed leaf, sorted pairs, odd promoted)


def merkle_leaf(index: int, sha: bytes) -> bytes:
    return keccak(keccak(encode(["uint256", "bytes32"], [index, sha])))


def _node(a: bytes, b: bytes) -> bytes:
    return keccak(min(a, b) + max(a, b))


def merkle_root_and_proofs(hashes: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    level = [merkle_leaf(i, h) for i, h in enumerate(hashes)]
    positions = list(range(len(level)))  # position of each leaf at the current level
    proofs: list[list[bytes]] = [[] for _ in hashes]
    while len(level) > 1:
        nxt = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        for leaf, pos in enumerate(positions):
            sib = pos ^ 1
            if sib < len(level):
                proofs[leaf].append(level[sib])
            positions[leaf] = pos // 2
        level = nxt
    return level[0], proofs


# ----- EIP-712


def domain(coordinator: Any, chain_id: int) -> dict[str, Any]:
    return {
        "name": "ShardKey", "version": "1", "chainId": chain_id,
        "verifyingContract": str(coordinator.address),
    }


APPROVAL_TYPES = {
    "Approval": [
        {"name": "requestId", "type": "uint256"},
        {"name": "datasetId", "type": "bytes32"},
        {"name": "requester", "type": "address"},
        {"name": "ephemeralKeyHash", "type": "bytes32"},
        {"name": "approver", "type": "address"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ]
}
ATTESTATION_TYPES = {
    "LocationAttestation": [
        {"name": "requester", "type": "address"},
        {"name": "latE6", "type": "int32"},
        {"name": "lonE6", "type": "int32"},
        {"name": "accuracyM", "type": "uint32"},
        {"name": "issuedAt", "type": "uint64"},
        {"name": "nonce", "type": "bytes32"},
    ]
}
RECEIPT_TYPES = {
    "ShardReceipt": [
        {"name": "datasetId", "type": "bytes32"},
        {"name": "shardIndex", "type": "uint32"},
        {"name": "ciphertextHash", "type": "bytes32"},
    ]
}
SERVED_TYPES = {
    "ShardServed": [
        {"name": "requestId", "type": "uint256"},
        {"name": "datasetId", "type": "bytes32"},
        {"name": "shardIndex", "type": "uint32"},
        {"name": "ciphertextHash", "type": "bytes32"},
    ]
}
FRAGMENT_WRONG, FRAGMENT_MISSING = 1, 2  # FragmentFailureKind


def approval_message(subject: Sequence[Any], approver: Any, nonce: int, deadline: int) -> dict[str, Any]:
    """The EIP-712 ``Approval`` message for an ``ApprovalSubject`` tuple."""
    rid, dataset_id, requester, key_hash = subject
    return {"requestId": rid, "datasetId": bytes(dataset_id), "requester": str(requester),
            "ephemeralKeyHash": bytes(key_hash), "approver": str(approver), "nonce": nonce,
            "deadline": deadline}


def typed_digest(dom: dict[str, Any], types: dict[str, Any], message: dict[str, Any]) -> bytes:
    signable = encode_typed_data(domain_data=dom, message_types=types, message_data=message)
    # EIP-191 version 0x01: keccak(0x19 0x01 domainSeparator structHash)
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def sign_typed(key: str, dom: dict[str, Any], types: dict[str, Any], msg: dict[str, Any]) -> bytes:
    signable = encode_typed_data(domain_data=dom, message_types=types, message_data=msg)
    return bytes(Account.sign_message(signable, key).signature)


def sign_digest(key: str, digest: bytes) -> bytes:
    return bytes(Account.unsafe_sign_hash(digest, key).signature)


def attestation(requester: Any, lat: int, lon: int, acc: int, issued_at: int, nonce: bytes) -> dict:
    return {
        "requester": str(requester), "latE6": lat, "lonE6": lon, "accuracyM": acc,
        "issuedAt": issued_at, "nonce": nonce,
    }


def att_tuple(a: dict) -> tuple:
    return (a["requester"], a["latE6"], a["lonE6"], a["accuracyM"], a["issuedAt"], a["nonce"])


EMPTY_ATT = (ZERO, 0, 0, 0, 0, ZERO32)


# ----- reverts


def _norm(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray, HexBytes)):
        return bytes(v)
    if isinstance(v, str) and v.startswith("0x") and len(v) == 42:
        return to_checksum_address(v)
    if hasattr(v, "address") and not isinstance(v, (str, bytes)):
        return to_checksum_address(str(v.address))
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    return v


_ERRORS: dict[bytes, tuple[str, list[str]]] = {}


def _error_table() -> dict[bytes, tuple[str, list[str]]]:
    """Selector -> (name, input types) over every compiled contract's ABI."""
    if not _ERRORS:
        from ape import project

        for name in ("HolderRegistry", "DatasetRegistry", "RetrievalCoordinator", "KosCommittee",
                     "TestERC1271Wallet"):
            for err in project.get_contract(name).contract_type.errors:
                types = [i.canonical_type for i in err.inputs]
                sig = f"{err.name}({','.join(types)})"
                _ERRORS[keccak(text=sig)[:4]] = (err.name, types)
    return _ERRORS


def _decode_data(data: bytes) -> tuple[str, list[Any]]:
    entry = _error_table().get(data[:4])
    assert entry is not None, f"not a known custom error: 0x{data.hex()}"
    name, types = entry
    return name, list(decode(types, data[4:]))


def decode_error(exc: ContractLogicError) -> tuple[str, list[Any]]:
    """The custom error's name and arguments of a reverted transaction."""
    assert isinstance(exc, CustomError), (
        f"not decoded as a custom error (use view_reverts for eth_call): {exc!r}"
    )
    return type(exc).__name__, list(exc.inputs.values())


def _assert_error(name: str, expected: Sequence[Any], actual_name: str, inputs: list[Any]) -> None:
    assert actual_name == name, f"expected {name}, got {actual_name}{inputs}"
    actual = [_norm(v) for v in inputs]
    exp = [_norm(v) for v in expected]
    assert actual == exp, f"{name}: expected {exp}, got {actual}"


def view_reverts(method: Any, args: Sequence[Any], name: str, *expected: Any) -> None:
    """Assert an eth_call of `method(*args)` reverts with custom error `name(*expected)`.

    ape decodes custom errors of reverted transactions, but for an eth_call it only gets
    anvil's message with the revert data as lossy text; web3 keeps the raw data.
    """
    from ape import chain

    calldata = method.encode_input(*args)
    try:
        chain.provider.web3.eth.call({"to": str(method.contract.address), "data": calldata})
    except Exception as exc:  # web3 ContractCustomError carries the raw revert data
        data = getattr(exc, "data", None)
        assert isinstance(data, str) and data.startswith("0x"), f"no revert data: {exc!r}"
        _assert_error(name, expected, *_decode_data(bytes(HexBytes(data))))
        return
    raise AssertionError(f"call did not revert (expected {name})")


@contextmanager
def reverts(name: str, *args: Any) -> Iterator[None]:
    """Assert the block reverts with custom error `name` and exactly `args` (in order)."""
    with pytest.raises(ContractLogicError) as info:
        yield
    _assert_error(name, args, *decode_error(info.value))

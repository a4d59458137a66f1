"""The ephemeral key of a request comes from its event, and only if it hashes to the stored hash."""

from __future__ import annotations

import pytest
from eth_utils.crypto import keccak

from shardkey.chain.attestation import RequestedRecord, ephemeral_key, parse_attestation
from shardkey.chain.errors import ChainError
from shardkey.chain.model import RequestInfo, RequestStatus, request_origin

REQUESTER = "0x" + "ab" * 20
ZERO = "0x" + "00" * 20


def _record(key: bytes) -> RequestedRecord:
    args = {"datasetId": b"d" * 32, "requester": REQUESTER, "ephemeralKey": key}
    return RequestedRecord(ZERO, parse_attestation((ZERO, 0, 0, 0, 0, bytes(32))), b"",
                           request_origin(args), key)


def _stored(key: bytes) -> RequestInfo:
    return RequestInfo(request_id=7, dataset_id=b"d" * 32, requester=_record(key).origin[1],
                       policy_version=1, status=RequestStatus.APPROVED, denial_reason=0, requested_at=1,
                       approved_at=1, deadline=2, tokens_issued=0, deliveries=0,
                       ephemeral_key_hash=keccak(key))


def test_the_event_key_is_used_when_it_hashes_to_the_stored_hash() -> None:
    key = b"k" * 1216
    assert _record(key).origin == _stored(key).origin  # the origin carries the hash, not the key
    assert ephemeral_key(_record(key), _stored(key)) == key


def test_a_key_that_does_not_hash_to_the_stored_hash_is_never_used() -> None:
    with pytest.raises(ChainError, match="does not hash to its stored ephemeralKeyHash"):
        ephemeral_key(_record(b"mallory" * 8), _stored(b"k" * 1216))

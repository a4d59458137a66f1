"""Client side of the holder HTTP API (see docs/HOLDER_API.md): signed uploads and
downloads over a few keep-alive connections per holder (:mod:`shardkey.client.transport`).

Every answer is capped, so a malicious holder cannot run a client out of memory: a shard
body at the exact ciphertext length its STREAM header and the dataset's shard size give
(docs/ARCHITECTURE.md "Shard encryption"), read straight into a buffer of that size; a
JSON answer or an error body at a small fixed size. An answer over its cap aborts that
request with :class:`HolderRequestError`, which a fetch counts as one failed shard among
the ``p`` the erasure code tolerates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from shardkey.chain.chaintime import ChainTime
from shardkey.client.transport import ERROR_BODY_CAP, LANES, Answer, HolderRequestError, Transport
from shardkey.crypto.stripe import stored_shard_length
from shardkey.httpauth import HEADER_RECEIPT, HEADER_SHARD_HASH, sign_request

__all__ = ["ERROR_BODY_CAP", "JSON_CAP", "RECEIPT_ENTRY_CAP", "HolderClient", "HolderRequestError",
           "ServedShard", "unready_holders"]

JSON_CAP = 64 * 1024  # bytes of a small JSON answer
RECEIPT_ENTRY_CAP = 512  # bytes per shard in a receipts answer (an entry is ~250)

Body = bytes | bytearray | memoryview


@dataclass(frozen=True)
class ServedShard:
    """A shard as a holder served it, with the holder's signed receipt: its EIP-712
    ``ShardServed(requestId, datasetId, shardIndex, sha256)`` signature for the request it was
    served under (empty if the holder sent none; checked before any proof is sent on chain).
    ``data`` is a view of the buffer the body was read into."""

    index: int
    data: memoryview
    sha256: bytes
    receipt: bytes


class HolderClient:
    """Signed requests from one account to one holder, ``lanes`` of them at once at most."""

    def __init__(self, address: str, endpoint: str, account: LocalAccount | None, clock: ChainTime,
                 timeout: float = 60.0, lanes: int = LANES):
        self.address = address
        self.endpoint = endpoint.rstrip("/")
        self.account = account
        self.clock = clock
        self.timeout = timeout
        self._transport = Transport(address, self.endpoint, timeout, lanes)

    def close(self) -> None:
        self._transport.close()

    def _call(self, method: str, path: str, body: Body = b"", body_sha256: bytes | None = None, *,
              cap: int, what: str, into: bytearray | None = None) -> Answer:
        """Send a signed request (signed again for a retry); an error status raises."""
        account = self.account
        if account is None:
            raise HolderRequestError(self.address, "signed requests need an account")

        def sign() -> dict[str, str]:
            return sign_request(account, self.address, method, path, body,  # type: ignore[arg-type]
                                self.clock.now(), body_sha256=body_sha256)

        answer = self._transport.request(method, path, body, sign, cap=cap, what=what, into=into)
        self._raise_for_status(answer)
        return answer

    def _raise_for_status(self, answer: Answer) -> None:
        if answer.status < 400:
            return
        if answer.body is None:
            detail = "(unreadable error answer)"
        else:
            text = bytes(answer.body)
            try:
                detail = str(json.loads(text).get("detail", text.decode(errors="replace")))
            except (ValueError, AttributeError):
                detail = text[:200].decode(errors="replace")
        raise HolderRequestError(self.address, f"HTTP {answer.status}: {detail}", answer.status)

    def put_shard(self, dataset_id: bytes, index: int, data: Body, sha256: bytes | None = None) -> None:
        """Stage one shard ciphertext (``sha256``: its digest, when the caller has it already)."""
        self._call("PUT", f"/v1/datasets/0x{dataset_id.hex()}/shards/{index}", data, sha256,
                   cap=JSON_CAP, what="upload answer")

    def put_bundle(self, dataset_id: bytes, wrapped: bytes, epoch: int = 1) -> None:
        """Stage this holder's wrapped fragment bundle (of fragment epoch ``epoch``: 1 at
        registration, later ones for a re-deal)."""
        path = "bundle" if epoch == 1 else f"bundles/{epoch}"
        self._call("PUT", f"/v1/datasets/0x{dataset_id.hex()}/{path}", wrapped, cap=JSON_CAP,
                   what="upload answer")

    def get_shard(self, dataset_id: bytes, index: int, request_id: int, shard_size: int,
                  into: bytearray | None = None) -> ServedShard:
        """Download one shard for an approved, open request; ``shard_size`` (the dataset's)
        caps the body at the exact length of a stored shard of that size (shard format v2:
        data ciphertexts and parity shards are all that long). ``into``: a buffer of at
        least that length to read it into (else a new one)."""
        answer = self._call("GET", f"/v1/datasets/0x{dataset_id.hex()}/shards/{index}?request={request_id}",
                            cap=stored_shard_length(shard_size), what=f"shard {index}", into=into)
        data = answer.body
        assert data is not None
        digest = hashlib.sha256(data).digest()
        claimed, receipt = answer.header(HEADER_SHARD_HASH), answer.header(HEADER_RECEIPT)
        if claimed and claimed.removeprefix("0x") != digest.hex():
            raise HolderRequestError(self.address, f"shard {index}: body does not match its hash header")
        return ServedShard(index=index, data=data, sha256=digest,
                           receipt=bytes.fromhex(receipt.removeprefix("0x")) if receipt else b"")

    def get_repair_shard(self, dataset_id: bytes, index: int, shard_size: int) -> bytes:
        """Read one shard for repair (signed by the owner or a repairer; docs/HOLDER_API.md)."""
        answer = self._call("GET", f"/v1/repair/datasets/0x{dataset_id.hex()}/shards/{index}",
                            cap=stored_shard_length(shard_size), what=f"shard {index}")
        return bytes(answer.body or b"")

    def put_repair_shard(self, dataset_id: bytes, index: int, data: Body, sha256: bytes) -> str:
        """Place a rebuilt shard on the holder it is assigned to; the holder checks it against
        its leaf and confirms the placement before answering (its ``status``)."""
        answer = self._call("PUT", f"/v1/repair/datasets/0x{dataset_id.hex()}/shards/{index}", data, sha256,
                            cap=JSON_CAP, what="repair answer")
        result = json.loads(bytes(answer.body or b""))
        return str(result.get("status", "")) if isinstance(result, dict) else ""

    def receipts(self, dataset_id: bytes, shard_count: int = 0) -> dict[str, object]:
        """The holder's custody receipts (``ShardReceipt``) of every shard it holds of a dataset
        (``shard_count``: how many it should hold, which sizes the cap on the answer)."""
        answer = self._transport.request("GET", f"/v1/datasets/0x{dataset_id.hex()}/receipts",
                                         cap=JSON_CAP + RECEIPT_ENTRY_CAP * shard_count, what="receipts")
        if answer.status >= 400:
            raise HolderRequestError(self.address, f"HTTP {answer.status}", answer.status)
        try:
            result = json.loads(bytes(answer.body or b""))
        except ValueError:
            raise HolderRequestError(self.address, "receipts answer is not JSON") from None
        if not isinstance(result, dict):
            raise HolderRequestError(self.address, "receipts answer is not a JSON object")
        return result


def unready_holders(endpoints: Mapping[str, str], timeout: float = 5.0) -> dict[str, str]:
    """Probe ``GET /v1/health`` of every holder (address -> endpoint) at once; address ->
    why, for those that do not answer 200 (unreachable, starting, lagging behind the chain).

    Callers that place data (repair targets, a re-deal's new set) choose among the others,
    so nothing is assigned on chain to a holder that cannot take it now.
    """
    def probe(address: str) -> str:
        transport = Transport(address, endpoints[address], timeout, lanes=1)
        try:
            answer = transport.request("GET", "/v1/health", cap=JSON_CAP, what="health answer")
        except HolderRequestError as exc:
            return exc.reason
        finally:
            transport.close()
        try:
            body = json.loads(bytes(answer.body or b""))
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        if answer.status == 200:
            if body.get("takes_data") is False:  # the agent has not yet seen a re-activation
                return f"takes no new data (it sees itself {body.get('holder_status')})"
            return ""
        reason = str(body.get("reason") or "")
        return f"health HTTP {answer.status}" + (f": {reason[:200]}" if reason else "")

    if not endpoints:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(endpoints))) as pool:
        answers = dict(zip(endpoints, pool.map(probe, endpoints), strict=True))
    return {address: why for address, why in answers.items() if why}

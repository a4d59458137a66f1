"""Client side of the holder HTTP API (see docs/HOLDER_API.md): signed uploads and
downloads over one keep-alive connection pool per holder.

Every answer is streamed and capped, so a malicious holder cannot run a client out of
memory: a shard body at the exact ciphertext length its STREAM header and the dataset's
shard size give (docs/ARCHITECTURE.md "Shard encryption"), a JSON answer or an error
body at a small fixed size. An answer over its cap aborts that request with
:class:`HolderRequestError`, which a fetch counts as one failed shard among the ``p``
the erasure code tolerates.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from eth_account.signers.local import LocalAccount

from shardkey.chain.chaintime import ChainTime
from shardkey.crypto.stripe import stored_shard_length
from shardkey.errors import ShardKeyError
from shardkey.httpauth import HEADER_RECEIPT, HEADER_SHARD_HASH, sign_request
from shardkey.netutil import tls_verify

_RETRIES = 2  # transport failures retried per request (a stale keep-alive connection)
ERROR_BODY_CAP = 4096  # bytes of an error answer read (the detail is shown truncated)
JSON_CAP = 64 * 1024  # bytes of a small JSON answer
RECEIPT_ENTRY_CAP = 512  # bytes per shard in a receipts answer (an entry is ~250)


class HolderRequestError(ShardKeyError):
    """A holder refused a request or could not be reached; names the holder."""

    def __init__(self, holder: str, message: str, status: int | None = None):
        self.holder = holder
        self.status = status
        super().__init__(f"holder {holder}: {message}")


@dataclass(frozen=True)
class ServedShard:
    """A shard as a holder served it, with the holder's signed receipt: its EIP-712
    ``ShardServed(requestId, datasetId, shardIndex, sha256)`` signature for the request it was
    served under (empty if the holder sent none; checked before any proof is sent on chain)."""

    index: int
    data: bytes
    sha256: bytes
    receipt: bytes


class HolderClient:
    """Signed requests from one account to one holder."""

    def __init__(self, address: str, endpoint: str, account: LocalAccount | None, clock: ChainTime,
                 timeout: float = 60.0):
        self.address = address
        self.endpoint = endpoint.rstrip("/")
        self.account = account
        self.clock = clock
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.endpoint, timeout=timeout, verify=tls_verify(self.endpoint),
                                  limits=httpx.Limits(max_connections=8, max_keepalive_connections=8))

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, body: bytes = b"",
              body_sha256: bytes | None = None) -> httpx.Response:
        """Send a signed request; return the response with its body still unread (the
        caller reads it with :meth:`_read_capped` or closes it)."""
        if self.account is None:
            raise HolderRequestError(self.address, "signed requests need an account")
        for attempt in range(_RETRIES + 1):
            headers = sign_request(self.account, self.address, method, path, body, self.clock.now(),
                                   body_sha256=body_sha256)
            try:
                request = self._http.build_request(method, path, content=body, headers=headers)
                response = self._http.send(request, stream=True)
                break
            except (httpx.RemoteProtocolError, httpx.ConnectError, httpx.WriteError) as exc:
                # A pooled keep-alive connection the holder closed while idle (uvicorn's
                # keep-alive timeout) fails on reuse before the request is processed: try
                # again on a fresh connection, freshly signed. Every call here is idempotent
                # (uploading identical content is a no-op, downloads only read).
                if attempt == _RETRIES:
                    reason = f"unreachable at {self.endpoint} ({exc.__class__.__name__})"
                    raise HolderRequestError(self.address, reason) from None
                time.sleep(0.05 * (attempt + 1))
            except httpx.HTTPError as exc:
                reason = f"unreachable at {self.endpoint} ({exc.__class__.__name__})"
                raise HolderRequestError(self.address, reason) from None
        self._raise_for_status(response)
        return response

    def _raise_for_status(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            text = self._read_capped(response, ERROR_BODY_CAP, "error answer", truncate=True)
            try:
                detail = str(json.loads(text).get("detail", text.decode(errors="replace")))
            except (ValueError, AttributeError):
                detail = text[:200].decode(errors="replace")
        except HolderRequestError:
            detail = "(unreadable error answer)"
        raise HolderRequestError(self.address, f"HTTP {response.status_code}: {detail}",
                                 response.status_code)

    def _read_capped(self, response: httpx.Response, limit: int, what: str,
                     truncate: bool = False) -> bytes:
        """Read a streamed body of at most ``limit`` bytes and close the response; a longer
        body aborts the read."""
        buffer = bytearray()
        deadline = time.monotonic() + self.timeout  # a holder dripping bytes is cut off too
        try:
            for chunk in response.iter_bytes():
                buffer += chunk
                if time.monotonic() > deadline:
                    raise HolderRequestError(self.address, f"{what} not received within "
                                             f"{self.timeout:.0f} s; download aborted")
                if len(buffer) > limit:
                    if truncate:
                        return bytes(buffer[:limit])
                    raise HolderRequestError(self.address, f"{what} longer than the {limit} bytes "
                                             "expected; download aborted")
        except httpx.HTTPError as exc:
            raise HolderRequestError(self.address, f"{what} interrupted "
                                     f"({exc.__class__.__name__})") from None
        finally:
            response.close()
        return bytes(buffer)

    def put_shard(self, dataset_id: bytes, index: int, data: bytes, sha256: bytes | None = None) -> None:
        """Stage one shard ciphertext (``sha256``: its digest, when the caller has it already)."""
        response = self._send("PUT", f"/v1/datasets/0x{dataset_id.hex()}/shards/{index}", data, sha256)
        self._read_capped(response, JSON_CAP, "upload answer")

    def put_bundle(self, dataset_id: bytes, wrapped: bytes, epoch: int = 1) -> None:
        """Stage this holder's wrapped fragment bundle (of fragment epoch ``epoch``: 1 at
        registration, later ones for a re-deal)."""
        path = "bundle" if epoch == 1 else f"bundles/{epoch}"
        response = self._send("PUT", f"/v1/datasets/0x{dataset_id.hex()}/{path}", wrapped)
        self._read_capped(response, JSON_CAP, "upload answer")

    def get_shard(self, dataset_id: bytes, index: int, request_id: int,
                  shard_size: int) -> ServedShard:
        """Download one shard for an approved, open request; ``shard_size`` (the dataset's)
        caps the body at the exact length of a stored shard of that size (shard format v2:
        data ciphertexts and parity shards are all that long)."""
        response = self._send("GET", f"/v1/datasets/0x{dataset_id.hex()}/shards/{index}?request={request_id}")
        receipt = response.headers.get(HEADER_RECEIPT, "")
        claimed = response.headers.get(HEADER_SHARD_HASH, "")
        data = self._read_capped(response, stored_shard_length(shard_size),
                                 f"shard {index}")
        digest = hashlib.sha256(data).digest()
        if claimed and claimed.removeprefix("0x") != digest.hex():
            raise HolderRequestError(self.address, f"shard {index}: body does not match its hash header")
        return ServedShard(index=index, data=data, sha256=digest,
                           receipt=bytes.fromhex(receipt.removeprefix("0x")) if receipt else b"")

    def get_repair_shard(self, dataset_id: bytes, index: int, shard_size: int) -> bytes:
        """Read one shard for repair (signed by the owner or a repairer; docs/HOLDER_API.md)."""
        response = self._send("GET", f"/v1/repair/datasets/0x{dataset_id.hex()}/shards/{index}")
        return self._read_capped(response, stored_shard_length(shard_size), f"shard {index}")

    def put_repair_shard(self, dataset_id: bytes, index: int, data: bytes, sha256: bytes) -> str:
        """Place a rebuilt shard on the holder it is assigned to; the holder checks it against
        its leaf and confirms the placement before answering (its ``status``)."""
        response = self._send("PUT", f"/v1/repair/datasets/0x{dataset_id.hex()}/shards/{index}", data, sha256)
        answer = json.loads(self._read_capped(response, JSON_CAP, "repair answer"))
        return str(answer.get("status", "")) if isinstance(answer, dict) else ""

    def receipts(self, dataset_id: bytes, shard_count: int = 0) -> dict[str, object]:
        """The holder's custody receipts (``ShardReceipt``) of every shard it holds of a dataset
        (``shard_count``: how many it should hold, which sizes the cap on the answer)."""
        try:
            response = self._http.send(
                self._http.build_request("GET", f"/v1/datasets/0x{dataset_id.hex()}/receipts"),
                stream=True)
        except httpx.HTTPError as exc:
            raise HolderRequestError(self.address, f"unreachable ({exc.__class__.__name__})") from None
        if response.status_code >= 400:
            response.close()
            raise HolderRequestError(self.address, f"HTTP {response.status_code}", response.status_code)
        text = self._read_capped(response, JSON_CAP + RECEIPT_ENTRY_CAP * shard_count, "receipts")
        try:
            result = json.loads(text)
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
    def probe(endpoint: str) -> str:
        try:
            response = httpx.get(f"{endpoint.rstrip('/')}/v1/health", timeout=timeout,
                                 verify=tls_verify(endpoint))
        except httpx.HTTPError as exc:
            return f"unreachable at {endpoint} ({exc.__class__.__name__})"
        try:
            body = response.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        if response.status_code == 200:
            if body.get("takes_data") is False:  # the agent has not yet seen a re-activation
                return f"takes no new data (it sees itself {body.get('holder_status')})"
            return ""
        reason = str(body.get("reason") or "")
        return f"health HTTP {response.status_code}" + (f": {reason[:200]}" if reason else "")

    if not endpoints:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(endpoints))) as pool:
        answers = dict(zip(endpoints, pool.map(probe, endpoints.values()), strict=True))
    return {address: why for address, why in answers.items() if why}

"""Client side of the holder HTTP API (see docs/HOLDER_API.md): signed uploads and
downloads over one keep-alive connection pool per holder."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from eth_account.signers.local import LocalAccount

from shardkey.errors import ShardKeyError
from shardkey.httpauth import HEADER_RECEIPT, HEADER_SHARD_HASH, sign_request
from shardkey.netutil import tls_verify

_RETRIES = 2  # transport failures retried per request (a stale keep-alive connection)


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


class ChainClock:
    """Chain time for signing requests: the latest block's timestamp plus elapsed host time
    since it was read, re-read every ``refresh`` seconds."""

    def __init__(self, read_chain_time: Callable[[], int], refresh: float = 30.0):
        self._read = read_chain_time
        self._refresh = refresh
        self._lock = threading.Lock()
        self._base: tuple[int, float] | None = None

    def now(self) -> int:
        with self._lock:
            if self._base is None or time.monotonic() - self._base[1] > self._refresh:
                self._base = (self._read(), time.monotonic())
            return self._base[0] + int(time.monotonic() - self._base[1])


class HolderClient:
    """Signed requests from one account to one holder."""

    def __init__(self, address: str, endpoint: str, account: LocalAccount | None, clock: ChainClock,
                 timeout: float = 60.0):
        self.address = address
        self.endpoint = endpoint.rstrip("/")
        self.account = account
        self.clock = clock
        self._http = httpx.Client(base_url=self.endpoint, timeout=timeout, verify=tls_verify(self.endpoint),
                                  limits=httpx.Limits(max_connections=8, max_keepalive_connections=8))

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, body: bytes = b"",
              body_sha256: bytes | None = None) -> httpx.Response:
        if self.account is None:
            raise HolderRequestError(self.address, "signed requests need an account")
        for attempt in range(_RETRIES + 1):
            headers = sign_request(self.account, self.address, method, path, body, self.clock.now(),
                                   body_sha256=body_sha256)
            try:
                response = self._http.request(method, path, content=body, headers=headers)
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
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text[:200]
            raise HolderRequestError(self.address, f"HTTP {response.status_code}: {detail}",
                                     response.status_code)
        return response

    def put_shard(self, dataset_id: bytes, index: int, data: bytes, sha256: bytes | None = None) -> None:
        """Stage one shard ciphertext (``sha256``: its digest, when the caller has it already)."""
        self._send("PUT", f"/v1/datasets/0x{dataset_id.hex()}/shards/{index}", data, sha256)

    def put_bundle(self, dataset_id: bytes, wrapped: bytes) -> None:
        """Stage this holder's wrapped fragment bundle."""
        self._send("PUT", f"/v1/datasets/0x{dataset_id.hex()}/bundle", wrapped)

    def get_shard(self, dataset_id: bytes, index: int, request_id: int) -> ServedShard:
        """Download one shard for an approved, open request."""
        response = self._send("GET", f"/v1/datasets/0x{dataset_id.hex()}/shards/{index}?request={request_id}")
        data = response.content
        receipt = response.headers.get(HEADER_RECEIPT, "")
        claimed = response.headers.get(HEADER_SHARD_HASH, "")
        digest = hashlib.sha256(data).digest()
        if claimed and claimed.removeprefix("0x") != digest.hex():
            raise HolderRequestError(self.address, f"shard {index}: body does not match its hash header")
        return ServedShard(index=index, data=data, sha256=digest,
                           receipt=bytes.fromhex(receipt.removeprefix("0x")) if receipt else b"")

    def receipts(self, dataset_id: bytes) -> dict[str, object]:
        """The holder's custody receipts (``ShardReceipt``) of every shard it holds of a dataset."""
        try:
            response = self._http.get(f"/v1/datasets/0x{dataset_id.hex()}/receipts")
        except httpx.HTTPError as exc:
            raise HolderRequestError(self.address, f"unreachable ({exc.__class__.__name__})") from None
        if response.status_code >= 400:
            raise HolderRequestError(self.address, f"HTTP {response.status_code}", response.status_code)
        result: dict[str, object] = response.json()
        return result

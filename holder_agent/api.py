"""The holder's HTTP API (Starlette). Described in docs/HOLDER_API.md and at /openapi.json.

Every refusal is ``{"error": code, "detail": reason}`` with a 4xx status (503 when the
chain cannot be reached); a 500 means a bug and is logged with its traceback. Path
parameters are validated (:func:`parse_dataset_id`, :func:`parse_shard_index`) before
anything touches the disk or the chain. Blocking work (chain calls, signature
recovery, hashing, fsync) runs in worker threads, in as few hops as the request allows:
an upload makes two (signature, nonce and staging reservation before the body; seal and
commit after it), a download one (authorisation, receipt and the read of the shard).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from anyio import to_thread
from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.schemas import SchemaGenerator

from holder_agent import openapi
from holder_agent.auth import ChainTime, verify_headers
from holder_agent.errors import (
    ApiError,
    BodyMismatchError,
    CapacityExceededError,
    ContentConflictError,
    InvalidNameError,
    PayloadTooLargeError,
    QuotaExceededError,
    StagingFullError,
    StorageError,
)
from holder_agent.leaving import Leaving
from holder_agent.placement import PlacementCache
from holder_agent.receipts import ServedSigner, ShardDigests
from holder_agent.storage import (
    BUNDLE,
    Item,
    Store,
    Upload,
    bundle_item,
    parse_dataset_id,
    parse_shard_index,
)
from shardkey.chain import eip712
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.errors import ChainError, TransactionReverted
from shardkey.chain.model import DatasetInfo, DatasetStatus, RequestInfo, RequestStatus
from shardkey.httpauth import (
    HEADER_RECEIPT,
    HEADER_SHARD_HASH,
    AuthError,
    NonceCache,
    SignedRequest,
    verify_request,
)
from shardkey.ratelimit import RateLimiter
from shardkey.service.health import WatchHealth, judge
from shardkey.service.metrics import HolderMetrics
from shardkey.service.monitor import health_response, metrics_response

log = logging.getLogger(__name__)

_REQUEST_ID_RE = re.compile(r"[0-9]{1,78}")
# A shard of at most WHOLE_READ bytes (every shard the client makes: 1 MiB by default) is
# read whole in the download's one worker-thread hop and sent as a plain Response: memory
# per download in flight is one shard, at most WHOLE_READ bytes, and downloads in flight
# are bounded by open connections (HTTP/1.1: one request at a time per connection), so a
# holder holds at most connections x WHOLE_READ bytes of response bodies. A larger file
# (a shard of a dataset built with --shard-size above it) streams in 1 MiB reads, each a
# hop, as every shard did before (docs/PERFORMANCE.md).
WHOLE_READ = 4 << 20
_STREAM_CHUNK = 1 << 20
# Downloads judge a request against the chain head read at most this often (seconds of
# host monotonic time; ChainTime, shared with the signature clock), and a request's chain
# state is kept only for the block it was read at: a request completed, expired or revoked
# at block B is refused by every download that starts HEAD_MAX_AGE after the holder's
# node has B (plus one head read). docs/HOLDER_API.md, docs/THREAT_MODEL.md.
HEAD_MAX_AGE = 0.25
# A download about to be refused for a state the chain may have moved past since the cached
# head (a request just approved, a dataset just activated, a shard just placed here) is
# judged again on a head at most this old: the cache never refuses what the chain allows,
# and refusals cost at most one head read per REFUSAL_HEAD_AGE, however many arrive.
REFUSAL_HEAD_AGE = 0.02
_STALE_REFUSALS = frozenset({"unknown_request", "request_not_open", "dataset_not_active", "not_held"})
REPAIR_READS = 10_000  # shards one repairer may read per hour of chain time
_STORAGE_STATUS: list[tuple[type[StorageError], int, str]] = [
    (InvalidNameError, 400, "bad_name"), (PayloadTooLargeError, 413, "too_large"),
    (BodyMismatchError, 400, "body_mismatch"), (StagingFullError, 507, "staging_full"),
    (QuotaExceededError, 507, "quota_exceeded"), (CapacityExceededError, 507, "capacity_exceeded"),
    (ContentConflictError, 409, "conflict")]


@dataclass
class ApiContext:
    """What the endpoints need: the chain, this holder's account, its storage."""

    chain: ShardKeyChain
    account: LocalAccount
    store: Store
    clock: ChainTime
    nonces: NonceCache
    max_body_bytes: int
    downloads: DownloadCache = field(default_factory=lambda: DownloadCache())
    placements: PlacementCache = field(default_factory=PlacementCache)
    repair_reads: RateLimiter = field(default_factory=lambda: RateLimiter(REPAIR_READS, 3600))
    digests: ShardDigests = field(default_factory=ShardDigests)
    metrics: HolderMetrics = field(default_factory=HolderMetrics)
    health: WatchHealth = field(default_factory=WatchHealth)
    confirmations: int = 1
    cursor_block: Callable[[], int] = lambda: 0
    leaving: Leaving | None = None  # the exit check: uploads refused while leaving
    _served: ServedSigner | None = None

    @property
    def served(self) -> ServedSigner:
        """The signer of this holder's ``ShardServed`` receipts."""
        if self._served is None:
            self._served = ServedSigner(self.chain.retrievals.domain, self.account)
        return self._served

    @property
    def address(self) -> str:
        """This holder's address."""
        return str(self.account.address)


class DownloadCache:
    """What serving a shard reads, kept so a fetch does not cost chain calls per shard.

    - A request's requester and dataset, and an Active dataset's parameters (placement,
      shard count), and ``isOpen``: all kept only for the block they were read at. The
      block is the shared chain head (:class:`ChainTime`, re-read at most every
      ``HEAD_MAX_AGE`` seconds), and they are read again on a new block. Request ids are
      sequential, so a reorg can give an id to another request (another requester):
      nothing read about a request id outlives its block.

    Shard digests are kept by :class:`holder_agent.receipts.ShardDigests`.
    """

    MAX_ENTRIES = 4096
    _GUARDS = 64

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._views: dict[int, tuple[int, RequestInfo, DatasetInfo]] = {}
        self._open: dict[int, tuple[int, bool]] = {}
        self._guards = [threading.Lock() for _ in range(self._GUARDS)]

    def guard(self, request_id: int) -> threading.Lock:
        """Held while a request's state is read, so the downloads of one request that all miss
        on a new block share one set of chain reads instead of each making its own."""
        return self._guards[request_id % self._GUARDS]

    def view(self, request_id: int, block: int) -> tuple[RequestInfo, DatasetInfo] | None:
        with self._lock:
            hit = self._views.get(request_id)
        return (hit[1], hit[2]) if hit is not None and hit[0] == block else None

    def keep_view(self, request_id: int, block: int, info: RequestInfo, dataset: DatasetInfo) -> None:
        """Keep, for this block, a request whose dataset was Active."""
        with self._lock:
            if len(self._views) >= self.MAX_ENTRIES:
                self._views.clear()
            self._views[request_id] = (block, info, dataset)

    def is_open(self, request_id: int, block: int) -> bool | None:
        with self._lock:
            hit = self._open.get(request_id)
        return hit[1] if hit is not None and hit[0] == block else None

    def keep_open(self, request_id: int, block: int, is_open: bool) -> None:
        with self._lock:
            if len(self._open) >= self.MAX_ENTRIES:
                self._open.clear()
            self._open[request_id] = (block, is_open)


def error_response(status: int, code: str, detail: str) -> JSONResponse:
    """The one error body of the API."""
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


Endpoint = Callable[[Request], Awaitable[Response]]


def _guarded(fn: Callable[[ApiContext, Request], Awaitable[Response]],
             ctx: ApiContext) -> Endpoint:
    """Map every expected failure to its status; anything else is a logged 500."""
    @functools.wraps(fn)
    async def endpoint(request: Request) -> Response:
        try:
            return await fn(ctx, request)
        except Exception as exc:
            return error_response(*refusal_of(exc, request.url.path))
    return endpoint


def refusal_of(exc: Exception, path: str) -> tuple[int, str, str]:
    """The status, error code and detail an endpoint's failure is answered with (the one
    mapping of the API and of the data plane); a chain outage is logged, and anything
    unexpected with its traceback (500)."""
    if isinstance(exc, ApiError):
        return exc.status, exc.code, exc.detail
    if isinstance(exc, AuthError):
        return 401, "unauthorized", str(exc)
    if isinstance(exc, StorageError):
        for kind, status, code in _STORAGE_STATUS:
            if isinstance(exc, kind):
                return status, code, str(exc)
    elif isinstance(exc, ChainError):
        log.warning("chain unavailable", extra={"fields": {"detail": str(exc)}})
        return 503, "chain_unavailable", "the chain could not be reached"
    elif isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        log.error("disk full", extra={"fields": {"path": path, "detail": exc.strerror}})
        return 507, "disk_full", "the holder's disk is full"
    log.error("unexpected error", exc_info=exc, extra={"fields": {"path": path}})
    return 500, "internal", "internal error (logged)"


def _signed_path(request: Request) -> str:
    """The request target as the client signed it: raw path plus query string."""
    raw = request.scope.get("raw_path") or request.scope["path"].encode()
    path = bytes(raw).decode("latin-1")
    query = bytes(request.scope.get("query_string", b"")).decode("latin-1")
    return f"{path}?{query}" if query else path


def _path_ids(request: Request, with_index: bool) -> tuple[bytes, int | None]:
    dataset_id = parse_dataset_id(request.path_params["dataset_id"])
    index = parse_shard_index(request.path_params["index"]) if with_index else None
    return dataset_id, index


# --- endpoints ----------------------------------------------------------------


async def health(ctx: ApiContext, request: Request) -> Response:
    """Health, identity and storage of this holder.
    ---
    summary: Health
    description: >-
      The holder's account address, the chain id it watches, whether its event watcher
      keeps up (503 with a reason when the last successful chain poll is older than
      health_max_poll_age seconds or the cursor is more than health_max_lag_blocks blocks
      behind the head less the confirmation depth), its storage (bytes used,
      allocated, free for uploads), and its on-chain status as the agent last saw it
      (holder_status; takes_data is false while Exiting, Failed or Retired).
    responses:
      200:
        description: The agent is up and its watcher keeps up.
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Health"}
      503:
        description: The watcher lags or is stuck (same body, status unhealthy, a reason).
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Health"}
    """
    healthy, body = await to_thread.run_sync(health_status, ctx)
    return health_response(healthy, body)


def health_status(ctx: ApiContext) -> tuple[bool, dict[str, object]]:
    """The health verdict and body; refreshes the lag and storage gauges (blocking)."""
    verdict = judge(ctx.health, ctx.chain.client.block_number, ctx.confirmations, ctx.cursor_block(),
                    time.monotonic())
    storage = ctx.store.capacity()
    ctx.metrics.watcher_lag.set(verdict.lag_blocks)
    ctx.metrics.bytes_stored.set(storage["stored"] or 0)
    ctx.metrics.bytes_staged.set(storage["staged"] or 0)
    body: dict[str, object] = {**verdict.as_json(), "address": ctx.address,
                               "chain_id": ctx.chain.client.chain_id,
                               "storage": {k: storage[k] for k in ("used", "allocated", "free")}}
    if ctx.leaving is not None:  # what the agent last saw of its own status (checked every 5 s)
        seen = ctx.leaving.status
        body["holder_status"] = seen.name.lower() if seen is not None else None
        body["takes_data"] = ctx.leaving.refusal is None
    return verdict.healthy, body


async def metrics(ctx: ApiContext, request: Request) -> Response:
    """Prometheus metrics of this holder.
    ---
    summary: Metrics
    description: >-
      Prometheus text exposition: watcher lag, events handled, deliveries, uploads,
      bytes stored and staged, RPC errors.
    responses:
      200:
        description: The metrics.
        content: {text/plain: {schema: {type: string}}}
    """
    await to_thread.run_sync(health_status, ctx)
    return metrics_response(ctx.metrics)


async def put_shard(ctx: ApiContext, request: Request) -> Response:
    """Stage one shard ciphertext (signed by the uploading owner).
    ---
    summary: Upload a shard
    description: >-
      The signature (over the declared body SHA-256 and length) is checked before the
      body is read; the signer is charged the declared size (at least the minimum
      charge) against its quota and the global staging cap; the body is streamed into
      the signer's staging area and refused (400 body_mismatch, nothing kept) when it
      differs from the declaration. Staged data becomes custody when a registration by
      the same account names this holder and the SHA-256 matches the on-chain shard
      hash. Re-uploading identical content is a no-op.
    parameters: [{$ref: "#/components/parameters/DatasetId"}, {$ref: "#/components/parameters/ShardIndex"}]
    requestBody:
      required: true
      content: {application/octet-stream: {schema: {type: string, format: binary}}}
    responses:
      201: {$ref: "#/components/responses/Uploaded"}
      400: {$ref: "#/components/responses/Error"}
      401: {$ref: "#/components/responses/Error"}
      409: {$ref: "#/components/responses/Error"}
      413: {$ref: "#/components/responses/Error"}
      507: {$ref: "#/components/responses/Error"}
    security: [{ShardKeySignature: []}]
    """
    dataset_id, index = _path_ids(request, with_index=True)
    assert index is not None
    return await _upload(ctx, request, dataset_id, index)


async def put_bundle(ctx: ApiContext, request: Request) -> Response:
    """Stage this holder's wrapped fragment bundle (signed by the uploading owner).
    ---
    summary: Upload the wrapped fragment bundle
    description: Same rules as a shard upload; the bundle opens only with a wrap key the committee released.
    parameters: [{$ref: "#/components/parameters/DatasetId"}]
    requestBody:
      required: true
      content: {application/octet-stream: {schema: {type: string, format: binary}}}
    responses:
      201: {$ref: "#/components/responses/Uploaded"}
      400: {$ref: "#/components/responses/Error"}
      401: {$ref: "#/components/responses/Error"}
      409: {$ref: "#/components/responses/Error"}
      413: {$ref: "#/components/responses/Error"}
      507: {$ref: "#/components/responses/Error"}
    security: [{ShardKeySignature: []}]
    """
    dataset_id, _ = _path_ids(request, with_index=False)
    return await _upload(ctx, request, dataset_id, BUNDLE)


async def put_epoch_bundle(ctx: ApiContext, request: Request) -> Response:
    """Stage this holder's wrapped bundle of a re-dealt fragment epoch (signed by the owner).
    ---
    summary: Upload the wrapped fragment bundle of a re-deal
    description: >-
      As the registration's bundle, for fragment epoch `epoch` (2 or more); custody is taken
      when FragmentsRedealt names this holder for that epoch, then confirmed on chain.
    parameters:
      - {$ref: "#/components/parameters/DatasetId"}
      - {name: epoch, in: path, required: true, schema: {type: integer, minimum: 2}}
    requestBody:
      required: true
      content: {application/octet-stream: {schema: {type: string, format: binary}}}
    responses:
      201: {$ref: "#/components/responses/Uploaded"}
      400: {$ref: "#/components/responses/Error"}
      401: {$ref: "#/components/responses/Error"}
      409: {$ref: "#/components/responses/Error"}
      413: {$ref: "#/components/responses/Error"}
      507: {$ref: "#/components/responses/Error"}
    security: [{ShardKeySignature: []}]
    """
    dataset_id, _ = _path_ids(request, with_index=False)
    text = request.path_params["epoch"]
    if not text.isascii() or not text.isdigit() or len(text) > 10 or int(text) < 2:
        raise ApiError(400, "bad_epoch", "the fragment epoch of a re-deal is an integer of 2 or more "
                       "(epoch 1's bundle goes to /bundle)")
    return await _upload(ctx, request, dataset_id, bundle_item(int(text)))


async def _upload(ctx: ApiContext, request: Request, dataset_id: bytes, item: Item) -> Response:
    # The signature covers the declared body (hash and length), so it is checked, and the
    # nonce spent, before a body byte is read: a request nobody signed costs no disk and
    # no one's quota; the verified signer is charged the declared size up front.
    check_accepting(ctx)
    begin = verify_upload(ctx, request)

    def verify_and_begin() -> tuple[SignedRequest, Upload]:
        signed = begin()
        return signed, begin_upload(ctx, signed, dataset_id, item)

    signed, upload = await to_thread.run_sync(verify_and_begin)
    staged, size, digest = await receive(ctx, request, upload, dataset_id, item)
    return JSONResponse(uploaded(signed, dataset_id, item, staged, size, digest), status_code=201)


def check_accepting(ctx: ApiContext) -> None:
    """Refuse an upload while this holder is leaving (Exiting or Failed)."""
    refusal = ctx.leaving.refusal if ctx.leaving is not None else None
    if refusal is not None:
        raise ApiError(403, f"holder_{refusal}", f"this holder is {refusal}: it takes no new data "
                       "(it still serves what it holds); upload to an Active holder")


def uploaded(signed: SignedRequest, dataset_id: bytes, item: Item, staged: bool, size: int,
             digest: bytes) -> dict[str, object]:
    """The answer to an accepted upload (logged at DEBUG: one line per shard is too many)."""
    what = item if isinstance(item, str) else f"shard {item}"
    log.debug("upload staged" if staged else "upload already committed", extra={"fields": {
        "dataset": "0x" + dataset_id.hex(), "item": what, "uploader": signed.signer, "size": size}})
    return {"dataset_id": "0x" + dataset_id.hex(), "item": what, "size": size,
            "sha256": digest.hex(), "status": "staged" if staged else "committed"}


def verify_upload_headers(ctx: ApiContext, headers: dict[str, str], path: str, method: str,
                          content_length: str | None) -> SignedRequest:
    """The upload's verified signature (nonce spent), its Content-Length matching the signed
    one (blocking: chain time, key recovery)."""
    signed = verify_headers(headers, ctx.address, method, path, ctx.clock.now(), ctx.nonces)
    declared = _content_length(content_length)
    if declared is not None and declared != signed.body_length:
        raise ApiError(400, "length_mismatch", f"Content-Length {declared} differs from the "
                       f"signed length {signed.body_length}")
    return signed


def verify_upload(ctx: ApiContext, request: Request) -> Callable[[], SignedRequest]:
    """:func:`verify_upload_headers` of ``request``, to run in a worker thread."""
    return functools.partial(verify_upload_headers, ctx, dict(request.headers), _signed_path(request),
                             request.method, request.headers.get("content-length"))


def begin_upload(ctx: ApiContext, signed: SignedRequest, dataset_id: bytes, item: Item) -> Upload:
    """Reserve the declared body in the signer's staging (blocking)."""
    return ctx.store.begin_upload(signed.signer, dataset_id, item, ctx.max_body_bytes,
                                  signed.body_sha256, signed.body_length)


async def receive(ctx: ApiContext, request: Request, upload: Upload, dataset_id: bytes, item: Item,
                  then: Callable[[], None] | None = None) -> tuple[bool, int, bytes]:
    """Stream the body into ``upload`` on the event loop (no hop per chunk), then seal, commit
    and discard it, and run ``then``, in one worker-thread hop: (staged, or False when the
    same content is already committed; size; SHA-256)."""
    try:
        async for chunk in request.stream():
            if chunk:
                upload.write(chunk)
    except BaseException:
        upload.discard()  # an unlink; on the loop, so a cancelled request still drops its body
        raise

    return await to_thread.run_sync(finish_upload, ctx, upload, dataset_id, item, then)


def finish_upload(ctx: ApiContext, upload: Upload, dataset_id: bytes, item: Item,
                  then: Callable[[], None] | None = None) -> tuple[bool, int, bytes]:
    """Seal, commit and discard a received body, count it, run ``then`` (blocking): (staged,
    or False when the same content is already committed; size; SHA-256)."""
    try:
        upload.seal()
        staged = ctx.store.commit_upload(upload, dataset_id, item)
        size, digest = upload.size, upload.sha256
    finally:
        upload.discard()
    if staged:
        ctx.metrics.uploads.inc()
        ctx.metrics.bytes_received.inc(size)
    if then is not None:
        then()
    return staged, size, digest


def _content_length(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 20:
        raise ApiError(400, "bad_request", "Content-Length is not a number")
    return int(text)


async def get_shard(ctx: ApiContext, request: Request) -> Response:
    """Serve a committed shard to the requester of an open request, with a signed receipt.
    ---
    summary: Download a shard
    description: >-
      Served only when the request exists, was signed by its requester, is for this
      dataset and is open (approved, before its deadline, dataset not revoked), the
      dataset is Active, and the placement rule puts the shard at this holder.
      X-ShardKey-Receipt is the holder's EIP-712 ShardServed(requestId, datasetId,
      shardIndex, ciphertextHash) signature over the SHA-256 of the body, bound to the
      request it was served under.
    parameters:
      - {$ref: "#/components/parameters/DatasetId"}
      - {$ref: "#/components/parameters/ShardIndex"}
      - {name: request, in: query, required: true, schema: {type: string, pattern: "^[0-9]{1,78}$"}}
    responses:
      200:
        description: The shard ciphertext.
        headers:
          X-ShardKey-Shard-Sha256: {schema: {type: string}, description: hex SHA-256 of the body}
          X-ShardKey-Receipt: {schema: {type: string}, description: 0x EIP-712 signature}
        content: {application/octet-stream: {schema: {type: string, format: binary}}}
      400: {$ref: "#/components/responses/Error"}
      401: {$ref: "#/components/responses/Error"}
      403: {$ref: "#/components/responses/Error"}
      404: {$ref: "#/components/responses/Error"}
    security: [{ShardKeySignature: []}]
    """
    dataset_id, index = _path_ids(request, with_index=True)
    assert index is not None
    request_id = request_id_of(request.scope.get("query_string", b"").decode("latin-1"))
    digest, receipt, body = await to_thread.run_sync(
        serve_shard, ctx, dict(request.headers), _signed_path(request), dataset_id, index, request_id)
    log.debug("shard served", extra={"fields": {"dataset": "0x" + dataset_id.hex(), "index": index,
                                                "request": request_id}})
    return shard_response(ctx, body, {HEADER_SHARD_HASH: digest.hex(), HEADER_RECEIPT: "0x" + receipt.hex()})


def serve_shard(ctx: ApiContext, headers: dict[str, str], path: str, dataset_id: bytes, index: int,
                request_id: int) -> tuple[bytes, bytes, bytes | BinaryIO]:
    """Authorise, open, digest, sign the receipt and read the shard (blocking: one hop)."""
    _authorize_download(ctx, headers, path, dataset_id, index, request_id)
    handle = ctx.store.open_shard(dataset_id, index)
    if handle is None:
        raise ApiError(404, "not_held", f"shard {index} is not held here")
    try:
        digest, receipt = _served_receipt(ctx, handle, dataset_id, index, request_id)
        return digest, receipt, read_body(handle)
    except BaseException:
        handle.close()
        raise


def read_body(handle: BinaryIO) -> bytes | BinaryIO:
    """The whole file (closed) when it is at most ``WHOLE_READ`` bytes, else the open handle
    rewound, to stream (blocking)."""
    handle.seek(0)
    if os.fstat(handle.fileno()).st_size > WHOLE_READ:
        return handle
    with handle:
        return handle.read()


def shard_response(ctx: ApiContext, body: bytes | BinaryIO, headers: dict[str, str]) -> Response:
    """A served shard: a plain Response of the bytes read, or a stream of a large file; counted."""
    count_served(ctx, body)
    if isinstance(body, bytes):
        return Response(body, media_type="application/octet-stream", headers=headers)
    return StreamingResponse(_chunks(body), media_type="application/octet-stream", headers=headers,
                             background=BackgroundTask(body.close))


def count_served(ctx: ApiContext, body: bytes | BinaryIO) -> None:
    """Count one served shard and its bytes in /metrics."""
    ctx.metrics.shards_served.inc()
    ctx.metrics.bytes_served.inc(len(body) if isinstance(body, bytes) else os.fstat(body.fileno()).st_size)


def request_id_of(query: str) -> int:
    """The request id of a download's query string (exactly ``request=<decimal>``)."""
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    values = [value for name, value in pairs if name == "request"]
    if len(values) != 1 or len(pairs) != 1:
        raise ApiError(400, "bad_request", "exactly one query parameter 'request' is expected")
    if not values[0].isascii() or _REQUEST_ID_RE.fullmatch(values[0]) is None \
            or int(values[0]) >= 2**256:
        raise ApiError(400, "bad_request", "request must be a decimal request id")
    return int(values[0])


def _authorize_download(ctx: ApiContext, headers: dict[str, str], path: str, dataset_id: bytes,
                        index: int, request_id: int) -> None:
    """Signed by the requester of an open request for this dataset; shard placed here."""
    head = ctx.clock.head()  # chain time and the block the cache is keyed by: one shared read
    signer = verify_request(headers, ctx.address, "GET", path, b"", head.timestamp, ctx.nonces)
    try:
        _check_download(ctx, signer, dataset_id, index, request_id, head.number)
    except ApiError as exc:
        if exc.code not in _STALE_REFUSALS:
            raise
        fresh = ctx.clock.head(REFUSAL_HEAD_AGE)
        if fresh.number == head.number:
            raise
        _check_download(ctx, signer, dataset_id, index, request_id, fresh.number)


def _check_download(ctx: ApiContext, signer: str, dataset_id: bytes, index: int, request_id: int,
                    block: int) -> None:
    """The state checks of a download, on the chain as of ``block`` (cached per block)."""
    chain = ctx.chain
    with ctx.downloads.guard(request_id):
        cached = ctx.downloads.view(request_id, block)
        if cached is None:
            try:
                info = chain.retrievals.request(request_id)
            except TransactionReverted:
                raise ApiError(404, "unknown_request", f"no request {request_id}") from None
        else:
            info = cached[0]
        if info.status == RequestStatus.NONE:
            raise ApiError(404, "unknown_request", f"no request {request_id}")
        if info.requester != signer:
            raise ApiError(403, "not_requester", "the signer is not the request's requester")
        if info.dataset_id != dataset_id:
            raise ApiError(403, "wrong_dataset", "the request is for another dataset")
        is_open = ctx.downloads.is_open(request_id, block)
        if is_open is None:
            is_open = chain.retrievals.is_open(request_id)
            ctx.downloads.keep_open(request_id, block, is_open)
        if not is_open:
            if cached is not None:  # the status in the message must be the current one
                info = chain.retrievals.request(request_id)
            raise ApiError(403, "request_not_open", f"request {request_id} is {info.status.name.lower()}"
                           " or past its deadline, or the dataset was revoked")
        if cached is not None:
            dataset = cached[1]
        else:
            dataset = chain.datasets.dataset(dataset_id)
            if dataset.status == DatasetStatus.ACTIVE:
                ctx.downloads.keep_view(request_id, block, info, dataset)
        if dataset.status != DatasetStatus.ACTIVE:
            raise ApiError(403, "dataset_not_active", f"dataset is {dataset.status.name.lower()}")
    if index >= dataset.params.shard_count:
        raise ApiError(404, "unknown_shard", f"the dataset has {dataset.params.shard_count} shards")
    if ctx.placements.holder(chain, dataset_id, index, block) != ctx.address:
        raise ApiError(404, "not_held", f"shard {index} is placed at another holder")


def _served_receipt(ctx: ApiContext, handle: BinaryIO, dataset_id: bytes, index: int,
                    request_id: int) -> tuple[bytes, bytes]:
    """The shard's digest and this holder's ``ShardServed`` signature for ``request_id``."""
    digest = ctx.digests.digest((dataset_id, index), handle)
    return digest, ctx.served.sign(request_id, dataset_id, index, digest)


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    while chunk := handle.read(_STREAM_CHUNK):
        yield chunk


async def receipts(ctx: ApiContext, request: Request) -> Response:
    """Proof of possession: a hash and custody receipt of every committed shard.
    ---
    summary: Receipts of a dataset
    description: >-
      Public. Signs ShardReceipt(datasetId, index, sha256) for every committed shard of
      the dataset held here (a custody proof, never accepted on chain); says whether the
      bundle is held. Each file is re-read at most once per inode/size/mtime and per
      re-hash period (an hour), however many callers ask. A dataset with nothing here
      gives an empty list and bundle false.
    parameters: [{$ref: "#/components/parameters/DatasetId"}]
    responses:
      200:
        description: Receipts.
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Receipts"}
      400: {$ref: "#/components/responses/Error"}
    """
    dataset_id, _ = _path_ids(request, with_index=False)
    return JSONResponse(await to_thread.run_sync(_receipts, ctx, dataset_id))


def _receipts(ctx: ApiContext, dataset_id: bytes) -> dict[str, object]:
    shards = []
    for index in ctx.store.committed_shards(dataset_id):
        handle = ctx.store.open_shard(dataset_id, index)
        if handle is None:
            continue
        with handle:
            digest, signature = ctx.digests.custody((dataset_id, index), handle, functools.partial(
                _custody_signature, ctx, dataset_id, index))
        shards.append({"index": index, "sha256": digest.hex(), "signature": "0x" + signature.hex()})
    return {"dataset_id": "0x" + dataset_id.hex(), "holder": ctx.address, "shards": shards,
            "bundle": ctx.store.has_bundle(dataset_id),
            "bundle_epochs": ctx.store.committed_bundles(dataset_id)}


def _custody_signature(ctx: ApiContext, dataset_id: bytes, index: int, digest: bytes) -> bytes:
    message = eip712.receipt_message(dataset_id, index, digest)
    return eip712.sign(ctx.chain.retrievals.domain, "ShardReceipt", message, ctx.account)


# --- application ----------------------------------------------------------------


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "bad_request")
    return error_response(status, code, str(getattr(exc, "detail", "")) or code)


def repair_routes(ctx: ApiContext) -> list[BaseRoute]:
    """The repair read and upload (:mod:`holder_agent.repair`, which imports this module)."""
    from holder_agent.repair import get_repair_shard, put_repair_shard
    path = "/v1/repair/datasets/{dataset_id}/shards/{index}"
    return [Route(path, _guarded(get_repair_shard, ctx), methods=["GET"]),
            Route(path, _guarded(put_repair_shard, ctx), methods=["PUT"])]


def create_app(ctx: ApiContext) -> Starlette:
    """The Starlette application of one holder."""
    routes: list[BaseRoute] = [
        Route("/v1/health", _guarded(health, ctx), methods=["GET"]),
        Route("/metrics", _guarded(metrics, ctx), methods=["GET"]),
        Route("/v1/datasets/{dataset_id}/shards/{index}", _guarded(put_shard, ctx), methods=["PUT"]),
        Route("/v1/datasets/{dataset_id}/shards/{index}", _guarded(get_shard, ctx), methods=["GET"]),
        Route("/v1/datasets/{dataset_id}/bundle", _guarded(put_bundle, ctx), methods=["PUT"]),
        Route("/v1/datasets/{dataset_id}/bundles/{epoch}", _guarded(put_epoch_bundle, ctx), methods=["PUT"]),
        Route("/v1/datasets/{dataset_id}/receipts", _guarded(receipts, ctx), methods=["GET"]),
        *repair_routes(ctx),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    generator = SchemaGenerator(openapi.BASE)
    schema = openapi.document(generator.get_schema(routes=routes))

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(schema)

    app.add_route("/openapi.json", openapi_json, methods=["GET"], include_in_schema=False)
    return app

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

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import BinaryIO

from anyio import to_thread
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.schemas import SchemaGenerator

from holder_agent import openapi
from holder_agent.context import ApiContext
from holder_agent.errors import (
    ApiError,
)
from holder_agent.operations import (
    begin_upload,
    check_accepting,
    count_served,
    finish_upload,
    refusal_of,
    request_id_of,
    serve_shard,
    uploaded,
    verify_upload_headers,
)
from holder_agent.storage import (
    BUNDLE,
    Item,
    Upload,
    bundle_item,
    parse_dataset_id,
    parse_shard_index,
)
from shardkey.chain import eip712
from shardkey.httpauth import (
    HEADER_RECEIPT,
    HEADER_SHARD_HASH,
    SignedRequest,
)
from shardkey.service.health import judge
from shardkey.service.monitor import health_response, metrics_response

log = logging.getLogger(__name__)

_STREAM_CHUNK = 1 << 20


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


def verify_upload(ctx: ApiContext, request: Request) -> Callable[[], SignedRequest]:
    """:func:`verify_upload_headers` of ``request``, to run in a worker thread."""
    return functools.partial(verify_upload_headers, ctx, dict(request.headers), _signed_path(request),
                             request.method, request.headers.get("content-length"))


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


def shard_response(ctx: ApiContext, body: bytes | BinaryIO, headers: dict[str, str]) -> Response:
    """A served shard: a plain Response of the bytes read, or a stream of a large file; counted."""
    count_served(ctx, body)
    if isinstance(body, bytes):
        return Response(body, media_type="application/octet-stream", headers=headers)
    return StreamingResponse(_chunks(body), media_type="application/octet-stream", headers=headers,
                             background=BackgroundTask(body.close))


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

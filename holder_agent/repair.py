"""Repair endpoints of the holder agent: serve a shard to a repairer, take a rebuilt one.

Both are signed requests ("ShardKey HTTP v2", :mod:`shardkey.httpauth`) authorised on
chain; no key is involved, shards are ciphertext (docs/THREAT_MODEL.md, "Repair").

- ``GET /v1/repair/datasets/{id}/shards/{index}``: the signer is the dataset's owner or
  holds REPAIRER_ROLE, the dataset is Active, the placement map puts the shard here, and
  the stored copy matches its on-chain leaf. A copy that is missing or fails its leaf is
  answered 410 ``shard_lost`` and released on chain (``releaseShard``) so it becomes
  repairable. Reads are rate-limited per signer on chain time.
- ``PUT /v1/repair/datasets/{id}/shards/{index}``: signed by the owner or a repairer for a
  shard this holder is the pending holder of. The declared SHA-256 must equal the shard's
  leaf, and the registered Merkle root must commit to the published leaves, before a byte
  is read (422 ``leaf_mismatch``, nothing kept); the body streams under the usual staging
  limits and is refused when it differs from the declaration; it is then committed and
  ``confirmShardPlacement`` sent. A repeat after a crash finds the copy committed and
  confirms, or answers ``confirmed`` when the placement already moved here.
"""

from __future__ import annotations

import functools
import hmac
import logging
from typing import BinaryIO

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from holder_agent.api import _path_ids, _signed_path, receive, shard_response, verify_upload
from holder_agent.auth import verify_headers
from holder_agent.context import ApiContext
from holder_agent.errors import ApiError
from holder_agent.operations import begin_upload, read_body
from holder_agent.storage import Upload
from shardkey.chain.errors import TransactionReverted
from shardkey.chain.model import DatasetStatus, Registration
from shardkey.crypto.merkle import root_commits_to
from shardkey.httpauth import HEADER_SHARD_HASH, SignedRequest

log = logging.getLogger(__name__)


def _authorise(ctx: ApiContext, signed: SignedRequest, dataset_id: bytes, index: int,
               block: int) -> Registration:
    """The signer may repair this dataset, it is Active and ``index`` exists; its registration."""
    chain = ctx.chain
    dataset = chain.datasets.dataset(dataset_id)
    if dataset.status != DatasetStatus.ACTIVE:
        raise ApiError(403, "dataset_not_active", f"dataset is {dataset.status.name.lower()}")
    if signed.signer != dataset.owner and not chain.holders.is_repairer(signed.signer):
        raise ApiError(403, "not_repairer", "the signer is neither the dataset's owner nor holds "
                       "REPAIRER_ROLE")
    if index >= dataset.params.shard_count:
        raise ApiError(404, "unknown_shard", f"the dataset has {dataset.params.shard_count} shards")
    return ctx.placements.view(chain, dataset_id, block)[0]


def _release(ctx: ApiContext, dataset_id: bytes, index: int, why: str) -> None:
    """Tell the chain this holder lost the shard (once), so a repairer may move it."""
    fields = {"dataset": "0x" + dataset_id.hex(), "index": index, "why": why}
    if ctx.chain.datasets.shard_released(dataset_id, index):
        return
    try:
        ctx.chain.datasets.release_shard(ctx.account, dataset_id, index)
        log.warning("shard lost here; released on chain for repair", extra={"fields": fields})
    except TransactionReverted as exc:
        log.warning("shard lost here; release refused", extra={"fields": {**fields, "error": exc.error}})


def _open_for_repair(ctx: ApiContext, headers: dict[str, str], path: str, dataset_id: bytes,
                     index: int) -> tuple[bytes | BinaryIO, bytes]:
    """Authorise, open, check against the leaf and read the shard (blocking: one hop)."""
    now = ctx.clock.now()
    signed = verify_headers(headers, ctx.address, "GET", path, now, ctx.nonces)
    if signed.body_length:
        raise ApiError(400, "bad_request", "a repair read has no body")
    block = ctx.chain.client.block_number()
    registration = _authorise(ctx, signed, dataset_id, index, block)
    if ctx.placements.holder(ctx.chain, dataset_id, index, block) != ctx.address:
        raise ApiError(404, "not_held", f"shard {index} is placed at another holder")
    admission = ctx.repair_reads.admit(signed.signer, (dataset_id, index), now)
    if not admission.allowed:
        raise ApiError(429, "rate_limited",
                       f"too many repair reads; retry at chain time {admission.retry_at}")
    handle = ctx.store.open_shard(dataset_id, index)
    leaf = registration.shard_hashes[index]
    if handle is None:
        _release(ctx, dataset_id, index, "missing")
        raise ApiError(410, "shard_lost", f"shard {index} is lost here (released for repair)")
    digest = ctx.digests.digest((dataset_id, index), handle)
    if not hmac.compare_digest(digest, leaf):
        handle.close()
        _release(ctx, dataset_id, index, "fails its leaf")
        raise ApiError(410, "shard_lost", f"shard {index} here fails its leaf (released for repair)")
    try:
        return read_body(handle), digest
    except BaseException:
        handle.close()
        raise


async def get_repair_shard(ctx: ApiContext, request: Request) -> Response:
    """Serve a committed shard to the dataset's owner or a repairer (no key involved).
    ---
    summary: Read a shard for repair
    description: >-
      Signed by the dataset's owner or an account holding REPAIRER_ROLE; the dataset is
      Active; the placement map (registration rule and confirmed repairs) puts the shard
      at this holder; the stored copy matches its on-chain leaf. A lost or corrupt copy is
      answered 410 shard_lost and released on chain (releaseShard). Rate-limited per signer.
    parameters: [{$ref: "#/components/parameters/DatasetId"}, {$ref: "#/components/parameters/ShardIndex"}]
    responses:
      200:
        description: The shard ciphertext.
        headers:
          X-ShardKey-Shard-Sha256: {schema: {type: string}, description: hex SHA-256 of the body}
        content: {application/octet-stream: {schema: {type: string, format: binary}}}
      401: {$ref: "#/components/responses/Error"}
      403: {$ref: "#/components/responses/Error"}
      404: {$ref: "#/components/responses/Error"}
      410: {$ref: "#/components/responses/Error"}
      429: {$ref: "#/components/responses/Error"}
    security: [{ShardKeySignature: []}]
    """
    dataset_id, index = _path_ids(request, with_index=True)
    assert index is not None
    body, digest = await to_thread.run_sync(_open_for_repair, ctx, dict(request.headers),
                                            _signed_path(request), dataset_id, index)
    log.info("shard read for repair", extra={"fields": {"dataset": "0x" + dataset_id.hex(), "index": index}})
    return shard_response(ctx, body, {HEADER_SHARD_HASH: digest.hex()})


def _check_upload(ctx: ApiContext, signed: SignedRequest, dataset_id: bytes, index: int) -> str | None:
    """Refuse before the body: None to take the body, or ``confirmed`` when already placed here."""
    chain = ctx.chain
    block = chain.client.block_number()
    registration = _authorise(ctx, signed, dataset_id, index, block)
    params = registration.params
    if not root_commits_to(params.merkle_root, registration.shard_hashes, params.shard_count):
        raise ApiError(422, "bad_root", "the registered Merkle root does not commit to the published leaves")
    if not hmac.compare_digest(signed.body_sha256, registration.shard_hashes[index]):
        raise ApiError(422, "leaf_mismatch", f"the declared SHA-256 is not shard {index}'s on-chain leaf;"
                       " nothing kept")
    if chain.datasets.pending_shard_holder(dataset_id, index) == ctx.address:
        return None
    if ctx.placements.holder(chain, dataset_id, index, block) == ctx.address \
            and index in ctx.store.committed_shards(dataset_id):
        return "confirmed"
    raise ApiError(409, "not_assigned", f"shard {index} is not assigned to this holder (assignShard first)")


def _keep_and_confirm(ctx: ApiContext, signer: str, dataset_id: bytes, index: int, leaf: bytes) -> None:
    ctx.store.take_custody(signer, dataset_id, {index: leaf}, bundle=False)
    if ctx.chain.datasets.pending_shard_holder(dataset_id, index) == ctx.address:
        ctx.chain.datasets.confirm_shard_placement(ctx.account, dataset_id, index)


async def put_repair_shard(ctx: ApiContext, request: Request) -> Response:
    """Take a rebuilt shard this holder is assigned, check it against its leaf, confirm.
    ---
    summary: Upload a repaired shard
    description: >-
      Signed by the dataset's owner or a REPAIRER_ROLE account, for a shard whose pending
      holder (assignShard) is this holder. The declared SHA-256 must be the shard's
      on-chain leaf and the registered Merkle root must commit to the leaves (422, nothing
      read or kept); the body is streamed under the staging limits and refused (400
      body_mismatch, nothing kept) when it differs from the declaration; then committed
      and confirmShardPlacement sent. Repeating it after a crash confirms, or answers
      status confirmed when the shard is already placed here.
    parameters: [{$ref: "#/components/parameters/DatasetId"}, {$ref: "#/components/parameters/ShardIndex"}]
    requestBody:
      required: true
      content: {application/octet-stream: {schema: {type: string, format: binary}}}
    responses:
      201: {$ref: "#/components/responses/Uploaded"}
      400: {$ref: "#/components/responses/Error"}
      401: {$ref: "#/components/responses/Error"}
      403: {$ref: "#/components/responses/Error"}
      409: {$ref: "#/components/responses/Error"}
      413: {$ref: "#/components/responses/Error"}
      422: {$ref: "#/components/responses/Error"}
      507: {$ref: "#/components/responses/Error"}
    security: [{ShardKeySignature: []}]
    """
    dataset_id, index = _path_ids(request, with_index=True)
    assert index is not None
    verify = verify_upload(ctx, request)

    def check_and_begin() -> tuple[SignedRequest, str | None, Upload | None]:
        signed = verify()
        done = _check_upload(ctx, signed, dataset_id, index)
        return signed, done, None if done is not None else begin_upload(ctx, signed, dataset_id, index)

    signed, done, upload = await to_thread.run_sync(check_and_begin)
    answer = {"dataset_id": "0x" + dataset_id.hex(), "item": f"shard {index}", "size": signed.body_length,
              "sha256": signed.body_sha256.hex()}
    if upload is None:
        return JSONResponse({**answer, "status": done}, status_code=201)
    await receive(ctx, request, upload, dataset_id, index, then=functools.partial(
        _keep_and_confirm, ctx, signed.signer, dataset_id, index, signed.body_sha256))
    log.info("repaired shard kept and confirmed", extra={"fields": {
        "dataset": "0x" + dataset_id.hex(), "index": index, "repairer": signed.signer}})
    return JSONResponse({**answer, "status": "confirmed"}, status_code=201)

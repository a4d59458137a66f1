"""A holder's shard uploads and downloads, whichever server received them (blocking).

The data plane (:mod:`holder_agent.dataplane`) and the application (:mod:`holder_agent.api`)
both verify, store, authorise and answer through these functions, and map a failure to a
status and error code through :func:`refusal_of`, so the two answer alike.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import urllib.parse
from collections.abc import Callable
from typing import BinaryIO

from holder_agent.auth import verify_headers
from holder_agent.context import REFUSAL_HEAD_AGE, ApiContext
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
from holder_agent.storage import Item, Upload
from shardkey.chain.errors import ChainError, TransactionReverted
from shardkey.chain.model import DatasetStatus, RequestStatus
from shardkey.httpauth import AuthError, SignedRequest, verify_request

log = logging.getLogger(__name__)

_REQUEST_ID_RE = re.compile(r"[0-9]{1,78}")
# A shard of at most WHOLE_READ bytes (a 1 MiB shard, or a small file's) is
# read whole in the download's one worker-thread hop and sent as a plain Response: memory
# per download in flight is one shard, at most WHOLE_READ bytes, and downloads in flight
# are bounded by open connections (HTTP/1.1: one request at a time per connection), so a
# holder holds at most connections x WHOLE_READ bytes of response bodies. A larger file
# (the default 4 MiB shards, just over it) is sent from the file: sendfile on the data
# plane, 1 MiB reads (each a hop) in the application (docs/PERFORMANCE.md).
WHOLE_READ = 4 << 20
_STALE_REFUSALS = frozenset({"unknown_request", "request_not_open", "dataset_not_active", "not_held"})
_STORAGE_STATUS: list[tuple[type[StorageError], int, str]] = [
    (InvalidNameError, 400, "bad_name"), (PayloadTooLargeError, 413, "too_large"),
    (BodyMismatchError, 400, "body_mismatch"), (StagingFullError, 507, "staging_full"),
    (QuotaExceededError, 507, "quota_exceeded"), (CapacityExceededError, 507, "capacity_exceeded"),
    (ContentConflictError, 409, "conflict")]


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


def begin_upload(ctx: ApiContext, signed: SignedRequest, dataset_id: bytes, item: Item,
                 direct: bool = False) -> Upload:
    """Reserve the declared body in the signer's staging (blocking); ``direct``: written past
    the page cache (:meth:`holder_agent.storage.Store.begin_upload`)."""
    return ctx.store.begin_upload(signed.signer, dataset_id, item, ctx.max_body_bytes,
                                  signed.body_sha256, signed.body_length, direct)


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

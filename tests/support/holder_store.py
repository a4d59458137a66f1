"""Shards staged in a real holder :class:`~holder_agent.storage.Store`, as uploads are."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from holder_agent.storage import Store


def stage_shards(store: Store, uploader: str, dataset: bytes,
                 bodies: Mapping[int, bytes]) -> dict[int, bytes]:
    """Upload, seal and stage each body as shard ``index``; their SHA-256 by index."""
    for index, body in bodies.items():
        upload = store.begin_upload(uploader, dataset, index, 8 << 20, hashlib.sha256(body).digest(),
                                    len(body))
        upload.write(body)
        upload.seal()
        assert store.commit_upload(upload, dataset, index)
        upload.discard()
    return {i: hashlib.sha256(b).digest() for i, b in bodies.items()}

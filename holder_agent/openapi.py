"""The OpenAPI document of the holder API: shared components around the per-route
YAML docstrings that :class:`starlette.schemas.SchemaGenerator` collects."""

from __future__ import annotations

from typing import Any

HEX64 = "^(0x)?[0-9a-fA-F]{64}$"

BASE: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "ShardKey holder agent", "version": "1",
             "description": "Staging uploads, serving shards with signed receipts, proofs of "
                            "possession. See docs/HOLDER_API.md."},
}

COMPONENTS: dict[str, Any] = {
    "securitySchemes": {"ShardKeySignature": {
        "type": "apiKey", "in": "header", "name": "X-ShardKey-Signature",
        "description": "EIP-191 signature over 'ShardKey HTTP v2', holder address, method, "
                       "path with query, declared body SHA-256, declared body length, "
                       "timestamp, nonce; with the headers X-ShardKey-Account, "
                       "X-ShardKey-Timestamp (chain time, +-300 s), X-ShardKey-Nonce (32 "
                       "lowercase hex, single use), X-ShardKey-Content-Sha256 and "
                       "X-ShardKey-Content-Length (the body sent must be exactly the "
                       "declared one)."}},
    "parameters": {
        "DatasetId": {"name": "dataset_id", "in": "path", "required": True,
                      "schema": {"type": "string", "pattern": HEX64}},
        "ShardIndex": {"name": "index", "in": "path", "required": True,
                       "schema": {"type": "string", "pattern": "^[0-9]{1,10}$",
                                  "description": "decimal, below 2**32"}},
    },
    "schemas": {
        "Error": {"type": "object", "required": ["error", "detail"], "properties": {
            "error": {"type": "string", "description": "short machine-readable code"},
            "detail": {"type": "string"}}},
        "Health": {"type": "object", "properties": {
            "status": {"type": "string", "enum": ["ok", "unhealthy"]},
            "reason": {"type": ["string", "null"], "description": "why unhealthy (null when ok)"},
            "lag_blocks": {"type": "integer"}, "seconds_since_poll": {"type": ["number", "null"]},
            "address": {"type": "string"}, "chain_id": {"type": "integer"},
            "holder_status": {"type": ["string", "null"],
                              "description": "on-chain status as last seen (checked every 5 s)"},
            "takes_data": {"type": "boolean", "description": "false while exiting, failed or retired"},
            "storage": {"type": "object", "properties": {
                "used": {"type": "integer"}, "allocated": {"type": ["integer", "null"]},
                "free": {"type": "integer"}}}}},
        "Uploaded": {"type": "object", "properties": {
            "dataset_id": {"type": "string"}, "item": {"type": "string"},
            "size": {"type": "integer"}, "sha256": {"type": "string"},
            "status": {"type": "string", "enum": ["staged", "committed"]}}},
        "Receipts": {"type": "object", "properties": {
            "dataset_id": {"type": "string"}, "holder": {"type": "string"},
            "bundle": {"type": "boolean", "description": "a bundle of some fragment epoch is held"},
            "bundle_epochs": {"type": "array", "items": {"type": "integer"},
                              "description": "the fragment epochs whose bundle is held"},
            "shards": {"type": "array", "items": {"type": "object", "properties": {
                "index": {"type": "integer"}, "sha256": {"type": "string"},
                "signature": {"type": "string"}}}}}},
    },
    "responses": {
        "Error": {"description": "Refused", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Error"}}}},
        "Uploaded": {"description": "Staged (or already committed with the same content)",
                     "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/Uploaded"}}}},
    },
}


def document(generated: dict[str, Any]) -> dict[str, Any]:
    """The generated paths plus the shared components."""
    return {**generated, "components": COMPONENTS}

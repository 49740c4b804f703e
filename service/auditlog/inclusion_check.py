"""Is this message in the audit log? A receipt (the hub-signed 202 body) or a message id is checked against the
latest signed checkpoint: the checkpoint's signature by a hub key, the entry's leaf hash recomputed from its
stored bytes (and, for a receipt, compared with the one the hub signed), and the RFC 9162 inclusion proof from
that entry to the checkpoint's root, with the verifier's own arithmetic (`verifier.verify_inclusion`).

Answers carry ids, indexes and hashes only; `problem` says in plain words what did not hold.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

import asyncpg

from service.auditlog import verifier
from service.auditlog.tree import AuditLogReader
from service.errors import HandoverError
from service.identity.notes import CheckpointError, hub_note_keys, log_origin, verify_checkpoint
from service.identity.registry import Registry
from service.identity.signing import verify_bundle_signature
from service.receipts import receipt_parameters
from service.store import audit_lookup, db
from service.strictjson import parse_strict_json

MAX_RECEIPT_BYTES = 64 * 1024


@dataclass(frozen=True)
class InclusionResult:
    verified: bool
    problem: str = ""
    message_id: str | None = None
    index: int | None = None
    leaf_hash: bytes | None = None
    checkpoint_size: int | None = None
    checkpoint_root: bytes | None = None
    proof_hashes: int = 0
    receipt_signed_by: str | None = None  # the hub key id, when a receipt was checked


@dataclass(frozen=True)
class _Claim:
    index: int
    leaf_hash: bytes
    message_id: str
    sha256: str | None
    signed_by: str | None


def read_receipt(text: str, registry: Registry) -> _Claim | str:
    """The receipt's claim once its hub signature verifies; otherwise what is wrong with it (plain words)."""
    raw = text.strip().encode("utf-8")
    if not raw or len(raw) > MAX_RECEIPT_BYTES:
        return "Paste the whole receipt: the JSON the hub answered with when it accepted the message"
    try:
        receipt = parse_strict_json(raw)
        signature = verify_bundle_signature(receipt, registry.hub_key)
        params = receipt_parameters(receipt)
        claim = _Claim(
            int(params["audit-index"]),
            base64.b64decode(params["leaf-hash"], validate=True),
            str(params["message-id"]),
            str(params["sha256"]),
            signature.kid,
        )
    except HandoverError:
        return "This is not a receipt signed by the hub (its signature does not verify, or it is not JSON)"
    except (KeyError, IndexError, TypeError, ValueError, StopIteration, binascii.Error):
        return "This signed message is not a receipt: it has no audit index, leaf hash and message id"
    if signature.owner_ods != "hub" or signature.key is None or not signature.key.verifies_at(signature.signed_at):
        return "This receipt is not signed by a hub key that was valid when it was signed"
    return claim


async def check_receipt(pool: asyncpg.Pool, reader: AuditLogReader, registry: Registry, text: str) -> InclusionResult:
    """Check a pasted receipt: its hub signature, then its entry's inclusion in the latest checkpoint."""
    claim = read_receipt(text, registry)
    if isinstance(claim, str):
        return InclusionResult(False, claim)
    return await _prove(pool, reader, registry, claim)


async def check_message(
    pool: asyncpg.Pool, reader: AuditLogReader, registry: Registry, message_id: UUID
) -> InclusionResult:
    """Check that the acceptance of message `message_id` is included in the latest checkpoint."""
    async with db.connection(pool) as conn:
        leaf = await audit_lookup.acceptance_leaf(conn, message_id)
    if leaf is None:
        return InclusionResult(False, "No accepted message with this id is in the audit log", str(message_id))
    return await _prove(pool, reader, registry, _Claim(leaf.index, leaf.leaf_hash, str(message_id), None, None))


async def _prove(pool: asyncpg.Pool, reader: AuditLogReader, registry: Registry, claim: _Claim) -> InclusionResult:
    found = InclusionResult(
        False, "", claim.message_id, claim.index, claim.leaf_hash, receipt_signed_by=claim.signed_by
    )
    stored = await reader.latest_checkpoint()
    if stored is None:
        return replace(found, problem="No checkpoint has been signed yet; try again in a few seconds")
    try:
        checkpoint = verify_checkpoint(stored.note, hub_note_keys(log_origin(registry.network), registry.hub_keys))
    except CheckpointError:
        return replace(found, problem="The latest checkpoint's signature does not verify with the hub's keys")
    size, root = checkpoint.tree_size, checkpoint.root_hash
    found = replace(found, checkpoint_size=size, checkpoint_root=root)
    if claim.index >= size:
        return replace(found, problem=f"Entry {claim.index} is not yet covered by a signed checkpoint; try again")
    async with db.connection(pool) as conn:
        leaf = await audit_lookup.leaf_at(conn, claim.index)
    if leaf is None or verifier.leaf_hash(leaf.leaf) != claim.leaf_hash:
        return replace(found, problem=f"The log's entry {claim.index} does not have the leaf hash the receipt names")
    if not _names_message(leaf.leaf, claim):
        return replace(found, problem=f"The log's entry {claim.index} is about another message or payload")
    proof = await reader.inclusion_proof(claim.index, size)
    ok = verifier.verify_inclusion(claim.leaf_hash, claim.index, size, proof, root)
    problem = "" if ok else "The inclusion proof does not lead to the checkpoint's root"
    return replace(found, verified=ok, problem=problem, proof_hashes=len(proof))


def _names_message(leaf: bytes, claim: _Claim) -> bool:
    try:
        event: Any = json.loads(leaf)
    except ValueError:
        return False
    if str(event.get("message_id")) != claim.message_id:
        return False
    return claim.sha256 is None or str(event.get("details", {}).get("payload_sha256")) == claim.sha256

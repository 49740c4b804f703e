"""A trust that reaches the hub only through its MESH mailbox, with NHS England's official `mesh-client`.

Sign a Bundle with the trust's key and send it to the hub's mailbox under the event's workflow ID
(`HANDOVER_REFERRAL`, ...); read the mailbox: the hub's receipts (`HANDOVER_RECEIPT`, checked against the hub's key
and the digest of what was sent), refusals (`HANDOVER_OUTCOME`, an OperationOutcome), and messages from other
trusts or the hub (their signatures verified against the registry: the signature is over the FHIR message, so it
survives the MESH hop). Everything read is acknowledged to MESH only after it has been checked; a message that
fails its check is left in the mailbox and reported to the caller.

Synchronous, like `mesh-client`; call it from a thread in asyncio code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import mesh_client

from service.identity.registry import Registry
from service.identity.signing import VerifiedSignature, payload_sha256, sign_bundle, verify_bundle_signature
from service.mesh.settings import OUTCOME_WORKFLOW, RECEIPT_WORKFLOW, workflow_id
from service.receipts import receipt_parameters


class MeshTrustError(Exception):
    """Something read from MESH does not prove what it should (bad signature, wrong digest, wrong signer)."""


@dataclass(frozen=True)
class Sent:
    mesh_message_id: str
    bundle: dict[str, Any]


@dataclass(frozen=True)
class Received:
    """One item read from the trust's mailbox. `kind`: receipt, outcome (a refusal) or message. `in_reply_to` is
    the MESH id of what the trust sent (MESH's local id on the hub's replies); `signer` is who signed a receipt or
    message (None for an outcome)."""

    kind: str
    mesh_message_id: str
    workflow_id: str | None
    in_reply_to: str | None
    body: dict[str, Any]
    signer: VerifiedSignature | None


class MeshTrust:
    """Trust `ods` with its private signing key, sending through `client` (its own MESH mailbox) to the hub's
    mailbox `hub_mailbox`; `registry` holds everyone's public keys."""

    def __init__(
        self,
        client: mesh_client.MeshClient,
        ods: str,
        private_jwk: Mapping[str, Any],
        registry: Registry,
        hub_mailbox: str,
    ) -> None:
        self._client = client
        self.ods = ods
        self._key = private_jwk
        self._registry = registry
        self._hub_mailbox = hub_mailbox
        self.sent: dict[str, Sent] = {}

    def sign(self, bundle: Mapping[str, Any]) -> dict[str, Any]:
        return sign_bundle(bundle, self._key, self.ods)

    def send(self, signed_bundle: Mapping[str, Any]) -> str:
        """Send a signed Bundle to the hub; returns its MESH message id (the hub's reply names it)."""
        event = signed_bundle["entry"][0]["resource"]["eventCoding"]["code"]
        body = json.dumps(signed_bundle, ensure_ascii=False).encode("utf-8")
        mesh_id: str = self._client.send_message(
            self._hub_mailbox,
            body,
            workflow_id=workflow_id(event),
            local_id=signed_bundle["identifier"]["value"],
            subject=f"Handover {event}",
            content_type="application/fhir+json",
        )
        self.sent[mesh_id] = Sent(mesh_id, dict(signed_bundle))
        return mesh_id

    def receive(self) -> list[Received]:
        """Read, check and acknowledge everything in the mailbox (MeshTrustError for the first that fails)."""
        received = []
        for mesh_id in self._client.list_messages():
            message = self._client.retrieve_message(mesh_id)
            try:
                raw = message.read()
            finally:
                message.close()  # type: ignore[no-untyped-call]
            item = self.check(mesh_id, message.workflow_id, message.local_id, json.loads(raw))
            self._client.acknowledge_message(mesh_id)
            received.append(item)
        return received

    def check(self, mesh_id: str, workflow: str | None, local_id: str | None, body: dict[str, Any]) -> Received:
        if workflow == OUTCOME_WORKFLOW:
            if body.get("resourceType") != "OperationOutcome":
                raise MeshTrustError("a HANDOVER_OUTCOME reply that is not an OperationOutcome")
            return Received("outcome", mesh_id, workflow, local_id, body, None)
        if workflow == RECEIPT_WORKFLOW:
            return Received("receipt", mesh_id, workflow, local_id, body, self._check_receipt(body, local_id))
        signature = verify_bundle_signature(body, lambda kid: self._registry.key(kid) or self._registry.hub_key(kid))
        sender = body["entry"][0]["resource"].get("sender", {}).get("identifier", {}).get("value")
        if signature.owner_ods not in ("hub", sender):
            raise MeshTrustError("the message is not signed by its sender")
        return Received("message", mesh_id, workflow, local_id, body, signature)

    def _check_receipt(self, receipt: dict[str, Any], in_reply_to: str | None) -> VerifiedSignature:
        signature = verify_bundle_signature(receipt, self._registry.hub_key)
        if signature.owner_ods != "hub":
            raise MeshTrustError("the receipt is not signed by the hub")
        sent = self.sent.get((in_reply_to or "").upper())
        if sent is not None and receipt_parameters(receipt).get("sha256") != payload_sha256(sent.bundle):
            raise MeshTrustError("the receipt's SHA-256 is not that of the message sent")
        return signature

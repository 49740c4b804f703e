"""The trust client: the Python API an EPR vendor or a trust's integration engineer uses to talk to the hub.

Build and sign a Bundle, send it with a fresh bearer token and X-Request-ID, check the hub-signed receipt,
read the inbox, verify what arrives against the sender's registered key, and acknowledge it. The HL7 v2
connector (adapters/hl7) is built on exactly this API; `adapters.witness.Witness` keeps the hub's audit
checkpoints. Worked examples: adapters/README.md, section "The trust client (Python API for EPR vendors)".

    async with aiohttp.ClientSession() as session:
        client = TrustClient(session, "https://hub.example", "RM1", private_jwk, load_registry(path))
        result = await client.send(client.sign(bundle))      # ReceiptError if the receipt does not verify
        if not result.accepted:
            print(result.status, result.error_codes)          # the hub's stable OperationOutcome codes
        for item in await client.inbox():
            message, signature = await client.fetch(item["id"])  # ReceiptError unless signed by its sender
            ...                                                # store it in the EPR first, then:
            await client.acknowledge(item["id"])
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from service.errors import HandoverError
from service.receipts import receipt_parameters
from service.registry import Registry
from service.signing import VerifiedSignature, payload_sha256, sign_bundle, sign_compact_jwt, verify_bundle_signature

TOKEN_LIFETIME_SECONDS = 240


class ReceiptError(Exception):
    """The hub's receipt does not prove what it should (not signed by a hub key, wrong digest), or a fetched
    message is not signed by its sender."""


@dataclass(frozen=True)
class SendResult:
    """The hub's answer to a send: HTTP `status`, the JSON `body` (a hub-signed receipt Bundle on 202, an
    OperationOutcome otherwise) and the X-Request-ID used (re-use it to retry the same message)."""

    status: int
    body: dict[str, Any]
    request_id: str

    @property
    def accepted(self) -> bool:
        """True when the hub took the message (202) and its receipt verified."""
        return self.status == 202

    @property
    def error_codes(self) -> list[str]:
        """The stable codes of the hub's OperationOutcome (CONTRACT.md), e.g. `unknown-recipient`."""
        return [
            coding.get("code", "")
            for issue in self.body.get("issue", [])
            for coding in (issue.get("details") or {}).get("coding", [])
        ]


class TrustClient:
    """A trust (`ods`, with its private signing key) talking to the hub at `base_url`.

    `private_jwk` is the trust's ES256 private key (a JWK dict; keep it in the trust's HSM or key vault),
    `registry` the network registry (`service.registry.load_registry`) whose keys verify receipts and
    incoming messages. One client may be shared by many tasks; each call mints its own short-lived token.
    `request_headers`, if given, is called for every request and its headers are sent too (the demo's history
    sends its clock tickets this way, adapters/history.py)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        ods: str,
        private_jwk: Mapping[str, Any],
        registry: Registry,
        *,
        request_headers: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        self._session = session
        self._request_headers = request_headers
        self._base = base_url.rstrip("/")
        self.ods = ods
        self._key = private_jwk
        self._registry = registry

    def bearer_token(self) -> str:
        """A fresh signed bearer token (JWT, 4 minutes, unique jti) for one request."""
        now = int(time.time())
        return sign_compact_jwt(
            {
                "iss": self.ods,
                "sub": self.ods,
                "aud": "handover",
                "iat": now,
                "exp": now + TOKEN_LIFETIME_SECONDS,
                "jti": str(uuid.uuid4()),
            },
            self._key,
        )

    def _auth(self) -> dict[str, str]:
        extra = self._request_headers() if self._request_headers is not None else {}
        return {**extra, "Authorization": f"Bearer {self.bearer_token()}"}

    def sign(self, bundle: Mapping[str, Any]) -> dict[str, Any]:
        """`bundle` with Bundle.signature: a detached JWS over its RFC 8785 canonical form, by this trust."""
        return sign_bundle(bundle, self._key, self.ods)

    async def send(self, signed_bundle: Mapping[str, Any], *, request_id: str | None = None) -> SendResult:
        """POST a signed Bundle; on 202 the receipt's hub signature and digest are checked (ReceiptError)."""
        request_id = request_id or str(uuid.uuid4())
        body = json.dumps(signed_bundle, ensure_ascii=False).encode("utf-8")
        headers = {**self._auth(), "Content-Type": "application/fhir+json", "X-Request-ID": request_id}
        async with self._session.post(f"{self._base}/fhir/$process-message", data=body, headers=headers) as resp:
            result = SendResult(resp.status, json.loads(await resp.read()), request_id)
        if result.accepted:
            self.check_receipt(result.body, signed_bundle)
        return result

    def check_receipt(self, receipt: Mapping[str, Any], sent: Mapping[str, Any]) -> dict[str, Any]:
        """The receipt's parameters, after checking it is signed by the hub and names what was sent."""
        try:
            signature = verify_bundle_signature(receipt, self._registry.hub_key)
        except HandoverError as err:
            raise ReceiptError(f"the receipt's signature does not verify with a hub key: {err.code}") from err
        if signature.owner_ods != "hub":
            raise ReceiptError("the receipt is not signed by the hub")
        params = receipt_parameters(receipt)
        if params.get("sha256") != payload_sha256(sent):
            raise ReceiptError("the receipt's SHA-256 is not that of the message sent")
        return params

    async def inbox(self) -> list[dict[str, Any]]:
        """The messages waiting for this trust (id, sender, event, sha256, accepted_at, fetched), oldest first."""
        async with self._session.get(f"{self._base}/mailbox/{self.ods}/inbox", headers=self._auth()) as resp:
            resp.raise_for_status()
            messages: list[dict[str, Any]] = (await resp.json())["messages"]
            return messages

    async def fetch(self, message_id: str) -> tuple[dict[str, Any], VerifiedSignature]:
        """A message from the inbox, with its sender's signature verified against the registry."""
        url = f"{self._base}/mailbox/{self.ods}/inbox/{message_id}"
        async with self._session.get(url, headers=self._auth()) as resp:
            resp.raise_for_status()
            bundle: dict[str, Any] = json.loads(await resp.read())
        try:
            signature = verify_bundle_signature(
                bundle, lambda kid: self._registry.key(kid) or self._registry.hub_key(kid)
            )
        except HandoverError as err:
            raise ReceiptError(f"the message's signature does not verify: {err.code}") from err
        if signature.owner_ods == "hub":  # the hub's own messages: safety-net alerts, non-delivery reports
            return bundle, signature
        sender = bundle["entry"][0]["resource"].get("sender", {}).get("identifier", {}).get("value")
        if signature.owner_ods != sender:
            raise ReceiptError("the message is not signed by its sender")
        return bundle, signature

    async def acknowledge(self, message_id: str) -> dict[str, Any]:
        """Tell the hub the message is safely stored at this trust; it then leaves the inbox as delivered."""
        url = f"{self._base}/mailbox/{self.ods}/inbox/{message_id}/ack"
        async with self._session.post(url, headers=self._auth()) as resp:
            resp.raise_for_status()
            ack: dict[str, Any] = await resp.json()
            return ack

"""The life of an inbound message, top to bottom.

read (http/body.py) → strict parse → verify signature (before any FHIR model sees the bytes) → routing facts
(a BaRS message read in its Handover form) → bind signer, sender and caller → freshness → route → one patient → validate
against fhir_profiles/ (every error at once) → one transaction (idempotency key, message, delivery
job, audit event, receipt) → 202 receipt.

A message is accepted only when everything it implies is committed; a refusal stores nothing but its own
audit event.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from service.auditlog import appending as audit
from service.auditlog.events import AuditEvent, EventType
from service.clock import Clock, utc_now
from service.config import Settings
from service.crypto.envelope import PayloadIdentity
from service.crypto.vault import PayloadVault
from service.episodes.tracker import EpisodeTracker, StoredMessage
from service.errors import Code, HandoverError
from service.identity.authentication import token_replayed
from service.identity.hubkey import HubKey, hub_jwk
from service.identity.registry import RegistryReader
from service.identity.signing import KeyLookup, VerifiedSignature
from service.identity.tokens import TokenClaims
from service.intake.message import InboundMessage, read_inbound
from service.messagefacts import MessageFacts
from service.receipts import ReceiptFacts, build_signed_receipt
from service.store import db, messages, tokens
from service.store.stalls import StallGuard
from service.terminology import CodeSystem
from service.validation import Validator, load_validator

log = logging.getLogger("handover.intake")


@dataclass(frozen=True)
class Submission:
    """One POST to $process-message, after the HTTP edge has authenticated the caller and read the body."""

    body: bytes
    caller_ods: str
    request_id: UUID
    correlation_id: UUID | None
    token: TokenClaims | None = None  # a bearer token whose jti is consumed in the acceptance transaction


@dataclass(frozen=True)
class Accepted:
    message_id: UUID
    event: str
    receipt: bytes
    replayed: bool


@dataclass(frozen=True)
class Freshness:
    """How old a message (Bundle.timestamp, or the signature's iat) may be, and how far ahead of our clock."""

    max_age: timedelta = timedelta(hours=24)
    max_ahead: timedelta = timedelta(minutes=5)

    @classmethod
    def from_settings(cls, settings: Settings) -> Freshness:
        return cls(
            max_age=timedelta(seconds=settings.max_message_age_seconds),
            max_ahead=timedelta(seconds=settings.max_clock_skew_seconds),
        )


class Intake:
    """Accepts messages into the store. Arguments: the pool, the network registry, the hub's private
    signing key (for receipts), the handover-event CodeSystem, the freshness window and a clock."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        registry: RegistryReader,
        hub_private_jwk: HubKey,
        events: CodeSystem,
        *,
        vault: PayloadVault,
        on_accepted: Callable[[str], None] | None = None,
        freshness: Freshness | None = None,
        keys: KeyLookup | None = None,
        episodes: EpisodeTracker | None = None,
        validator: Validator | None = None,
        clock: Clock = utc_now,
        stall_guard: StallGuard | None = None,
    ) -> None:
        self._episodes = episodes
        self._guard = stall_guard  # bounds each acceptance's database work (service/store/stalls.py)
        self._vault = vault
        self._on_accepted = on_accepted
        self._validator = validator or load_validator()
        self._pool = pool
        self._registry = registry
        self._keys = keys or registry.key
        self._hub_key = hub_private_jwk
        self._events = events
        self._freshness = freshness or Freshness()
        self._clock = clock

    @property
    def events(self) -> CodeSystem:
        return self._events

    async def accept(self, submission: Submission) -> Accepted:
        """Accept the message or raise HandoverError; the same X-Request-ID and body again gives the
        original receipt (`replayed`)."""
        inbound = read_inbound(submission.body, self._keys, self._validator.conformance, self._events)
        facts, signature = inbound.facts, inbound.signature
        self._check_signer(signature, facts, submission.caller_ods)
        self._check_fresh(signature.signed_at, facts.timestamp)
        self._check_routing(facts)
        inbound.patient  # noqa: B018 - one patient per message, else 422 patient-mismatch (read here, once)
        self._check_profiles(inbound)
        return await self._commit(submission, inbound)

    def _check_profiles(self, inbound: InboundMessage) -> None:
        """Every error against fhir_profiles/ at once (422 profile-violation); warnings never block."""
        errors = [issue for issue in self._validator.validate(inbound.doc, inbound.index) if issue.severity == "error"]
        if errors:
            first, *rest = errors
            raise HandoverError(Code.PROFILE_VIOLATION, first.text, first.expression, more=rest)

    def _check_signer(self, signature: VerifiedSignature, facts: MessageFacts, caller_ods: str) -> None:
        """The key's owner, MessageHeader.sender, Bundle.signature.who and the caller must be one trust, and
        the key must not have been revoked before the message was signed (its iat, else Bundle.timestamp)."""
        if not (signature.owner_ods == facts.sender_ods == caller_ods == signature.who_ods):
            raise HandoverError(
                Code.SENDER_MISMATCH,
                "The signing key's owner, MessageHeader.sender, Bundle.signature.who and the authenticated "
                "caller must all be the same organisation",
                "Bundle.signature.who",
            )
        signed_at = signature.signed_at or facts.timestamp
        if signature.key is not None and not signature.key.verifies_at(signed_at):
            text = (
                "The message was signed after its key was revoked"
                if signature.key.status == "revoked"
                else "The message was signed with a retired key after its overlap ended; sign with the active key"
            )
            raise HandoverError(Code.KEY_REVOKED, text, "Bundle.signature.data")

    def _check_fresh(self, signed_at: datetime | None, timestamp: datetime) -> None:
        now = self._clock()
        for moment, expression in ((timestamp, "Bundle.timestamp"), (signed_at, "Bundle.signature.data")):
            if moment is None:
                continue
            if moment.tzinfo is None:
                raise HandoverError(Code.PROFILE_VIOLATION, "Bundle.timestamp must include a time zone", expression)
            if moment < now - self._freshness.max_age:
                raise HandoverError(
                    Code.STALE_MESSAGE,
                    f"The message is older than the accepted {self._freshness.max_age} (by Bundle.timestamp or "
                    "the signature's iat); send a new message",
                    expression,
                )
            if moment > now + self._freshness.max_ahead:
                raise HandoverError(
                    Code.STALE_MESSAGE,
                    f"The message is dated more than {self._freshness.max_ahead} ahead of the hub's clock; "
                    "check the sender's clock",
                    expression,
                )

    def _check_routing(self, facts: MessageFacts) -> None:
        if not self._registry.is_participant(facts.recipient_ods):
            raise HandoverError(
                Code.UNKNOWN_RECIPIENT,
                "The receiving organisation is not a participant of this network",
                "Bundle.entry[0].resource.destination[0].receiver",
            )
        if facts.recipient_ods == facts.sender_ods:
            raise HandoverError(
                Code.PROFILE_VIOLATION,
                "A message must be addressed to an organisation other than its sender",
                "Bundle.entry[0].resource.destination[0].receiver",
            )

    async def _commit(self, submission: Submission, inbound: InboundMessage) -> Accepted:
        facts, sha256 = inbound.facts, inbound.signature.payload_sha256
        now = self._clock()
        message_id = uuid.uuid4()
        # Sealed before the transaction: with the KEK unavailable this refuses (503) having stored nothing.
        sealed = await self._vault.seal(
            submission.body, PayloadIdentity(message_id, facts.sender_ods, facts.recipient_ods)
        )
        message = messages.NewMessage(
            id=message_id,
            sender_ods=facts.sender_ods,
            recipient_ods=facts.recipient_ods,
            event=facts.event,
            bundle_identifier=facts.bundle_identifier,
            message_header_id=facts.message_header_id,
            payload_sha256=sha256,
            sealed=sealed,
            request_id=submission.request_id,
            correlation_id=submission.correlation_id,
            accepted_at=now,
        )
        async with db.endable_transaction(self._pool, guard=self._guard) as tx:
            conn = tx.conn
            token = submission.token
            claim = await messages.claim_and_insert_message(
                conn, message, token=messages.UsedToken(token.issuer, token.jti, token.expires_at) if token else None
            )
            if not claim.fresh:  # a replayed token waits for its first use and is refused, storing nothing
                raise token_replayed()
            if not claim.claimed:
                return await self._replay(conn, facts, submission.request_id, sha256)
            if not claim.inserted:
                raise HandoverError(
                    Code.DUPLICATE_MESSAGE,
                    "This sender already sent a message with this Bundle.identifier; it was not accepted again",
                    "Bundle.identifier",
                )
            ipt_received = None
            if self._episodes is not None:
                ipt_received = await self._episodes.record(
                    conn,
                    inbound,
                    StoredMessage(message.id, facts.event, facts.sender_ods, facts.recipient_ods, now, inbound.patient),
                )
            leaf = await audit.append_event(
                conn,
                AuditEvent(
                    type=EventType.MESSAGE_ACCEPTED,
                    outcome="accepted",
                    actor=facts.sender_ods,
                    at=now,
                    message_id=message.id,
                    details={
                        "sender": facts.sender_ods,
                        "recipient": facts.recipient_ods,
                        "event": facts.event,
                        "bundle_identifier": facts.bundle_identifier,
                        "payload_sha256": sha256,
                        "request_id": str(submission.request_id),
                    },
                ),
            )
            receipt = build_signed_receipt(
                ReceiptFacts(
                    message_id=message.id,
                    payload_sha256=sha256,
                    audit_index=leaf.index,
                    leaf_hash=leaf.leaf_hash,
                    accepted_at=now,
                    sender_ods=facts.sender_ods,
                    request_header_id=facts.message_header_id,
                    bundle_identifier=facts.bundle_identifier,
                    ipt_received_date=ipt_received,
                ),
                self._events.url,
                hub_jwk(self._hub_key),
            )
            # The receipt's write and COMMIT in one round trip: the sequencer's lock is held until COMMIT.
            await tx.commit_after(messages.store_receipt_statement(facts.sender_ods, submission.request_id, receipt))
        log.info(
            "message accepted",
            extra={"message_id": str(message.id), "sender": facts.sender_ods, "event": facts.event},
        )
        if self._on_accepted is not None:
            self._on_accepted(facts.recipient_ods)  # e.g. wake the push relay now rather than at its next poll
        return Accepted(message.id, facts.event, receipt, replayed=False)

    async def _replay(self, conn: asyncpg.Connection, facts: MessageFacts, request_id: UUID, sha256: str) -> Accepted:
        record = await messages.find_idempotency_record(conn, facts.sender_ods, request_id)
        if record is None:  # claimed by a transaction that has since rolled back: the client may retry
            raise db.unavailable()
        if record.payload_sha256 != sha256:
            raise HandoverError(
                Code.IDEMPOTENCY_KEY_REUSE,
                "This X-Request-ID was already used for a different message; use a new X-Request-ID",
            )
        return Accepted(record.message_id, facts.event, record.receipt, replayed=True)

    async def record_refusal(
        self,
        caller_ods: str | None,
        request_id: UUID | None,
        body: bytes,
        code: Code,
        *,
        token: TokenClaims | None = None,
    ) -> Code:
        """Leave the refusal's audit event (the only thing a refusal stores) and use up the caller's `token`
        in the same transaction; returns the code to answer with: `unauthenticated` if the token had been used
        before (a replay is refused as one, whatever else is wrong with the request), else `code`. Best
        effort: when the store is down the refusal is still answered, and logged."""
        try:
            async with db.transaction(self._pool, guard=self._guard) as conn:
                if token is not None and not await tokens.remember_token_id(
                    conn, token.issuer, token.jti, token.expires_at
                ):
                    code = Code.UNAUTHENTICATED
                event = AuditEvent(
                    type=EventType.MESSAGE_REFUSED,
                    outcome=code.value,
                    actor=caller_ods or "unauthenticated",
                    at=self._clock(),
                    details={
                        "request_id": str(request_id) if request_id else "",
                        "body_sha256": hashlib.sha256(body).hexdigest() if body else "",
                    },
                )
                await audit.append_event(conn, event)  # last: it holds the sequencer's lock until COMMIT
        except HandoverError:
            log.warning("refusal not audited: store unavailable", extra={"code": code.value})
        return code

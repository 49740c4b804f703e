"""The signed receipt (service/receipts.py): its canonical form skips the proving walk only when the facts make it
plain, and then it is byte for byte the receipt the full canonicaliser signs (an Ed25519 hub key signs
deterministically, so whole receipts compare), whatever strings and indexes the facts hold."""

from __future__ import annotations

import hashlib
import itertools
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service import receipts
from service.identity.signing import verify_bundle_signature
from service.receipts import ReceiptFacts, build_signed_receipt
from service.strictjson import parse_strict_json
from tests.identity.signing_support import ec_private_jwk, ed_private_jwk, entry_for

_awkward = st.sampled_from(['"', "\\", "\x00", "\x1f", "\u2028", "\uffff", "\U0001f600", "\ud800", "é"])
_text = st.text(st.one_of(st.characters(), _awkward), max_size=12)
EVENTS = "https://handover.nhs.example/fhir/CodeSystem/handover-event"


def _outcome(facts: ReceiptFacts, key: dict[str, Any]) -> bytes | type[Exception]:
    counter = itertools.count(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(receipts, "new_uuids", lambda n: [str(uuid.UUID(int=next(counter), version=4)) for _ in range(n)])
        try:
            return build_signed_receipt(facts, EVENTS, key)
        except ValueError as err:  # a lone surrogate: the receipt cannot be written, on either path
            return type(err)


@pytest.fixture(scope="module")
def ed_hub() -> dict[str, Any]:
    return ed_private_jwk()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.tuples(_text, _text, _text, _text),
    audit_index=st.one_of(st.integers(0, 2**53 - 1), st.integers(), st.sampled_from([2**53 - 1, 2**53, 2**63 - 1, -1])),
    received=st.none() | st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
)
def test_plain_receipts_are_the_receipts_the_full_canonicaliser_signs(
    ed_hub: dict[str, Any], texts: tuple[str, str, str, str], audit_index: int, received: date | None
) -> None:
    facts = ReceiptFacts(
        message_id=uuid.UUID(int=7),
        payload_sha256=texts[0],
        audit_index=audit_index,
        leaf_hash=b"\x01" * 32,
        accepted_at=datetime(2026, 12, 7, 12, 0, 0, 123456, tzinfo=UTC),
        sender_ods=texts[1],
        request_header_id=texts[2],
        bundle_identifier=texts[3],
        ipt_received_date=received,
    )
    fast = _outcome(facts, ed_hub)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(receipts, "_plain_facts", lambda *_: False)
        full = _outcome(facts, ed_hub)
    assert fast == full


def test_a_plain_receipt_verifies_over_the_reference_canonical_bytes() -> None:
    hub = ec_private_jwk()
    facts = ReceiptFacts(uuid.uuid4(), "ab" * 32, 41, b"\x02" * 32, datetime.now(UTC), "RM1", "hdr-é", "urn:uuid:x")
    assert receipts._plain_facts(facts, EVENTS)
    receipt = parse_strict_json(build_signed_receipt(facts, EVENTS, hub))
    entry = entry_for(hub, "hub")
    verified = verify_bundle_signature(receipt, lambda kid: entry if kid == entry.kid else None)
    unsigned = {k: v for k, v in receipt.items() if k != "signature"}
    assert verified.payload_sha256 == hashlib.sha256(bytes(rfc8785.dumps(unsigned))).hexdigest()


@pytest.mark.parametrize(
    ("change", "plain"),
    [({}, True), ({"audit_index": 2**53}, False), ({"audit_index": -1}, False), ({"sender_ods": "RM1"}, True)],
)
def test_only_plain_facts_skip_the_walk(change: dict[str, Any], plain: bool) -> None:
    base: dict[str, Any] = {
        "message_id": uuid.uuid4(),
        "payload_sha256": "ab" * 32,
        "audit_index": 3,
        "leaf_hash": b"\x02" * 32,
        "accepted_at": datetime.now(UTC),
        "sender_ods": "RM1",
        "request_header_id": "h",
        "bundle_identifier": "b",
    }
    assert receipts._plain_facts(ReceiptFacts(**{**base, **change}), EVENTS) is plain


class _Str(str):
    """A str subclass: not plain, whatever its value."""


def test_a_str_subclass_is_not_plain() -> None:
    facts = ReceiptFacts(uuid.uuid4(), "ab" * 32, 3, b"\x02" * 32, datetime.now(UTC), _Str("RM1"), "h", "b")
    assert not receipts._plain_facts(facts, EVENTS)


def test_receipt_ids_are_fresh_version_4_uuids() -> None:
    facts = ReceiptFacts(uuid.uuid4(), "ab" * 32, 3, b"\x02" * 32, datetime.now(UTC), "RM1", "h", "b")
    receipt = parse_strict_json(build_signed_receipt(facts, EVENTS, ec_private_jwk()))
    header, parameters = (entry["resource"] for entry in receipt["entry"])
    texts = [receipt["id"], receipt["identifier"]["value"].removeprefix("urn:uuid:"), header["id"], parameters["id"]]
    assert len(set(texts)) == 4
    assert all(str(uuid.UUID(text)) == text and uuid.UUID(text).version == 4 for text in texts)
    assert uuid.UUID(texts[0]).variant == uuid.RFC_4122
    assert header["focus"] == [{"reference": f"urn:uuid:{parameters['id']}"}]
    assert [e["fullUrl"] for e in receipt["entry"]] == [f"urn:uuid:{header['id']}", f"urn:uuid:{parameters['id']}"]

"""A message's envelope made new: what a sender does to a Bundle it is about to sign and send as a new message.

`fresh_envelope` gives the copy a new `Bundle.id`, a new `Bundle.identifier` (a urn:uuid, in the file's own
identifier system), a new `MessageHeader.id` (its entry's `fullUrl` and every reference to it follow) and
`Bundle.timestamp` now, and drops an old `Bundle.signature`. The clinical content is untouched. The hub refuses a
message dated more than a day ago (`stale-message`) and a sender's second message under the same
`Bundle.identifier` (`duplicate-message`); a template file such as `fhir_profiles/examples/Bundle-referral.json`
therefore becomes sendable, once per run, by `handover send` (which does this unless told `--as-is`).
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.builders import instant


@dataclass(frozen=True)
class Envelope:
    """What the new envelope says, to tell the person sending."""

    timestamp: str
    bundle_identifier: str
    message_header_id: str

    def describe(self) -> str:
        return (
            f"dated {self.timestamp}, Bundle.identifier {self.bundle_identifier}, "
            f"MessageHeader.id {self.message_header_id}"
        )


def fresh_envelope(bundle: dict[str, Any], now: datetime | None = None) -> tuple[dict[str, Any], Envelope]:
    """A copy of `bundle` as a new message sent `now` (default: the current time), and what its envelope says.

    `bundle` must be a message Bundle whose first entry is its MessageHeader (ValueError otherwise: the file is
    not a message, which the hub would refuse anyway, so nothing is invented for it)."""
    message = copy.deepcopy({key: value for key, value in bundle.items() if key != "signature"})
    entries = message.get("entry")
    first = entries[0] if isinstance(entries, list) and entries and isinstance(entries[0], dict) else None
    header = first.get("resource") if first is not None else None
    if not isinstance(header, dict) or header.get("resourceType") != "MessageHeader":
        raise ValueError("not a FHIR message: the Bundle's first entry must be its MessageHeader")
    old_id = header.get("id")
    new_id = str(uuid.uuid4())
    header["id"] = new_id
    assert first is not None
    first["fullUrl"] = f"urn:uuid:{new_id}"
    if isinstance(old_id, str) and old_id:
        _replace_references(
            message, {f"urn:uuid:{old_id}": f"urn:uuid:{new_id}", f"MessageHeader/{old_id}": f"MessageHeader/{new_id}"}
        )
    message["id"] = str(uuid.uuid4())
    system = (message.get("identifier") or {}).get("system") or "urn:ietf:rfc:3986"
    message["identifier"] = {"system": system, "value": f"urn:uuid:{uuid.uuid4()}"}
    message["timestamp"] = instant(now or datetime.now(UTC))
    return message, Envelope(message["timestamp"], message["identifier"]["value"], new_id)


def _replace_references(node: Any, renamed: dict[str, str]) -> None:
    """Every `reference` naming the old MessageHeader names the new one."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str) and value in renamed:
                node[key] = renamed[value]
            else:
                _replace_references(value, renamed)
    elif isinstance(node, list):
        for item in node:
            _replace_references(item, renamed)

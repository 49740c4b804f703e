"""Why an HL7 v2 message cannot be turned into a Handover message, with the field to name in the ERR segment."""

from __future__ import annotations

from dataclasses import dataclass

# HL7 table 0357 (message error condition codes) used in ERR-3
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
SEGMENT_SEQUENCE_ERROR = "100"
UNSUPPORTED_MESSAGE_TYPE = "200"
APPLICATION_ERROR = "207"

ERROR_TEXT = {
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    APPLICATION_ERROR: "Application internal error",
}


@dataclass(frozen=True)
class Hl7RefusalError(Exception):
    """The message is refused: `ack_code` AR (cannot be processed as sent) or AE (processed and refused),
    `location` the HL7 error location (segment^sequence^field^component, e.g. `PID^1^3^1`), `condition` a table 0357
    code, `text` a plain message that holds no patient data."""

    location: str
    condition: str
    text: str
    ack_code: str = "AR"

    def __str__(self) -> str:
        return f"{self.location}: {self.text}"

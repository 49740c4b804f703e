"""Every refusal the hub can give: one exception type and one code enum.

A `Code` names an entry of the `handover-error` CodeSystem (fhir_profiles/CodeSystem-handover-error.json)
and carries its HTTP status and the matching NHS `http-error-codes` coding, so BaRS-built clients understand
it. The HTTP middleware is the only place that turns a `HandoverError` into a response.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

HANDOVER_ERROR_SYSTEM = "https://handover.nhs.example/fhir/CodeSystem/handover-error"
NHS_HTTP_ERROR_SYSTEM = "https://fhir.nhs.uk/Codesystem/http-error-codes"  # lower-case "s", as BaRS spells it


class Code(StrEnum):
    """A stable error code; its value is the code in the handover-error CodeSystem."""

    INVALID_JSON = "invalid-json"
    BAD_HEADER = "bad-header"
    SIGNATURE_MISSING = "signature-missing"
    SIGNATURE_INVALID = "signature-invalid"
    UNKNOWN_KEY = "unknown-key"
    UNAUTHENTICATED = "unauthenticated"
    SENDER_MISMATCH = "sender-mismatch"
    KEY_REVOKED = "key-revoked"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not-found"
    METHOD_NOT_ALLOWED = "method-not-allowed"
    DUPLICATE_MESSAGE = "duplicate-message"
    PAYLOAD_TOO_LARGE = "payload-too-large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type"
    NOT_A_MESSAGE = "not-a-message"
    PROFILE_VIOLATION = "profile-violation"
    UNKNOWN_RECIPIENT = "unknown-recipient"
    STALE_MESSAGE = "stale-message"
    IDEMPOTENCY_KEY_REUSE = "idempotency-key-reuse"
    INVALID_TRANSITION = "invalid-transition"
    PATIENT_MISMATCH = "patient-mismatch"
    RATE_LIMITED = "rate-limited"
    UNAVAILABLE = "unavailable"
    UNDELIVERABLE = "undeliverable"
    INTERNAL = "internal"

    @property
    def status(self) -> int:
        return _STATUS[self]

    @property
    def nhs_code(self) -> str:
        return _NHS_CODE[self]


_STATUS: dict[Code, int] = {
    Code.INVALID_JSON: 400,
    Code.BAD_HEADER: 400,
    Code.SIGNATURE_MISSING: 401,
    Code.SIGNATURE_INVALID: 401,
    Code.UNKNOWN_KEY: 401,
    Code.UNAUTHENTICATED: 401,
    Code.SENDER_MISMATCH: 403,
    Code.KEY_REVOKED: 403,
    Code.FORBIDDEN: 403,
    Code.NOT_FOUND: 404,
    Code.METHOD_NOT_ALLOWED: 405,
    Code.DUPLICATE_MESSAGE: 409,
    Code.PAYLOAD_TOO_LARGE: 413,
    Code.UNSUPPORTED_MEDIA_TYPE: 415,
    Code.NOT_A_MESSAGE: 422,
    Code.PROFILE_VIOLATION: 422,
    Code.UNKNOWN_RECIPIENT: 422,
    Code.STALE_MESSAGE: 422,
    Code.IDEMPOTENCY_KEY_REUSE: 422,
    Code.INVALID_TRANSITION: 422,
    Code.PATIENT_MISMATCH: 422,
    Code.RATE_LIMITED: 429,
    Code.UNAVAILABLE: 503,
    # Only ever inside a non-delivery report (never an HTTP answer of the hub's own): the hub, as a gateway,
    # could not hand the message on, so the gateway-timeout status and BaRS's receiver-timeout code.
    Code.UNDELIVERABLE: 504,
    Code.INTERNAL: 500,
}

_NHS_CODE: dict[Code, str] = {
    Code.INVALID_JSON: "SEND_BAD_REQUEST",
    Code.BAD_HEADER: "SEND_BAD_REQUEST",
    Code.SIGNATURE_MISSING: "SEND_UNAUTHORIZED",
    Code.SIGNATURE_INVALID: "SEND_UNAUTHORIZED",
    Code.UNKNOWN_KEY: "SEND_UNAUTHORIZED",
    Code.UNAUTHENTICATED: "SEND_UNAUTHORIZED",
    Code.SENDER_MISMATCH: "SEND_FORBIDDEN",
    Code.KEY_REVOKED: "SEND_FORBIDDEN",
    Code.FORBIDDEN: "SEND_FORBIDDEN",
    Code.NOT_FOUND: "SEND_NOT_FOUND",
    Code.METHOD_NOT_ALLOWED: "SEND_METHOD_NOT_ALLOWED",
    Code.DUPLICATE_MESSAGE: "REC_CONFLICT",
    Code.PAYLOAD_TOO_LARGE: "SEND_PAYLOAD_TOO_LARGE",
    Code.UNSUPPORTED_MEDIA_TYPE: "SEND_UNSUPPORTED_MEDIA_TYPE",
    Code.NOT_A_MESSAGE: "SEND_UNPROCESSABLE_ENTITY",
    Code.PROFILE_VIOLATION: "SEND_UNPROCESSABLE_ENTITY",
    Code.UNKNOWN_RECIPIENT: "SEND_UNPROCESSABLE_ENTITY",
    Code.STALE_MESSAGE: "SEND_UNPROCESSABLE_ENTITY",
    Code.IDEMPOTENCY_KEY_REUSE: "SEND_UNPROCESSABLE_ENTITY",
    Code.INVALID_TRANSITION: "SEND_UNPROCESSABLE_ENTITY",
    Code.PATIENT_MISMATCH: "SEND_UNPROCESSABLE_ENTITY",
    Code.RATE_LIMITED: "SEND_TOO_MANY_REQUESTS",
    Code.UNAVAILABLE: "REC_UNAVAILABLE",
    Code.UNDELIVERABLE: "REC_TIMEOUT",
    Code.INTERNAL: "REC_SERVER_ERROR",
}

# FHIR OperationOutcome.issue.code (http://hl7.org/fhir/issue-type) for each of our codes.
_ISSUE_TYPE: dict[Code, str] = {
    Code.INVALID_JSON: "structure",
    Code.BAD_HEADER: "invalid",
    Code.SIGNATURE_MISSING: "security",
    Code.SIGNATURE_INVALID: "security",
    Code.UNKNOWN_KEY: "security",
    Code.UNAUTHENTICATED: "login",
    Code.SENDER_MISMATCH: "security",
    Code.KEY_REVOKED: "security",
    Code.FORBIDDEN: "forbidden",
    Code.NOT_FOUND: "not-found",
    Code.METHOD_NOT_ALLOWED: "not-supported",
    Code.DUPLICATE_MESSAGE: "duplicate",
    Code.PAYLOAD_TOO_LARGE: "too-costly",
    Code.UNSUPPORTED_MEDIA_TYPE: "not-supported",
    Code.NOT_A_MESSAGE: "structure",
    Code.PROFILE_VIOLATION: "invariant",
    Code.UNKNOWN_RECIPIENT: "not-found",
    Code.STALE_MESSAGE: "business-rule",
    Code.IDEMPOTENCY_KEY_REUSE: "conflict",
    Code.INVALID_TRANSITION: "business-rule",
    Code.PATIENT_MISMATCH: "business-rule",
    Code.RATE_LIMITED: "throttled",
    Code.UNAVAILABLE: "transient",
    Code.UNDELIVERABLE: "timeout",
    Code.INTERNAL: "exception",
}


@dataclass(frozen=True)
class Issue:
    """One problem found in a request: plain-English text, and where in the resource (FHIRPath) if known."""

    code: Code
    text: str
    expression: str | None = None
    severity: str = "error"


@dataclass
class HandoverError(Exception):
    """A refusal with a stable code. `issues` holds further problems of the same kind found at once.

    The text must never quote payload values: it names elements and rules, not patient data.
    """

    code: Code
    text: str
    expression: str | None = None
    retry_after: int | None = None
    more: list[Issue] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(f"{self.code.value}: {self.text}")

    @property
    def status(self) -> int:
        return self.code.status

    @property
    def issues(self) -> list[Issue]:
        return [Issue(self.code, self.text, self.expression), *self.more]


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """An R4 OperationOutcome carrying our code and the NHS http-error-codes coding for every issue."""
    rendered = []
    for issue in issues:
        entry: dict[str, Any] = {
            "severity": issue.severity,
            "code": _ISSUE_TYPE[issue.code],
            "details": {
                "coding": [
                    {"system": HANDOVER_ERROR_SYSTEM, "code": issue.code.value},
                    {"system": NHS_HTTP_ERROR_SYSTEM, "code": issue.code.nhs_code},
                ],
                "text": issue.text,
            },
            "diagnostics": issue.text,
        }
        if issue.expression:
            entry["expression"] = [issue.expression]
        rendered.append(entry)
    return {"resourceType": "OperationOutcome", "issue": rendered}


class ConfigError(ValueError):
    """A setting is present but unusable; the message names the variable. Here, below every room, so that the
    rooms that read their own settings (identity/tls.py, mesh/settings.py) need not import service/config.py."""

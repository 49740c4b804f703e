"""Signed referral messages and bearer tokens made before a load run starts, so the clock times the hub only.

Each message is a contract referral (about 4.3 KB) from one of the network's referrers to the centre, for a
synthetic patient of its own (NHS numbers in the 999 test range), signed with the referrer's development key;
each request gets its own single-use bearer token and X-Request-ID.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from adapters.builders import Clinician, SyntheticPatient, referral, synthetic_nhs_number
from service.identity.keystore import load_private_jwk
from service.identity.registry import Registry
from service.identity.signing import sign_bundle, sign_compact_jwt
from service.terminology import load_code_system

LOCAL_CLINICIAN = Clinician("Okafor", "Adaeze", "7200001")
KEY_WORKER = Clinician("Lindqvist", "Maren", "7200002")


@dataclass(frozen=True)
class Request:
    """One POST to $process-message, ready to send."""

    sender: str
    identifier: str
    body: bytes
    token: str
    request_id: str

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/fhir+json",
            "X-Request-ID": self.request_id,
        }


def signed_referrals(registry: Registry, keys_dir: Path, count: int, *, seed: int = 0) -> list[Request]:
    """`count` distinct signed referrals, spread over every referrer, each with its own token."""
    events = load_code_system("handover-event").url
    centre = registry.centre()
    referrers = registry.referrers()
    keys = {trust.ods: load_private_jwk(keys_dir, trust.ods) for trust in referrers}
    made: list[Request] = []
    for number in range(count):
        trust = referrers[number % len(referrers)]
        patient = SyntheticPatient(synthetic_nhs_number(seed + number), "Testpatient", "Alex", "1961-04-12", "female")
        bundle = referral(
            events,
            sender_ods=trust.ods,
            sender_name=trust.name,
            receiver_ods=centre.ods,
            receiver_name=centre.name,
            patient=patient,
            referrer=LOCAL_CLINICIAN,
            key_worker=KEY_WORKER,
        )
        body = json.dumps(sign_bundle(bundle, keys[trust.ods], trust.ods), ensure_ascii=False).encode("utf-8")
        token = bearer_token(trust.ods, keys[trust.ods])
        made.append(Request(trust.ods, bundle["identifier"]["value"], body, token, str(uuid.uuid4())))
    return made


def bearer_token(ods: str, key: dict[str, object]) -> str:
    """A single-use token valid for five minutes from now (long enough for any one run)."""
    now = int(time.time())
    claims = {"iss": ods, "sub": ods, "aud": "handover", "iat": now, "exp": now + 290, "jti": str(uuid.uuid4())}
    return sign_compact_jwt(claims, key)

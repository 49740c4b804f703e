"""One patient's journey through the liver metastases pathway, as the messages each trust would send.

`Pathway` holds who is involved (the referring trust and its named clinician, the centre's surgeon, the
patient) and builds each message in turn from the builders, so the demo and the tests tell the same story:
referral → SMDT outcome → transfer of care to the centre → acceptance → discharge summary → transfer of care
back to the named local clinician → acceptance, with business acknowledgements in between.

A pathway with a `pathway_start` is a cancer pathway: its referral carries the Inter-Provider Transfer data set
(synthetic identifiers), the accepted SMDT outcome the decision to treat date, and the discharge summary the first
definitive treatment (OPCS-4) with the centre's adjustment days. Each date defaults to today; the demo back-dates
them (they are message content, not timestamps, so the freshness rules do not limit them).

`now`, when set, is the moment the next message is built at (its timestamps, and "today" for the dates that default
to it): the demo's year of history (adapters/history.py) sets it before each message.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from adapters import builders
from adapters.builders import Clinician, SyntheticPatient
from adapters.cwt_items import IptDataSet, Treatment, london_today
from adapters.discharge import Stay, discharge_summary

CENTRE_SURGEON = Clinician("Fenwright", "Morgan", "7100001")
SMDT_CHAIR = Clinician("Ashcombe", "Priya", "7100002")
LONDON = ZoneInfo("Europe/London")


@dataclass
class Pathway:
    event_system: str
    referrer_ods: str
    referrer_name: str
    centre_ods: str
    centre_name: str
    patient: SyntheticPatient
    local_clinician: Clinician
    key_worker: Clinician
    surgeon: Clinician = CENTRE_SURGEON
    pathway_start: date | None = None
    decision_to_refer: date | None = None
    adjustment_days_referring: int = 0
    faster_diagnosis: date | None = None
    decision_to_treat: date | None = None
    treatment_date: date | None = None
    adjustment_days_treating: int = 0
    now: datetime | None = None
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _today(self) -> date:
        return london_today() if self.now is None else self.now.astimezone(LONDON).date()

    @property
    def ipt(self) -> IptDataSet | None:
        """The IPT data set of a cancer pathway's referral; None when the pathway has no start date."""
        if self.pathway_start is None:
            return None
        return IptDataSet.synthetic(
            self.referrer_ods,
            self.patient.nhs_number,
            self.decision_to_refer or self.pathway_start,
            adjustment_days=self.adjustment_days_referring,
            faster_diagnosis=self.faster_diagnosis,
        )

    @property
    def referral_identifier(self) -> str:
        request = next(
            e["resource"] for e in self.sent["referral"]["entry"] if e["resource"]["resourceType"] == "ServiceRequest"
        )
        return str(request["identifier"][0]["value"])

    def referral(self) -> dict[str, Any]:
        self.sent["referral"] = builders.referral(
            self.event_system,
            sender_ods=self.referrer_ods,
            sender_name=self.referrer_name,
            receiver_ods=self.centre_ods,
            receiver_name=self.centre_name,
            patient=self.patient,
            referrer=self.local_clinician,
            key_worker=self.key_worker,
            pathway_start=self.pathway_start,
            ipt=self.ipt,
            timestamp=self.now,
        )
        return self.sent["referral"]

    def referral_again(self) -> dict[str, Any]:
        """The same referral (same ServiceRequest identifier) sent again, e.g. with the information asked for."""
        again = copy.deepcopy(self.sent["referral"])
        again["identifier"] = {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{builders.new_id()}"}
        if self.now is not None:
            again["timestamp"] = builders.instant(self.now)
        again["entry"][0]["resource"]["id"] = builders.new_id()
        return again

    def outcome(self, decision: str) -> dict[str, Any]:
        reasons = {
            "declined": "Disease not resectable; local oncology plan recommended.",
            "more-information-needed": "Please send the liver MRI from last month.",
        }
        self.sent["referral-outcome"] = builders.referral_outcome(
            self.event_system,
            self.centre_ods,
            self.centre_name,
            self.sent["referral"],
            decision=decision,
            plan="Listed for liver resection." if decision == "accepted" else "See reason.",
            decided_by=SMDT_CHAIR,
            reason=reasons.get(decision),
            decision_to_treat=(self.decision_to_treat or self._today())
            if decision == "accepted" and self.pathway_start
            else None,
            timestamp=self.now,
        )
        return self.sent["referral-outcome"]

    def transfer_to_centre(self) -> dict[str, Any]:
        """The local clinician hands the patient to the centre's surgeon."""
        return self._transfer("transfer-to-centre", to_centre=True)

    def centre_answers(self, *, accepted: bool = True) -> dict[str, Any]:
        return self._answer("transfer-to-centre", accepted, "No bed this week; please re-send on Monday.")

    def discharge_summary(self) -> dict[str, Any]:
        today = self._today()
        treatment = None
        if self.pathway_start is not None:
            treatment = Treatment(self.treatment_date or today, adjustment_days=self.adjustment_days_treating)
        stay = Stay(
            admitted=min(today - timedelta(days=6), treatment.performed if treatment else today),
            discharged=today,
            summary="Right hemihepatectomy; uneventful recovery.",
            plan="Oncology review in 4 weeks.",
            medications=("Paracetamol 1 g four times daily for 5 days",),
        )
        return discharge_summary(
            self.event_system,
            sender_ods=self.centre_ods,
            sender_name=self.centre_name,
            receiver_ods=self.referrer_ods,
            receiver_name=self.referrer_name,
            patient=self.patient,
            author=self.surgeon,
            referral_identifier=self.referral_identifier,
            stay=stay,
            treatment=treatment,
            timestamp=self.now,
        )

    def transfer_back(self) -> dict[str, Any]:
        """The centre's surgeon hands the patient back to the named local clinician."""
        return self._transfer("transfer-back", to_centre=False)

    def referrer_answers(self, *, accepted: bool = True) -> dict[str, Any]:
        return self._answer("transfer-back", accepted, "Named clinician on leave.")

    def _transfer(self, name: str, *, to_centre: bool) -> dict[str, Any]:
        local = (self.referrer_ods, self.referrer_name, self.local_clinician)
        centre = (self.centre_ods, self.centre_name, self.surgeon)
        (from_ods, from_name, from_clinician), (to_ods, to_name, to_clinician) = (
            (local, centre) if to_centre else (centre, local)
        )
        self.sent[name] = builders.transfer_of_care(
            self.event_system,
            sender_ods=from_ods,
            sender_name=from_name,
            receiver_ods=to_ods,
            receiver_name=to_name,
            patient=self.patient,
            from_clinician=from_clinician,
            to_clinician=to_clinician,
            referral_identifier=self.referral_identifier,
            timestamp=self.now,
        )
        return self.sent[name]

    def _answer(self, name: str, accepted: bool, rejection: str) -> dict[str, Any]:
        request = self.sent[name]
        answering = request["entry"][0]["resource"]["destination"][0]["receiver"]["identifier"]["value"]
        answering_name = self.centre_name if answering == self.centre_ods else self.referrer_name
        return builders.transfer_of_care_response(
            self.event_system,
            answering,
            answering_name,
            request,
            accepted=accepted,
            reason=None if accepted else rejection,
            timestamp=self.now,
        )

    def acknowledge(self, message: dict[str, Any], by_ods: str, by_name: str) -> dict[str, Any]:
        return builders.acknowledgement(self.event_system, by_ods, by_name, message, timestamp=self.now)

"""Wrong patient (hazard log HAZ-04): a message names one patient throughout, and a message in an episode names
the episode's patient (NHS number, and date of birth where given), else 422 `patient-mismatch` with nothing
stored but the refusal's audit event. A new address or name is not a different patient. Real hub, real HTTP,
real PostgreSQL."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from adapters import builders
from adapters.pathway import Pathway
from service.terminology import NHS_NUMBER_SYSTEM
from tests.support.hub import RunningHub
from tests.support.messages import pathway, referral

OTHER_NHS_NUMBER = builders.synthetic_nhs_number(77001)


def about(pathway: Pathway, **changes: Any) -> Pathway:
    """The same referral (the same `sent` messages) but its later messages built for a changed patient."""
    return dataclasses.replace(pathway, patient=dataclasses.replace(pathway.patient, **changes))


async def send(hub: RunningHub, ods: str, bundle: dict[str, Any]) -> Any:
    client = hub.trust(ods)
    return await client.send(client.sign(bundle))


class Stored:
    """What the hub's database holds: to prove a refusal stored nothing but its audit event."""

    def __init__(self, rows: dict[str, int], refusals: list[str]) -> None:
        self.rows, self.refusals = rows, refusals

    @classmethod
    async def now(cls, hub: RunningHub) -> Stored:
        conn = await asyncpg.connect(hub.dsn)
        try:
            rows = {
                table: int(await conn.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608 - fixed names
                for table in ("messages", "episodes", "episode_messages", "responsibility_ledger", "deliveries")
            }
            refusals = [
                r["outcome"]
                for r in await conn.fetch(
                    "SELECT outcome FROM audit_events WHERE event_type = 'message-refused' ORDER BY seq"
                )
            ]
        finally:
            await conn.close()
        return cls(rows, refusals)


async def assert_refused_storing_nothing(hub: RunningHub, ods: str, bundle: dict[str, Any]) -> None:
    before = await Stored.now(hub)
    result = await send(hub, ods, bundle)
    assert result.status == 422, result.body
    assert "patient-mismatch" in result.error_codes
    assert "SEND_UNPROCESSABLE_ENTITY" in result.error_codes
    after = await Stored.now(hub)
    assert after.rows == before.rows, "a refusal stores nothing"
    assert after.refusals == [*before.refusals, "patient-mismatch"], "but its own audit event"


def second_nhs_number_on_the_condition(bundle: dict[str, Any]) -> None:
    condition = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Condition")
    condition["subject"]["identifier"] = {"system": NHS_NUMBER_SYSTEM, "value": OTHER_NHS_NUMBER}


def second_patient_with_another_birth_date(bundle: dict[str, Any]) -> None:
    patient = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    twin = copy.deepcopy(patient)
    twin["resource"]["id"] = builders.new_id()
    twin["fullUrl"] = f"urn:uuid:{twin['resource']['id']}"
    twin["resource"]["birthDate"] = "1960-01-01"
    bundle["entry"].append(twin)


@pytest.mark.parametrize(
    "edit", [second_nhs_number_on_the_condition, second_patient_with_another_birth_date], ids=["nhs", "birth-date"]
)
async def test_wrong_patient_a_message_naming_two_patients_is_refused(
    hub: RunningHub, edit: Callable[[dict[str, Any]], None]
) -> None:
    bundle = referral("RM1")
    edit(bundle)
    await assert_refused_storing_nothing(hub, "RM1", bundle)


async def test_wrong_patient_a_later_message_naming_another_nhs_number_is_refused(hub: RunningHub) -> None:
    mine = pathway(601)
    assert (await send(hub, "RM1", mine.referral())).accepted
    assert (await send(hub, "RGT", mine.outcome("accepted"))).accepted
    someone_else = about(mine, nhs_number=OTHER_NHS_NUMBER)
    await assert_refused_storing_nothing(hub, "RM1", someone_else.transfer_to_centre())
    assert (await send(hub, "RM1", mine.transfer_to_centre())).accepted, "the right patient still goes through"


async def test_wrong_patient_a_later_message_with_another_birth_date_is_refused(hub: RunningHub) -> None:
    mine = pathway(602)
    assert (await send(hub, "RM1", mine.referral())).accepted
    assert (await send(hub, "RGT", mine.outcome("accepted"))).accepted
    await assert_refused_storing_nothing(hub, "RM1", about(mine, birth_date="1958-04-13").transfer_to_centre())


async def test_wrong_patient_a_new_address_or_name_is_the_same_patient(hub: RunningHub) -> None:
    mine = pathway(603)
    assert (await send(hub, "RM1", mine.referral())).accepted
    assert (await send(hub, "RGT", mine.outcome("accepted"))).accepted
    moved = about(mine, family="Newname")
    transfer = moved.transfer_to_centre()
    patient = next(e["resource"] for e in transfer["entry"] if e["resource"]["resourceType"] == "Patient")
    patient["address"] = [{"use": "home", "line": ["1 New Street"], "city": "Norwich", "postalCode": "NR1 1AA"}]
    result = await send(hub, "RM1", transfer)
    assert result.accepted, result.body
    assert (await send(hub, "RGT", moved.centre_answers())).accepted


async def test_wrong_patient_a_referral_identifier_of_another_patients_episode_is_refused(hub: RunningHub) -> None:
    mine = pathway(604)
    assert (await send(hub, "RM1", mine.referral())).accepted
    reused = copy.deepcopy(mine.sent["referral"])
    reused["identifier"]["value"] = f"urn:uuid:{builders.new_id()}"
    reused["entry"][0]["resource"]["id"] = builders.new_id()
    patient = next(e["resource"] for e in reused["entry"] if e["resource"]["resourceType"] == "Patient")
    patient["identifier"][0]["value"] = OTHER_NHS_NUMBER
    await assert_refused_storing_nothing(hub, "RM1", reused)

"""Following each message into its episode, inside the acceptance transaction.

`EpisodeTracker.record` applies the message to its episode (creating it for a referral), appends any change of
clinical responsibility to the ledger, sets and meets the safety net's deadlines, and refuses a message that
makes no sense for the episode with 422 `invalid-transition` — in which case nothing of the message is kept.
A message about another patient than its episode's (NHS number, or date of birth where both give one; compared
as keyed pseudonyms) is refused with 422 `patient-mismatch`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from uuid import UUID

import asyncpg

from service.config import Settings
from service.episodes import snapshot
from service.episodes.cwt_dates import CwtConflict, CwtMessage, next_cwt_dates
from service.episodes.cwt_reading import CwtItems, focus_of, read_cwt_items
from service.episodes.machine import Episode, Fact, InvalidTransition, Kind, Outcome, State, apply, start
from service.episodes.patient import PatientIdentity
from service.episodes.reading import (
    EpisodeMessage,
    NotAnEpisodeMessage,
    ReadMessage,
    read_acknowledgement,
    read_episode_message,
)
from service.errors import Code, HandoverError
from service.pseudonyms import Pseudonymiser
from service.store import cwt as cwt_store
from service.store import episodes as store


@dataclass(frozen=True)
class Deadlines:
    """How long each party has (defaults from issue 6)."""

    acknowledgement: timedelta = timedelta(hours=4)
    smdt_outcome: timedelta = timedelta(days=14)
    transfer_response: timedelta = timedelta(hours=24)
    discharge_summary: timedelta = timedelta(hours=24)

    @classmethod
    def from_settings(cls, settings: Settings) -> Deadlines:
        return cls(
            acknowledgement=timedelta(hours=settings.deadline_acknowledgement_hours),
            smdt_outcome=timedelta(days=settings.deadline_smdt_outcome_days),
            transfer_response=timedelta(hours=settings.deadline_transfer_response_hours),
            discharge_summary=timedelta(hours=settings.deadline_discharge_summary_hours),
        )


@dataclass(frozen=True)
class StoredMessage:
    id: UUID
    event: str
    sender_ods: str
    recipient_ods: str
    accepted_at: datetime
    patient: PatientIdentity | None = None
    """Who the message is about, as intake read it once (`InboundMessage.patient`)."""


class EpisodeTracker:
    def __init__(self, pseudonymiser: Pseudonymiser, deadlines: Deadlines | None = None) -> None:
        self._pseudonyms = pseudonymiser
        self._deadlines = deadlines or Deadlines()

    async def record(self, conn: asyncpg.Connection, read: ReadMessage, message: StoredMessage) -> date | None:
        """Apply the message (`read`: its header and its one index) to its episode; returns the episode's IPT
        received date when the message is a cancer pathway referral that has one (for its receipt), else None."""
        if message.event == "acknowledgement":
            await self._acknowledgement(conn, read, message)
            return None
        try:
            said = read_episode_message(
                read,
                event=message.event,
                message_id=str(message.id),
                sender=message.sender_ods,
                recipient=message.recipient_ods,
                at=message.accepted_at,
            )
        except NotAnEpisodeMessage as err:
            raise HandoverError(Code.PROFILE_VIOLATION, str(err), "Bundle.entry[0].resource.focus") from None
        patient = self._pseudonyms.nhs_number(said.nhs_number)
        birth_date = self._birth_date(message.patient, said.nhs_number)
        worker = said.key_worker  # shown on the staff pages' episode page
        key_worker = store.KeyWorker(worker.name, worker.identifier, worker.ods) if worker is not None else None
        items = _cwt_items_or_none(read, message)
        opening = self._opening(said, message, birth_date=birth_date, key_worker=key_worker, items=items)
        found = await store.lock_or_open_episode(  # one round trip: the episode, or the one this referral opens
            conn,
            patient,
            said.referral_identifier,
            parties=(message.sender_ods, message.recipient_ods),
            new=opening,
        )
        row, opened = found.row, found.opened
        if row is None:
            if found.of_another_patient:
                raise _wrong_patient("its NHS number differs from the patient of the episode this referral belongs to")
            if opening is None:
                raise HandoverError(
                    Code.INVALID_TRANSITION,
                    "there is no episode for this referral: the referral must come first (episode state: none)",
                    "Bundle.entry[0].resource.eventCoding",
                )
            row = await store.lock_episode(conn, patient, said.referral_identifier)  # opened meanwhile
        if row is None:
            raise HandoverError(Code.UNAVAILABLE, "the episode could not be opened; retry", retry_after=1)
        if opened:  # the episode was opened with the date of birth and key worker
            before, outcome = None, Outcome(snapshot.load(row.snapshot), changed=True)
        else:
            if birth_date is not None and await store.claim_birth_date(conn, row.id, birth_date) != birth_date:
                raise _wrong_patient("its date of birth differs from the episode's patient")
            before = snapshot.load(row.snapshot)
            try:
                outcome = apply(before, said.fact)
            except InvalidTransition as err:
                raise HandoverError(Code.INVALID_TRANSITION, str(err), "Bundle.entry[0].resource.eventCoding") from None
            await store.update_episode(
                conn,
                row.id,
                state=outcome.episode.state.value,
                snapshot=snapshot.dump(outcome.episode),
                pathway_start=said.pathway_start,
                at=message.accepted_at,
                key_worker=key_worker,
            )
        ipt_received = await self._record_cwt(
            conn,
            read,
            message,
            row.id,
            kind=said.fact.kind,
            outcome=outcome,
            reopened=before is not None and before.state is State.MORE_INFORMATION_NEEDED,
            cancer=(row.pathway_start or said.pathway_start) is not None,
            items=items,
            opened_with=opening.cwt if opened and opening is not None else None,
        )
        if opened and opening is not None and opening.timeline is not None:
            return ipt_received  # its timeline, holder and clocks were written with the episode
        started, met = self._deadline_changes(said.fact, message, outcome)
        for kind in met:  # the answers this message gives stop their clocks
            await store.meet_deadlines(conn, episode_id=row.id, kind=kind, at=message.accepted_at)
        await store.record_timeline(
            conn,
            store.NewTimelineEntry(
                row.id,
                message.id,
                said.fact.kind.value,
                message.sender_ods,
                message.recipient_ods,
                message.accepted_at,
                outcome.changed,
            ),
            ledger=_new_ledger_entries(before, outcome.episode),
            deadlines=started,
        )
        return ipt_received

    async def _record_cwt(
        self,
        conn: asyncpg.Connection,
        read: ReadMessage,
        message: StoredMessage,
        episode_id: UUID,
        *,
        kind: Kind,
        outcome: Outcome,
        reopened: bool,
        cancer: bool,
        items: CwtItems | None,
        opened_with: cwt_store.CwtDates | None,
    ) -> date | None:
        """The Cancer Waiting Times dates this message gives its episode (service/episodes/cwt_dates.py), recorded
        in the same transaction; 422 invalid-transition when one contradicts the episode's. `items`: the message's
        CWT items if already read; `opened_with`: the dates the episode was just opened with (`_opening`), which
        are these already."""
        if opened_with is not None:
            return opened_with.ipt_received_date if kind is Kind.REFERRAL else None
        if items is None:
            items = read_cwt_items(read.index, message.event, focus_of(read.header, read.index))
        if not _gives_cwt_dates(items, kind, changed=outcome.changed, cancer=cancer):
            return None
        current = await cwt_store.read_cwt_dates(conn, episode_id)
        facts = CwtMessage(kind, outcome.changed, reopened and outcome.changed, message.id, message.accepted_at)
        try:
            dates = next_cwt_dates(current, items, facts)
        except CwtConflict as err:
            raise HandoverError(
                Code.INVALID_TRANSITION, f"Cancer Waiting Times: {err}", "Bundle.entry[0].resource.focus"
            ) from None
        if dates != current:
            await cwt_store.write_cwt_dates(conn, episode_id, dates)
        return dates.ipt_received_date if kind is Kind.REFERRAL else None

    def _birth_date(self, identity: PatientIdentity | None, nhs: str) -> str | None:
        """The keyed pseudonym of the patient's date of birth, if the message gives one: an episode keeps the first
        one given, and a message giving another is refused."""
        if identity is None or identity.birth_date is None:
            return None
        return self._pseudonyms.birth_date(nhs, identity.birth_date)

    def _opening(
        self,
        said: EpisodeMessage,
        message: StoredMessage,
        *,
        birth_date: str | None,
        key_worker: store.KeyWorker | None,
        items: CwtItems | None,
    ) -> store.NewEpisode | None:
        """The episode this message opens when there is none yet (a referral's), with what it adds to the episode
        (its timeline entry, holder, clocks and CWT dates, written in the same statement); None if it cannot open
        one."""
        try:
            episode = start(said.fact)
        except InvalidTransition:
            return None
        episode_id = uuid.uuid4()
        cwt = None  # when the CWT dates cannot be worked out here, `_record_cwt` does it (and refuses) as ever
        if items is not None:
            cwt = _NO_CWT_DATES  # a new episode's (its clock start is the pathway start, written as such)
            if _gives_cwt_dates(items, said.fact.kind, changed=True, cancer=said.pathway_start is not None):
                current = cwt_store.CwtDates(clock_start=said.pathway_start)  # as the new row will hold them
                facts = CwtMessage(said.fact.kind, True, False, message.id, message.accepted_at)
                try:
                    cwt = next_cwt_dates(current, items, facts)
                except CwtConflict:
                    cwt = None
        started, _ = self._deadline_changes(said.fact, message, Outcome(episode, changed=True))
        ledger = _new_ledger_entries(None, episode)
        entry = store.NewTimelineEntry(
            episode_id,
            message.id,
            said.fact.kind.value,
            message.sender_ods,
            message.recipient_ods,
            message.accepted_at,
            True,
        )
        return store.NewEpisode(
            episode_id=episode_id,
            referrer_ods=said.fact.sender_ods,
            centre_ods=said.fact.recipient_ods,
            state=episode.state.value,
            snapshot=snapshot.dump(episode),
            pathway_start=said.pathway_start,
            at=said.fact.at,
            birth_date_hmac=birth_date,
            key_worker=key_worker,
            timeline=store.Timeline(entry, ledger, started) if len(ledger) <= 1 else None,
            cwt=cwt,
        )

    def _deadline_changes(
        self, fact: Fact, message: StoredMessage, outcome: Outcome
    ) -> tuple[list[store.NewDeadline], list[str]]:
        """The clocks this message starts, and the kinds of answer it gives (whose open clocks stop)."""
        at, d = message.accepted_at, self._deadlines
        started: list[store.NewDeadline] = []
        met: list[str] = []

        def recipient_owes(kind: str, within: timedelta) -> None:
            started.append(store.NewDeadline(kind, message.id, message.recipient_ods, message.sender_ods, at + within))

        recipient_owes("acknowledgement", d.acknowledgement)
        if not outcome.changed:
            return started, met
        if fact.kind is Kind.REFERRAL:
            recipient_owes("smdt-outcome", d.smdt_outcome)
        elif fact.kind in (Kind.OUTCOME_ACCEPTED, Kind.OUTCOME_DECLINED, Kind.OUTCOME_MORE_INFORMATION):
            met.append("smdt-outcome")
        elif fact.kind is Kind.TRANSFER_REQUESTED:
            recipient_owes("transfer-response", d.transfer_response)
            episode = outcome.episode
            if episode.state is State.TRANSFER_BACK_REQUESTED and episode.discharge_summary_at is None:
                # Handing the patient back is the discharge from the centre: the centre owes the summary.
                summary_due = at + d.discharge_summary
                started.append(
                    store.NewDeadline(
                        "discharge-summary", message.id, message.sender_ods, message.recipient_ods, summary_due
                    )
                )
        elif fact.kind in (Kind.TRANSFER_ACCEPTED, Kind.TRANSFER_REJECTED):
            met.append("transfer-response")
        elif fact.kind is Kind.DISCHARGE_SUMMARY:
            met.append("discharge-summary")
        return started, met

    async def _acknowledgement(self, conn: asyncpg.Connection, read: ReadMessage, message: StoredMessage) -> None:
        ack = read_acknowledgement(read)
        if ack is None:
            return
        found = await store.find_acknowledged(
            conn,
            sender_ods=message.recipient_ods,
            recipient_ods=message.sender_ods,
            header_id=ack.acknowledged_header_id,
        )
        if found is None:
            return  # acknowledges a message outside any episode (e.g. a receipt): nothing to track
        episode_id, acknowledged = found
        await store.mark_acknowledged(conn, episode_id, acknowledged, message.accepted_at)
        await store.meet_deadlines(
            conn, episode_id=episode_id, kind="acknowledgement", at=message.accepted_at, message_id=acknowledged
        )
        await store.add_message(
            conn,
            episode_id=episode_id,
            message_id=message.id,
            kind="acknowledgement",
            sender_ods=message.sender_ods,
            recipient_ods=message.recipient_ods,
            at=message.accepted_at,
            changed=False,
        )


def _cwt_items_or_none(read: ReadMessage, message: StoredMessage) -> CwtItems | None:
    """The message's CWT items, read once for both the opening of an episode and `_record_cwt`; None when they
    cannot be read (a malformed date): `_record_cwt` then fails where it always did, after the episode's checks."""
    try:
        return read_cwt_items(read.index, message.event, focus_of(read.header, read.index))
    except ValueError:
        return None


_NO_CWT_DATES = cwt_store.CwtDates()


def _gives_cwt_dates(items: CwtItems, kind: Kind, *, changed: bool, cancer: bool) -> bool:
    """Whether the message may change its episode's CWT dates: it gives one, clears the IPT received date
    (`more-information-needed`, when it moves the state), or is a cancer pathway referral (which may complete the
    data set)."""
    more_information = kind is Kind.OUTCOME_MORE_INFORMATION and changed
    return not items.empty or more_information or (kind is Kind.REFERRAL and cancer)


def _wrong_patient(why: str) -> HandoverError:
    return HandoverError(
        Code.PATIENT_MISMATCH,
        f"This message names a different patient from its handover episode: {why}. Nothing was stored; check "
        "the patient and the referral it is based on",
        "Bundle.entry.resource.identifier",
    )


def _new_ledger_entries(before: Episode | None, after: Episode) -> list[store.LedgerEntry]:
    """The holders of clinical responsibility this message added to the episode's ledger, numbered on."""
    known = 0 if before is None else len(before.ledger)
    return [
        store.LedgerEntry(
            seq,
            holder.clinician.ods,
            holder.clinician.name,
            holder.clinician.identifier,
            holder.since,
            UUID(holder.caused_by),
            holder.accepted_by.name if holder.accepted_by else None,
        )
        for seq, holder in enumerate(after.ledger[known:], start=known)
    ]

"""The handover episode state machine and responsibility ledger, as pure logic (no I/O).

An episode follows one referral (NHS number + referral ServiceRequest identifier) through the pathway:

    referred ─outcome accepted→ accepted ─transfer requested→ transfer-requested ─accepted→ at-centre
       │  ↑                                   (rejected → back to accepted)                    │
       │  └─ re-referral ← more-information-needed                                             ▼
       ├─ outcome declined → declined-closed                         discharge summary / transfer back requested
       └─ withdrawn (any open state before the patient is at the centre)        │                 │
                                                       transfer-back-requested ─accepted→ closed
                                                        (rejected → back to at-centre)

Clinical responsibility is held by exactly one named clinician at one organisation at every moment. It starts
with the referring clinician and moves only when the named receiving clinician accepts a transfer of care; a
rejected or unanswered transfer leaves it where it was. Repeats of a fact the episode already reflects (a
message re-sent under a new Bundle.identifier) are recorded but change nothing; a fact that makes no sense in
the current state is refused with `InvalidTransition`, whose text names the state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum


class State(StrEnum):
    REFERRED = "referred"
    MORE_INFORMATION_NEEDED = "more-information-needed"
    ACCEPTED = "accepted"
    DECLINED_CLOSED = "declined-closed"
    WITHDRAWN = "withdrawn"
    TRANSFER_REQUESTED = "transfer-requested"
    AT_CENTRE = "at-centre"
    DISCHARGE_SUMMARY_SENT = "discharge-summary-sent"
    TRANSFER_BACK_REQUESTED = "transfer-back-requested"
    CLOSED = "closed"


TERMINAL = frozenset({State.DECLINED_CLOSED, State.WITHDRAWN, State.CLOSED})


class Kind(StrEnum):
    """What a message means for an episode."""

    REFERRAL = "referral"
    WITHDRAWAL = "withdrawal"
    OUTCOME_ACCEPTED = "outcome-accepted"
    OUTCOME_DECLINED = "outcome-declined"
    OUTCOME_MORE_INFORMATION = "outcome-more-information-needed"
    TRANSFER_REQUESTED = "transfer-requested"
    TRANSFER_ACCEPTED = "transfer-accepted"
    TRANSFER_REJECTED = "transfer-rejected"
    DISCHARGE_SUMMARY = "discharge-summary"


@dataclass(frozen=True)
class Clinician:
    """A named clinician at an organisation (ODS code); `identifier` is e.g. a GMC number."""

    ods: str
    name: str
    identifier: str | None = None

    def same_person(self, other: Clinician) -> bool:
        if self.ods != other.ods:
            return False
        if self.identifier and other.identifier:
            return self.identifier == other.identifier
        return self.name.casefold() == other.name.casefold()


@dataclass(frozen=True)
class Fact:
    """One message, as the episode sees it. `clinician` is: the referring clinician (referral), the named
    receiving clinician (transfer requested), or the clinician answering (transfer accepted/rejected).
    `transfer_id` ties a transfer response to its request."""

    kind: Kind
    message_id: str
    sender_ods: str
    recipient_ods: str
    at: datetime
    clinician: Clinician | None = None
    transfer_id: str | None = None


@dataclass(frozen=True)
class Holder:
    """One entry of the responsibility ledger: who holds responsibility from `since`, and why."""

    clinician: Clinician
    since: datetime
    caused_by: str  # message id
    accepted_by: Clinician | None = None


@dataclass(frozen=True)
class PendingTransfer:
    transfer_id: str
    to: Clinician
    requested_at: datetime
    message_id: str
    back_to_referrer: bool


@dataclass(frozen=True)
class Episode:
    state: State
    referrer_ods: str
    centre_ods: str
    ledger: tuple[Holder, ...]
    pending: PendingTransfer | None = None
    discharge_summary_at: datetime | None = None
    answered: tuple[tuple[str, bool], ...] = ()  # (transfer id, accepted) of every answered transfer
    history: tuple[str, ...] = field(default=())  # message ids in the order applied

    @property
    def responsible(self) -> Holder:
        return self.ledger[-1]


class InvalidTransition(ValueError):  # noqa: N818 - the name the error code uses
    """A message that makes no sense for the episode's current state."""


@dataclass(frozen=True)
class Outcome:
    episode: Episode
    changed: bool  # False: a repeat the episode already reflected
    responsibility_moved: bool = False


def start(fact: Fact) -> Episode:
    """A new episode from a referral; the referring clinician holds responsibility."""
    if fact.kind is not Kind.REFERRAL or fact.clinician is None:
        raise InvalidTransition("an episode starts with a referral that names the referring clinician")
    holder = Holder(fact.clinician, fact.at, fact.message_id)
    return Episode(State.REFERRED, fact.sender_ods, fact.recipient_ods, (holder,), history=(fact.message_id,))


def apply(episode: Episode, fact: Fact) -> Outcome:
    """The episode after `fact`, or InvalidTransition naming the state it is in."""
    if fact.message_id in episode.history:
        return Outcome(episode, changed=False)
    handler = _HANDLERS[fact.kind]
    outcome = handler(episode, fact)
    recorded = replace(outcome.episode, history=(*episode.history, fact.message_id))
    return replace(outcome, episode=recorded)


def _refuse(episode: Episode, fact: Fact) -> InvalidTransition:
    return InvalidTransition(
        f"a {fact.kind.value} message makes no sense for this episode: it is {episode.state.value}"
        + (" (closed)" if episode.state in TERMINAL else "")
    )


def _to(episode: Episode, state: State, **changes: object) -> Outcome:
    return Outcome(replace(episode, state=state, **changes), changed=True)  # type: ignore[arg-type]


def _referral(episode: Episode, fact: Fact) -> Outcome:
    if fact.sender_ods != episode.referrer_ods:
        raise _refuse(episode, fact)
    if episode.state is State.MORE_INFORMATION_NEEDED:
        return _to(episode, State.REFERRED)  # re-referred with more information
    if episode.state is State.REFERRED:
        return Outcome(episode, changed=False)  # re-sent
    raise _refuse(episode, fact)


def _withdrawal(episode: Episode, fact: Fact) -> Outcome:
    if fact.sender_ods != episode.referrer_ods:
        raise _refuse(episode, fact)
    if episode.state in (State.REFERRED, State.MORE_INFORMATION_NEEDED, State.ACCEPTED):
        return _to(episode, State.WITHDRAWN)
    if episode.state is State.WITHDRAWN:
        return Outcome(episode, changed=False)
    raise _refuse(episode, fact)


Handler = Callable[[Episode, Fact], Outcome]


def _outcome(target: State) -> Handler:
    def handle(episode: Episode, fact: Fact) -> Outcome:
        if fact.sender_ods != episode.centre_ods:
            raise _refuse(episode, fact)
        if episode.state is target:
            return Outcome(episode, changed=False)
        if episode.state is State.REFERRED:
            return _to(episode, target)
        raise _refuse(episode, fact)

    return handle


def _transfer_requested(episode: Episode, fact: Fact) -> Outcome:
    if fact.clinician is None or fact.transfer_id is None:
        raise InvalidTransition("a transfer of care must name the receiving clinician and carry an identifier")
    pending = episode.pending
    if pending is not None and pending.transfer_id == fact.transfer_id:
        return Outcome(episode, changed=False)
    to_centre = episode.state is State.ACCEPTED and fact.sender_ods == episode.referrer_ods
    to_referrer = episode.state in (State.AT_CENTRE, State.DISCHARGE_SUMMARY_SENT) and (
        fact.sender_ods == episode.centre_ods
    )
    if not (to_centre or to_referrer) or fact.clinician.ods != fact.recipient_ods:
        raise _refuse(episode, fact)
    request = PendingTransfer(fact.transfer_id, fact.clinician, fact.at, fact.message_id, back_to_referrer=to_referrer)
    return _to(episode, State.TRANSFER_BACK_REQUESTED if to_referrer else State.TRANSFER_REQUESTED, pending=request)


def _transfer_answered(accepted: bool) -> Handler:
    def handle(episode: Episode, fact: Fact) -> Outcome:
        if (fact.transfer_id, accepted) in episode.answered:
            return Outcome(episode, changed=False)  # the same answer, re-sent
        pending = episode.pending
        if pending is None:
            raise _refuse(episode, fact)
        if fact.transfer_id != pending.transfer_id or fact.sender_ods != pending.to.ods:
            raise InvalidTransition(
                f"this response does not answer the open transfer of care (episode is {episode.state.value})"
            )
        if fact.clinician is None or not fact.clinician.same_person(pending.to):
            raise InvalidTransition("only the named receiving clinician can answer a transfer of care")
        back = State.AT_CENTRE if pending.back_to_referrer else State.ACCEPTED
        if episode.discharge_summary_at is not None and pending.back_to_referrer:
            back = State.DISCHARGE_SUMMARY_SENT
        answered = (*episode.answered, (pending.transfer_id, accepted))
        if not accepted:
            return _to(episode, back, pending=None, answered=answered)
        holder = Holder(pending.to, fact.at, fact.message_id, accepted_by=fact.clinician)
        state = State.CLOSED if pending.back_to_referrer else State.AT_CENTRE
        moved = replace(episode, state=state, pending=None, ledger=(*episode.ledger, holder), answered=answered)
        return Outcome(moved, changed=True, responsibility_moved=True)

    return handle


def _discharge_summary(episode: Episode, fact: Fact) -> Outcome:
    if fact.sender_ods != episode.centre_ods:
        raise _refuse(episode, fact)
    if episode.discharge_summary_at is not None:
        return Outcome(episode, changed=False)
    if episode.state is State.AT_CENTRE:
        return _to(episode, State.DISCHARGE_SUMMARY_SENT, discharge_summary_at=fact.at)
    if episode.state in (State.TRANSFER_BACK_REQUESTED, State.CLOSED):  # independent of the transfer back
        return _to(episode, episode.state, discharge_summary_at=fact.at)
    raise _refuse(episode, fact)


_HANDLERS: dict[Kind, Handler] = {
    Kind.REFERRAL: _referral,
    Kind.WITHDRAWAL: _withdrawal,
    Kind.OUTCOME_ACCEPTED: _outcome(State.ACCEPTED),
    Kind.OUTCOME_DECLINED: _outcome(State.DECLINED_CLOSED),
    Kind.OUTCOME_MORE_INFORMATION: _outcome(State.MORE_INFORMATION_NEEDED),
    Kind.TRANSFER_REQUESTED: _transfer_requested,
    Kind.TRANSFER_ACCEPTED: _transfer_answered(accepted=True),
    Kind.TRANSFER_REJECTED: _transfer_answered(accepted=False),
    Kind.DISCHARGE_SUMMARY: _discharge_summary,
}

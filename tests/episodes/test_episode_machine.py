"""The episode state machine and responsibility ledger, as pure logic: every transition and refusal."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from service.episodes.machine import (
    TERMINAL,
    Clinician,
    Episode,
    Fact,
    InvalidTransition,
    Kind,
    State,
    apply,
    start,
)

REFERRER, CENTRE = "RM1", "RGT"
LOCAL_DOCTOR = Clinician(REFERRER, "Dr Sam Referrer", "7000001")
SURGEON = Clinician(CENTRE, "Ms Morgan Fenwright", "7100001")
_ids = itertools.count()
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def fact(
    kind: Kind,
    sender: str,
    recipient: str,
    *,
    clinician: Clinician | None = None,
    transfer_id: str | None = None,
    minutes: int = 0,
) -> Fact:
    return Fact(kind, f"m{next(_ids)}", sender, recipient, T0 + timedelta(minutes=minutes), clinician, transfer_id)


def referred() -> Episode:
    return start(fact(Kind.REFERRAL, REFERRER, CENTRE, clinician=LOCAL_DOCTOR))


def run(episode: Episode, *facts: Fact) -> Episode:
    for f in facts:
        episode = apply(episode, f).episode
    return episode


def to_centre(transfer_id: str = "t1") -> Fact:
    return fact(Kind.TRANSFER_REQUESTED, REFERRER, CENTRE, clinician=SURGEON, transfer_id=transfer_id, minutes=10)


def centre_accepts(transfer_id: str = "t1") -> Fact:
    return fact(Kind.TRANSFER_ACCEPTED, CENTRE, REFERRER, clinician=SURGEON, transfer_id=transfer_id, minutes=20)


def back_to_referrer() -> Fact:
    return fact(Kind.TRANSFER_REQUESTED, CENTRE, REFERRER, clinician=LOCAL_DOCTOR, transfer_id="t2", minutes=30)


def referrer_accepts() -> Fact:
    return fact(Kind.TRANSFER_ACCEPTED, REFERRER, CENTRE, clinician=LOCAL_DOCTOR, transfer_id="t2", minutes=40)


def test_referral_starts_an_episode_with_the_referring_clinician_responsible() -> None:
    episode = referred()
    assert episode.state is State.REFERRED
    assert episode.responsible.clinician == LOCAL_DOCTOR


def test_the_whole_pathway_moves_responsibility_there_and_back() -> None:
    episode = referred()
    episode = run(episode, fact(Kind.OUTCOME_ACCEPTED, CENTRE, REFERRER))
    assert episode.state is State.ACCEPTED
    episode = run(episode, to_centre())
    assert episode.state is State.TRANSFER_REQUESTED
    assert episode.responsible.clinician == LOCAL_DOCTOR, "a requested transfer moves nothing"
    episode = run(episode, centre_accepts())
    assert episode.state is State.AT_CENTRE
    assert episode.responsible.clinician == SURGEON
    assert episode.responsible.accepted_by == SURGEON
    episode = run(episode, fact(Kind.DISCHARGE_SUMMARY, CENTRE, REFERRER, minutes=25))
    assert episode.state is State.DISCHARGE_SUMMARY_SENT
    episode = run(episode, back_to_referrer(), referrer_accepts())
    assert episode.state is State.CLOSED
    assert [h.clinician for h in episode.ledger] == [LOCAL_DOCTOR, SURGEON, LOCAL_DOCTOR]
    assert len(episode.history) == 7


def test_transfer_back_may_come_before_the_discharge_summary() -> None:
    episode = run(
        referred(), fact(Kind.OUTCOME_ACCEPTED, CENTRE, REFERRER), to_centre(), centre_accepts(), back_to_referrer()
    )
    assert episode.state is State.TRANSFER_BACK_REQUESTED
    episode = run(episode, fact(Kind.DISCHARGE_SUMMARY, CENTRE, REFERRER, minutes=35))
    assert episode.state is State.TRANSFER_BACK_REQUESTED
    assert episode.discharge_summary_at is not None
    assert run(episode, referrer_accepts()).state is State.CLOSED


def test_rejected_transfer_leaves_responsibility_where_it_was() -> None:
    episode = run(referred(), fact(Kind.OUTCOME_ACCEPTED, CENTRE, REFERRER), to_centre())
    episode = run(episode, fact(Kind.TRANSFER_REJECTED, CENTRE, REFERRER, clinician=SURGEON, transfer_id="t1"))
    assert episode.state is State.ACCEPTED
    assert episode.responsible.clinician == LOCAL_DOCTOR
    assert len(episode.ledger) == 1
    episode = run(episode, to_centre("t3"), centre_accepts("t3"))
    assert episode.responsible.clinician == SURGEON


def test_only_the_named_receiving_clinician_can_accept() -> None:
    episode = run(referred(), fact(Kind.OUTCOME_ACCEPTED, CENTRE, REFERRER), to_centre())
    someone_else = Clinician(CENTRE, "Dr Other", "7199999")
    with pytest.raises(InvalidTransition, match="named receiving clinician"):
        apply(episode, fact(Kind.TRANSFER_ACCEPTED, CENTRE, REFERRER, clinician=someone_else, transfer_id="t1"))


def test_a_response_to_another_transfer_is_refused() -> None:
    episode = run(referred(), fact(Kind.OUTCOME_ACCEPTED, CENTRE, REFERRER), to_centre())
    with pytest.raises(InvalidTransition, match="transfer-requested"):
        apply(episode, centre_accepts("t-unknown"))


def test_more_information_then_re_referral() -> None:
    episode = run(referred(), fact(Kind.OUTCOME_MORE_INFORMATION, CENTRE, REFERRER))
    assert episode.state is State.MORE_INFORMATION_NEEDED
    episode = run(episode, fact(Kind.REFERRAL, REFERRER, CENTRE, clinician=LOCAL_DOCTOR))
    assert episode.state is State.REFERRED


@pytest.mark.parametrize(
    ("kind", "state"), [(Kind.OUTCOME_DECLINED, State.DECLINED_CLOSED), (Kind.WITHDRAWAL, State.WITHDRAWN)]
)
def test_declined_or_withdrawn_episodes_are_closed(kind: Kind, state: State) -> None:
    sender = CENTRE if kind is Kind.OUTCOME_DECLINED else REFERRER
    episode = run(referred(), fact(kind, sender, CENTRE if sender == REFERRER else REFERRER))
    assert episode.state is state
    with pytest.raises(InvalidTransition, match=state.value):
        apply(episode, fact(Kind.OUTCOME_ACCEPTED, CENTRE, REFERRER))


@pytest.mark.parametrize(
    ("facts", "refused", "state_named"),
    [
        ([], fact(Kind.TRANSFER_REQUESTED, REFERRER, CENTRE, clinician=SURGEON, transfer_id="x"), "referred"),
        ([], fact(Kind.DISCHARGE_SUMMARY, CENTRE, REFERRER), "referred"),
        ([], fact(Kind.OUTCOME_ACCEPTED, REFERRER, CENTRE), "referred"),  # the referrer cannot decide
        ([fact(Kind.OUTCOME_ACCEPTED, CENTRE, REFERRER)], fact(Kind.OUTCOME_DECLINED, CENTRE, REFERRER), "accepted"),
        ([fact(Kind.OUTCOME_ACCEPTED, CENTRE, REFERRER)], centre_accepts("t9"), "accepted"),
    ],
    ids=[
        "transfer-before-outcome",
        "discharge-before-surgery",
        "outcome-from-referrer",
        "outcome-changed",
        "answer-without-request",
    ],
)
def test_messages_that_make_no_sense_are_refused_naming_the_state(
    facts: list[Fact], refused: Fact, state_named: str
) -> None:
    episode = run(referred(), *facts)
    with pytest.raises(InvalidTransition, match=state_named):
        apply(episode, refused)


def test_repeats_are_recorded_but_change_nothing() -> None:
    accepted = fact(Kind.OUTCOME_ACCEPTED, CENTRE, REFERRER)
    episode = run(referred(), accepted)
    again = apply(episode, fact(Kind.OUTCOME_ACCEPTED, CENTRE, REFERRER))
    assert not again.changed
    assert again.episode.state is State.ACCEPTED
    same_message = apply(again.episode, accepted)
    assert not same_message.changed
    episode = run(again.episode, to_centre(), centre_accepts())
    resent = apply(episode, centre_accepts())
    assert not resent.changed
    assert len(resent.episode.ledger) == 2


# A property: whatever arrives, in whatever order, repeated or not, the ledger always names exactly one holder
# per moment, grows only by accepted transfers to the named clinician, and no applied message is forgotten.
KINDS = list(Kind)
PEOPLE = [LOCAL_DOCTOR, SURGEON, Clinician(CENTRE, "Dr Other", "7199999")]
facts_strategy = st.lists(
    st.builds(
        lambda kind, sender, person, tid, minute: Fact(
            kind,
            f"p{next(_ids)}",
            sender,
            CENTRE if sender == REFERRER else REFERRER,
            T0 + timedelta(minutes=minute),
            person,
            tid,
        ),
        st.sampled_from(KINDS),
        st.sampled_from([REFERRER, CENTRE]),
        st.sampled_from(PEOPLE),
        st.sampled_from(["t1", "t2", None]),
        st.integers(0, 10_000),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(facts=facts_strategy, repeat=st.lists(st.integers(0, 39), max_size=10))
def test_no_sequence_leaves_zero_or_two_holders_or_loses_history(facts: list[Fact], repeat: list[int]) -> None:
    episode = referred()
    applied = list(episode.history)
    sequence = facts + [facts[i] for i in repeat if i < len(facts)]
    for f in sequence:
        before = episode
        try:
            outcome = apply(episode, f)
        except InvalidTransition:
            assert episode == before
            continue
        episode = outcome.episode
        if f.message_id not in applied:
            applied.append(f.message_id)
        assert list(episode.history) == applied, "history is never lost or reordered"
        assert len(episode.ledger) >= 1, "someone is always responsible"
        grew = len(episode.ledger) - len(before.ledger)
        assert grew in (0, 1), "at most one change of holder per message"
        if grew:
            assert f.kind is Kind.TRANSFER_ACCEPTED
            assert before.pending is not None
            assert f.clinician is not None
            assert f.clinician.same_person(before.pending.to)
            assert episode.responsible.clinician == before.pending.to
        if before.state in TERMINAL:
            assert episode.state is before.state, "closed episodes stay closed"


class EpisodeMachine(RuleBasedStateMachine):
    """Plausible and implausible messages, repeats and 'crashes' (the episode reloaded from its last saved
    copy, as after a restart between commit and response) in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.episode = referred()
        self.saved = self.episode
        self.sent: list[Fact] = []
        self.transfers = itertools.count()

    def _apply(self, f: Fact) -> None:
        before = self.episode
        try:
            outcome = apply(before, f)
        except InvalidTransition:
            return
        self.sent.append(f)
        self.episode = outcome.episode
        if len(self.episode.ledger) > len(before.ledger):
            assert before.pending is not None
            assert f.clinician is not None
            assert f.clinician.same_person(before.pending.to)

    @rule(
        kind=st.sampled_from(
            [Kind.OUTCOME_ACCEPTED, Kind.OUTCOME_DECLINED, Kind.OUTCOME_MORE_INFORMATION, Kind.DISCHARGE_SUMMARY]
        )
    )
    def centre_says(self, kind: Kind) -> None:
        self._apply(fact(kind, CENTRE, REFERRER))

    @rule(kind=st.sampled_from([Kind.REFERRAL, Kind.WITHDRAWAL]))
    def referrer_says(self, kind: Kind) -> None:
        self._apply(fact(kind, REFERRER, CENTRE, clinician=LOCAL_DOCTOR))

    @rule()
    def request_transfer(self) -> None:
        tid = f"t{next(self.transfers)}"
        if self.episode.state is State.ACCEPTED:
            self._apply(fact(Kind.TRANSFER_REQUESTED, REFERRER, CENTRE, clinician=SURGEON, transfer_id=tid))
        else:
            self._apply(fact(Kind.TRANSFER_REQUESTED, CENTRE, REFERRER, clinician=LOCAL_DOCTOR, transfer_id=tid))

    @rule(accept=st.booleans(), right_person=st.booleans())
    def answer_transfer(self, accept: bool, right_person: bool) -> None:
        pending = self.episode.pending
        if pending is None:
            return
        person = pending.to if right_person else Clinician(pending.to.ods, "Dr Nobody", "7000000")
        kind = Kind.TRANSFER_ACCEPTED if accept else Kind.TRANSFER_REJECTED
        other = CENTRE if pending.to.ods == REFERRER else REFERRER
        self._apply(fact(kind, pending.to.ods, other, clinician=person, transfer_id=pending.transfer_id))

    @rule(index=st.integers(0, 50))
    def resend(self, index: int) -> None:
        if self.sent:
            self._apply(self.sent[index % len(self.sent)])

    @rule()
    def save(self) -> None:
        self.saved = self.episode

    @rule()
    def crash_and_reload(self) -> None:
        self.episode = self.saved

    @invariant()
    def one_holder_and_history_kept(self) -> None:
        assert len(self.episode.ledger) >= 1
        assert len(set(self.episode.history)) == len(self.episode.history)
        if self.episode.state is State.AT_CENTRE:
            assert self.episode.responsible.clinician.ods == CENTRE
        if self.episode.state is State.CLOSED:
            assert self.episode.responsible.clinician.ods == REFERRER

    @invariant()
    def never_two_parties_responsible(self) -> None:
        """HAZ-05: exactly one current holder, and never a second party who believes it holds responsibility."""
        episode = self.episode
        ledger = episode.ledger
        assert ledger[0].clinician == LOCAL_DOCTOR, "the referring clinician holds it first"
        assert all(h.clinician.ods in (REFERRER, CENTRE) for h in ledger), "only a party of the episode holds it"
        for before, after in itertools.pairwise(ledger):
            assert not before.clinician.same_person(after.clinician), "a change of holder is a change of person"
            assert after.accepted_by is not None and after.accepted_by.same_person(after.clinician), (
                "responsibility moves only when the new holder accepts it"
            )
            assert after.caused_by in episode.history
        if episode.pending is not None:
            assert not episode.pending.to.same_person(episode.responsible.clinician), (
                "while a transfer waits for its answer the requester still holds responsibility, not the receiver"
            )
            assert episode.state in (State.TRANSFER_REQUESTED, State.TRANSFER_BACK_REQUESTED)
        else:
            assert episode.state not in (State.TRANSFER_REQUESTED, State.TRANSFER_BACK_REQUESTED)


TestEpisodeMachine = EpisodeMachine.TestCase
TestEpisodeMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)

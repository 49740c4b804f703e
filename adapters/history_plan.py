"""The demo's year of network history as a plan: which patients each referring trust sends to the centre, and when
each message, delivery and business acknowledgement happens. Pure and seeded: the same arguments give the same
year; adapters/history.py plays it through the hub.

Realistic shapes, in Europe/London working hours: the SMDT meets on Tuesday afternoons; the centre declines some
referrals and asks for more information on others (the referral comes back a week or so later); transfers of care
are answered within hours, some late and a few refused for want of a bed (and sent again); surgery a few weeks
after the decision to treat, the discharge summary and the transfer back on the day of discharge. Each message is
collected by its recipient within the hour and acknowledged within a few hours, a few late (the safety net alerts
those). Cancer pathways start their clock some days before the referral; the clock start and the treatment date are
chosen per pathway so that every breach allocation the message flow can reach occurs (`pending`, `shared`,
`treating`, `referring`; `solo` and `no-ipt-date` cannot arise between two trusts on the hub, see adapters/demo.py).
One SMDT outcome is never collected by its recipient: the relay dead-letters it, for ops to deliver again.

Patients are synthetic: NHS numbers in the 999 range with a valid check digit, invented names.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from adapters.builders import Clinician, SyntheticPatient, synthetic_nhs_number
from service.episodes.cwt_allocation import Pathway as CwtPathway
from service.episodes.cwt_allocation import allocate

LONDON = ZoneInfo("Europe/London")
NHS_SEED_BASE = 400_000  # far from the narrated scenario's seeds (7919 x 1..12)
GIVEN = ["Ada", "Bryn", "Cora", "Dev", "Edith", "Fergus", "Gwen", "Hal", "Iris", "Jonah", "Kit", "Lena", "Milo",
         "Nell", "Otto", "Pru", "Quinn", "Rhys", "Sable", "Tam", "Una", "Vic", "Wren", "Yara"]  # fmt: skip
FAMILY = ["Brancaster", "Cromerby", "Denver", "Eastgate", "Fakenham", "Garboldis", "Holkham", "Ickburgh", "Kelling",
          "Lessingby", "Mundesly", "Narborough", "Oxnead", "Paston", "Quidenby", "Ringstead", "Salthouse", "Thornage",
          "Upwell", "Walsoken", "Weybourne", "Yaxham"]  # fmt: skip
STAFF = ["Aldous", "Bexwell", "Caistor", "Dilham", "Elsing", "Foulden", "Gissing", "Hapton", "Itteringham"]


class Act(StrEnum):
    """What happens at a beat. The first group are messages; DELIVER is the recipient collecting the message of
    beat `of` from its mailbox, ACKNOWLEDGE its business acknowledgement of it."""

    REFER = "referral"
    REFER_AGAIN = "referral again, with more information"
    ACCEPT = "SMDT outcome: accepted"
    DECLINE = "SMDT outcome: declined"
    MORE_INFORMATION = "SMDT outcome: more information needed"
    TRANSFER_TO_CENTRE = "transfer of care to the centre"
    CENTRE_ACCEPTS = "centre accepts the transfer"
    CENTRE_REFUSES = "centre refuses the transfer (no bed)"
    DISCHARGE_SUMMARY = "discharge summary"
    TRANSFER_BACK = "transfer of care back"
    REFERRER_ACCEPTS = "local clinician accepts"
    DELIVER = "collects from the mailbox"
    ACKNOWLEDGE = "acknowledgement"


FROM_REFERRER = frozenset({Act.REFER, Act.REFER_AGAIN, Act.TRANSFER_TO_CENTRE, Act.REFERRER_ACCEPTS})


@dataclass(frozen=True)
class Beat:
    at: datetime  # UTC
    act: Act
    of: int | None = None  # DELIVER / ACKNOWLEDGE: the index of the beat whose message it is


@dataclass
class PlannedPathway:
    """One patient referred by `referrer` to the centre, and every beat of their pathway in time order."""

    number: int
    referrer: str
    patient: SyntheticPatient
    local_clinician: Clinician
    key_worker: Clinician
    pathway_start: date | None = None
    decision_to_refer: date | None = None
    adjustment_days_referring: int = 0
    treatment_date: date | None = None
    beats: list[Beat] = field(default_factory=list)
    dead_letter: int | None = None  # the beat whose message is never collected
    expected_rule: str | None = None  # the breach allocation the plan aims at (None: not a cancer pathway)

    def sender(self, beat: Beat, centre: str) -> str:
        """Who acts at `beat` (the sender of its message, or for DELIVER the recipient collecting)."""
        if beat.act is Act.DELIVER:
            return self.recipient(self.beats[beat.of or 0], centre)
        if beat.act is Act.ACKNOWLEDGE:
            return self.recipient(self.beats[beat.of or 0], centre)
        return self.referrer if beat.act in FROM_REFERRER else centre

    def recipient(self, beat: Beat, centre: str) -> str:
        """Who the message of `beat` (a message beat) is addressed to."""
        return centre if self.sender(beat, centre) == self.referrer else self.referrer


# How each cancer pathway is shaped: (weight, days from clock start to referral, days from IPT to treatment), with
# the allocation each aims at. The SMDT's and the transfer's own delays can push the treatment later (never before
# the day after the transfer is accepted), which moves some pathways to another rule; `expected_rule` is what the
# dates finally give (service/episodes/cwt_allocation.py).
SHAPES = {
    "on time": (46, (8, 28), (16, 30)),  # shared: by day 38, met 62
    "late transfer, met 62": (9, (39, 46), (12, 20)),  # treating (or referring, when the treatment slips)
    "slow treatment": (9, (18, 30), (36, 50)),  # treating: by day 38, not within 24, missed 62
    "late transfer, quick treatment": (9, (44, 56), (14, 22)),  # referring
    "both late": (7, (40, 50), (26, 36)),  # shared, missed 62
}
ORDER = ["on time", "late transfer, met 62", "slow treatment", "late transfer, quick treatment", "both late"]


def plan_year(
    referrers: list[str], centre: str, count: int, *, end: datetime, seed: int = 2026
) -> list[PlannedPathway]:
    """`count` pathways whose referrals spread over the 365 days before `end` (UTC), every beat at or before
    `end`; one SMDT outcome about five weeks before `end` is never collected (`dead_letter`)."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not a secret
    first_day = (end - timedelta(days=365)).astimezone(LONDON).date()
    weights = [5, 4, 4, 3, 2, 2, 2][: len(referrers)] + [2] * max(0, len(referrers) - 7)
    plans = []
    for number in range(count):
        day = first_day + timedelta(days=int((number + rng.random()) * 360 / count))
        plans.append(_pathway(rng, number, rng.choices(referrers, weights)[0], _working(day), centre, end))
    _choose_dead_letter(plans, end)
    return plans


def _working(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _at(day: date, rng: random.Random, start: float = 8.5, stop: float = 17.5) -> datetime:
    """A moment on `day` between the London hours `start` and `stop`, in UTC."""
    hours = rng.uniform(start, stop)
    local = datetime.combine(day, time(int(hours), int(hours * 60) % 60, rng.randrange(60)), tzinfo=LONDON)
    return local.astimezone(UTC)


def _london(moment: datetime) -> date:
    return moment.astimezone(LONDON).date()


def _smdt_after(moment: datetime, rng: random.Random) -> datetime:
    """The SMDT meeting (Tuesdays) at least two days after `moment`, now and then the one after (a full list)."""
    day = _london(moment) + timedelta(days=2)
    day += timedelta(days=(1 - day.weekday()) % 7)
    if rng.random() < 0.12:
        day += timedelta(days=7 if rng.random() < 0.7 else 14)
    return _at(day, rng, 13.0, 17.5)


def _patient(rng: random.Random, number: int) -> SyntheticPatient:
    born = date(1938, 1, 1) + timedelta(days=rng.randrange(38 * 365))
    gender = rng.choice(["female", "male"])
    return SyntheticPatient(
        synthetic_nhs_number(NHS_SEED_BASE + number * 37),
        rng.choice(FAMILY),
        rng.choice(GIVEN),
        born.isoformat(),
        gender,
    )


def _clinicians(rng: random.Random, referrer: str) -> tuple[Clinician, Clinician]:
    """One of three consultants and key workers at the referring trust (invented names, none a patient's)."""
    trust = sum(map(ord, referrer)) % 1000
    local = rng.randrange(3)
    return (
        Clinician(STAFF[(trust + local) % len(STAFF)], GIVEN[(trust + local) % len(GIVEN)], f"72{local}{trust:04d}"),
        Clinician(
            STAFF[(trust + local + 4) % len(STAFF)], GIVEN[(trust + local + 5) % len(GIVEN)], f"73{local}{trust:04d}"
        ),
    )


class _Beats:
    """Appends message beats, each followed by its collection and its acknowledgement (and that one's collection)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.beats: list[Beat] = []

    def message(self, at: datetime, act: Act) -> datetime:
        rng = self.rng
        index = len(self.beats)
        self.beats.append(Beat(at, act))
        collected = at + timedelta(minutes=rng.uniform(2, 45))
        self.beats.append(Beat(collected, Act.DELIVER, index))
        late = rng.random() < 0.04
        acknowledged = collected + (
            timedelta(hours=rng.uniform(5, 30)) if late else timedelta(minutes=rng.uniform(5, 150))
        )
        ack = len(self.beats)
        self.beats.append(Beat(acknowledged, Act.ACKNOWLEDGE, index))
        self.beats.append(Beat(acknowledged + timedelta(minutes=rng.uniform(2, 45)), Act.DELIVER, ack))
        return at

    def in_order(self, end: datetime) -> list[Beat]:
        """The beats up to `end` in time order, each `of` pointing into that list (a beat comes after its message)."""
        order = sorted((i for i, b in enumerate(self.beats) if b.at <= end), key=lambda i: self.beats[i].at)
        position = {old: new for new, old in enumerate(order)}
        return [Beat(b.at, b.act, None if b.of is None else position[b.of]) for b in (self.beats[i] for i in order)]


def _pathway(  # noqa: PLR0917 - one pathway's seed, who and when
    rng: random.Random, number: int, referrer: str, day: date, centre: str, end: datetime
) -> PlannedPathway:
    local, worker = _clinicians(rng, referrer)
    plan = PlannedPathway(number, referrer, _patient(rng, number), local, worker)
    beats = _Beats(rng)
    referred = beats.message(_at(day, rng), Act.REFER)
    shape = ORDER[number] if number < len(ORDER) else _shape(rng)
    _, to_referral, to_treatment = SHAPES[shape]
    if number < len(ORDER) or rng.random() < 0.9:  # a cancer pathway: its clock started before the referral
        plan.pathway_start = _london(referred) - timedelta(days=rng.randint(*to_referral))
        if rng.random() < 0.1:
            plan.adjustment_days_referring = rng.randint(2, 7)
            plan.pathway_start -= timedelta(days=plan.adjustment_days_referring)
        plan.decision_to_refer = max(plan.pathway_start, _london(referred) - timedelta(days=rng.randint(0, 4)))
    decision = "accepted" if number < len(ORDER) else rng.choices(["accepted", "declined", "more"], [76, 13, 11])[0]
    smdt = _smdt_after(referred, rng)
    if decision == "more":  # the IPT received date moves to the referral sent again
        beats.message(smdt, Act.MORE_INFORMATION)
        referred = beats.message(
            _at(_working(_london(smdt) + timedelta(days=rng.randint(4, 12))), rng), Act.REFER_AGAIN
        )
        smdt = _smdt_after(referred, rng)
        decision = "accepted" if rng.random() < 0.85 else "declined"
    ipt = _london(referred)
    if decision == "declined":
        beats.message(smdt, Act.DECLINE)
    else:
        beats.message(smdt, Act.ACCEPT)
        _journey(plan, beats, smdt, ipt + timedelta(days=rng.randint(*to_treatment)))
    plan.beats = beats.in_order(end)
    if not any(beat.act is Act.DISCHARGE_SUMMARY for beat in plan.beats):  # not treated (yet)
        plan.treatment_date = None
    if plan.pathway_start is not None:
        plan.expected_rule = _rule(plan, centre, ipt)
    return plan


def _shape(rng: random.Random) -> str:
    return rng.choices(list(SHAPES), [weight for weight, _, _ in SHAPES.values()])[0]


def _journey(plan: PlannedPathway, beats: _Beats, outcome: datetime, treatment: date) -> None:
    rng = beats.rng
    asked = _at(_working(_london(outcome) + timedelta(days=rng.randint(1, 4))), rng)
    while True:
        beats.message(asked, Act.TRANSFER_TO_CENTRE)
        late = rng.random() < 0.06
        answered = asked + timedelta(hours=rng.uniform(26, 60) if late else rng.uniform(1, 20))
        if rng.random() < 0.05:
            beats.message(answered, Act.CENTRE_REFUSES)
            asked = _at(_working(_london(answered) + timedelta(days=rng.randint(2, 4))), rng)
            continue
        beats.message(answered, Act.CENTRE_ACCEPTS)
        break
    treatment = max(treatment, _london(answered) + timedelta(days=1))
    plan.treatment_date = treatment
    discharged = _at(_working(treatment + timedelta(days=rng.randint(4, 9))), rng, 10.0, 15.0)
    beats.message(discharged, Act.DISCHARGE_SUMMARY)
    back = beats.message(discharged + timedelta(minutes=rng.uniform(10, 180)), Act.TRANSFER_BACK)
    late = rng.random() < 0.05
    beats.message(back + timedelta(hours=rng.uniform(26, 50) if late else rng.uniform(1, 20)), Act.REFERRER_ACCEPTS)


def _rule(plan: PlannedPathway, centre: str, ipt: date) -> str:
    assert plan.pathway_start is not None
    return allocate(
        CwtPathway(
            id=str(plan.number),
            clock_start=plan.pathway_start,
            ipt_received_date=ipt,
            treatment_date=plan.treatment_date,
            referring=plan.referrer,
            treating=centre,
            adjustment_days_referring=plan.adjustment_days_referring,
        )
    ).rule


def _choose_dead_letter(plans: list[PlannedPathway], end: datetime) -> None:
    """The accepted SMDT outcome sent closest to five weeks before `end` is never collected, nor acknowledged, and
    that patient's pathway stops there."""
    target = end - timedelta(days=35)
    found = [
        (abs((beat.at - target).total_seconds()), plan, index)
        for plan in plans
        for index, beat in enumerate(plan.beats)
        if beat.act is Act.ACCEPT
    ]
    if not found:
        return
    _, plan, index = min(found, key=lambda item: item[0])
    plan.dead_letter = index
    plan.beats = [b for i, b in enumerate(plan.beats) if i <= index or (b.of is not None and b.of < index)]
    plan.treatment_date = None
    plan.expected_rule = None if plan.pathway_start is None else "pending"

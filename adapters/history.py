"""Plays the demo's year of network history (adapters/history_plan.py) through the hub's real intake.

Every message is built, signed by its trust's key and posted to `$process-message` as the trust would send it;
every collection is the trust's own mailbox acknowledgement. The hub runs on a `DemoClock` (service/devclock.py,
development only): each request carries a single-use ticket for the moment of its beat, so the hub accepts and
dates it as of that moment (acceptance time, deadlines, the IPT received date, freshness). Nothing is written to
the database but by the hub itself.

Pathways play concurrently, `parallel` beats at a time, always the earliest beat that is ready next (a pathway's
beats run in order). Once a simulated day, with the beats before that moment done and none in flight, the clock is
advanced to it, which runs the hub's timed duties at that moment: the safety net alerts what is overdue (late
acknowledgements, late answers, cancer pathway clocks) and the relay dead-letters what was not collected within the
delivery window. (Nothing is in flight then because a sweep running beside acceptances can deadlock with them on
PostgreSQL.) Every few days each trust collects the hub's own messages (alerts and non-delivery reports), as a
trust's integration engine would. At the end the clock goes back to real time.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from adapters.history_plan import LONDON, Act, Beat, PlannedPathway, plan_year
from adapters.pathway import Pathway
from adapters.trust_client import TrustClient
from service.devclock import HEADER, DemoClock
from service.http.mailbox import INBOX_PAGE
from service.keystore import load_private_jwk
from service.receipts import receipt_parameters
from service.registry import Registry
from service.signing import sign_bundle
from service.staff import StaffRole, mint_dev_staff_token

DUTY_EVERY = timedelta(hours=24)  # the hub sweeps every minute; daily keeps the history quick
COLLECT_EVERY = timedelta(days=3)  # well within the delivery window (5 days)
SIGNED_BEFORE = timedelta(seconds=4)  # a message is built and signed a moment before the hub takes it


@dataclass
class HistoryReport:
    """What the history did: pathways played, messages accepted, refusals (pathway, act, codes), alerts and dead
    letters the duties reported, and how long it took."""

    pathways: int = 0
    messages: int = 0
    collected: int = 0
    duties: int = 0
    refused: list[tuple[int, str, str]] = field(default_factory=list)
    rules: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    already: bool = False  # the database already held this history: nothing was played

    @property
    def ok(self) -> bool:
        return self.pathways > 0 and not self.refused

    def summary(self) -> str:
        if self.already:
            return "already in this database (an earlier demo played it); not played again"
        rules = ", ".join(f"{rule} {count}" for rule, count in sorted(self.rules.items()))
        refused = f"; {len(self.refused)} refused, first: {self.refused[0]}" if self.refused else ""
        return (
            f"{self.pathways} pathways, {self.messages} messages, {self.collected} collected, {self.duties} alerts"
            f" and dead letters, in {self.seconds:.1f} s; allocation: {rules}{refused}"
        )


@dataclass
class _Story:
    plan: PlannedPathway
    pathway: Pathway
    sent: dict[int, dict[str, Any]] = field(default_factory=dict)  # beat index -> the signed bundle
    message_ids: dict[int, str] = field(default_factory=dict)  # beat index -> the hub's message id
    stopped: bool = False


class _Player:
    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, registry: Registry, keys_dir: Path, clock: DemoClock
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.registry = registry
        self.clock = clock
        self.centre = registry.centre()
        self.moment: ContextVar[datetime] = ContextVar("history_moment")
        self.keys = {p.ods: load_private_jwk(keys_dir, p.ods) for p in [self.centre, *registry.referrers()]}
        self.clients = {
            ods: TrustClient(session, base_url, ods, key, registry, request_headers=self._ticket)
            for ods, key in self.keys.items()
        }
        self.report = HistoryReport()

    def _ticket(self) -> dict[str, str]:
        return {HEADER: self.clock.ticket(self.moment.get())}

    def name(self, ods: str) -> str:
        participant = self.registry.participant(ods)
        return participant.name if participant else ods

    async def beat(self, story: _Story, index: int) -> None:
        """Play beat `index` of `story` at its moment; a refusal stops that pathway and is reported."""
        beat = story.plan.beats[index]
        self.moment.set(beat.at)
        if story.stopped:
            return
        actor = story.plan.sender(beat, self.centre.ods)
        if beat.act is Act.DELIVER:
            await self._collect(story, beat, actor)
            return
        story.pathway.now = beat.at - SIGNED_BEFORE
        bundle = self._build(story, beat, actor)
        signed = sign_bundle(bundle, self.keys[actor], actor, when=story.pathway.now)
        result = await self.clients[actor].send(signed)
        if not result.accepted:
            story.stopped = True
            problems = [issue.get("diagnostics", "") for issue in result.body.get("issue", [])]
            self.report.refused.append((story.plan.number, beat.act.value, "; ".join([*result.error_codes, *problems])))
            return
        story.sent[index] = signed
        story.message_ids[index] = str(receipt_parameters(result.body)["message-id"])
        self.report.messages += 1

    def _build(self, story: _Story, beat: Beat, actor: str) -> dict[str, Any]:
        p = story.pathway
        builders: dict[Act, Callable[[], dict[str, Any]]] = {
            Act.REFER: p.referral,
            Act.REFER_AGAIN: p.referral_again,
            Act.ACCEPT: lambda: p.outcome("accepted"),
            Act.DECLINE: lambda: p.outcome("declined"),
            Act.MORE_INFORMATION: lambda: p.outcome("more-information-needed"),
            Act.TRANSFER_TO_CENTRE: p.transfer_to_centre,
            Act.CENTRE_ACCEPTS: p.centre_answers,
            Act.CENTRE_REFUSES: lambda: p.centre_answers(accepted=False),
            Act.DISCHARGE_SUMMARY: p.discharge_summary,
            Act.TRANSFER_BACK: p.transfer_back,
            Act.REFERRER_ACCEPTS: p.referrer_answers,
            Act.ACKNOWLEDGE: lambda: p.acknowledge(story.sent[beat.of or 0], actor, self.name(actor)),
        }
        if beat.act is Act.ACCEPT and p.pathway_start is not None:  # decided at the meeting
            p.decision_to_treat = beat.at.astimezone(LONDON).date()
        return builders[beat.act]()

    async def _collect(self, story: _Story, beat: Beat, actor: str) -> None:
        message_id = story.message_ids.get(beat.of or 0)
        if message_id is None:
            return
        if await self.acknowledge_delivery(actor, message_id):
            self.report.collected += 1  # no await between reading and writing the count

    async def acknowledge_delivery(self, ods: str, message_id: str) -> bool:
        """The mailbox acknowledgement; False when the message is not waiting (already pushed to an endpoint)."""
        client = self.clients[ods]
        url = f"{self.base_url}/mailbox/{ods}/inbox/{message_id}/ack"
        headers = {**self._ticket(), "Authorization": f"Bearer {client.bearer_token()}"}
        async with self.session.post(url, headers=headers) as resp:
            await resp.read()
            return resp.status == 200

    async def collect_hub_mail(self, at: datetime) -> None:
        """Every trust collects the hub's own messages (alerts, non-delivery reports) waiting for it."""
        self.moment.set(at)
        await asyncio.gather(*(self._collect_hub_mail(ods) for ods in self.clients))

    async def _collect_hub_mail(self, ods: str) -> None:
        while True:
            items = await self.clients[ods].inbox()
            waiting = [item for item in items if item.get("sender") == "hub"]
            for item in waiting:
                collected = await self.acknowledge_delivery(ods, item["id"])
                self.report.collected += collected
            if not waiting or len(items) < INBOX_PAGE:
                return


def _story(player: _Player, plan: PlannedPathway, event_system: str) -> _Story:
    referrer = player.registry.participant(plan.referrer)
    assert referrer is not None
    pathway = Pathway(
        event_system,
        plan.referrer,
        referrer.name,
        player.centre.ods,
        player.centre.name,
        plan.patient,
        plan.local_clinician,
        plan.key_worker,
        pathway_start=plan.pathway_start,
        decision_to_refer=plan.decision_to_refer,
        adjustment_days_referring=plan.adjustment_days_referring,
        treatment_date=plan.treatment_date,
    )
    return _Story(plan, pathway)


async def play_history(
    base_url: str,
    registry: Registry,
    keys_dir: Path,
    event_system: str,
    clock: DemoClock,
    *,
    pathways: int = 260,
    end: datetime | None = None,
    parallel: int = 8,
    console: Console | None = None,
) -> HistoryReport:
    """Play `pathways` pathways of the year before `end` (default: an hour ago) into the hub at `base_url`, which
    must run on `clock`. Returns the report; the clock is back on real time afterwards. A database that already holds
    the history (an earlier `make demo` on the same cluster) is left as it is."""
    started = time.monotonic()
    end = end or datetime.now(UTC) - timedelta(hours=1)
    plans = plan_year([p.ods for p in registry.referrers()], registry.centre().ods, pathways, end=end)
    async with aiohttp.ClientSession() as session:
        player = _Player(session, base_url, registry, keys_dir, clock)
        if plans and await _played_before(session, base_url, keys_dir, plans[0]):
            clock.release()
            return HistoryReport(pathways=len(plans), already=True)
        stories = [_story(player, plan, event_system) for plan in plans]
        try:
            with _progress(console) as progress:
                task = progress.add_task("a year of network history", total=sum(len(p.beats) for p in plans))
                await _dispatch(player, stories, parallel, lambda: progress.advance(task))
            await clock.advance(end)
            await player.collect_hub_mail(end)
        finally:
            clock.release()
    player.report.pathways = len(plans)
    player.report.rules = Counter(p.expected_rule or "not a cancer pathway" for p in plans)
    player.report.seconds = time.monotonic() - started
    return player.report


async def _played_before(session: aiohttp.ClientSession, base_url: str, keys_dir: Path, first: PlannedPathway) -> bool:
    """Whether the history's first patient already has an episode (asked as governance staff would)."""
    token = mint_dev_staff_token(keys_dir, "demo.history", StaffRole.GOVERNANCE)
    url = f"{base_url.rstrip('/')}/episodes?nhs-number={first.patient.nhs_number}"
    async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
        resp.raise_for_status()
        return bool((await resp.json())["episodes"])


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


async def _dispatch(player: _Player, stories: list[_Story], parallel: int, advanced: Callable[[], None]) -> None:
    """Run every beat, `parallel` at a time, earliest ready first. Every DUTY_EVERY of simulated time the beats
    in flight finish first and the clock is advanced to the frontier with nothing in flight, so the hub's duties see
    the history exactly up to that moment (and never contend with an acceptance for the same rows)."""
    ready: list[tuple[datetime, int, int]] = [(s.plan.beats[0].at, n, 0) for n, s in enumerate(stories) if s.plan.beats]
    heapq.heapify(ready)
    running: dict[asyncio.Task[None], tuple[datetime, int, int]] = {}
    keeper = _Timekeeper(player, min((at for at, _, _ in ready), default=datetime.now(UTC)))
    while ready or running:
        if not running and (not ready or ready[0][0] >= keeper.due):
            await keeper.tick()  # every beat before the tick's moment is done, none is in flight
            if not ready:
                break
            continue
        while ready and ready[0][0] < keeper.due and len(running) < parallel:
            at, n, index = heapq.heappop(ready)
            running[asyncio.create_task(player.beat(stories[n], index))] = (at, n, index)
        done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        for finished in done:
            at, n, index = running.pop(finished)
            finished.result()
            advanced()
            if index + 1 < len(stories[n].plan.beats):
                heapq.heappush(ready, (stories[n].plan.beats[index + 1].at, n, index + 1))
    await keeper.finish()


class _Timekeeper:
    """Advances the clock (the hub's duties run at that moment) every DUTY_EVERY of simulated time, and every
    COLLECT_EVERY has the trusts collect the hub's messages, in the background while the beats play on."""

    def __init__(self, player: _Player, first: datetime) -> None:
        self.player = player
        self.due = first + DUTY_EVERY
        self.collect_at = self.due + COLLECT_EVERY
        self.unread = 0  # hub messages (alerts, non-delivery reports) made since the last collection
        self.collecting: asyncio.Task[None] | None = None

    async def tick(self) -> None:
        moment, self.due = self.due, self.due + DUTY_EVERY
        done = await self.player.clock.advance(moment)
        self.player.report.duties += done
        self.unread += done
        if moment >= self.collect_at and self.unread and (self.collecting is None or self.collecting.done()):
            if self.collecting is not None:
                self.collecting.result()
            self.collect_at, self.unread = moment + COLLECT_EVERY, 0
            self.collecting = asyncio.create_task(self.player.collect_hub_mail(moment + timedelta(minutes=20)))

    async def finish(self) -> None:
        if self.collecting is not None:
            await self.collecting

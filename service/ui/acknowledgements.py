"""Business acknowledgements folded into the message they answer, for the episode page and its timeline.

An acknowledgement is stored on the episode's timeline as a message of its own, and the message it answers
carries `acknowledged_at`, the moment the hub accepted that acknowledgement. So an acknowledgement answers the
message going the other way between the same two organisations whose `acknowledged_at` is its own time. People
read "Referral, acknowledged 7 December 2026, 15:13", not a second row "Acknowledgement … Met".
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from service.store.episode_reads import TimelineEntry

ACKNOWLEDGEMENT = "acknowledgement"


def pair_acknowledgements(timeline: Sequence[TimelineEntry]) -> dict[UUID, UUID]:
    """{acknowledgement's message id: the id of the message it answers} for every acknowledgement on `timeline`
    that answers one of its messages; an acknowledgement that matches none is left out (shown on its own)."""
    answered: set[UUID] = set()
    pairs: dict[UUID, UUID] = {}
    for ack in timeline:
        if ack.kind != ACKNOWLEDGEMENT:
            continue
        match = next(
            (
                m
                for m in timeline
                if m.kind != ACKNOWLEDGEMENT
                and m.message_id not in answered
                and m.acknowledged_at == ack.at
                and (m.sender_ods, m.recipient_ods) == (ack.recipient_ods, ack.sender_ods)
            ),
            None,
        )
        if match is not None:
            answered.add(match.message_id)
            pairs[ack.message_id] = match.message_id
    return pairs

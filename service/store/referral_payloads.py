"""The encrypted payload of each episode's latest referral (with its wrapped data key), for the domain to open
with the vault when a care role is shown the patient and the referral (`service.episodes.referral_summary`)."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from service.store.messages import StoredPayload, stored_payload


async def latest_referrals(conn: asyncpg.Connection, episode_ids: list[UUID]) -> dict[UUID, StoredPayload]:
    """Per episode id (those with a referral), its newest referral's stored payload (encrypted; none once
    shredded)."""
    records = await conn.fetch(
        """
        SELECT DISTINCT ON (em.episode_id) em.episode_id, m.id, m.sender_ods, m.recipient_ods,
               m.payload_ciphertext, m.payload_nonce, m.payload_aad_version, k.kek_id, k.wrapped_key
        FROM episode_messages em
        JOIN messages m ON m.id = em.message_id
        LEFT JOIN data_keys k ON k.message_id = m.id
        WHERE em.episode_id = ANY($1::uuid[]) AND em.kind = 'referral'
        ORDER BY em.episode_id, em.at DESC, em.message_id
        """,
        episode_ids,
    )
    return {r["episode_id"]: stored_payload(r) for r in records}

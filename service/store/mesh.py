"""Which MESH message carried which delivery (``mesh_sends``), and marking a delivery done by MESH."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class MeshSend:
    delivery_id: int
    mesh_message_id: str
    recipient_mailbox: str
    sent_at: datetime


async def record_send(
    conn: asyncpg.Connection, delivery_id: int, mesh_message_id: str, recipient_mailbox: str, *, now: datetime
) -> None:
    await conn.execute(
        """
        INSERT INTO mesh_sends (delivery_id, mesh_message_id, recipient_mailbox, sent_at) VALUES ($1, $2, $3, $4)
        ON CONFLICT (delivery_id) DO NOTHING
        """,
        delivery_id,
        mesh_message_id,
        recipient_mailbox,
        now,
    )


async def find_send(conn: asyncpg.Connection, delivery_id: int) -> MeshSend | None:
    row = await conn.fetchrow("SELECT * FROM mesh_sends WHERE delivery_id = $1", delivery_id)
    return MeshSend(**dict(row)) if row is not None else None


async def pending_delivery_for(conn: asyncpg.Connection, mesh_message_id: str) -> int | None:
    """The still-pending delivery carried by MESH message `mesh_message_id`, if any."""
    delivery_id: int | None = await conn.fetchval(
        """
        SELECT d.id FROM mesh_sends s JOIN deliveries d ON d.id = s.delivery_id
        WHERE s.mesh_message_id = $1 AND d.state = 'pending'
        """,
        mesh_message_id,
    )
    return delivery_id


async def mark_delivered(conn: asyncpg.Connection, delivery_id: int, *, now: datetime) -> bool:
    """Delivered through MESH (the recipient acknowledged it). False if no longer pending (e.g. pulled)."""
    done = await conn.fetchval(
        """
        UPDATE deliveries
        SET state = 'delivered', channel = 'mesh', delivered_at = $2, last_error = NULL,
            lease_until = '-infinity', lease_token = NULL
        WHERE id = $1 AND state = 'pending'
        RETURNING true
        """,
        delivery_id,
        now,
    )
    return bool(done)

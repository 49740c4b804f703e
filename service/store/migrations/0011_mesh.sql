-- MESH as a delivery channel (service/delivery/mesh.py). A delivery to a trust reached through MESH is sent
-- once, and which MESH message carried it is kept here, so the relay tracks that message (and matches MESH's
-- non-delivery reports to it) instead of sending again. A delivery is marked delivered with channel 'mesh'
-- only when MESH says the recipient has acknowledged the message.
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_channel_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_channel_check CHECK (channel IN ('mailbox', 'push', 'mesh'));

CREATE TABLE mesh_sends (
    delivery_id       bigint PRIMARY KEY REFERENCES deliveries (id),
    mesh_message_id   text NOT NULL UNIQUE,
    recipient_mailbox text NOT NULL,
    sent_at           timestamptz NOT NULL
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'handover_app') THEN
        GRANT SELECT, INSERT ON mesh_sends TO handover_app;
    ELSE
        RAISE NOTICE 'role handover_app does not exist: grants on mesh_sends skipped';
    END IF;
END
$$;

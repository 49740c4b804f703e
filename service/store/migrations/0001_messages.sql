-- Accepted messages, idempotency keys, delivery jobs (the outbox) and the append-only audit event log.

CREATE TABLE messages (
    id                 uuid PRIMARY KEY,
    sender_ods         text NOT NULL,
    recipient_ods      text NOT NULL,
    event              text NOT NULL,
    bundle_identifier  text NOT NULL,
    message_header_id  text,
    payload_sha256     text NOT NULL CHECK (payload_sha256 ~ '^[0-9a-f]{64}$'),
    payload            bytea NOT NULL,
    request_id         uuid NOT NULL,
    correlation_id     uuid,
    accepted_at        timestamptz NOT NULL,
    CONSTRAINT messages_sender_bundle_identifier_key UNIQUE (sender_ods, bundle_identifier)
);

CREATE TABLE idempotency_keys (
    sender_ods      text NOT NULL,
    request_id      uuid NOT NULL,
    payload_sha256  text NOT NULL,
    message_id      uuid NOT NULL REFERENCES messages (id) DEFERRABLE INITIALLY DEFERRED,
    receipt         bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sender_ods, request_id)
);

CREATE TABLE deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id       uuid NOT NULL REFERENCES messages (id),
    recipient_ods    text NOT NULL,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead_letter')),
    channel          text CHECK (channel IN ('mailbox', 'push')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz NOT NULL DEFAULT '-infinity',
    last_error       text,
    fetched_at       timestamptz,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT deliveries_message_recipient_key UNIQUE (message_id, recipient_ods),
    CONSTRAINT deliveries_delivered_has_time CHECK ((state = 'delivered') = (delivered_at IS NOT NULL))
);
CREATE INDEX deliveries_mailbox_idx ON deliveries (recipient_ods, state, created_at);
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE state = 'pending';

-- The audit log's leaves. `seq` is dense and assigned under an advisory lock by store/audit.py, so the
-- order of commits is the order of the log. Rows are never changed: see the triggers below.
CREATE TABLE audit_events (
    seq          bigint PRIMARY KEY CHECK (seq >= 0),
    event_type   text NOT NULL,
    outcome      text NOT NULL,
    actor        text NOT NULL,
    message_id   uuid,
    recorded_at  timestamptz NOT NULL,
    leaf         bytea NOT NULL,
    leaf_hash    bytea NOT NULL CHECK (length(leaf_hash) = 32)
);
CREATE INDEX audit_events_message_idx ON audit_events (message_id) WHERE message_id IS NOT NULL;

CREATE FUNCTION audit_events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_are_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_are_append_only();

-- Single-use bearer-token ids (jti), kept until the token expires.
CREATE TABLE used_token_ids (
    issuer      text NOT NULL,
    jti         text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX used_token_ids_expiry_idx ON used_token_ids (expires_at);

-- Staff pages (/ui/): signed-in browser sessions, sign-ins in flight, and the indexes the worklist and the
-- episode page read with. A session is found by the SHA-256 of its cookie value, so a copy of this table
-- signs nobody in; likewise a sign-in attempt by the SHA-256 of its OIDC `state`.

CREATE TABLE ui_sessions (
    token_sha256  text PRIMARY KEY CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    subject       text NOT NULL,
    display_name  text NOT NULL,
    role          text NOT NULL,
    issuer        text NOT NULL,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    ended_at      timestamptz
);
CREATE INDEX ui_sessions_last_seen_idx ON ui_sessions (last_seen_at) WHERE ended_at IS NULL;

CREATE TABLE ui_sign_in_attempts (
    state_sha256   text PRIMARY KEY CHECK (state_sha256 ~ '^[0-9a-f]{64}$'),
    nonce          text NOT NULL,
    code_verifier  text NOT NULL,
    redirect_uri   text NOT NULL,
    created_at     timestamptz NOT NULL
);
CREATE INDEX ui_sign_in_attempts_created_idx ON ui_sign_in_attempts (created_at);

-- Worklist: open deadlines per episode and by kind in due order; episodes by the centre and by any party.
CREATE INDEX deadlines_open_kind_due_idx ON deadlines (kind, due_at) WHERE met_at IS NULL;
CREATE INDEX deadlines_episode_idx ON deadlines (episode_id);
CREATE INDEX episodes_centre_idx ON episodes (centre_ods);
CREATE INDEX episodes_open_pathway_idx ON episodes (pathway_start) WHERE pathway_start IS NOT NULL;
CREATE INDEX episode_messages_sender_idx ON episode_messages (sender_ods, episode_id);
CREATE INDEX episode_messages_recipient_idx ON episode_messages (recipient_ods, episode_id);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'handover_app') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON ui_sessions, ui_sign_in_attempts TO handover_app;
    END IF;
END;
$$;

-- Staff pages for governance, deliveries and the audit log (ui-pages): background "verify now" runs kept with
-- their result, each push recipient's circuit state as the relay last saw it, and the once-only re-queue of a
-- dead letter. Plus the indexes the governance summary and the deliveries page read with.

-- One verification at a time: at most one row without finished_at (a run whose heartbeat stops is closed as
-- abandoned by the next start). Divergences are kinds, indexes and hashes only, never payload content.
CREATE TABLE audit_verify_runs (
    id            uuid PRIMARY KEY,
    started_by    text NOT NULL,
    started_at    timestamptz NOT NULL,
    heartbeat_at  timestamptz NOT NULL,
    finished_at   timestamptz,
    total         bigint NOT NULL DEFAULT 0 CHECK (total >= 0),
    checked       bigint NOT NULL DEFAULT 0 CHECK (checked >= 0),
    outcome       text CHECK (outcome IN ('passed', 'failed', 'abandoned')),
    tree_size     bigint,
    root_hash     bytea,
    checkpoints   integer,
    divergences   jsonb NOT NULL DEFAULT '[]',
    CONSTRAINT audit_verify_runs_finished_has_outcome CHECK ((finished_at IS NULL) = (outcome IS NULL))
);
CREATE UNIQUE INDEX audit_verify_runs_one_running_idx ON audit_verify_runs ((true)) WHERE finished_at IS NULL;
CREATE INDEX audit_verify_runs_started_idx ON audit_verify_runs (started_at DESC);

-- Each push recipient's circuit breaker as last recorded by a relay (state follows from open_until and now).
CREATE TABLE push_circuits (
    recipient_ods  text PRIMARY KEY,
    failures       integer NOT NULL CHECK (failures >= 0),
    open_until     timestamptz,
    updated_at     timestamptz NOT NULL
);

-- A dead letter may be put back in its queue once: the key makes a second request fail, however many
-- staff press the button at once. What it was before is kept here (the delivery row starts afresh).
CREATE TABLE redeliveries (
    delivery_id                bigint PRIMARY KEY REFERENCES deliveries (id),
    requested_by               text NOT NULL,
    requested_at               timestamptz NOT NULL,
    previous_error             text,
    previous_status            integer,
    previous_attempts          integer NOT NULL,
    previous_created_at        timestamptz NOT NULL,
    previous_dead_lettered_at  timestamptz NOT NULL
);

-- Deliveries page: dead letters newest first; audit page: the latest events of a type (payload reads).
CREATE INDEX deliveries_dead_lettered_at_idx ON deliveries (dead_lettered_at DESC) WHERE state = 'dead_letter';
CREATE INDEX audit_events_type_idx ON audit_events (event_type, seq DESC);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'handover_app') THEN
        GRANT SELECT, INSERT, UPDATE ON audit_verify_runs, push_circuits TO handover_app;
        GRANT SELECT, INSERT ON redeliveries TO handover_app;
    END IF;
END;
$$;

-- Housekeeping (issue 16): the duties that enforce each table's lifetime (docs/operations.md, "Table lifetimes").
-- One row per duty, shared by every hub process and replica on this database: when it is next due (so N replicas
-- run a duty about once per interval between them, not N times), what its last run did, and running totals that
-- /metrics reports whichever process answers. Exactly one row per duty, updated in place: this table never grows.
CREATE TABLE housekeeping_duties (
    duty              text PRIMARY KEY,
    next_run_at       timestamptz NOT NULL DEFAULT '-infinity',
    last_started_at   timestamptz,
    last_finished_at  timestamptz,
    last_success_at   timestamptz,
    last_ok           boolean,
    last_error        text,
    last_removed      bigint NOT NULL DEFAULT 0,
    removed_total     bigint NOT NULL DEFAULT 0 CHECK (removed_total >= 0),
    runs_total        bigint NOT NULL DEFAULT 0,
    failures_total    bigint NOT NULL DEFAULT 0
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'handover_app') THEN
        GRANT SELECT, INSERT, UPDATE ON housekeeping_duties TO handover_app;
    ELSE
        RAISE NOTICE 'role handover_app does not exist: grants on housekeeping_duties skipped';
    END IF;
END;
$$;

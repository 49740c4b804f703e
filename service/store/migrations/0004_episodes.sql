-- Handover episodes (one per patient referral), their messages, the clinical responsibility ledger and the
-- deadlines of the safety net. Patients appear only as a keyed HMAC of the NHS number.

CREATE TABLE episodes (
    id                   uuid PRIMARY KEY,
    nhs_number_hmac      text NOT NULL CHECK (nhs_number_hmac ~ '^[0-9a-f]{64}$'),
    referral_identifier  text NOT NULL,
    referrer_ods         text NOT NULL,
    centre_ods           text NOT NULL,
    state                text NOT NULL,
    snapshot             jsonb NOT NULL,
    pathway_start        date,
    opened_at            timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    CONSTRAINT episodes_patient_referral_key UNIQUE (nhs_number_hmac, referral_identifier)
);
CREATE INDEX episodes_state_idx ON episodes (state);
CREATE INDEX episodes_referrer_idx ON episodes (referrer_ods);

CREATE TABLE episode_messages (
    episode_id       uuid NOT NULL REFERENCES episodes (id),
    message_id       uuid NOT NULL REFERENCES messages (id),
    kind             text NOT NULL,
    sender_ods       text NOT NULL,
    recipient_ods    text NOT NULL,
    at               timestamptz NOT NULL,
    changed          boolean NOT NULL,
    acknowledged_at  timestamptz,
    PRIMARY KEY (episode_id, message_id)
);
CREATE INDEX episode_messages_message_idx ON episode_messages (message_id);

-- Who held clinical responsibility, from when, and which message moved it. Never updated or deleted.
CREATE TABLE responsibility_ledger (
    episode_id            uuid NOT NULL REFERENCES episodes (id),
    seq                   integer NOT NULL CHECK (seq >= 0),
    ods                   text NOT NULL,
    clinician_name        text NOT NULL,
    clinician_identifier  text,
    since                 timestamptz NOT NULL,
    caused_by             uuid NOT NULL REFERENCES messages (id),
    accepted_by_name      text,
    PRIMARY KEY (episode_id, seq)
);
CREATE FUNCTION responsibility_ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'responsibility_ledger is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER responsibility_ledger_no_update_delete BEFORE UPDATE OR DELETE ON responsibility_ledger
    FOR EACH ROW EXECUTE FUNCTION responsibility_ledger_is_append_only();
CREATE TRIGGER responsibility_ledger_no_truncate BEFORE TRUNCATE ON responsibility_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION responsibility_ledger_is_append_only();

-- What someone owes someone by when: an acknowledgement, an SMDT outcome, a transfer response, a discharge
-- summary. `met_at` when it arrives; `alerted_at` when the safety net told the waiting party it is overdue.
CREATE TABLE deadlines (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    episode_id     uuid NOT NULL REFERENCES episodes (id),
    kind           text NOT NULL CHECK (kind IN ('acknowledgement', 'smdt-outcome', 'transfer-response',
                                                 'discharge-summary')),
    message_id     uuid NOT NULL REFERENCES messages (id),
    owed_by        text NOT NULL,
    waiting        text NOT NULL,
    due_at         timestamptz NOT NULL,
    met_at         timestamptz,
    alerted_at     timestamptz,
    alert_message  uuid,
    CONSTRAINT deadlines_episode_kind_message_key UNIQUE (episode_id, kind, message_id)
);
CREATE INDEX deadlines_open_idx ON deadlines (due_at) WHERE met_at IS NULL;

-- The service role (see 0002): episodes are its working state; the ledger, like the audit log, is insert-only.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'handover_app') THEN
        GRANT SELECT, INSERT, UPDATE ON episodes, episode_messages, deadlines TO handover_app;
        GRANT SELECT, INSERT ON responsibility_ledger TO handover_app;
        REVOKE UPDATE, DELETE, TRUNCATE ON responsibility_ledger FROM handover_app;
        EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA %I TO handover_app', current_schema());
    END IF;
END;
$$;

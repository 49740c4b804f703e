-- Clinical safety controls (issue 14; docs/safety/hazards.yaml).

-- HAZ wrong patient: the episode remembers its patient's date of birth, as a keyed HMAC bound to the NHS number
-- (service/pseudonyms.py), so a later message naming another date of birth is refused. Referrals are also looked
-- up by identifier alone, to refuse a message naming another patient under an existing referral.
ALTER TABLE episodes ADD COLUMN birth_date_hmac text CHECK (birth_date_hmac ~ '^[0-9a-f]{64}$');
CREATE INDEX episodes_referral_idx ON episodes (referral_identifier);

-- HAZ two parties responsible: the ledger is one chain. Each episode's entries are numbered 0, 1, 2, … with no
-- gap and no fork (the primary key forbids two entries with one number), so the current holder (the highest
-- number) is always exactly one entry. (Times are not compared: two messages for one episode may take their
-- acceptance times in one order and the episode's lock in the other.)
CREATE FUNCTION responsibility_ledger_is_one_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last_seq integer;
BEGIN
    SELECT max(seq) INTO last_seq FROM responsibility_ledger WHERE episode_id = NEW.episode_id;
    IF NEW.seq <> coalesce(last_seq + 1, 0) THEN
        RAISE EXCEPTION 'responsibility_ledger: entry % of an episode must follow entry % (one holder at a time)',
            NEW.seq, coalesce(last_seq, -1) USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER responsibility_ledger_one_chain BEFORE INSERT ON responsibility_ledger
    FOR EACH ROW EXECUTE FUNCTION responsibility_ledger_is_one_chain();

-- HAZ unread payload shredded: retention keeps a payload nobody has read; this marks the one audit event saying
-- so (written when its retention has passed but it was never delivered or acknowledged).
ALTER TABLE messages ADD COLUMN payload_kept_unread_at timestamptz;

-- HAZ cancer clock breached unnoticed: each day-38 / day-62 alert (a warning before the target, then the
-- breach) is sent once per episode and party.
CREATE TABLE pathway_clock_alerts (
    episode_id     uuid NOT NULL REFERENCES episodes (id),
    alert          text NOT NULL CHECK (alert IN ('day-38-breached', 'day-62-approaching', 'day-62-breached')),
    recipient_ods  text NOT NULL,
    alert_message  uuid NOT NULL,
    alerted_at     timestamptz NOT NULL,
    PRIMARY KEY (episode_id, alert, recipient_ods)
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'handover_app') THEN
        GRANT SELECT, INSERT ON pathway_clock_alerts TO handover_app;
    END IF;
END;
$$;

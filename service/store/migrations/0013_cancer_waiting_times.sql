-- Cancer waiting times across the handover (issue 24; CONTRACT section 9). The dates NHS England's breach
-- allocation needs, each taken from a signed message and recorded on the episode once: the first one recorded
-- stands. The clock start is the existing `pathway_start`; the referring provider is `referrer_ods`, the
-- treating provider `centre_ods`. Additive only: every column is nullable or has a default, so a hub of the
-- previous release keeps working on this schema.
ALTER TABLE episodes
    ADD COLUMN ipt_received_date          date,
    ADD COLUMN ipt_received_message_id    uuid,
    ADD COLUMN decision_to_refer_date     date,
    ADD COLUMN decision_to_treat_date     date,
    ADD COLUMN treatment_date             date,
    ADD COLUMN treatment_opcs4            text,
    ADD COLUMN faster_diagnosis_date      date,
    ADD COLUMN adjustment_days_referring  integer NOT NULL DEFAULT 0 CHECK (adjustment_days_referring >= 0),
    ADD COLUMN adjustment_days_treating   integer NOT NULL DEFAULT 0 CHECK (adjustment_days_treating >= 0);
CREATE INDEX episodes_treatment_date_idx ON episodes (treatment_date) WHERE treatment_date IS NOT NULL;

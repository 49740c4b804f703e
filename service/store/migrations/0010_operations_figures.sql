-- Figures /metrics reads from the database at every scrape (shared state of every hub process), kept cheap
-- however long the log and the delivery history grow: dead letters per recipient, and safety-net alerts by
-- kind (their audit events; the audit log is never pruned, so these counts only grow).
CREATE INDEX IF NOT EXISTS deliveries_dead_letter_idx ON deliveries (recipient_ods) WHERE state = 'dead_letter';
CREATE INDEX IF NOT EXISTS audit_events_alert_sent_idx ON audit_events (outcome) WHERE event_type = 'alert-sent';

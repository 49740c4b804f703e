-- Encryption at rest and push delivery (issue 8).
--
-- Payloads. From here on a payload is stored only encrypted: AES-256-GCM ciphertext (with its tag) and 96-bit
-- nonce in `messages`, its per-payload data key wrapped by the key-encryption key (KEK) in `data_keys`. The old
-- `payload` column held plaintext: it may no longer be written (the NOT VALID check applies to every new or
-- updated row but not to rows already there), and the service seals the rows already there at start-up
-- (service/crypto/vault.py, `seal_legacy_payloads`), emptying it. A later migration drops it.
-- Crypto-shredding at the end of retention deletes the `data_keys` row and the ciphertext, and stamps
-- `payload_shredded_at`; every other column (metadata) and the audit log stay.

ALTER TABLE messages ALTER COLUMN payload DROP NOT NULL;
ALTER TABLE messages ADD CONSTRAINT messages_no_plaintext_payload CHECK (payload IS NULL) NOT VALID;
ALTER TABLE messages
    ADD COLUMN payload_ciphertext   bytea,
    ADD COLUMN payload_nonce        bytea CHECK (length(payload_nonce) = 12),
    ADD COLUMN payload_aad_version  smallint,
    ADD COLUMN payload_shredded_at  timestamptz,
    ADD CONSTRAINT messages_ciphertext_has_nonce
        CHECK ((payload_ciphertext IS NULL) = (payload_nonce IS NULL)
               AND (payload_ciphertext IS NULL) = (payload_aad_version IS NULL));

CREATE TABLE data_keys (
    message_id    uuid PRIMARY KEY REFERENCES messages (id),
    kek_id        text NOT NULL,
    wrapped_key   bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    rewrapped_at  timestamptz
);
CREATE INDEX data_keys_kek_idx ON data_keys (kek_id);

-- Push delivery. A relay leases a due job by setting `lease_until` and a fresh `lease_token` (and counting the
-- attempt); only the holder of the current token may reschedule, dead-letter or release it. Marking delivered
-- needs only `state = 'pending'`: a 2xx is a delivery whoever holds the lease, and pull acknowledgement uses the
-- same state check, so whichever channel delivers first wins and the other finds nothing to do.
ALTER TABLE deliveries
    ADD COLUMN lease_token       uuid,
    ADD COLUMN last_status       integer,
    ADD COLUMN dead_lettered_at  timestamptz,
    ADD CONSTRAINT deliveries_dead_letter_has_time CHECK ((state = 'dead_letter') = (dead_lettered_at IS NOT NULL));
CREATE INDEX deliveries_recipient_due_idx ON deliveries (recipient_ods, next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_pending_age_idx ON deliveries (created_at) WHERE state = 'pending';

-- Exactly one non-delivery report per dead letter: the report is a hub-signed `acknowledgement` message to the
-- original sender, written in the same transaction that dead-letters the delivery.
CREATE TABLE non_delivery_reports (
    delivery_id        bigint PRIMARY KEY REFERENCES deliveries (id),
    report_message_id  uuid NOT NULL UNIQUE REFERENCES messages (id),
    reason             text NOT NULL,
    created_at         timestamptz NOT NULL
);

-- Privileges for the application role (see 0002): the new tables need explicit grants.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'handover_app') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON data_keys TO handover_app;
        GRANT SELECT, INSERT ON non_delivery_reports TO handover_app;
    ELSE
        RAISE NOTICE 'role handover_app does not exist: grants on data_keys and non_delivery_reports skipped';
    END IF;
END;
$$;

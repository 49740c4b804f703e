-- Appending to the audit log in one round trip (issue 12). An append must take the sequencer's lock before it
-- reads max(seq), and a plain statement's snapshot is taken before anything in it runs, so one statement cannot
-- do both: that took two round trips, each a wait for the event loop while every other acceptance waited for the
-- lock. In READ COMMITTED, each statement of a volatile PL/pgSQL function takes a fresh snapshot, so the INSERT
-- below sees every append committed before the lock was granted. The lock is transaction-scoped: it is held until
-- the caller's COMMIT or ROLLBACK, so indexes stay dense and in commit order, as before.
CREATE FUNCTION audit_append(
    lock_key bigint,
    event_types text[],
    outcomes text[],
    actors text[],
    message_ids uuid[],
    recorded timestamptz[],
    leaves bytea[],
    leaf_hashes bytea[]
) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    first_seq bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    SELECT coalesce(max(seq) + 1, 0) INTO first_seq FROM audit_events;
    INSERT INTO audit_events (seq, event_type, outcome, actor, message_id, recorded_at, leaf, leaf_hash)
    SELECT first_seq + e.position - 1, e.event_type, e.outcome, e.actor, e.message_id, e.recorded_at, e.leaf,
           e.leaf_hash
    FROM unnest(event_types, outcomes, actors, message_ids, recorded, leaves, leaf_hashes) WITH ORDINALITY
         AS e(event_type, outcome, actor, message_id, recorded_at, leaf, leaf_hash, position);
    RETURN first_seq;
END;
$$;

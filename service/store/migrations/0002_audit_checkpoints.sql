-- Signed audit checkpoints, and the database's own protection of the audit tables (issue 7, item 4).
--
-- Roles. Migrations run as the OWNER of the schema (the role in the DSN given to `handover db migrate`).
-- The service should run as a login role that is a member of `handover_app`, created here as NOLOGIN:
-- it may SELECT and INSERT the audit tables and nothing more, and use the other tables as the service needs.
-- A deployment does, once, as an administrator:
--     CREATE ROLE handover_service LOGIN PASSWORD '…' IN ROLE handover_app;
-- then runs `handover db migrate` with the owner's DSN and the service with
--     HANDOVER_DATABASE_URL=postgresql://handover_service:…@host/handover
-- The embedded development cluster runs everything as its one superuser (the owner), which is fine: the
-- triggers below still refuse UPDATE, DELETE and TRUNCATE of audit rows to the owner. Only a superuser (or
-- the owner, by disabling the triggers) can change history, and that is what signed checkpoints held off
-- the host (by trusts, in every receipt's log) detect.
-- When the migrating role may not create roles and `handover_app` does not exist yet, the role and its
-- grants are skipped with a NOTICE; create the role and re-grant as below by hand.
-- Every later migration that creates a table must grant `handover_app` what it needs explicitly (there are
-- no default privileges, so a new audit table is never writable by accident).

-- One row per signed checkpoint (a C2SP signed note). `tree_size` is the key: never two checkpoints of one
-- size, so never two different roots for one size. Sizes and times only grow (trigger below).
CREATE TABLE audit_checkpoints (
    tree_size   bigint PRIMARY KEY CHECK (tree_size >= 0),
    root_hash   bytea NOT NULL CHECK (length(root_hash) = 32),
    signed_at   timestamptz NOT NULL,
    key_id      text NOT NULL,
    note        text NOT NULL
);

CREATE FUNCTION audit_checkpoints_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_checkpoints is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_checkpoints_no_update_delete BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_are_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoints_are_append_only();

-- A new checkpoint must be larger and no older than every earlier one, and must not run past the log.
CREATE FUNCTION audit_checkpoints_grow() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last_size bigint;
    last_time timestamptz;
    log_size  bigint;
BEGIN
    SELECT tree_size, signed_at INTO last_size, last_time FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1;
    IF last_size IS NOT NULL AND NEW.tree_size <= last_size THEN
        RAISE EXCEPTION 'audit checkpoint of size % refused: size % is already checkpointed', NEW.tree_size, last_size
            USING ERRCODE = 'unique_violation';
    END IF;
    IF last_time IS NOT NULL AND NEW.signed_at < last_time THEN
        RAISE EXCEPTION 'audit checkpoint time % is before the previous one (%)', NEW.signed_at, last_time
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT coalesce(max(seq) + 1, 0) INTO log_size FROM audit_events;
    IF NEW.tree_size > log_size THEN
        RAISE EXCEPTION 'audit checkpoint of size % refused: the log has % entries', NEW.tree_size, log_size
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_checkpoints_only_grow BEFORE INSERT ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_grow();

-- Privileges: nobody but the owner holds anything on the audit tables by default.
REVOKE ALL ON audit_events, audit_checkpoints FROM PUBLIC;

DO $$
DECLARE
    may_create boolean;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'handover_app') THEN
        SELECT rolsuper OR rolcreaterole INTO may_create FROM pg_roles WHERE rolname = current_user;
        IF NOT may_create THEN
            RAISE NOTICE 'role handover_app does not exist and % may not create it: grants skipped', current_user;
            RETURN;
        END IF;
        BEGIN
            CREATE ROLE handover_app NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile by a migration of another database in the same cluster
        END;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO handover_app', current_schema());
    GRANT SELECT, INSERT ON audit_events, audit_checkpoints TO handover_app;
    REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_events, audit_checkpoints FROM handover_app;
    GRANT SELECT, INSERT, UPDATE, DELETE ON messages, idempotency_keys, deliveries, used_token_ids TO handover_app;
    GRANT SELECT ON schema_migrations TO handover_app;
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA %I TO handover_app', current_schema());
END;
$$;

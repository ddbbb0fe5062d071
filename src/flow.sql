-- Flow control per queue (README: Flow control; engine/queues.rs): pause, a concurrency
-- limit and a token-bucket rate limit. A claim on a queue with a row here locks the row;
-- queues without one are claimed as before. Written through workflow_queue_configure.
CREATE TABLE @extschema@.workflow_queue (
    queue       text        PRIMARY KEY,
    paused      boolean     NOT NULL DEFAULT false,
    max_running int         CHECK (max_running OPERATOR(pg_catalog.>) 0),
    rate_count  int         CHECK (rate_count OPERATOR(pg_catalog.>) 0),
    rate_per_us int8        CHECK (rate_per_us OPERATOR(pg_catalog.>) 0),
    burst       float8      CHECK (burst OPERATOR(pg_catalog.>) 0),
    tokens      float8      NOT NULL DEFAULT 0,
    refilled_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
-- Backends cache which queues have a row; adding or removing one makes them forget it
-- (the same relcache invalidation as for tenant bindings). Updates (a claim spending
-- tokens) change no membership and send none.
CREATE TRIGGER workflow_queue_changed AFTER INSERT OR DELETE OR TRUNCATE
    ON @extschema@.workflow_queue FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.workflow_tenant_role_changed();

-- Failed work in bulk (README: Flow control): retry or cancel every execution a
-- workflow_list filter finds, a batch per transaction, oldest id last (keyset pages: each
-- execution is visited once even as its status changes). CALL them outside a transaction
-- block: each batch commits, so a million executions never take one transaction. No SET
-- clause (it would forbid the COMMITs): every name is qualified instead, and they run with
-- the caller's rights (not SECURITY DEFINER), so a caller's search_path reaches nobody else.
CREATE PROCEDURE @extschema@.workflow_retry_many(filter pg_catalog.jsonb DEFAULT '{}', batch_size pg_catalog.int4 DEFAULT 1000,
                                                 INOUT retried pg_catalog.int8 DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
    last pg_catalog.uuid;
    seen pg_catalog.int4;
    r record;
BEGIN
    IF batch_size IS NULL OR batch_size OPERATOR(pg_catalog.<) 1 OR batch_size OPERATOR(pg_catalog.>) 1000 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('batch_size must be from 1 to 1000, got %s', batch_size),
            HINT = 'a batch is one transaction; leave it out for 1000';
    END IF;
    retried := 0;
    LOOP
        seen := 0;
        FOR r IN SELECT l.id, l.status FROM @extschema@.workflow_list(filter, batch_size, last) l LOOP
            seen := seen OPERATOR(pg_catalog.+) 1;
            last := r.id;
            IF r.status OPERATOR(pg_catalog.=) ANY (ARRAY['failed', 'cancelled'])
               AND @extschema@.workflow_retry(r.id) THEN
                retried := retried OPERATOR(pg_catalog.+) 1;
            END IF;
        END LOOP;
        EXIT WHEN seen OPERATOR(pg_catalog.<) batch_size;
        COMMIT;
    END LOOP;
END
$$;

CREATE PROCEDURE @extschema@.workflow_cancel_many(filter pg_catalog.jsonb DEFAULT '{}',
                                                  reason pg_catalog.text DEFAULT 'cancelled in bulk',
                                                  batch_size pg_catalog.int4 DEFAULT 1000, INOUT cancelled pg_catalog.int8 DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
    last pg_catalog.uuid;
    seen pg_catalog.int4;
    r record;
BEGIN
    IF batch_size IS NULL OR batch_size OPERATOR(pg_catalog.<) 1 OR batch_size OPERATOR(pg_catalog.>) 1000 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('batch_size must be from 1 to 1000, got %s', batch_size),
            HINT = 'a batch is one transaction; leave it out for 1000';
    END IF;
    cancelled := 0;
    LOOP
        seen := 0;
        FOR r IN SELECT l.id, l.status FROM @extschema@.workflow_list(filter, batch_size, last) l LOOP
            seen := seen OPERATOR(pg_catalog.+) 1;
            last := r.id;
            IF r.status OPERATOR(pg_catalog.=) ANY (ARRAY['pending', 'running'])
               AND @extschema@.workflow_cancel(r.id, reason) THEN
                cancelled := cancelled OPERATOR(pg_catalog.+) 1;
            END IF;
        END LOOP;
        EXIT WHEN seen OPERATOR(pg_catalog.<) batch_size;
        COMMIT;
    END LOOP;
END
$$;

-- Schedules (README: Flow control; engine/schedules.rs): one row per schedule; the
-- dispatcher (or workflow_dispatch()) fires what is due, locking the row while it does.
CREATE TABLE @extschema@.workflow_schedule (
    name             text        PRIMARY KEY,
    schedule         text        NOT NULL,
    timezone         text        NOT NULL DEFAULT 'UTC',
    workflow_type    text        NOT NULL,
    input            jsonb       NOT NULL DEFAULT '{}',
    options          jsonb       NOT NULL DEFAULT '{}',
    overlap          text        NOT NULL DEFAULT 'skip'
        CHECK (overlap OPERATOR(pg_catalog.=) ANY (ARRAY['skip', 'buffer_one', 'allow_all'])),
    catch_up         text        NOT NULL DEFAULT 'latest'
        CHECK (catch_up OPERATOR(pg_catalog.=) ANY (ARRAY['skip', 'latest'])),
    paused           boolean     NOT NULL DEFAULT false,
    next_fire_at     timestamptz,
    buffered_fire_at timestamptz,
    last_fire_at     timestamptz,
    last_execution   uuid,
    last_error       jsonb,
    owner            regrole     NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at       timestamptz NOT NULL DEFAULT pg_catalog.now()
);

-- Paused workflow types (README: Flow control; engine/admission.rs): their starts are
-- accepted and wait until the type is resumed.
CREATE TABLE @extschema@.workflow_paused_type (
    workflow_type text        PRIMARY KEY,
    paused_at     timestamptz NOT NULL DEFAULT pg_catalog.now()
);

-- Concurrency keys on steps (README: Flow control; engine/admission.rs): an admitted
-- activity with a key that stops being scheduled or running (it ended, or a retry removed
-- it) frees its slot, and the oldest activity held for that key is made due. Under the
-- key's advisory lock, as admission is; SKIP LOCKED, so it never waits on another
-- execution's rows. The NOTIFY is sent only for such a hand-over.
CREATE FUNCTION @extschema@.workflow_activity_slot_freed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    next_queue text;
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(
        pg_catalog.hashtext('pg_workflow.activity:' OPERATOR(pg_catalog.||) OLD.activity_type),
        pg_catalog.hashtext(OLD.concurrency_key));
    UPDATE @extschema@.workflow_activity SET scheduled_at = pg_catalog.now()
    WHERE id OPERATOR(pg_catalog.=) (
        SELECT h.id FROM @extschema@.workflow_activity h
        WHERE h.activity_type OPERATOR(pg_catalog.=) OLD.activity_type
          AND h.concurrency_key OPERATOR(pg_catalog.=) OLD.concurrency_key
          AND h.status OPERATOR(pg_catalog.=) 'scheduled'
          AND h.scheduled_at OPERATOR(pg_catalog.=) 'infinity'::pg_catalog.timestamptz
        ORDER BY h.id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING queue INTO next_queue;
    IF next_queue IS NOT NULL THEN
        PERFORM pg_catalog.pg_notify('workflow_activity_ready', next_queue);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER workflow_activity_slot_freed AFTER UPDATE ON @extschema@.workflow_activity FOR EACH ROW
    WHEN (OLD.concurrency_key IS NOT NULL
          AND OLD.status OPERATOR(pg_catalog.=) ANY (ARRAY['scheduled', 'running'])
          AND OLD.scheduled_at OPERATOR(pg_catalog.<) 'infinity'::pg_catalog.timestamptz
          AND NEW.status OPERATOR(pg_catalog.<>) ALL (ARRAY['scheduled', 'running']))
    EXECUTE FUNCTION @extschema@.workflow_activity_slot_freed();
CREATE TRIGGER workflow_activity_slot_deleted AFTER DELETE ON @extschema@.workflow_activity FOR EACH ROW
    WHEN (OLD.concurrency_key IS NOT NULL
          AND OLD.status OPERATOR(pg_catalog.=) ANY (ARRAY['scheduled', 'running'])
          AND OLD.scheduled_at OPERATOR(pg_catalog.<) 'infinity'::pg_catalog.timestamptz)
    EXECUTE FUNCTION @extschema@.workflow_activity_slot_freed();

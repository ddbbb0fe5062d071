-- pg_workflow 0.2.0 -> 0.3.0 (CHANGELOG: 0.3.0).

-- Installable by a non-superuser (the control file now says trusted = true): the grant
-- recipes move into the library, which runs the GRANTs as the owner of the objects (in
-- a trusted install that is the bootstrap superuser, not the role that created the
-- extension) after checking that the caller is bound to no tenant; they gain the `owner`
-- part. CREATE OR REPLACE keeps the functions' grants. An installed 0.2.0 was created by
-- a superuser, so no role needs the owner part here.
CREATE OR REPLACE FUNCTION @extschema@.workflow_grant("role" pg_catalog.regrole, "part" pg_catalog.text) RETURNS void
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_grant_wrapper';
CREATE OR REPLACE FUNCTION @extschema@.workflow_revoke("role" pg_catalog.regrole) RETURNS void
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_revoke_wrapper';

-- Client-driven executions replayed by one process at a time (workflow_claim_executions).
ALTER TABLE @extschema@.workflow_execution
    ADD COLUMN replay_worker text,
    ADD COLUMN replay_lease_expires_at timestamptz,
    ADD COLUMN replay_token int NOT NULL DEFAULT 0;

-- Engines on client-driven executions (issue 13): find without starting, replay turns,
-- fenced ends, claiming one activity. Nothing is granted to PUBLIC (the recipes do).
CREATE FUNCTION @extschema@.workflow_find("workflow_type" pg_catalog.text, "idempotency_key" pg_catalog.text,
    "tenant_id" pg_catalog.text DEFAULT NULL) RETURNS uuid
STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_find_wrapper';
CREATE FUNCTION @extschema@.workflow_claim_executions("workflow_types" pg_catalog.text[], "worker_id" pg_catalog.text,
    "max_count" pg_catalog.int4 DEFAULT 1, "lease" pg_catalog.interval DEFAULT '1 minute')
RETURNS TABLE ("execution_id" uuid, "workflow_type" pg_catalog.text, "input" pg_catalog.jsonb,
    "lease_token" pg_catalog.int4, "lease_expires_at" pg_catalog.timestamptz)
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_claim_executions_wrapper';
CREATE FUNCTION @extschema@.workflow_renew_execution("execution_id" uuid, "lease_token" pg_catalog.int4,
    "lease" pg_catalog.interval DEFAULT '1 minute') RETURNS bool
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_renew_execution_wrapper';
CREATE FUNCTION @extschema@.workflow_release_execution("execution_id" uuid, "lease_token" pg_catalog.int4) RETURNS bool
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_release_execution_wrapper';
CREATE FUNCTION @extschema@.workflow_claim_activity("id" uuid, "worker_id" pg_catalog.text,
    "lease" pg_catalog.interval DEFAULT '5 minutes')
RETURNS TABLE ("activity_id" uuid, "execution_id" uuid, "workflow_type" pg_catalog.text, "step_key" pg_catalog.text,
    "activity_type" pg_catalog.text, "input" pg_catalog.jsonb, "attempt" pg_catalog.int4,
    "lease_expires_at" pg_catalog.timestamptz)
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_claim_activity_wrapper';
-- A claim that waits in the backend for work (issue 16), woken by the commit that makes
-- it claimable.
CREATE FUNCTION @extschema@.workflow_claim_wait("queue" pg_catalog.text, "worker_id" pg_catalog.text,
    "max_count" pg_catalog.int4 DEFAULT 1, "lease" pg_catalog.interval DEFAULT '5 minutes',
    "activity_types" pg_catalog.text[] DEFAULT NULL, "timeout" pg_catalog.interval DEFAULT '1 second')
RETURNS TABLE ("activity_id" uuid, "execution_id" uuid, "workflow_type" pg_catalog.text, "step_key" pg_catalog.text,
    "activity_type" pg_catalog.text, "input" pg_catalog.jsonb, "attempt" pg_catalog.int4,
    "lease_expires_at" pg_catalog.timestamptz)
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_claim_wait_wrapper';
CREATE FUNCTION @extschema@.workflow_complete("execution_id" uuid, "output" pg_catalog.jsonb, "lease_token" pg_catalog.int4)
RETURNS bool VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_complete_fenced_wrapper';
CREATE FUNCTION @extschema@.workflow_fail("execution_id" uuid, "error" pg_catalog.jsonb, "lease_token" pg_catalog.int4)
RETURNS bool VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_fail_fenced_wrapper';
REVOKE ALL ON FUNCTION @extschema@.workflow_find(pg_catalog.text, pg_catalog.text, pg_catalog.text),
    @extschema@.workflow_claim_executions(pg_catalog.text[], pg_catalog.text, pg_catalog.int4, pg_catalog.interval),
    @extschema@.workflow_renew_execution(uuid, pg_catalog.int4, pg_catalog.interval),
    @extschema@.workflow_release_execution(uuid, pg_catalog.int4),
    @extschema@.workflow_claim_activity(uuid, pg_catalog.text, pg_catalog.interval),
    @extschema@.workflow_claim_wait(pg_catalog.text, pg_catalog.text, pg_catalog.int4, pg_catalog.interval,
        pg_catalog.text[], pg_catalog.interval),
    @extschema@.workflow_complete(uuid, pg_catalog.jsonb, pg_catalog.int4),
    @extschema@.workflow_fail(uuid, pg_catalog.jsonb, pg_catalog.int4) FROM PUBLIC;

-- Observability (issue 14): attempt history, search indexes, stats, metrics, the graph.
-- Attempt history (README: Observability): one row per finished attempt of an activity,
-- written by a trigger when a running activity stops running, so that every path that
-- ends an attempt (completion, failure, retry, lease expiry, cancellation) is covered
-- by one place. Rows belong to the execution, not to the activity: workflow_retry
-- deletes and re-creates unfinished steps, and their earlier attempts stay. Retention
-- deletes them with their execution.
CREATE TABLE @extschema@.workflow_attempt (
    execution_id  uuid        NOT NULL REFERENCES @extschema@.workflow_execution (id) ON DELETE CASCADE,
    step_key      text        NOT NULL,
    activity_id   uuid        NOT NULL,
    attempt       int         NOT NULL,
    queue         text,
    activity_type text,
    worker_id     text,
    started_at    timestamptz,
    finished_at   timestamptz NOT NULL,
    outcome       text        NOT NULL CHECK (outcome OPERATOR(pg_catalog.=) ANY
                                  (ARRAY['completed', 'failed', 'timed_out', 'lease_expired', 'cancelled'])),
    error         jsonb,
    heartbeat     jsonb
) WITH (fillfactor = 100, autovacuum_vacuum_insert_scale_factor = 0.02);

-- A step's attempts (workflow_status), and the foreign key's cascade.
CREATE INDEX workflow_attempt_step ON @extschema@.workflow_attempt (execution_id, step_key);
-- The last minute's and hour's outcomes (workflow_queue_stats, workflow_metrics).
CREATE INDEX workflow_attempt_finished ON @extschema@.workflow_attempt (finished_at);

ALTER TABLE @extschema@.workflow_attempt ENABLE ROW LEVEL SECURITY;
CREATE POLICY workflow_tenant_isolation ON @extschema@.workflow_attempt
    USING ((SELECT @extschema@.workflow_current_tenant()) IS NULL
           OR execution_id OPERATOR(pg_catalog.=) ANY (SELECT id FROM @extschema@.workflow_execution
                               WHERE tenant_id OPERATOR(pg_catalog.=) (SELECT @extschema@.workflow_current_tenant())));

CREATE FUNCTION @extschema@.workflow_attempt_ended() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO @extschema@.workflow_attempt (execution_id, step_key, activity_id, attempt, queue, activity_type,
                                              worker_id, started_at, finished_at, outcome, error, heartbeat)
    VALUES (NEW.execution_id, NEW.step_key, NEW.id, OLD.attempt, NEW.queue, NEW.activity_type, OLD.worker_id,
            OLD.started_at, pg_catalog.clock_timestamp(),
            CASE
                WHEN NEW.status OPERATOR(pg_catalog.=) 'completed' THEN 'completed'
                WHEN NEW.status OPERATOR(pg_catalog.=) 'cancelled' THEN 'cancelled'
                WHEN NEW.error OPERATOR(pg_catalog.->>) 'reason' OPERATOR(pg_catalog.=) 'lease_expired' THEN 'lease_expired'
                WHEN NEW.error OPERATOR(pg_catalog.->>) 'type' OPERATOR(pg_catalog.=) 'Timeout' THEN 'timed_out'
                ELSE 'failed'
            END,
            CASE WHEN NEW.status OPERATOR(pg_catalog.<>) 'completed' THEN NEW.error END,
            OLD.heartbeat);
    RETURN NULL;
END
$$;

-- Fires only when an attempt ends: the WHEN test costs the hot path next to nothing.
CREATE TRIGGER workflow_attempt_ended AFTER UPDATE ON @extschema@.workflow_activity FOR EACH ROW
    WHEN (OLD.status OPERATOR(pg_catalog.=) 'running' AND NEW.status OPERATOR(pg_catalog.<>) 'running')
    EXECUTE FUNCTION @extschema@.workflow_attempt_ended();

CREATE INDEX workflow_execution_type ON @extschema@.workflow_execution (workflow_type, id);
-- Only labelled executions: an empty '{}' would cost every start and finish a GIN entry
-- (and its metapage update, ~170 bytes of WAL, one page every starter writes).
CREATE INDEX workflow_execution_labels ON @extschema@.workflow_execution USING gin (labels jsonb_path_ops)
    WHERE labels OPERATOR(pg_catalog.<>) '{}'::pg_catalog.jsonb;
CREATE INDEX workflow_execution_open ON @extschema@.workflow_execution (workflow_type, status)
    WHERE status OPERATOR(pg_catalog.=) ANY (ARRAY['pending', 'running']);
CREATE INDEX workflow_activity_signal_wait ON @extschema@.workflow_activity (activity_type, created_at)
    WHERE status OPERATOR(pg_catalog.=) 'waiting' AND kind OPERATOR(pg_catalog.=) 'signal';

CREATE FUNCTION @extschema@.workflow_queue_stats() RETURNS TABLE ("queue" pg_catalog.text, "ready" pg_catalog.int8,
    "delayed" pg_catalog.int8, "running" pg_catalog.int8, "expired_leases" pg_catalog.int8,
    "oldest_ready_age" pg_catalog.interval, "completed_last_minute" pg_catalog.int8, "failed_last_minute" pg_catalog.int8,
    "completed_last_hour" pg_catalog.int8, "failed_last_hour" pg_catalog.int8)
STRICT STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_queue_stats_wrapper';
CREATE FUNCTION @extschema@.workflow_execution_stats("since" pg_catalog.timestamptz DEFAULT pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::pg_catalog.interval)
RETURNS pg_catalog.jsonb STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_execution_stats_wrapper';
CREATE FUNCTION @extschema@.workflow_list("filter" pg_catalog.jsonb DEFAULT '{}', "page_size" pg_catalog.int4 DEFAULT 50,
    "after" uuid DEFAULT NULL)
RETURNS TABLE ("id" uuid, "workflow_type" pg_catalog.text, "status" pg_catalog.text, "tenant_id" pg_catalog.text,
    "labels" pg_catalog.jsonb, "created_at" pg_catalog.timestamptz, "finished_at" pg_catalog.timestamptz,
    "error" pg_catalog.jsonb)
STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_list_wrapper';
CREATE FUNCTION @extschema@.workflow_waiting("signal_name" pg_catalog.text, "max_count" pg_catalog.int4 DEFAULT 100)
RETURNS TABLE ("execution_id" uuid, "workflow_type" pg_catalog.text, "step_key" pg_catalog.text,
    "waiting_since" pg_catalog.timestamptz, "input" pg_catalog.jsonb, "labels" pg_catalog.jsonb, "tenant_id" pg_catalog.text)
STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_waiting_wrapper';
CREATE FUNCTION @extschema@.workflow_metrics() RETURNS pg_catalog.text
STRICT STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_metrics_wrapper';
CREATE FUNCTION @extschema@.workflow_graph("execution_id" uuid, "format" pg_catalog.text DEFAULT 'mermaid')
RETURNS pg_catalog.text STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_graph_wrapper';
REVOKE ALL ON FUNCTION @extschema@.workflow_queue_stats(), @extschema@.workflow_execution_stats(pg_catalog.timestamptz),
    @extschema@.workflow_list(pg_catalog.jsonb, pg_catalog.int4, uuid), @extschema@.workflow_waiting(pg_catalog.text, pg_catalog.int4),
    @extschema@.workflow_metrics(), @extschema@.workflow_graph(uuid, pg_catalog.text),
    @extschema@.workflow_attempt_ended() FROM PUBLIC;

-- Flow control (issue 15, first part): queue pause and limits, bulk retry and cancel.
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

CREATE FUNCTION @extschema@.workflow_queue_configure("queue" pg_catalog.text, "options" pg_catalog.jsonb)
RETURNS pg_catalog.jsonb VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_queue_configure_wrapper';
REVOKE ALL ON ROUTINE @extschema@.workflow_queue_configure(pg_catalog.text, pg_catalog.jsonb),
    @extschema@.workflow_retry_many(pg_catalog.jsonb, pg_catalog.int4, pg_catalog.int8),
    @extschema@.workflow_cancel_many(pg_catalog.jsonb, pg_catalog.text, pg_catalog.int4, pg_catalog.int8) FROM PUBLIC;

-- Schedules (issue 15, item 1).
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

CREATE FUNCTION @extschema@.workflow_schedule_create("name" pg_catalog.text, "schedule" pg_catalog.text,
    "workflow_type" pg_catalog.text, "input" pg_catalog.jsonb DEFAULT '{}', "options" pg_catalog.jsonb DEFAULT '{}')
RETURNS pg_catalog.jsonb VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_schedule_create_wrapper';
CREATE FUNCTION @extschema@.workflow_schedule_delete("name" pg_catalog.text)
RETURNS pg_catalog.bool VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_schedule_delete_wrapper';
CREATE FUNCTION @extschema@.workflow_schedule_pause("name" pg_catalog.text)
RETURNS pg_catalog.bool VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_schedule_pause_wrapper';
CREATE FUNCTION @extschema@.workflow_schedule_resume("name" pg_catalog.text)
RETURNS pg_catalog.bool VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_schedule_resume_wrapper';
CREATE FUNCTION @extschema@.workflow_schedule_list()
RETURNS pg_catalog.jsonb STRICT STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_schedule_list_wrapper';
REVOKE ALL ON ROUTINE @extschema@.workflow_schedule_create(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.jsonb, pg_catalog.jsonb),
    @extschema@.workflow_schedule_delete(pg_catalog.text), @extschema@.workflow_schedule_pause(pg_catalog.text),
    @extschema@.workflow_schedule_resume(pg_catalog.text), @extschema@.workflow_schedule_list() FROM PUBLIC;

-- Concurrency keys and paused workflow types (issue 15, items 3 and 4).
ALTER TABLE @extschema@.workflow_execution ADD COLUMN concurrency_key text;
-- Concurrency keys (engine/admission.rs): a key's running executions, and its queue of
-- waiting ones in start order. Only executions of types with a limit have an entry.
CREATE INDEX workflow_execution_concurrency ON @extschema@.workflow_execution (workflow_type, concurrency_key, status, id)
    WHERE concurrency_key IS NOT NULL AND status OPERATOR(pg_catalog.=) ANY (ARRAY['pending', 'running']);
-- Paused workflow types (README: Flow control; engine/admission.rs): their starts are
-- accepted and wait until the type is resumed.
CREATE TABLE @extschema@.workflow_paused_type (
    workflow_type text        PRIMARY KEY,
    paused_at     timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE FUNCTION @extschema@.workflow_type_pause("workflow_type" pg_catalog.text)
RETURNS pg_catalog.bool VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_type_pause_wrapper';
CREATE FUNCTION @extschema@.workflow_type_resume("workflow_type" pg_catalog.text)
RETURNS pg_catalog.bool VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_type_resume_wrapper';
REVOKE ALL ON ROUTINE @extschema@.workflow_type_pause(pg_catalog.text), @extschema@.workflow_type_resume(pg_catalog.text)
    FROM PUBLIC;

-- Concurrency keys on steps.
ALTER TABLE @extschema@.workflow_activity ADD COLUMN concurrency_key text;
-- Concurrency keys on steps (engine/admission.rs): a key's admitted and held activities.
CREATE INDEX workflow_activity_concurrency ON @extschema@.workflow_activity (activity_type, concurrency_key, id)
    WHERE concurrency_key IS NOT NULL AND status OPERATOR(pg_catalog.=) ANY (ARRAY['scheduled', 'running']);
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
REVOKE ALL ON FUNCTION @extschema@.workflow_activity_slot_freed() FROM PUBLIC;

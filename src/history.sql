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

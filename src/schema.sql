-- pg_workflow schema (architecture: Tables). Status values are text with CHECK constraints rather
-- than enums so that later versions can add states with a plain ALTER. The two hot
-- tables are queue-like (every row is updated a few times, then left alone): free space
-- on each page keeps heartbeats HOT, and autovacuum is told to come early.

CREATE TABLE @extschema@.workflow_definition (
    name        text        NOT NULL,
    version     int         NOT NULL CHECK (version OPERATOR(pg_catalog.>) 0),
    definition  jsonb       NOT NULL,
    owner       regrole     NOT NULL DEFAULT current_user::pg_catalog.regrole,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (name, version)
);

CREATE TABLE @extschema@.workflow_execution (
    id                 uuid        PRIMARY KEY,
    workflow_type      text        NOT NULL,
    definition_version int,
    idempotency_key    text,
    status             text        NOT NULL
        CHECK (status OPERATOR(pg_catalog.=) ANY (ARRAY['pending', 'running', 'completed', 'failed', 'cancelled'])),
    input              jsonb       NOT NULL DEFAULT '{}',
    output             jsonb,
    error              jsonb,
    parent_id          uuid        REFERENCES @extschema@.workflow_execution (id) ON DELETE CASCADE,
    parent_step        text,
    tenant_id          text,
    owner              regrole     NOT NULL DEFAULT current_user::pg_catalog.regrole,
    -- defaults for the execution's activities
    queue              text        NOT NULL DEFAULT 'default',
    priority           int         NOT NULL DEFAULT 0,
    labels             jsonb       NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- for a pending execution: when it is due to start
    started_at         timestamptz,
    finished_at        timestamptz,
    deadline           timestamptz,
    -- client-driven executions: set when something they wait for finished, cleared when
    -- the client acts on the execution again
    ready_at           timestamptz,
    -- client-driven executions: the process replaying it now (workflow_claim_executions),
    -- until when, and the fencing token of that turn. While a turn is held, ready_at is
    -- parked at the lease's end, so an abandoned turn becomes claimable by itself.
    replay_worker      text,
    replay_lease_expires_at timestamptz,
    replay_token       int         NOT NULL DEFAULT 0,
    -- saga: NULL when nothing needs compensating
    compensation       text        CHECK (compensation OPERATOR(pg_catalog.=) ANY (ARRAY['running', 'completed', 'failed'])),
    -- the key of its type's concurrency limit (README: Flow control); NULL without one
    concurrency_key    text
) WITH (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.02,
        autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_cost_limit = 2000);

-- Partial: most starts have no key, and need no entry here. Per tenant: two tenants may
-- use the same key without seeing each other's executions.
CREATE UNIQUE INDEX workflow_execution_idempotency
    ON @extschema@.workflow_execution (workflow_type, idempotency_key, (coalesce(tenant_id, '')))
    WHERE idempotency_key IS NOT NULL;

CREATE INDEX workflow_execution_pending ON @extschema@.workflow_execution (started_at) WHERE status OPERATOR(pg_catalog.=) 'pending';
CREATE INDEX workflow_execution_parent ON @extschema@.workflow_execution (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX workflow_execution_deadline ON @extschema@.workflow_execution (deadline)
    WHERE status OPERATOR(pg_catalog.=) 'running' AND deadline IS NOT NULL;
CREATE INDEX workflow_execution_ready ON @extschema@.workflow_execution (ready_at) WHERE ready_at IS NOT NULL;
-- Search (workflow_list) and metrics: by type, newest first; by labels; the open ones.
CREATE INDEX workflow_execution_type ON @extschema@.workflow_execution (workflow_type, id);
-- Only labelled executions: an empty '{}' would cost every start and finish a GIN entry
-- (and its metapage update, ~170 bytes of WAL, one page every starter writes).
CREATE INDEX workflow_execution_labels ON @extschema@.workflow_execution USING gin (labels jsonb_path_ops)
    WHERE labels OPERATOR(pg_catalog.<>) '{}'::pg_catalog.jsonb;
CREATE INDEX workflow_execution_open ON @extschema@.workflow_execution (workflow_type, status)
    WHERE status OPERATOR(pg_catalog.=) ANY (ARRAY['pending', 'running']);
-- Concurrency keys (engine/admission.rs): a key's running executions, and its queue of
-- waiting ones in start order. Only executions of types with a limit have an entry.
CREATE INDEX workflow_execution_concurrency ON @extschema@.workflow_execution (workflow_type, concurrency_key, status, id)
    WHERE concurrency_key IS NOT NULL AND status OPERATOR(pg_catalog.=) ANY (ARRAY['pending', 'running']);
-- Retention deletes the oldest finished executions first.
CREATE INDEX workflow_execution_finished ON @extschema@.workflow_execution (finished_at)
    WHERE status OPERATOR(pg_catalog.=) ANY (ARRAY['completed', 'failed', 'cancelled']);

CREATE TABLE @extschema@.workflow_activity (
    id               uuid        PRIMARY KEY,
    execution_id     uuid        NOT NULL REFERENCES @extschema@.workflow_execution (id) ON DELETE CASCADE,
    step_key         text        NOT NULL,
    kind             text        NOT NULL CHECK (kind OPERATOR(pg_catalog.=) ANY (ARRAY['task', 'sql', 'sleep', 'signal', 'workflow'])),
    activity_type    text,
    queue            text        NOT NULL DEFAULT 'default',
    status           text        NOT NULL
        CHECK (status OPERATOR(pg_catalog.=) ANY (ARRAY['scheduled', 'running', 'waiting', 'completed', 'failed', 'cancelled', 'skipped'])),
    input            jsonb       NOT NULL DEFAULT '{}',
    output           jsonb,
    error            jsonb,
    attempt          int         NOT NULL DEFAULT 0 CHECK (attempt OPERATOR(pg_catalog.>=) 0),
    max_attempts     int         NOT NULL DEFAULT 3 CHECK (max_attempts OPERATOR(pg_catalog.>=) 0),
    retry            jsonb       NOT NULL DEFAULT '{}',
    priority         int         NOT NULL DEFAULT 0,
    -- when it becomes claimable; for a waiting sleep or signal step, when it is due
    scheduled_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- timeouts (architecture: Retries and timeouts): start-to-close and heartbeat bound
    -- every lease; a step past expires_at (schedule-to-close) fails for good
    start_to_close    interval,
    heartbeat_timeout interval,
    expires_at        timestamptz,
    -- claim bookkeeping: deliberately in no index, so heartbeats are HOT updates
    lease_expires_at timestamptz,
    worker_id        text,
    heartbeat_at     timestamptz,
    heartbeat        jsonb,
    cancel_requested boolean     NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    -- the key of its step's concurrency limit (README: Flow control); NULL without one
    concurrency_key  text,
    CONSTRAINT workflow_activity_step UNIQUE (execution_id, step_key)
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.02,
        autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_cost_limit = 2000);

-- Exactly the claim's WHERE and ORDER BY (see engine/claim.rs).
CREATE INDEX workflow_activity_claim ON @extschema@.workflow_activity (queue, priority DESC, scheduled_at)
    WHERE status OPERATOR(pg_catalog.=) 'scheduled' AND kind OPERATOR(pg_catalog.=) 'task';
-- Running activities, for lease expiry; bounded by the number of busy workers.
CREATE INDEX workflow_activity_running ON @extschema@.workflow_activity (started_at) WHERE status OPERATOR(pg_catalog.=) 'running';
-- Due sql steps, run by the dispatcher's runner.
CREATE INDEX workflow_activity_sql ON @extschema@.workflow_activity (scheduled_at) WHERE kind OPERATOR(pg_catalog.=) 'sql' AND status OPERATOR(pg_catalog.=) 'scheduled';
-- Steps waiting for a signal, by name (workflow_waiting: an approval inbox).
CREATE INDEX workflow_activity_signal_wait ON @extschema@.workflow_activity (activity_type, created_at)
    WHERE status OPERATOR(pg_catalog.=) 'waiting' AND kind OPERATOR(pg_catalog.=) 'signal';
-- Sleeps and signal waits, by due time.
CREATE INDEX workflow_activity_waiting ON @extschema@.workflow_activity (scheduled_at) WHERE status OPERATOR(pg_catalog.=) 'waiting';
-- Concurrency keys on steps (engine/admission.rs): a key's admitted and held activities.
CREATE INDEX workflow_activity_concurrency ON @extschema@.workflow_activity (activity_type, concurrency_key, id)
    WHERE concurrency_key IS NOT NULL AND status OPERATOR(pg_catalog.=) ANY (ARRAY['scheduled', 'running']);
-- Schedule-to-close deadlines.
CREATE INDEX workflow_activity_expiring ON @extschema@.workflow_activity (expires_at)
    WHERE expires_at IS NOT NULL AND status OPERATOR(pg_catalog.=) ANY (ARRAY['scheduled', 'running']);

CREATE TABLE @extschema@.workflow_signal (
    id              uuid        PRIMARY KEY,
    execution_id    uuid        NOT NULL REFERENCES @extschema@.workflow_execution (id) ON DELETE CASCADE,
    name            text        NOT NULL,
    payload         jsonb       NOT NULL DEFAULT 'null',
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    consumed_at     timestamptz,
    consumed_by     text
);

CREATE UNIQUE INDEX workflow_signal_idempotency ON @extschema@.workflow_signal (execution_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE INDEX workflow_signal_unconsumed ON @extschema@.workflow_signal (execution_id, name, created_at)
    WHERE consumed_at IS NULL;

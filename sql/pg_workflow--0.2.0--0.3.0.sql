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
STABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_find_wrapper';
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
CREATE FUNCTION @extschema@.workflow_complete("execution_id" uuid, "output" pg_catalog.jsonb, "lease_token" pg_catalog.int4)
RETURNS bool VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_complete_fenced_wrapper';
CREATE FUNCTION @extschema@.workflow_fail("execution_id" uuid, "error" pg_catalog.jsonb, "lease_token" pg_catalog.int4)
RETURNS bool VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_fail_fenced_wrapper';
REVOKE ALL ON FUNCTION @extschema@.workflow_find(pg_catalog.text, pg_catalog.text, pg_catalog.text),
    @extschema@.workflow_claim_executions(pg_catalog.text[], pg_catalog.text, pg_catalog.int4, pg_catalog.interval),
    @extschema@.workflow_renew_execution(uuid, pg_catalog.int4, pg_catalog.interval),
    @extschema@.workflow_release_execution(uuid, pg_catalog.int4),
    @extschema@.workflow_claim_activity(uuid, pg_catalog.text, pg_catalog.interval),
    @extschema@.workflow_complete(uuid, pg_catalog.jsonb, pg_catalog.int4),
    @extschema@.workflow_fail(uuid, pg_catalog.jsonb, pg_catalog.int4) FROM PUBLIC;

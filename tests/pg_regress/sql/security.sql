-- Privileges and tenant isolation (README: Guarantees and security): nothing for PUBLIC,
-- three grant recipes that give each role exactly its part, no write access to the
-- tables, no way to run code as the owner through the search_path, and tenants that
-- cannot see each other.

-- Runs a statement as a role: its first value, or the SQLSTATE and message (ids masked).
CREATE FUNCTION as_role(r text, statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE result text;
BEGIN
    EXECUTE format('SET ROLE %I', r);
    BEGIN
        EXECUTE statement INTO result;
        result := coalesce(result, 'NULL');
    EXCEPTION WHEN OTHERS THEN
        result := SQLSTATE || ': ' || regexp_replace(SQLERRM,
            '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'g');
    END;
    RESET ROLE;
    RETURN result;
END
$$;

-- Nothing of the extension is granted to PUBLIC.
SELECT count(*) AS executable_by_public
FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_workflow'
WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
  AND has_function_privilege('public', d.objid, 'EXECUTE');
-- Only the objects' owner has rights on the tables; where a non-superuser created the
-- extension (scripts/test.sh's setups 2 and 3), that role holds the owner part: SELECT.
SELECT c.relname,
       NOT EXISTS (SELECT FROM aclexplode(c.relacl) a
                   WHERE a.grantee <> c.relowner
                     AND (a.privilege_type <> 'SELECT'
                          OR NOT has_function_privilege(a.grantee, 'workflow_grant(regrole, text)', 'EXECUTE')))
       AS owner_only
FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_workflow'
JOIN pg_class c ON c.oid = d.objid
WHERE d.classid = 'pg_class'::regclass AND c.relkind = 'r' ORDER BY 1;

CREATE ROLE wf_admin;
CREATE ROLE wf_starter;
CREATE ROLE wf_worker;
CREATE ROLE wf_nobody;
CREATE ROLE wf_owner;
SELECT workflow_grant('wf_admin', 'admin'), workflow_grant('wf_starter', 'starter'),
       workflow_grant('wf_worker', 'worker'), workflow_grant('wf_owner', 'owner');
SELECT expect_error($$SELECT workflow_grant('wf_nobody', 'boss')$$);
SELECT expect_error($$SELECT workflow_grant(NULL, 'admin')$$);
SELECT expect_error($$SELECT workflow_grant('no_such_role', 'admin')$$);

-- Who may call what. NULL arguments: a permitted call fails with 22023 after the
-- permission check, a forbidden one with 42501 before it.
SELECT f AS function,
       string_agg(replace(r, 'wf_', '') || '=' || CASE WHEN as_role(r, stmt) LIKE '42501:%' THEN 'no' ELSE 'yes' END,
                  ' ' ORDER BY r) AS allowed
FROM (VALUES
    ('workflow_define', 'SELECT workflow_define(NULL, NULL)'),
    ('workflow_start', 'SELECT workflow_start(NULL)'),
    ('workflow_signal', 'SELECT workflow_signal(NULL, NULL)'),
    ('workflow_status', 'SELECT workflow_status(NULL)'),
    ('workflow_await', 'SELECT workflow_await(NULL)'),
    ('workflow_cancel', 'SELECT workflow_cancel(NULL)'),
    ('workflow_retry', 'SELECT workflow_retry(NULL)'),
    ('workflow_dispatch', 'SELECT workflow_dispatch(NULL)'),
    ('workflow_claim', 'SELECT workflow_claim(NULL, NULL)'),
    ('workflow_heartbeat', 'SELECT workflow_heartbeat(NULL)'),
    ('workflow_complete_activity', 'SELECT workflow_complete_activity(NULL)'),
    ('workflow_complete_activities', 'SELECT workflow_complete_activities(NULL)'),
    ('workflow_fail_activity', 'SELECT workflow_fail_activity(NULL, NULL)'),
    ('workflow_schedule_activity', 'SELECT workflow_schedule_activity(NULL, NULL, NULL)'),
    ('workflow_complete', 'SELECT workflow_complete(NULL)'),
    ('workflow_fail', 'SELECT workflow_fail(NULL, NULL)'),
    ('workflow_bind_tenant', 'SELECT workflow_bind_tenant(NULL, NULL)'),
    ('workflow_unbind_tenant', 'SELECT workflow_unbind_tenant(NULL)'),
    ('workflow_grant', 'SELECT workflow_grant(NULL, NULL)'),
    ('workflow_revoke', 'SELECT workflow_revoke(NULL)'),
    ('workflow_queue_configure', 'SELECT workflow_queue_configure(NULL, NULL)'),
    ('workflow_schedule_create', 'SELECT workflow_schedule_create(NULL, NULL, NULL)'),
    ('workflow_schedule_pause', 'SELECT workflow_schedule_pause(NULL)'),
    ('workflow_schedule_list', 'SELECT workflow_schedule_list()'),
    ('workflow_type_pause', 'SELECT workflow_type_pause(NULL)'),
    ('write schedules', 'DELETE FROM workflow_schedule'),
    ('read executions', 'SELECT count(*) FROM workflow_execution'),
    ('read definitions', 'SELECT count(*) FROM workflow_definition'),
    ('write activities', 'UPDATE workflow_activity SET status = ''completed'''),
    ('write executions', 'DELETE FROM workflow_execution'),
    ('write definitions', 'INSERT INTO workflow_definition (name, version, definition) VALUES (''x'', 1, ''{}'')')
) calls(f, stmt), unnest(ARRAY['wf_admin', 'wf_owner', 'wf_starter', 'wf_worker', 'wf_nobody']) r
GROUP BY f ORDER BY f;

-- Each part end to end: the admin defines, the starter starts, the worker works, the
-- starter reads the result; each owns what it made.
SELECT as_role('wf_admin', $$SELECT workflow_define('secure_doc', '{"steps": [
    {"name": "fetch", "activity": "fetch"},
    {"name": "store", "activity": "store", "depends_on": ["fetch"]},
    {"name": "greet", "wait_signal": "hello", "depends_on": ["fetch"]}]}')$$);
SELECT as_role('wf_starter', $$SELECT workflow_start('secure_doc', '{"url": "u"}', 'secure-1', '{"queue": "secure"}') IS NOT NULL$$);
SELECT owner FROM workflow_definition WHERE name = 'secure_doc';
SELECT owner, status FROM workflow_execution WHERE idempotency_key = 'secure-1';
SET ROLE wf_worker;
SELECT c.step_key, workflow_complete_activity(c.activity_id, '{"body": "b"}', c.attempt)
FROM workflow_claim('secure', 'w1', 10) c;
SELECT c.step_key, workflow_complete_activity(c.activity_id, '{"stored": true}', c.attempt)
FROM workflow_claim('secure', 'w1', 10) c;
RESET ROLE;
SET ROLE wf_starter;
SELECT workflow_signal(id, 'hello') IS NOT NULL AS greeted FROM workflow_execution WHERE idempotency_key = 'secure-1';
SELECT workflow_status(id)->>'status' AS status, workflow_status(id)->'output' AS output
FROM workflow_execution WHERE idempotency_key = 'secure-1';
RESET ROLE;

-- The search_path cannot make the owner run a caller's function: a worker shadows
-- now() (evaluated for every activity a claim takes) with one that would make it a
-- superuser, then claims.
CREATE SCHEMA evil AUTHORIZATION wf_worker;
SET ROLE wf_worker;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN
    ALTER ROLE wf_worker SUPERUSER;
    RETURN pg_catalog.now();
END
$$;
RESET ROLE;
SELECT workflow_start('secure_doc', '{}', 'secure-2', '{"queue": "secure"}') IS NOT NULL AS started;
SET ROLE wf_worker;
SET search_path = evil, pg_catalog, public;
SELECT count(*) AS claimed FROM workflow_claim('secure', 'w1', 10);
RESET search_path;
RESET ROLE;
SELECT rolsuper AS worker_became_superuser FROM pg_roles WHERE rolname = 'wf_worker';
SHOW search_path;
DROP SCHEMA evil CASCADE;

-- Tenants: group roles bound to a tenant; members act for it.
CREATE ROLE tenant_a;
CREATE ROLE tenant_b;
SELECT workflow_bind_tenant('tenant_a', 'A'), workflow_bind_tenant('tenant_b', 'B');
CREATE ROLE a_starter IN ROLE tenant_a;
CREATE ROLE a_worker IN ROLE tenant_a;
CREATE ROLE b_starter IN ROLE tenant_b;
CREATE ROLE b_worker IN ROLE tenant_b;
CREATE ROLE b_admin IN ROLE tenant_b;
SELECT workflow_grant('a_starter', 'starter'), workflow_grant('a_worker', 'worker'),
       workflow_grant('b_starter', 'starter'), workflow_grant('b_worker', 'worker'),
       workflow_grant('b_admin', 'admin');
SELECT r, as_role(r, 'SELECT workflow_current_tenant()') AS tenant FROM unnest(ARRAY['a_starter', 'b_worker', 'wf_starter']) r;
SET ROLE a_starter;
SELECT workflow_current_tenant();
CREATE TEMP TABLE a_exec AS SELECT workflow_start('secure_doc', '{}', 'order-1', '{"queue": "secure"}') AS id;
SELECT workflow_signal(id, 'hello') IS NOT NULL AS signalled FROM a_exec;
RESET ROLE;
GRANT SELECT ON a_exec TO PUBLIC;
SELECT tenant_id, owner FROM workflow_execution WHERE id = (SELECT id FROM a_exec);

-- Tenant B can neither see, claim, complete, fail, heartbeat, signal, cancel nor retry
-- tenant A's work: every id of A does not exist for B.
SELECT as_role('b_starter', 'SELECT workflow_status(id) FROM a_exec');
SELECT as_role('b_starter', 'SELECT workflow_await(id, ''0 s'') FROM a_exec');
SELECT as_role('b_starter', 'SELECT workflow_signal(id, ''approve'') FROM a_exec');
SELECT as_role('b_starter', 'SELECT workflow_schedule_activity(id, ''k'', ''t'') FROM a_exec');
SELECT as_role('b_starter', 'SELECT workflow_complete(id) FROM a_exec');
SELECT as_role('b_admin', 'SELECT workflow_cancel(id) FROM a_exec');
SELECT as_role('b_admin', 'SELECT workflow_retry(id) FROM a_exec');
SELECT as_role('b_admin', $$SELECT workflow_define('b_own', '{"steps": [{"name": "s", "activity": "t"}]}')$$);
SELECT as_role('b_admin', 'SELECT workflow_dispatch()');
SELECT as_role('b_worker', 'SELECT count(*) FROM workflow_claim(''secure'', ''bw'', 100)');
SELECT as_role('b_starter', 'SELECT count(*) FROM workflow_execution');
SELECT as_role('b_starter', 'SELECT count(*) FROM workflow_activity');
SELECT as_role('b_starter', 'SELECT count(*) FROM workflow_signal');
SELECT as_role('b_starter', $$SELECT workflow_start('secure_doc', '{}', NULL, '{"tenant_id": "A"}')$$);
-- The same idempotency key in another tenant is another execution.
SET ROLE b_starter;
SELECT workflow_start('secure_doc', '{}', 'order-1', '{"queue": "secure_b"}') <> (SELECT id FROM a_exec) AS distinct_execution;
SELECT count(*) AS b_sees FROM workflow_execution;
RESET ROLE;

-- Tenant A's worker gets A's activity; B's worker cannot touch it once claimed.
SET ROLE a_worker;
CREATE TEMP TABLE a_claim AS SELECT * FROM workflow_claim('secure', 'aw', 1);
SELECT step_key FROM a_claim;
RESET ROLE;
GRANT SELECT ON a_claim TO PUBLIC;
SELECT as_role('b_worker', 'SELECT workflow_complete_activity(activity_id, ''{}'', attempt) FROM a_claim');
SELECT as_role('b_worker', 'SELECT workflow_complete_activities(ARRAY[activity_id]) FROM a_claim');
SELECT as_role('b_worker', 'SELECT workflow_fail_activity(activity_id, ''{"type": "X"}'', attempt) FROM a_claim');
SELECT as_role('b_worker', 'SELECT workflow_heartbeat(activity_id, attempt) FROM a_claim');
SELECT as_role('a_worker', 'SELECT workflow_complete_activity(activity_id, ''{}'', attempt) FROM a_claim');

-- A role that inherits two tenants must pick one with SET ROLE; the group roles can be
-- given the part themselves for that (a pooled application role).
CREATE ROLE ab_app IN ROLE tenant_a, tenant_b;
SELECT workflow_grant('ab_app', 'starter'), workflow_grant('tenant_a', 'starter');
SELECT as_role('ab_app', $$SELECT workflow_start('secure_doc')$$);
SET ROLE ab_app;
SET ROLE tenant_a;
SELECT workflow_current_tenant();
SELECT workflow_status(workflow_start('secure_doc'))->>'tenant_id' AS tenant_id;
RESET ROLE;

-- Unbound roles and superusers act for every tenant; an unbound starter may choose one.
SELECT workflow_current_tenant() IS NULL AS superuser_unbound;
SELECT as_role('wf_starter', $$SELECT workflow_start('secure_doc', '{}', NULL, '{"tenant_id": "B"}') IS NOT NULL$$);
SELECT as_role('wf_starter', $$SELECT workflow_start('secure_doc', '{}', NULL, '{"tenant_id": ""}')$$);
SELECT tenant_id, count(*) FROM workflow_execution WHERE workflow_type = 'secure_doc' GROUP BY 1 ORDER BY 1;

-- Binding is for superusers; bad bindings are refused.
SELECT as_role('b_admin', $$SELECT workflow_bind_tenant('b_admin', 'A')$$);
SELECT expect_error($$SELECT workflow_bind_tenant('no_such_role', 'A')$$);
SELECT expect_error($$SELECT workflow_bind_tenant('tenant_a', '')$$);
SELECT expect_error($$SELECT workflow_bind_tenant('tenant_a', NULL)$$);
SELECT expect_error($$SELECT workflow_bind_tenant('tenant_a', repeat('t', 201))$$);
SELECT expect_error($$SELECT workflow_bind_tenant('tenant_a', E'a\nb')$$);
SELECT expect_error($$SELECT workflow_bind_tenant(NULL, 'A')$$);
SELECT expect_error($$SELECT workflow_bind_tenant('"; DROP TABLE workflow_execution; --', 'A')$$);
SELECT expect_error($$SELECT workflow_unbind_tenant(NULL)$$);
SELECT as_role('wf_starter', $$SELECT workflow_start('secure_doc', '{}', NULL, jsonb_build_object('tenant_id', repeat('t', 300)))$$);
SELECT workflow_unbind_tenant('tenant_b'), workflow_unbind_tenant('tenant_b');
SELECT as_role('b_starter', 'SELECT workflow_current_tenant() IS NULL');

-- workflow_revoke takes every part back, and table rights granted by hand (as 0.1.0's
-- README advised) with it.
GRANT SELECT, INSERT, UPDATE ON workflow_activity TO wf_worker;
SELECT workflow_revoke('wf_worker');
SELECT as_role('wf_worker', $$SELECT workflow_claim('secure', 'w')$$);
SELECT as_role('wf_worker', $$UPDATE workflow_activity SET status = 'completed' WHERE false$$);

-- The owner part (what a non-superuser who creates the extension gets): it grants parts
-- and binds tenants, and has no more rights than that: no table writes, no way to grant
-- itself a write, and neither a bound role holding it nor another part may do the same.
SELECT as_role('wf_owner', $$SELECT workflow_grant('wf_nobody', 'worker')$$);
SELECT as_role('wf_nobody', $$SELECT count(*) FROM workflow_claim('nothing-here', 'w')$$);
SELECT as_role('wf_owner', $$SELECT workflow_revoke('wf_nobody')$$);
SELECT as_role('wf_nobody', $$SELECT count(*) FROM workflow_claim('nothing-here', 'w')$$);
SELECT as_role('wf_owner', $$SELECT workflow_bind_tenant('wf_nobody', 'C')$$);
SELECT as_role('wf_owner', $$SELECT workflow_unbind_tenant('wf_nobody')$$);
SET ROLE wf_owner;
GRANT UPDATE ON workflow_activity TO wf_owner;
RESET ROLE;
SELECT has_table_privilege('wf_owner', 'workflow_activity', 'UPDATE') AS owner_may_update;
SELECT as_role('wf_owner', $$CREATE TRIGGER t BEFORE UPDATE ON workflow_activity
    FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()$$);
SELECT as_role('wf_owner', $$CREATE INDEX ON workflow_execution ((input->>'x'))$$);
SELECT as_role('wf_owner', $$ALTER TABLE workflow_definition DISABLE ROW LEVEL SECURITY$$);
SELECT as_role('wf_starter', $$SELECT workflow_grant('wf_starter', 'owner')$$);
SELECT as_role('wf_admin', $$SELECT workflow_bind_tenant('wf_nobody', 'C')$$);
CREATE ROLE c_owner IN ROLE tenant_a;
SELECT workflow_grant('c_owner', 'owner');
SELECT as_role('c_owner', $$SELECT workflow_grant('wf_nobody', 'admin')$$);
SELECT as_role('c_owner', $$SELECT workflow_revoke('wf_admin')$$);
SELECT as_role('c_owner', $$SELECT workflow_unbind_tenant('tenant_a')$$);
SELECT as_role('c_owner', $$SELECT workflow_bind_tenant('wf_nobody', 'A')$$);
SELECT expect_error($$SELECT workflow_grant('-', 'admin')$$);
SELECT expect_error($$SELECT workflow_grant(0::oid::regrole, 'admin')$$);
SELECT expect_error($$SELECT workflow_revoke(NULL)$$);

DROP TABLE a_exec, a_claim;
DELETE FROM workflow_tenant_role;
DELETE FROM workflow_execution WHERE workflow_type = 'secure_doc';
DELETE FROM workflow_definition WHERE name = 'secure_doc';
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['wf_admin', 'wf_owner', 'wf_starter', 'wf_worker', 'wf_nobody', 'a_starter',
                             'a_worker', 'b_starter', 'b_worker', 'b_admin', 'ab_app', 'c_owner', 'tenant_a',
                             'tenant_b'] LOOP
        EXECUTE format('SELECT workflow_revoke(%L)', r);
        EXECUTE format('DROP OWNED BY %I', r);
        EXECUTE format('DROP ROLE %I', r);
    END LOOP;
END
$$;

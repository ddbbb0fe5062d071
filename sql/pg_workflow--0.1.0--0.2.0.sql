-- pg_workflow 0.1.0 -> 0.2.0: grant recipes, tenant isolation, per-tenant idempotency keys.
-- A frozen copy of what 0.2.0's install script adds (src/tenancy.sql, src/roles.sql and
-- the new functions); tests/upgrade checks that an updated database and a new one match.
\echo Use "ALTER EXTENSION pg_workflow UPDATE TO '0.2.0'" to load this file. \quit

CREATE FUNCTION "workflow_bind_tenant"("role" TEXT, "tenant_id" TEXT) RETURNS void
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_bind_tenant_wrapper';
CREATE FUNCTION "workflow_unbind_tenant"("role" TEXT) RETURNS bool
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_unbind_tenant_wrapper';
CREATE FUNCTION "workflow_current_tenant"() RETURNS TEXT
STRICT STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_current_tenant_wrapper';
CREATE FUNCTION "workflow_tenant_role_changed"() RETURNS TRIGGER
LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_tenant_role_changed_wrapper';

-- Idempotency keys are unique per tenant now.
DROP INDEX @extschema@.workflow_execution_idempotency;
CREATE UNIQUE INDEX workflow_execution_idempotency
    ON @extschema@.workflow_execution (workflow_type, idempotency_key, (coalesce(tenant_id, '')))
    WHERE idempotency_key IS NOT NULL;

-- Tenant isolation (DESIGN §6; engine/tenancy.rs). A role bound here, and every role
-- that inherits its rights, acts for that tenant alone. Written only through
-- workflow_bind_tenant / workflow_unbind_tenant, which only superusers may call.
CREATE TABLE @extschema@.workflow_tenant_role (
    role      regrole     PRIMARY KEY,
    tenant_id text        NOT NULL CHECK (tenant_id OPERATOR(pg_catalog.<>) ''),
    bound_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
-- Backends cache what they resolved; any change of the table makes them forget it.
CREATE TRIGGER workflow_tenant_role_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON @extschema@.workflow_tenant_role FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.workflow_tenant_role_changed();

-- Direct reads of the tables by roles granted SELECT (workflow_grant) see their own
-- tenant's rows. The API functions run as the table owner, whom RLS does not filter;
-- they apply the same rule themselves. `(SELECT ...)`: evaluated once per query.
ALTER TABLE @extschema@.workflow_execution ENABLE ROW LEVEL SECURITY;
CREATE POLICY workflow_tenant_isolation ON @extschema@.workflow_execution
    USING ((SELECT @extschema@.workflow_current_tenant()) IS NULL
           OR tenant_id OPERATOR(pg_catalog.=) (SELECT @extschema@.workflow_current_tenant()));

ALTER TABLE @extschema@.workflow_activity ENABLE ROW LEVEL SECURITY;
CREATE POLICY workflow_tenant_isolation ON @extschema@.workflow_activity
    USING ((SELECT @extschema@.workflow_current_tenant()) IS NULL
           OR execution_id OPERATOR(pg_catalog.=) ANY (SELECT id FROM @extschema@.workflow_execution
                               WHERE tenant_id OPERATOR(pg_catalog.=) (SELECT @extschema@.workflow_current_tenant())));

ALTER TABLE @extschema@.workflow_signal ENABLE ROW LEVEL SECURITY;
CREATE POLICY workflow_tenant_isolation ON @extschema@.workflow_signal
    USING ((SELECT @extschema@.workflow_current_tenant()) IS NULL
           OR execution_id OPERATOR(pg_catalog.=) ANY (SELECT id FROM @extschema@.workflow_execution
                               WHERE tenant_id OPERATOR(pg_catalog.=) (SELECT @extschema@.workflow_current_tenant())));

-- Grant recipes (DESIGN §6): the three parts a role can play. Nothing is granted to
-- PUBLIC; a superuser (or the extension's owner) gives each role its part:
--   admin:   define workflows, cancel and retry executions, dispatch, read everything
--   starter: start executions, signal them, drive client-driven ones, read their status
--   worker:  claim, heartbeat, complete and fail activities
-- Roles get EXECUTE on functions and SELECT on tables, never write access to a table:
-- every change goes through the functions, which run as the owner.
CREATE FUNCTION workflow_grant(role regrole, part text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    functions text[];
    tables text[];
    f text;
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION 'role must not be NULL; pass a role name' USING ERRCODE = '22023';
    END IF;
    CASE part
    WHEN 'admin' THEN
        functions := ARRAY['workflow_define', 'workflow_cancel', 'workflow_retry', 'workflow_dispatch',
                           'workflow_status', 'workflow_await', 'workflow_wake', 'workflow_current_tenant',
                           'workflow_uuidv7'];
        tables := ARRAY['workflow_definition', 'workflow_execution', 'workflow_activity', 'workflow_signal',
                        'workflow_tenant_role'];
    WHEN 'starter' THEN
        functions := ARRAY['workflow_start', 'workflow_signal', 'workflow_status', 'workflow_await',
                           'workflow_schedule_activity', 'workflow_complete', 'workflow_fail',
                           'workflow_current_tenant', 'workflow_uuidv7'];
        tables := ARRAY['workflow_execution', 'workflow_activity', 'workflow_signal'];
    WHEN 'worker' THEN
        functions := ARRAY['workflow_claim', 'workflow_heartbeat', 'workflow_complete_activity',
                           'workflow_complete_activities', 'workflow_fail_activity', 'workflow_current_tenant'];
        tables := ARRAY[]::text[];
    ELSE
        RAISE EXCEPTION 'part must be ''admin'', ''starter'' or ''worker'', got %', coalesce(quote_literal(part), 'NULL')
            USING ERRCODE = '22023';
    END CASE;
    EXECUTE format('GRANT USAGE ON SCHEMA %s TO %s', '@extschema@', role);
    FOREACH f IN ARRAY functions LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s.%I TO %s', '@extschema@', f, role);
    END LOOP;
    FOREACH f IN ARRAY tables LOOP
        EXECUTE format('GRANT SELECT ON %s.%I TO %s', '@extschema@', f, role);
    END LOOP;
END
$$;

-- Takes back every part workflow_grant gave the role.
CREATE FUNCTION workflow_revoke(role regrole) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f regprocedure;
    t text;
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION 'role must not be NULL; pass a role name' USING ERRCODE = '22023';
    END IF;
    FOR f IN
        SELECT d.objid::regprocedure FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
        WHERE d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_extension'::regclass
          AND e.extname = 'pg_workflow'
    LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM %s', f, role);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['workflow_definition', 'workflow_execution', 'workflow_activity',
                             'workflow_signal', 'workflow_tenant_role'] LOOP
        EXECUTE format('REVOKE ALL ON %s.%I FROM %s', '@extschema@', t, role);
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION workflow_bind_tenant(text, text), workflow_unbind_tenant(text), workflow_current_tenant(),
    workflow_grant(regrole, text), workflow_revoke(regrole), workflow_tenant_role_changed() FROM PUBLIC;

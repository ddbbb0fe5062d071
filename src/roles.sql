-- Grant recipes (README: Guarantees and security): the three parts a role can play.
-- Nothing is granted to PUBLIC; a superuser (or the extension's owner) gives each role
-- its part: admin:   define workflows, cancel and retry executions, dispatch, read
-- everything starter: start executions, signal them, drive client-driven ones, read their
-- status worker:  claim, heartbeat, complete and fail activities Roles get EXECUTE on
-- functions and SELECT on tables, never write access to a table: every change goes
-- through the functions, which run as the owner.
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

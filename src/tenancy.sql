-- Tenant isolation (README: Guarantees and security; engine/tenancy.rs). A role bound
-- here, and every role that inherits its rights, acts for that tenant alone. Written only
-- through workflow_bind_tenant / workflow_unbind_tenant, which only superusers may call.
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

//! Tenant bindings seen from other sessions: each backend caches the tenant its role
//! acts for, so every way a binding or a membership changes must reach the backends
//! that cached it, at the changing transaction's commit and not before.

use pg_workflow_client_tests::{connect, fresh_database};
use postgres::Client;

fn tenant_of(app: &mut Client) -> Option<String> {
    app.query_one("SELECT workflow_current_tenant()", &[]).unwrap().get(0)
}

#[test]
fn binding_and_membership_changes_reach_sessions_that_cached_them() {
    let url = fresh_database("pgw_tenancy");
    let mut admin = connect(&url);
    admin
        .batch_execute(
            "DROP ROLE IF EXISTS pgw_app; DROP ROLE IF EXISTS pgw_group; \
             CREATE ROLE pgw_group; CREATE ROLE pgw_app IN ROLE pgw_group; \
             SELECT workflow_grant('pgw_app', 'starter'); \
             SELECT workflow_bind_tenant('pgw_group', 'acme');",
        )
        .unwrap();
    let mut app = connect(&url);
    app.batch_execute("SET ROLE pgw_app").unwrap();
    assert_eq!(tenant_of(&mut app).as_deref(), Some("acme"));

    // Through the function.
    admin.batch_execute("SELECT workflow_bind_tenant('pgw_group', 'globex')").unwrap();
    assert_eq!(tenant_of(&mut app).as_deref(), Some("globex"));

    // By hand, in a transaction: invisible until it commits.
    admin.batch_execute("BEGIN; UPDATE workflow_tenant_role SET tenant_id = 'initech'").unwrap();
    assert_eq!(tenant_of(&mut app).as_deref(), Some("globex"));
    admin.batch_execute("COMMIT").unwrap();
    assert_eq!(tenant_of(&mut app).as_deref(), Some("initech"));

    // A rolled-back change changes nothing.
    admin.batch_execute("BEGIN; DELETE FROM workflow_tenant_role; ROLLBACK").unwrap();
    assert_eq!(tenant_of(&mut app).as_deref(), Some("initech"));

    // Membership: leaving the bound group unbinds; a second bound group is refused.
    admin.batch_execute("REVOKE pgw_group FROM pgw_app").unwrap();
    assert_eq!(tenant_of(&mut app), None);
    admin
        .batch_execute(
            "GRANT pgw_group TO pgw_app; DROP ROLE IF EXISTS pgw_group2; CREATE ROLE pgw_group2; \
             SELECT workflow_bind_tenant('pgw_group2', 'umbrella'); GRANT pgw_group2 TO pgw_app;",
        )
        .unwrap();
    let err = app.query_one("SELECT workflow_current_tenant()", &[]).unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{err}");

    // TRUNCATE unbinds everyone.
    admin.batch_execute("TRUNCATE workflow_tenant_role").unwrap();
    assert_eq!(tenant_of(&mut app), None);

    drop(app);
    admin
        .batch_execute(
            "SELECT workflow_revoke('pgw_app'); DROP OWNED BY pgw_app; \
             DROP ROLE pgw_app; DROP ROLE pgw_group; DROP ROLE pgw_group2;",
        )
        .unwrap();
}

//! A trusted install (README: Install, managed Postgres): a role that is not a superuser
//! and only has CREATE on its database creates the extension, administers it (the owner
//! part) and runs workflows, with the background worker running its `sql` steps; and
//! none of that gives it, or a role it grants to, a right it did not have: every way to
//! reach the superuser who owns the objects (table writes, triggers, indexes, a shadowing
//! search_path, `sql` steps run by the superuser's background worker) is refused.

use pg_workflow_client_tests::{base_url, connect, database_for_role, sqlstate};
use postgres::Client;
use serde_json::Value;

fn is_superuser(db: &mut Client, role: &str) -> bool {
    db.query_one("SELECT rolsuper FROM pg_roles WHERE rolname = $1", &[&role]).unwrap().get(0)
}

/// Starts a workflow of sql steps and waits (workflow_await) until it ends; its status.
fn run_workflow(db: &mut Client, name: &str, steps: &str) -> Value {
    db.execute("SELECT workflow_define($1, $2::text::jsonb)", &[&name, &format!(r#"{{"steps": {steps}}}"#)]).unwrap();
    let id: String = db.query_one("SELECT workflow_start($1)::text", &[&name]).unwrap().get(0);
    let status: String =
        db.query_one("SELECT workflow_await($1::text::uuid, '60 seconds')::text", &[&id]).unwrap().get(0);
    serde_json::from_str(&status).unwrap()
}

fn step_error_sqlstate(status: &Value) -> String {
    status["steps"][0]["error"]["sqlstate"].as_str().unwrap_or("none").to_owned()
}

#[test]
fn a_role_with_create_on_its_database_creates_the_extension_and_runs_workflows() {
    let (admin_url, app_url) = database_for_role(&base_url(), "pgw_trusted_run", "pgw_app");
    let mut app = connect(&app_url);
    assert!(!is_superuser(&mut app, "pgw_app"));
    app.batch_execute("CREATE EXTENSION pg_workflow").unwrap();
    let (owner, objects_owner): (String, String) = app
        .query_one(
            "SELECT e.extowner::regrole::text, c.relowner::regrole::text FROM pg_extension e \
             JOIN pg_class c ON c.relname = 'workflow_execution' WHERE e.extname = 'pg_workflow'",
            &[],
        )
        .map(|row| (row.get(0), row.get(1)))
        .unwrap();
    assert_eq!((owner.as_str(), objects_owner.as_str()), ("pgw_app", "postgres"));

    // A task, then an sql step that the background worker (a superuser process) runs as
    // the role that defined it.
    app.batch_execute(
        r#"SELECT workflow_define('trusted_doc', '{"steps": [
             {"name": "fetch", "activity": "fetch", "queue": "trusted"},
             {"name": "who", "sql": "SELECT current_user::text", "depends_on": ["fetch"]}]}')"#,
    )
    .unwrap();
    let id: String = app.query_one("SELECT workflow_start('trusted_doc', '{}')::text", &[]).unwrap().get(0);
    let row = app.query_one("SELECT activity_id::text, attempt FROM workflow_claim('trusted', 'w')", &[]).unwrap();
    let (activity, attempt): (String, i32) = (row.get(0), row.get(1));
    app.execute("SELECT workflow_complete_activity($1::text::uuid, '{}', attempt => $2)", &[&activity, &attempt])
        .unwrap();
    let output: String =
        app.query_one("SELECT workflow_await($1::text::uuid, '60 seconds')->'output'->>'who'", &[&id]).unwrap().get(0);
    assert_eq!(output, "pgw_app");

    // It administers: another role gets the admin part and defines its own sql steps,
    // which run as that role; a tenant binding works.
    let mut admin = connect(&admin_url);
    admin.batch_execute("DROP ROLE IF EXISTS pgw_alice; CREATE ROLE pgw_alice LOGIN").unwrap();
    app.batch_execute("SELECT workflow_grant('pgw_alice', 'admin'), workflow_grant('pgw_alice', 'starter')").unwrap();
    let mut alice = connect(&format!("{} dbname=pgw_trusted_run user=pgw_alice", base_url()));
    let status = run_workflow(&mut alice, "alice_who", r#"[{"name": "who", "sql": "SELECT current_user::text"}]"#);
    assert_eq!(status["output"]["who"], "pgw_alice");
    app.batch_execute("SELECT workflow_bind_tenant('pgw_alice', 'alice')").unwrap();
    let tenant: String = alice.query_one("SELECT workflow_current_tenant()", &[]).unwrap().get(0);
    assert_eq!(tenant, "alice");
    app.batch_execute("SELECT workflow_unbind_tenant('pgw_alice'); SELECT workflow_revoke('pgw_alice')").unwrap();
    drop(alice);
    // And it may drop what it created.
    app.batch_execute("DROP EXTENSION pg_workflow").unwrap();
    admin.batch_execute("DROP OWNED BY pgw_alice; DROP ROLE pgw_alice").unwrap();
}

#[test]
fn the_non_superuser_owner_gains_no_right_through_the_extension() {
    let (admin_url, app_url) = database_for_role(&base_url(), "pgw_trusted_escalate", "pgw_app");
    let mut app = connect(&app_url);
    app.batch_execute("CREATE EXTENSION pg_workflow").unwrap();

    // The tables are the superuser's: no write, no trigger, no index, no policy change,
    // no grant of a write to itself.
    for statement in [
        "INSERT INTO workflow_definition (name, version, definition, owner) VALUES ('x', 1, '{}', 'postgres')",
        "UPDATE workflow_definition SET owner = 'postgres'",
        "DELETE FROM workflow_execution",
        "UPDATE workflow_activity SET status = 'completed'",
        "INSERT INTO workflow_tenant_role VALUES ('pgw_app', 't')",
        "TRUNCATE workflow_signal",
        "CREATE TRIGGER t BEFORE UPDATE ON workflow_activity FOR EACH ROW \
         EXECUTE FUNCTION suppress_redundant_updates_trigger()",
        "CREATE INDEX ON workflow_execution ((input->>'x'))",
        "ALTER TABLE workflow_execution DISABLE ROW LEVEL SECURITY",
        "DROP POLICY workflow_tenant_isolation ON workflow_execution",
        "ALTER FUNCTION workflow_start(text, jsonb, text, jsonb) SECURITY DEFINER",
    ] {
        let state = sqlstate(app.execute(statement, &[]));
        assert!(state == "42501", "{statement}: expected 42501, got {state}");
    }

    // A GRANT without the right to grant grants nothing (Postgres warns).
    app.batch_execute("GRANT UPDATE ON workflow_activity TO pgw_app").unwrap();
    let can_update: bool =
        app.query_one("SELECT has_table_privilege('workflow_activity', 'UPDATE')", &[]).unwrap().get(0);
    assert!(!can_update);

    // sql steps run as the owner (here: pgw_app), even when the superuser's background
    // worker runs them: everything a superuser alone may do fails.
    for (name, query) in [
        ("become_superuser", "ALTER ROLE pgw_app SUPERUSER"),
        ("create_role", "CREATE ROLE pgw_escalated SUPERUSER"),
        ("set_role", "SET ROLE postgres"),
        ("run_program", "COPY (SELECT 1) TO PROGRAM 'true'"),
        ("read_file", "SELECT pg_read_file('postgresql.conf')"),
        ("write_catalog", "UPDATE pg_authid SET rolsuper = true WHERE rolname = 'pgw_app'"),
    ] {
        let status = run_workflow(
            &mut app,
            name,
            &format!(r#"[{{"name": "try", "sql": "{query}", "retry": {{"max_attempts": 1}}}}]"#),
        );
        assert_eq!(status["status"], "failed", "{name}: {status}");
        assert_eq!(step_error_sqlstate(&status), "42501", "{name}: {status}");
    }

    // A search_path that puts its own functions first never has the superuser call them:
    // each would make pgw_app a superuser (and fails if pgw_app itself calls it).
    app.batch_execute(
        "CREATE SCHEMA shadow; \
         CREATE FUNCTION shadow.escalate() RETURNS void LANGUAGE plpgsql AS \
           $$ BEGIN ALTER ROLE pgw_app SUPERUSER; END $$; \
         CREATE FUNCTION shadow.now() RETURNS timestamptz LANGUAGE plpgsql AS \
           $$ BEGIN PERFORM shadow.escalate(); RETURN pg_catalog.now(); END $$; \
         CREATE FUNCTION shadow.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS \
           $$ BEGIN PERFORM shadow.escalate(); RETURN pg_catalog.clock_timestamp(); END $$; \
         CREATE FUNCTION shadow.jsonb_build_object(text, jsonb) RETURNS jsonb LANGUAGE plpgsql AS \
           $$ BEGIN PERFORM shadow.escalate(); RETURN '{}'; END $$; \
         CREATE FUNCTION shadow.uuid_eq(uuid, uuid) RETURNS boolean LANGUAGE plpgsql AS \
           $$ BEGIN PERFORM shadow.escalate(); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$; \
         CREATE OPERATOR shadow.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = shadow.uuid_eq); \
         CREATE FUNCTION shadow.format(text) RETURNS text LANGUAGE plpgsql AS \
           $$ BEGIN PERFORM shadow.escalate(); RETURN $1; END $$; \
         CREATE TEMP TABLE workflow_activity (id uuid); \
         SET search_path = shadow, pg_catalog, public",
    )
    .unwrap();
    app.batch_execute(
        r#"SELECT workflow_define('shadowed', '{"steps": [
             {"name": "a", "activity": "a", "queue": "shadowed",
              "retry": {"max_attempts": 2, "initial_interval": "1s"}},
             {"name": "b", "wait_signal": "go", "depends_on": ["a"]}]}');
           SELECT workflow_grant('pgw_app', 'worker');
           SELECT workflow_start('shadowed', '{}', 'k1');
           SELECT workflow_fail_activity(activity_id, '{"type": "X", "message": "m"}', attempt)
             FROM workflow_claim('shadowed', 'w');
           SELECT workflow_dispatch();
           SELECT workflow_signal(id, 'go') FROM public.workflow_execution WHERE workflow_type = 'shadowed';
           SELECT workflow_status(id) FROM public.workflow_execution WHERE workflow_type = 'shadowed';
           SELECT workflow_cancel(id) FROM public.workflow_execution WHERE workflow_type = 'shadowed';
           SELECT workflow_retry(id) FROM public.workflow_execution WHERE workflow_type = 'shadowed';"#,
    )
    .unwrap();
    let mut admin = connect(&admin_url);
    assert!(!is_superuser(&mut admin, "pgw_app"), "a shadowing function ran as the superuser");
}

#[test]
fn a_role_given_the_owner_part_by_a_bound_role_or_another_part_is_refused() {
    let (admin_url, app_url) = database_for_role(&base_url(), "pgw_trusted_parts", "pgw_app");
    let mut app = connect(&app_url);
    app.batch_execute("CREATE EXTENSION pg_workflow").unwrap();
    let mut admin = connect(&admin_url);
    admin
        .batch_execute(
            "DROP ROLE IF EXISTS pgw_bob; CREATE ROLE pgw_bob LOGIN; \
             DROP ROLE IF EXISTS pgw_tenant_x; CREATE ROLE pgw_tenant_x; GRANT pgw_tenant_x TO pgw_bob",
        )
        .unwrap();
    // A starter may not grant; a bound role with the owner part may not grant or bind.
    app.batch_execute("SELECT workflow_grant('pgw_bob', 'starter')").unwrap();
    let mut bob = connect(&format!("{} dbname=pgw_trusted_parts user=pgw_bob", base_url()));
    assert_eq!(sqlstate(bob.execute("SELECT workflow_grant('pgw_bob', 'owner')", &[])), "42501");
    app.batch_execute("SELECT workflow_grant('pgw_bob', 'owner'); SELECT workflow_bind_tenant('pgw_tenant_x', 'x')")
        .unwrap();
    let mut bob = connect(&format!("{} dbname=pgw_trusted_parts user=pgw_bob", base_url()));
    for statement in [
        "SELECT workflow_unbind_tenant('pgw_tenant_x')",
        "SELECT workflow_bind_tenant('pgw_app', 'x')",
        "SELECT workflow_grant('pgw_app', 'worker')",
        "SELECT workflow_revoke('pgw_app')",
        "SELECT workflow_define('w', '{\"steps\": [{\"name\": \"s\", \"sql\": \"SELECT 1\"}]}')",
    ] {
        assert_eq!(sqlstate(bob.execute(statement, &[])), "42501", "{statement}");
    }
    drop(bob);
    app.batch_execute("DROP EXTENSION pg_workflow").unwrap();
    admin.batch_execute("DROP OWNED BY pgw_bob; DROP ROLE pgw_bob; DROP ROLE pgw_tenant_x").unwrap();
}

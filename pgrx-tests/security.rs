// Security of the session the engine runs in (README: Guarantees and security): user SQL
// run by the engine leaves no settings behind, and the engine's own statements ignore the
// caller's search_path. Driven through workflow_dispatch(), which runs due sql steps in
// this backend, so the step and the checks share one session.

fn define_as(role: &str, name: &str, definition: &str) {
    run(&format!("SET ROLE {role}"));
    run(&format!("SELECT workflow_define('{name}', $j${definition}$j$)"));
    run("RESET ROLE");
}

#[pg_test]
fn sql_step_settings_do_not_outlive_the_step() {
    run("CREATE ROLE pgw_definer");
    run("SELECT workflow_grant('pgw_definer', 'admin')");
    define_as(
        "pgw_definer",
        "leaky",
        r#"{"steps": [
            {"name": "set", "sql": "SELECT set_config('search_path', 'pg_temp', false), set_config('work_mem', '64kB', false)"},
            {"name": "look", "depends_on": ["set"],
             "sql": "SELECT jsonb_build_object('path', current_setting('search_path'), 'user', current_user::text)"}]}"#,
    );
    let before = one::<String>("SELECT current_setting('search_path') || ' ' || current_setting('work_mem')");
    let id = one::<Uuid>("SELECT workflow_start('leaky')");
    assert_eq!(one::<i32>("SELECT workflow_dispatch()"), 1); // runs "set"
    assert_eq!(one::<i32>("SELECT workflow_dispatch()"), 1); // runs "look"
    let after = one::<String>("SELECT current_setting('search_path') || ' ' || current_setting('work_mem')");
    assert_eq!(after, before, "a step's SET leaked into the session that ran it");
    let out = status(&id)["output"]["look"].clone();
    assert_eq!(out["user"], json!("pgw_definer"), "the step ran as its definer");
    assert_ne!(out["path"], json!("pg_temp"), "the second step saw the first step's SET");
}

#[pg_test]
fn engine_statements_ignore_the_callers_search_path() {
    run("CREATE ROLE pgw_worker");
    run("SELECT workflow_grant('pgw_worker', 'worker')");
    run("CREATE SCHEMA pgw_evil AUTHORIZATION pgw_worker");
    run("CREATE TABLE pgw_calls (who text)");
    run("GRANT INSERT ON pgw_calls TO PUBLIC");
    // Work to claim: a claim that finds nothing evaluates none of its expressions.
    run(r#"SELECT workflow_define('pgw_job', '{"steps": [{"name": "only", "activity": "job"}]}')"#);
    run(r#"SELECT workflow_start('pgw_job', '{}', NULL, '{"queue": "pgw_evil"}') FROM generate_series(1, 3)"#);
    // A shadow of now(), which every claim uses: records whom it ran as.
    run("SET ROLE pgw_worker");
    run("CREATE FUNCTION pgw_evil.now() RETURNS timestamptz LANGUAGE plpgsql AS $$ \
         BEGIN INSERT INTO public.pgw_calls VALUES (current_user); RETURN pg_catalog.now(); END $$");
    run("SET search_path = pgw_evil, pg_catalog, public");
    // Under the caller's path, the normal one, then the caller's again (so that a plan
    // made under one is revalidated under the other): never the shadow.
    let mut claimed = one::<i64>("SELECT count(*) FROM public.workflow_claim('pgw_evil', 'w', 1)");
    run("RESET search_path");
    claimed += one::<i64>("SELECT count(*) FROM workflow_claim('pgw_evil', 'w', 1)");
    run("SET search_path = pgw_evil, pg_catalog, public");
    claimed += one::<i64>("SELECT count(*) FROM public.workflow_claim('pgw_evil', 'w', 1)");
    run("RESET search_path");
    run("RESET ROLE");
    assert_eq!(claimed, 3, "each claim took an activity, evaluating its now() calls");
    assert_eq!(one::<i64>("SELECT count(*) FROM pgw_calls"), 0, "the engine called the caller's function");
}

#[pg_test]
fn a_role_bound_to_a_tenant_starts_work_for_it() {
    run("CREATE ROLE pgw_tenant_x");
    run("CREATE ROLE pgw_app IN ROLE pgw_tenant_x");
    run("SELECT workflow_grant('pgw_app', 'starter')");
    run("SELECT workflow_bind_tenant('pgw_tenant_x', 'x')");
    run("SET ROLE pgw_app");
    let id = one::<Uuid>(r#"SELECT workflow_start('anything', '{}', NULL, '{"client_driven": true}')"#);
    assert_eq!(one::<String>("SELECT workflow_current_tenant()"), "x");
    run("RESET ROLE");
    assert_eq!(one::<String>(&format!("SELECT tenant_id FROM workflow_execution WHERE id = '{id}'")), "x");
    // Unbinding takes effect at once, in the same session.
    run("SELECT workflow_unbind_tenant('pgw_tenant_x')");
    run("SET ROLE pgw_app");
    assert_eq!(Spi::get_one::<String>("SELECT workflow_current_tenant()").expect("query failed"), None);
    run("RESET ROLE");
}

#[pg_test]
fn sql_step_text_cannot_change_whose_rights_it_has() {
    run("CREATE ROLE pgw_plain");
    run("SELECT workflow_grant('pgw_plain', 'admin')");
    // Each of these would make the rest of the step (or the session) run as someone else.
    let attempts = [
        "SET ROLE postgres",
        "RESET ROLE",
        "SET SESSION AUTHORIZATION postgres",
        "SELECT set_config('role', 'postgres', false)",
        "SELECT set_config('session_authorization', 'postgres', false)",
        "COMMIT",
    ];
    let mut ids = Vec::new();
    for (i, text) in attempts.iter().enumerate() {
        define_as(
            "pgw_plain",
            &format!("escape{i}"),
            &format!(r#"{{"steps": [{{"name": "s", "sql": "{text}", "retry": {{"max_attempts": 1}}}}]}}"#),
        );
        ids.push(one::<Uuid>(&format!("SELECT workflow_start('escape{i}')")));
    }
    assert_eq!(one::<i32>("SELECT workflow_dispatch()"), attempts.len() as i32);
    for (id, text) in ids.iter().zip(attempts) {
        let st = status(id);
        assert_eq!(st["status"], json!("failed"), "{text} was allowed: {st}");
        assert_eq!(st["error"]["error"]["type"], json!("SqlError"), "{text}: {st}");
    }
    assert_eq!(one::<String>("SELECT current_user::text"), "postgres", "the session's user is unchanged");
}

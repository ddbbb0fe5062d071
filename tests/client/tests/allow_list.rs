//! A provider's allow-list (README: Install, managed Postgres), against a cluster that
//! loads pgextwlist with `extwlist.extensions = 'pg_workflow'` and this repository's
//! custom script (PGWORKFLOW_TEST_ALLOW_LIST_URL; pg_workflow preloaded): a role that is
//! not a superuser creates the extension through the list, gets the owner part from the
//! custom script, and runs a workflow whose sql step the background worker runs as it;
//! an extension that is not listed and not trusted is refused.

use pg_workflow_client_tests::{cluster_url, connect, database_for_role, sqlstate};

const URL: &str = "PGWORKFLOW_TEST_ALLOW_LIST_URL";

#[test]
fn a_non_superuser_creates_the_extension_through_the_allow_list_and_runs_a_workflow() {
    let base = cluster_url(URL);
    let (_, app_url) = database_for_role(&base, "pgw_allow_list", "pgw_listed");
    let mut app = connect(&app_url);
    let listed: String = app.query_one("SHOW extwlist.extensions", &[]).unwrap().get(0);
    assert_eq!(listed, "pg_workflow", "{URL} must name a cluster with pgextwlist listing pg_workflow alone");

    assert_ne!(sqlstate(app.execute("CREATE EXTENSION file_fdw", &[])), "no error", "file_fdw is not listed");
    app.batch_execute("CREATE EXTENSION pg_workflow").unwrap();
    // pgextwlist created it as the bootstrap superuser; the custom script gave the role
    // that asked for it the owner part (every function, reads, grants).
    let (owner, can_grant): (String, bool) = app
        .query_one(
            "SELECT e.extowner::regrole::text, has_function_privilege('workflow_grant(regrole, text)', 'EXECUTE') \
             FROM pg_extension e WHERE e.extname = 'pg_workflow'",
            &[],
        )
        .map(|row| (row.get(0), row.get(1)))
        .unwrap();
    assert_eq!((owner.as_str(), can_grant), ("postgres", true));
    assert_eq!(sqlstate(app.execute("UPDATE workflow_definition SET version = version", &[])), "42501");

    app.batch_execute(
        r#"SELECT workflow_define('listed', '{"steps": [
             {"name": "fetch", "activity": "fetch", "queue": "listed"},
             {"name": "who", "sql": "SELECT current_user::text", "depends_on": ["fetch"]}]}')"#,
    )
    .unwrap();
    let id: String = app.query_one("SELECT workflow_start('listed')::text", &[]).unwrap().get(0);
    app.batch_execute(
        "SELECT workflow_complete_activity(activity_id, '{}', attempt) FROM workflow_claim('listed', 'w')",
    )
    .unwrap();
    let who: String =
        app.query_one("SELECT workflow_await($1::text::uuid, '60 seconds')->'output'->>'who'", &[&id]).unwrap().get(0);
    assert_eq!(who, "pgw_listed");
    app.batch_execute("DROP EXTENSION pg_workflow").unwrap();
}

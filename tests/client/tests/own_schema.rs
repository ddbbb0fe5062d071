//! `CREATE EXTENSION pg_workflow SCHEMA workflow` beside an application that already has
//! tables called workflow_execution and workflow_activity in public: the extension's
//! objects go to its schema, every call works schema-qualified (and with `workflow` on the
//! search_path), and the dispatcher finds its objects there (a sleep fires, an sql step
//! runs), with the application's tables untouched.

use pg_workflow_client_tests::{base_url, connect};
use std::time::{Duration, Instant};

fn wait_for(db: &mut postgres::Client, query: &str, what: &str) {
    let start = Instant::now();
    while !db.query_one(query, &[]).unwrap().get::<_, bool>(0) {
        assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_extension_in_its_own_schema_beside_tables_of_the_same_names() {
    let mut admin = connect(&format!("{} dbname=postgres", base_url()));
    admin.batch_execute("DROP DATABASE IF EXISTS pgw_own_schema WITH (FORCE)").unwrap();
    admin.batch_execute("CREATE DATABASE pgw_own_schema").unwrap();
    let mut db = connect(&format!("{} dbname=pgw_own_schema", base_url()));
    db.batch_execute(
        r#"CREATE TABLE public.workflow_execution (id int PRIMARY KEY, note text);
           CREATE TABLE public.workflow_activity (id int PRIMARY KEY, note text);
           INSERT INTO public.workflow_execution VALUES (1, 'the application''s own row');
           CREATE SCHEMA workflow;
           CREATE EXTENSION pg_workflow SCHEMA workflow;
           CREATE TABLE public.effects (n int);"#,
    )
    .unwrap();
    let schema: String = db
        .query_one("SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_workflow'", &[])
        .unwrap()
        .get(0);
    assert_eq!(schema, "workflow");
    db.batch_execute(
        r#"SELECT workflow.workflow_define('own', '{"steps": [
               {"name": "a", "activity": "own.task"},
               {"name": "nap", "sleep": "100ms", "depends_on": ["a"]},
               {"name": "store", "sql": "INSERT INTO public.effects VALUES (1)", "depends_on": ["nap"]}]}');"#,
    )
    .unwrap();
    let id: String = db.query_one("SELECT workflow.workflow_start('own')::text", &[]).unwrap().get(0);
    let done: bool = db
        .query_one(
            "SELECT workflow.workflow_complete_activity(activity_id, '1', attempt) FROM workflow.workflow_claim('default', 'w')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(done);
    // The dispatcher (preloaded) fires the sleep and runs the sql step in this schema.
    wait_for(
        &mut db,
        &format!("SELECT status = 'completed' FROM workflow.workflow_execution WHERE id = '{id}'"),
        "the execution to finish",
    );
    let effects: i64 = db.query_one("SELECT count(*) FROM public.effects", &[]).unwrap().get(0);
    assert_eq!(effects, 1);
    // With the schema on the search_path, the unqualified names of the README work too;
    // the application's tables are still its own.
    db.batch_execute("SET search_path = public, workflow").unwrap();
    let status: String = db.query_one(&format!("SELECT workflow_status('{id}'::uuid)->>'status'"), &[]).unwrap().get(0);
    assert_eq!(status, "completed");
    let note: String = db.query_one("SELECT note FROM public.workflow_execution WHERE id = 1", &[]).unwrap().get(0);
    assert_eq!(note, "the application's own row");
    let granted = db.query_one("SELECT workflow.workflow_grant('pg_monitor', 'worker')", &[]);
    assert!(granted.is_ok(), "grant recipes name the extension's schema: {granted:?}");
    drop(db);
    admin.batch_execute("DROP DATABASE pgw_own_schema").unwrap();
}

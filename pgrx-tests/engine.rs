// State transitions of the engine, driven through the SQL API. Each #[pg_test] runs in
// a transaction that is rolled back.

use pgrx::prelude::*;
use pgrx::{JsonB, Uuid};
use serde_json::{json, Value};

fn one<T: IntoDatum + FromDatum>(sql: &str) -> T {
    Spi::get_one::<T>(sql).expect("query failed").expect("query returned NULL")
}

fn run(sql: &str) {
    Spi::run(sql).expect("statement failed")
}

fn status(id: &Uuid) -> Value {
    one::<JsonB>(&format!("SELECT workflow_status('{id}')")).0
}

fn exec_status(id: &Uuid) -> String {
    one::<String>(&format!("SELECT status FROM workflow_execution WHERE id = '{id}'"))
}

const PIPELINE: &str = r#"{"steps": [
    {"name": "fetch", "activity": "http.fetch"},
    {"name": "chunk", "activity": "text.chunk", "depends_on": ["fetch"]},
    {"name": "store", "activity": "db.store", "depends_on": ["chunk"],
     "retry": {"max_attempts": 2, "initial_interval": "1s", "jitter": 0, "non_retryable": ["Fatal"]}}
]}"#;

fn define_pipeline() {
    assert_eq!(one::<i32>(&format!("SELECT workflow_define('doc', '{PIPELINE}')")), 1);
}

/// Claims one activity of the queue and returns (id, step_key, attempt).
fn claim_one(queue: &str) -> (Uuid, String, i32) {
    Spi::get_three::<Uuid, String, i32>(&format!(
        "SELECT activity_id, step_key, attempt FROM workflow_claim('{queue}', 'test-worker')"
    ))
    .map(|(a, b, c)| (a.expect("nothing to claim"), b.unwrap(), c.unwrap()))
    .expect("claim failed")
}

fn complete(id: &Uuid, output: &str) -> bool {
    one::<bool>(&format!("SELECT workflow_complete_activity('{id}', '{output}')"))
}

#[pg_test]
fn define_versions_only_on_change() {
    define_pipeline();
    define_pipeline();
    assert_eq!(one::<i32>("SELECT count(*)::int FROM workflow_definition WHERE name = 'doc'"), 1);
    let changed = PIPELINE.replace("db.store", "db.save");
    assert_eq!(one::<i32>(&format!("SELECT workflow_define('doc', '{changed}')")), 2);
}

#[pg_test(
    error = "invalid definition of workflow \"bad\": step \"b\": depends on \"zz\", which is not a step of this workflow"
)]
fn define_rejects_unknown_dependency() {
    run(
        r#"SELECT workflow_define('bad', '{"steps": [{"name": "a", "activity": "x"}, {"name": "b", "activity": "y", "depends_on": ["zz"]}]}')"#,
    );
}

#[pg_test(
    error = "invalid definition of workflow \"bad\": step \"a\": depends_on forms a cycle among steps a, b; remove one of those dependencies"
)]
fn define_rejects_cycles() {
    run(
        r#"SELECT workflow_define('bad', '{"steps": [{"name": "a", "activity": "x", "depends_on": ["b"]}, {"name": "b", "activity": "y", "depends_on": ["a"]}]}')"#,
    );
}

#[pg_test(error = "name must not be NULL; pass the workflow's name")]
fn define_rejects_null_name() {
    run(r#"SELECT workflow_define(NULL, '{"steps": [{"name": "a", "activity": "x"}]}')"#);
}

#[pg_test]
fn declared_workflow_runs_to_completion_with_composed_inputs() {
    define_pipeline();
    let id = one::<Uuid>(r#"SELECT workflow_start('doc', '{"url": "u"}')"#);
    assert_eq!(exec_status(&id), "running");
    let (fetch, key, attempt) = claim_one("default");
    assert_eq!((key.as_str(), attempt), ("fetch", 1));
    assert!(complete(&fetch, r#"{"body": "b"}"#));
    let chunk_input = one::<JsonB>("SELECT input FROM workflow_activity WHERE step_key = 'chunk'").0;
    assert_eq!(chunk_input, json!({"input": {"url": "u"}, "fetch": {"body": "b"}}));
    let (chunk, _, _) = claim_one("default");
    assert!(complete(&chunk, r#"["c1"]"#));
    let (store, _, _) = claim_one("default");
    assert!(complete(&store, r#"{"stored": 1}"#));
    assert_eq!(exec_status(&id), "completed");
    assert_eq!(status(&id)["output"], json!({"store": {"stored": 1}}));
    // A repeated completion is a no-op that says so.
    assert!(!complete(&store, "null"));
}

#[pg_test]
fn steps_run_only_when_all_dependencies_are_done() {
    run(r#"SELECT workflow_define('join', '{"steps": [
        {"name": "a", "activity": "x"}, {"name": "b", "activity": "x"},
        {"name": "c", "activity": "x", "depends_on": ["a", "b"]},
        {"name": "d", "activity": "x", "depends_on": ["a"]}]}')"#);
    let id = one::<Uuid>("SELECT workflow_start('join')");
    let first = Spi::get_one::<i64>("SELECT count(*) FROM workflow_claim('default', 'w', 10)").unwrap().unwrap();
    assert_eq!(first, 2, "a and b are ready at start");
    let a = one::<Uuid>("SELECT id FROM workflow_activity WHERE step_key = 'a'");
    let b = one::<Uuid>("SELECT id FROM workflow_activity WHERE step_key = 'b'");
    complete(&a, "1");
    let keys = one::<Vec<String>>(&format!(
        "SELECT array_agg(step_key ORDER BY step_key) FROM workflow_activity WHERE execution_id = '{id}'"
    ));
    assert_eq!(keys, vec!["a", "b", "d"], "c waits for b; d is ready");
    complete(&b, "2");
    let c_input = one::<JsonB>("SELECT input FROM workflow_activity WHERE step_key = 'c'").0;
    assert_eq!(c_input, json!({"input": {}, "a": 1, "b": 2}));
    let c = one::<Uuid>("SELECT id FROM workflow_activity WHERE step_key = 'c'");
    let d = one::<Uuid>("SELECT id FROM workflow_activity WHERE step_key = 'd'");
    complete(&c, "3");
    assert_eq!(exec_status(&id), "running");
    complete(&d, "4");
    assert_eq!(status(&id)["output"], json!({"c": 3, "d": 4}), "output holds every final step");
}

#[pg_test]
fn start_is_idempotent_by_key() {
    define_pipeline();
    let a = one::<Uuid>("SELECT workflow_start('doc', '{}', 'key-1')");
    let b = one::<Uuid>("SELECT workflow_start('doc', '{\"other\": 1}', 'key-1')");
    let c = one::<Uuid>("SELECT workflow_start('doc', '{}', 'key-2')");
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(one::<i64>("SELECT count(*) FROM workflow_activity WHERE step_key = 'fetch'"), 2);
}

#[pg_test]
fn failures_retry_with_backoff_then_fail_the_execution() {
    define_pipeline();
    let id = one::<Uuid>("SELECT workflow_start('doc')");
    let (fetch, _, _) = claim_one("default");
    complete(&fetch, "1");
    let (chunk, _, _) = claim_one("default");
    complete(&chunk, "2");
    let (store, _, attempt) = claim_one("default");
    let outcome = one::<String>(&format!("SELECT workflow_fail_activity('{store}', '\"boom\"', {attempt})"));
    assert_eq!(outcome, "retrying");
    // initial_interval 1s, no jitter: due one second after this transaction's now().
    assert!(one::<bool>(&format!(
        "SELECT scheduled_at = now() + interval '1 second' AND status = 'scheduled' AND error = '{{\"message\": \"boom\"}}' FROM workflow_activity WHERE id = '{store}'"
    )));
    let nothing = Spi::get_one::<i64>("SELECT count(*) FROM workflow_claim('default', 'w')").unwrap().unwrap();
    assert_eq!(nothing, 0, "not claimable before its backoff has passed");
    run(&format!("UPDATE workflow_activity SET scheduled_at = now() - interval '1 second' WHERE id = '{store}'"));
    let (again, _, attempt2) = claim_one("default");
    assert_eq!((again, attempt2), (store, 2));
    let outcome = one::<String>(&format!("SELECT workflow_fail_activity('{store}', '{{\"type\": \"E\"}}', 2)"));
    assert_eq!(outcome, "failed", "max_attempts 2 used up");
    assert_eq!(exec_status(&id), "failed");
    assert_eq!(status(&id)["error"], json!({"step": "store", "error": {"type": "E"}}));
}

#[pg_test]
fn non_retryable_error_types_fail_at_once_and_cancel_open_steps() {
    run(r#"SELECT workflow_define('par', '{"steps": [
        {"name": "a", "activity": "x", "retry": {"non_retryable": ["Fatal"]}}, {"name": "b", "activity": "x"}]}')"#);
    let id = one::<Uuid>("SELECT workflow_start('par')");
    let a = one::<Uuid>("SELECT id FROM workflow_activity WHERE step_key = 'a'");
    let b = one::<Uuid>("SELECT id FROM workflow_activity WHERE step_key = 'b'");
    run("SELECT count(*) FROM workflow_claim('default', 'w', 10)");
    let outcome = one::<String>(&format!("SELECT workflow_fail_activity('{a}', '{{\"type\": \"Fatal\"}}')"));
    assert_eq!(outcome, "failed");
    assert_eq!(exec_status(&id), "failed");
    assert_eq!(one::<String>(&format!("SELECT status FROM workflow_activity WHERE id = '{b}'")), "cancelled");
    assert!(one::<bool>(&format!("SELECT workflow_heartbeat('{b}')")), "the running step learns of the cancel");
    assert!(!complete(&b, "1"), "a late completion of a cancelled step changes nothing");
    let retryable_false = one::<String>(&format!("SELECT workflow_fail_activity('{b}', '\"x\"')"));
    assert_eq!(retryable_false, "cancelled");
}

#[pg_test]
fn retryable_false_fails_at_once() {
    define_pipeline();
    one::<Uuid>("SELECT workflow_start('doc')");
    let (fetch, _, attempt) = claim_one("default");
    let outcome = one::<String>(&format!("SELECT workflow_fail_activity('{fetch}', '\"no\"', {attempt}, false)"));
    assert_eq!(outcome, "failed");
}

/// The SQLSTATE a statement fails with. It leaves the transaction aborted, so a test
/// may use it only as its last statement.
fn sqlstate_of(sql: &str) -> Option<PgSqlErrorCode> {
    PgTryBuilder::new(|| {
        Spi::run(sql).expect("statement failed outside Postgres");
        None
    })
    .catch_others(|e| match e {
        pg_sys::panic::CaughtError::PostgresError(r) | pg_sys::panic::CaughtError::ErrorReport(r) => {
            Some(r.sql_error_code())
        }
        _ => None,
    })
    .execute()
}

#[pg_test]
fn completion_with_a_stale_attempt_is_rejected() {
    define_pipeline();
    one::<Uuid>("SELECT workflow_start('doc')");
    let (fetch, _, _) = claim_one("default");
    assert_eq!(
        sqlstate_of(&format!("SELECT workflow_complete_activity('{fetch}', 'null', 7)")),
        Some(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE)
    );
}

#[pg_test]
fn expired_leases_become_timeout_failures_and_fence_the_old_worker() {
    define_pipeline();
    one::<Uuid>("SELECT workflow_start('doc')");
    let (fetch, _, attempt) = claim_one("default");
    assert_eq!(one::<i32>("SELECT workflow_dispatch()"), 0, "lease still valid");
    run(&format!("UPDATE workflow_activity SET lease_expires_at = now() - interval '1 second' WHERE id = '{fetch}'"));
    assert_eq!(one::<i32>("SELECT workflow_dispatch()"), 1);
    let (error_type, st) = Spi::get_two::<String, String>(&format!(
        "SELECT error->>'type', status FROM workflow_activity WHERE id = '{fetch}'"
    ))
    .unwrap();
    assert_eq!((error_type.unwrap().as_str(), st.unwrap().as_str()), ("Timeout", "scheduled"));
    run(&format!("UPDATE workflow_activity SET scheduled_at = now() WHERE id = '{fetch}'"));
    let (_, _, attempt2) = claim_one("default");
    assert_eq!(attempt2, attempt + 1);
    assert_eq!(
        sqlstate_of(&format!("SELECT workflow_complete_activity('{fetch}', '1', {attempt})")),
        Some(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
        "the first worker's late completion is rejected"
    );
}

#[pg_test]
fn heartbeat_extends_the_lease_by_its_length() {
    define_pipeline();
    one::<Uuid>("SELECT workflow_start('doc')");
    let id = one::<Uuid>("SELECT activity_id FROM workflow_claim('default', 'w', 1, '10 minutes')");
    run(&format!("UPDATE workflow_activity SET started_at = now() - interval '5 minutes', lease_expires_at = now() + interval '5 minutes' WHERE id = '{id}'"));
    assert!(!one::<bool>(&format!("SELECT workflow_heartbeat('{id}', 1, '{{\"progress\": 0.5}}')")));
    assert!(one::<bool>(&format!(
        "SELECT lease_expires_at = now() + interval '10 minutes' AND heartbeat = '{{\"progress\": 0.5}}' FROM workflow_activity WHERE id = '{id}'"
    )));
}

#[pg_test]
fn claim_orders_by_priority_then_age_and_filters_types() {
    run(r#"SELECT workflow_define('low', '{"steps": [{"name": "a", "activity": "slow"}]}')"#);
    run(r#"SELECT workflow_define('high', '{"steps": [{"name": "a", "activity": "fast", "priority": 5}]}')"#);
    one::<Uuid>("SELECT workflow_start('low')");
    one::<Uuid>("SELECT workflow_start('high')");
    let first = one::<String>("SELECT activity_type FROM workflow_claim('default', 'w')");
    assert_eq!(first, "fast");
    one::<Uuid>("SELECT workflow_start('high')");
    let only_slow =
        one::<String>("SELECT activity_type FROM workflow_claim('default', 'w', 5, '1 minute', ARRAY['slow'])");
    assert_eq!(only_slow, "slow");
    let other_queue = Spi::get_one::<i64>("SELECT count(*) FROM workflow_claim('io', 'w', 5)").unwrap().unwrap();
    assert_eq!(other_queue, 0);
}

#[pg_test]
fn delayed_start_waits_for_dispatch() {
    define_pipeline();
    let id = one::<Uuid>(r#"SELECT workflow_start('doc', '{}', NULL, '{"delay": "1 hour", "queue": "later"}')"#);
    assert_eq!(exec_status(&id), "pending");
    assert_eq!(one::<i32>("SELECT workflow_dispatch()"), 0);
    run(&format!("UPDATE workflow_execution SET started_at = now() - interval '1 second' WHERE id = '{id}'"));
    assert_eq!(one::<i32>("SELECT workflow_dispatch()"), 1);
    assert_eq!(exec_status(&id), "running");
    assert_eq!(one::<String>("SELECT queue FROM workflow_activity WHERE step_key = 'fetch'"), "later");
}

#[pg_test]
fn status_lists_steps_not_started_yet() {
    define_pipeline();
    let id = one::<Uuid>("SELECT workflow_start('doc')");
    let steps = status(&id)["steps"].clone();
    let summary: Vec<(String, String)> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step_key"].as_str().unwrap().to_owned(), s["status"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("fetch".into(), "scheduled".into()),
            ("chunk".into(), "pending".into()),
            ("store".into(), "pending".into())
        ]
    );
}

#[pg_test]
fn nothing_is_granted_to_public() {
    let public_grants = one::<i64>(
        "SELECT count(*) FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass \
         JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_workflow' \
         WHERE has_function_privilege('public', p.oid, 'EXECUTE')",
    );
    assert_eq!(public_grants, 0);
}

#[pg_test]
fn complete_activities_finishes_a_batch_in_one_call() {
    define_pipeline();
    run("SELECT workflow_start('doc') FROM generate_series(1, 3)");
    let (ids, attempts) = Spi::get_two::<Vec<Uuid>, Vec<i32>>(
        "SELECT array_agg(activity_id), array_agg(attempt) FROM workflow_claim('default', 'w', 10)",
    )
    .unwrap();
    let (ids, attempts) = (ids.unwrap(), attempts.unwrap());
    assert_eq!(ids.len(), 3);
    let list = |v: &[Uuid]| v.iter().map(|u| format!("'{u}'")).collect::<Vec<_>>().join(",");
    let result = one::<Vec<bool>>(&format!(
        "SELECT workflow_complete_activities(ARRAY[{}]::uuid[], ARRAY['1', '2', '3']::jsonb[], ARRAY{attempts:?})",
        list(&ids)
    ));
    assert_eq!(result, vec![true, true, true]);
    assert_eq!(
        one::<i64>("SELECT count(*) FROM workflow_activity WHERE step_key = 'chunk' AND status = 'scheduled'"),
        3
    );
    let again = one::<Vec<bool>>(&format!("SELECT workflow_complete_activities(ARRAY[{}]::uuid[])", list(&ids[..1])));
    assert_eq!(again, vec![false], "repeating is a no-op");
    assert_eq!(
        sqlstate_of(&format!(
            "SELECT workflow_complete_activities(ARRAY[{}]::uuid[], ARRAY['1']::jsonb[])",
            list(&ids)
        )),
        Some(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE),
        "outputs must match activity_ids"
    );
}

// Workflow semantics (issue 3): signals, timers, fan-out, children, cancellation,
// compensation, timeouts, resume and client-driven executions. Time moves by setting
// due times explicitly and calling workflow_dispatch(), never by sleeping.

fn define(name: &str, definition: &str) {
    run(&format!("SELECT workflow_define('{name}', '{definition}')"));
}

fn activity_id(execution: &Uuid, key: &str) -> Uuid {
    one::<Uuid>(&format!("SELECT id FROM workflow_activity WHERE execution_id = '{execution}' AND step_key = '{key}'"))
}

fn step_status(execution: &Uuid, key: &str) -> String {
    one::<String>(&format!(
        "SELECT status FROM workflow_activity WHERE execution_id = '{execution}' AND step_key = '{key}'"
    ))
}

fn make_due(execution: &Uuid, key: &str) {
    run(&format!(
        "UPDATE workflow_activity SET scheduled_at = now() - interval '1 second' WHERE execution_id = '{execution}' AND step_key = '{key}'"
    ));
}

fn output(execution: &Uuid) -> Value {
    status(execution)["output"].clone()
}

#[pg_test]
fn a_signal_sent_before_the_wait_is_kept_and_consumed() {
    define(
        "approval",
        r#"{"steps": [{"name": "draft", "activity": "t"}, {"name": "approve", "wait_signal": "approved", "depends_on": ["draft"]}]}"#,
    );
    let id = one::<Uuid>("SELECT workflow_start('approval')");
    run(&format!("SELECT workflow_signal('{id}', 'approved', '{{\"by\": \"ann\"}}')"));
    complete(&activity_id(&id, "draft"), "1");
    assert_eq!(exec_status(&id), "completed");
    assert_eq!(output(&id), json!({"approve": {"by": "ann"}}));
    assert_eq!(one::<String>("SELECT consumed_by FROM workflow_signal"), "approve");
}

#[pg_test]
fn a_signal_sent_after_the_wait_completes_it() {
    define(
        "approval",
        r#"{"steps": [{"name": "approve", "wait_signal": "approved"}, {"name": "publish", "activity": "t", "depends_on": ["approve"]},
                      {"name": "later", "wait_signal": "other", "depends_on": ["publish"]}]}"#,
    );
    let id = one::<Uuid>("SELECT workflow_start('approval')");
    assert_eq!(step_status(&id, "approve"), "waiting");
    run(&format!("SELECT workflow_signal('{id}', 'other', '1')"));
    assert_eq!(step_status(&id, "approve"), "waiting", "another name does not wake it");
    run(&format!("SELECT workflow_signal('{id}', 'approved', '\"yes\"')"));
    assert_eq!(step_status(&id, "approve"), "completed");
    let input =
        one::<JsonB>(&format!("SELECT input FROM workflow_activity WHERE id = '{}'", activity_id(&id, "publish"))).0;
    assert_eq!(input["approve"], json!("yes"));
}

#[pg_test]
fn two_waits_take_two_signals_oldest_first() {
    define("two", r#"{"steps": [{"name": "w1", "wait_signal": "x"}, {"name": "w2", "wait_signal": "x"}]}"#);
    let id = one::<Uuid>("SELECT workflow_start('two')");
    run(&format!("SELECT workflow_signal('{id}', 'x', '1')"));
    assert_eq!((step_status(&id, "w1"), step_status(&id, "w2")), ("completed".into(), "waiting".into()));
    run(&format!("SELECT workflow_signal('{id}', 'x', '2')"));
    assert_eq!(output(&id), json!({"w1": 1, "w2": 2}));
}

#[pg_test]
fn a_repeated_signal_key_is_a_no_op() {
    define("two", r#"{"steps": [{"name": "w1", "wait_signal": "x"}, {"name": "w2", "wait_signal": "x"}]}"#);
    let id = one::<Uuid>("SELECT workflow_start('two')");
    let a = one::<Uuid>(&format!("SELECT workflow_signal('{id}', 'x', '1', 'k')"));
    let b = one::<Uuid>(&format!("SELECT workflow_signal('{id}', 'x', '1', 'k')"));
    assert_eq!(a, b);
    assert_eq!(one::<i64>("SELECT count(*) FROM workflow_signal"), 1);
    assert_eq!(step_status(&id, "w2"), "waiting", "the repeat woke nobody");
}

#[pg_test]
fn a_signal_wait_times_out_as_a_failure() {
    define("deadline", r#"{"steps": [{"name": "approve", "wait_signal": "ok", "timeout": "7 days"}]}"#);
    let id = one::<Uuid>("SELECT workflow_start('deadline')");
    assert!(one::<bool>("SELECT scheduled_at = now() + interval '7 days' FROM workflow_activity"));
    assert_eq!(one::<i32>("SELECT workflow_dispatch()"), 0);
    make_due(&id, "approve");
    assert_eq!(one::<i32>("SELECT workflow_dispatch()"), 1);
    assert_eq!(exec_status(&id), "failed");
    assert_eq!(status(&id)["error"]["error"]["type"], json!("Timeout"));
}

#[pg_test]
fn sleeps_complete_when_due() {
    define(
        "nap",
        r#"{"steps": [{"name": "pause", "sleep": "1 hour"}, {"name": "after", "activity": "t", "depends_on": ["pause"]}]}"#,
    );
    let id = one::<Uuid>("SELECT workflow_start('nap')");
    assert!(one::<bool>(
        "SELECT scheduled_at = now() + interval '1 hour' AND status = 'waiting' FROM workflow_activity"
    ));
    assert_eq!(one::<i32>("SELECT workflow_dispatch()"), 0);
    make_due(&id, "pause");
    assert_eq!(one::<i32>("SELECT workflow_dispatch()"), 1);
    assert_eq!(step_status(&id, "pause"), "completed");
    assert_eq!(step_status(&id, "after"), "scheduled");
}

#[pg_test]
fn sleep_until_reads_a_timestamp_from_the_input() {
    define("until", r#"{"steps": [{"name": "pause", "sleep": {"until": "wake_at"}}]}"#);
    let id = one::<Uuid>(r#"SELECT workflow_start('until', '{"wake_at": "2001-02-03T04:05:06Z"}')"#);
    assert!(one::<bool>("SELECT scheduled_at = '2001-02-03T04:05:06Z' FROM workflow_activity"));
    assert_eq!(one::<i32>("SELECT workflow_dispatch()"), 1, "already due");
    assert_eq!(exec_status(&id), "completed");
    let bad = one::<Uuid>(r#"SELECT workflow_start('until', '{"wake_at": "someday"}')"#);
    assert_eq!(exec_status(&bad), "failed");
    assert_eq!(status(&bad)["error"]["error"]["type"], json!("InvalidSleep"));
}

/// What the dispatcher asks after every pass: how long until something is due.
fn next_due() -> Option<i64> {
    Spi::connect_mut(|c| crate::engine::dispatch::next_due(c, true)).expect("next_due failed")
}

#[pg_test]
fn only_labelled_executions_enter_the_labels_index() {
    // An entry for '{}' cost every start and every finish a GIN insert and an update of
    // the index's metapage, a page every starting and finishing transaction wrote.
    run("CREATE EXTENSION pgstattuple");
    define("unlabelled", r#"{"steps": [{"name": "a", "activity": "a"}]}"#);
    let entries = || one::<i64>("SELECT pending_tuples FROM pgstatginindex('workflow_execution_labels')");
    let before = entries();
    run("SELECT workflow_start('unlabelled') FROM generate_series(1, 10)");
    run(r#"SELECT workflow_start('unlabelled', '{}', NULL, '{"labels": {"team": "search"}}')"#);
    assert_eq!(entries() - before, 1, "one labelled start, ten without labels");
    run("SELECT workflow_cancel(id, 'enough') FROM workflow_execution WHERE workflow_type = 'unlabelled'");
    assert_eq!(entries() - before, 2, "finishing rewrote the labelled row alone in the index");
}

#[pg_test]
fn a_due_sql_step_is_the_runners_work_while_one_runs() {
    // A step being run stays 'scheduled' until its transaction commits: while the
    // dispatcher's runner is there, the step must not make the dispatcher's next pass
    // due at once, or the dispatcher passes every millisecond for as long as it runs.
    define("stored", r#"{"steps": [{"name": "store", "sql": "SELECT 1"}]}"#);
    run("SELECT workflow_start('stored')");
    assert!(next_due().is_some_and(|us| us <= 0), "due now, for a dispatcher without a runner");
    let with_runner = Spi::connect_mut(|c| crate::engine::dispatch::next_due(c, false)).expect("next_due failed");
    assert_eq!(with_runner, None, "nothing else waits: the runner has the step");
}

#[pg_test]
fn never_due_and_long_overdue_waits_leave_the_dispatcher_working() {
    // A signal wait without a timeout is due at 'infinity': nothing is due, not an error
    // (the error rolled back the dispatcher's whole pass, whatever else it had moved).
    define("forever", r#"{"steps": [{"name": "approve", "wait_signal": "approved"}]}"#);
    run("SELECT workflow_start('forever')");
    assert_eq!(next_due(), None);
    // A sleep until an input timestamp of 'infinity' is the same; '-infinity' is overdue.
    define("until_inf", r#"{"steps": [{"name": "pause", "sleep": {"until": "at"}}]}"#);
    run(r#"SELECT workflow_start('until_inf', '{"at": "infinity"}')"#);
    assert_eq!(next_due(), None);
    run(r#"SELECT workflow_start('until_inf', '{"at": "-infinity"}')"#);
    assert!(next_due().is_some_and(|us| us < 0), "a sleep until -infinity is overdue");
    assert_eq!(one::<i32>("SELECT workflow_dispatch()"), 1);
    assert_eq!(next_due(), None);
}

const MAP: &str = r#"{"steps": [{"name": "chunk", "activity": "chunk"},
    {"name": "extract", "activity": "extract", "depends_on": ["chunk"], "map": "chunk"},
    {"name": "store", "activity": "store", "depends_on": ["extract"]}]}"#;

fn start_map(items: &Value) -> Uuid {
    define("fan", MAP);
    let id = one::<Uuid>(r#"SELECT workflow_start('fan', '{"doc": 1}')"#);
    complete(&activity_id(&id, "chunk"), &items.to_string());
    id
}

#[pg_test]
fn map_over_nothing_completes_at_once() {
    let id = start_map(&json!([]));
    assert_eq!(one::<JsonB>("SELECT output FROM workflow_activity WHERE step_key = 'extract'").0, json!([]));
    assert_eq!(step_status(&id, "store"), "scheduled");
}

#[pg_test]
fn map_over_one_item() {
    let id = start_map(&json!(["only"]));
    let item = activity_id(&id, "extract[0]");
    let input = one::<JsonB>(&format!("SELECT input FROM workflow_activity WHERE id = '{item}'")).0;
    assert_eq!(input, json!({"input": {"doc": 1}, "item": "only", "index": 0}));
    complete(&item, "\"done\"");
    let store_input = one::<JsonB>("SELECT input FROM workflow_activity WHERE step_key = 'store'").0;
    assert_eq!(store_input["extract"], json!(["done"]));
}

#[pg_test]
fn map_over_a_thousand_items_keeps_input_order() {
    let items: Vec<i32> = (0..1000).collect();
    let id = start_map(&json!(items));
    assert_eq!(one::<i64>("SELECT count(*) FROM workflow_activity WHERE starts_with(step_key, 'extract[')"), 1000);
    // Complete in reverse order; the output still follows the input's order.
    run("SELECT count(workflow_complete_activity(id, to_jsonb((input->>'item')::int * 2))) \
         FROM (SELECT id, input FROM workflow_activity WHERE starts_with(step_key, 'extract[') \
               ORDER BY (input->>'index')::int DESC) items");
    let out = one::<JsonB>("SELECT output FROM workflow_activity WHERE step_key = 'extract'").0;
    let expected: Vec<i32> = (0..1000).map(|i| i * 2).collect();
    assert_eq!(out, json!(expected));
    assert_eq!(step_status(&id, "store"), "scheduled");
}

#[pg_test]
fn map_max_concurrency_bounds_open_items() {
    define(
        "bounded",
        r#"{"steps": [{"name": "src", "activity": "s"},
        {"name": "each", "activity": "e", "depends_on": ["src"], "map": "src", "max_concurrency": 2}]}"#,
    );
    let id = one::<Uuid>("SELECT workflow_start('bounded')");
    complete(&activity_id(&id, "src"), "[10, 20, 30, 40, 50]");
    let open = || {
        one::<i64>(
            "SELECT count(*) FROM workflow_activity WHERE starts_with(step_key, 'each[') AND status = 'scheduled'",
        )
    };
    assert_eq!(open(), 2);
    for n in 0..5 {
        assert!(open() <= 2);
        complete(&activity_id(&id, &format!("each[{n}]")), &n.to_string());
    }
    assert_eq!(output(&id), json!({"each": [0, 1, 2, 3, 4]}));
}

#[pg_test]
fn map_over_a_non_array_fails_the_step() {
    let id = start_map(&json!({"not": "an array"}));
    assert_eq!(exec_status(&id), "failed");
    assert_eq!(status(&id)["error"]["error"]["type"], json!("MapError"));
}

#[pg_test]
fn a_child_workflow_completes_its_parent_step() {
    define("kid", r#"{"steps": [{"name": "work", "activity": "kid.work"}]}"#);
    define(
        "parent",
        r#"{"steps": [{"name": "spawn", "workflow": "kid"}, {"name": "after", "activity": "t", "depends_on": ["spawn"]}]}"#,
    );
    let parent = one::<Uuid>(r#"SELECT workflow_start('parent', '{"p": 1}')"#);
    let child = one::<Uuid>(&format!(
        "SELECT id FROM workflow_execution WHERE parent_id = '{parent}' AND parent_step = 'spawn'"
    ));
    assert_eq!(
        one::<JsonB>(&format!("SELECT input FROM workflow_execution WHERE id = '{child}'")).0,
        json!({"input": {"p": 1}})
    );
    complete(&activity_id(&child, "work"), "42");
    assert_eq!(exec_status(&child), "completed");
    assert_eq!(
        one::<JsonB>(&format!("SELECT output FROM workflow_activity WHERE id = '{}'", activity_id(&parent, "spawn"))).0,
        json!({"work": 42})
    );
    assert_eq!(step_status(&parent, "after"), "scheduled");
}

#[pg_test]
fn a_failed_child_fails_its_parent() {
    define("kid", r#"{"steps": [{"name": "work", "activity": "kid.work"}]}"#);
    define("parent", r#"{"steps": [{"name": "spawn", "workflow": "kid"}]}"#);
    let parent = one::<Uuid>("SELECT workflow_start('parent')");
    let child = one::<Uuid>(&format!("SELECT id FROM workflow_execution WHERE parent_id = '{parent}'"));
    run(&format!("SELECT workflow_fail_activity('{}', '\"broken\"', NULL, false)", activity_id(&child, "work")));
    assert_eq!(exec_status(&parent), "failed");
    assert_eq!(status(&parent)["error"]["error"]["type"], json!("ChildWorkflowFailed"));
}

#[pg_test]
fn cancel_stops_steps_and_cascades_to_children() {
    define("kid", r#"{"steps": [{"name": "work", "activity": "kid.work"}]}"#);
    define("parent", r#"{"steps": [{"name": "spawn", "workflow": "kid"}, {"name": "side", "activity": "side"}]}"#);
    let parent = one::<Uuid>("SELECT workflow_start('parent')");
    let child = one::<Uuid>(&format!("SELECT id FROM workflow_execution WHERE parent_id = '{parent}'"));
    let work = one::<Uuid>("SELECT activity_id FROM workflow_claim('default', 'w', 1, '5 minutes', ARRAY['kid.work'])");
    assert!(one::<bool>(&format!("SELECT workflow_cancel('{parent}', 'user asked')")));
    assert_eq!((exec_status(&parent), exec_status(&child)), ("cancelled".into(), "cancelled".into()));
    assert_eq!(step_status(&parent, "side"), "cancelled");
    assert!(one::<bool>(&format!("SELECT workflow_heartbeat('{work}')")), "the running worker hears of it");
    assert!(!complete(&work, "1"), "its late completion changes nothing");
    assert!(!one::<bool>(&format!("SELECT workflow_cancel('{parent}')")), "cancelling again is a no-op");
    assert_eq!(status(&parent)["error"]["message"], json!("user asked"));
}

#[pg_test]
fn compensation_runs_newest_first_after_a_failure() {
    define(
        "saga",
        r#"{"steps": [{"name": "book_flight", "activity": "t"},
        {"name": "book_hotel", "activity": "t", "depends_on": ["book_flight"]},
        {"name": "charge", "activity": "t", "depends_on": ["book_hotel"]}],
        "compensate": {"book_flight": "cancel_flight", "book_hotel": "cancel_hotel"}}"#,
    );
    let id = one::<Uuid>("SELECT workflow_start('saga')");
    complete(&activity_id(&id, "book_flight"), "\"F1\"");
    complete(&activity_id(&id, "book_hotel"), "\"H1\"");
    run(&format!("SELECT workflow_fail_activity('{}', '\"card declined\"', NULL, false)", activity_id(&id, "charge")));
    assert_eq!(exec_status(&id), "failed");
    assert_eq!(status(&id)["compensation"], json!("running"));
    let (first_type, first_input) = Spi::get_two::<String, JsonB>(
        "SELECT activity_type, input FROM workflow_activity WHERE starts_with(step_key, 'compensate:')",
    )
    .unwrap();
    assert_eq!(first_type.unwrap(), "cancel_hotel", "newest first");
    assert_eq!(first_input.unwrap().0, json!({"input": {}, "step": "book_hotel", "output": "H1"}));
    complete(&activity_id(&id, "compensate:book_hotel"), "null");
    assert_eq!(step_status(&id, "compensate:book_flight"), "scheduled");
    complete(&activity_id(&id, "compensate:book_flight"), "null");
    assert_eq!(status(&id)["compensation"], json!("completed"));
}

#[pg_test]
fn retry_resumes_only_what_did_not_complete() {
    define(
        "branches",
        r#"{"steps": [{"name": "a", "activity": "t"},
        {"name": "b", "activity": "t", "depends_on": ["a"]}, {"name": "c", "activity": "t", "depends_on": ["a"]},
        {"name": "d", "activity": "t", "depends_on": ["b", "c"]}]}"#,
    );
    let id = one::<Uuid>("SELECT workflow_start('branches')");
    let a = activity_id(&id, "a");
    complete(&a, "\"A\"");
    let c = activity_id(&id, "c");
    complete(&c, "\"C\"");
    run(&format!("SELECT workflow_fail_activity('{}', '\"boom\"', NULL, false)", activity_id(&id, "b")));
    assert_eq!(exec_status(&id), "failed");
    assert!(one::<bool>(&format!("SELECT workflow_retry('{id}')")));
    assert_eq!(exec_status(&id), "running");
    assert_eq!((activity_id(&id, "a"), activity_id(&id, "c")), (a, c), "completed steps are kept, not re-run");
    assert_eq!(step_status(&id, "b"), "scheduled");
    complete(&activity_id(&id, "b"), "\"B\"");
    complete(&activity_id(&id, "d"), "\"D\"");
    assert_eq!(exec_status(&id), "completed");
    assert!(
        !one::<bool>("SELECT workflow_retry(workflow_start('branches'))"),
        "a running execution has nothing to resume"
    );
}

#[pg_test]
fn workflow_timeout_fails_the_execution() {
    define("slow", r#"{"steps": [{"name": "a", "activity": "t"}], "timeout": "1 hour"}"#);
    let id = one::<Uuid>("SELECT workflow_start('slow')");
    assert!(one::<bool>(&format!(
        "SELECT deadline = now() + interval '1 hour' FROM workflow_execution WHERE id = '{id}'"
    )));
    run(&format!("UPDATE workflow_execution SET deadline = now() - interval '1 second' WHERE id = '{id}'"));
    assert_eq!(one::<i32>("SELECT workflow_dispatch()"), 1);
    assert_eq!(exec_status(&id), "failed");
    assert_eq!(step_status(&id, "a"), "cancelled");
}

#[pg_test]
fn step_timeouts_bound_the_lease() {
    define(
        "timed",
        r#"{"steps": [{"name": "a", "activity": "t", "timeout": "30s", "heartbeat_timeout": "10s", "schedule_to_close": "1h"}]}"#,
    );
    let id = one::<Uuid>("SELECT workflow_start('timed')");
    let act = one::<Uuid>("SELECT activity_id FROM workflow_claim('default', 'w', 1, '5 minutes')");
    assert!(
        one::<bool>("SELECT lease_expires_at = now() + interval '10 seconds' FROM workflow_activity"),
        "heartbeat timeout is the shortest"
    );
    run(&format!("UPDATE workflow_activity SET expires_at = now() - interval '1 second' WHERE id = '{act}'"));
    assert_eq!(one::<i32>("SELECT workflow_dispatch()"), 1);
    assert_eq!(exec_status(&id), "failed", "schedule_to_close is final");
}

#[pg_test]
fn a_client_driven_execution_replays_to_the_same_activities() {
    let id = one::<Uuid>(r#"SELECT workflow_start('my_sdk_flow', '{"x": 1}', NULL, '{"client_driven": true}')"#);
    assert!(one::<bool>(&format!("SELECT definition_version IS NULL FROM workflow_execution WHERE id = '{id}'")));
    let first =
        one::<Uuid>(&format!("SELECT workflow_schedule_activity('{id}', 'fetch', 'http.fetch', '{{\"u\": 1}}')"));
    let replay =
        one::<Uuid>(&format!("SELECT workflow_schedule_activity('{id}', 'fetch', 'http.fetch', '{{\"u\": 1}}')"));
    assert_eq!(first, replay);
    complete(&first, "\"page\"");
    assert!(one::<bool>(&format!(
        "SELECT ready_at IS NOT NULL AND status = 'running' FROM workflow_execution WHERE id = '{id}'"
    )));
    let again =
        one::<Uuid>(&format!("SELECT workflow_schedule_activity('{id}', 'fetch', 'http.fetch', '{{\"u\": 1}}')"));
    assert_eq!(again, first, "a replay after completion returns the done activity");
    assert_eq!(one::<JsonB>(&format!("SELECT output FROM workflow_activity WHERE id = '{again}'")).0, json!("page"));
    let wait = one::<Uuid>(&format!(
        "SELECT workflow_schedule_activity('{id}', 'approval', NULL, '{{}}', '{{\"wait_signal\": \"go\"}}')"
    ));
    assert!(
        one::<bool>(&format!("SELECT ready_at IS NULL FROM workflow_execution WHERE id = '{id}'")),
        "the client acted"
    );
    run(&format!("SELECT workflow_signal('{id}', 'go', '\"ok\"')"));
    assert_eq!(one::<String>(&format!("SELECT status FROM workflow_activity WHERE id = '{wait}'")), "completed");
    assert!(one::<bool>(&format!("SELECT workflow_complete('{id}', '{{\"done\": true}}')")));
    assert!(!one::<bool>(&format!("SELECT workflow_complete('{id}')")), "completing twice is a no-op");
    assert_eq!(output(&id), json!({"done": true}));
}

#[pg_test]
fn a_client_driven_activity_failure_wakes_the_client_instead_of_failing() {
    let id = one::<Uuid>(r#"SELECT workflow_start('my_sdk_flow', '{}', NULL, '{"client_driven": true}')"#);
    let act = one::<Uuid>(&format!(
        "SELECT workflow_schedule_activity('{id}', 'x', 't', '{{}}', '{{\"retry\": {{\"max_attempts\": 1}}}}')"
    ));
    assert_eq!(one::<String>(&format!("SELECT workflow_fail_activity('{act}', '\"nope\"')")), "failed");
    assert!(one::<bool>(&format!(
        "SELECT status = 'running' AND ready_at IS NOT NULL FROM workflow_execution WHERE id = '{id}'"
    )));
    assert!(one::<bool>(&format!("SELECT workflow_fail('{id}', '\"gave up\"')")));
    assert_eq!(status(&id)["error"], json!({"message": "gave up"}));
}

#[pg_test]
fn payloads_over_the_limit_are_rejected() {
    run("SET workflow.max_payload_bytes = 1024");
    define("small", r#"{"steps": [{"name": "a", "activity": "t"}]}"#);
    let big = "x".repeat(2000);
    assert_eq!(
        sqlstate_of(&format!("SELECT workflow_start('small', '{{\"blob\": \"{big}\"}}')")),
        Some(PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED)
    );
}

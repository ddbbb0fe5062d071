// Concurrency keys and paused workflow types (engine/admission.rs): who waits, in what
// order, and what starts them. The race between concurrent starts is tested with real
// connections in tests/client/tests/concurrency_keys.rs.

fn start_doc(kind: &str, doc: &str) -> Uuid {
    one::<Uuid>(&format!("SELECT workflow_start('{kind}', '{{\"document_id\": \"{doc}\"}}')"))
}

fn waiting_for(id: &Uuid) -> Value {
    status(id)["waiting_for"].clone()
}

/// Completes the running activity of execution `id`.
fn finish_step_of(id: &Uuid) {
    run(&format!(
        "SELECT workflow_complete_activity(a.activity_id, '1') FROM workflow_activity s, \
         LATERAL workflow_claim_activity(s.id, 'w') a WHERE s.execution_id = '{id}'"
    ));
}

#[pg_test]
fn one_run_per_document_the_rest_wait_in_order() {
    run(r#"SELECT workflow_define('extract', '{"concurrency_key": "input.document_id", "max_running": 1,
                                              "timeout": "1h", "steps": [{"name": "a", "activity": "x"}]}')"#);
    let a1 = start_doc("extract", "A");
    let a2 = start_doc("extract", "A");
    let a3 = start_doc("extract", "A");
    let b1 = start_doc("extract", "B");
    let states: Vec<String> = [&a1, &a2, &a3, &b1].iter().map(|id| exec_status(id)).collect();
    assert_eq!(states, ["running", "pending", "pending", "running"], "one per document; B in parallel");
    assert_eq!(waiting_for(&a2), json!("concurrency_key"));
    assert_eq!(status(&a2)["concurrency_key"], json!("A"));
    assert_eq!(waiting_for(&a1), Value::Null);
    // Nothing due: dispatching starts nothing.
    run("SELECT workflow_dispatch()");
    assert_eq!(exec_status(&a2), "pending");
    // A1 completes: A2 (the oldest) is made due and the dispatcher starts it; A3 waits on.
    finish_step_of(&a1);
    assert_eq!(exec_status(&a1), "completed");
    run("SELECT workflow_dispatch()");
    assert_eq!((exec_status(&a2), exec_status(&a3)), ("running".into(), "pending".into()));
    // Its timeout counts from its own start, not from when it was created.
    assert!(one::<bool>(&format!(
        "SELECT deadline = started_at + interval '1 hour' FROM workflow_execution WHERE id = '{a2}'"
    )));
    // A new start does not overtake A3, even once a slot is free.
    run(&format!("SELECT workflow_cancel('{a2}')"));
    let a4 = start_doc("extract", "A");
    assert_eq!(exec_status(&a4), "pending", "A3 waited longer");
    run("SELECT workflow_dispatch()");
    assert_eq!((exec_status(&a3), exec_status(&a4)), ("running".into(), "pending".into()));
    // A waiting execution can be cancelled; the one behind it moves up.
    run(&format!("SELECT workflow_cancel('{a4}')"));
    let a5 = start_doc("extract", "A");
    finish_step_of(&a3);
    run("SELECT workflow_dispatch()");
    assert_eq!(exec_status(&a5), "running");
}

#[pg_test]
fn a_retried_execution_waits_for_its_key_and_a_limit_per_tenant() {
    run(r#"SELECT workflow_define('per_tenant', '{"concurrency_key": "tenant_id", "max_running": 2,
                                                 "steps": [{"name": "a", "activity": "x", "retry": {"max_attempts": 1}}]}')"#);
    let start = |tenant: &str| {
        one::<Uuid>(&format!("SELECT workflow_start('per_tenant', '{{}}', NULL, '{{\"tenant_id\": \"{tenant}\"}}')"))
    };
    let (t1, t2, t3, u1) = (start("acme"), start("acme"), start("acme"), start("umbrella"));
    let states: Vec<String> = [&t1, &t2, &t3, &u1].iter().map(|id| exec_status(id)).collect();
    assert_eq!(states, ["running", "running", "pending", "running"], "two per tenant");
    // t1 fails: t3 takes its slot; retrying t1 then waits behind the two running.
    run(&format!(
        "SELECT workflow_fail_activity(a.activity_id, '\"no\"') FROM workflow_activity s, \
         LATERAL workflow_claim_activity(s.id, 'w') a WHERE s.execution_id = '{t1}'"
    ));
    assert_eq!(exec_status(&t1), "failed");
    run("SELECT workflow_dispatch()");
    assert_eq!(exec_status(&t3), "running");
    assert!(one::<bool>(&format!("SELECT workflow_retry('{t1}')")));
    assert_eq!(exec_status(&t1), "pending");
    run("SELECT workflow_dispatch()");
    assert_eq!(exec_status(&t1), "pending", "still two running for acme");
    finish_step_of(&t2);
    run("SELECT workflow_dispatch()");
    assert_eq!(exec_status(&t1), "running");
}

#[pg_test]
fn a_paused_type_accepts_starts_that_wait_until_it_is_resumed() {
    run(r#"SELECT workflow_define('paused_job', '{"steps": [{"name": "a", "activity": "x"}]}')"#);
    let before = one::<Uuid>("SELECT workflow_start('paused_job')");
    assert!(one::<bool>("SELECT workflow_type_pause('paused_job')"));
    assert!(!one::<bool>("SELECT workflow_type_pause('paused_job')"), "paused already");
    let during: Vec<Uuid> = (0..3).map(|_| one::<Uuid>("SELECT workflow_start('paused_job')")).collect();
    // A delayed start that comes due while the type is paused waits too.
    let delayed = one::<Uuid>(r#"SELECT workflow_start('paused_job', '{}', NULL, '{"start_at": "2000-01-01"}')"#);
    run("SELECT workflow_dispatch()");
    assert_eq!(exec_status(&before), "running", "what ran goes on");
    for id in during.iter().chain([&delayed]) {
        assert_eq!(exec_status(id), "pending");
        assert_eq!(waiting_for(id), json!("paused_workflow_type"));
    }
    assert_eq!(one::<i64>("SELECT count(*) FROM workflow_activity a JOIN workflow_execution e ON e.id = a.execution_id WHERE e.workflow_type = 'paused_job'"), 1);
    assert!(one::<bool>("SELECT workflow_type_resume('paused_job')"));
    assert!(!one::<bool>("SELECT workflow_type_resume('paused_job')"), "not paused any more");
    run("SELECT workflow_dispatch()");
    for id in during.iter().chain([&delayed]) {
        assert_eq!(exec_status(id), "running");
    }
}

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

/// The ids of the activities a claim of `queue` gets now (up to 10).
fn claimable(queue: &str) -> Vec<Uuid> {
    Spi::connect(|c| {
        c.select(&format!("SELECT activity_id FROM workflow_claim('{queue}', 'w', 10)"), None, &[])
            .unwrap()
            .map(|r| r.get::<Uuid>(1).unwrap().unwrap())
            .collect()
    })
}

fn activity_of(execution: &Uuid) -> Uuid {
    one::<Uuid>(&format!("SELECT id FROM workflow_activity WHERE execution_id = '{execution}'"))
}

#[pg_test]
fn a_step_key_holds_activities_until_one_with_the_key_finishes() {
    run(r#"SELECT workflow_define('llm_steps', '{"steps": [{"name": "extract", "activity": "llm.extract",
        "queue": "llm", "concurrency_key": "input.doc", "max_running": 1, "retry": {"max_attempts": 1}}]}')"#);
    let a1 = one::<Uuid>(r#"SELECT workflow_start('llm_steps', '{"doc": "A"}')"#);
    let a2 = one::<Uuid>(r#"SELECT workflow_start('llm_steps', '{"doc": "A"}')"#);
    let a3 = one::<Uuid>(r#"SELECT workflow_start('llm_steps', '{"doc": "A"}')"#);
    let b1 = one::<Uuid>(r#"SELECT workflow_start('llm_steps', '{"doc": "B"}')"#);
    // Every execution runs; the steps of A after the first are held.
    assert_eq!(status(&a2)["steps"][0]["waiting_for"], json!({"reason": "concurrency_key", "key": "A"}));
    let mut first = claimable("llm");
    first.sort();
    let mut expected = vec![activity_of(&a1), activity_of(&b1)];
    expected.sort();
    assert_eq!(first, expected, "one of A, and B");
    // A1 completes: A2 (held longest) is released, A3 still held.
    assert!(complete(&activity_of(&a1), "1"));
    assert_eq!(claimable("llm"), vec![activity_of(&a2)]);
    // A2 fails for good (its execution fails): A3 takes the slot.
    run(&format!("SELECT workflow_fail_activity('{}', '\"no\"')", activity_of(&a2)));
    assert_eq!(exec_status(&a2), "failed");
    assert_eq!(claimable("llm"), vec![activity_of(&a3)]);
    // Retrying A2 schedules its step again, behind the running A3: held.
    assert!(one::<bool>(&format!("SELECT workflow_retry('{a2}')")));
    assert!(claimable("llm").is_empty());
    // Cancelling A3's execution frees the slot (its running step is cancelled).
    run(&format!("SELECT workflow_cancel('{a3}')"));
    assert_eq!(claimable("llm"), vec![activity_of(&a2)]);
}

#[pg_test]
fn a_step_without_its_key_fails_naming_it() {
    run(r#"SELECT workflow_define('llm_steps', '{"steps": [{"name": "extract", "activity": "llm.extract",
        "concurrency_key": "input.doc"}]}')"#);
    let id = one::<Uuid>(r#"SELECT workflow_start('llm_steps', '{"document": "A"}')"#);
    assert_eq!(exec_status(&id), "failed");
    let error = status(&id)["error"]["error"].clone();
    assert_eq!(error["type"], json!("ConcurrencyKeyMissing"));
    assert!(error["message"].as_str().unwrap().contains("input.doc"), "{error}");
}

#[pg_test]
fn a_key_on_a_map_step_holds_items_across_executions() {
    run(r#"SELECT workflow_define('per_account', '{"steps": [
        {"name": "chunk", "activity": "text.chunk", "queue": "prep"},
        {"name": "extract", "activity": "llm.extract", "queue": "llm", "depends_on": ["chunk"], "map": "chunk",
         "concurrency_key": "item.account", "max_running": 1}]}')"#);
    let id = one::<Uuid>("SELECT workflow_start('per_account')");
    let chunk = claimable("prep")[0];
    assert!(complete(&chunk, r#"[{"account": "a"}, {"account": "a"}, {"account": "b"}]"#));
    let step = |i: usize| one::<Uuid>(&format!("SELECT id FROM workflow_activity WHERE step_key = 'extract[{i}]'"));
    let mut first = claimable("llm");
    first.sort();
    let mut expected = vec![step(0), step(2)];
    expected.sort();
    assert_eq!(first, expected, "one item of account a, and b");
    assert!(complete(&step(0), "1"));
    assert_eq!(claimable("llm"), vec![step(1)]);
    assert!(complete(&step(1), "1"));
    assert!(complete(&step(2), "1"));
    assert_eq!(exec_status(&id), "completed");
    // An item without the key fails the map step, naming the item.
    let other = one::<Uuid>("SELECT workflow_start('per_account')");
    let chunk = claimable("prep")[0];
    assert!(complete(&chunk, r#"[{"account": "a"}, {"acct": "typo"}]"#));
    assert_eq!(exec_status(&other), "failed");
    let message = status(&other)["error"]["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.starts_with("item 1: concurrency_key \"item.account\""), "{message}");
}

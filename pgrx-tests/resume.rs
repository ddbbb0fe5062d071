// Resuming (workflow_retry) across children, maps and compensation, and the checks that
// keep a typo from running forever (issue 10). Each test breaks a run, resumes it, and
// checks that no completed step ran again: its row, output and attempt are unchanged and
// it is never claimable.

const KID: &str = r#"{"steps": [{"name": "c1", "activity": "kid.c1"},
    {"name": "c2", "activity": "kid.c2", "depends_on": ["c1"], "retry": {"max_attempts": 1}}]}"#;
const MOM: &str = r#"{"steps": [{"name": "spawn", "workflow": "kid"}, {"name": "after", "activity": "mom.after", "depends_on": ["spawn"]}]}"#;

/// (id, attempt, output, finished_at) of a step, to compare before and after a resume.
fn step_row(execution: &Uuid, key: &str) -> String {
    one::<String>(&format!(
        "SELECT concat_ws(' ', id, attempt, output, finished_at) FROM workflow_activity \
         WHERE execution_id = '{execution}' AND step_key = '{key}' AND status = 'completed'"
    ))
}

fn claimable_types() -> Vec<String> {
    Spi::connect(|c| {
        c.select(
            "SELECT coalesce(activity_type, step_key) FROM workflow_activity \
             WHERE status = 'scheduled' AND kind = 'task' ORDER BY 1",
            None,
            &[],
        )
        .unwrap()
        .map(|r| r.get::<String>(1).unwrap().unwrap())
        .collect()
    })
}

fn child_of(parent: &Uuid) -> Uuid {
    one::<Uuid>(&format!("SELECT id FROM workflow_execution WHERE parent_id = '{parent}'"))
}

#[pg_test]
fn a_parents_retry_resumes_its_failed_child_and_keeps_the_childs_completed_steps() {
    define("kid", KID);
    define("mom", MOM);
    let mom = one::<Uuid>("SELECT workflow_start('mom')");
    let kid = child_of(&mom);
    complete(&activity_id(&kid, "c1"), "\"one\"");
    let c1 = step_row(&kid, "c1");
    run(&format!("SELECT workflow_fail_activity('{}', '\"boom\"')", activity_id(&kid, "c2")));
    assert_eq!((exec_status(&kid), exec_status(&mom)), ("failed".into(), "failed".into()));

    assert!(one::<bool>(&format!("SELECT workflow_retry('{mom}')")));
    assert_eq!(one::<i64>("SELECT count(*) FROM workflow_execution WHERE workflow_type = 'kid'"), 1, "no second child");
    assert_eq!(exec_status(&kid), "running", "the same child runs again");
    assert_eq!(step_row(&kid, "c1"), c1, "c1 is kept as it was");
    assert_eq!(claimable_types(), vec!["kid.c2"], "only what did not complete is claimable");
    complete(&activity_id(&kid, "c2"), "\"two\"");
    assert_eq!(exec_status(&kid), "completed");
    assert_eq!(step_status(&mom, "spawn"), "completed");
    complete(&activity_id(&mom, "after"), "null");
    assert_eq!(exec_status(&mom), "completed");
    let spawn = one::<JsonB>(&format!(
        "SELECT output FROM workflow_activity WHERE execution_id = '{mom}' AND step_key = 'spawn'"
    ));
    assert_eq!(spawn.0, json!({"c2": "two"}));
}

#[pg_test]
fn a_parents_retry_resumes_its_cancelled_child() {
    define("kid", KID);
    define("mom", MOM);
    let mom = one::<Uuid>("SELECT workflow_start('mom')");
    let kid = child_of(&mom);
    complete(&activity_id(&kid, "c1"), "1");
    let c1 = step_row(&kid, "c1");
    run(&format!("SELECT workflow_cancel('{mom}')"));
    assert_eq!(exec_status(&kid), "cancelled");
    assert!(one::<bool>(&format!("SELECT workflow_retry('{mom}')")));
    assert_eq!(child_of(&mom), kid);
    assert_eq!(exec_status(&kid), "running");
    assert_eq!(step_row(&kid, "c1"), c1);
    assert_eq!(claimable_types(), vec!["kid.c2"]);
}

#[pg_test]
fn a_parents_retry_never_starts_a_second_child_for_the_same_step() {
    define("kid", r#"{"steps": [{"name": "c1", "activity": "kid.c1"}]}"#);
    define(
        "mom",
        r#"{"steps": [{"name": "spawn", "workflow": "kid"}, {"name": "side", "activity": "side", "retry": {"max_attempts": 1}}]}"#,
    );
    let mom = one::<Uuid>("SELECT workflow_start('mom')");
    let kid = child_of(&mom);
    // Another step fails the parent while the child runs: the child is cancelled.
    run(&format!("SELECT workflow_fail_activity('{}', '\"no\"')", activity_id(&mom, "side")));
    assert_eq!(exec_status(&kid), "cancelled");
    assert!(one::<bool>(&format!("SELECT workflow_retry('{mom}')")));
    complete(&activity_id(&kid, "c1"), "7");
    complete(&activity_id(&mom, "side"), "8");
    assert_eq!(exec_status(&mom), "completed");
    assert_eq!(one::<i64>("SELECT count(*) FROM workflow_execution WHERE workflow_type = 'kid'"), 1);
}

#[pg_test]
fn a_retry_runs_only_the_map_items_that_did_not_complete() {
    define(
        "fan",
        r#"{"steps": [{"name": "split", "activity": "split"},
            {"name": "each", "activity": "each", "depends_on": ["split"], "map": "split", "max_concurrency": 2,
             "retry": {"max_attempts": 1}}]}"#,
    );
    let id = one::<Uuid>("SELECT workflow_start('fan')");
    complete(&activity_id(&id, "split"), "[10, 20, 30, 40]");
    complete(&activity_id(&id, "each[0]"), "100");
    let item0 = step_row(&id, "each[0]");
    run(&format!("SELECT workflow_fail_activity('{}', '\"bad item\"')", activity_id(&id, "each[1]")));
    assert_eq!(exec_status(&id), "failed");
    assert!(one::<bool>(&format!("SELECT workflow_retry('{id}')")));
    assert_eq!(step_row(&id, "each[0]"), item0, "the completed item is kept");
    let open: Vec<String> = Spi::connect(|c| {
        c.select(
            &format!("SELECT step_key FROM workflow_activity WHERE execution_id = '{id}' AND status = 'scheduled' ORDER BY 1"),
            None,
            &[],
        )
        .unwrap()
        .map(|r| r.get::<String>(1).unwrap().unwrap())
        .collect()
    });
    assert_eq!(open, vec!["each[1]", "each[2]"], "the failed item again, and the next one within max_concurrency 2");
    for (i, out) in [(1, "200"), (2, "300")] {
        complete(&activity_id(&id, &format!("each[{i}]")), out);
    }
    complete(&activity_id(&id, "each[3]"), "400");
    assert_eq!(exec_status(&id), "completed");
    assert_eq!(output(&id)["each"], json!([100, 200, 300, 400]));
}

#[pg_test(error = "workflow type \"extraction_pipline\" is not defined")]
fn starting_an_undefined_type_is_an_error() {
    define("extraction_pipeline", r#"{"steps": [{"name": "a", "activity": "t"}]}"#);
    run("SELECT workflow_start('extraction_pipline')");
}

#[pg_test(
    error = "options.client_driven: workflow type \"declared\" is declared (workflow_define), so its definition drives it; use another type name for a client-driven execution"
)]
fn a_declared_type_cannot_be_started_client_driven() {
    define("declared", r#"{"steps": [{"name": "a", "activity": "t"}]}"#);
    run(r#"SELECT workflow_start('declared', '{}', NULL, '{"client_driven": true}')"#);
}

#[pg_test]
fn a_step_starting_an_undefined_workflow_fails_and_can_be_retried_once_defined() {
    define("mom", r#"{"steps": [{"name": "notify", "workflow": "send_digest"}]}"#);
    let id = one::<Uuid>("SELECT workflow_start('mom')");
    assert_eq!(exec_status(&id), "failed", "nothing waits forever for a child nobody drives");
    let error = status(&id)["error"].clone();
    assert_eq!(error["step"], json!("notify"));
    assert_eq!(error["error"]["type"], json!("UndefinedWorkflow"));
    assert!(error["error"]["message"].as_str().unwrap().contains("\"send_digest\""));
    define("send_digest", r#"{"steps": [{"name": "send", "activity": "mail"}]}"#);
    assert!(one::<bool>(&format!("SELECT workflow_retry('{id}')")));
    complete(&activity_id(&child_of(&id), "send"), "1");
    assert_eq!(exec_status(&id), "completed");
}

#[pg_test]
fn compensation_runs_on_the_compensated_steps_queue_or_the_one_it_names() {
    define(
        "saga",
        r#"{"steps": [{"name": "fetch", "activity": "http.fetch", "queue": "io"},
            {"name": "store", "activity": "db.store", "depends_on": ["fetch"], "queue": "db"},
            {"name": "charge", "activity": "pay", "depends_on": ["store"], "retry": {"max_attempts": 1}}],
            "compensate": {"fetch": "http.cleanup", "store": {"activity": "db.unstore", "queue": "cleanup"}}}"#,
    );
    let id = one::<Uuid>("SELECT workflow_start('saga')");
    complete(&activity_id(&id, "fetch"), "1");
    complete(&activity_id(&id, "store"), "2");
    run(&format!("SELECT workflow_fail_activity('{}', '\"declined\"')", activity_id(&id, "charge")));
    let queue = |key: &str| {
        one::<String>(&format!(
            "SELECT queue FROM workflow_activity WHERE execution_id = '{id}' AND step_key = '{key}'"
        ))
    };
    assert_eq!(queue("compensate:store"), "cleanup", "the queue the entry names");
    complete(&activity_id(&id, "compensate:store"), "null");
    assert_eq!(queue("compensate:fetch"), "io", "else the compensated step's own queue");
}

const SAGA: &str = r#"{"steps": [{"name": "book", "activity": "book"}, {"name": "note", "activity": "note", "depends_on": ["book"]},
    {"name": "charge", "activity": "pay", "depends_on": ["note"], "retry": {"max_attempts": 1}}],
    "compensate": {"book": "unbook"}}"#;

/// A saga whose `charge` failed after `book` and `note` completed: `compensate:book` is scheduled.
fn failed_saga() -> Uuid {
    define("saga", SAGA);
    let id = one::<Uuid>("SELECT workflow_start('saga')");
    complete(&activity_id(&id, "book"), "\"B1\"");
    complete(&activity_id(&id, "note"), "\"N1\"");
    run(&format!("SELECT workflow_fail_activity('{}', '\"declined\"')", activity_id(&id, "charge")));
    assert_eq!(step_status(&id, "compensate:book"), "scheduled");
    id
}

#[pg_test(error = "cannot retry execution: its compensation is still running")]
fn a_retry_is_refused_while_compensation_runs() {
    let id = failed_saga();
    // The message names the execution; take it out so the expected text is fixed.
    run(&format!(
        "DO $$ BEGIN PERFORM workflow_retry('{id}'); EXCEPTION WHEN object_not_in_prerequisite_state THEN \
         RAISE EXCEPTION '%', replace(replace(SQLERRM, '{id} (saga)', ''), ' execution ', ' execution'); END $$"
    ));
}

#[pg_test]
fn after_compensation_a_retry_reruns_what_it_undid_and_keeps_the_rest() {
    let id = failed_saga();
    let note = step_row(&id, "note");
    complete(&activity_id(&id, "compensate:book"), "null");
    assert_eq!(status(&id)["compensation"], json!("completed"));
    assert!(one::<bool>(&format!("SELECT workflow_retry('{id}')")));
    let _ = note;
    assert_eq!(claimable_types(), vec!["book"], "the undone step runs again, and what follows it after it");
    complete(&activity_id(&id, "book"), "\"B2\"");
    let note_input =
        one::<JsonB>(&format!("SELECT input FROM workflow_activity WHERE execution_id = '{id}' AND step_key = 'note'"));
    assert_eq!(note_input.0["book"], json!("B2"), "note runs again on the new booking");
}

#[pg_test]
fn after_compensation_a_retry_keeps_steps_that_were_not_undone() {
    define(
        "saga2",
        r#"{"steps": [{"name": "audit", "activity": "audit"}, {"name": "book", "activity": "book"},
            {"name": "charge", "activity": "pay", "depends_on": ["book", "audit"], "retry": {"max_attempts": 1}}],
            "compensate": {"book": "unbook"}}"#,
    );
    let id = one::<Uuid>("SELECT workflow_start('saga2')");
    complete(&activity_id(&id, "audit"), "1");
    complete(&activity_id(&id, "book"), "2");
    let audit = step_row(&id, "audit");
    run(&format!("SELECT workflow_fail_activity('{}', '\"declined\"')", activity_id(&id, "charge")));
    complete(&activity_id(&id, "compensate:book"), "null");
    assert!(one::<bool>(&format!("SELECT workflow_retry('{id}')")));
    assert_eq!(step_row(&id, "audit"), audit, "audit did not depend on book and was not undone");
    assert_eq!(claimable_types(), vec!["book"]);
}

#[pg_test]
fn a_child_whose_step_compensation_undid_runs_again_as_a_new_child() {
    define("kid", r#"{"steps": [{"name": "c1", "activity": "kid.c1"}]}"#);
    define(
        "mom",
        r#"{"steps": [{"name": "spawn", "workflow": "kid"}, {"name": "pay", "activity": "pay", "depends_on": ["spawn"],
            "retry": {"max_attempts": 1}}], "compensate": {"spawn": "unspawn"}}"#,
    );
    let mom = one::<Uuid>("SELECT workflow_start('mom')");
    let first = child_of(&mom);
    complete(&activity_id(&first, "c1"), "1");
    run(&format!("SELECT workflow_fail_activity('{}', '\"declined\"')", activity_id(&mom, "pay")));
    complete(&activity_id(&mom, "compensate:spawn"), "null");
    assert!(one::<bool>(&format!("SELECT workflow_retry('{mom}')")));
    let second =
        one::<Uuid>(&format!("SELECT id FROM workflow_execution WHERE parent_id = '{mom}' AND status = 'running'"));
    assert_ne!(first, second, "the undone child's step starts a new child");
    assert_eq!(exec_status(&first), "completed", "the old child keeps its history");
}

#[pg_test]
fn a_child_retried_on_its_own_is_reused_when_the_parent_is_retried() {
    define("kid", KID);
    define("mom", MOM);
    let mom = one::<Uuid>("SELECT workflow_start('mom')");
    let kid = child_of(&mom);
    complete(&activity_id(&kid, "c1"), "\"one\"");
    run(&format!("SELECT workflow_fail_activity('{}', '\"boom\"')", activity_id(&kid, "c2")));
    // The child is retried and finishes on its own; the parent stays failed.
    assert!(one::<bool>(&format!("SELECT workflow_retry('{kid}')")));
    complete(&activity_id(&kid, "c2"), "\"two\"");
    assert_eq!((exec_status(&kid), exec_status(&mom)), ("completed".into(), "failed".into()));
    let c1 = step_row(&kid, "c1");
    assert!(one::<bool>(&format!("SELECT workflow_retry('{mom}')")));
    assert_eq!(one::<i64>("SELECT count(*) FROM workflow_execution WHERE workflow_type = 'kid'"), 1, "no second child");
    assert_eq!(step_row(&kid, "c1"), c1);
    assert_eq!(step_status(&mom, "spawn"), "completed", "the parent's step takes the child's result");
    assert_eq!(claimable_types(), vec!["mom.after"]);
}

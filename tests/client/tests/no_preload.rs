//! Without `shared_preload_libraries = 'pg_workflow'` (README: Install, managed Postgres),
//! against a cluster that preloads only pg_cron (PGWORKFLOW_TEST_NO_PRELOAD_URL):
//! LISTENing workers still hear of new work, because the transactions that make work
//! claimable notify themselves (once per queue per transaction) and `workflow_dispatch()`
//! announces what time made due; timers, retries and `sql` steps move in each of the
//! three ways the README gives to call it (pg_cron, a worker's interval, a psql loop).

use pg_workflow_client_tests::{
    cluster_url, connect, fresh_database_on, next_notification, notifications_before_marker, wait_until_claim_waits,
};
use postgres::Client;
use std::time::{Duration, Instant};

const URL: &str = "PGWORKFLOW_TEST_NO_PRELOAD_URL";

fn database(name: &str) -> String {
    let url = fresh_database_on(&cluster_url(URL), name);
    let preloaded: String = connect(&url).query_one("SHOW shared_preload_libraries", &[]).unwrap().get(0);
    assert!(!preloaded.contains("pg_workflow"), "{URL} must name a cluster without the preload, not {preloaded:?}");
    url
}

fn listener(url: &str) -> Client {
    let mut listener = connect(url);
    listener
        .batch_execute(
            "LISTEN workflow_activity_ready; LISTEN workflow_execution_finished; LISTEN workflow_execution_ready",
        )
        .unwrap();
    listener
}

/// Waits for a notification on `channel` with `payload`, skipping others, for at most `bound`.
fn wait_for(listener: &mut Client, channel: &str, payload: &str, bound: Duration) -> bool {
    let start = Instant::now();
    while let Some(left) = bound.checked_sub(start.elapsed()) {
        match next_notification(listener, left) {
            Some((c, p)) if c == channel && p == payload => return true,
            Some(_) => continue,
            None => return false,
        }
    }
    false
}

fn ready(queue: &str) -> (String, String) {
    ("workflow_activity_ready".to_owned(), queue.to_owned())
}

#[test]
fn a_start_notifies_its_queue_once_per_transaction_and_only_if_it_commits() {
    let url = database("pgw_np_start");
    let mut db = connect(&url);
    let mut listener = listener(&url);
    db.batch_execute(
        r#"SELECT workflow_define('np_start', '{"steps": [{"name": "a", "activity": "a", "queue": "np_q"}]}')"#,
    )
    .unwrap();

    // Three starts in one transaction: one notification.
    db.batch_execute(
        "BEGIN; SELECT workflow_start('np_start'); SELECT workflow_start('np_start'); \
         SELECT workflow_start('np_start'); COMMIT",
    )
    .unwrap();
    assert_eq!(notifications_before_marker(&mut listener, &mut db), vec![ready("np_q")]);

    // Rolled back: none.
    db.batch_execute("BEGIN; SELECT workflow_start('np_start'); ROLLBACK").unwrap();
    assert_eq!(notifications_before_marker(&mut listener, &mut db), vec![]);

    // A completion that makes the next step claimable notifies that step's queue, and
    // the last one notifies that the execution finished.
    db.batch_execute(
        r#"SELECT workflow_define('np_two', '{"steps": [{"name": "a", "activity": "a", "queue": "np_first"},
            {"name": "b", "activity": "b", "queue": "np_second", "depends_on": ["a"]}]}')"#,
    )
    .unwrap();
    let id: String = db.query_one("SELECT workflow_start('np_two')::text", &[]).unwrap().get(0);
    notifications_before_marker(&mut listener, &mut db);
    for (queue, then) in
        [("np_first", ready("np_second")), ("np_second", ("workflow_execution_finished".into(), id.clone()))]
    {
        let row = db
            .query_one("SELECT activity_id::text, attempt FROM workflow_claim($1, 'w', max_count => 1)", &[&queue])
            .unwrap();
        let (activity, attempt): (String, i32) = (row.get(0), row.get(1));
        db.execute("SELECT workflow_complete_activity($1::text::uuid, '{}', attempt => $2)", &[&activity, &attempt])
            .unwrap();
        assert_eq!(notifications_before_marker(&mut listener, &mut db), vec![then]);
    }
}

#[test]
fn a_retry_is_announced_by_the_first_workflow_dispatch_after_its_backoff() {
    let url = database("pgw_np_retry");
    let mut db = connect(&url);
    let mut listener = listener(&url);
    db.batch_execute(
        r#"SELECT workflow_define('np_retry', '{"steps": [{"name": "a", "activity": "a", "queue": "np_retry",
             "retry": {"max_attempts": 3, "initial_interval": "2s", "jitter": 0}}]}');
           SELECT workflow_start('np_retry')"#,
    )
    .unwrap();
    notifications_before_marker(&mut listener, &mut db);
    let row = db.query_one("SELECT activity_id::text, attempt FROM workflow_claim('np_retry', 'w')", &[]).unwrap();
    let (activity, attempt): (String, i32) = (row.get(0), row.get(1));
    let outcome: String = db
        .query_one(
            r#"SELECT workflow_fail_activity($1::text::uuid, '{"type": "Flaky", "message": "try again"}', $2)"#,
            &[&activity, &attempt],
        )
        .unwrap()
        .get(0);
    assert_eq!(outcome, "retrying");
    // The failure itself announces nothing: the retry is not claimable yet.
    assert_eq!(notifications_before_marker(&mut listener, &mut db), vec![]);

    // A dispatch before the backoff ends announces nothing either (checked only when the
    // statement really ran before the retry was due).
    let due_later: bool = db
        .query_one(
            "SELECT (SELECT scheduled_at > clock_timestamp() FROM workflow_activity WHERE id = $1::text::uuid) \
             FROM (SELECT workflow_dispatch()) d",
            &[&activity],
        )
        .unwrap()
        .get(0);
    let early = notifications_before_marker(&mut listener, &mut db);
    if due_later {
        assert_eq!(early, vec![]);
    }

    // Once due, the next dispatch announces the queue.
    let due: bool = db
        .query_one(
            "SELECT scheduled_at <= clock_timestamp() FROM workflow_activity WHERE id = $1::text::uuid",
            &[&activity],
        )
        .unwrap()
        .get(0);
    if !due {
        db.batch_execute(
            "SELECT pg_sleep(greatest(0, extract(epoch FROM (SELECT scheduled_at FROM workflow_activity) - clock_timestamp()) + 0.05))",
        )
        .unwrap();
    }
    db.batch_execute("SELECT workflow_dispatch()").unwrap();
    assert_eq!(notifications_before_marker(&mut listener, &mut db), vec![ready("np_retry")]);
}

/// A sleep, then an sql step, then a task: the task's queue is announced only after
/// something ran `workflow_dispatch()` twice (the sleep ends, the sql step runs).
fn start_timer_workflow(db: &mut Client, name: &str) -> String {
    db.batch_execute(&format!(
        r#"CREATE TABLE IF NOT EXISTS np_effects (execution_id uuid, at timestamptz DEFAULT clock_timestamp());
           SELECT workflow_define('{name}', '{{"steps": [
             {{"name": "nap", "sleep": "1s"}},
             {{"name": "record", "sql": "INSERT INTO np_effects (execution_id) SELECT ($1->>''execution_id'')::uuid", "depends_on": ["nap"]}},
             {{"name": "after", "activity": "after", "queue": "{name}", "depends_on": ["record"]}}]}}')"#
    ))
    .unwrap();
    db.query_one(&format!("SELECT workflow_start('{name}')::text"), &[]).unwrap().get(0)
}

fn timer_workflow_moved(db: &mut Client, listener: &mut Client, queue: &str, bound: Duration) {
    assert!(wait_for(listener, "workflow_activity_ready", queue, bound), "the queue {queue} was not announced");
    let runs: i64 = db.query_one("SELECT count(*) FROM np_effects", &[]).unwrap().get(0);
    assert_eq!(runs, 1, "the sql step ran once");
    let claimed = db.query(&format!("SELECT 1 FROM workflow_claim('{queue}', 'w')"), &[]).unwrap();
    assert_eq!(claimed.len(), 1);
}

#[test]
fn a_worker_that_calls_workflow_dispatch_on_an_interval_moves_timers_and_sql_steps() {
    let url = database("pgw_np_interval");
    let mut db = connect(&url);
    let mut listener = listener(&url);
    start_timer_workflow(&mut db, "np_interval");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dispatcher = {
        let (url, stop) = (url.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut worker = connect(&url);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                worker.batch_execute("SELECT workflow_dispatch()").unwrap();
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    timer_workflow_moved(&mut db, &mut listener, "np_interval", Duration::from_secs(30));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    dispatcher.join().unwrap();
}

#[test]
fn a_psql_loop_moves_timers_and_sql_steps() {
    let url = database("pgw_np_psql");
    let mut db = connect(&url);
    let mut listener = listener(&url);
    start_timer_workflow(&mut db, "np_psql");
    // The README's loop: the text it pipes into psql.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let line = readme.lines().find(|l| l.contains("\\watch")).expect("the README gives a psql loop with \\watch");
    let script = line.split('\'').nth(1).expect("echo '<query> \\watch 1' | psql ...");
    let bindir =
        String::from_utf8(std::process::Command::new("pg_config").arg("--bindir").output().unwrap().stdout).unwrap();
    let mut psql = std::process::Command::new(format!("{}/psql", bindir.trim()))
        .args(["-X", "-q", &url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start psql");
    {
        use std::io::Write;
        let mut stdin = psql.stdin.take().unwrap();
        writeln!(stdin, "{script}").unwrap();
    }
    timer_workflow_moved(&mut db, &mut listener, "np_psql", Duration::from_secs(30));
    psql.kill().unwrap();
    psql.wait().unwrap();
}

#[test]
fn pg_cron_moves_timers_and_sql_steps_once_a_minute() {
    let base = cluster_url(URL);
    // pg_cron runs in database postgres (cron.database_name) and reaches this one with
    // cron.schedule_in_database, as the README says.
    let url = database("pgw_np_cron");
    let mut db = connect(&url);
    let mut listener = listener(&url);
    let mut cron = connect(&format!("{base} dbname=postgres"));
    cron.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_cron").unwrap();
    cron.batch_execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'pg_workflow_dispatch'").unwrap();
    let version: String =
        cron.query_one("SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'", &[]).unwrap().get(0);
    let schedule = if version.starts_with("1.4") { "* * * * *" } else { "1 seconds" };
    cron.execute(
        "SELECT cron.schedule_in_database('pg_workflow_dispatch', $1, 'SELECT workflow_dispatch()', 'pgw_np_cron')",
        &[&schedule],
    )
    .unwrap();
    start_timer_workflow(&mut db, "np_cron");
    // Two runs are needed (the sleep ends, then the sql step runs): up to two minutes.
    timer_workflow_moved(&mut db, &mut listener, "np_cron", Duration::from_secs(150));
    cron.batch_execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'pg_workflow_dispatch'").unwrap();
}

#[test]
fn workflow_await_and_client_driven_executions_work_without_the_preload() {
    let url = database("pgw_np_await");
    let mut db = connect(&url);
    let mut listener = listener(&url);
    let id: String = db
        .query_one(r#"SELECT workflow_start('np_cd', options => '{"client_driven": true}')::text"#, &[])
        .unwrap()
        .get(0);
    db.execute(
        "SELECT workflow_schedule_activity($1::text::uuid, 'one', 'np_cd_task', '{}', '{\"queue\": \"np_cd\"}')",
        &[&id],
    )
    .unwrap();
    // The start says the new execution is ready to be driven; the step is claimable.
    let execution_ready = ("workflow_execution_ready".to_owned(), id.clone());
    assert_eq!(notifications_before_marker(&mut listener, &mut db), vec![execution_ready.clone(), ready("np_cd")]);
    let row = db.query_one("SELECT activity_id::text, attempt FROM workflow_claim('np_cd', 'w')", &[]).unwrap();
    let (activity, attempt): (String, i32) = (row.get(0), row.get(1));
    db.execute("SELECT workflow_complete_activity($1::text::uuid, '1', attempt => $2)", &[&activity, &attempt])
        .unwrap();
    assert_eq!(notifications_before_marker(&mut listener, &mut db), vec![execution_ready]);
    // Another connection awaits while this one ends the execution.
    let waiter = {
        let (url, id) = (url.clone(), id.clone());
        std::thread::spawn(move || {
            let status: String = connect(&url)
                .query_one("SELECT workflow_await($1::text::uuid, '60 seconds')->>'status'", &[&id])
                .unwrap()
                .get(0);
            status
        })
    };
    db.execute("SELECT workflow_complete($1::text::uuid, '{\"done\": true}')", &[&id]).unwrap();
    assert_eq!(waiter.join().unwrap(), "completed");
    assert!(wait_for(&mut listener, "workflow_execution_finished", &id, Duration::from_secs(30)));
}

#[test]
fn a_dispatch_callers_temporary_table_cannot_stand_in_for_a_steps_table() {
    // Without the preload, workflow_dispatch() runs sql steps in its caller's session.
    // A caller's temporary table named like the definer's table (and open to everyone)
    // must not receive the step's rows: the step's search_path ends with pg_temp.
    let url = database("pgw_np_temp");
    let mut db = connect(&url);
    db.batch_execute(
        "DROP ROLE IF EXISTS np_alice; DROP ROLE IF EXISTS np_bob; \
         CREATE ROLE np_alice LOGIN; CREATE ROLE np_bob LOGIN; \
         SELECT workflow_grant('np_alice', 'admin'), workflow_grant('np_alice', 'starter'), \
                workflow_grant('np_bob', 'admin'); \
         CREATE TABLE np_private (secret text); ALTER TABLE np_private OWNER TO np_alice",
    )
    .unwrap();
    let base = cluster_url(URL);
    let mut alice = connect(&format!("{base} dbname=pgw_np_temp user=np_alice"));
    alice
        .batch_execute(
            r#"SELECT workflow_define('np_secret', '{"steps": [
                 {"name": "keep", "sql": "INSERT INTO np_private VALUES (''secret'')"}]}');
               SELECT workflow_start('np_secret')"#,
        )
        .unwrap();
    let mut bob = connect(&format!("{base} dbname=pgw_np_temp user=np_bob"));
    bob.batch_execute(
        "CREATE TEMP TABLE np_private (secret text); GRANT ALL ON np_private TO PUBLIC; \
         SELECT workflow_dispatch()",
    )
    .unwrap();
    let leaked: i64 = bob.query_one("SELECT count(*) FROM pg_temp.np_private", &[]).unwrap().get(0);
    let kept: i64 = db.query_one("SELECT count(*) FROM public.np_private", &[]).unwrap().get(0);
    assert_eq!((leaked, kept), (0, 1), "the step wrote into the dispatching session's temporary table");
    drop((alice, bob));
    db.batch_execute(
        "DROP TABLE np_private; DELETE FROM workflow_execution; DELETE FROM workflow_definition; \
         DROP OWNED BY np_alice, np_bob; DROP ROLE np_alice; DROP ROLE np_bob",
    )
    .unwrap();
}

/// Without the preload nobody wakes a waiting claim: `workflow.preloaded` says so (the
/// TypeScript worker then LISTENs), and `workflow_claim_wait` polls, so it still takes
/// work that a commit made claimable while it waited.
#[test]
fn a_waiting_claim_polls_and_the_setting_says_why() {
    let url = database("pgw_np_claim_wait");
    let mut db = connect(&url);
    // Unknown until the library is loaded (a worker's current_setting(.., true) is NULL
    // then), off after.
    let preloaded = |db: &mut Client| -> Option<String> {
        db.query_one("SELECT current_setting('workflow.preloaded', true)", &[]).unwrap().get(0)
    };
    assert_eq!(preloaded(&mut db), None);
    db.batch_execute(
        r#"SELECT workflow_define('np_wait', '{"steps": [{"name": "a", "activity": "a", "queue": "np_wait_q"}]}')"#,
    )
    .unwrap();
    assert_eq!(preloaded(&mut db).as_deref(), Some("off"));
    let mut waiter = connect(&url);
    let pid: i32 = waiter.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let call = std::thread::spawn(move || {
        waiter
            .query("SELECT step_key FROM workflow_claim_wait('np_wait_q', 'w', 1, '1 minute', NULL, '30 seconds')", &[])
            .unwrap()
            .len()
    });
    // Once it sleeps between attempts, the work is committed.
    wait_until_claim_waits(&mut db, pid);
    db.batch_execute("SELECT workflow_start('np_wait')").unwrap();
    assert_eq!(call.join().unwrap(), 1);
}

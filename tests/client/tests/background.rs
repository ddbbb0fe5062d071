//! The background worker, through real connections: nobody calls workflow_dispatch()
//! here. Waits are on conditions (a notification, a row) with generous bounds, never a
//! fixed sleep; the bounds only keep a broken build from hanging CI.

use fallible_iterator::FallibleIterator;
use pg_workflow_client_tests::{base_url, cluster, connect, fresh_database};
use postgres::Client;
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(30);

/// Waits until `query` returns true.
fn wait_for(db: &mut Client, query: &str, what: &str) {
    let start = Instant::now();
    loop {
        if db.query_one(query, &[]).unwrap().get::<_, bool>(0) {
            return;
        }
        assert!(start.elapsed() < BOUND, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The next notification on `channel`, or a panic after BOUND.
fn next_notification(db: &mut Client, channel: &str) -> String {
    let start = Instant::now();
    loop {
        let left = BOUND.saturating_sub(start.elapsed());
        assert!(!left.is_zero(), "no notification on {channel}");
        let mut notifications = db.notifications();
        let mut it = notifications.timeout_iter(left);
        if let Some(n) = it.next().unwrap() {
            if n.channel() == channel {
                return n.payload().to_owned();
            }
        }
    }
}

#[test]
fn listeners_hear_of_new_work_and_finished_executions() {
    let url = fresh_database("pgw_bg_listen");
    let mut listener = connect(&url);
    listener.batch_execute("LISTEN workflow_activity_ready; LISTEN workflow_execution_finished").unwrap();
    let mut db = connect(&url);
    db.batch_execute(
        r#"SELECT workflow_define('one', '{"steps": [{"name": "a", "activity": "t", "queue": "emails"}]}')"#,
    )
    .unwrap();
    let id: String = db.query_one("SELECT workflow_start('one')::text", &[]).unwrap().get(0);
    assert_eq!(next_notification(&mut listener, "workflow_activity_ready"), "emails");
    db.batch_execute("SELECT workflow_complete_activity(activity_id, '1') FROM workflow_claim('emails', 'w')").unwrap();
    assert_eq!(next_notification(&mut listener, "workflow_execution_finished"), id);
}

#[test]
fn a_retry_and_an_expired_lease_come_back_without_anyone_dispatching() {
    let url = fresh_database("pgw_bg_retry");
    let mut listener = connect(&url);
    let mut db = connect(&url);
    db.batch_execute(
        r#"SELECT workflow_define('flaky', '{"steps": [{"name": "a", "activity": "t",
             "retry": {"max_attempts": 5, "initial_interval": "300ms", "jitter": 0}}]}');
           SELECT workflow_start('flaky');"#,
    )
    .unwrap();
    let outcome: String = db
        .query_one(
            "SELECT workflow_fail_activity(activity_id, '\"503\"', attempt) FROM workflow_claim('default', 'w')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(outcome, "retrying");
    listener.batch_execute("LISTEN workflow_activity_ready").unwrap();
    // The dispatcher announces the retry when its backoff has passed (a notice of the
    // start may still arrive first: it proves nothing, so wait for one after the due time).
    loop {
        assert_eq!(next_notification(&mut listener, "workflow_activity_ready"), "default");
        let due: bool = db.query_one("SELECT scheduled_at <= now() FROM workflow_activity", &[]).unwrap().get(0);
        if due {
            break;
        }
    }
    let attempt: i32 =
        db.query_one("SELECT attempt FROM workflow_claim('default', 'w', 1, '200 milliseconds')", &[]).unwrap().get(0);
    assert_eq!(attempt, 2);
    // Attempt 2 is never finished: its lease expires and the dispatcher retries it.
    wait_for(
        &mut db,
        "SELECT status = 'scheduled' AND error->>'type' = 'Timeout' FROM workflow_activity",
        "lease expiry",
    );
    assert_eq!(next_notification(&mut listener, "workflow_activity_ready"), "default");
}

#[test]
fn timers_and_await_work_without_dispatch() {
    let url = fresh_database("pgw_bg_timer");
    let mut db = connect(&url);
    db.batch_execute(r#"SELECT workflow_define('nap', '{"steps": [{"name": "pause", "sleep": "200ms"}]}')"#).unwrap();
    let id: String = db.query_one("SELECT workflow_start('nap')::text", &[]).unwrap().get(0);
    let status: serde_json::Value = db
        .query_one("SELECT workflow_await($1::text::uuid, '20 seconds')::text", &[&id])
        .map(|r| serde_json::from_str(&r.get::<_, String>(0)).unwrap())
        .unwrap();
    assert_eq!(status["status"], "completed", "the await returns once the sleep has fired");
    let sdk: String = db
        .query_one(r#"SELECT workflow_start('sdk', '{}', NULL, '{"client_driven": true}')::text"#, &[])
        .unwrap()
        .get(0);
    let still: serde_json::Value = db
        .query_one("SELECT workflow_await($1::text::uuid, '50 milliseconds')::text", &[&sdk])
        .map(|r| serde_json::from_str(&r.get::<_, String>(0)).unwrap())
        .unwrap();
    assert_eq!(still["status"], "running", "an await times out on an execution that does not finish");
}

/// The pid of this database's sql runner while it sleeps inside a step.
fn runner_sleeping_in_a_step(db: &mut Client) -> i32 {
    wait_for(
        db,
        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pg_workflow sql runner' \
         AND datname = current_database() AND wait_event = 'PgSleep')",
        "the runner to start the step",
    );
    db.query_one(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_workflow sql runner' \
         AND datname = current_database() AND wait_event = 'PgSleep'",
        &[],
    )
    .unwrap()
    .get(0)
}

/// An sql step that records which process ran it, and sleeps for `first_sleep` seconds
/// the first time it runs only (a sequence counts runs across rollbacks).
fn define_slow_effect(db: &mut Client, first_sleep: u32) {
    db.batch_execute(&format!(
        r#"CREATE TABLE effects (n int, pid int);
           CREATE SEQUENCE runs;
           CREATE FUNCTION slow_effect(input jsonb) RETURNS int LANGUAGE plpgsql AS $$
           BEGIN
               INSERT INTO effects VALUES ((input->'input'->>'n')::int, pg_backend_pid());
               IF nextval('runs') = 1 THEN PERFORM pg_sleep({first_sleep}); END IF;
               RETURN (SELECT count(*) FROM effects);
           END $$;
           SELECT workflow_define('effectful', '{{"steps": [{{"name": "apply", "sql": "SELECT slow_effect($1)"}}]}}');"#
    ))
    .unwrap();
}

#[test]
fn an_sql_step_runs_exactly_once_even_when_its_runner_is_killed_mid_statement() {
    let url = fresh_database("pgw_bg_sql");
    let mut db = connect(&url);
    define_slow_effect(&mut db, 60);
    let started: String = db.query_one("SELECT pg_postmaster_start_time()::text", &[]).unwrap().get(0);
    let id: String = db.query_one(r#"SELECT workflow_start('effectful', '{"n": 7}')::text"#, &[]).unwrap().get(0);
    let killed = runner_sleeping_in_a_step(&mut db);
    let terminated: bool = db.query_one("SELECT pg_terminate_backend($1)", &[&killed]).unwrap().get(0);
    assert!(terminated);
    // SIGTERM interrupts the running statement: the runner is gone long before its
    // 60-second sleep would have ended.
    wait_for(
        &mut db,
        &format!("SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = {killed})"),
        "the terminated runner to exit mid-statement",
    );
    wait_for(&mut db, &format!("SELECT status = 'completed' FROM workflow_execution WHERE id = '{id}'"), "completion");
    let rows = db.query("SELECT n, pid FROM effects", &[]).unwrap();
    assert_eq!(rows.len(), 1, "the killed run's effect was rolled back with it, the step applied once");
    let (n, pid): (i32, i32) = (rows[0].get(0), rows[0].get(1));
    assert_eq!(n, 7);
    assert_ne!(pid, killed, "a new runner applied the step, not the one that was terminated");
    let runs: i64 = db.query_one("SELECT last_value FROM runs", &[]).unwrap().get(0);
    assert_eq!(runs, 2, "the step ran twice: interrupted, then whole");
    let output: String = db.query_one("SELECT output::text FROM workflow_activity", &[]).unwrap().get(0);
    assert_eq!(output, "1");
    let now: String = db.query_one("SELECT pg_postmaster_start_time()::text", &[]).unwrap().get(0);
    assert_eq!(now, started, "a runner's FATAL exit is no crash of the server");
}

#[test]
fn a_fast_shutdown_interrupts_a_running_sql_step() {
    let url = fresh_database("pgw_bg_sql_stop");
    let mut db = connect(&url);
    // Without the interrupt, the stop would wait out the step and pg_ctl would give up
    // after its 60 seconds.
    define_slow_effect(&mut db, 600);
    let id: String = db.query_one(r#"SELECT workflow_start('effectful', '{"n": 1}')::text"#, &[]).unwrap().get(0);
    runner_sleeping_in_a_step(&mut db);
    drop(db);
    // Fails if the fast shutdown does not finish while the step runs.
    cluster("restart");
    let mut db = connect(&url);
    wait_for(&mut db, &format!("SELECT status = 'completed' FROM workflow_execution WHERE id = '{id}'"), "completion");
    let effects: i64 = db.query_one("SELECT count(*) FROM effects", &[]).unwrap().get(0);
    assert_eq!(effects, 1, "the interrupted run left nothing behind");
}

#[test]
fn an_sql_step_has_only_its_definers_rights() {
    let url = fresh_database("pgw_bg_rights");
    let mut admin = connect(&url);
    admin
        .batch_execute(
            r#"DROP ROLE IF EXISTS pgw_alice;
               CREATE ROLE pgw_alice LOGIN;
               GRANT ALL ON ALL TABLES IN SCHEMA public TO pgw_alice;
               GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO pgw_alice;
               CREATE TABLE secret (v text); INSERT INTO secret VALUES ('s3cr3t');
               REVOKE ALL ON secret FROM pgw_alice;"#,
        )
        .unwrap();
    let mut alice = connect(&format!("{url} user=pgw_alice"));
    alice
        .batch_execute(
            r#"SELECT workflow_define('peek', '{"steps": [{"name": "read", "sql": "SELECT v FROM secret", "retry": {"max_attempts": 1}}]}');
               SELECT workflow_define('escalate', '{"steps": [{"name": "become", "sql": "SET ROLE postgres", "retry": {"max_attempts": 1}}]}');"#,
        )
        .unwrap();
    // Started by the superuser, run by a superuser worker: still only alice's rights.
    for (workflow, sqlstate) in [("peek", "42501"), ("escalate", "42501")] {
        let id: String = admin.query_one(&format!("SELECT workflow_start('{workflow}')::text"), &[]).unwrap().get(0);
        wait_for(&mut admin, &format!("SELECT status = 'failed' FROM workflow_execution WHERE id = '{id}'"), workflow);
        let code: String = admin
            .query_one(&format!("SELECT error->'error'->>'sqlstate' FROM workflow_execution WHERE id = '{id}'"), &[])
            .unwrap()
            .get(0);
        assert_eq!(code, sqlstate, "{workflow}");
    }
    drop(alice);
    admin.batch_execute("DROP OWNED BY pgw_alice CASCADE").unwrap();
}

#[test]
fn dispatchers_in_two_databases_work_independently() {
    let urls = [fresh_database("pgw_bg_db_one"), fresh_database("pgw_bg_db_two")];
    for url in &urls {
        connect(url)
            .batch_execute(r#"SELECT workflow_define('nap', '{"steps": [{"name": "pause", "sleep": "100ms"}]}'); SELECT workflow_start('nap');"#)
            .unwrap();
    }
    for url in &urls {
        wait_for(&mut connect(url), "SELECT bool_and(status = 'completed') FROM workflow_execution", url);
    }
    let mut admin = connect(&format!("{} dbname=postgres", base_url()));
    let dispatchers: i64 = admin
        .query_one(
            "SELECT count(DISTINCT datname) FROM pg_stat_activity WHERE backend_type = 'pg_workflow dispatcher' \
             AND datname IN ('pgw_bg_db_one', 'pgw_bg_db_two')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(dispatchers, 2);
}

#[test]
fn retention_deletes_old_finished_executions() {
    let url = fresh_database("pgw_bg_retention");
    let mut db = connect(&url);
    db.batch_execute(
        r#"SELECT workflow_define('quick', '{"steps": [{"name": "a", "activity": "t"}]}');
           SELECT workflow_start('quick'), workflow_start('quick');
           SELECT workflow_complete_activity(activity_id) FROM workflow_claim('default', 'w', 1);
           UPDATE workflow_execution SET finished_at = now() - interval '2 days' WHERE status = 'completed';"#,
    )
    .unwrap();
    db.batch_execute("ALTER SYSTEM SET workflow.retention = '1 day'").unwrap();
    db.batch_execute("SELECT pg_reload_conf()").unwrap();
    wait_for(&mut db, "SELECT count(*) = 1 FROM workflow_execution", "retention to delete the old execution");
    db.batch_execute("ALTER SYSTEM RESET workflow.retention").unwrap();
    db.batch_execute("SELECT pg_reload_conf()").unwrap();
    let left: String = db.query_one("SELECT status FROM workflow_execution", &[]).unwrap().get(0);
    assert_eq!(left, "running", "the unfinished one stays");
}

/// A query that is true while a dispatcher is connected to database `db`.
fn dispatcher_in(db: &str) -> String {
    format!("SELECT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pg_workflow dispatcher' AND datname = '{db}')")
}

fn set_system(admin: &mut Client, setting: &str) {
    admin.batch_execute(&format!("ALTER SYSTEM {setting}")).unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").unwrap();
}

#[test]
fn an_sql_step_times_out_and_a_long_one_does_not_stall_dispatch() {
    let url = fresh_database("pgw_bg_sql_time");
    let mut db = connect(&url);
    db.batch_execute(
        r#"SELECT workflow_define('bounded', '{"steps": [{"name": "slow", "sql": "SELECT pg_sleep(30)", "timeout": "200ms",
               "retry": {"max_attempts": 1}}]}');
           SELECT workflow_define('long', '{"steps": [{"name": "slow", "sql": "SELECT pg_sleep(3)"}]}');
           SELECT workflow_define('nap', '{"steps": [{"name": "pause", "sleep": "100ms"}]}');"#,
    )
    .unwrap();
    let bounded: String = db.query_one("SELECT workflow_start('bounded')::text", &[]).unwrap().get(0);
    wait_for(
        &mut db,
        &format!("SELECT status = 'failed' FROM workflow_execution WHERE id = '{bounded}'"),
        "the timeout",
    );
    let code: String = db
        .query_one(&format!("SELECT error->'error'->>'sqlstate' FROM workflow_execution WHERE id = '{bounded}'"), &[])
        .unwrap()
        .get(0);
    assert_eq!(code, "57014", "the step's timeout is its statement_timeout");

    let long: String = db.query_one("SELECT workflow_start('long')::text", &[]).unwrap().get(0);
    wait_for(
        &mut db,
        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pg_workflow sql runner' \
         AND datname = current_database() AND wait_event = 'PgSleep')",
        "the long step to start",
    );
    let nap: String = db.query_one("SELECT workflow_start('nap')::text", &[]).unwrap().get(0);
    wait_for(&mut db, &format!("SELECT status = 'completed' FROM workflow_execution WHERE id = '{nap}'"), "the nap");
    let long_status: String =
        db.query_one(&format!("SELECT status FROM workflow_execution WHERE id = '{long}'"), &[]).unwrap().get(0);
    assert_eq!(long_status, "running", "the timer fired while the long sql step was still running");
    wait_for(
        &mut db,
        &format!("SELECT status = 'completed' FROM workflow_execution WHERE id = '{long}'"),
        "the long step",
    );
}

/// CPU time used by process `pid` so far, in clock ticks (1/100 s on Linux).
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command (which may hold spaces) in parentheses; utime and stime
    // are fields 14 and 15, the 12th and 13th after it.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn a_dispatcher_sleeps_while_its_sql_runner_runs_a_long_step() {
    let url = fresh_database("pgw_bg_sql_idle");
    let mut db = connect(&url);
    db.batch_execute(
        r#"SELECT workflow_define('long', '{"steps": [{"name": "slow", "sql": "SELECT pg_sleep(600)"}]}');
                        SELECT workflow_start('long');"#,
    )
    .unwrap();
    runner_sleeping_in_a_step(&mut db);
    let dispatcher: i32 = db
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_workflow dispatcher' AND datname = current_database()",
            &[],
        )
        .unwrap()
        .get(0);
    // The running step stays 'scheduled' until it commits. Counted as due, it made the
    // dispatcher pass every millisecond for as long as the step ran (0.4 s of CPU in
    // these 3 s); with nothing else due it passes once per workflow.max_sleep.
    let before = cpu_ticks(dispatcher);
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_ticks(dispatcher) - before;
    assert!(used <= 10, "the dispatcher used {used}/100 s of CPU in 3 s while a step ran and nothing else was due");
    db.batch_execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'pg_workflow sql runner' \
         AND datname = current_database()",
    )
    .unwrap();
}

#[test]
fn the_launcher_follows_settings_and_the_extension_coming_and_going() {
    let url = fresh_database("pgw_bg_launcher");
    let mut admin = connect(&format!("{} dbname=postgres", base_url()));
    let here = dispatcher_in("pgw_bg_launcher");
    let gone = format!("SELECT NOT ({here})");
    wait_for(&mut admin, &here, "a dispatcher for the new database");

    // DROP EXTENSION: the dispatcher leaves; CREATE EXTENSION: it is back at once.
    let mut db = connect(&url);
    db.batch_execute("DROP EXTENSION pg_workflow").unwrap();
    wait_for(&mut admin, &gone, "the dispatcher to leave after DROP EXTENSION");
    db.batch_execute("CREATE EXTENSION pg_workflow").unwrap();
    wait_for(&mut admin, &here, "the dispatcher after CREATE EXTENSION");

    // workflow.databases excludes this database: its dispatcher is stopped; reset: back.
    set_system(&mut admin, "SET workflow.databases = 'postgres'");
    wait_for(&mut admin, &gone, "the dispatcher to stop for an excluded database");
    set_system(&mut admin, "RESET workflow.databases");
    wait_for(&mut admin, &here, "the dispatcher once the database is allowed again");

    // workflow.enabled = off pauses dispatch: a due sleep waits until it is back on.
    db.batch_execute(r#"SELECT workflow_define('nap', '{"steps": [{"name": "pause", "sleep": "50ms"}]}')"#).unwrap();
    set_system(&mut admin, "SET workflow.enabled = off");
    wait_for(&mut db, "SELECT current_setting('workflow.enabled') = 'off'", "the setting to reload");
    let id: String = db.query_one("SELECT workflow_start('nap')::text", &[]).unwrap().get(0);
    wait_for(
        &mut db,
        &format!(
            "SELECT scheduled_at < now() - interval '2 seconds' FROM workflow_activity WHERE execution_id = '{id}'"
        ),
        "the sleep to be overdue by two passes",
    );
    let paused: String =
        db.query_one(&format!("SELECT status FROM workflow_execution WHERE id = '{id}'"), &[]).unwrap().get(0);
    set_system(&mut admin, "RESET workflow.enabled");
    assert_eq!(paused, "running", "nothing moved while workflow.enabled was off");
    wait_for(
        &mut db,
        &format!("SELECT status = 'completed' FROM workflow_execution WHERE id = '{id}'"),
        "dispatch to resume",
    );
}

//! Crash safety under load (README: Guarantees and security). Workers run 3,000
//! three-step executions while a chaos thread drops worker connections mid-activity,
//! kills worker processes (src/bin/crash_worker.rs) with SIGKILL, terminates worker
//! backends and dispatchers, and restarts Postgres with an immediate (crash) shutdown.
//! Afterwards every execution has finished, no completed step's result is lost, and no
//! step was claimed again after its completion was accepted.

use pg_workflow_client_tests::{cluster, connect, fresh_database, Rng};
use postgres::error::SqlState;
use postgres::Client;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How many executions; `make soak` raises it (PGWORKFLOW_CRASH_EXECUTIONS).
fn executions() -> i64 {
    std::env::var("PGWORKFLOW_CRASH_EXECUTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(3000)
}
const WORKERS: usize = 4;

#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    /// The worker dropped its connection before finishing (a crashed worker).
    Abandoned,
    Accepted,
    /// The call returned false: already completed or cancelled.
    Refused,
    /// Fenced out (55000): the lease had expired and someone else had it.
    Stale,
    /// Whether the completion committed is not known: the connection died during the
    /// call, or a worker process recorded only that it ran the step before it died.
    Unknown,
}

#[derive(Clone, Debug)]
struct Attempt {
    activity: String,
    attempt: i32,
    outcome: Outcome,
}

/// A worker as a separate OS process (src/bin/crash_worker.rs). What it printed before
/// it died is its side of the record; whether its last completion committed is not known.
fn spawn_process_worker(url: &str, log: &Arc<Mutex<Vec<Attempt>>>) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash_worker"))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a worker process");
    let stdout = child.stdout.take().expect("stdout");
    let log = log.clone();
    thread::spawn(move || {
        // Read to the end, also after a kill: the pipe keeps what was written.
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            let mut parts = line.strip_prefix("ran ").unwrap_or_default().split_whitespace();
            if let (Some(activity), Some(Ok(attempt))) = (parts.next(), parts.next().map(str::parse)) {
                log.lock().unwrap().push(Attempt { activity: activity.to_owned(), attempt, outcome: Outcome::Unknown });
            }
        }
    });
    child
}

fn try_connect(url: &str, deadline: Instant) -> Client {
    loop {
        if let Ok(c) = Client::connect(&format!("{url} application_name=pgw-crash-worker"), postgres::NoTls) {
            return c;
        }
        assert!(Instant::now() < deadline, "could not reconnect");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn executions_survive_killed_workers_terminated_backends_and_a_crash_restart() {
    let executions = executions();
    // One crash restart per 1,500 executions (at least two), one every four seconds.
    let max_restarts = (executions / 1500).max(2) as u64;
    let url = fresh_database("pgw_client_crash");
    connect(&url)
        .batch_execute(
            r#"SELECT workflow_define('sturdy', '{"steps": [
                 {"name": "a", "activity": "t", "retry": {"max_attempts": 0, "initial_interval": "10ms", "jitter": 0}},
                 {"name": "b", "activity": "t", "depends_on": ["a"], "retry": {"max_attempts": 0, "initial_interval": "10ms", "jitter": 0}},
                 {"name": "c", "activity": "t", "depends_on": ["b"], "retry": {"max_attempts": 0, "initial_interval": "10ms", "jitter": 0}}]}');"#,
        )
        .unwrap();
    connect(&url)
        .execute(
            "SELECT count(workflow_start('sturdy', jsonb_build_object('n', g))) FROM generate_series(1, $1::int8) g",
            &[&executions],
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(240 * (executions as u64 / 3000).max(1));
    let done = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::<Attempt>::new()));
    let abandoned = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (url, done, log, abandoned) = (url.clone(), done.clone(), log.clone(), abandoned.clone());
            thread::spawn(move || {
                let mut rng = Rng::new(w as u64 + 11);
                let mut db: Option<Client> = None;
                while !done.load(Ordering::Relaxed) {
                    assert!(Instant::now() < deadline, "executions did not finish within the bound");
                    let client = db.get_or_insert_with(|| try_connect(&url, deadline));
                    let claimed = match client.query(
                        "SELECT activity_id::text, attempt FROM workflow_claim('default', 'crash-worker', 5, '1 second')",
                        &[],
                    ) {
                        Ok(rows) => rows,
                        Err(_) => {
                            db = None; // the server went away: reconnect
                            continue;
                        }
                    };
                    if claimed.is_empty() {
                        thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    for row in claimed {
                        let (activity, attempt): (String, i32) = (row.get(0), row.get(1));
                        if db.is_none() || rng.below(50) == 0 {
                            // A crashed worker: the claim stays with a dead worker until its lease expires.
                            abandoned.fetch_add(1, Ordering::Relaxed);
                            log.lock().unwrap().push(Attempt { activity, attempt, outcome: Outcome::Abandoned });
                            db = None;
                            continue;
                        }
                        let output = format!(r#"{{"activity": "{activity}", "attempt": {attempt}}}"#);
                        let result = db.as_mut().unwrap().query_one(
                            "SELECT workflow_complete_activity($1::text::uuid, $2::text::jsonb, $3)",
                            &[&activity, &output, &attempt],
                        );
                        let outcome = match result {
                            Ok(r) if r.get::<_, bool>(0) => Outcome::Accepted,
                            Ok(_) => Outcome::Refused,
                            Err(e) if e.code() == Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE) => Outcome::Stale,
                            Err(_) => {
                                db = None;
                                Outcome::Unknown
                            }
                        };
                        log.lock().unwrap().push(Attempt { activity, attempt, outcome });
                    }
                }
            })
        })
        .collect();

    // Chaos: kill worker processes, terminate worker backends and dispatchers, and
    // crash-restart Postgres twice.
    let mut processes: Vec<Child> = (0..2).map(|_| spawn_process_worker(&url, &log)).collect();
    let mut chaos = Rng::new(7);
    let (mut terminated, mut restarts, mut killed) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let mut observer: Option<Client> = None;
    loop {
        thread::sleep(Duration::from_millis(400));
        let db = observer.get_or_insert_with(|| try_connect(&url, deadline));
        let open: Result<i64, _> =
            db.query_one("SELECT count(*) FROM workflow_execution WHERE status <> 'completed'", &[]).map(|r| r.get(0));
        match open {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => {
                observer = None;
                continue;
            }
        }
        assert!(Instant::now() < deadline, "executions did not finish within the bound");
        // A worker process is SIGKILLed each round; dead ones are replaced.
        let victim = chaos.below(processes.len() as u64) as usize;
        if processes[victim].try_wait().ok().flatten().is_none() {
            processes[victim].kill().expect("kill -9 a worker process");
            killed += 1;
        }
        for p in processes.iter_mut() {
            if p.try_wait().ok().flatten().is_some() {
                *p = spawn_process_worker(&url, &log);
            }
        }
        let elapsed = start.elapsed().as_secs();
        if restarts < max_restarts && elapsed >= 2 + 4 * restarts {
            cluster("crash");
            restarts += 1;
            observer = None;
            continue;
        }
        let victims = db.query(
            "SELECT pg_terminate_backend(pid) FROM (SELECT pid FROM pg_stat_activity \
             WHERE application_name = 'pgw-crash-worker' OR backend_type = 'pg_workflow dispatcher' \
             ORDER BY random() LIMIT 1) v",
            &[],
        );
        if let Ok(rows) = victims {
            terminated += rows.len() as u64;
        }
    }
    done.store(true, Ordering::Relaxed);
    for mut p in processes {
        let _ = p.kill();
        let _ = p.wait();
    }
    for w in workers {
        w.join().expect("worker panicked");
    }

    let mut db = connect(&url);
    let completed: i64 =
        db.query_one("SELECT count(*) FROM workflow_execution WHERE status = 'completed'", &[]).unwrap().get(0);
    assert_eq!(completed, executions);
    let journal: HashMap<String, (String, i32)> = db
        .query(
            "SELECT id::text, status, (output->>'attempt')::int, output->>'activity' = id::text FROM workflow_activity",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| {
            assert!(r.get::<_, bool>(3), "a step's output names its own activity");
            (r.get::<_, String>(0), (r.get::<_, String>(1), r.get::<_, i32>(2)))
        })
        .collect();
    assert_eq!(journal.len() as i64, 3 * executions);

    let log = log.lock().unwrap().clone();
    let mut by_activity: HashMap<&str, Vec<&Attempt>> = HashMap::new();
    for a in &log {
        by_activity.entry(a.activity.as_str()).or_default().push(a);
    }
    let (mut lost, mut rerun_after_completion, mut reruns) = (0, 0, 0);
    for (activity, (status, kept_attempt)) in &journal {
        assert_eq!(status, "completed");
        let attempts = by_activity.get(activity.as_str()).cloned().unwrap_or_default();
        reruns += attempts.len().saturating_sub(1);
        // The journal keeps the output of an attempt whose completion was (or may have been) accepted ...
        let kept = attempts.iter().find(|a| a.attempt == *kept_attempt);
        if !matches!(kept.map(|a| &a.outcome), Some(Outcome::Accepted | Outcome::Unknown)) {
            lost += 1;
        }
        // ... an accepted completion is never overwritten by another attempt ...
        if attempts.iter().any(|a| a.outcome == Outcome::Accepted && a.attempt != *kept_attempt) {
            lost += 1;
        }
        // ... and nothing claims the step after that completion.
        if attempts.iter().any(|a| a.attempt > *kept_attempt) {
            rerun_after_completion += 1;
        }
    }
    eprintln!(
        "crash test: {executions} executions, {} claims, {} abandoned by crashed worker threads, {killed} worker \
         processes killed with SIGKILL, {terminated} backends terminated, {restarts} crash restarts, {reruns} attempts \
         re-run before completion, {lost} results lost, {rerun_after_completion} steps re-run after completion",
        log.len(),
        abandoned.load(Ordering::Relaxed)
    );
    assert_eq!(lost, 0, "no completed step's result is lost");
    assert_eq!(rerun_after_completion, 0, "no completed step is run again");
}

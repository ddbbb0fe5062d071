//! Many workers on real connections: every execution completes, no activity is ever held
//! by two workers at once, and each step completes exactly once in the journal.

use pg_workflow_client_tests::{connect, fresh_database, Rng};
use postgres::error::SqlState;
use std::collections::HashMap;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const EXECUTIONS: i64 = 1000;
const WORKERS: usize = 4;

/// What a worker saw of one claim, on its own clock.
#[derive(Debug, Clone)]
struct Claim {
    worker: usize,
    activity: String,
    attempt: i32,
    claimed: Instant,
    released: Instant,
    completed: bool,
}

#[test]
fn thousand_three_step_executions_with_four_workers() {
    let url = fresh_database("pgw_client_concurrency");
    let mut setup = connect(&url);
    setup
        .batch_execute(
            r#"SELECT workflow_define('three_step', '{"steps": [
                 {"name": "a", "activity": "t.a",
                  "retry": {"max_attempts": 0, "initial_interval": "1ms", "jitter": 0}},
                 {"name": "b", "activity": "t.b", "depends_on": ["a"],
                  "retry": {"max_attempts": 0, "initial_interval": "1ms", "jitter": 0}},
                 {"name": "c", "activity": "t.c", "depends_on": ["b"],
                  "retry": {"max_attempts": 0, "initial_interval": "1ms", "jitter": 0}}]}');
               SELECT count(workflow_start('three_step', jsonb_build_object('n', g)))
               FROM generate_series(1, 1000) g;"#,
        )
        .unwrap();

    let claims = Arc::new(Mutex::new(Vec::<Claim>::new()));
    let deadline = Instant::now() + Duration::from_secs(300);
    let handles: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let url = url.clone();
            let claims = claims.clone();
            thread::spawn(move || {
                let mut db = connect(&url);
                let mut rng = Rng::new(worker as u64 + 1);
                let worker_id = format!("worker-{worker}");
                loop {
                    assert!(Instant::now() < deadline, "executions did not finish within 300 s");
                    let batch = db
                        .query(
                            "SELECT activity_id::text, step_key, attempt FROM workflow_claim('default', $1, 10, '10 minutes')",
                            &[&worker_id],
                        )
                        .unwrap();
                    if batch.is_empty() {
                        let open: i64 = db
                            .query_one("SELECT count(*) FROM workflow_execution WHERE status <> 'completed'", &[])
                            .unwrap()
                            .get(0);
                        if open == 0 {
                            return;
                        }
                        thread::sleep(Duration::from_millis(2)); // retries are due in 1 ms
                        continue;
                    }
                    for row in batch {
                        let claimed = Instant::now();
                        let (activity, step, attempt): (String, String, i32) = (row.get(0), row.get(1), row.get(2));
                        // One attempt in ten fails and is retried by policy.
                        let completed = if rng.below(10) == 0 {
                            let outcome: String = db
                                .query_one(
                                    "SELECT workflow_fail_activity($1::text::uuid, '{\"type\": \"Flaky\"}', $2)",
                                    &[&activity, &attempt],
                                )
                                .unwrap()
                                .get(0);
                            assert_eq!(outcome, "retrying");
                            false
                        } else {
                            let output = serde_json::json!({"step": step, "attempt": attempt, "worker": worker});
                            let done: bool = db
                                .query_one(
                                    "SELECT workflow_complete_activity($1::text::uuid, $2::text::jsonb, $3)",
                                    &[&activity, &output.to_string(), &attempt],
                                )
                                .unwrap()
                                .get(0);
                            assert!(done, "a first completion returns true");
                            true
                        };
                        let released = Instant::now();
                        claims.lock().unwrap().push(Claim { worker, activity, attempt, claimed, released, completed });
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("worker panicked");
    }

    let mut db = connect(&url);
    let completed: i64 =
        db.query_one("SELECT count(*) FROM workflow_execution WHERE status = 'completed'", &[]).unwrap().get(0);
    assert_eq!(completed, EXECUTIONS, "every execution completes");
    let journal = db
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE status = 'completed'), count(DISTINCT (execution_id, step_key)) \
             FROM workflow_activity",
            &[],
        )
        .unwrap();
    let (rows, done, distinct): (i64, i64, i64) = (journal.get(0), journal.get(1), journal.get(2));
    assert_eq!((rows, done, distinct), (3 * EXECUTIONS, 3 * EXECUTIONS, 3 * EXECUTIONS), "one completed row per step");

    // Worker side: each (activity, attempt) claimed once, claims of one activity never
    // overlap in time, and each activity completed exactly once.
    let claims = claims.lock().unwrap().clone();
    let mut by_activity: HashMap<&str, Vec<&Claim>> = HashMap::new();
    for c in &claims {
        by_activity.entry(c.activity.as_str()).or_default().push(c);
    }
    assert_eq!(by_activity.len() as i64, 3 * EXECUTIONS, "every activity was claimed");
    let mut retried = 0;
    for (activity, mut list) in by_activity {
        list.sort_by_key(|c| c.attempt);
        for (i, c) in list.iter().enumerate() {
            assert_eq!(c.attempt, i as i32 + 1, "activity {activity}: attempts claimed once each, in order");
        }
        for pair in list.windows(2) {
            assert!(
                pair[0].released <= pair[1].claimed,
                "activity {activity} held by workers {} and {} at once",
                pair[0].worker,
                pair[1].worker
            );
        }
        assert_eq!(list.iter().filter(|c| c.completed).count(), 1, "activity {activity} completed once");
        retried += list.len() - 1;
    }
    let final_attempts: i64 = db.query_one("SELECT sum(attempt) FROM workflow_activity", &[]).unwrap().get::<_, i64>(0);
    assert_eq!(final_attempts as usize, claims.len(), "the journal counts every claim the workers saw");
    eprintln!("{} claims, {retried} retried attempts, {} executions", claims.len(), EXECUTIONS);
}

#[test]
fn concurrent_starts_with_one_key_create_one_execution() {
    let url = fresh_database("pgw_client_idempotency");
    connect(&url)
        .batch_execute(r#"SELECT workflow_define('once', '{"steps": [{"name": "a", "activity": "t"}]}')"#)
        .unwrap();
    let barrier = Arc::new(Barrier::new(8));
    let ids: Vec<String> = (0..8)
        .map(|_| {
            let (url, barrier) = (url.clone(), barrier.clone());
            thread::spawn(move || {
                let mut db = connect(&url);
                let mut tx = db.transaction().unwrap();
                barrier.wait();
                let id: String =
                    tx.query_one("SELECT workflow_start('once', '{}', 'same-key')::text", &[]).unwrap().get(0);
                tx.commit().unwrap();
                id
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "all starts return one id: {ids:?}");
    let mut db = connect(&url);
    let count: i64 = db.query_one("SELECT count(*) FROM workflow_activity", &[]).unwrap().get(0);
    assert_eq!(count, 1, "one execution, one first step");
}

#[test]
fn expired_lease_moves_to_another_worker_and_fences_the_first() {
    let url = fresh_database("pgw_client_lease");
    let mut w1 = connect(&url);
    let mut w2 = connect(&url);
    w1.batch_execute(
        r#"SELECT workflow_define('leased', '{"steps": [{"name": "a", "activity": "t",
              "retry": {"initial_interval": "1ms", "jitter": 0}}]}');
           SELECT workflow_start('leased');"#,
    )
    .unwrap();
    let row = w1
        .query_one("SELECT activity_id::text, attempt FROM workflow_claim('default', 'w1', 1, '50 milliseconds')", &[])
        .unwrap();
    let (activity, attempt): (String, i32) = (row.get(0), row.get(1));
    // Wait on the condition itself (the lease is past), not on a guess of how long it takes.
    let start = Instant::now();
    loop {
        let expired: bool = w2
            // NULL: the dispatcher already turned the expired lease into a retry.
            .query_one(
                "SELECT lease_expires_at IS NULL OR lease_expires_at < now() FROM workflow_activity WHERE id = $1::text::uuid",
                &[&activity],
            )
            .unwrap()
            .get(0);
        if expired {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "lease never expired");
        thread::sleep(Duration::from_millis(10));
    }
    // The background worker, or this call, turns the expired lease into a Timeout failure.
    w2.query_one("SELECT workflow_dispatch()", &[]).unwrap();
    let second = loop {
        let rows = w2.query("SELECT attempt FROM workflow_claim('default', 'w2', 1, '10 minutes')", &[]).unwrap();
        if let Some(r) = rows.first() {
            break r.get::<_, i32>(0);
        }
        assert!(start.elapsed() < Duration::from_secs(30), "retry never became claimable");
        thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(second, attempt + 1);
    let late =
        w1.query_one("SELECT workflow_complete_activity($1::text::uuid, '\"late\"', $2)", &[&activity, &attempt]);
    let code = late.expect_err("the first worker is fenced out").code().cloned();
    assert_eq!(code, Some(SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE));
    let done: bool = w2
        .query_one("SELECT workflow_complete_activity($1::text::uuid, '\"ok\"', $2)", &[&activity, &second])
        .unwrap()
        .get(0);
    assert!(done);
    let output: String = w2.query_one("SELECT output::text FROM workflow_execution", &[]).unwrap().get(0);
    assert_eq!(output, r#"{"a": "ok"}"#);
}

#[test]
fn a_rolled_back_completion_never_happened() {
    let url = fresh_database("pgw_client_rollback");
    let mut db = connect(&url);
    db.batch_execute(
        r#"SELECT workflow_define('tx', '{"steps": [{"name": "a", "activity": "t"}]}');
           SELECT workflow_start('tx');"#,
    )
    .unwrap();
    let row = db.query_one("SELECT activity_id::text, attempt FROM workflow_claim('default', 'w')", &[]).unwrap();
    let (activity, attempt): (String, i32) = (row.get(0), row.get(1));
    let mut tx = db.transaction().unwrap();
    let done: bool = tx
        .query_one("SELECT workflow_complete_activity($1::text::uuid, '1', $2)", &[&activity, &attempt])
        .unwrap()
        .get(0);
    assert!(done);
    tx.rollback().unwrap();
    let status: String = db.query_one("SELECT status FROM workflow_execution", &[]).unwrap().get(0);
    assert_eq!(status, "running");
    let done: bool = db
        .query_one("SELECT workflow_complete_activity($1::text::uuid, '1', $2)", &[&activity, &attempt])
        .unwrap()
        .get(0);
    assert!(done, "the completion can be made again after the rollback");
}

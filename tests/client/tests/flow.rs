//! Flow control under concurrency (README: Flow control): 16 claimers never have more
//! than a queue's concurrency limit running at once (read from the attempt history, whose
//! times are taken when the claim and the completion write their rows), and a rate limit
//! admits no claim sooner than its bucket allows, at every claim, on the server's clock.

use pg_workflow_client_tests::{connect, fresh_database};
use std::time::{Duration, Instant};

fn start(db: &mut postgres::Client, queue: &str, n: i64) {
    db.batch_execute(&format!(
        r#"SELECT workflow_define('fl_{queue}', '{{"steps": [{{"name": "a", "activity": "a", "queue": "{queue}"}}]}}');
           SELECT count(workflow_start('fl_{queue}', jsonb_build_object('i', i))) FROM generate_series(1, {n}) i"#
    ))
    .unwrap();
}

#[test]
fn sixteen_claimers_never_run_more_than_the_concurrency_limit() {
    let url = fresh_database("pgw_flow_concurrency");
    let mut db = connect(&url);
    start(&mut db, "limited", 300);
    db.batch_execute(r#"SELECT workflow_queue_configure('limited', '{"max_running": 3}')"#).unwrap();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut db = connect(&url);
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    let rows = db
                        .query("SELECT activity_id::text, attempt FROM workflow_claim('limited', $1, 2)", &[&format!("w{t}")])
                        .unwrap();
                    if rows.is_empty() {
                        let left: i64 = db
                            .query_one("SELECT count(*) FROM workflow_activity WHERE queue = 'limited' AND status <> 'completed'", &[])
                            .unwrap()
                            .get(0);
                        if left == 0 || Instant::now() > deadline {
                            return;
                        }
                        continue;
                    }
                    for row in rows {
                        let (id, attempt): (String, i32) = (row.get(0), row.get(1));
                        db.batch_execute("SELECT pg_sleep(0.002)").unwrap(); // the work
                        db.execute("SELECT workflow_complete_activity($1::text::uuid, '1', $2)", &[&id, &attempt]).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // The most attempts running at one instant, from the history's intervals.
    let (completed, most): (i64, i64) = db
        .query_one(
            "WITH edges AS (SELECT started_at AS at, 1 AS d FROM workflow_attempt WHERE queue = 'limited' \
                            UNION ALL SELECT finished_at, -1 FROM workflow_attempt WHERE queue = 'limited'), \
                  running AS (SELECT sum(d) OVER (ORDER BY at, d) AS n FROM edges) \
             SELECT (SELECT count(*) FROM workflow_attempt WHERE queue = 'limited' AND outcome = 'completed'), \
                    max(n)::int8 FROM running",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(completed, 300);
    assert!(most <= 3, "{most} attempts ran at once under a limit of 3");
    assert!(most >= 2, "16 claimers should reach the limit (most at once: {most})");
}

#[test]
fn a_rate_limit_admits_what_its_bucket_allows() {
    let url = fresh_database("pgw_flow_rate");
    let mut db = connect(&url);
    start(&mut db, "rated", 2000);
    // The bucket is full (50) when the queue is configured, and refills at 50 a second.
    db.batch_execute(r#"SELECT workflow_queue_configure('rated', '{"rate_limit": {"count": 50, "per": "1 second"}}')"#)
        .unwrap();
    let configured_at: String =
        db.query_one("SELECT refilled_at::text FROM workflow_queue WHERE queue = 'rated'", &[]).unwrap().get(0);
    // Eight claimers contend for the bucket's row lock for 4 seconds: a claim that waited
    // for the lock must count from when it got it, not from when its transaction began.
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut db = connect(&url);
                let end = Instant::now() + Duration::from_secs(4);
                while Instant::now() < end {
                    db.query("SELECT 1 FROM workflow_claim('rated', $1, 5, '1 hour')", &[&format!("r{t}")]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // The bucket's promise, at every claim (started_at is taken after admission): the n-th
    // claim comes no sooner than the full bucket plus 50 a second allow (0.05 of a token of
    // slack for rounding; counting from a waiter's transaction start put claims 0.7 to 1.5
    // tokens ahead).
    let (admitted, worst): (i64, f64) = db
        .query_one(
            "WITH claims AS (SELECT row_number() OVER (ORDER BY started_at) AS n, \
                                    extract(epoch FROM started_at - $1::text::timestamptz)::float8 AS after \
                             FROM workflow_activity WHERE queue = 'rated' AND started_at IS NOT NULL) \
             SELECT count(*), coalesce(max(n - (50 + 50 * after)), 0)::float8 FROM claims",
            &[&configured_at],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert!(worst <= 0.05, "a claim came {worst:.3} tokens ahead of what the bucket allows (admitted {admitted})");
    // And the bucket does refill: more than its first 50 got through.
    assert!(admitted > 50, "only {admitted} admitted: the bucket never refilled");
}

#[test]
fn ten_thousand_failed_executions_are_retried_and_cancelled_in_batches() {
    let url = fresh_database("pgw_flow_bulk");
    let mut db = connect(&url);
    const N: i64 = 10_000;
    // A bad deploy: every run of the type fails on its only attempt.
    db.batch_execute(&format!(
        r#"SELECT workflow_define('bulk', '{{"steps": [{{"name": "a", "activity": "a", "queue": "bulk",
                                                       "retry": {{"max_attempts": 1}}}}]}}');
           SELECT count(workflow_start('bulk', jsonb_build_object('i', i))) FROM generate_series(1, {N}) i;
           SELECT count(workflow_fail_activity(activity_id, '{{"type": "BadDeploy", "message": "x"}}', attempt))
           FROM workflow_claim('bulk', 'w', {N});"#
    ))
    .unwrap();
    let count = |db: &mut postgres::Client, status: &str| -> i64 {
        db.query_one("SELECT count(*) FROM workflow_execution WHERE workflow_type = 'bulk' AND status = $1", &[&status])
            .unwrap()
            .get(0)
    };
    assert_eq!(count(&mut db, "failed"), N);
    // A batch per transaction: another session holds the 5,000th execution (newest first,
    // the order the procedure takes them in) while the retry runs; blocked there, the
    // first four batches have committed and the fifth has not.
    let mut holder = connect(&url);
    holder.batch_execute("BEGIN").unwrap();
    holder
        .execute(
            "SELECT id FROM workflow_execution WHERE id = (SELECT id FROM workflow_execution \
             WHERE workflow_type = 'bulk' ORDER BY id DESC OFFSET 4999 LIMIT 1) FOR UPDATE",
            &[],
        )
        .unwrap();
    let started = Instant::now();
    let retry = {
        let url = url.clone();
        std::thread::spawn(move || -> i64 {
            let mut db = connect(&url);
            db.query_one(
                r#"CALL workflow_retry_many('{"workflow_type": "bulk", "error_type": "BadDeploy"}', 1000)"#,
                &[],
            )
            .unwrap()
            .get(0)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let blocked: bool = db
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                 AND query LIKE 'CALL workflow_retry_many%')",
                &[],
            )
            .unwrap()
            .get(0);
        if blocked {
            break;
        }
        assert!(Instant::now() < deadline, "the retry never reached the held execution");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(count(&mut db, "running"), 4000, "four batches committed while the fifth waits");
    holder.batch_execute("COMMIT").unwrap();
    let retried = retry.join().unwrap();
    let retry_took = started.elapsed();
    assert_eq!(retried, N);
    assert_eq!(count(&mut db, "running"), N);
    let started = Instant::now();
    let cancelled: i64 = db
        .query_one(
            r#"CALL workflow_cancel_many('{"workflow_type": "bulk", "status": "running"}', 'bad deploy', 500)"#,
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(cancelled, N);
    let too_big = db.query_one("CALL workflow_cancel_many('{}', 'x', 5000)", &[]).unwrap_err();
    assert_eq!(too_big.code(), Some(&postgres::error::SqlState::INVALID_PARAMETER_VALUE));
    let message = too_big.as_db_error().map(|e| e.message().to_owned()).unwrap_or_default();
    assert!(message.contains("batch_size must be from 1 to 1000"), "{message}");
    assert_eq!(count(&mut db, "cancelled"), N);
    println!("retried {N} in {retry_took:?} (a held row included), cancelled {N} in {:?}", started.elapsed());
}

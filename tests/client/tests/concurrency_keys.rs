//! Concurrency keys under concurrency (README: Flow control): 8 connections start
//! executions for 4 documents at once while 8 workers claim and complete their steps;
//! the preloaded dispatcher starts the ones that waited (a key on the workflow), or the
//! trigger releases held activities (a key on the step). Per document, no two steps ever
//! ran at the same time (read from the attempt history's intervals, whose times are taken
//! when the claim and the completion write their rows), while different documents ran in
//! parallel, and every execution completed.

use pg_workflow_client_tests::{connect, fresh_database};
use std::time::{Duration, Instant};

#[test]
fn one_run_per_document_while_other_documents_run_in_parallel() {
    documents_run_one_at_a_time(
        "pgw_concurrency_keys",
        r#"{"concurrency_key": "input.doc", "max_running": 1,
            "steps": [{"name": "extract", "activity": "extract", "queue": "ck"}]}"#,
    );
}

#[test]
fn a_key_on_a_step_holds_its_activities_one_per_document() {
    documents_run_one_at_a_time(
        "pgw_concurrency_step_keys",
        r#"{"steps": [{"name": "extract", "activity": "extract", "queue": "ck",
                       "concurrency_key": "input.doc", "max_running": 1}]}"#,
    );
}

/// 8 connections start 200 executions of `definition` for 4 documents while 8 workers
/// claim and complete; then checks the history.
fn documents_run_one_at_a_time(database: &str, definition: &str) {
    let url = fresh_database(database);
    let mut db = connect(&url);
    db.execute("SELECT workflow_define('ck', $1::text::jsonb)", &[&definition]).unwrap();
    const STARTERS: i64 = 8;
    const PER_STARTER: i64 = 25;
    let starters: Vec<_> = (0..STARTERS)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut db = connect(&url);
                for i in 0..PER_STARTER {
                    let doc = format!("d{}", (t * PER_STARTER + i) % 4);
                    db.execute("SELECT workflow_start('ck', jsonb_build_object('doc', $1::text))", &[&doc]).unwrap();
                }
            })
        })
        .collect();
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut db = connect(&url);
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    let rows = db
                        .query(
                            "SELECT activity_id::text, attempt FROM workflow_claim('ck', $1, 1)",
                            &[&format!("w{w}")],
                        )
                        .unwrap();
                    if rows.is_empty() {
                        let open: i64 = db
                            .query_one(
                                "SELECT (SELECT count(*) FROM workflow_execution WHERE workflow_type = 'ck' \
                                         AND status <> 'completed') + $1 - (SELECT count(*) FROM workflow_execution)",
                                &[&(STARTERS * PER_STARTER)],
                            )
                            .unwrap()
                            .get(0);
                        assert!(Instant::now() < deadline, "{open} executions never finished");
                        if open == 0 {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    for row in rows {
                        let (id, attempt): (String, i32) = (row.get(0), row.get(1));
                        db.batch_execute("SELECT pg_sleep(0.003)").unwrap(); // the work
                        db.execute("SELECT workflow_complete_activity($1::text::uuid, '1', $2)", &[&id, &attempt])
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for t in starters.into_iter().chain(workers) {
        t.join().unwrap();
    }
    // The most attempts running at one instant: per document, and over all of them.
    let mut most = |partition: &str| -> i64 {
        db.query_one(
            &format!(
                "WITH a AS (SELECT t.started_at, t.finished_at, e.input->>'doc' AS doc FROM workflow_attempt t \
                            JOIN workflow_execution e ON e.id = t.execution_id WHERE e.workflow_type = 'ck'), \
                      edges AS (SELECT doc, started_at AS at, 1 AS d FROM a UNION ALL SELECT doc, finished_at, -1 FROM a), \
                      running AS (SELECT sum(d) OVER ({partition} ORDER BY at, d) AS n FROM edges) \
                 SELECT max(n)::int8 FROM running"
            ),
            &[],
        )
        .unwrap()
        .get(0)
    };
    let per_document = most("PARTITION BY doc");
    let overall = most("");
    let completed: i64 = db
        .query_one("SELECT count(*) FROM workflow_execution WHERE workflow_type = 'ck' AND status = 'completed'", &[])
        .unwrap()
        .get(0);
    assert_eq!(completed, STARTERS * PER_STARTER);
    assert_eq!(per_document, 1, "two steps of one document ran at once");
    assert!(overall >= 2, "documents should run in parallel (most at once: {overall})");
}

#[test]
fn racing_starts_never_both_take_the_last_slot() {
    let url = fresh_database("pgw_concurrency_race");
    let mut db = connect(&url);
    db.batch_execute(
        r#"SELECT workflow_define('race', '{"concurrency_key": "input.doc", "max_running": 2,
                                            "steps": [{"name": "a", "activity": "a", "queue": "race"}]}')"#,
    )
    .unwrap();
    // Each round, 8 connections start an execution of a new document at the same moment.
    const THREADS: usize = 8;
    const ROUNDS: usize = 40;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut db = connect(&url);
                for round in 0..ROUNDS {
                    barrier.wait();
                    db.execute(
                        "SELECT workflow_start('race', jsonb_build_object('doc', $1::text))",
                        &[&format!("r{round}")],
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let rows = db
        .query(
            "SELECT concurrency_key, count(*) FILTER (WHERE status = 'running'), count(*) \
             FROM workflow_execution WHERE workflow_type = 'race' GROUP BY 1 ORDER BY 2 DESC",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), ROUNDS);
    for row in rows {
        let (doc, running, all): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(all, THREADS as i64);
        assert_eq!(running, 2, "document {doc}: {running} running under a limit of 2");
    }
}

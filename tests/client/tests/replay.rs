//! Replay turns under concurrency (README: SQL API, engines on client-driven executions):
//! processes racing to replay the same executions never hold one at the same time, each
//! execution finishes, its steps run once, and a process whose turn ran out cannot write.

use pg_workflow_client_tests::{connect, fresh_database};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EXECUTIONS: i64 = 200;
const PROCESSES: usize = 8;

#[test]
fn racing_processes_replay_each_execution_in_one_turn_at_a_time() {
    let url = fresh_database("pgw_replay_race");
    let mut db = connect(&url);
    db.batch_execute(&format!(
        "SELECT workflow_start('race', jsonb_build_object('n', i), NULL, '{{\"client_driven\": true}}') \
         FROM generate_series(1, {EXECUTIONS}) i"
    ))
    .unwrap();
    // Who holds which execution now, as the processes see it.
    let holders: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let overlaps = Arc::new(Mutex::new(Vec::<String>::new()));
    let turns = Arc::new(Mutex::new(0usize));
    let deadline = Instant::now() + Duration::from_secs(120);
    let threads: Vec<_> = (0..PROCESSES)
        .map(|p| {
            let (url, holders, overlaps, turns) = (url.clone(), holders.clone(), overlaps.clone(), turns.clone());
            std::thread::spawn(move || {
                let mut db = connect(&url);
                loop {
                    let finished: i64 = db
                        .query_one("SELECT count(*) FROM workflow_execution WHERE status = 'completed'", &[])
                        .unwrap()
                        .get(0);
                    if finished == EXECUTIONS || Instant::now() > deadline {
                        return;
                    }
                    let claimed = db
                        .query(
                            "SELECT execution_id::text, lease_token FROM workflow_claim_executions(ARRAY['race'], $1, 3, '30 seconds')",
                            &[&format!("p{p}")],
                        )
                        .unwrap();
                    if claimed.is_empty() {
                        // Work the activities the replays scheduled (a worker's part).
                        db.batch_execute(
                            "SELECT workflow_complete_activity(activity_id, input, attempt) \
                             FROM workflow_claim('default', 'w', 10)",
                        )
                        .unwrap();
                        continue;
                    }
                    for row in claimed {
                        let (id, token): (String, i32) = (row.get(0), row.get(1));
                        if let Some(other) = holders.lock().unwrap().insert(id.clone(), p) {
                            overlaps.lock().unwrap().push(format!("{id}: p{p} and p{other}"));
                        }
                        *turns.lock().unwrap() += 1;
                        // The replay: the one step; once it is done, the end.
                        let step: String = db
                            .query_one(
                                "SELECT workflow_schedule_activity($1::text::uuid, 'step', 'race.step', \
                                   jsonb_build_object('id', $1::text), jsonb_build_object('lease_token', $2::int))::text",
                                &[&id, &token],
                            )
                            .unwrap()
                            .get(0);
                        let done: Option<String> = db
                            .query_opt(
                                "SELECT output::text FROM workflow_activity WHERE id = $1::text::uuid AND status = 'completed'",
                                &[&step],
                            )
                            .unwrap()
                            .map(|r| r.get(0));
                        holders.lock().unwrap().remove(&id);
                        match done {
                            Some(output) => {
                                db.execute(
                                    "SELECT workflow_complete($1::text::uuid, $2::text::jsonb, $3)",
                                    &[&id, &output, &token],
                                )
                                .unwrap();
                            }
                            None => {
                                db.execute("SELECT workflow_release_execution($1::text::uuid, $2)", &[&id, &token])
                                    .unwrap();
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(overlaps.lock().unwrap().clone(), Vec::<String>::new(), "executions held by two processes at once");
    let (completed, steps, attempts): (i64, i64, i64) = {
        let row = db
            .query_one(
                "SELECT (SELECT count(*) FROM workflow_execution WHERE status = 'completed'), \
                        (SELECT count(*) FROM workflow_activity), \
                        (SELECT coalesce(max(attempt), 0) FROM workflow_activity)::int8",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    };
    assert_eq!((completed, steps, attempts), (EXECUTIONS, EXECUTIONS, 1), "completed, steps, most attempts of one");
    assert!(*turns.lock().unwrap() >= 2 * EXECUTIONS as usize, "each execution needs two turns at least");
}

#[test]
fn a_process_whose_turn_ran_out_cannot_schedule_or_end_the_execution() {
    let url = fresh_database("pgw_replay_lost");
    let mut slow = connect(&url);
    let mut fast = connect(&url);
    let id: String = slow
        .query_one("SELECT workflow_start('lost', '{}', 'k', '{\"client_driven\": true}')::text", &[])
        .unwrap()
        .get(0);
    let old: i32 = slow
        .query_one(
            "SELECT lease_token FROM workflow_claim_executions(ARRAY['lost'], 'slow', 1, '100 milliseconds')",
            &[],
        )
        .unwrap()
        .get(0);
    // Wait (on the server's clock) until the turn has run out, then another process takes it.
    slow.batch_execute("SELECT pg_sleep(0.2)").unwrap();
    let new: i32 = fast
        .query_one("SELECT lease_token FROM workflow_claim_executions(ARRAY['lost'], 'fast', 1, '1 minute')", &[])
        .unwrap()
        .get(0);
    assert_eq!(new, old + 1);
    let err = slow
        .execute(
            "SELECT workflow_schedule_activity($1::text::uuid, 's', 't', '{}', jsonb_build_object('lease_token', $2::int))",
            &[&id, &old],
        )
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("55000"), "{err:?}");
    let err = slow.execute("SELECT workflow_complete($1::text::uuid, 'null', $2)", &[&id, &old]).unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("55000"), "{err:?}");
    assert!(!slow
        .query_one("SELECT workflow_renew_execution($1::text::uuid, $2)", &[&id, &old])
        .unwrap()
        .get::<_, bool>(0));
    assert!(fast
        .query_one("SELECT workflow_complete($1::text::uuid, '1', $2)", &[&id, &new])
        .unwrap()
        .get::<_, bool>(0));
}

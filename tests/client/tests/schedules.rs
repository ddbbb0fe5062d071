//! Schedules under concurrency (README: Flow control): the dispatcher and two loops calling
//! workflow_dispatch() race over an every-second schedule, Postgres crashes and restarts in
//! the middle, and every fire time still has exactly one execution, with no error on
//! either side and fires continuing after the restart.

use pg_workflow_client_tests::{cluster, connect, fresh_database};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn fires(db: &mut postgres::Client) -> (i64, i64) {
    let row = db
        .query_one(
            "SELECT count(*), count(DISTINCT labels->>'fire_at') FROM workflow_execution \
             WHERE labels->>'schedule' = 'every-second'",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

#[test]
fn each_fire_starts_one_execution_with_racing_dispatchers_and_a_crash() {
    let url = fresh_database("pgw_schedules_race");
    let mut db = connect(&url);
    db.batch_execute(
        r#"SELECT workflow_define('tick', '{"steps": [{"name": "a", "activity": "tick"}]}');
           SELECT workflow_schedule_create('every-second', '@every 1s', 'tick', '{}', '{"overlap": "allow_all"}')"#,
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Two connections calling workflow_dispatch() in a loop, racing the background worker.
    let racers: Vec<_> = (0..2)
        .map(|_| {
            let (url, stop) = (url.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut errors = Vec::new();
                let mut db = connect(&url);
                while !stop.load(Ordering::Relaxed) {
                    match db.batch_execute("SELECT workflow_dispatch()") {
                        Ok(()) => {}
                        Err(e)
                            if e.is_closed()
                                || e.as_db_error().is_none()
                                || e.code().map(|c| c.code().starts_with("57")).unwrap_or(false) =>
                        {
                            // The crash restart: connect again.
                            std::thread::sleep(Duration::from_millis(200));
                            if let Ok(again) = postgres::Client::connect(&url, postgres::NoTls) {
                                db = again;
                            }
                        }
                        Err(e) => errors.push(format!("{e:?}")),
                    }
                }
                errors
            })
        })
        .collect();
    let wait_for = |db: &mut postgres::Client, at_least: i64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while fires(db).0 < at_least {
            assert!(Instant::now() < deadline, "the schedule stopped firing");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(&mut db, 3);
    cluster("crash");
    let mut db = connect(&url);
    let before = fires(&mut db).0;
    wait_for(&mut db, before + 3);
    stop.store(true, Ordering::Relaxed);
    let errors: Vec<String> = racers.into_iter().flat_map(|r| r.join().unwrap()).collect();
    assert_eq!(errors, Vec::<String>::new(), "errors in the racing workflow_dispatch() loop");
    let (executions, fire_times) = fires(&mut db);
    assert_eq!(executions, fire_times, "a fire time with more than one execution");
    db.batch_execute("SELECT workflow_schedule_delete('every-second')").unwrap();
}

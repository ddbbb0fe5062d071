// Schedules in the backend (README: Flow control): fire times across DST changes in a real
// time zone, and the overlap and catch-up policies, with the clock moved by rewriting the
// schedule's next fire time (the test's transaction is invisible to the dispatcher).

/// The UTC instants (ISO text) of the first `n` fires after `after`, in `zone`.
fn fires(schedule: &str, zone: &str, after: &str, n: usize) -> Vec<String> {
    let parsed = crate::model::cron::Schedule::parse(schedule).unwrap();
    let mut at = one::<TimestampWithTimeZone>(&format!("SELECT '{after}'::timestamptz"));
    let mut out = Vec::new();
    for _ in 0..n {
        at = Spi::connect_mut(|c| crate::engine::cron_schedules::next_fire(c, &parsed, zone, at)).unwrap().unwrap();
        out.push(
            Spi::get_one_with_args::<String>(
                "SELECT to_char($1 AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')",
                &[at.into()],
            )
            .unwrap()
            .unwrap(),
        );
    }
    out
}

#[pg_test]
fn nightly_fires_once_a_day_across_both_dst_changes_in_berlin() {
    // 02:30 does not exist on 2026-03-29 (02:00 -> 03:00): it fires at 03:30 CEST.
    assert_eq!(
        fires("30 2 * * *", "Europe/Berlin", "2026-03-27 12:00+00", 3),
        ["2026-03-28 01:30", "2026-03-29 01:30", "2026-03-30 00:30"]
    );
    // 02:30 happens twice on 2026-10-25 (03:00 -> 02:00): it fires once.
    assert_eq!(
        fires("30 2 * * *", "Europe/Berlin", "2026-10-23 12:00+00", 3),
        ["2026-10-24 00:30", "2026-10-25 01:30", "2026-10-26 01:30"]
    );
    // Month ends and a leap day, in New York.
    assert_eq!(
        fires("0 9 31 * *", "America/New_York", "2026-01-01 00:00+00", 2),
        ["2026-01-31 14:00", "2026-03-31 13:00"]
    );
    assert_eq!(fires("@every 90m", "UTC", "2026-01-01 00:00+00", 2), ["2026-01-01 01:30", "2026-01-01 03:00"]);
}

fn schedule(name: &str, cron: &str, options: &str) {
    run(&format!("SELECT workflow_schedule_create('{name}', '{cron}', 'sched_job', '{{}}', '{options}')"));
}

/// Moves the schedule's clock: its next fire is `ago` in the past. (now() is the
/// transaction's start here: fires meant to differ need different offsets.)
fn due(name: &str, ago: &str) {
    run(&format!("UPDATE workflow_schedule SET next_fire_at = now() - interval '{ago}' WHERE name = '{name}'"));
}

fn fired(name: &str) -> i64 {
    one::<i64>(&format!("SELECT count(*) FROM workflow_execution WHERE idempotency_key LIKE 'schedule:{name}:%'"))
}

#[pg_test]
fn overlap_and_catch_up_policies() {
    run(r#"SELECT workflow_define('sched_job', '{"steps": [{"name": "a", "activity": "sched.a"}]}')"#);
    // catch_up latest: three missed fires run once; skip: none of them.
    schedule("latest", "@every 1m", r#"{"catch_up": "latest", "overlap": "allow_all"}"#);
    schedule("skipper", "@every 1m", r#"{"catch_up": "skip", "overlap": "allow_all"}"#);
    due("latest", "150 seconds");
    due("skipper", "150 seconds");
    run("SELECT workflow_dispatch()");
    assert_eq!((fired("latest"), fired("skipper")), (1, 0));
    assert!(one::<bool>("SELECT next_fire_at > now() FROM workflow_schedule WHERE name = 'skipper'"));
    // A single due fire runs under either policy; dispatching again does not repeat it.
    due("skipper", "10 seconds");
    run("SELECT workflow_dispatch()");
    run("SELECT workflow_dispatch()");
    assert_eq!(fired("skipper"), 1);

    // overlap skip: while the last run is open, a due fire is dropped.
    schedule("skip", "@every 1m", r#"{"overlap": "skip"}"#);
    due("skip", "2 seconds");
    run("SELECT workflow_dispatch()");
    due("skip", "1 second");
    run("SELECT workflow_dispatch()");
    assert_eq!(fired("skip"), 1, "the second fire was skipped: the first run is open");
    // buffer_one: one fire waits for the open run and goes when it ends.
    schedule("buffered", "@every 1m", r#"{"overlap": "buffer_one"}"#);
    due("buffered", "2 seconds");
    run("SELECT workflow_dispatch()");
    due("buffered", "1 second");
    run("SELECT workflow_dispatch()");
    assert_eq!(fired("buffered"), 1);
    assert!(one::<bool>("SELECT buffered_fire_at IS NOT NULL FROM workflow_schedule WHERE name = 'buffered'"));
    run("SELECT workflow_cancel(last_execution) FROM workflow_schedule WHERE name = 'buffered'");
    run("SELECT workflow_dispatch()");
    assert_eq!(fired("buffered"), 2, "the buffered fire went once the open run ended");
    // allow_all: fires whatever is open.
    schedule("all", "@every 1m", r#"{"overlap": "allow_all"}"#);
    for ago in ["3 seconds", "2 seconds", "1 second"] {
        due("all", ago);
        run("SELECT workflow_dispatch()");
    }
    assert_eq!(fired("all"), 3);
    // Paused: nothing fires.
    run("SELECT workflow_schedule_pause('all')");
    due("all", "500 milliseconds");
    run("SELECT workflow_dispatch()");
    assert_eq!(fired("all"), 3);
}

#[pg_test]
fn a_fire_that_cannot_start_is_recorded_and_the_other_schedules_still_fire() {
    run(r#"SELECT workflow_define('sched_job', '{"steps": [{"name": "a", "activity": "sched.a"}]}')"#);
    // (A schedule of an undefined type is refused when created: pg_regress flow.)
    schedule("broken", "@every 1m", r#"{"overlap": "allow_all"}"#);
    schedule("fine", "@every 1m", r#"{"overlap": "allow_all"}"#);
    // The type it starts goes away after it was created (here: renamed under it).
    run("UPDATE workflow_schedule SET workflow_type = 'gone_type' WHERE name = 'broken'");
    due("broken", "2 seconds");
    due("fine", "1 second");
    run("SELECT workflow_dispatch()");
    assert_eq!(fired("fine"), 1, "the other schedule fired in the same pass");
    assert_eq!(
        one::<String>("SELECT last_error->>'type' FROM workflow_schedule WHERE name = 'broken'"),
        "ScheduleFireFailed"
    );
    assert!(one::<bool>(
        "SELECT last_error->>'message' LIKE '%gone_type%' FROM workflow_schedule WHERE name = 'broken'"
    ));
    assert!(one::<bool>("SELECT next_fire_at > now() FROM workflow_schedule WHERE name = 'broken'"), "moved on");
    // Fixed, its next fire starts and clears the error.
    run("UPDATE workflow_schedule SET workflow_type = 'sched_job' WHERE name = 'broken'");
    due("broken", "500 milliseconds");
    run("SELECT workflow_dispatch()");
    assert_eq!(fired("broken"), 1);
    assert!(one::<bool>("SELECT last_error IS NULL FROM workflow_schedule WHERE name = 'broken'"));
}

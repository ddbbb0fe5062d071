//! `workflow_claim_wait` with the preload (README: Workers): a claim that finds nothing
//! waits in its backend, and the commit that makes work claimable wakes one waiter of the
//! queue, which takes it with a lease counted from the claim. A wake-up that never comes
//! makes the call return empty when its timeout passes, and the test fails on that. The
//! timeouts are short (5 s) because a waiting backend's latch is also set now and then
//! by Postgres itself (a sinval catch-up, every ten seconds or so here): a wait of a
//! minute would end in a claim even with no wake-up from pg_workflow at all.

use pg_workflow_client_tests::{connect, fresh_database, wait_until_claim_waits};
use postgres::Client;
use std::thread::JoinHandle;
use std::time::Duration;

/// What a waiter's call returned: (step_key, attempt) per claimed activity, or the
/// SQLSTATE it failed with.
type Outcome = Result<Vec<(String, i32)>, String>;

struct Waiter {
    pid: i32,
    /// The call's outcome, and the connection, kept open: a backend that left the wait
    /// must free its entry itself, not by exiting.
    call: JoinHandle<(Outcome, Client)>,
}

impl Waiter {
    fn outcome(self) -> Outcome {
        self.call.join().unwrap().0
    }
}

/// A backend calling `workflow_claim_wait` on `queue` for up to `seconds`; returns once it
/// sleeps in the wait (registered, its first attempt done).
fn waiter(url: &str, observer: &mut Client, queue: &str, seconds: i32) -> Waiter {
    let mut client = connect(url);
    let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let queue = queue.to_owned();
    let call = std::thread::spawn(move || {
        let outcome = client
            .query(
                "SELECT step_key, attempt, lease_expires_at > clock_timestamp() + interval '55 seconds' \
                 FROM workflow_claim_wait($1, 'waiter', 1, '1 minute', NULL, make_interval(secs => $2))",
                &[&queue, &(seconds as f64)],
            )
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        assert!(r.get::<_, bool>(2), "the lease must count from the claim, not the call's start");
                        (r.get(0), r.get(1))
                    })
                    .collect()
            })
            .map_err(|e| e.code().map(|c| c.code().to_owned()).unwrap_or_else(|| e.to_string()));
        (outcome, client)
    });
    wait_until_claim_waits(observer, pid);
    Waiter { pid, call }
}

fn define(db: &mut Client, name: &str, queue: &str) {
    db.execute(
        "SELECT workflow_define($1, jsonb_build_object('steps', jsonb_build_array(jsonb_build_object( \
           'name', 'a', 'activity', 'a', 'queue', $2::text, \
           'retry', jsonb_build_object('max_attempts', 3, 'initial_interval', '1 second', 'jitter', 0)))))",
        &[&name, &queue],
    )
    .unwrap();
}

#[test]
fn a_commit_wakes_a_waiting_claim_which_takes_the_work() {
    let url = fresh_database("pgw_claim_wait_wake");
    let mut db = connect(&url);
    define(&mut db, "cw", "cw_q");
    let w = waiter(&url, &mut db, "cw_q", 12);
    // Not for the wake-up: so that a lease counted from the call's start (its
    // transaction's now()) would already have lost six of its sixty seconds.
    std::thread::sleep(Duration::from_secs(6));
    db.execute("SELECT workflow_start('cw')", &[]).unwrap();
    assert_eq!(w.outcome(), Ok(vec![("a".to_owned(), 1)]));
    // Work that is there already is taken at once, as by workflow_claim.
    db.execute("SELECT workflow_start('cw')", &[]).unwrap();
    let at_once: i64 = db
        .query_one("SELECT count(*) FROM workflow_claim_wait('cw_q', 'w', 5, '1 minute', NULL, '30 seconds')", &[])
        .unwrap()
        .get(0);
    assert_eq!(at_once, 1);
}

#[test]
fn one_commit_that_makes_four_claimable_reaches_four_waiters() {
    let url = fresh_database("pgw_claim_wait_chain");
    let mut db = connect(&url);
    define(&mut db, "cw", "cw_q");
    let waiters: Vec<Waiter> = (0..4).map(|_| waiter(&url, &mut db, "cw_q", 5)).collect();
    // The commit wakes one; each that fills its claim (one) wakes the next.
    db.execute("SELECT count(workflow_start('cw')) FROM generate_series(1, 4)", &[]).unwrap();
    for w in waiters {
        let pid = w.pid;
        assert_eq!(w.outcome(), Ok(vec![("a".to_owned(), 1)]), "waiter {pid}");
    }
}

#[test]
fn a_waiter_that_was_cancelled_or_terminated_takes_no_later_wake_up() {
    let url = fresh_database("pgw_claim_wait_gone");
    let mut db = connect(&url);
    define(&mut db, "cw", "cw_q");
    // The longest waiting is woken first: were the cancelled and the terminated waiter
    // still registered, the start would wake one of them and the last waiter would time out.
    let cancelled = waiter(&url, &mut db, "cw_q", 5);
    let terminated = waiter(&url, &mut db, "cw_q", 5);
    db.execute("SELECT pg_cancel_backend($1)", &[&cancelled.pid]).unwrap();
    let (outcome, _still_connected) = cancelled.call.join().unwrap();
    assert_eq!(outcome, Err("57014".to_owned()));
    db.execute("SELECT pg_terminate_backend($1, 30000)", &[&terminated.pid]).unwrap();
    assert!(terminated.outcome().is_err());
    let last = waiter(&url, &mut db, "cw_q", 5);
    db.execute("SELECT workflow_start('cw')", &[]).unwrap();
    assert_eq!(last.outcome(), Ok(vec![("a".to_owned(), 1)]));
}

#[test]
fn a_retry_whose_backoff_ends_wakes_a_waiter() {
    let url = fresh_database("pgw_claim_wait_retry");
    let mut db = connect(&url);
    define(&mut db, "cw", "cw_q");
    db.execute("SELECT workflow_start('cw')", &[]).unwrap();
    let (id, attempt): (String, i32) = {
        let row = db
            .query_one("SELECT activity_id::text, attempt FROM workflow_claim('cw_q', 'w', 1, '1 minute')", &[])
            .unwrap();
        (row.get(0), row.get(1))
    };
    // No commit makes the retry claimable: its backoff ends, and the dispatcher wakes a
    // waiter then.
    db.execute("SELECT workflow_fail_activity($1::text::uuid, '\"flaky\"', $2)", &[&id, &attempt]).unwrap();
    let w = waiter(&url, &mut db, "cw_q", 5);
    assert_eq!(w.outcome(), Ok(vec![("a".to_owned(), 2)]));
}

//! The quiet path (README: What the preload adds): with the preload, a transaction that
//! makes work claimable on a quiet cluster sends its own NOTIFY, so the listener sees the
//! starting backend as the sender; with `workflow.quiet_notify_interval = 0` the dispatcher
//! relays it; under a burst at most one transaction per interval notifies itself and the
//! dispatcher relays the rest.

use pg_workflow_client_tests::{connect, fresh_database, next_notice, notices_before_marker};
use postgres::Client;
use std::time::{Duration, Instant};

/// The pid of the backend that sent the next notification on `channel` with `payload`.
fn next_sender(listener: &mut Client, channel: &str, payload: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.checked_duration_since(Instant::now()).expect("no notification within 30 s");
        match next_notice(listener, left) {
            Some(n) if n.channel() == channel && n.payload() == payload => return n.process_id(),
            Some(_) => continue,
            None => panic!("no {channel} {payload} within 30 s"),
        }
    }
}

/// The sender of every notification before a marker sent now.
fn senders_before_marker(listener: &mut Client, sender: &mut Client) -> Vec<i32> {
    notices_before_marker(listener, sender).iter().map(|n| n.process_id()).collect()
}

#[test]
fn quiet_starts_notify_themselves_and_a_burst_leaves_it_to_the_dispatcher() {
    let url = fresh_database("pgw_quiet_notify");
    let mut db = connect(&url);
    let mut listener = connect(&url);
    listener.batch_execute("LISTEN workflow_activity_ready").unwrap();
    db.batch_execute(
        r#"SELECT workflow_define('quiet', '{"steps": [{"name": "a", "activity": "a", "queue": "quiet_q"}]}')"#,
    )
    .unwrap();
    let pid: i32 = db.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);

    // Quiet: the start's own backend sends it (a few tries apart, in case a transaction
    // elsewhere in the cluster took the same 10 ms).
    let mut own = 0;
    for _ in 0..5 {
        db.batch_execute("SELECT workflow_start('quiet', '{}')").unwrap();
        if next_sender(&mut listener, "workflow_activity_ready", "quiet_q") == pid {
            own += 1;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(own, 1, "no start on a quiet cluster notified by itself");

    // Off: the dispatcher relays it.
    db.batch_execute("SET workflow.quiet_notify_interval = 0; SELECT workflow_start('quiet', '{}')").unwrap();
    let relayed_by = next_sender(&mut listener, "workflow_activity_ready", "quiet_q");
    assert_ne!(relayed_by, pid, "with the quiet path off the start notified by itself");
    let kind: String =
        db.query_one("SELECT backend_type FROM pg_stat_activity WHERE pid = $1", &[&relayed_by]).unwrap().get(0);
    assert_ne!(kind, "client backend", "relayed by {kind} {relayed_by}");
    let _ = senders_before_marker(&mut listener, &mut db);

    // A burst, with an interval of an hour: at most one of 800 transactions notifies itself.
    let starters: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut db = connect(&url);
                db.batch_execute("SET workflow.quiet_notify_interval = '1h'").unwrap();
                for _ in 0..100 {
                    db.batch_execute("SELECT workflow_start('quiet', '{}')").unwrap();
                }
                db.query_one("SELECT pg_backend_pid()", &[]).unwrap().get::<_, i32>(0)
            })
        })
        .collect();
    let pids: Vec<i32> = starters.into_iter().map(|t| t.join().unwrap()).collect();
    let senders = senders_before_marker(&mut listener, &mut db);
    let own = senders.iter().filter(|s| pids.contains(s)).count();
    assert!(own <= 1, "{own} of 800 starts in a burst notified by themselves");
    // The rest were relayed: once more after the burst, from the dispatcher.
    db.batch_execute("SET workflow.quiet_notify_interval = '1h'; SELECT workflow_start('quiet', '{}')").unwrap();
    assert_ne!(next_sender(&mut listener, "workflow_activity_ready", "quiet_q"), pid);
}

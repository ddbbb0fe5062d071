//! A worker as its own OS process, for the crash test to kill with SIGKILL: claims
//! activities, prints `ran <id> <attempt>` before completing each (its side of the
//! record; stdout is a pipe, written line by line), then completes it. It exits on any
//! error (the test starts a new one); killed, its claims stay with it until their lease
//! expires, as a crashed worker's would.
//!   crash_worker "<connection string>"

use postgres::{Client, NoTls};
use std::io::Write;
use std::time::Duration;

fn main() {
    let url = std::env::args().nth(1).expect("usage: crash_worker <connection string>");
    let Ok(mut db) = Client::connect(&format!("{url} application_name=pgw-crash-worker"), NoTls) else { return };
    let mut out = std::io::stdout().lock();
    loop {
        let Ok(claimed) = db.query(
            "SELECT activity_id::text, attempt FROM workflow_claim('default', 'crash-process', 3, '1 second')",
            &[],
        ) else {
            return;
        };
        if claimed.is_empty() {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        for row in claimed {
            let (activity, attempt): (String, i32) = (row.get(0), row.get(1));
            if writeln!(out, "ran {activity} {attempt}").and_then(|_| out.flush()).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(2)); // the work: a window to be killed in
            let output = format!(r#"{{"activity": "{activity}", "attempt": {attempt}}}"#);
            if db
                .query_one(
                    "SELECT workflow_complete_activity($1::text::uuid, $2::text::jsonb, $3)",
                    &[&activity, &output, &attempt],
                )
                .is_err()
            {
                return; // stale claim or a lost connection: a new process takes over
            }
        }
    }
}

//! Turns the mailbox into NOTIFYs, coalesced: one transaction per flush, one
//! `workflow_activity_ready` per queue, retries announced when they fall due.

use super::guarded;
use crate::wake::{self, Kind};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Default)]
pub struct Notifier {
    /// Queues with retries that become claimable later: due time -> queues.
    later: BTreeMap<i64, BTreeSet<String>>,
}

fn now_micros() -> i64 {
    unsafe { pg_sys::GetCurrentTimestamp() }
}

fn uuid_text(bytes: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*bytes).to_string()
}

impl Notifier {
    /// Sends what is due; returns microseconds until the next retry to announce.
    pub fn flush(&mut self, db: u32) -> Option<i64> {
        let (events, overflowed) = wake::drain(db);
        let now = now_micros();
        let mut channels: Vec<String> = Vec::new();
        let mut payloads: Vec<String> = Vec::new();
        let mut queues: BTreeSet<String> = BTreeSet::new();
        for e in &events {
            match e.kind {
                Kind::QueueReady if e.due_at > now => {
                    self.later.entry(e.due_at).or_default().insert(e.queue().to_owned());
                }
                Kind::QueueReady => {
                    queues.insert(e.queue().to_owned());
                }
                Kind::ExecutionFinished => {
                    channels.push("workflow_execution_finished".into());
                    payloads.push(uuid_text(&e.id));
                }
                Kind::ExecutionReady => {
                    channels.push("workflow_execution_ready".into());
                    payloads.push(uuid_text(&e.id));
                }
                Kind::Empty => {}
            }
        }
        let due: Vec<i64> = self.later.range(..=now).map(|(k, _)| *k).collect();
        for k in due {
            queues.extend(self.later.remove(&k).unwrap_or_default());
        }
        let scan_queues = overflowed;
        if channels.is_empty() && queues.is_empty() && !scan_queues {
            return self.later.keys().next().map(|t| t - now);
        }
        for q in queues {
            channels.push("workflow_activity_ready".into());
            payloads.push(q);
        }
        guarded("sending notifications", move || {
            Spi::connect_mut(|c| {
                if scan_queues {
                    // Events were lost to a full mailbox: announce every queue with work.
                    let _ = c.update(
                        "SELECT pg_catalog.pg_notify('workflow_activity_ready', queue) FROM (SELECT DISTINCT queue \
                         FROM workflow_activity WHERE status = 'scheduled' AND kind = 'task' AND scheduled_at <= now()) q",
                        None,
                        &[],
                    );
                }
                if !channels.is_empty() {
                    let _ = c.update(
                        "SELECT pg_catalog.pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS t(c, p)",
                        None,
                        &[channels.into(), payloads.into()],
                    );
                }
            })
        });
        self.later.keys().next().map(|t| t - now)
    }
}

//! Turns the mailbox into NOTIFYs, coalesced: one transaction per flush, one
//! `workflow_activity_ready` per queue, retries announced when they fall due.

use super::guarded;
use crate::engine::notices as statements;
use crate::wake::{announcement, Event};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Default)]
pub struct Notifier {
    /// What falls due later (a retry's backoff): due time -> (channel, payload).
    later: BTreeMap<i64, BTreeSet<(&'static str, String)>>,
}

fn now_micros() -> i64 {
    unsafe { pg_sys::GetCurrentTimestamp() }
}

impl Notifier {
    /// Sends what is due; returns microseconds until the next announcement due later.
    pub fn flush(&mut self, events: &[Event], overflowed: bool) -> Option<i64> {
        let now = now_micros();
        let mut due: BTreeSet<(&'static str, String)> = BTreeSet::new();
        // What backends waiting in workflow_claim_wait have not heard of: the committing
        // transaction woke one waiter for each queue it made claimable at once (due_at
        // 0); a retry's queue falls due only now.
        let mut unheard: BTreeSet<String> = BTreeSet::new();
        for e in events {
            let Some(announcement) = announcement(e) else { continue };
            if e.due_at > now {
                self.later.entry(e.due_at).or_default().insert(announcement);
            } else {
                if e.due_at != 0 && announcement.0 == "workflow_activity_ready" {
                    unheard.insert(announcement.1.clone());
                }
                due.insert(announcement);
            }
        }
        let times: Vec<i64> = self.later.range(..=now).map(|(k, _)| *k).collect();
        for k in times {
            let fallen_due = self.later.remove(&k).unwrap_or_default();
            unheard.extend(fallen_due.iter().filter(|(c, _)| *c == "workflow_activity_ready").map(|(_, q)| q.clone()));
            due.extend(fallen_due);
        }
        let db = unsafe { pg_sys::MyDatabaseId.to_u32() };
        for queue in &unheard {
            crate::waiters::wake_one(db, queue);
        }
        if overflowed {
            crate::waiters::wake_all(db);
        }
        if !due.is_empty() || overflowed {
            // One per channel and payload: queues once each, however many events named them.
            let (channels, payloads): (Vec<String>, Vec<String>) =
                due.into_iter().map(|(c, p)| (c.to_owned(), p)).unzip();
            guarded("sending notifications", move || {
                Spi::connect_mut(|c| statements::send(c, channels, payloads, overflowed))
                    .unwrap_or_else(|e| pgrx::warning!("pg_workflow: notify: {e}"))
            });
            crate::wake::relayed_notifications();
        }
        self.later.keys().next().map(|t| t - now)
    }
}

//! Turns the mailbox into NOTIFYs, coalesced: one transaction per flush, one
//! `workflow_activity_ready` per queue, retries announced when they fall due.

use super::guarded;
use crate::engine::notices as statements;
use crate::wake::{notification, Event, Kind};
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

impl Notifier {
    /// Sends what is due; returns microseconds until the next retry to announce.
    pub fn flush(&mut self, events: &[Event], overflowed: bool) -> Option<i64> {
        let now = now_micros();
        let mut channels: Vec<String> = Vec::new();
        let mut payloads: Vec<String> = Vec::new();
        let mut queues: BTreeSet<String> = BTreeSet::new();
        for e in events {
            match notification(e, now) {
                Some(("workflow_activity_ready", queue)) => {
                    queues.insert(queue);
                }
                Some((channel, payload)) => {
                    channels.push(channel.into());
                    payloads.push(payload);
                }
                // A retry that falls due later: announced then.
                None if e.kind == Kind::QueueReady => {
                    self.later.entry(e.due_at).or_default().insert(e.queue().to_owned());
                }
                None => {}
            }
        }
        let due: Vec<i64> = self.later.range(..=now).map(|(k, _)| *k).collect();
        for k in due {
            queues.extend(self.later.remove(&k).unwrap_or_default());
        }
        if !channels.is_empty() || !queues.is_empty() || overflowed {
            for q in queues {
                channels.push("workflow_activity_ready".into());
                payloads.push(q);
            }
            guarded("sending notifications", move || {
                Spi::connect_mut(|c| statements::send(c, channels, payloads, overflowed))
                    .unwrap_or_else(|e| pgrx::warning!("pg_workflow: notify: {e}"))
            });
        }
        self.later.keys().next().map(|t| t - now)
    }
}

//! The engine: every state transition of executions and activities, as SQL run through
//! SPI in the caller's transaction. It uses the plain-Rust model for decisions and is
//! called by the SQL API and by the dispatcher; it calls neither.
//!
//! Locking order, everywhere: the execution row first, then its activity rows. Claims
//! lock only activity rows (SKIP LOCKED), so they never wait on a transition.

pub mod activity;
pub mod admission;
pub mod advance;
pub mod await_finish;
pub mod claim;
pub mod claim_wait;
pub mod client_driven;
pub mod compensation;
pub mod cron_schedules;
pub mod definitions;
pub mod dispatch;
pub mod execution;
pub mod extension;
pub mod grants;
pub mod graph;
pub mod limits;
pub mod notices;
pub mod plan;
pub mod privileges;
pub mod queues;
pub mod replay;
pub mod rows;
pub mod schedule;
pub mod search;
pub mod signal;
pub mod sql_step;
pub mod stats;
pub mod status;
pub mod subtransaction;

pub mod tenancy;

use pgrx::datum::DatumWithOid;
use pgrx::Uuid;
use std::cell::Cell;

/// A new UUIDv7: time-ordered, so ids index like a sequence.
pub fn new_id() -> Uuid {
    Uuid::from_bytes(*uuid::Uuid::now_v7().as_bytes())
}

/// Shorthand for building SPI argument lists.
pub fn arg<'a, T: pgrx::IntoDatum>(value: T) -> DatumWithOid<'a> {
    value.into()
}

thread_local! {
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// A uniform number in [0, 1) for retry jitter (xorshift; quality is irrelevant here).
pub fn unit_random() -> f64 {
    RNG.with(|state| {
        let mut x = state.get();
        if x == 0 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1);
            x = nanos ^ ((std::process::id() as u64) << 32) | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

//! `workflow_claim_wait`: a claim that, finding nothing, waits in the backend for work on
//! its queue (src/waiters.rs) instead of returning at once, so a worker hears of new
//! work without LISTEN and a commit wakes one waiting worker instead of every listener.

use super::claim::Claimed;
use crate::error::{Result, WorkflowError};
use crate::waiters;
use pgrx::datum::Interval;
use pgrx::pg_sys;

/// The longest wait: the call holds a snapshot while it waits, and with it VACUUM's
/// horizon, like any statement that runs this long.
pub const MAX_WAIT_SECONDS: i64 = 60;

/// Checks `timeout` and the transaction before a wait.
pub fn check_wait(timeout: &Interval) -> Result<i64> {
    let micros = timeout.as_micros();
    if timeout.months() != 0 || !(0..=MAX_WAIT_SECONDS as i128 * 1_000_000).contains(&micros) {
        return Err(WorkflowError::invalid(format!(
            "timeout must be from 0 to {MAX_WAIT_SECONDS} seconds (no months or years), such as '1 second'"
        )));
    }
    // Under REPEATABLE READ or SERIALIZABLE every attempt reads the transaction's first
    // snapshot: the work it waits for could never appear.
    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        return Err(WorkflowError::unsupported(
            "workflow_claim_wait cannot wait in a REPEATABLE READ or SERIALIZABLE transaction: it would never see new work",
        )
        .with_hint("call it in READ COMMITTED (the default), or call workflow_claim"));
    }
    Ok(micros as i64)
}

/// Runs `attempt` (a claim of up to `max_count` on `queue`) until it claims something or
/// `timeout_micros` has passed, sleeping between attempts until a commit makes work
/// claimable on the queue. A claim that was woken and took all it asked for wakes the
/// next waiter: the commit that woke it may have made more claimable than it took. (One
/// that found work at once does not: under load nobody sleeps long, and each such wake
/// would cost a waiter an empty attempt.)
pub fn claim_wait(
    queue: &str,
    max_count: i32,
    timeout_micros: i64,
    mut attempt: impl FnMut() -> Vec<Claimed>,
) -> Vec<Claimed> {
    let deadline = clock() + timeout_micros;
    // Under load the work is there: the first attempt goes without touching shared memory.
    let claimed = attempt();
    if !claimed.is_empty() || timeout_micros == 0 {
        return claimed;
    }
    // Registered before the next attempt, so a commit after its snapshot still wakes it.
    let registration = waiters::register(queue);
    let mut slept = false;
    loop {
        if let (Some(r), true) = (&registration, slept) {
            r.rearm(); // woken: wakes set from now on are for the attempt to come
        }
        let claimed = attempt();
        if !claimed.is_empty() {
            drop(registration); // out first, or the next to wake could be itself
            if slept && claimed.len() >= max_count as usize {
                waiters::wake_one(unsafe { pg_sys::MyDatabaseId.to_u32() }, queue);
            }
            return claimed;
        }
        let left_ms = (deadline - clock()) / 1000;
        if left_ms <= 0 {
            return claimed;
        }
        // Without a registration (no preload, or every entry taken) nobody wakes it: poll.
        if registration.is_none() {
            waiters::sleep(left_ms.min(waiters::POLL_MS));
            continue;
        }
        if !waiters::sleep(left_ms) {
            return claimed; // the timeout passed and nothing woke it
        }
        slept = true;
    }
}

/// The wall clock (not now(), the transaction's start), in microseconds.
fn clock() -> i64 {
    unsafe { pg_sys::GetCurrentTimestamp() }
}

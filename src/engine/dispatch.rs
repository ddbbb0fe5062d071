//! One pass of due work: what the background worker runs, and what `workflow_dispatch()`
//! runs where it is not preloaded. Retries need no promotion: a `scheduled` row with a
//! future `scheduled_at` simply becomes claimable when its time comes.

use pgrx::pg_sys::BuiltinOid::*;
use super::plan::{run, Statement};
use super::{activity, arg, execution};
use crate::error::{Result, WorkflowError};
use pgrx::spi::SpiClient;
use pgrx::{Uuid};

// Candidates are read without locks; each is re-checked under the engine's lock order.
static EXPIRED_LEASES: Statement = Statement {
    sql: "SELECT id, attempt FROM @extschema@.workflow_activity \
          WHERE status = 'running' AND lease_expires_at < now() ORDER BY started_at LIMIT $1",
    args: &[INT4OID],
};
static DUE_STARTS: Statement = Statement {
    sql: "SELECT id FROM @extschema@.workflow_execution \
          WHERE status = 'pending' AND started_at <= now() ORDER BY started_at LIMIT $1 \
          FOR UPDATE SKIP LOCKED",
    args: &[INT4OID],
};

/// Runs one pass over at most `max_items` items of each kind; returns how many moved.
pub fn dispatch(client: &mut SpiClient<'_>, max_items: Option<i32>) -> Result<i32> {
    let max_items = max_items.unwrap_or(1000);
    if max_items < 1 {
        return Err(WorkflowError::invalid(format!("max_items must be at least 1, got {max_items}")));
    }
    let mut moved = 0;

    let expired: Vec<(Uuid, i32)> = run(client, &EXPIRED_LEASES, &[arg(max_items)])?
        .into_iter()
        .filter_map(|r| Some((r.get::<Uuid>(1).ok()??, r.get::<i32>(2).ok()??)))
        .collect();
    for (id, attempt) in expired {
        if activity::expire_lease(client, id, attempt)? {
            moved += 1;
        }
    }

    let due: Vec<Uuid> = run(client, &DUE_STARTS, &[arg(max_items)])?
        .into_iter()
        .filter_map(|r| r.get::<Uuid>(1).ok().flatten())
        .collect();
    for id in due {
        if execution::start_pending(client, id)? {
            moved += 1;
        }
    }
    Ok(moved)
}

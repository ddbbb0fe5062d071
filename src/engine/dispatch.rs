//! One pass of due work: what the background worker runs, and what `workflow_dispatch()`
//! runs where it is not preloaded. Retries need no promotion: a `scheduled` row with a
//! future `scheduled_at` simply becomes claimable when its time comes.

use super::plan::{run, Statement};
use super::rows::{self, ExecutionStatus};
use super::{activity, arg, execution, sql_step};
use crate::error::{Result, WorkflowError};
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use serde_json::json;

// Candidates are read without locks; each is re-checked under the engine's lock order.
static EXPIRED_LEASES: Statement = Statement {
    sql: "SELECT id, attempt FROM @extschema@.workflow_activity \
          WHERE status = 'running' AND lease_expires_at < now() ORDER BY started_at LIMIT $1",
    args: &[INT4OID],
};
static DUE_WAITS: Statement = Statement {
    sql: "SELECT id FROM @extschema@.workflow_activity \
          WHERE status = 'waiting' AND scheduled_at <= now() ORDER BY scheduled_at LIMIT $1",
    args: &[INT4OID],
};
static EXPIRED_STEPS: Statement = Statement {
    sql: "SELECT id FROM @extschema@.workflow_activity \
          WHERE expires_at < now() AND status IN ('scheduled', 'running') ORDER BY expires_at LIMIT $1",
    args: &[INT4OID],
};
static PAST_DEADLINE: Statement = Statement {
    sql: "SELECT id FROM @extschema@.workflow_execution \
          WHERE status = 'running' AND deadline < now() ORDER BY deadline LIMIT $1",
    args: &[INT4OID],
};
static DUE_STARTS: Statement = Statement {
    sql: "SELECT id FROM @extschema@.workflow_execution \
          WHERE status = 'pending' AND started_at <= now() ORDER BY started_at LIMIT $1",
    args: &[INT4OID],
};

fn ids(client: &mut SpiClient<'_>, stmt: &'static Statement, limit: i32) -> Result<Vec<Uuid>> {
    Ok(run(client, stmt, &[arg(limit)])?.filter_map(|r| r.get::<Uuid>(1).ok().flatten()).collect())
}

/// Fails a running execution whose workflow timeout has passed. True if it did.
fn time_out_execution(client: &mut SpiClient<'_>, id: Uuid) -> Result<bool> {
    let exec = rows::lock_execution(client, id, None)?;
    if exec.status != ExecutionStatus::Running {
        return Ok(false);
    }
    let error = json!({"type": "Timeout", "message": format!("execution {id} passed its workflow timeout")});
    super::advance::close(client, &exec, ExecutionStatus::Failed, error)?;
    Ok(true)
}

// Microseconds until the earliest due item (negative: overdue), or NULL if nothing waits.
// Each min() reads the first entry of a partial index. A signal wait without a timeout
// is due at 'infinity' (never), a sleep until an input timestamp may be at either
// infinity: neither may reach the subtraction, which rejects infinite timestamps.
static NEXT_DUE: Statement = Statement {
    sql: "SELECT CASE WHEN due = 'infinity' THEN NULL WHEN due = '-infinity' THEN -1 \
                      ELSE (extract(epoch FROM due - clock_timestamp()) * 1000000)::int8 END \
          FROM (SELECT least( \
            (SELECT min(scheduled_at) FROM @extschema@.workflow_activity WHERE status = 'waiting'), \
            (SELECT min(lease_expires_at) FROM @extschema@.workflow_activity WHERE status = 'running'), \
            (SELECT min(expires_at) FROM @extschema@.workflow_activity \
              WHERE expires_at IS NOT NULL AND status IN ('scheduled', 'running')), \
            (SELECT min(scheduled_at) FROM @extschema@.workflow_activity WHERE $1 AND kind = 'sql' AND status = 'scheduled'), \
            (SELECT min(deadline) FROM @extschema@.workflow_execution WHERE status = 'running' AND deadline IS NOT NULL), \
            (SELECT min(started_at) FROM @extschema@.workflow_execution WHERE status = 'pending'), \
            (SELECT min(next_fire_at) FROM @extschema@.workflow_schedule WHERE NOT paused), \
            (SELECT now() FROM @extschema@.workflow_schedule s \
              WHERE s.buffered_fire_at IS NOT NULL AND NOT s.paused AND NOT EXISTS \
                (SELECT FROM @extschema@.workflow_execution e \
                 WHERE e.id = s.last_execution AND e.status IN ('pending', 'running')) LIMIT 1) \
          ) AS due) next",
    args: &[BOOLOID],
};
static SQL_DUE: Statement = Statement {
    sql: "SELECT EXISTS (SELECT FROM @extschema@.workflow_activity \
          WHERE kind = 'sql' AND status = 'scheduled' AND scheduled_at <= now())",
    args: &[],
};
static PURGE: Statement = Statement {
    sql: "DELETE FROM @extschema@.workflow_execution WHERE id IN ( \
            SELECT id FROM @extschema@.workflow_execution \
            WHERE status IN ('completed', 'failed', 'cancelled') \
              AND finished_at < now() - $1::float8 * interval '1 microsecond' \
            ORDER BY finished_at LIMIT $2)",
    args: &[INT8OID, INT4OID],
};

/// Microseconds until something is due, if anything waits; sql steps count only with
/// `with_sql_steps` (not while a runner is there to run them).
pub fn next_due(client: &mut SpiClient<'_>, with_sql_steps: bool) -> Result<Option<i64>> {
    Ok(run(client, &NEXT_DUE, &[arg(with_sql_steps)])?.next().and_then(|r| r.get::<i64>(1).ok().flatten()))
}

/// Whether an sql step is due (the dispatcher then starts its runner).
pub fn sql_due(client: &mut SpiClient<'_>) -> Result<bool> {
    Ok(run(client, &SQL_DUE, &[])?.next().and_then(|r| r.get::<bool>(1).ok().flatten()).unwrap_or(false))
}

/// Deletes up to `limit` executions finished longer than `retention` ago (with their
/// steps and signals, by cascade); returns how many.
pub fn purge(client: &mut SpiClient<'_>, retention: crate::model::interval::Micros, limit: i32) -> Result<i32> {
    Ok(run(client, &PURGE, &[arg(retention), arg(limit)])?.len() as i32)
}

/// `workflow_dispatch()`: one pass, with sql steps run in the caller's transaction.
/// Without the preload there is no dispatcher to announce work that time made due (a
/// retry whose backoff ended): the call notifies every queue with claimable work, and
/// the client-driven executions that wait for a replay.
pub fn dispatch(client: &mut SpiClient<'_>, max_items: i32) -> Result<i32> {
    let mut moved = pass(client, max_items)?;
    for id in sql_step::due(client, max_items)? {
        moved += sql_step::run_one(client, id)? as i32;
    }
    if !crate::wake::enabled() {
        super::notices::announce_ready_queues(client)?;
        super::notices::announce_ready_executions(client, max_items)?;
    }
    Ok(moved)
}

/// Runs one pass over at most `max_items` items of each kind; returns how many moved.
/// sql steps are left to the caller (the dispatcher hands them to its runner).
pub fn pass(client: &mut SpiClient<'_>, max_items: i32) -> Result<i32> {
    if max_items < 1 {
        return Err(WorkflowError::invalid(format!("max_items must be at least 1, got {max_items}")));
    }
    let mut moved = 0;
    let expired: Vec<(Uuid, i32)> = run(client, &EXPIRED_LEASES, &[arg(max_items)])?
        .filter_map(|r| Some((r.get::<Uuid>(1).ok()??, r.get::<i32>(2).ok()??)))
        .collect();
    for (id, attempt) in expired {
        moved += activity::expire_lease(client, id, attempt)? as i32;
    }
    for id in ids(client, &EXPIRED_STEPS, max_items)? {
        moved += activity::expire_schedule_to_close(client, id)? as i32;
    }
    for id in ids(client, &DUE_WAITS, max_items)? {
        moved += activity::fire_due_wait(client, id)? as i32;
    }
    for id in ids(client, &PAST_DEADLINE, max_items)? {
        moved += time_out_execution(client, id)? as i32;
    }
    for id in ids(client, &DUE_STARTS, max_items)? {
        moved += execution::start_pending(client, id)? as i32;
    }
    moved += super::cron_schedules::fire_due(client, max_items)?;
    Ok(moved)
}

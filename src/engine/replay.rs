//! Client-driven executions replayed by one process at a time (README: SQL API,
//! "Engines on client-driven executions").
//!
//! An SDK replays an execution's code to find its next steps. With several processes
//! listening, each must not replay the same execution: `workflow_claim_executions` hands
//! an execution that is ready (something it waits for finished, or it just started) to
//! one process for a lease, with a fencing token; scheduling steps and ending the
//! execution with that token fail (55000) once the turn was lost. While a turn is held,
//! `ready_at` is parked at the lease's end: a process that dies mid-replay leaves an
//! execution that becomes claimable by itself when the lease runs out, through the same
//! index as a ready one (no lease column is indexed). Something finishing during the
//! turn sets `ready_at` to now (`advance::MARK_READY`), so releasing the turn leaves the
//! execution ready for another replay at once; an activity failing during the turn, with
//! its retry due later, leaves it ready for when the retry is due.

use super::arg;
use super::plan::{run, Statement};
use super::tenancy::Caller;
use crate::error::{Result, WorkflowError};
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;
use pgrx::{JsonB, Uuid};

/// The most executions one `workflow_claim_executions` call hands out.
pub const MAX_CLAIM: i32 = 1_000;

// The idempotency index: (workflow_type, idempotency_key, coalesce(tenant_id, '')).
static FIND: Statement = Statement {
    sql: "SELECT id FROM @extschema@.workflow_execution \
          WHERE workflow_type = $1 AND idempotency_key = $2 AND coalesce(tenant_id, '') = coalesce($3, '')",
    args: &[TEXTOID, TEXTOID, TEXTOID],
};

// Served by workflow_execution_ready (ready_at) WHERE ready_at IS NOT NULL. A turn still
// held has its ready_at parked in the future, so the lease test is only a recheck.
static CLAIM: Statement = Statement {
    sql: "WITH picked AS ( \
            SELECT id FROM @extschema@.workflow_execution \
            WHERE ready_at <= now() AND status = 'running' AND definition_version IS NULL \
              AND workflow_type = ANY($1) \
              AND (replay_lease_expires_at IS NULL OR replay_lease_expires_at <= now()) \
              AND ($5::text IS NULL OR tenant_id = $5) \
            ORDER BY ready_at LIMIT $3 \
            FOR UPDATE SKIP LOCKED) \
          UPDATE @extschema@.workflow_execution e \
          SET ready_at = now() + $4, replay_worker = $2, replay_lease_expires_at = now() + $4, \
              replay_token = e.replay_token + 1 \
          FROM picked WHERE e.id = picked.id \
          RETURNING e.id, e.workflow_type, e.input, e.replay_token, e.replay_lease_expires_at",
    args: &[TEXTARRAYOID, TEXTOID, INT4OID, INTERVALOID, TEXTOID],
};

// A turn is the caller's while its token is the current one, even after the lease ran
// out, as long as nobody claimed the execution since. ready_at moves with the lease only
// while it is parked there (equal to the lease's end, still ahead); where something
// finishing put it (now) or a retry's due time (advance::READY_FOR_RETRY) stays. A retry
// due after the lease's end was folded into the parked value: it is looked up again, so
// that neither moving nor releasing the turn forgets it.
macro_rules! next_retry {
    () => {
        "(SELECT min(a.scheduled_at) FROM @extschema@.workflow_activity a \
          WHERE a.execution_id = $1 AND a.status = 'scheduled' AND a.attempt > 0 AND a.scheduled_at > now())"
    };
}
static RENEW: Statement = Statement {
    sql: concat!(
        "UPDATE @extschema@.workflow_execution \
          SET replay_lease_expires_at = now() + $3, \
              ready_at = CASE WHEN ready_at = replay_lease_expires_at AND ready_at > now() \
                              THEN least(now() + $3, ",
        next_retry!(),
        ") ELSE ready_at END \
          WHERE id = $1 AND replay_token = $2 AND replay_worker IS NOT NULL AND (status = 'running') IS TRUE \
            AND ($4::text IS NULL OR tenant_id = $4) \
          RETURNING id"
    ),
    args: &[UUIDOID, INT4OID, INTERVALOID, TEXTOID],
};

static RELEASE: Statement = Statement {
    sql: concat!(
        "UPDATE @extschema@.workflow_execution \
          SET replay_worker = NULL, replay_lease_expires_at = NULL, \
              ready_at = CASE WHEN ready_at = replay_lease_expires_at AND ready_at > now() \
                              THEN ",
        next_retry!(),
        " ELSE ready_at END \
          WHERE id = $1 AND replay_token = $2 AND replay_worker IS NOT NULL \
            AND ($3::text IS NULL OR tenant_id = $3) \
          RETURNING id"
    ),
    args: &[UUIDOID, INT4OID, TEXTOID],
};

static TURN: Statement = Statement {
    sql: "SELECT replay_token, replay_worker FROM @extschema@.workflow_execution WHERE id = $1",
    args: &[UUIDOID],
};

/// `workflow_find`: the execution started with this idempotency key, if any.
pub fn find(
    client: &mut SpiClient<'_>,
    caller: &Caller,
    workflow_type: &str,
    idempotency_key: &str,
    tenant_id: Option<String>,
) -> Result<Option<Uuid>> {
    let tenant = super::tenancy::tenant_for_start(caller, tenant_id)?;
    Ok(run(client, &FIND, &[arg(workflow_type), arg(idempotency_key), arg(tenant.as_deref())])?
        .next()
        .and_then(|r| r.get::<Uuid>(1).ok().flatten()))
}

pub struct ClaimedExecution {
    pub execution_id: Uuid,
    pub workflow_type: String,
    pub input: JsonB,
    pub lease_token: i32,
    pub lease_expires_at: TimestampWithTimeZone,
}

fn check_lease(lease: &Interval) -> Result<()> {
    if lease.as_micros() <= 0 || lease.months() != 0 {
        return Err(WorkflowError::invalid(
            "lease must be a positive interval without months or years, such as '1 minute'",
        ));
    }
    Ok(())
}

/// `workflow_claim_executions`.
pub fn claim(
    client: &mut SpiClient<'_>,
    caller: &Caller,
    workflow_types: Vec<String>,
    worker_id: &str,
    max_count: i32,
    lease: Interval,
) -> Result<Vec<ClaimedExecution>> {
    if workflow_types.is_empty() {
        return Err(WorkflowError::invalid("workflow_types must name at least one workflow type"));
    }
    if worker_id.trim().is_empty() {
        return Err(WorkflowError::invalid("worker_id must not be empty; pass a name for this process (host:pid)"));
    }
    if !(1..=MAX_CLAIM).contains(&max_count) {
        return Err(WorkflowError::invalid(format!("max_count must be from 1 to {MAX_CLAIM}, got {max_count}")));
    }
    check_lease(&lease)?;
    let rows = run(
        client,
        &CLAIM,
        &[arg(workflow_types), arg(worker_id), arg(max_count), arg(lease), arg(caller.tenant.as_deref())],
    )?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let missing = || WorkflowError::internal("claim_executions returned a row with a NULL key column");
        claimed.push(ClaimedExecution {
            execution_id: row.get(1)?.ok_or_else(missing)?,
            workflow_type: row.get(2)?.unwrap_or_default(),
            input: row.get(3)?.unwrap_or(JsonB(serde_json::Value::Null)),
            lease_token: row.get(4)?.ok_or_else(missing)?,
            lease_expires_at: row.get(5)?.ok_or_else(missing)?,
        });
    }
    Ok(claimed)
}

/// `workflow_renew_execution`: true while the turn is still the caller's.
pub fn renew(client: &mut SpiClient<'_>, caller: &Caller, id: Uuid, token: i32, lease: Interval) -> Result<bool> {
    check_lease(&lease)?;
    Ok(!run(client, &RENEW, &[arg(id), arg(token), arg(lease), arg(caller.tenant.as_deref())])?.is_empty())
}

/// `workflow_release_execution`: ends the turn; false if it was no longer the caller's.
pub fn release(client: &mut SpiClient<'_>, caller: &Caller, id: Uuid, token: i32) -> Result<bool> {
    Ok(!run(client, &RELEASE, &[arg(id), arg(token), arg(caller.tenant.as_deref())])?.is_empty())
}

/// For a write fenced by `token` on a locked execution: 55000 unless the turn is still
/// the caller's (the execution must be running, which the caller checks).
pub fn check_turn(client: &mut SpiClient<'_>, id: Uuid, token: i32) -> Result<()> {
    let row = run(client, &TURN, &[arg(id)])?.next();
    let (current, worker): (i32, Option<String>) = match row {
        Some(r) => (r.get(1)?.unwrap_or(0), r.get(2)?),
        None => return Err(WorkflowError::not_found(format!("workflow execution {id} does not exist"))),
    };
    if current != token || worker.is_none() {
        return Err(WorkflowError::conflict(format!(
            "the replay turn {token} of execution {id} is over{}; another process replays it now or will",
            if current != token { format!(" (the current turn is {current})") } else { String::new() }
        ))
        .with_hint("stop this replay: claim the execution again with workflow_claim_executions"));
    }
    Ok(())
}

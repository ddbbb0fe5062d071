//! `workflow_claim`: hand due activities of a queue to a worker, under a lease.

use super::arg;
use super::plan::{run, Statement};
use super::tenancy::Caller;
use crate::error::{Result, WorkflowError};
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;
use pgrx::{JsonB, Uuid};

/// The most activities one `workflow_claim` call hands out.
pub const MAX_CLAIM: i32 = 10_000;

// The lease is the shortest of the worker's lease, the step's start-to-close timeout,
// its heartbeat timeout and its schedule-to-close deadline: every timeout is a lease.
// `picked` chooses the rows (locked, SKIP LOCKED) and the claim's instant (`at`), from
// which the lease counts; $2 is the worker, $4 the lease.
macro_rules! claim_picked {
    ($picked:literal) => {
        concat!(
            "WITH picked AS (",
            $picked,
            ") \
             UPDATE @extschema@.workflow_activity a \
             SET status = 'running', attempt = a.attempt + 1, worker_id = $2, started_at = clock_timestamp(), \
                 lease_expires_at = least(picked.at + $4, picked.at + coalesce(a.start_to_close, $4), \
                                          picked.at + coalesce(a.heartbeat_timeout, $4), coalesce(a.expires_at, 'infinity')), \
                 heartbeat_at = NULL, heartbeat = NULL \
             FROM picked, @extschema@.workflow_execution e \
             WHERE a.id = picked.id AND e.id = a.execution_id \
             RETURNING a.id, a.execution_id, e.workflow_type, a.step_key, a.activity_type, a.input, a.attempt, \
                       a.lease_expires_at"
        )
    };
}

// Served by the partial index workflow_activity_claim (queue, priority DESC,
// scheduled_at) WHERE status = 'scheduled' AND kind = 'task'. A caller bound to a tenant
// skips other tenants' rows ($6); for everyone else that test is a constant. $7 is the
// claim's instant: the transaction's start for workflow_claim, the clock for each
// attempt of workflow_claim_wait (its transaction started before the work it waited for).
static CLAIM: Statement = Statement {
    sql: claim_picked!(
        "SELECT id, $7::timestamptz AS at FROM @extschema@.workflow_activity \
         WHERE status = 'scheduled' AND kind = 'task' AND queue = $1 AND scheduled_at <= $7 \
           AND ($5::text[] IS NULL OR activity_type = ANY($5)) \
           AND ($6::text IS NULL OR EXISTS (SELECT FROM @extschema@.workflow_execution t \
                                            WHERE t.id = execution_id AND t.tenant_id = $6)) \
         ORDER BY priority DESC, scheduled_at \
         LIMIT $3 \
         FOR UPDATE SKIP LOCKED"
    ),
    args: &[TEXTOID, TEXTOID, INT4OID, INTERVALOID, TEXTARRAYOID, TEXTOID, TIMESTAMPTZOID],
};

// One activity by id, if it is claimable now ($3, the count, is not used: the shared
// text numbers the worker $2 and the lease $4).
static CLAIM_ONE: Statement = Statement {
    sql: claim_picked!(
        "SELECT id, now() AS at FROM @extschema@.workflow_activity \
         WHERE id = $1 AND (status = 'scheduled' AND kind = 'task') IS TRUE AND scheduled_at <= now() \
           AND ($5::text IS NULL OR EXISTS (SELECT FROM @extschema@.workflow_execution t \
                                            WHERE t.id = execution_id AND t.tenant_id = $5)) \
         FOR UPDATE SKIP LOCKED"
    ),
    args: &[UUIDOID, TEXTOID, INT4OID, INTERVALOID, TEXTOID],
};

pub struct Claimed {
    pub activity_id: Uuid,
    pub execution_id: Uuid,
    pub workflow_type: String,
    pub step_key: String,
    pub activity_type: Option<String>,
    pub input: JsonB,
    pub attempt: i32,
    pub lease_expires_at: TimestampWithTimeZone,
}

fn non_empty(field: &str, value: &str, what: &str) -> Result<String> {
    if value.trim().is_empty() {
        return Err(WorkflowError::invalid(format!("{field} must not be empty; pass {what}")));
    }
    Ok(value.to_owned())
}

fn check_lease(lease: &Interval) -> Result<()> {
    if lease.as_micros() <= 0 || lease.months() != 0 {
        return Err(WorkflowError::invalid(
            "lease must be a positive interval without months or years, such as '5 minutes'",
        ));
    }
    Ok(())
}

fn claimed_rows(rows: pgrx::spi::SpiTupleTable<'_>) -> Result<Vec<Claimed>> {
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let missing = || WorkflowError::internal("claim returned a row with a NULL key column");
        claimed.push(Claimed {
            activity_id: row.get(1)?.ok_or_else(missing)?,
            execution_id: row.get(2)?.ok_or_else(missing)?,
            workflow_type: row.get(3)?.unwrap_or_default(),
            step_key: row.get(4)?.unwrap_or_default(),
            activity_type: row.get(5)?,
            input: row.get(6)?.unwrap_or(JsonB(serde_json::Value::Null)),
            attempt: row.get(7)?.unwrap_or(0),
            lease_expires_at: row.get(8)?.ok_or_else(missing)?,
        });
    }
    Ok(claimed)
}

/// `workflow_claim_activity`: the activity, if it is claimable now (scheduled and due);
/// nothing if a worker has it, it waits for its retry, or it finished.
pub fn claim_activity(
    client: &mut SpiClient<'_>,
    caller: &Caller,
    activity_id: Uuid,
    worker_id: &str,
    lease: Interval,
) -> Result<Vec<Claimed>> {
    let worker_id = non_empty("worker_id", worker_id, "a name for this worker (host:pid)")?;
    check_lease(&lease)?;
    let rows = run(
        client,
        &CLAIM_ONE,
        &[arg(activity_id), arg(worker_id.as_str()), arg(1i32), arg(lease), arg(caller.tenant.as_deref())],
    )?;
    claimed_rows(rows)
}

/// What a worker asks `workflow_claim` (or one attempt of `workflow_claim_wait`) for.
pub struct Request<'a> {
    pub queue: &'a str,
    pub worker_id: &'a str,
    pub max_count: i32,
    pub lease: Interval,
    pub activity_types: Option<Vec<Option<String>>>,
    /// The claim's instant: what is due by then is claimable, and leases count from it.
    pub at: TimestampWithTimeZone,
}

pub fn claim(client: &mut SpiClient<'_>, caller: &Caller, request: Request<'_>) -> Result<Vec<Claimed>> {
    let Request { queue, worker_id, max_count, lease, activity_types, at } = request;
    let queue = non_empty("queue", queue, "a queue name such as 'default'")?;
    let worker_id = non_empty("worker_id", worker_id, "a name for this worker (host:pid)")?;
    if !(1..=MAX_CLAIM).contains(&max_count) {
        return Err(WorkflowError::invalid(format!("max_count must be from 1 to {MAX_CLAIM}, got {max_count}")));
    }
    check_lease(&lease)?;
    let types: Option<Vec<String>> = match activity_types {
        None => None,
        Some(list) => Some(
            list.into_iter()
                .map(|t| t.ok_or_else(|| WorkflowError::invalid("activity_types must not contain NULL")))
                .collect::<Result<_>>()?,
        ),
    };
    // A paused or limited queue admits fewer (its row stays locked until commit).
    let admission = super::queues::admit(client, &queue, max_count)?;
    let max_count = admission.as_ref().map_or(max_count, |a| a.allowed);
    if max_count == 0 {
        return Ok(Vec::new());
    }
    let rows = run(
        client,
        &CLAIM,
        &[
            arg(queue.as_str()),
            arg(worker_id.as_str()),
            arg(max_count),
            arg(lease),
            arg(types),
            arg(caller.tenant.as_deref()),
            arg(at),
        ],
    )?;
    let claimed = claimed_rows(rows)?;
    if let Some(admission) = &admission {
        super::queues::spend(client, &queue, admission, claimed.len())?;
    }
    Ok(claimed)
}

//! The row layer: the execution and activity rows as a transition reads and locks them,
//! and the few writes every kind of step shares (completed, failed, a signal consumed).
//! Everything above it in the engine (scheduling, the transitions in `advance`, the entry
//! points) builds on these; nothing here calls back up.

use super::arg;
use super::definitions;
use super::plan::{run, Statement};
use crate::error::{Result, WorkflowError};
use crate::model::definition::Definition;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::prelude::PgTryBuilder;
use pgrx::spi::SpiClient;
use pgrx::{IntoDatum, JsonB, Uuid};
use serde_json::Value;
use std::ffi::CString;
use std::rc::Rc;

/// An execution's status (the CHECK of workflow_execution.status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Pending => "pending",
            ExecutionStatus::Running => "running",
            ExecutionStatus::Completed => "completed",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Result<ExecutionStatus> {
        Ok(match text {
            "pending" => ExecutionStatus::Pending,
            "running" => ExecutionStatus::Running,
            "completed" => ExecutionStatus::Completed,
            "failed" => ExecutionStatus::Failed,
            "cancelled" => ExecutionStatus::Cancelled,
            other => return Err(WorkflowError::internal(format!("unknown execution status \"{other}\""))),
        })
    }

    /// Not finished: pending or running.
    pub fn is_open(self) -> bool {
        matches!(self, ExecutionStatus::Pending | ExecutionStatus::Running)
    }
}

impl std::fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An activity's status (the CHECK of workflow_activity.status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityStatus {
    Scheduled,
    Running,
    Waiting,
    Completed,
    Failed,
    Cancelled,
    Skipped,
}

impl ActivityStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityStatus::Scheduled => "scheduled",
            ActivityStatus::Running => "running",
            ActivityStatus::Waiting => "waiting",
            ActivityStatus::Completed => "completed",
            ActivityStatus::Failed => "failed",
            ActivityStatus::Cancelled => "cancelled",
            ActivityStatus::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Result<ActivityStatus> {
        Ok(match text {
            "scheduled" => ActivityStatus::Scheduled,
            "running" => ActivityStatus::Running,
            "waiting" => ActivityStatus::Waiting,
            "completed" => ActivityStatus::Completed,
            "failed" => ActivityStatus::Failed,
            "cancelled" => ActivityStatus::Cancelled,
            "skipped" => ActivityStatus::Skipped,
            other => return Err(WorkflowError::internal(format!("unknown activity status \"{other}\""))),
        })
    }
}

impl std::fmt::Display for ActivityStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An execution row as this transaction read it (locked, unless from `read`).
pub struct Execution {
    pub id: Uuid,
    pub status: ExecutionStatus,
    pub workflow_type: String,
    /// None for a client-driven execution.
    pub definition: Option<Rc<Definition>>,
}

macro_rules! execution_query {
    ($suffix:literal) => {
        concat!(
            "SELECT e.status, e.workflow_type, e.definition_version, d.xmin::text \
             FROM @extschema@.workflow_execution e \
             LEFT JOIN @extschema@.workflow_definition d ON d.name = e.workflow_type AND d.version = e.definition_version \
             WHERE e.id = $1",
            $suffix
        )
    };
}

// $2: the caller's tenant, NULL for every tenant. Another tenant's execution is found by
// none of these: it answers like a missing one (P0002), in the statement that locks it.
static EXECUTION_LOCK: Statement = Statement {
    sql: execution_query!(" AND ($2::text IS NULL OR e.tenant_id = $2) FOR UPDATE OF e"),
    args: &[UUIDOID, TEXTOID],
};

// The execution of an activity, locked, in one statement (the activity is not locked).
// The tenant test is a CASE so that the planner cannot take it for a selective filter on
// executions and start the join there: the plan must go from the activity's key.
static EXECUTION_OF_ACTIVITY_LOCK: Statement = Statement {
    sql: "SELECT e.status, e.workflow_type, e.definition_version, d.xmin::text, e.id \
          FROM @extschema@.workflow_activity a \
          JOIN @extschema@.workflow_execution e ON e.id = a.execution_id \
          LEFT JOIN @extschema@.workflow_definition d ON d.name = e.workflow_type AND d.version = e.definition_version \
          WHERE a.id = $1 AND CASE WHEN $2::text IS NULL THEN true ELSE e.tenant_id = $2 END FOR UPDATE OF e",
    args: &[UUIDOID, TEXTOID],
};

static EXECUTION_READ: Statement =
    Statement { sql: execution_query!(" AND ($2::text IS NULL OR e.tenant_id = $2)"), args: &[UUIDOID, TEXTOID] };

/// Locks an execution; P0002 if there is none (for `tenant`: none of that tenant's).
pub fn lock_execution(client: &mut SpiClient<'_>, id: Uuid, tenant: Option<&str>) -> Result<Execution> {
    fetch(client, &EXECUTION_LOCK, id, tenant)
}

/// Locks the execution of activity `activity_id`; P0002 if there is no such activity.
pub fn lock_execution_of_activity(
    client: &mut SpiClient<'_>,
    activity_id: Uuid,
    tenant: Option<&str>,
) -> Result<Execution> {
    let row = run(client, &EXECUTION_OF_ACTIVITY_LOCK, &[arg(activity_id), arg(tenant)])?
        .next()
        .ok_or_else(|| WorkflowError::not_found(format!("workflow activity {activity_id} does not exist")))?;
    let id: Uuid = row.get(5)?.ok_or_else(|| WorkflowError::internal("execution without id"))?;
    execution_from_row(client, id, &row)
}

/// Reads an execution without locking it (for status queries).
pub fn read_execution(client: &mut SpiClient<'_>, id: Uuid, tenant: Option<&str>) -> Result<Execution> {
    fetch(client, &EXECUTION_READ, id, tenant)
}

fn fetch(client: &mut SpiClient<'_>, stmt: &'static Statement, id: Uuid, tenant: Option<&str>) -> Result<Execution> {
    let rows = run(client, stmt, &[arg(id), arg(tenant)])?;
    let row = rows
        .into_iter()
        .next()
        .ok_or_else(|| WorkflowError::not_found(format!("workflow execution {id} does not exist")))?;
    execution_from_row(client, id, &row)
}

fn execution_from_row(
    client: &mut SpiClient<'_>,
    id: Uuid,
    row: &pgrx::spi::SpiHeapTupleData<'_>,
) -> Result<Execution> {
    let status = ExecutionStatus::parse(&row.get::<String>(1)?.unwrap_or_default())?;
    let workflow_type: String = row.get(2)?.unwrap_or_default();
    let version: Option<i32> = row.get(3)?;
    let stamp: Option<String> = row.get(4)?;
    let definition = match (version, stamp) {
        (Some(v), Some(stamp)) => Some(definitions::load(client, &workflow_type, v, &stamp)?),
        _ => None,
    };
    Ok(Execution { id, status, workflow_type, definition })
}

/// Parses timestamp text with Postgres' own input function, as a 22023 on failure.
pub fn parse_timestamptz(field: &str, text: &str) -> Result<TimestampWithTimeZone> {
    let bad = || {
        WorkflowError::invalid(format!("{field} \"{text}\" is not a timestamp; write e.g. \"2030-01-01T12:00:00Z\""))
    };
    let c = CString::new(text).map_err(|_| bad())?;
    let parsed = PgTryBuilder::new(|| unsafe {
        pgrx::direct_function_call::<TimestampWithTimeZone>(
            pg_sys::timestamptz_in,
            &[Some(pg_sys::Datum::from(c.as_ptr())), pg_sys::Oid::INVALID.into_datum(), (-1i32).into_datum()],
        )
    })
    .catch_others(|_| None)
    .execute();
    parsed.ok_or_else(bad)
}

static ACTIVITY_LOCK: Statement = Statement {
    sql: "SELECT status, attempt, step_key, kind, retry, coalesce(lease_expires_at < now(), false), \
                 scheduled_at <= now(), coalesce(expires_at < now(), false) \
          FROM @extschema@.workflow_activity WHERE id = $1 FOR UPDATE",
    args: &[UUIDOID],
};

static MARK_COMPLETED: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_activity \
          SET status = 'completed', output = $2, finished_at = now(), lease_expires_at = NULL \
          WHERE id = $1",
    args: &[UUIDOID, JSONBOID],
};

pub(super) static MARK_FAILED: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_activity \
          SET status = 'failed', error = $2, finished_at = now(), lease_expires_at = NULL \
          WHERE id = $1",
    args: &[UUIDOID, JSONBOID],
};

/// An activity row locked by this transaction.
pub struct LockedActivity {
    pub id: Uuid,
    pub status: ActivityStatus,
    pub attempt: i32,
    pub step_key: String,
    pub kind: String,
    pub retry: Value,
    pub lease_expired: bool,
    pub due: bool,
    pub expired: bool,
}

/// Locks the activity's execution, then the activity (the engine's lock order).
pub fn lock_activity(
    client: &mut SpiClient<'_>,
    id: Uuid,
    tenant: Option<&str>,
) -> Result<(Execution, LockedActivity)> {
    let not_found = || WorkflowError::not_found(format!("workflow activity {id} does not exist"));
    let exec = lock_execution_of_activity(client, id, tenant)?;
    let rows = run(client, &ACTIVITY_LOCK, &[arg(id)])?;
    let row = rows.into_iter().next().ok_or_else(not_found)?;
    let act = LockedActivity {
        id,
        status: ActivityStatus::parse(&row.get::<String>(1)?.unwrap_or_default())?,
        attempt: row.get(2)?.unwrap_or(0),
        step_key: row.get(3)?.unwrap_or_default(),
        kind: row.get(4)?.unwrap_or_default(),
        retry: row.get::<JsonB>(5)?.map(|j| j.0).unwrap_or(Value::Null),
        lease_expired: row.get(6)?.unwrap_or(false),
        due: row.get(7)?.unwrap_or(false),
        expired: row.get(8)?.unwrap_or(false),
    };
    Ok((exec, act))
}

/// Marks a locked activity completed (no checks; the caller decided).
pub fn mark_completed(client: &mut SpiClient<'_>, id: Uuid, output: Value) -> Result<()> {
    run(client, &MARK_COMPLETED, &[arg(id), arg(JsonB(output))])?;
    Ok(())
}

static ACTIVITY_STATUS: Statement = Statement {
    sql: "SELECT status, scheduled_at <= now() FROM @extschema@.workflow_activity WHERE id = $1 FOR UPDATE",
    args: &[UUIDOID],
};

/// Locks an activity whose execution the caller has locked: its status and whether it is due.
pub fn lock_activity_status(client: &mut SpiClient<'_>, id: Uuid) -> Result<Option<(ActivityStatus, bool)>> {
    let rows = run(client, &ACTIVITY_STATUS, &[arg(id)])?;
    match rows.into_iter().next() {
        Some(row) => {
            Ok(Some((ActivityStatus::parse(&row.get::<String>(1)?.unwrap_or_default())?, row.get(2)?.unwrap_or(false))))
        }
        None => Ok(None),
    }
}

static CONSUME: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_signal s SET consumed_at = now(), consumed_by = $3 \
          WHERE s.id = (SELECT id FROM @extschema@.workflow_signal \
                        WHERE execution_id = $1 AND name = $2 AND consumed_at IS NULL \
                        ORDER BY created_at, id LIMIT 1 FOR UPDATE) \
          RETURNING s.payload",
    args: &[UUIDOID, TEXTOID, TEXTOID],
};

/// Takes the oldest unconsumed signal `name` for step `step_key`; its payload if any.
pub fn consume_signal(
    client: &mut SpiClient<'_>,
    execution_id: Uuid,
    name: &str,
    step_key: &str,
) -> Result<Option<Value>> {
    let rows = run(client, &CONSUME, &[arg(execution_id), arg(name), arg(step_key)])?;
    match rows.into_iter().next() {
        Some(row) => Ok(Some(row.get::<JsonB>(1)?.map(|j| j.0).unwrap_or(Value::Null))),
        None => Ok(None),
    }
}

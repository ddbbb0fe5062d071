//! Transitions of one activity: complete, fail (with retry policy), heartbeat.
//!
//! Completion and failure are fenced by `attempt`, the number of claims so far: a worker
//! whose lease expired and whose activity was claimed again cannot overwrite the new
//! attempt's outcome.

use pgrx::pg_sys::BuiltinOid::*;
use super::execution::{self, Execution};
use super::plan::{run, Statement};
use super::{advance, arg};
use crate::error::{Result, WorkflowError};
use crate::model::retry::{Decision, RetryPolicy};
use pgrx::spi::SpiClient;
use pgrx::{JsonB, Uuid};
use serde_json::{json, Value};

static EXECUTION_OF: Statement = Statement {
    sql: "SELECT execution_id FROM @extschema@.workflow_activity WHERE id = $1",
    args: &[UUIDOID],
};
static LOCK: Statement = Statement {
    sql: "SELECT status, attempt, step_key, kind, retry, coalesce(lease_expires_at < now(), false) \
          FROM @extschema@.workflow_activity WHERE id = $1 FOR UPDATE",
    args: &[UUIDOID],
};
static COMPLETE: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_activity \
          SET status = 'completed', output = $2, finished_at = now(), lease_expires_at = NULL \
          WHERE id = $1",
    args: &[UUIDOID, JSONBOID],
};
static RETRY: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_activity \
          SET status = 'scheduled', error = $2, scheduled_at = now() + $3::float8 * interval '1 microsecond', \
              worker_id = NULL, lease_expires_at = NULL \
          WHERE id = $1",
    args: &[UUIDOID, JSONBOID, INT8OID],
};
static FAIL: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_activity \
          SET status = 'failed', error = $2, finished_at = now(), lease_expires_at = NULL \
          WHERE id = $1",
    args: &[UUIDOID, JSONBOID],
};
// Each heartbeat extends the lease by the length it was granted for.
static HEARTBEAT: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_activity \
          SET lease_expires_at = now() + (lease_expires_at - coalesce(heartbeat_at, started_at)), \
              heartbeat_at = now(), heartbeat = coalesce($3, heartbeat) \
          WHERE id = $1 AND status = 'running' AND ($2::int4 IS NULL OR attempt = $2) \
          RETURNING cancel_requested",
    args: &[UUIDOID, INT4OID, JSONBOID],
};
static PEEK: Statement = Statement {
    sql: "SELECT status, attempt FROM @extschema@.workflow_activity WHERE id = $1",
    args: &[UUIDOID],
};

/// An activity row locked by this transaction.
struct Locked {
    id: Uuid,
    status: String,
    attempt: i32,
    step_key: String,
    kind: String,
    retry: Value,
    lease_expired: bool,
}

fn required_id(field: &str, id: Option<Uuid>) -> Result<Uuid> {
    id.ok_or_else(|| WorkflowError::invalid(format!("{field} must not be NULL; pass the id workflow_claim returned")))
}

/// Locks the activity's execution, then the activity (the engine's lock order).
fn lock(client: &mut SpiClient<'_>, id: Uuid) -> Result<(Execution, Locked)> {
    let not_found = || WorkflowError::not_found(format!("workflow activity {id} does not exist"));
    let exec_id: Uuid = run(client, &EXECUTION_OF, &[arg(id)])?
        .into_iter()
        .next()
        .and_then(|r| r.get::<Uuid>(1).ok().flatten())
        .ok_or_else(not_found)?;
    let exec = execution::lock(client, exec_id)?;
    let rows = run(client, &LOCK, &[arg(id)])?;
    let row = rows.into_iter().next().ok_or_else(not_found)?;
    let act = Locked {
        id,
        status: row.get(1)?.unwrap_or_default(),
        attempt: row.get(2)?.unwrap_or(0),
        step_key: row.get(3)?.unwrap_or_default(),
        kind: row.get(4)?.unwrap_or_default(),
        retry: row.get::<JsonB>(5)?.map(|j| j.0).unwrap_or(Value::Null),
        lease_expired: row.get(6)?.unwrap_or(false),
    };
    Ok((exec, act))
}

/// Rejects a call from a worker whose claim is no longer the current one.
fn fence(exec: &Execution, act: &Locked, attempt: Option<i32>, verb: &str) -> Result<()> {
    let who = format!("activity {} (step \"{}\" of execution {})", act.id, act.step_key, exec.id);
    if act.kind != "task" {
        return Err(WorkflowError::conflict(format!(
            "cannot {verb} {who}: it is a {} step, which the engine finishes by itself",
            act.kind
        )));
    }
    match attempt {
        Some(a) if act.status != "running" || a != act.attempt => Err(WorkflowError::conflict(format!(
            "stale claim: cannot {verb} {who} for attempt {a}; it is {} at attempt {}",
            act.status, act.attempt
        ))
        .with_hint("another worker owns this activity now; drop this result")),
        _ if act.status == "running" || act.status == "scheduled" => Ok(()),
        _ => Err(WorkflowError::conflict(format!("cannot {verb} {who}: it is already {}", act.status))),
    }
}

/// `workflow_complete_activity`: true if this call completed it, false if it was
/// already completed or cancelled (a repeated or late call changes nothing).
pub fn complete(client: &mut SpiClient<'_>, id: Option<Uuid>, output: Value, attempt: Option<i32>) -> Result<bool> {
    let id = required_id("activity_id", id)?;
    let (exec, act) = lock(client, id)?;
    if act.status == "completed" || act.status == "cancelled" {
        return Ok(false);
    }
    fence(&exec, &act, attempt, "complete")?;
    run(client, &COMPLETE, &[arg(id), arg(JsonB(output))])?;
    advance::advance(client, &exec)?;
    Ok(true)
}

/// An error as stored: objects as given, a string becomes `{"message": ...}`.
pub fn normalize_error(error: Value) -> Value {
    match error {
        Value::Object(_) => error,
        Value::String(s) => json!({ "message": s }),
        Value::Null => json!({ "message": "unknown error" }),
        other => json!({ "message": other.to_string() }),
    }
}

/// What happened to a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Retrying,
    Failed,
    /// The activity had been cancelled; nothing changed.
    Cancelled,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Retrying => "retrying",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

fn apply_failure(client: &mut SpiClient<'_>, exec: &Execution, act: &Locked, error: Value, retryable: bool) -> Result<Outcome> {
    // Policies are validated at define time; an unreadable one falls back to the default.
    let policy = RetryPolicy::from_json(&act.retry, "retry").unwrap_or_default();
    let error_type = error.get("type").and_then(Value::as_str);
    match policy.decide(act.attempt, error_type, retryable, super::unit_random()) {
        Decision::RetryAfter(delay) => {
            run(client, &RETRY, &[arg(act.id), arg(JsonB(error)), arg(delay)])?;
            Ok(Outcome::Retrying)
        }
        Decision::Fail => {
            run(client, &FAIL, &[arg(act.id), arg(JsonB(error.clone()))])?;
            if exec.status == "running" {
                execution::fail(client, exec, &act.step_key, &error)?;
            }
            Ok(Outcome::Failed)
        }
    }
}

/// `workflow_fail_activity`.
pub fn fail(
    client: &mut SpiClient<'_>,
    id: Option<Uuid>,
    error: Option<Value>,
    attempt: Option<i32>,
    retryable: Option<bool>,
) -> Result<Outcome> {
    let id = required_id("activity_id", id)?;
    let error = normalize_error(error.unwrap_or(Value::Null));
    let (exec, act) = lock(client, id)?;
    if act.status == "cancelled" {
        return Ok(Outcome::Cancelled);
    }
    fence(&exec, &act, attempt, "fail")?;
    apply_failure(client, &exec, &act, error, retryable.unwrap_or(true))
}

/// Turns an expired lease into a failed attempt of type `Timeout`. Re-checked under
/// lock: a heartbeat or completion that got there first wins. True if it expired.
pub fn expire_lease(client: &mut SpiClient<'_>, id: Uuid, attempt: i32) -> Result<bool> {
    let (exec, act) = lock(client, id)?;
    if act.status != "running" || act.attempt != attempt || !act.lease_expired {
        return Ok(false);
    }
    let error = json!({
        "type": "Timeout",
        "message": format!("lease of attempt {attempt} expired before the worker completed, failed or heartbeat it"),
    });
    apply_failure(client, &exec, &act, error, true)?;
    Ok(true)
}

/// `workflow_heartbeat`: extends the lease; true when cancellation was requested.
pub fn heartbeat(client: &mut SpiClient<'_>, id: Option<Uuid>, attempt: Option<i32>, details: Option<Value>) -> Result<bool> {
    let id = required_id("activity_id", id)?;
    let rows = run(client, &HEARTBEAT, &[arg(id), arg(attempt), arg(details.map(JsonB))])?;
    if let Some(row) = rows.into_iter().next() {
        return Ok(row.get::<bool>(1)?.unwrap_or(false));
    }
    let row = run(client, &PEEK, &[arg(id)])?
        .into_iter()
        .next()
        .ok_or_else(|| WorkflowError::not_found(format!("workflow activity {id} does not exist")))?;
    let status: String = row.get(1)?.unwrap_or_default();
    let current: i32 = row.get(2)?.unwrap_or(0);
    if status == "cancelled" {
        return Ok(true);
    }
    Err(WorkflowError::conflict(format!(
        "stale claim: cannot heartbeat activity {id}{}; it is {status} at attempt {current}",
        attempt.map(|a| format!(" for attempt {a}")).unwrap_or_default()
    ))
    .with_hint("stop working on it; another worker owns it or it has finished"))
}

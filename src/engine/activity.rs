//! Transitions of one activity: complete, fail (with retry policy), heartbeat, and the
//! timer-driven ones (a sleep or signal wait falling due, a lease or deadline passing).
//!
//! Completion and failure are fenced by `attempt`, the number of claims so far: a worker
//! whose lease expired and whose activity was claimed again cannot overwrite the new
//! attempt's outcome.

use super::execution::{self, Execution};
use super::plan::{run, Statement};
use super::{advance, arg, compensation, limits};
use crate::error::{Result, WorkflowError};
use crate::model::retry::{Decision, RetryPolicy};
use crate::wake;
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;
use pgrx::{JsonB, Uuid};
use serde_json::{json, Value};

static LOCK: Statement = Statement {
    sql: "SELECT status, attempt, step_key, kind, retry, coalesce(lease_expires_at < now(), false), \
                 scheduled_at <= now(), coalesce(expires_at < now(), false) \
          FROM @extschema@.workflow_activity WHERE id = $1 FOR UPDATE",
    args: &[UUIDOID],
};
// The common case in one statement: a task completed by its current claim (or by an
// unfenced caller while it is running or scheduled). Anything else takes the slow path.
static FAST_COMPLETE: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_activity \
          SET status = 'completed', output = $2, finished_at = now(), lease_expires_at = NULL \
          WHERE id = $1 AND kind = 'task' \
            AND (($3::int4 IS NULL AND status IN ('running', 'scheduled')) OR (status = 'running' AND attempt = $3)) \
          RETURNING step_key",
    args: &[UUIDOID, JSONBOID, INT4OID],
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
          WHERE id = $1 \
          RETURNING queue, kind, ((extract(epoch FROM scheduled_at) - 946684800) * 1000000)::int8",
    args: &[UUIDOID, JSONBOID, INT8OID],
};
// A wait that timed out and may retry waits again: after the backoff, for its timeout.
static REWAIT: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_activity \
          SET error = $2, attempt = attempt + 1, \
              scheduled_at = now() + $3::float8 * interval '1 microsecond' + coalesce(start_to_close, interval '0') \
          WHERE id = $1",
    args: &[UUIDOID, JSONBOID, INT8OID],
};
static FAIL: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_activity \
          SET status = 'failed', error = $2, finished_at = now(), lease_expires_at = NULL \
          WHERE id = $1",
    args: &[UUIDOID, JSONBOID],
};
// Each heartbeat extends the lease by heartbeat_timeout, or else by the length it was
// granted for, never past start-to-close or schedule-to-close.
static HEARTBEAT: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_activity \
          SET lease_expires_at = least( \
                now() + coalesce(heartbeat_timeout, lease_expires_at - coalesce(heartbeat_at, started_at)), \
                coalesce(started_at + start_to_close, 'infinity'), coalesce(expires_at, 'infinity')), \
              heartbeat_at = now(), heartbeat = coalesce($3, heartbeat) \
          WHERE id = $1 AND status = 'running' AND ($2::int4 IS NULL OR attempt = $2) \
          RETURNING cancel_requested",
    args: &[UUIDOID, INT4OID, JSONBOID],
};
static PEEK: Statement =
    Statement { sql: "SELECT status, attempt FROM @extschema@.workflow_activity WHERE id = $1", args: &[UUIDOID] };

/// An activity row locked by this transaction.
struct Locked {
    id: Uuid,
    status: String,
    attempt: i32,
    step_key: String,
    kind: String,
    retry: Value,
    lease_expired: bool,
    due: bool,
    expired: bool,
}

fn required_id(field: &str, id: Option<Uuid>) -> Result<Uuid> {
    id.ok_or_else(|| WorkflowError::invalid(format!("{field} must not be NULL; pass the id workflow_claim returned")))
}

/// Locks the activity's execution, then the activity (the engine's lock order).
fn lock(client: &mut SpiClient<'_>, id: Uuid) -> Result<(Execution, Locked)> {
    let not_found = || WorkflowError::not_found(format!("workflow activity {id} does not exist"));
    let exec = execution::lock_of_activity(client, id)?;
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
        due: row.get(7)?.unwrap_or(false),
        expired: row.get(8)?.unwrap_or(false),
    };
    Ok((exec, act))
}

/// Rejects a call from a worker whose claim is no longer the current one, saying what
/// became of the activity.
fn fence(exec: &Execution, act: &Locked, attempt: Option<i32>, verb: &str) -> Result<()> {
    let who = format!("activity {} (step \"{}\" of execution {})", act.id, act.step_key, exec.id);
    if act.kind != "task" || act.status == "waiting" {
        return Err(WorkflowError::conflict(format!(
            "cannot {verb} {who}: it is a {} step, which the engine finishes by itself",
            act.kind
        )));
    }
    let current = act.status == "running" && attempt.is_none_or(|a| a == act.attempt);
    if current || (attempt.is_none() && act.status == "scheduled") {
        return Ok(());
    }
    let (what, hint) = match act.status.as_str() {
        "running" => (
            format!("attempt {} holds it now", act.attempt),
            "this attempt's lease expired and another worker claimed the activity; drop this result".to_owned(),
        ),
        "scheduled" => (
            format!(
                "attempt {} failed or its lease expired, and it waits to be retried as attempt {}",
                act.attempt,
                act.attempt + 1
            ),
            "drop this result: the retry runs the activity again".to_owned(),
        ),
        "failed" => (
            "it failed for good".to_owned(),
            format!("drop this result; workflow_retry('{}') resumes the execution and runs the step again", exec.id),
        ),
        "completed" => ("it was completed already".to_owned(), "drop this result; the first one stands".to_owned()),
        "cancelled" => ("it was cancelled".to_owned(), "stop working on it: its execution was cancelled".to_owned()),
        other => (format!("it is {other}"), "drop this result".to_owned()),
    };
    let message = match attempt {
        Some(a) => format!("stale claim: cannot {verb} {who} for attempt {a}; {what}"),
        None => format!("cannot {verb} {who}: {what}"),
    };
    Err(WorkflowError::conflict(message).with_hint(hint))
}

/// Marks a locked activity completed (no checks; the caller decided).
pub fn mark_completed(client: &mut SpiClient<'_>, id: Uuid, output: Value) -> Result<()> {
    run(client, &COMPLETE, &[arg(id), arg(JsonB(output))])?;
    Ok(())
}

/// What a step's completion or final failure means beyond its own row.
fn after_step(client: &mut SpiClient<'_>, exec: &Execution, step_key: &str) -> Result<()> {
    if compensation::is_compensation(step_key) {
        compensation::next(client, exec)
    } else {
        advance::advance_after(client, exec, step_key)
    }
}

/// `workflow_complete_activity`: true if this call completed it, false if it was
/// already completed or cancelled (a repeated or late call changes nothing).
pub fn complete(client: &mut SpiClient<'_>, id: Option<Uuid>, output: Value, attempt: Option<i32>) -> Result<bool> {
    let id = required_id("activity_id", id)?;
    limits::check_payload("output", &output)?;
    let exec = execution::lock_of_activity(client, id)?;
    if let Some(row) = run(client, &FAST_COMPLETE, &[arg(id), arg(JsonB(output.clone())), arg(attempt)])?.next() {
        let step_key: String = row.get(1)?.unwrap_or_default();
        after_step(client, &exec, &step_key)?;
        return Ok(true);
    }
    // Slow path: say why not, or return false for a repeated or late call.
    let (exec, act) = lock(client, id)?;
    if act.status == "completed" || act.status == "cancelled" {
        return Ok(false);
    }
    fence(&exec, &act, attempt, "complete")?;
    mark_completed(client, id, output)?;
    after_step(client, &exec, &act.step_key)?;
    Ok(true)
}

pub const MAX_BATCH: usize = 10_000;

/// `workflow_complete_activities`: many completions in one transaction (one commit for
/// a worker's whole batch). Element i of the result is what completing activity i
/// returned; any error (a stale claim, an unknown id) rolls back the whole call.
pub fn complete_many(
    client: &mut SpiClient<'_>,
    ids: Option<Vec<Option<Uuid>>>,
    outputs: Option<Vec<Option<Value>>>,
    attempts: Option<Vec<Option<i32>>>,
) -> Result<Vec<bool>> {
    let ids = ids
        .ok_or_else(|| WorkflowError::invalid("activity_ids must not be NULL; pass the ids workflow_claim returned"))?;
    if ids.len() > MAX_BATCH {
        return Err(WorkflowError::invalid(format!(
            "activity_ids has {} elements; at most {MAX_BATCH} are allowed",
            ids.len()
        )));
    }
    for (field, len) in [("outputs", outputs.as_ref().map(Vec::len)), ("attempts", attempts.as_ref().map(Vec::len))] {
        if len.is_some_and(|n| n != ids.len()) {
            return Err(WorkflowError::invalid(format!(
                "{field} has {} elements but activity_ids has {}; pass one per activity, or NULL",
                len.unwrap_or(0),
                ids.len()
            )));
        }
    }
    let mut done = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let id = id.ok_or_else(|| WorkflowError::invalid(format!("activity_ids[{}] is NULL", i + 1)))?;
        let output = outputs.as_ref().and_then(|o| o[i].clone()).unwrap_or(Value::Null);
        let attempt = attempts.as_ref().and_then(|a| a[i]);
        done.push(complete(client, Some(id), output, attempt)?);
    }
    Ok(done)
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

/// Fails a step for good: its row, and then its execution (declared), its saga
/// (compensation steps) or nothing but a wake-up (client-driven: the client decides).
pub fn fail_for_good(
    client: &mut SpiClient<'_>,
    exec: &Execution,
    id: Uuid,
    step_key: &str,
    error: Value,
) -> Result<()> {
    run(client, &FAIL, &[arg(id), arg(JsonB(error.clone()))])?;
    if compensation::is_compensation(step_key) {
        compensation::failed(client, exec)
    } else if exec.definition.is_none() {
        advance::advance(client, exec)
    } else if exec.status == "running" {
        execution::fail(client, exec, step_key, &error)
    } else {
        Ok(())
    }
}

fn apply_failure(
    client: &mut SpiClient<'_>,
    exec: &Execution,
    act: &Locked,
    error: Value,
    retryable: bool,
) -> Result<Outcome> {
    // Policies are validated at define time; an unreadable one falls back to the default.
    let mut policy = RetryPolicy::from_json(&act.retry, "retry").unwrap_or_default();
    let waits = act.status == "waiting";
    if waits && act.retry.as_object().is_none_or(|o| o.is_empty()) {
        policy.max_attempts = 1;
    }
    let error_type = error.get("type").and_then(Value::as_str);
    // Failing an activity nobody claimed yet still uses up its first attempt.
    match policy.decide(act.attempt.max(1), error_type, retryable, super::unit_random()) {
        Decision::RetryAfter(delay) if waits => {
            run(client, &REWAIT, &[arg(act.id), arg(JsonB(error)), arg(delay)])?;
            wake::wake_at_commit();
            Ok(Outcome::Retrying)
        }
        Decision::RetryAfter(delay) => {
            let rows = run(client, &RETRY, &[arg(act.id), arg(JsonB(error)), arg(delay)])?;
            if let Some(row) = rows.into_iter().next() {
                let (queue, kind): (Option<String>, Option<String>) = (row.get(1)?, row.get(2)?);
                if kind.as_deref() == Some("task") {
                    wake::queue_ready(&queue.unwrap_or_default(), row.get::<i64>(3)?.unwrap_or(0));
                } else {
                    wake::wake_at_commit();
                }
            }
            Ok(Outcome::Retrying)
        }
        Decision::Fail => {
            fail_for_good(client, exec, act.id, &act.step_key, error)?;
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
    limits::check_payload("error", &error)?;
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
        "message": format!("attempt {attempt} timed out: its lease expired before the worker completed, failed or heartbeat it"),
    });
    apply_failure(client, &exec, &act, error, true)?;
    Ok(true)
}

/// Fails for good a step past its schedule-to-close deadline. True if it did.
pub fn expire_schedule_to_close(client: &mut SpiClient<'_>, id: Uuid) -> Result<bool> {
    let (exec, act) = lock(client, id)?;
    if !matches!(act.status.as_str(), "scheduled" | "running") || !act.expired {
        return Ok(false);
    }
    let error = json!({"type": "Timeout", "message": format!("step \"{}\" passed its schedule_to_close deadline", act.step_key)});
    fail_for_good(client, &exec, id, &act.step_key, error)?;
    Ok(true)
}

/// A sleep or a signal wait whose time has come: the sleep completes, the signal wait
/// times out (type `Timeout`, retried only by an explicit policy). True if it moved.
pub fn fire_due_wait(client: &mut SpiClient<'_>, id: Uuid) -> Result<bool> {
    let (exec, act) = lock(client, id)?;
    if act.status != "waiting" || !act.due {
        return Ok(false);
    }
    match act.kind.as_str() {
        "sleep" => {
            mark_completed(client, id, Value::Null)?;
            advance::advance(client, &exec)?;
        }
        _ => {
            let what = if act.kind == "signal" { "signal" } else { "child workflow" };
            let error = json!({"type": "Timeout", "message": format!("step \"{}\" timed out waiting for its {what}", act.step_key)});
            apply_failure(client, &exec, &act, error, true)?;
        }
    }
    Ok(true)
}

static STATUS: Statement = Statement {
    sql: "SELECT status, scheduled_at <= now() FROM @extschema@.workflow_activity WHERE id = $1 FOR UPDATE",
    args: &[UUIDOID],
};

/// Locks an activity whose execution the caller has locked: its status and whether it is due.
pub fn lock_status(client: &mut SpiClient<'_>, id: Uuid) -> Result<Option<(String, bool)>> {
    let rows = run(client, &STATUS, &[arg(id)])?;
    match rows.into_iter().next() {
        Some(row) => Ok(Some((row.get(1)?.unwrap_or_default(), row.get(2)?.unwrap_or(false)))),
        None => Ok(None),
    }
}

/// A failed run of an sql step (execution and activity locked by the caller).
pub fn fail_locked_sql(client: &mut SpiClient<'_>, exec: &Execution, id: Uuid, error: Value) -> Result<()> {
    let (_, act) = lock(client, id)?;
    if exec.status == "running" && act.status == "scheduled" {
        apply_failure(client, exec, &act, error, true)?;
    }
    Ok(())
}

/// `workflow_heartbeat`: extends the lease; true when cancellation was requested.
pub fn heartbeat(
    client: &mut SpiClient<'_>,
    id: Option<Uuid>,
    attempt: Option<i32>,
    details: Option<Value>,
) -> Result<bool> {
    let id = required_id("activity_id", id)?;
    if let Some(d) = &details {
        limits::check_payload("details", d)?;
    }
    let rows = run(client, &HEARTBEAT, &[arg(id), arg(attempt), arg(details.map(JsonB))])?;
    if let Some(row) = rows.into_iter().next() {
        return Ok(row.get::<bool>(1)?.unwrap_or(false));
    }
    let row = run(client, &PEEK, &[arg(id)])?
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

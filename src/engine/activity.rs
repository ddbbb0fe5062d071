//! Transitions of one activity: complete, fail (with retry policy), heartbeat, and the
//! timer-driven ones (a sleep or signal wait falling due, a lease or deadline passing).
//!
//! Completion and failure are fenced by `attempt`, the number of claims so far: a worker
//! whose lease expired and whose activity was claimed again cannot overwrite the new
//! attempt's outcome.

use super::plan::{run, Statement};
use super::rows::{self, ActivityStatus, Execution, ExecutionStatus, LockedActivity};
use super::tenancy::Caller;
use super::{advance, arg, limits};
use crate::error::{Result, WorkflowError};
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;
use pgrx::{JsonB, Uuid};
use serde_json::{json, Value};

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
// Each heartbeat extends the lease by heartbeat_timeout, or else by the length it was
// granted for, never past start-to-close or schedule-to-close.
static HEARTBEAT: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_activity \
          SET lease_expires_at = least( \
                now() + coalesce(heartbeat_timeout, lease_expires_at - coalesce(heartbeat_at, started_at)), \
                coalesce(started_at + start_to_close, 'infinity'), coalesce(expires_at, 'infinity')), \
              heartbeat_at = now(), heartbeat = coalesce($3, heartbeat) \
          WHERE id = $1 AND (status = 'running') IS TRUE AND ($2::int4 IS NULL OR attempt = $2) \
            AND ($4::text IS NULL OR EXISTS (SELECT FROM @extschema@.workflow_execution e \
                                             WHERE e.id = execution_id AND e.tenant_id = $4)) \
          RETURNING cancel_requested",
    args: &[UUIDOID, INT4OID, JSONBOID, TEXTOID],
};
// $2: the caller's tenant (NULL: every tenant); another tenant's activity is not found.
static PEEK: Statement = Statement {
    sql: "SELECT a.status, a.attempt FROM @extschema@.workflow_activity a \
          JOIN @extschema@.workflow_execution e ON e.id = a.execution_id \
          WHERE a.id = $1 AND CASE WHEN $2::text IS NULL THEN true ELSE e.tenant_id = $2 END",
    args: &[UUIDOID, TEXTOID],
};

/// Rejects a call from a worker whose claim is no longer the current one, saying what
/// became of the activity.
fn fence(exec: &Execution, act: &LockedActivity, attempt: Option<i32>, verb: &str) -> Result<()> {
    let who = format!("activity {} (step \"{}\" of execution {})", act.id, act.step_key, exec.id);
    if act.kind != "task" || act.status == ActivityStatus::Waiting {
        return Err(WorkflowError::conflict(format!(
            "cannot {verb} {who}: it is a {} step, which the engine finishes by itself",
            act.kind
        )));
    }
    let current = act.status == ActivityStatus::Running && attempt.is_none_or(|a| a == act.attempt);
    if current || (attempt.is_none() && act.status == ActivityStatus::Scheduled) {
        return Ok(());
    }
    let (what, hint) = match act.status {
        ActivityStatus::Running => (
            format!("attempt {} holds it now", act.attempt),
            "this attempt's lease expired and another worker claimed the activity; drop this result".to_owned(),
        ),
        ActivityStatus::Scheduled => (
            format!(
                "attempt {} failed or its lease expired, and it waits to be retried as attempt {}",
                act.attempt,
                act.attempt + 1
            ),
            "drop this result: the retry runs the activity again".to_owned(),
        ),
        ActivityStatus::Failed => (
            "it failed for good".to_owned(),
            format!("drop this result; workflow_retry('{}') resumes the execution and runs the step again", exec.id),
        ),
        ActivityStatus::Completed => {
            ("it was completed already".to_owned(), "drop this result; the first one stands".to_owned())
        }
        ActivityStatus::Cancelled => {
            ("it was cancelled".to_owned(), "stop working on it: its execution was cancelled".to_owned())
        }
        other => (format!("it is {other}"), "drop this result".to_owned()),
    };
    let message = match attempt {
        Some(a) => format!("stale claim: cannot {verb} {who} for attempt {a}; {what}"),
        None => format!("cannot {verb} {who}: {what}"),
    };
    Err(WorkflowError::conflict(message).with_hint(hint))
}

/// `workflow_complete_activity`: true if this call completed it, false if it was
/// already completed or cancelled (a repeated or late call changes nothing).
pub fn complete(
    client: &mut SpiClient<'_>,
    caller: &Caller,
    id: Uuid,
    output: Value,
    attempt: Option<i32>,
) -> Result<bool> {
    limits::check_payload("output", &output)?;
    let exec = rows::lock_execution_of_activity(client, id, caller.tenant.as_deref())?;
    if let Some(row) = run(client, &FAST_COMPLETE, &[arg(id), arg(JsonB(output.clone())), arg(attempt)])?.next() {
        let step_key: String = row.get(1)?.unwrap_or_default();
        advance::step_finished(client, &exec, &step_key, advance::Finished::Completed)?;
        return Ok(true);
    }
    // Slow path: say why not, or return false for a repeated or late call.
    let (exec, act) = rows::lock_activity(client, id, None)?;
    if act.status == ActivityStatus::Completed || act.status == ActivityStatus::Cancelled {
        return Ok(false);
    }
    fence(&exec, &act, attempt, "complete")?;
    rows::mark_completed(client, id, output)?;
    advance::step_finished(client, &exec, &act.step_key, advance::Finished::Completed)?;
    Ok(true)
}

/// The most activities one `workflow_complete_activities` call completes.
pub const MAX_COMPLETIONS: usize = 10_000;

/// `workflow_complete_activities`: many completions in one transaction (one commit for
/// a worker's whole batch). Element i of the result is what completing activity i
/// returned; any error (a stale claim, an unknown id) rolls back the whole call.
pub fn complete_many(
    client: &mut SpiClient<'_>,
    caller: &Caller,
    ids: Option<Vec<Option<Uuid>>>,
    outputs: Option<Vec<Option<Value>>>,
    attempts: Option<Vec<Option<i32>>>,
) -> Result<Vec<bool>> {
    let ids = ids
        .ok_or_else(|| WorkflowError::invalid("activity_ids must not be NULL; pass the ids workflow_claim returned"))?;
    if ids.len() > MAX_COMPLETIONS {
        return Err(WorkflowError::invalid(format!(
            "activity_ids has {} elements; at most {MAX_COMPLETIONS} are allowed",
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
        done.push(complete(client, caller, id, output, attempt)?);
    }
    Ok(done)
}

/// `workflow_fail_activity`.
pub fn fail(
    client: &mut SpiClient<'_>,
    caller: &Caller,
    id: Uuid,
    error: Value,
    attempt: Option<i32>,
    retryable: bool,
) -> Result<advance::Outcome> {
    let error = advance::normalize_error(error);
    limits::check_payload("error", &error)?;
    let (exec, act) = rows::lock_activity(client, id, caller.tenant.as_deref())?;
    if act.status == ActivityStatus::Cancelled {
        return Ok(advance::Outcome::Cancelled);
    }
    fence(&exec, &act, attempt, "fail")?;
    advance::apply_failure(client, &exec, &act, error, retryable)
}

/// Turns an expired lease into a failed attempt of type `Timeout`. Re-checked under
/// lock: a heartbeat or completion that got there first wins. True if it expired.
pub fn expire_lease(client: &mut SpiClient<'_>, id: Uuid, attempt: i32) -> Result<bool> {
    let (exec, act) = rows::lock_activity(client, id, None)?;
    if act.status != ActivityStatus::Running || act.attempt != attempt || !act.lease_expired {
        return Ok(false);
    }
    let error = json!({
        "type": "Timeout",
        "reason": "lease_expired",
        "message": format!("attempt {attempt} timed out: its lease expired before the worker completed, failed or heartbeat it"),
    });
    advance::apply_failure(client, &exec, &act, error, true)?;
    Ok(true)
}

/// Fails for good a step past its schedule-to-close deadline. True if it did.
pub fn expire_schedule_to_close(client: &mut SpiClient<'_>, id: Uuid) -> Result<bool> {
    let (exec, act) = rows::lock_activity(client, id, None)?;
    if !matches!(act.status, ActivityStatus::Scheduled | ActivityStatus::Running) || !act.expired {
        return Ok(false);
    }
    let error = json!({"type": "Timeout", "message": format!("step \"{}\" passed its schedule_to_close deadline", act.step_key)});
    advance::fail_for_good(client, &exec, id, &act.step_key, error)?;
    Ok(true)
}

/// A sleep or a signal wait whose time has come: the sleep completes, the signal wait
/// times out (type `Timeout`, retried only by an explicit policy). True if it moved.
pub fn fire_due_wait(client: &mut SpiClient<'_>, id: Uuid) -> Result<bool> {
    let (exec, act) = rows::lock_activity(client, id, None)?;
    if act.status != ActivityStatus::Waiting || !act.due {
        return Ok(false);
    }
    match act.kind.as_str() {
        "sleep" => {
            rows::mark_completed(client, id, Value::Null)?;
            advance::step_finished(client, &exec, &act.step_key, advance::Finished::Completed)?;
        }
        _ => {
            let what = if act.kind == "signal" { "signal" } else { "child workflow" };
            let error = json!({"type": "Timeout", "message": format!("step \"{}\" timed out waiting for its {what}", act.step_key)});
            advance::apply_failure(client, &exec, &act, error, true)?;
        }
    }
    Ok(true)
}

/// A failed run of an sql step (execution and activity locked by the caller).
pub fn fail_locked_sql(client: &mut SpiClient<'_>, exec: &Execution, id: Uuid, error: Value) -> Result<()> {
    let (_, act) = rows::lock_activity(client, id, None)?;
    if exec.status == ExecutionStatus::Running && act.status == ActivityStatus::Scheduled {
        advance::apply_failure(client, exec, &act, error, true)?;
    }
    Ok(())
}

/// `workflow_heartbeat`: extends the lease; true when cancellation was requested.
pub fn heartbeat(
    client: &mut SpiClient<'_>,
    caller: &Caller,
    id: Uuid,
    attempt: Option<i32>,
    details: Option<Value>,
) -> Result<bool> {
    if let Some(d) = &details {
        limits::check_payload("details", d)?;
    }
    let rows =
        run(client, &HEARTBEAT, &[arg(id), arg(attempt), arg(details.map(JsonB)), arg(caller.tenant.as_deref())])?;
    if let Some(row) = rows.into_iter().next() {
        return Ok(row.get::<bool>(1)?.unwrap_or(false));
    }
    let row = run(client, &PEEK, &[arg(id), arg(caller.tenant.as_deref())])?
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

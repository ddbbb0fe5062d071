//! Execution-level transitions: start (top-level and child), lock, close (fail or
//! cancel, cascading to children and starting compensation), resume, and telling a
//! parent that its child finished.

use super::admission::{self, Admission};
use super::plan::{run, Statement};
use super::rows::{self, Execution, ExecutionStatus};
use super::tenancy::{self, Caller};
use super::{advance, arg, limits};
use crate::error::{Result, WorkflowError};
use crate::model::options::{parse_start_options, StartOptions};
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use serde_json::{json, Value};

// Its timeout counts from now: a delayed start's from its start time, a start that
// waited (engine/admission.rs) from when it was made due.
static START_PENDING: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_execution \
          SET status = 'running', deadline = now() + (deadline - started_at), started_at = now() \
          WHERE id = $1 AND (status = 'pending') IS TRUE",
    args: &[UUIDOID],
};

static CONCURRENCY_KEY: Statement =
    Statement { sql: "SELECT concurrency_key FROM @extschema@.workflow_execution WHERE id = $1", args: &[UUIDOID] };

/// `workflow_start`; `workflow_type` was checked by the API (`check_type_name`).
pub fn start(
    client: &mut SpiClient<'_>,
    caller: &Caller,
    workflow_type: &str,
    input: Value,
    idempotency_key: Option<&str>,
    options: Value,
) -> Result<Uuid> {
    let (opts, definition) = checked_start(client, caller, workflow_type, &input, &options)?;
    let new = advance::NewExecution { workflow_type, input, idempotency_key, opts, parent: None, owner: caller.role };
    advance::create(client, new, definition)
}

/// Everything `start` refuses, without starting: a schedule is checked when it is
/// created, not when it first fires.
pub fn check_start(
    client: &mut SpiClient<'_>,
    caller: &Caller,
    workflow_type: &str,
    input: &Value,
    options: &Value,
) -> Result<()> {
    checked_start(client, caller, workflow_type, input, options).map(|_| ())
}

fn checked_start(
    client: &mut SpiClient<'_>,
    caller: &Caller,
    workflow_type: &str,
    input: &Value,
    options: &Value,
) -> Result<(StartOptions, Option<advance::Declared>)> {
    limits::check_payload("input", input)?;
    let mut opts = parse_start_options(options).map_err(WorkflowError::invalid)?;
    opts.tenant_id = tenancy::tenant_for_start(caller, opts.tenant_id.take())?;
    if let Some(text) = &opts.start_at {
        rows::parse_timestamptz("options.start_at", text)?; // bad options first, whatever the type
    }
    let definition = advance::declared(client, workflow_type)?;
    match (&definition, opts.client_driven) {
        (None, false) => {
            return Err(WorkflowError::undefined(format!("workflow type \"{workflow_type}\" is not defined"))
                .with_hint(
                    "define it with workflow_define, check the spelling, or start a client-driven execution \
                            with options => '{\"client_driven\": true}'",
                ))
        }
        (Some(_), true) => {
            return Err(WorkflowError::invalid(format!(
                "options.client_driven: workflow type \"{workflow_type}\" is declared (workflow_define), so its \
                 definition drives it; use another type name for a client-driven execution"
            )))
        }
        _ => {}
    }
    Ok((opts, definition))
}

/// Starts a `pending` execution whose time has come; false if it was not pending.
pub fn start_pending(client: &mut SpiClient<'_>, id: Uuid) -> Result<bool> {
    let exec = rows::lock_execution(client, id, None)?;
    if exec.status != ExecutionStatus::Pending {
        return Ok(false);
    }
    // Its type's concurrency key or a pause may still hold it back.
    if let Some(declared) = advance::declared(client, &exec.workflow_type)? {
        let key: Option<String> =
            run(client, &CONCURRENCY_KEY, &[arg(id)])?.next().and_then(|r| r.get(1).ok().flatten());
        let limit = key.as_deref().zip(declared.definition.concurrency.as_ref().map(|c| c.max_running));
        if limit.is_some() || declared.paused {
            match admission::admit(client, id, &exec.workflow_type, limit, declared.paused)? {
                Admission::Run => {}
                Admission::Wait => {
                    admission::wait_again(client, id)?;
                    return Ok(false);
                }
                Admission::Defer => return Ok(false),
            }
        }
    }
    run(client, &START_PENDING, &[arg(id)])?;
    let exec = Execution { status: ExecutionStatus::Running, ..exec };
    advance::advance(client, &exec)?;
    Ok(true)
}

/// `workflow_cancel`: true if this call cancelled it, false if it had already finished.
pub fn cancel(client: &mut SpiClient<'_>, caller: &Caller, id: Uuid, reason: Option<&str>) -> Result<bool> {
    let exec = rows::lock_execution(client, id, caller.tenant.as_deref())?;
    if !matches!(exec.status, ExecutionStatus::Pending | ExecutionStatus::Running) {
        return Ok(false);
    }
    advance::close(
        client,
        &exec,
        ExecutionStatus::Cancelled,
        json!({"type": "Cancelled", "message": reason.unwrap_or("cancelled by request")}),
    )?;
    Ok(true)
}

/// `workflow_retry`: resumes a failed or cancelled execution, keeping every completed
/// step and scheduling again only what did not complete. False if there was nothing to resume.
pub fn retry(client: &mut SpiClient<'_>, caller: &Caller, id: Uuid) -> Result<bool> {
    let exec = rows::lock_execution(client, id, caller.tenant.as_deref())?;
    advance::retry_locked(client, exec)
}

/// How a client ends its execution.
pub enum ClientOutcome {
    Complete(Value),
    Fail(Value),
}

/// `workflow_complete` / `workflow_fail` for a client-driven execution: true if this
/// call ended it, false if it had already ended the same way.
/// With `lease_token`, the caller's replay turn must still be the current one (55000).
pub fn finish_client_driven(
    client: &mut SpiClient<'_>,
    caller: &Caller,
    id: Uuid,
    outcome: ClientOutcome,
    lease_token: Option<i32>,
) -> Result<bool> {
    let exec = rows::lock_execution(client, id, caller.tenant.as_deref())?;
    if let (Some(token), true) = (lease_token, exec.status.is_open()) {
        super::replay::check_turn(client, id, token)?;
    }
    if exec.definition.is_some() {
        return Err(WorkflowError::conflict(format!(
            "execution {} is declared (workflow \"{}\"); it completes by itself when its steps do",
            exec.id, exec.workflow_type
        )));
    }
    let target = match outcome {
        ClientOutcome::Complete(_) => ExecutionStatus::Completed,
        ClientOutcome::Fail(_) => ExecutionStatus::Failed,
    };
    match exec.status {
        s if s.is_open() => {}
        s if s == target => return Ok(false),
        other => {
            return Err(WorkflowError::conflict(format!(
                "cannot mark execution {} {target}: it is already {other}",
                exec.id
            )))
        }
    }
    match outcome {
        ClientOutcome::Complete(output) => {
            limits::check_payload("output", &output)?;
            advance::complete_client_driven(client, &exec, output)?;
        }
        ClientOutcome::Fail(error) => {
            limits::check_payload("error", &error)?;
            advance::close(client, &exec, ExecutionStatus::Failed, advance::normalize_error(error))?;
        }
    }
    Ok(true)
}

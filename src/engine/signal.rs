//! Signals (architecture: Tables): buffered messages to an execution, each consumed once, oldest
//! first, by the first step that waits for its name — whether it came before or after
//! the step began waiting.

use super::plan::{run, Statement};
use super::rows::{self, ExecutionStatus};
use super::tenancy::Caller;
use super::{advance, arg};
use crate::error::{Result, WorkflowError};
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;
use pgrx::{JsonB, Uuid};
use serde_json::Value;

static INSERT: Statement = Statement {
    sql: "INSERT INTO @extschema@.workflow_signal (id, execution_id, name, payload, idempotency_key) \
          VALUES ($1, $2, $3, $4, $5) \
          ON CONFLICT (execution_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id",
    args: &[UUIDOID, UUIDOID, TEXTOID, JSONBOID, TEXTOID],
};
static EXISTING: Statement = Statement {
    sql: "SELECT id FROM @extschema@.workflow_signal WHERE execution_id = $1 AND idempotency_key = $2",
    args: &[UUIDOID, TEXTOID],
};
static WAITER: Statement = Statement {
    sql: "SELECT id, step_key FROM @extschema@.workflow_activity \
          WHERE execution_id = $1 AND kind = 'signal' AND status = 'waiting' AND activity_type = $2 \
          ORDER BY created_at, step_key LIMIT 1",
    args: &[UUIDOID, TEXTOID],
};

pub const MAX_NAME_LEN: usize = 200;

/// `workflow_signal`: buffers the signal and wakes a step waiting for it.
pub fn send(
    client: &mut SpiClient<'_>,
    caller: &Caller,
    execution_id: Uuid,
    name: &str,
    payload: Value,
    idempotency_key: Option<&str>,
) -> Result<Uuid> {
    let name = match Some(name) {
        Some(n) if !n.trim().is_empty() && n.len() <= MAX_NAME_LEN => n,
        _ => {
            return Err(WorkflowError::invalid(format!(
                "name must be a non-empty signal name of at most {MAX_NAME_LEN} bytes, such as 'approved'"
            )))
        }
    };
    crate::engine::limits::check_payload("payload", &payload)?;
    let exec = rows::lock_execution(client, execution_id, caller.tenant.as_deref())?;
    if !matches!(exec.status, ExecutionStatus::Running | ExecutionStatus::Pending) {
        return Err(WorkflowError::conflict(format!(
            "cannot signal execution {execution_id}: it is already {}",
            exec.status
        ))
        .with_hint("signals reach only pending or running executions"));
    }
    if let Some(def) = &exec.definition {
        // A name no step waits for would be buffered forever: most likely a typo.
        let waits_for: Vec<&str> = def
            .steps
            .iter()
            .filter_map(|s| match &s.kind {
                crate::model::definition::StepKind::Signal { name } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        if !waits_for.contains(&name) {
            let known = if waits_for.is_empty() {
                "none of its steps waits for a signal".to_owned()
            } else {
                format!("it waits for {}", waits_for.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", "))
            };
            return Err(WorkflowError::invalid(format!(
                "name: no step of workflow \"{}\" (execution {execution_id}) waits for signal \"{name}\"; {known}",
                exec.workflow_type
            )));
        }
    }
    let id = super::new_id();
    let inserted =
        run(client, &INSERT, &[arg(id), arg(execution_id), arg(name), arg(JsonB(payload)), arg(idempotency_key)])?;
    if inserted.is_empty() {
        // The same idempotency key was sent before: that signal stands, nothing changes.
        let rows = run(client, &EXISTING, &[arg(execution_id), arg(idempotency_key)])?;
        return rows
            .into_iter()
            .next()
            .and_then(|r| r.get::<Uuid>(1).ok().flatten())
            .ok_or_else(|| WorkflowError::internal("signal idempotency conflict without a row"));
    }
    let waiter = run(client, &WAITER, &[arg(execution_id), arg(name)])?
        .next()
        .map(|r| -> Result<(Uuid, String)> { Ok((r.get(1)?.unwrap_or(id), r.get(2)?.unwrap_or_default())) })
        .transpose()?;
    if let Some((step_id, step_key)) = waiter {
        if let Some(payload) = rows::consume_signal(client, execution_id, name, &step_key)? {
            rows::mark_completed(client, step_id, payload)?;
            advance::step_finished(client, &exec, &step_key, advance::Finished::Completed)?;
        }
    }
    Ok(id)
}

//! Client-driven executions (README: SQL API): the client's own code decides the steps. It
//! schedules them by key (idempotent: a replay gets the same activity back), and is told
//! through `ready_at` (and the `workflow_execution_ready` NOTIFY) when one finishes.

use super::plan::{run, Statement};
use super::rows::{self, ExecutionStatus};
use super::schedule::Scheduled;
use super::tenancy::Caller;
use super::{advance, arg, compensation, limits};
use crate::error::{Result, WorkflowError};
use crate::model::definition::parse_client_step;
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use serde_json::Value;

pub const MAX_STEP_KEY_LEN: usize = 200;

static FIND: Statement = Statement {
    sql: "SELECT id FROM @extschema@.workflow_activity WHERE execution_id = $1 AND step_key = $2",
    args: &[UUIDOID, TEXTOID],
};
static CLEAR_READY: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_execution SET ready_at = NULL WHERE id = $1 AND ready_at IS NOT NULL",
    args: &[UUIDOID],
};

fn find(client: &mut SpiClient<'_>, execution_id: Uuid, step_key: &str) -> Result<Option<Uuid>> {
    Ok(run(client, &FIND, &[arg(execution_id), arg(step_key)])?.next().and_then(|r| r.get::<Uuid>(1).ok().flatten()))
}

/// `workflow_schedule_activity`.
pub fn schedule_activity(
    client: &mut SpiClient<'_>,
    caller: &Caller,
    execution_id: Uuid,
    step_key: &str,
    activity_type: Option<&str>,
    input: Value,
    options: Value,
) -> Result<Uuid> {
    let step_key = match Some(step_key) {
        Some(k) if !k.trim().is_empty() && k.len() <= MAX_STEP_KEY_LEN && !compensation::is_compensation(k) => k,
        _ => {
            return Err(WorkflowError::invalid(format!(
            "step_key must be a non-empty key of at most {MAX_STEP_KEY_LEN} bytes, not starting with \"compensate:\"; \
                 it names the step for replays"
        )))
        }
    };
    limits::check_payload("input", &input)?;
    let step = parse_client_step(activity_type, &options).map_err(WorkflowError::invalid)?;
    let exec = rows::lock_execution(client, execution_id, caller.tenant.as_deref())?;
    if let Some(existing) = find(client, execution_id, step_key)? {
        return Ok(existing); // a replay: same key, same activity, whatever state it is in
    }
    if exec.definition.is_some() {
        return Err(WorkflowError::conflict(format!(
            "execution {execution_id} is declared (workflow \"{}\"); its steps are scheduled by its definition",
            exec.workflow_type
        )));
    }
    if exec.status != ExecutionStatus::Running {
        return Err(WorkflowError::conflict(format!(
            "cannot schedule step \"{step_key}\" of execution {execution_id}: it is {}",
            exec.status
        )));
    }
    run(client, &CLEAR_READY, &[arg(execution_id)])?;
    if advance::schedule_step(client, &exec, &step, step_key, Some(input))? == Scheduled::CompletedAtOnce {
        advance::advance(client, &exec)?;
    }
    find(client, execution_id, step_key)?
        .ok_or_else(|| WorkflowError::internal(format!("step \"{step_key}\" was scheduled but is not there")))
}

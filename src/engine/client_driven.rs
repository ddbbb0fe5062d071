//! Client-driven executions (README: SQL API): the client's own code decides the steps. It
//! schedules them by key (idempotent: a replay gets the same activity back), and is told
//! through `ready_at` (and the `workflow_execution_ready` NOTIFY) when one finishes.

use super::plan::{run, Statement};
use super::rows::{self, ExecutionStatus};
use super::schedule::Scheduled;
use super::tenancy::Caller;
use super::{advance, arg, compensation, limits, replay};
use crate::error::{Result, WorkflowError};
use crate::model::definition::{parse_client_step, ClientStep, Step, StepKind};
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;
use pgrx::{JsonB, Uuid};
use serde_json::Value;

pub const MAX_STEP_KEY_LEN: usize = 200;

static FIND: Statement = Statement {
    sql: "SELECT id, kind, activity_type, input FROM @extschema@.workflow_activity \
          WHERE execution_id = $1 AND step_key = $2",
    args: &[UUIDOID, TEXTOID],
};
// The client acts on the execution: what made it ready is being handled. Not while a
// replay turn is held: ready_at then holds the turn's end (engine/replay.rs).
static CLEAR_READY: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_execution SET ready_at = NULL \
          WHERE id = $1 AND ready_at IS NOT NULL AND replay_worker IS NULL",
    args: &[UUIDOID],
};

/// A step already in the journal under a key.
struct Journaled {
    id: Uuid,
    kind: String,
    activity_type: Option<String>,
    input: Value,
}

fn find(client: &mut SpiClient<'_>, execution_id: Uuid, step_key: &str) -> Result<Option<Journaled>> {
    let Some(row) = run(client, &FIND, &[arg(execution_id), arg(step_key)])?.next() else { return Ok(None) };
    Ok(Some(Journaled {
        id: row.get(1)?.ok_or_else(|| WorkflowError::internal("activity without id"))?,
        kind: row.get(2)?.unwrap_or_default(),
        activity_type: row.get(3)?,
        input: row.get::<JsonB>(4)?.map(|j| j.0).unwrap_or(Value::Null),
    }))
}

/// What the journal says the step is, as the replay would write it: kind, and the
/// activity type column (the child's type for a child workflow, the signal's name for a
/// signal wait).
fn scheduled_as(step: &Step, activity_type: Option<&str>) -> (&'static str, Option<String>) {
    let stored = match &step.kind {
        StepKind::Workflow { workflow_type, .. } => Some(workflow_type.clone()),
        StepKind::Signal { name } => Some(name.clone()),
        _ => activity_type.map(str::to_owned),
    };
    (step.kind.name(), stored)
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
    let ClientStep { step, lease_token } =
        parse_client_step(activity_type, &options).map_err(WorkflowError::invalid)?;
    let exec = rows::lock_execution(client, execution_id, caller.tenant.as_deref())?;
    if let (Some(token), true) = (lease_token, exec.status.is_open()) {
        replay::check_turn(client, execution_id, token)?;
    }
    if let Some(existing) = find(client, execution_id, step_key)? {
        // A replay: the same key must ask for the same step, whatever state it is in.
        let (kind, wanted_type) = scheduled_as(&step, activity_type);
        if existing.kind != kind || existing.activity_type != wanted_type || existing.input != input {
            return Err(WorkflowError::nondeterministic(format!(
                "non-deterministic replay of execution {execution_id}: step \"{step_key}\" was scheduled as {} \
                 with input {}, and this replay asks for {} with input {}",
                describe(&existing.kind, existing.activity_type.as_deref()),
                existing.input,
                describe(kind, wanted_type.as_deref()),
                input
            ))
            .with_hint(
                "a workflow's code must schedule the same steps with the same inputs on every replay; \
                        give a changed step a new step_key",
            ));
        }
        return Ok(existing.id);
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
    Ok(find(client, execution_id, step_key)?
        .ok_or_else(|| WorkflowError::internal(format!("step \"{step_key}\" was scheduled but is not there")))?
        .id)
}

fn describe(kind: &str, activity_type: Option<&str>) -> String {
    match (kind, activity_type) {
        ("task", Some(t)) => format!("activity \"{t}\""),
        ("workflow", Some(t)) => format!("child workflow \"{t}\""),
        ("signal", Some(t)) => format!("a wait for signal \"{t}\""),
        (kind, _) => format!("a {kind} step"),
    }
}

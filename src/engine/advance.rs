//! DAG progression of declared workflows: schedule the steps whose dependencies are
//! done, and complete the execution when every step is.

use pgrx::pg_sys::BuiltinOid::*;
use super::execution::Execution;
use super::plan::{run, Statement};
use super::arg;
use crate::error::Result;
use crate::model::definition::{Step, StepKind};
use pgrx::spi::SpiClient;

use std::collections::HashMap;

static STEP_STATES: Statement = Statement {
    sql: "SELECT step_key, status FROM @extschema@.workflow_activity WHERE execution_id = $1",
    args: &[UUIDOID],
};

// A step's input is {"input": <workflow input>, "<dep>": <dep output>, ...}, built in SQL
// so that outputs never travel through the backend's memory as Rust values.
static SCHEDULE_TASK: Statement = Statement {
    sql: "INSERT INTO @extschema@.workflow_activity \
            (id, execution_id, step_key, kind, activity_type, queue, status, input, max_attempts, retry, priority) \
          SELECT $2, e.id, $3, 'task', $4, coalesce($5, e.queue), 'scheduled', \
                 jsonb_build_object('input', e.input) || coalesce( \
                   (SELECT jsonb_object_agg(a.step_key, a.output) FROM @extschema@.workflow_activity a \
                     WHERE a.execution_id = e.id AND a.step_key = ANY($6)), '{}'::jsonb), \
                 $7, $8, coalesce($9, e.priority) \
          FROM @extschema@.workflow_execution e WHERE e.id = $1 \
          ON CONFLICT (execution_id, step_key) DO NOTHING",
    args: &[UUIDOID, UUIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID, INT4OID, JSONBOID, INT4OID],
};

// The output is the outputs of the final steps, keyed by step name.
static COMPLETE: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_execution SET status = 'completed', finished_at = now(), \
            output = (SELECT coalesce(jsonb_object_agg(step_key, output), '{}'::jsonb) \
                      FROM @extschema@.workflow_activity WHERE execution_id = $1 AND step_key = ANY($2)) \
          WHERE id = $1 AND status = 'running'",
    args: &[UUIDOID, TEXTARRAYOID],
};

fn schedule(client: &mut SpiClient<'_>, exec: &Execution, step: &Step) -> Result<()> {
    match &step.kind {
        StepKind::Task { activity } => {
            run(
                client,
                &SCHEDULE_TASK,
                &[
                    arg(exec.id),
                    arg(super::new_id()),
                    arg(step.name.as_str()),
                    arg(activity.as_str()),
                    arg(step.queue.as_deref()),
                    arg(step.depends_on.clone()),
                    arg(step.retry.max_attempts),
                    arg(pgrx::JsonB(step.retry_json.clone())),
                    arg(step.priority),
                ],
            )?;
            Ok(())
        }
        // Rejected by workflow_define at this version (see definitions::check_supported).
        other => Err(crate::error::WorkflowError::internal(format!(
            "step kind {} cannot be scheduled by this version",
            other.name()
        ))),
    }
}

/// Moves a locked, running, declared execution forward as far as it can go now.
pub fn advance(client: &mut SpiClient<'_>, exec: &Execution) -> Result<()> {
    let Some(def) = exec.definition.clone() else { return Ok(()) };
    if exec.status != "running" {
        return Ok(());
    }
    let mut states: HashMap<String, String> = HashMap::new();
    for row in run(client, &STEP_STATES, &[arg(exec.id)])? {
        let key: String = row.get(1)?.unwrap_or_default();
        let status: String = row.get(2)?.unwrap_or_default();
        states.insert(key, status);
    }
    let done = |name: &str| matches!(states.get(name).map(String::as_str), Some("completed" | "skipped"));
    let mut all_done = true;
    for step in &def.steps {
        if done(&step.name) {
            continue;
        }
        all_done = false;
        if !states.contains_key(&step.name) && step.depends_on.iter().all(|d| done(d)) {
            schedule(client, exec, step)?;
        }
    }
    if all_done {
        let finals: Vec<String> = def.final_steps().map(|s| s.name.clone()).collect();
        run(client, &COMPLETE, &[arg(exec.id), arg(finals)])?;
    }
    Ok(())
}

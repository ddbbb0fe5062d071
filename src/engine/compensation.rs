//! Sagas: when an execution fails or is cancelled, each completed step that has a
//! `compensate` entry gets a compensating activity, newest first, one at a time, on the
//! queue the entry names, else on the compensated step's own queue (the workers that
//! ran a step are the ones that can undo it).
//! `workflow_execution.compensation` records `running`, `completed` or `failed`.

use super::arg;
use super::plan::{run, Statement};
use super::rows::Execution;
use crate::error::Result;
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;

pub const PREFIX: &str = "compensate:";

// Completed steps with a compensation, newest first, that have no compensation row yet.
static NEXT: Statement = Statement {
    sql: "SELECT a.step_key FROM @extschema@.workflow_activity a \
          WHERE a.execution_id = $1 AND a.status = 'completed' AND a.step_key = ANY($2) \
            AND NOT EXISTS (SELECT FROM @extschema@.workflow_activity c \
                            WHERE c.execution_id = a.execution_id AND c.step_key = 'compensate:' || a.step_key) \
          ORDER BY a.finished_at DESC, a.created_at DESC, a.step_key DESC LIMIT 1",
    args: &[UUIDOID, TEXTARRAYOID],
};
static SCHEDULE: Statement = Statement {
    sql: "INSERT INTO @extschema@.workflow_activity \
            (id, execution_id, step_key, kind, activity_type, queue, status, input, priority) \
          SELECT $2, e.id, 'compensate:' || a.step_key, 'task', $4, coalesce($5, a.queue), 'scheduled', \
                 jsonb_build_object('input', e.input, 'step', a.step_key, 'output', a.output), e.priority \
          FROM @extschema@.workflow_execution e \
          JOIN @extschema@.workflow_activity a ON a.execution_id = e.id AND a.step_key = $3 \
          WHERE e.id = $1 \
          ON CONFLICT (execution_id, step_key) DO NOTHING \
          RETURNING queue",
    args: &[UUIDOID, UUIDOID, TEXTOID, TEXTOID, TEXTOID],
};
static SET_STATE: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_execution SET compensation = $2 WHERE id = $1",
    args: &[UUIDOID, TEXTOID],
};

pub fn is_compensation(step_key: &str) -> bool {
    step_key.starts_with(PREFIX)
}

/// Schedules the next compensation; false when none is left.
fn schedule_next(client: &mut SpiClient<'_>, exec: &Execution) -> Result<bool> {
    let Some(def) = exec.definition.as_ref() else { return Ok(false) };
    let steps: Vec<String> = def.compensate.keys().cloned().collect();
    let next: Option<String> =
        run(client, &NEXT, &[arg(exec.id), arg(steps)])?.next().and_then(|r| r.get::<String>(1).ok().flatten());
    let Some(step) = next else { return Ok(false) };
    let undo = &def.compensate[&step];
    let rows = run(
        client,
        &SCHEDULE,
        &[
            arg(exec.id),
            arg(super::new_id()),
            arg(step.as_str()),
            arg(undo.activity.as_str()),
            arg(undo.queue.as_deref()),
        ],
    )?;
    if let Some(row) = rows.into_iter().next() {
        crate::wake::queue_ready(&row.get::<String>(1)?.unwrap_or_default(), 0);
    }
    Ok(true)
}

/// Starts the saga of a just-closed execution, if any step needs compensating.
pub fn begin(client: &mut SpiClient<'_>, exec: &Execution) -> Result<()> {
    if exec.definition.as_ref().is_none_or(|d| d.compensate.is_empty()) {
        return Ok(());
    }
    if schedule_next(client, exec)? {
        run(client, &SET_STATE, &[arg(exec.id), arg("running")])?;
    }
    Ok(())
}

/// A compensation completed: schedule the next, or record that all are done.
pub fn next(client: &mut SpiClient<'_>, exec: &Execution) -> Result<()> {
    if !schedule_next(client, exec)? {
        run(client, &SET_STATE, &[arg(exec.id), arg("completed")])?;
    }
    Ok(())
}

/// A compensation failed for good: the saga stops there.
pub fn failed(client: &mut SpiClient<'_>, exec: &Execution) -> Result<()> {
    run(client, &SET_STATE, &[arg(exec.id), arg("failed")])?;
    Ok(())
}

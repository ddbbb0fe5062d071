//! DAG progression of declared workflows: schedule the steps whose dependencies are
//! done, move maps along, and complete the execution when every step is done.
//! For a client-driven execution, progress means telling the client: it is marked ready.

use super::arg;
use super::execution::{self, Execution};
use super::plan::{run, Statement};
use super::steps::{self, Scheduled};
use crate::error::Result;
use crate::model::definition::{AfterCompletion, Definition};
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;
use std::collections::HashMap;

static STEP_STATES: Statement = Statement {
    sql: "SELECT step_key, status FROM @extschema@.workflow_activity WHERE execution_id = $1",
    args: &[UUIDOID],
};

// The output is the outputs of the final steps, keyed by step name.
static COMPLETE: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_execution SET status = 'completed', finished_at = now(), \
            output = (SELECT coalesce(jsonb_object_agg(step_key, output), '{}'::jsonb) \
                      FROM @extschema@.workflow_activity WHERE execution_id = $1 AND step_key = ANY($2)) \
          WHERE id = $1 AND status = 'running' \
          RETURNING parent_id IS NOT NULL",
    args: &[UUIDOID, TEXTARRAYOID],
};
static MARK_READY: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_execution SET ready_at = now() WHERE id = $1 AND ready_at IS NULL RETURNING id",
    args: &[UUIDOID],
};

fn step_states(client: &mut SpiClient<'_>, id: pgrx::Uuid) -> Result<HashMap<String, String>> {
    let mut states = HashMap::new();
    for row in run(client, &STEP_STATES, &[arg(id)])? {
        states.insert(row.get::<String>(1)?.unwrap_or_default(), row.get::<String>(2)?.unwrap_or_default());
    }
    Ok(states)
}

/// Moves a locked execution forward as far as it can go now.
pub fn advance(client: &mut SpiClient<'_>, exec: &Execution) -> Result<()> {
    walk(client, exec, false)
}

/// `advance` once step `step_key` of a locked execution completed. Where the definition
/// alone says what follows (a chain, a single step), that is done without reading the
/// other steps' states; a step found already scheduled sends it the long way round.
pub fn advance_after(client: &mut SpiClient<'_>, exec: &Execution, step_key: &str) -> Result<()> {
    if let (true, Some(def)) = (exec.status == "running", exec.definition.clone()) {
        match def.after_completion(step_key) {
            Some(AfterCompletion::Finish) => return finish(client, exec, &def),
            Some(AfterCompletion::Schedule(next)) => {
                let mut all_new = true;
                for step in next {
                    all_new &= matches!(steps::schedule(client, exec, step, &step.name, None)?, Scheduled::Open);
                }
                if all_new {
                    return Ok(());
                }
            }
            None => {}
        }
    }
    advance(client, exec)
}

/// `advance` for an execution this transaction just inserted: it has no steps yet.
pub fn advance_new(client: &mut SpiClient<'_>, exec: &Execution) -> Result<()> {
    walk(client, exec, true)
}

fn walk(client: &mut SpiClient<'_>, exec: &Execution, mut new: bool) -> Result<()> {
    if exec.status != "running" {
        return Ok(());
    }
    let Some(def) = exec.definition.clone() else {
        if !run(client, &MARK_READY, &[arg(exec.id)])?.is_empty() {
            crate::wake::execution_ready(&exec.id);
        }
        return Ok(());
    };
    // Steps that complete as they are scheduled (a buffered signal, a map over []) can
    // make others ready, so go round until nothing more moves.
    loop {
        let states = if std::mem::take(&mut new) { HashMap::new() } else { step_states(client, exec.id)? };
        let done = |name: &str| matches!(states.get(name).map(String::as_str), Some("completed" | "skipped"));
        let mut all_done = true;
        let mut progressed = false;
        for step in &def.steps {
            match states.get(&step.name).map(String::as_str) {
                Some("completed" | "skipped") => {}
                Some("failed" | "cancelled") => return Ok(()),
                Some("waiting") if step.map.is_some() => {
                    all_done = false;
                    progressed |= steps::map_progress(client, exec, step, &states)?;
                }
                Some(_) => all_done = false,
                None => {
                    all_done = false;
                    if step.depends_on.iter().all(|d| done(d)) {
                        match steps::schedule(client, exec, step, &step.name, None)? {
                            Scheduled::CompletedAtOnce => progressed = true,
                            Scheduled::Failed => return Ok(()),
                            Scheduled::Open | Scheduled::Existed => {}
                        }
                    }
                }
            }
        }
        if all_done {
            return finish(client, exec, &def);
        }
        if !progressed {
            return Ok(());
        }
    }
}

fn finish(client: &mut SpiClient<'_>, exec: &Execution, def: &Definition) -> Result<()> {
    let finals: Vec<String> = def.final_steps().map(|s| s.name.clone()).collect();
    let Some(row) = run(client, &COMPLETE, &[arg(exec.id), arg(finals)])?.next() else {
        return Ok(()); // no longer running
    };
    crate::wake::execution_finished(&exec.id);
    if row.get::<bool>(1)?.unwrap_or(true) {
        execution::notify_parent(client, exec.id)?;
    }
    Ok(())
}

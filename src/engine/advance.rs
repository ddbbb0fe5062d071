//! DAG progression of declared workflows: schedule the steps whose dependencies are
//! done, move maps along, and complete the execution when every step is done.
//! For a client-driven execution, progress means telling the client: it is marked ready.

use super::admission::{self, Admission};
use super::plan::{run, Statement};
use super::rows::{self, ActivityStatus, Execution, ExecutionStatus, LockedActivity};
use super::schedule::{self, Scheduled};
use super::{arg, compensation, definitions};
use crate::error::{Result, WorkflowError};
use crate::model::definition::{AfterCompletion, Definition, Step};
use crate::model::options::StartOptions;
use crate::model::retry::{Decision, RetryPolicy};
use crate::wake;
use pgrx::pg_sys;
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;
use pgrx::{JsonB, Uuid};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::rc::Rc;

static STEP_STATES: Statement = Statement {
    sql: "SELECT step_key, status FROM @extschema@.workflow_activity WHERE execution_id = $1",
    args: &[UUIDOID],
};

// The output is the outputs of the final steps, keyed by step name.
static COMPLETE: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_execution SET status = 'completed', finished_at = now(), \
            output = (SELECT coalesce(jsonb_object_agg(step_key, output), '{}'::jsonb) \
                      FROM @extschema@.workflow_activity WHERE execution_id = $1 AND step_key = ANY($2)) \
          WHERE id = $1 AND (status = 'running') IS TRUE \
          RETURNING parent_id IS NOT NULL, concurrency_key",
    args: &[UUIDOID, TEXTARRAYOID],
};
static MARK_READY: Statement = Statement {
    // ready_at in the future is a replay turn's parked end (engine/replay.rs): now wins.
    sql: "UPDATE @extschema@.workflow_execution SET ready_at = now() \
          WHERE id = $1 AND (ready_at IS NULL OR ready_at > now()) RETURNING id",
    args: &[UUIDOID],
};

fn step_states(client: &mut SpiClient<'_>, id: pgrx::Uuid) -> Result<HashMap<String, ActivityStatus>> {
    let mut states = HashMap::new();
    for row in run(client, &STEP_STATES, &[arg(id)])? {
        let status = ActivityStatus::parse(&row.get::<String>(2)?.unwrap_or_default())?;
        states.insert(row.get::<String>(1)?.unwrap_or_default(), status);
    }
    Ok(states)
}

/// Schedules `step` under `key` and does what scheduling cannot do by itself: fails a
/// step that cannot run, starts (or resumes) a `workflow` step's child.
pub fn schedule_step(
    client: &mut SpiClient<'_>,
    exec: &Execution,
    step: &Step,
    key: &str,
    explicit_input: Option<Value>,
) -> Result<Scheduled> {
    match schedule::schedule(client, exec, step, key, explicit_input)? {
        Scheduled::FailAtOnce { id, error } => {
            fail_for_good(client, exec, id, key, error)?;
            Ok(Scheduled::Failed)
        }
        Scheduled::StartChild { id, workflow_type, input, client_driven, idempotency_key } => {
            let child =
                ChildSpec { workflow_type: &workflow_type, client_driven, idempotency_key: idempotency_key.as_deref() };
            match start_child(client, child, input, exec.id, key)? {
                Child::Running => Ok(Scheduled::Open),
                Child::Completed(output) => {
                    rows::mark_completed(client, id, output)?;
                    Ok(Scheduled::CompletedAtOnce)
                }
                Child::Undefined(error) => {
                    fail_for_good(client, exec, id, key, error)?;
                    Ok(Scheduled::Failed)
                }
            }
        }
        other => Ok(other),
    }
}

/// Moves a locked execution forward as far as it can go now.
pub fn advance(client: &mut SpiClient<'_>, exec: &Execution) -> Result<()> {
    walk(client, exec, false)
}

/// `advance` once step `step_key` of a locked execution completed. Where the definition
/// alone says what follows (a chain, a single step), that is done without reading the
/// other steps' states; a step found already scheduled sends it the long way round.
pub fn advance_after(client: &mut SpiClient<'_>, exec: &Execution, step_key: &str) -> Result<()> {
    if let (true, Some(def)) = (exec.status == ExecutionStatus::Running, exec.definition.clone()) {
        match def.after_completion(step_key) {
            Some(AfterCompletion::Finish) => return finish(client, exec, &def),
            Some(AfterCompletion::Schedule(next)) => {
                let mut all_new = true;
                for step in next {
                    all_new &= matches!(schedule_step(client, exec, step, &step.name, None)?, Scheduled::Open);
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
    if exec.status != ExecutionStatus::Running {
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
        let done = |name: &str| matches!(states.get(name), Some(ActivityStatus::Completed | ActivityStatus::Skipped));
        let mut all_done = true;
        let mut progressed = false;
        for step in &def.steps {
            match states.get(&step.name) {
                Some(ActivityStatus::Completed | ActivityStatus::Skipped) => {}
                Some(ActivityStatus::Failed | ActivityStatus::Cancelled) => return Ok(()),
                Some(ActivityStatus::Waiting) if step.map.is_some() => {
                    all_done = false;
                    progressed |= schedule::map_progress(client, exec, step, &states)?;
                }
                Some(_) => all_done = false,
                None => {
                    all_done = false;
                    if step.depends_on.iter().all(|d| done(d)) {
                        match schedule_step(client, exec, step, &step.name, None)? {
                            Scheduled::CompletedAtOnce => progressed = true,
                            Scheduled::Failed => return Ok(()),
                            _ => {}
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
    if let Some(key) = row.get::<String>(2)? {
        admission::released(client, &exec.workflow_type, &key)?;
    }
    if row.get::<bool>(1)?.unwrap_or(true) {
        notify_parent(client, exec.id)?;
    }
    Ok(())
}

// A start time in the future makes the execution `pending`; dispatch starts it.
static INSERT_EXECUTION: Statement = Statement {
    sql: "WITH t AS (SELECT coalesce($9, now() + $10::float8 * interval '1 microsecond') AS start_at) \
          INSERT INTO @extschema@.workflow_execution \
            (id, workflow_type, definition_version, idempotency_key, status, input, queue, priority, labels, \
             tenant_id, started_at, deadline, parent_id, parent_step, owner, concurrency_key) \
          SELECT $1, $2, $3, $4, CASE WHEN t.start_at > now() OR $16 <> 'run' THEN 'pending' ELSE 'running' END, \
                 $5, $6, $7, $8, $11, CASE WHEN $16 <> 'wait' THEN greatest(t.start_at, now()) END, \
                 greatest(t.start_at, now()) + $12::float8 * interval '1 microsecond', $13, $14, $15::oid::regrole, $17 \
          FROM t \
          ON CONFLICT (workflow_type, idempotency_key, (coalesce(tenant_id, ''))) WHERE idempotency_key IS NOT NULL \
          DO NOTHING \
          RETURNING status",
    args: &[
        UUIDOID,
        TEXTOID,
        INT4OID,
        TEXTOID,
        JSONBOID,
        TEXTOID,
        INT4OID,
        JSONBOID,
        TIMESTAMPTZOID,
        INT8OID,
        TEXTOID,
        INT8OID,
        UUIDOID,
        TEXTOID,
        OIDOID,
        TEXTOID,
        TEXTOID,
    ],
};

static EXISTING_EXECUTION: Statement = Statement {
    sql: "SELECT id FROM @extschema@.workflow_execution \
          WHERE workflow_type = $1 AND idempotency_key = $2 AND coalesce(tenant_id, '') = coalesce($3, '')",
    args: &[TEXTOID, TEXTOID, TEXTOID],
};

static PARENT_DEFAULTS: Statement = Statement {
    sql: "SELECT queue, priority, tenant_id, owner::oid FROM @extschema@.workflow_execution WHERE id = $1",
    args: &[UUIDOID],
};

static CLOSE: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_execution SET status = $2, error = $3, output = coalesce($4, output), \
            finished_at = now(), ready_at = NULL, replay_worker = NULL, replay_lease_expires_at = NULL \
          WHERE id = $1 \
          RETURNING workflow_type, concurrency_key",
    args: &[UUIDOID, TEXTOID, JSONBOID, JSONBOID],
};

static CANCEL_OPEN_STEPS: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_activity \
          SET status = 'cancelled', cancel_requested = true, finished_at = now(), lease_expires_at = NULL \
          WHERE execution_id = $1 AND status IN ('scheduled', 'running', 'waiting')",
    args: &[UUIDOID],
};

static OPEN_CHILDREN: Statement = Statement {
    sql: "SELECT id FROM @extschema@.workflow_execution WHERE parent_id = $1 AND (status IN ('pending', 'running')) IS TRUE",
    args: &[UUIDOID],
};

static PARENT_OF: Statement = Statement {
    // The parent's step in a lateral subquery kept apart (OFFSET 0): joined,
    // `a.execution_id = e.parent_id` would let the planner read the parent index whole
    // for `e` (see engine/plan.rs).
    sql: "SELECT e.parent_id, e.parent_step, e.status, e.output, e.error, step.id \
          FROM @extschema@.workflow_execution e \
          CROSS JOIN LATERAL (SELECT a.id FROM @extschema@.workflow_activity a \
                              WHERE a.execution_id = e.parent_id AND a.step_key = e.parent_step \
                                AND (a.status = 'waiting') IS TRUE OFFSET 0) step \
          WHERE e.id = $1",
    args: &[UUIDOID],
};

// Resume: forget what did not complete, so that advance schedules it afresh, and the
// steps in $2 (undone by compensation, and what depends on them), map items included.
static FORGET_UNFINISHED: Statement = Statement {
    sql: "DELETE FROM @extschema@.workflow_activity \
          WHERE execution_id = $1 \
            AND (status <> 'completed' OR starts_with(step_key, 'compensate:') \
                 OR regexp_replace(step_key, '\\[\\d+\\]$', '') = ANY($2))",
    args: &[UUIDOID, TEXTARRAYOID],
};

// The children of `workflow` steps that run again because compensation undid them: they
// keep their parent (history, cancellation) but no longer stand for the step.
static DETACH_UNDONE_CHILDREN: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_execution SET parent_step = NULL \
          WHERE parent_id = $1 AND parent_step = ANY($2)",
    args: &[UUIDOID, TEXTARRAYOID],
};
// Steps whose compensation completed: their effects were undone.
static UNDONE: Statement = Statement {
    sql: "SELECT substr(step_key, length('compensate:') + 1) FROM @extschema@.workflow_activity \
          WHERE execution_id = $1 AND starts_with(step_key, 'compensate:') AND status = 'completed'",
    args: &[UUIDOID],
};

static COMPENSATION_STATE: Statement =
    Statement { sql: "SELECT compensation FROM @extschema@.workflow_execution WHERE id = $1", args: &[UUIDOID] };

// The child a `workflow` step started, newest first (a parent's retry resumes it).
static CHILD_OF_STEP: Statement = Statement {
    sql: "SELECT id, status, output FROM @extschema@.workflow_execution \
          WHERE parent_id = $1 AND parent_step = $2 ORDER BY id DESC LIMIT 1",
    args: &[UUIDOID, TEXTOID],
};

static REOPEN: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_execution \
          SET status = 'running', error = NULL, output = NULL, finished_at = NULL, compensation = NULL, \
              deadline = CASE WHEN deadline < now() THEN now() + (deadline - started_at) ELSE deadline END, \
              ready_at = CASE WHEN definition_version IS NULL THEN now() END \
          WHERE id = $1 \
          RETURNING concurrency_key",
    args: &[UUIDOID],
};

// A retried execution that may not run yet: pending, due now, so the dispatcher admits
// it in order (its timeout counted from the start to come).
static REOPEN_PENDING: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_execution \
          SET status = 'pending', deadline = now() + (deadline - started_at), started_at = now() \
          WHERE id = $1",
    args: &[UUIDOID],
};

pub struct NewExecution<'a> {
    pub workflow_type: &'a str,
    pub input: Value,
    pub idempotency_key: Option<&'a str>,
    pub opts: StartOptions,
    pub parent: Option<(Uuid, &'a str)>,
    /// The role that started it (for a child, the parent's).
    pub owner: pg_sys::Oid,
}

/// A declared workflow type: its newest version and definition, and whether the type is
/// paused (`workflow_type_pause`).
pub struct Declared {
    pub version: i32,
    pub definition: Rc<Definition>,
    pub paused: bool,
}

/// The newest version of a type's definition, if it is declared.
pub fn declared(client: &mut SpiClient<'_>, workflow_type: &str) -> Result<Option<Declared>> {
    match definitions::current(client, workflow_type)? {
        Some((version, stamp, paused)) => Ok(Some(Declared {
            version,
            definition: definitions::load(client, workflow_type, version, &stamp)?,
            paused,
        })),
        None => Ok(None),
    }
}

/// Inserts the execution (or finds the one with the same key) and schedules its first
/// steps. `declared` is the type's newest version and definition; None makes it
/// client-driven.
pub fn create(client: &mut SpiClient<'_>, new: NewExecution<'_>, declared: Option<Declared>) -> Result<Uuid> {
    let opts = new.opts;
    let start_at = opts.start_at.as_deref().map(|t| rows::parse_timestamptz("options.start_at", t)).transpose()?;
    let (current, definition, paused) = match declared {
        Some(d) => (Some(d.version), Some(d.definition), d.paused),
        None => (None, None, false),
    };
    let timeout = opts.timeout.or_else(|| definition.as_ref().and_then(|d| d.timeout));
    let id = super::new_id();
    // A concurrency key or a paused type may make it wait; a delayed start is decided
    // when it comes due (execution::start_pending).
    let key = admission::key_of(definition.as_deref(), &new.input, opts.tenant_id.as_deref())?;
    let limit = key.as_deref().zip(definition.as_ref().and_then(|d| d.concurrency.as_ref()).map(|c| c.max_running));
    let admitted = if limit.is_none() && !paused {
        Admission::Run
    } else if start_at.is_some() || opts.delay.unwrap_or(0) > 0 {
        Admission::Defer
    } else {
        admission::admit(client, id, new.workflow_type, limit, paused)?
    };
    let inserted = run(
        client,
        &INSERT_EXECUTION,
        &[
            arg(id),
            arg(new.workflow_type),
            arg(current),
            arg(new.idempotency_key),
            arg(JsonB(new.input)),
            arg(opts.queue.as_deref().unwrap_or("default")),
            arg(opts.priority.unwrap_or(0)),
            arg(JsonB(opts.labels.unwrap_or_else(|| json!({})))),
            arg(start_at),
            arg(opts.delay.unwrap_or(0)),
            arg(opts.tenant_id.as_deref()),
            arg(timeout),
            arg(new.parent.map(|p| p.0)),
            arg(new.parent.map(|p| p.1)),
            arg(new.owner),
            arg(admitted.as_str()),
            arg(key.as_deref()),
        ],
    )?;
    let status: Option<String> = match inserted.into_iter().next() {
        Some(row) => row.get(1)?,
        None => {
            // Same (workflow_type, idempotency_key) as an earlier start: that one stands.
            let rows = run(
                client,
                &EXISTING_EXECUTION,
                &[arg(new.workflow_type), arg(new.idempotency_key), arg(opts.tenant_id.as_deref())],
            )?;
            let existing = rows.into_iter().next().and_then(|r| r.get::<Uuid>(1).ok().flatten());
            return existing.ok_or_else(|| {
                WorkflowError::conflict(format!(
                    "workflow \"{}\" with idempotency key \"{}\" exists but is not visible to this transaction",
                    new.workflow_type,
                    new.idempotency_key.unwrap_or_default()
                ))
                .with_hint("retry in a new transaction (READ COMMITTED)")
            });
        }
    };
    if status.as_deref() == Some("running") {
        // Inserted by this transaction: nobody else can see it, so no lock and no read.
        let exec =
            Execution { id, status: ExecutionStatus::Running, workflow_type: new.workflow_type.to_owned(), definition };
        advance_new(client, &exec)?;
    }
    if status.as_deref() == Some("pending") || timeout.is_some() {
        crate::wake::wake_at_commit(); // a delayed start or a deadline to keep
    }
    Ok(id)
}

/// What starting the child of a `workflow` step did.
pub enum Child {
    /// A new child runs, or the one a failed or cancelled run left was resumed.
    Running,
    /// The step's child had completed already (it was retried on its own): its output.
    Completed(Value),
    /// The type is not defined: the step fails with this error.
    Undefined(Value),
}

/// Starts the child execution of a `workflow` step (it inherits queue, priority and
/// tenant), or, when a run of the parent before a `workflow_retry` left a failed or
/// cancelled one, resumes it: a child's completed steps are kept like the parent's own.
/// A child that completed meanwhile (retried on its own) completes the step with its
/// output. The children of steps that compensation undid were detached by the retry
/// (`retry_locked`), so those steps start new ones. With `client_driven` (a step a
/// client-driven parent scheduled with `options.client_driven`), the child has no
/// definition either: its own client drives it.
/// What a `workflow` step starts: the type, whether it is client-driven, its own key.
pub struct ChildSpec<'a> {
    pub workflow_type: &'a str,
    pub client_driven: bool,
    pub idempotency_key: Option<&'a str>,
}

pub fn start_child(
    client: &mut SpiClient<'_>,
    child: ChildSpec<'_>,
    input: Value,
    parent: Uuid,
    step_key: &str,
) -> Result<Child> {
    let ChildSpec { workflow_type, client_driven, idempotency_key } = child;
    if let Some(row) = run(client, &CHILD_OF_STEP, &[arg(parent), arg(step_key)])?.next() {
        let child: Uuid = row.get(1)?.ok_or_else(|| WorkflowError::internal("child without id"))?;
        match ExecutionStatus::parse(&row.get::<String>(2)?.unwrap_or_default())? {
            ExecutionStatus::Failed | ExecutionStatus::Cancelled => {
                let exec = rows::lock_execution(client, child, None)?;
                retry_locked(client, exec)?;
                return Ok(Child::Running);
            }
            ExecutionStatus::Pending | ExecutionStatus::Running => return Ok(Child::Running),
            ExecutionStatus::Completed => {
                return Ok(Child::Completed(row.get::<JsonB>(3)?.map(|j| j.0).unwrap_or(Value::Null)))
            }
        }
    }
    let definition = match (client_driven, declared(client, workflow_type)?) {
        (true, Some(_)) => {
            return Err(WorkflowError::invalid(format!(
                "options.client_driven is true, but workflow \"{workflow_type}\" is declared; \
                 leave client_driven out to start it as declared"
            )))
        }
        (true, None) => None,
        (false, Some(declared)) => Some(declared),
        (false, None) => {
            return Ok(Child::Undefined(json!({
                "type": "UndefinedWorkflow",
                "message": format!(
                    "step \"{step_key}\" starts workflow \"{workflow_type}\", which is not defined; \
                     define it with workflow_define, then workflow_retry this execution"
                ),
            })))
        }
    };
    let row = run(client, &PARENT_DEFAULTS, &[arg(parent)])?.next();
    let mut opts = StartOptions::default();
    let mut owner = pg_sys::Oid::INVALID;
    if let Some(row) = row {
        opts.queue = row.get(1)?;
        opts.priority = row.get(2)?;
        opts.tenant_id = row.get(3)?;
        owner = row.get(4)?.unwrap_or(owner);
    }
    let new = NewExecution { workflow_type, input, idempotency_key, opts, parent: Some((parent, step_key)), owner };
    create(client, new, definition)?;
    Ok(Child::Running)
}

/// Ends a locked, unfinished execution as `failed` or `cancelled`: cancels its open
/// steps and its children, starts compensation, and tells its parent.
pub fn close(client: &mut SpiClient<'_>, exec: &Execution, status: ExecutionStatus, error: Value) -> Result<()> {
    end(client, exec.id, status, Some(error), None)?;
    let children: Vec<Uuid> =
        run(client, &OPEN_CHILDREN, &[arg(exec.id)])?.filter_map(|r| r.get::<Uuid>(1).ok().flatten()).collect();
    for child in children {
        let child = rows::lock_execution(client, child, None)?;
        let reason = json!({"type": "Cancelled", "message": format!("parent execution {} was {status}", exec.id)});
        close(client, &child, ExecutionStatus::Cancelled, reason)?;
    }
    let closed = Execution {
        id: exec.id,
        status,
        workflow_type: exec.workflow_type.clone(),
        definition: exec.definition.clone(),
    };
    compensation::begin(client, &closed)?;
    notify_parent(client, exec.id)
}

/// Fails a locked execution because `step_key` failed for good.
pub fn fail(client: &mut SpiClient<'_>, exec: &Execution, step_key: &str, error: &Value) -> Result<()> {
    close(client, exec, ExecutionStatus::Failed, json!({"step": step_key, "error": error}))
}

/// `workflow_complete` of a locked, running client-driven execution.
pub fn complete_client_driven(client: &mut SpiClient<'_>, exec: &Execution, output: Value) -> Result<()> {
    end(client, exec.id, ExecutionStatus::Completed, None, Some(output))?;
    notify_parent(client, exec.id)
}

/// Ends an execution's row (status, error or output, finish time), cancels its open
/// steps, and announces it at commit: what every way of ending one shares.
fn end(
    client: &mut SpiClient<'_>,
    id: Uuid,
    status: ExecutionStatus,
    error: Option<Value>,
    output: Option<Value>,
) -> Result<()> {
    let closed =
        run(client, &CLOSE, &[arg(id), arg(status.as_str()), arg(error.map(JsonB)), arg(output.map(JsonB))])?.next();
    if let Some(row) = closed {
        if let (Some(workflow_type), Some(key)) = (row.get::<String>(1)?, row.get::<String>(2)?) {
            admission::released(client, &workflow_type, &key)?;
        }
    }
    run(client, &CANCEL_OPEN_STEPS, &[arg(id)])?;
    crate::wake::execution_finished(&id);
    Ok(())
}

/// A finished child completes (or fails) the parent's waiting `workflow` step.
pub fn notify_parent(client: &mut SpiClient<'_>, child: Uuid) -> Result<()> {
    let Some(row) = run(client, &PARENT_OF, &[arg(child)])?.next() else { return Ok(()) };
    let parent_id: Uuid = row.get(1)?.ok_or_else(|| WorkflowError::internal("child without parent"))?;
    let step_key: String = row.get(2)?.unwrap_or_default();
    let status: String = row.get(3)?.unwrap_or_default();
    let output = row.get::<JsonB>(4)?.map(|j| j.0).unwrap_or(Value::Null);
    let error = row.get::<JsonB>(5)?.map(|j| j.0).unwrap_or(Value::Null);
    let step_id: Uuid = row.get(6)?.ok_or_else(|| WorkflowError::internal("parent step without id"))?;
    let parent = rows::lock_execution(client, parent_id, None)?;
    if status == "completed" {
        rows::mark_completed(client, step_id, output)?;
        step_finished(client, &parent, &step_key, Finished::Completed)
    } else {
        let error =
            json!({"type": "ChildWorkflowFailed", "child": child.to_string(), "status": status, "error": error});
        fail_for_good(client, &parent, step_id, &step_key, error)
    }
}

/// `resume` of a locked execution. Its failed or cancelled children resume when their
/// steps are scheduled again (`start_child`). Refused while compensation runs: the
/// saga must end before the steps it undoes may run again. Steps whose compensation
/// completed run again, and so does every step that depends on them (their inputs are
/// gone); everything else that completed is kept.
pub fn retry_locked(client: &mut SpiClient<'_>, exec: Execution) -> Result<bool> {
    match exec.status {
        ExecutionStatus::Failed | ExecutionStatus::Cancelled => {}
        ExecutionStatus::Completed => {
            return Err(WorkflowError::conflict(format!("cannot retry execution {}: it completed", exec.id))
                .with_hint("start a new execution to run it again"))
        }
        _ => return Ok(false),
    }
    let compensation: Option<String> =
        run(client, &COMPENSATION_STATE, &[arg(exec.id)])?.next().and_then(|r| r.get(1).ok().flatten());
    if compensation.as_deref() == Some("running") {
        return Err(WorkflowError::conflict(format!(
            "cannot retry execution {} ({}): its compensation is still running",
            exec.id, exec.workflow_type
        ))
        .with_hint(
            "retry once workflow_status shows compensation completed or failed; steps it undid then run again",
        ));
    }
    let undone: Vec<String> =
        run(client, &UNDONE, &[arg(exec.id)])?.filter_map(|r| r.get::<String>(1).ok().flatten()).collect();
    let again = exec.definition.as_ref().map(|d| d.downstream(&undone)).unwrap_or_default();
    run(client, &DETACH_UNDONE_CHILDREN, &[arg(exec.id), arg(again.clone())])?;
    run(client, &FORGET_UNFINISHED, &[arg(exec.id), arg(again)])?;
    let key = run(client, &REOPEN, &[arg(exec.id)])?.next().and_then(|r| r.get::<String>(1).ok().flatten());
    // Under a concurrency key or a paused type, the retried execution may have to wait.
    if let Some(declared) = declared(client, &exec.workflow_type)? {
        let limit = key.as_deref().zip(declared.definition.concurrency.as_ref().map(|c| c.max_running));
        if limit.is_some() || declared.paused {
            match admission::admit(client, exec.id, &exec.workflow_type, limit, declared.paused)? {
                Admission::Run => {}
                Admission::Wait | Admission::Defer => {
                    run(client, &REOPEN_PENDING, &[arg(exec.id)])?;
                    crate::wake::wake_at_commit();
                    return Ok(true);
                }
            }
        }
    }
    let exec = Execution { status: ExecutionStatus::Running, ..exec };
    advance(client, &exec)?;
    Ok(true)
}

static RETRY: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_activity \
          SET status = 'scheduled', error = $2, scheduled_at = now() + $3::float8 * interval '1 microsecond', \
              worker_id = NULL, lease_expires_at = NULL \
          WHERE id = $1 \
          RETURNING queue, kind, scheduled_at",
    args: &[UUIDOID, JSONBOID, INT8OID],
};

// A wait that timed out and may retry waits again: after the backoff, for its timeout.
// A client-driven execution's activity is claimable again (a retry after a failure or an
// expired lease): its code may run it itself (workflow_claim_activity), so the execution
// is ready when the retry is due.
static READY_FOR_RETRY: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_execution SET ready_at = least(coalesce(ready_at, 'infinity'), \
            (SELECT scheduled_at FROM @extschema@.workflow_activity WHERE id = $2)) \
          WHERE id = $1",
    args: &[UUIDOID, UUIDOID],
};

static REWAIT: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_activity \
          SET error = $2, attempt = attempt + 1, \
              scheduled_at = now() + $3::float8 * interval '1 microsecond' + coalesce(start_to_close, interval '0') \
          WHERE id = $1",
    args: &[UUIDOID, JSONBOID, INT8OID],
};

/// How a step ended (its row says so already).
pub enum Finished<'a> {
    Completed,
    /// Failed for good, with this error.
    Failed(&'a Value),
}

/// The one path every finished step takes, whatever its kind (task, sql, sleep, signal
/// wait, child workflow, map, compensation), once its row is marked: what it means for
/// its execution. A compensation moves the saga on; a completed step advances the DAG
/// (a client-driven execution is marked ready instead); a step that failed for good fails
/// a running declared execution.
pub fn step_finished(client: &mut SpiClient<'_>, exec: &Execution, step_key: &str, how: Finished<'_>) -> Result<()> {
    match how {
        Finished::Completed if compensation::is_compensation(step_key) => compensation::next(client, exec),
        Finished::Completed => advance_after(client, exec, step_key),
        Finished::Failed(_) if compensation::is_compensation(step_key) => compensation::failed(client, exec),
        Finished::Failed(_) if exec.definition.is_none() => advance(client, exec),
        Finished::Failed(error) if exec.status == ExecutionStatus::Running => fail(client, exec, step_key, error),
        Finished::Failed(_) => Ok(()),
    }
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

/// Fails a step for good: its row, then what that means (`step_finished`).
pub fn fail_for_good(
    client: &mut SpiClient<'_>,
    exec: &Execution,
    id: Uuid,
    step_key: &str,
    error: Value,
) -> Result<()> {
    run(client, &rows::MARK_FAILED, &[arg(id), arg(JsonB(error.clone()))])?;
    step_finished(client, exec, step_key, Finished::Failed(&error))
}

pub fn apply_failure(
    client: &mut SpiClient<'_>,
    exec: &Execution,
    act: &LockedActivity,
    error: Value,
    retryable: bool,
) -> Result<Outcome> {
    // Policies are validated at define time; an unreadable one falls back to the default.
    let mut policy = RetryPolicy::from_json(&act.retry, "retry").unwrap_or_default();
    let waits = act.status == ActivityStatus::Waiting;
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
                let due = row.get::<pgrx::datum::TimestampWithTimeZone>(3)?.map_or(0, pg_sys::TimestampTz::from);
                if kind.as_deref() == Some("task") {
                    wake::queue_ready(&queue.unwrap_or_default(), due);
                } else {
                    wake::wake_at_commit();
                }
                if exec.definition.is_none() {
                    run(client, &READY_FOR_RETRY, &[arg(exec.id), arg(act.id)])?;
                    wake::execution_ready_at(&exec.id, due);
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

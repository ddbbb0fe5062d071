//! Execution-level transitions: start (top-level and child), lock, close (fail or
//! cancel, cascading to children and starting compensation), resume, and telling a
//! parent that its child finished.

use super::plan::{run, Statement};
use super::tenancy::{self, Caller};
use super::{activity, advance, arg, compensation, definitions, limits};
use crate::error::{Result, WorkflowError};
use crate::model::definition::Definition;
use crate::model::options::{parse_start_options, StartOptions};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::prelude::PgTryBuilder;
use pgrx::spi::SpiClient;
use pgrx::{IntoDatum, JsonB, Uuid};
use serde_json::{json, Value};
use std::ffi::CString;
use std::rc::Rc;

/// An execution row as this transaction read it (locked, unless from `read`).
pub struct Execution {
    pub id: Uuid,
    pub status: String,
    pub workflow_type: String,
    /// None for a client-driven execution.
    pub definition: Option<Rc<Definition>>,
}

macro_rules! execution_query {
    ($suffix:literal) => {
        concat!(
            "SELECT e.status, e.workflow_type, e.definition_version, d.xmin::text \
             FROM @extschema@.workflow_execution e \
             LEFT JOIN @extschema@.workflow_definition d ON d.name = e.workflow_type AND d.version = e.definition_version \
             WHERE e.id = $1",
            $suffix
        )
    };
}
static LOCK: Statement = Statement { sql: execution_query!(" FOR UPDATE OF e"), args: &[UUIDOID] };
// The execution of an activity, locked, in one statement (the activity is not locked).
static LOCK_OF_ACTIVITY: Statement = Statement {
    sql: "SELECT e.status, e.workflow_type, e.definition_version, d.xmin::text, e.id \
          FROM @extschema@.workflow_activity a \
          JOIN @extschema@.workflow_execution e ON e.id = a.execution_id \
          LEFT JOIN @extschema@.workflow_definition d ON d.name = e.workflow_type AND d.version = e.definition_version \
          WHERE a.id = $1 FOR UPDATE OF e",
    args: &[UUIDOID],
};
static READ: Statement = Statement { sql: execution_query!(""), args: &[UUIDOID] };

// A start time in the future makes the execution `pending`; dispatch starts it.
static INSERT: Statement = Statement {
    sql: "WITH t AS (SELECT coalesce($9, now() + $10::float8 * interval '1 microsecond') AS start_at) \
          INSERT INTO @extschema@.workflow_execution \
            (id, workflow_type, definition_version, idempotency_key, status, input, queue, priority, labels, \
             tenant_id, started_at, deadline, parent_id, parent_step, owner) \
          SELECT $1, $2, $3, $4, CASE WHEN t.start_at > now() THEN 'pending' ELSE 'running' END, $5, $6, $7, $8, \
                 $11, greatest(t.start_at, now()), \
                 greatest(t.start_at, now()) + $12::float8 * interval '1 microsecond', $13, $14, $15::oid::regrole \
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
    ],
};
static EXISTING: Statement = Statement {
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
            finished_at = now(), ready_at = NULL WHERE id = $1",
    args: &[UUIDOID, TEXTOID, JSONBOID, JSONBOID],
};
static CANCEL_OPEN_STEPS: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_activity \
          SET status = 'cancelled', cancel_requested = true, finished_at = now(), lease_expires_at = NULL \
          WHERE execution_id = $1 AND status IN ('scheduled', 'running', 'waiting')",
    args: &[UUIDOID],
};
static OPEN_CHILDREN: Statement = Statement {
    sql: "SELECT id FROM @extschema@.workflow_execution WHERE parent_id = $1 AND status IN ('pending', 'running')",
    args: &[UUIDOID],
};
static START_PENDING: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_execution SET status = 'running', started_at = now() \
          WHERE id = $1 AND status = 'pending'",
    args: &[UUIDOID],
};
static PARENT_OF: Statement = Statement {
    sql: "SELECT e.parent_id, e.parent_step, e.status, e.output, e.error, a.id \
          FROM @extschema@.workflow_execution e \
          JOIN @extschema@.workflow_activity a ON a.execution_id = e.parent_id AND a.step_key = e.parent_step \
          WHERE e.id = $1 AND a.status = 'waiting'",
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
    sql: "SELECT id, status FROM @extschema@.workflow_execution \
          WHERE parent_id = $1 AND parent_step = $2 ORDER BY id DESC LIMIT 1",
    args: &[UUIDOID, TEXTOID],
};
static REOPEN: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_execution \
          SET status = 'running', error = NULL, output = NULL, finished_at = NULL, compensation = NULL, \
              deadline = CASE WHEN deadline < now() THEN now() + (deadline - started_at) ELSE deadline END, \
              ready_at = CASE WHEN definition_version IS NULL THEN now() END \
          WHERE id = $1",
    args: &[UUIDOID],
};

/// Locks an execution; P0002 if there is none.
pub fn lock(client: &mut SpiClient<'_>, id: Uuid) -> Result<Execution> {
    fetch(client, &LOCK, id)
}

/// Locks the execution of activity `activity_id`; P0002 if there is no such activity.
pub fn lock_of_activity(client: &mut SpiClient<'_>, activity_id: Uuid) -> Result<Execution> {
    let row = run(client, &LOCK_OF_ACTIVITY, &[arg(activity_id)])?
        .next()
        .ok_or_else(|| WorkflowError::not_found(format!("workflow activity {activity_id} does not exist")))?;
    let id: Uuid = row.get(5)?.ok_or_else(|| WorkflowError::internal("execution without id"))?;
    execution_from_row(client, id, &row)
}

/// Reads an execution without locking it (for status queries).
pub fn read(client: &mut SpiClient<'_>, id: Uuid) -> Result<Execution> {
    fetch(client, &READ, id)
}

fn fetch(client: &mut SpiClient<'_>, stmt: &'static Statement, id: Uuid) -> Result<Execution> {
    let rows = run(client, stmt, &[arg(id)])?;
    let row = rows
        .into_iter()
        .next()
        .ok_or_else(|| WorkflowError::not_found(format!("workflow execution {id} does not exist")))?;
    execution_from_row(client, id, &row)
}

fn execution_from_row(
    client: &mut SpiClient<'_>,
    id: Uuid,
    row: &pgrx::spi::SpiHeapTupleData<'_>,
) -> Result<Execution> {
    let status: String = row.get(1)?.unwrap_or_default();
    let workflow_type: String = row.get(2)?.unwrap_or_default();
    let version: Option<i32> = row.get(3)?;
    let stamp: Option<String> = row.get(4)?;
    let definition = match (version, stamp) {
        (Some(v), Some(stamp)) => Some(definitions::load(client, &workflow_type, v, &stamp)?),
        _ => None,
    };
    Ok(Execution { id, status, workflow_type, definition })
}

pub fn required_id(id: Option<Uuid>) -> Result<Uuid> {
    id.ok_or_else(|| WorkflowError::invalid("execution_id must not be NULL; pass the id workflow_start returned"))
}

/// Parses timestamp text with Postgres' own input function, as a 22023 on failure.
pub fn parse_timestamptz(field: &str, text: &str) -> Result<TimestampWithTimeZone> {
    let bad = || {
        WorkflowError::invalid(format!("{field} \"{text}\" is not a timestamp; write e.g. \"2030-01-01T12:00:00Z\""))
    };
    let c = CString::new(text).map_err(|_| bad())?;
    let parsed = PgTryBuilder::new(|| unsafe {
        pgrx::direct_function_call::<TimestampWithTimeZone>(
            pg_sys::timestamptz_in,
            &[Some(pg_sys::Datum::from(c.as_ptr())), pg_sys::Oid::INVALID.into_datum(), (-1i32).into_datum()],
        )
    })
    .catch_others(|_| None)
    .execute();
    parsed.ok_or_else(bad)
}

struct NewExecution<'a> {
    workflow_type: &'a str,
    input: Value,
    idempotency_key: Option<&'a str>,
    opts: StartOptions,
    parent: Option<(Uuid, &'a str)>,
    /// The role that started it (for a child, the parent's).
    owner: pg_sys::Oid,
}

/// The newest version of a type's definition, if it is declared.
fn declared(client: &mut SpiClient<'_>, workflow_type: &str) -> Result<Option<(i32, Rc<Definition>)>> {
    match definitions::current(client, workflow_type)? {
        Some((version, stamp)) => Ok(Some((version, definitions::load(client, workflow_type, version, &stamp)?))),
        None => Ok(None),
    }
}

/// Inserts the execution (or finds the one with the same key) and schedules its first
/// steps. `declared` is the type's newest version and definition; None makes it
/// client-driven.
fn create(client: &mut SpiClient<'_>, new: NewExecution<'_>, declared: Option<(i32, Rc<Definition>)>) -> Result<Uuid> {
    let opts = new.opts;
    let start_at = opts.start_at.as_deref().map(|t| parse_timestamptz("options.start_at", t)).transpose()?;
    let (current, definition) = match declared {
        Some((version, definition)) => (Some(version), Some(definition)),
        None => (None, None),
    };
    let timeout = opts.timeout.or_else(|| definition.as_ref().and_then(|d| d.timeout));
    let id = super::new_id();
    let inserted = run(
        client,
        &INSERT,
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
        ],
    )?;
    let status: Option<String> = match inserted.into_iter().next() {
        Some(row) => row.get(1)?,
        None => {
            // Same (workflow_type, idempotency_key) as an earlier start: that one stands.
            let rows = run(
                client,
                &EXISTING,
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
        let exec = Execution { id, status: "running".into(), workflow_type: new.workflow_type.to_owned(), definition };
        advance::advance_new(client, &exec)?;
    }
    if status.as_deref() == Some("pending") || timeout.is_some() {
        crate::wake::wake_at_commit(); // a delayed start or a deadline to keep
    }
    Ok(id)
}

/// `workflow_start`.
pub fn start(
    client: &mut SpiClient<'_>,
    caller: &Caller,
    workflow_type: Option<&str>,
    input: Option<Value>,
    idempotency_key: Option<&str>,
    options: Option<Value>,
) -> Result<Uuid> {
    let workflow_type = definitions::check_type_name("workflow_type", workflow_type)?;
    let input = input.unwrap_or_else(|| json!({}));
    limits::check_payload("input", &input)?;
    let mut opts = match options {
        None => StartOptions::default(),
        Some(v) => parse_start_options(&v).map_err(WorkflowError::invalid)?,
    };
    opts.tenant_id = tenancy::tenant_for_start(caller, opts.tenant_id.take())?;
    if let Some(text) = &opts.start_at {
        parse_timestamptz("options.start_at", text)?; // bad options first, whatever the type
    }
    let definition = declared(client, &workflow_type)?;
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
    let new =
        NewExecution { workflow_type: &workflow_type, input, idempotency_key, opts, parent: None, owner: caller.role };
    create(client, new, definition)
}

/// What starting the child of a `workflow` step did.
pub enum Child {
    /// A new child runs, or the one a failed or cancelled run left was resumed.
    Running,
    /// The type is not defined: the step fails with this error.
    Undefined(Value),
}

/// Starts the child execution of a `workflow` step (it inherits queue, priority and
/// tenant), or, when a run of the parent before a `workflow_retry` left a failed or
/// cancelled one, resumes it: a child's completed steps are kept like the parent's own.
/// A child that completed is met again only when compensation undid its step: that
/// step runs again, with a new child.
pub fn start_child(
    client: &mut SpiClient<'_>,
    workflow_type: &str,
    input: Value,
    parent: Uuid,
    step_key: &str,
) -> Result<Child> {
    if let Some(row) = run(client, &CHILD_OF_STEP, &[arg(parent), arg(step_key)])?.next() {
        let child: Uuid = row.get(1)?.ok_or_else(|| WorkflowError::internal("child without id"))?;
        let status: String = row.get(2)?.unwrap_or_default();
        match status.as_str() {
            "failed" | "cancelled" => {
                let exec = lock(client, child)?;
                resume_locked(client, exec)?;
                return Ok(Child::Running);
            }
            "pending" | "running" => return Ok(Child::Running),
            _ => {}
        }
    }
    let Some(definition) = declared(client, workflow_type)? else {
        return Ok(Child::Undefined(json!({
            "type": "UndefinedWorkflow",
            "message": format!(
                "step \"{step_key}\" starts workflow \"{workflow_type}\", which is not defined; \
                 define it with workflow_define, then workflow_retry this execution"
            ),
        })));
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
    let new =
        NewExecution { workflow_type, input, idempotency_key: None, opts, parent: Some((parent, step_key)), owner };
    create(client, new, Some(definition))?;
    Ok(Child::Running)
}

/// Starts a `pending` execution whose time has come; false if it was not pending.
pub fn start_pending(client: &mut SpiClient<'_>, id: Uuid) -> Result<bool> {
    let exec = lock(client, id)?;
    if exec.status != "pending" {
        return Ok(false);
    }
    run(client, &START_PENDING, &[arg(id)])?;
    let exec = Execution { status: "running".into(), ..exec };
    advance::advance(client, &exec)?;
    Ok(true)
}

/// Ends a locked, unfinished execution as `failed` or `cancelled`: cancels its open
/// steps and its children, starts compensation, and tells its parent.
pub fn close(client: &mut SpiClient<'_>, exec: &Execution, status: &str, error: Value) -> Result<()> {
    run(client, &CLOSE, &[arg(exec.id), arg(status), arg(JsonB(error)), arg(None::<JsonB>)])?;
    run(client, &CANCEL_OPEN_STEPS, &[arg(exec.id)])?;
    crate::wake::execution_finished(&exec.id);
    let children: Vec<Uuid> =
        run(client, &OPEN_CHILDREN, &[arg(exec.id)])?.filter_map(|r| r.get::<Uuid>(1).ok().flatten()).collect();
    for child in children {
        let child = lock(client, child)?;
        let reason = json!({"type": "Cancelled", "message": format!("parent execution {} was {status}", exec.id)});
        close(client, &child, "cancelled", reason)?;
    }
    let closed = Execution {
        id: exec.id,
        status: status.to_owned(),
        workflow_type: exec.workflow_type.clone(),
        definition: exec.definition.clone(),
    };
    compensation::begin(client, &closed)?;
    notify_parent(client, exec.id)
}

/// Fails a locked execution because `step_key` failed for good.
pub fn fail(client: &mut SpiClient<'_>, exec: &Execution, step_key: &str, error: &Value) -> Result<()> {
    close(client, exec, "failed", json!({"step": step_key, "error": error}))
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
    let parent = lock(client, parent_id)?;
    if status == "completed" {
        activity::mark_completed(client, step_id, output)?;
        advance::advance(client, &parent)
    } else {
        let error =
            json!({"type": "ChildWorkflowFailed", "child": child.to_string(), "status": status, "error": error});
        activity::fail_for_good(client, &parent, step_id, &step_key, error)
    }
}

/// `workflow_cancel`: true if this call cancelled it, false if it had already finished.
pub fn cancel(client: &mut SpiClient<'_>, id: Option<Uuid>, reason: Option<&str>) -> Result<bool> {
    let exec = lock(client, required_id(id)?)?;
    if !matches!(exec.status.as_str(), "pending" | "running") {
        return Ok(false);
    }
    close(
        client,
        &exec,
        "cancelled",
        json!({"type": "Cancelled", "message": reason.unwrap_or("cancelled by request")}),
    )?;
    Ok(true)
}

/// `workflow_retry`: resumes a failed or cancelled execution, keeping every completed
/// step and scheduling again only what did not complete. False if there was nothing to resume.
pub fn resume(client: &mut SpiClient<'_>, id: Option<Uuid>) -> Result<bool> {
    let exec = lock(client, required_id(id)?)?;
    resume_locked(client, exec)
}

/// `resume` of a locked execution. Its failed or cancelled children resume when their
/// steps are scheduled again (`start_child`). Refused while compensation runs: the
/// saga must end before the steps it undoes may run again. Steps whose compensation
/// completed run again, and so does every step that depends on them (their inputs are
/// gone); everything else that completed is kept.
fn resume_locked(client: &mut SpiClient<'_>, exec: Execution) -> Result<bool> {
    match exec.status.as_str() {
        "failed" | "cancelled" => {}
        "completed" => {
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
    run(client, &FORGET_UNFINISHED, &[arg(exec.id), arg(again)])?;
    run(client, &REOPEN, &[arg(exec.id)])?;
    let exec = Execution { status: "running".into(), ..exec };
    advance::advance(client, &exec)?;
    Ok(true)
}

/// How a client ends its execution.
pub enum ClientOutcome {
    Complete(Value),
    Fail(Value),
}

/// `workflow_complete` / `workflow_fail` for a client-driven execution: true if this
/// call ended it, false if it had already ended the same way.
pub fn finish_client_driven(client: &mut SpiClient<'_>, id: Option<Uuid>, outcome: ClientOutcome) -> Result<bool> {
    let exec = lock(client, required_id(id)?)?;
    if exec.definition.is_some() {
        return Err(WorkflowError::conflict(format!(
            "execution {} is declared (workflow \"{}\"); it completes by itself when its steps do",
            exec.id, exec.workflow_type
        )));
    }
    let target = match outcome {
        ClientOutcome::Complete(_) => "completed",
        ClientOutcome::Fail(_) => "failed",
    };
    match exec.status.as_str() {
        "running" | "pending" => {}
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
            run(client, &CLOSE, &[arg(exec.id), arg("completed"), arg(None::<JsonB>), arg(JsonB(output))])?;
            run(client, &CANCEL_OPEN_STEPS, &[arg(exec.id)])?;
            crate::wake::execution_finished(&exec.id);
            notify_parent(client, exec.id)?;
        }
        ClientOutcome::Fail(error) => {
            limits::check_payload("error", &error)?;
            close(client, &exec, "failed", activity::normalize_error(error))?;
        }
    }
    Ok(true)
}

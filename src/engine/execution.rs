//! Execution-level transitions: start, lock, finish, fail.

use pgrx::pg_sys::BuiltinOid::*;
use super::plan::{run, Statement};
use super::{advance, arg, definitions};
use crate::error::{Result, WorkflowError};
use crate::model::definition::Definition;
use crate::model::options::{parse_start_options, StartOptions};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;
use pgrx::prelude::PgTryBuilder;
use pgrx::spi::SpiClient;
use pgrx::{IntoDatum, JsonB, Uuid};
use serde_json::{json, Value};
use std::ffi::CString;
use std::rc::Rc;

/// An execution row locked FOR UPDATE by this transaction.
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
static READ: Statement = Statement { sql: execution_query!(""), args: &[UUIDOID] };

// A start time in the future makes the execution `pending`; the dispatcher starts it.
static INSERT: Statement = Statement {
    sql: "WITH t AS (SELECT coalesce($9, now() + $10::float8 * interval '1 microsecond') AS start_at) \
          INSERT INTO @extschema@.workflow_execution \
            (id, workflow_type, definition_version, idempotency_key, status, input, queue, priority, labels, \
             tenant_id, started_at, deadline) \
          SELECT $1, $2, $3, $4, CASE WHEN t.start_at > now() THEN 'pending' ELSE 'running' END, $5, $6, $7, $8, \
                 $11, greatest(t.start_at, now()), greatest(t.start_at, now()) + $12::float8 * interval '1 microsecond' \
          FROM t \
          ON CONFLICT (workflow_type, idempotency_key) DO NOTHING \
          RETURNING status",
    args: &[
        UUIDOID, TEXTOID, INT4OID, TEXTOID, JSONBOID, TEXTOID, INT4OID, JSONBOID, TIMESTAMPTZOID, INT8OID, TEXTOID,
        INT8OID,
    ],
};
static EXISTING: Statement = Statement {
    sql: "SELECT id FROM @extschema@.workflow_execution WHERE workflow_type = $1 AND idempotency_key = $2",
    args: &[TEXTOID, TEXTOID],
};
static MARK_FAILED: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_execution SET status = 'failed', error = $2, finished_at = now() WHERE id = $1",
    args: &[UUIDOID, JSONBOID],
};
static CANCEL_OPEN_STEPS: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_activity \
          SET status = 'cancelled', cancel_requested = true, finished_at = now(), lease_expires_at = NULL \
          WHERE execution_id = $1 AND status IN ('scheduled', 'running', 'waiting')",
    args: &[UUIDOID],
};
static START_PENDING: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_execution SET status = 'running', started_at = now() \
          WHERE id = $1 AND status = 'pending'",
    args: &[UUIDOID],
};

/// Locks an execution; P0002 if there is none.
pub fn lock(client: &mut SpiClient<'_>, id: Uuid) -> Result<Execution> {
    fetch(client, &LOCK, id)
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

/// Parses timestamp text with Postgres' own input function, as a 22023 on failure.
fn parse_timestamptz(field: &str, text: &str) -> Result<TimestampWithTimeZone> {
    let bad = || WorkflowError::invalid(format!("{field} \"{text}\" is not a timestamp; write e.g. \"2030-01-01T12:00:00Z\""));
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

/// `workflow_start`: creates the execution (or returns the one with the same key) and
/// schedules its first steps.
pub fn start(
    client: &mut SpiClient<'_>,
    workflow_type: Option<&str>,
    input: Option<Value>,
    idempotency_key: Option<&str>,
    options: Option<Value>,
) -> Result<Uuid> {
    let workflow_type = definitions::check_type_name("workflow_type", workflow_type)?;
    let input = input.unwrap_or_else(|| json!({}));
    let opts = match options {
        None => StartOptions::default(),
        Some(v) => parse_start_options(&v).map_err(WorkflowError::invalid)?,
    };
    let start_at = opts.start_at.as_deref().map(|t| parse_timestamptz("options.start_at", t)).transpose()?;
    let current = definitions::current(client, &workflow_type)?;
    let timeout = match (&current, opts.timeout) {
        (_, Some(t)) => Some(t),
        (Some((version, stamp)), None) => definitions::load(client, &workflow_type, *version, stamp)?.timeout,
        (None, None) => None,
    };
    let id = super::new_id();
    let inserted = run(
        client,
        &INSERT,
        &[
            arg(id),
            arg(workflow_type.as_str()),
            arg(current.as_ref().map(|c| c.0)),
            arg(idempotency_key),
            arg(JsonB(input)),
            arg(opts.queue.as_deref().unwrap_or("default")),
            arg(opts.priority.unwrap_or(0)),
            arg(JsonB(opts.labels.unwrap_or_else(|| json!({})))),
            arg(start_at),
            arg(opts.delay.unwrap_or(0)),
            arg(opts.tenant_id.as_deref()),
            arg(timeout),
        ],
    )?;
    let status: Option<String> = match inserted.into_iter().next() {
        Some(row) => row.get(1)?,
        None => {
            // Same (workflow_type, idempotency_key) as an earlier start: that one wins.
            let rows = run(client, &EXISTING, &[arg(workflow_type.as_str()), arg(idempotency_key)])?;
            let existing = rows.into_iter().next().and_then(|r| r.get::<Uuid>(1).ok().flatten());
            return existing.ok_or_else(|| {
                WorkflowError::conflict(format!(
                    "workflow \"{workflow_type}\" with idempotency key \"{}\" exists but is not visible to this transaction",
                    idempotency_key.unwrap_or_default()
                ))
                .with_hint("retry in a new transaction (READ COMMITTED)")
            });
        }
    };
    if status.as_deref() == Some("running") {
        let exec = lock(client, id)?;
        advance::advance(client, &exec)?;
    }
    Ok(id)
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

/// Fails a locked execution because `step_key` failed for good, and cancels its open steps.
pub fn fail(client: &mut SpiClient<'_>, exec: &Execution, step_key: &str, error: &Value) -> Result<()> {
    let error = json!({"step": step_key, "error": error});
    run(client, &MARK_FAILED, &[arg(exec.id), arg(JsonB(error))])?;
    run(client, &CANCEL_OPEN_STEPS, &[arg(exec.id)])?;
    Ok(())
}

//! In-database `sql` steps (README: SQL API, Guarantees and security). The step's
//! statement runs with the rights of the role that defined the workflow, in a security-restricted context (no
//! SET ROLE, no temp objects), inside a subtransaction; its effects and the step's
//! completion commit together, so it runs exactly once. An error rolls the
//! subtransaction back and counts as a failed attempt, retried by the step's policy.

use super::plan::{run, Statement};
use super::rows::{self, ActivityStatus, ExecutionStatus};
use super::subtransaction::in_subtransaction;
use super::{activity, arg};
use crate::error::{Result, WorkflowError};
use crate::model::definition::StepKind;
use pgrx::pg_sys;
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;
use pgrx::{JsonB, Spi, Uuid};
use serde_json::{json, Value};
use std::ffi::CStr;

static DUE: Statement = Statement {
    sql: "SELECT id FROM @extschema@.workflow_activity \
          WHERE kind = 'sql' AND status = 'scheduled' AND scheduled_at <= now() \
          ORDER BY priority DESC, scheduled_at LIMIT $1",
    args: &[INT4OID],
};
static STEP: Statement = Statement {
    sql: "SELECT a.execution_id, a.step_key, a.input, a.status, a.scheduled_at <= now(), d.owner::oid \
          FROM @extschema@.workflow_activity a \
          JOIN @extschema@.workflow_execution e ON e.id = a.execution_id \
          JOIN @extschema@.workflow_definition d ON d.name = e.workflow_type AND d.version = e.definition_version \
          WHERE a.id = $1",
    args: &[UUIDOID],
};
static COUNT_ATTEMPT: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_activity SET attempt = attempt + 1, started_at = now() WHERE id = $1",
    args: &[UUIDOID],
};

/// Ids of due sql steps, highest priority first.
pub fn due(client: &mut SpiClient<'_>, limit: i32) -> Result<Vec<Uuid>> {
    Ok(run(client, &DUE, &[arg(limit)])?.filter_map(|r| r.get::<Uuid>(1).ok().flatten()).collect())
}

/// The step's result as JSON: the first column of the first row (json/jsonb as is,
/// numbers and booleans as such, anything else as text), or the count of affected rows.
unsafe fn result_json() -> Value {
    let table = pg_sys::SPI_tuptable;
    if table.is_null() {
        let affected = pg_sys::SPI_processed;
        return json!({"rows_affected": affected});
    }
    if (*table).numvals == 0 {
        return Value::Null;
    }
    let tupdesc = (*table).tupdesc;
    let tuple = *(*table).vals;
    let text = pg_sys::SPI_getvalue(tuple, tupdesc, 1);
    if text.is_null() {
        return Value::Null;
    }
    let text = CStr::from_ptr(text).to_string_lossy().into_owned();
    let oid = pg_sys::SPI_gettypeid(tupdesc, 1);
    let parsed = match oid {
        o if o == pg_sys::JSONBOID || o == pg_sys::JSONOID => serde_json::from_str(&text).ok(),
        o if o == pg_sys::BOOLOID => Some(Value::Bool(text == "t")),
        o if [
            pg_sys::INT2OID,
            pg_sys::INT4OID,
            pg_sys::INT8OID,
            pg_sys::FLOAT4OID,
            pg_sys::FLOAT8OID,
            pg_sys::NUMERICOID,
        ]
        .contains(&o) =>
        {
            serde_json::from_str::<serde_json::Number>(&text).ok().map(Value::Number)
        }
        _ => None,
    };
    parsed.unwrap_or(Value::String(text))
}

/// The step's `timeout`, as a statement timeout. Postgres arms `statement_timeout` only
/// for top-level statements, never for one run through SPI in a background worker, so
/// the timer is armed here, and disarmed on drop (also when an ERROR unwinds). Inside a
/// caller's statement (`workflow_dispatch()`) that statement's own timer is left alone.
struct StatementTimer(bool);

// utils/timeout.h, which pgrx does not bind. STATEMENT_TIMEOUT is the fourth TimeoutId
// in every version from 13 to 18.
const STATEMENT_TIMEOUT: u32 = 3;
extern "C" {
    fn enable_timeout_after(id: u32, delay_ms: i32);
    fn disable_timeout(id: u32, keep_indicator: bool);
    fn get_timeout_active(id: u32) -> bool;
}

impl StatementTimer {
    fn arm(ms: i64) -> StatementTimer {
        unsafe {
            if get_timeout_active(STATEMENT_TIMEOUT) {
                return StatementTimer(false);
            }
            enable_timeout_after(STATEMENT_TIMEOUT, ms.clamp(1, i32::MAX as i64) as i32);
        }
        StatementTimer(true)
    }
}

impl Drop for StatementTimer {
    fn drop(&mut self) {
        if self.0 {
            unsafe { disable_timeout(STATEMENT_TIMEOUT, false) };
        }
    }
}

/// Runs the step's statement as `owner`; the caller is inside a subtransaction.
fn execute_as(
    client: &mut SpiClient<'_>,
    owner: pg_sys::Oid,
    sql: &str,
    input: Value,
    timeout_ms: Option<i64>,
) -> Result<Value> {
    let _timer = timeout_ms.map(StatementTimer::arm);
    let (mut saved_user, mut saved_context) = (pg_sys::Oid::INVALID, 0i32);
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(
            owner,
            saved_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32 | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
    }
    // An ERROR here unwinds past the restore; the subtransaction's abort restores the
    // user and security context itself.
    client.update(sql, None, &[JsonB(input).into()])?;
    let output = unsafe { result_json() };
    unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_context) };
    Ok(output)
}

/// Runs one due sql step; false if it was no longer due (someone else took it).
pub fn run_one(client: &mut SpiClient<'_>, id: Uuid) -> Result<bool> {
    let row = run(client, &STEP, &[arg(id)])?.next();
    let Some(row) = row else { return Ok(false) };
    let exec_id: Uuid = row.get(1)?.ok_or_else(|| WorkflowError::internal("sql step without execution"))?;
    let step_key: String = row.get(2)?.unwrap_or_default();
    let input = row.get::<JsonB>(3)?.map(|j| j.0).unwrap_or(Value::Null);
    let owner: pg_sys::Oid = row.get(6)?.unwrap_or(pg_sys::Oid::INVALID);
    // The engine's lock order: execution, then the activity (re-checked under lock).
    let exec = rows::lock_execution(client, exec_id, None)?;
    let Some((status, due)) = rows::lock_activity_status(client, id)? else { return Ok(false) };
    if status != ActivityStatus::Scheduled || !due || exec.status != ExecutionStatus::Running {
        return Ok(false);
    }
    let def =
        exec.definition.clone().ok_or_else(|| WorkflowError::internal("sql step of a client-driven execution"))?;
    let step = def.step(&step_key).ok_or_else(|| WorkflowError::internal(format!("no step {step_key}")))?;
    let StepKind::Sql { query } = &step.kind else { return Ok(false) };
    let (query, timeout_ms) = (query.clone(), step.timeout.map(|us| us / 1000));
    run(client, &COUNT_ATTEMPT, &[arg(id)])?;
    let outcome = in_subtransaction(move || {
        super::privileges::with_user_gucs(|| Spi::connect_mut(|c| execute_as(c, owner, &query, input, timeout_ms)))
    });
    match outcome {
        Ok(output) => {
            rows::mark_completed(client, id, output)?;
            super::advance::step_finished(client, &exec, &step_key, super::advance::Finished::Completed)?;
        }
        Err(error) => activity::fail_locked_sql(client, &exec, id, error)?,
    }
    Ok(true)
}

//! Finding executions (README: Observability): `workflow_list` with a filter and keyset
//! pagination, newest first, and `workflow_waiting`, the executions waiting for a signal
//! (an approval inbox). The list's statement is built for the filter it is given, so that
//! each shape gets the plan of its own index: (workflow_type, id), the labels' GIN index,
//! the open executions' index, or the primary key.

use super::arg;
use super::plan::{run, Statement};
use super::tenancy::Caller;
use crate::error::{Result, WorkflowError};
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;
use pgrx::{JsonB, Uuid};
use serde_json::Value;

pub const MAX_PAGE: i32 = 1_000;
const FIELDS: &[&str] =
    &["workflow_type", "status", "labels", "tenant_id", "created_after", "created_before", "waiting_for", "error_type"];
const STATUSES: &[&str] = &["pending", "running", "completed", "failed", "cancelled"];

/// One execution in a list.
pub struct Listed {
    pub id: Uuid,
    pub workflow_type: String,
    pub status: String,
    pub tenant_id: Option<String>,
    pub labels: JsonB,
    pub created_at: TimestampWithTimeZone,
    pub finished_at: Option<TimestampWithTimeZone>,
    pub error: Option<JsonB>,
}

fn text_field<'a>(filter: &'a serde_json::Map<String, Value>, key: &str) -> Result<Option<&'a str>> {
    match filter.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
        Some(other) => Err(WorkflowError::invalid(format!("filter.{key} must be a non-empty string, got {other}"))),
    }
}

/// `workflow_list`: up to `page_size` executions matching `filter`, newest first, older
/// than `after` (the last id of the previous page).
pub fn list(
    client: &mut SpiClient<'_>,
    caller: &Caller,
    filter: Value,
    page_size: i32,
    after: Option<Uuid>,
) -> Result<Vec<Listed>> {
    let filter = match filter {
        Value::Object(o) => o,
        other => return Err(WorkflowError::invalid(format!("filter must be a JSON object, got {other}"))),
    };
    if let Some(key) = filter.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(WorkflowError::invalid(format!(
            "filter has unknown field \"{key}\"; known fields are {}",
            FIELDS.join(", ")
        )));
    }
    if !(1..=MAX_PAGE).contains(&page_size) {
        return Err(WorkflowError::invalid(format!("page_size must be from 1 to {MAX_PAGE}, got {page_size}")));
    }
    let mut conditions: Vec<String> = Vec::new();
    let mut args: Vec<DatumWithOid<'static>> = Vec::new();
    let mut bind = |condition: &str, value: DatumWithOid<'static>| {
        args.push(value);
        conditions.push(condition.replace('$', &format!("${}", args.len())));
    };
    if let Some(after) = after {
        bind("e.id < $", arg(after));
    }
    if let Some(t) = text_field(&filter, "workflow_type")? {
        bind("e.workflow_type = $", arg(t.to_owned()));
    }
    match filter.get("status") {
        None | Some(Value::Null) => {}
        Some(v) => {
            let list: Vec<String> = match v {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a.iter().map(|x| x.as_str().unwrap_or("").to_owned()).collect(),
                other => {
                    return Err(WorkflowError::invalid(format!(
                        "filter.status must be a status or a list, got {other}"
                    )))
                }
            };
            if let Some(bad) = list.iter().find(|s| !STATUSES.contains(&s.as_str())) {
                return Err(WorkflowError::invalid(format!(
                    "filter.status \"{bad}\" is not a status; statuses are {}",
                    STATUSES.join(", ")
                )));
            }
            bind("e.status = ANY($::text[])", arg(list));
        }
    }
    match filter.get("labels") {
        None | Some(Value::Null) => {}
        // Every execution contains {}; any other filter needs labels, and saying so lets
        // the planner use the labels' index, which holds labelled executions only.
        Some(Value::Object(l)) if l.is_empty() => {}
        Some(l @ Value::Object(_)) => bind("e.labels @> $ AND e.labels <> '{}'::jsonb", arg(JsonB(l.clone()))),
        Some(other) => return Err(WorkflowError::invalid(format!("filter.labels must be a JSON object, got {other}"))),
    }
    if let Some(t) = text_field(&filter, "tenant_id")? {
        bind("e.tenant_id = $", arg(t.to_owned()));
    }
    for (key, op) in [("created_after", ">="), ("created_before", "<")] {
        if let Some(t) = text_field(&filter, key)? {
            let at = super::rows::parse_timestamptz(&format!("filter.{key}"), t)?;
            bind(&format!("e.id {op} $"), arg(super::stats::first_id_at(at)));
        }
    }
    if let Some(name) = text_field(&filter, "waiting_for")? {
        bind(
            "EXISTS (SELECT FROM @extschema@.workflow_activity a WHERE a.execution_id = e.id \
             AND a.status = 'waiting' AND a.kind = 'signal' AND a.activity_type = $)",
            arg(name.to_owned()),
        );
    }
    if let Some(t) = text_field(&filter, "error_type")? {
        bind("coalesce(e.error->'error'->>'type', e.error->>'type') = $", arg(t.to_owned()));
    }
    if let Some(own) = &caller.tenant {
        bind("e.tenant_id = $", arg(own.clone()));
    }
    args.push(arg(page_size));
    let schema = super::extension::schema()?;
    let sql = format!(
        "SELECT e.id, e.workflow_type, e.status, e.tenant_id, e.labels, e.created_at, e.finished_at, e.error \
         FROM {schema}.workflow_execution e {} ORDER BY e.id DESC LIMIT ${}",
        if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) },
        args.len()
    )
    .replace("@extschema@", &schema);
    let mut out = Vec::new();
    for row in client.select(&sql, None, &args)? {
        let missing = || WorkflowError::internal("workflow_list returned a row with a NULL key column");
        out.push(Listed {
            id: row.get(1)?.ok_or_else(missing)?,
            workflow_type: row.get(2)?.unwrap_or_default(),
            status: row.get(3)?.unwrap_or_default(),
            tenant_id: row.get(4)?,
            labels: row.get(5)?.unwrap_or(JsonB(Value::Null)),
            created_at: row.get(6)?.ok_or_else(missing)?,
            finished_at: row.get(7)?,
            error: row.get(8)?,
        });
    }
    Ok(out)
}

// Served by workflow_activity_signal_wait (activity_type, created_at) WHERE the step waits;
// each execution found by its id (LATERAL ... OFFSET 0: the planner may not flatten it
// into a join that starts from the executions).
static WAITING: Statement = Statement {
    sql: "SELECT e.id, e.workflow_type, a.step_key, a.created_at, e.input, e.labels, e.tenant_id \
          FROM @extschema@.workflow_activity a, \
               LATERAL (SELECT x.id, x.workflow_type, x.input, x.labels, x.tenant_id \
                        FROM @extschema@.workflow_execution x WHERE x.id = a.execution_id OFFSET 0) e \
          WHERE a.status = 'waiting' AND a.kind = 'signal' AND a.activity_type = $1 \
            AND ($2::text IS NULL OR e.tenant_id = $2) \
          ORDER BY a.created_at LIMIT $3",
    args: &[TEXTOID, TEXTOID, INT4OID],
};

pub struct Waiting {
    pub execution_id: Uuid,
    pub workflow_type: String,
    pub step_key: String,
    pub waiting_since: TimestampWithTimeZone,
    pub input: JsonB,
    pub labels: JsonB,
    pub tenant_id: Option<String>,
}

/// `workflow_waiting`: executions waiting for signal `name`, longest waiting first.
pub fn waiting(client: &mut SpiClient<'_>, caller: &Caller, name: &str, limit: i32) -> Result<Vec<Waiting>> {
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(WorkflowError::invalid(format!("max_count must be from 1 to {MAX_PAGE}, got {limit}")));
    }
    let mut out = Vec::new();
    for row in run(client, &WAITING, &[arg(name), arg(caller.tenant.as_deref()), arg(limit)])? {
        let missing = || WorkflowError::internal("workflow_waiting returned a row with a NULL key column");
        out.push(Waiting {
            execution_id: row.get(1)?.ok_or_else(missing)?,
            workflow_type: row.get(2)?.unwrap_or_default(),
            step_key: row.get(3)?.unwrap_or_default(),
            waiting_since: row.get(4)?.ok_or_else(missing)?,
            input: row.get(5)?.unwrap_or(JsonB(Value::Null)),
            labels: row.get(6)?.unwrap_or(JsonB(Value::Null)),
            tenant_id: row.get(7)?,
        });
    }
    Ok(out)
}

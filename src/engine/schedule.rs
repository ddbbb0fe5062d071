//! Scheduling a step of any kind: its activity row, and what the kind does at once
//! (consume a buffered signal, fan out a map). What needs a transition (failing the step,
//! starting its child) is returned to `advance::schedule_step`, which does it.

use super::plan::{run, Statement};
use super::rows::{self, ActivityStatus, Execution};
use super::{admission, arg};
use crate::error::Result;
use crate::model::concurrency::{ConcurrencyLimit, KeyExpr};
use crate::model::definition::{Sleep, Step, StepKind};
use crate::model::interval::Micros;
use crate::wake;
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;
use pgrx::JsonB;
use serde_json::{json, Value};
use std::collections::HashMap;

/// What scheduling did.
#[derive(Debug, PartialEq)]
pub enum Scheduled {
    /// The row exists and waits for a worker, a timer, a signal or a child.
    Open,
    /// The step is already complete (a buffered signal, a map over `[]`).
    CompletedAtOnce,
    /// The step failed for good, and with it the execution (returned by
    /// `advance::schedule_step` once it has failed the step).
    Failed,
    /// The step cannot run: fail it for good with this error (its row exists).
    FailAtOnce { id: pgrx::Uuid, error: Value },
    /// A `workflow` step's row exists: its child must be started (or resumed).
    StartChild {
        id: pgrx::Uuid,
        workflow_type: String,
        input: Value,
        client_driven: bool,
        idempotency_key: Option<String>,
    },
    /// A row for this step key existed already (a replay); nothing changed.
    Existed,
}

// The input is explicit ($8) or composed: {"input": <workflow input>, "<dep>": <output>, ...}.
// $13 is the due time as an offset from now in microseconds: NULL = now, < 0 = never.
static INSERT: Statement = Statement {
    sql: "INSERT INTO @extschema@.workflow_activity \
            (id, execution_id, step_key, kind, activity_type, queue, status, input, attempt, max_attempts, retry, \
             priority, scheduled_at, start_to_close, heartbeat_timeout, expires_at) \
          SELECT $2, e.id, $3, $4, $5, coalesce($6, e.queue), $7, \
                 coalesce($8, jsonb_build_object('input', e.input) || coalesce( \
                   (SELECT jsonb_object_agg(a.step_key, a.output) FROM @extschema@.workflow_activity a \
                     WHERE a.execution_id = e.id AND a.step_key = ANY($9)), '{}'::jsonb)), \
                 $17, $10, $11, coalesce($12, e.priority), \
                 CASE WHEN $13 IS NULL THEN now() WHEN $13 < 0 THEN 'infinity' \
                      ELSE now() + $13::float8 * interval '1 microsecond' END, \
                 $14::float8 * interval '1 microsecond', $15::float8 * interval '1 microsecond', \
                 now() + $16::float8 * interval '1 microsecond' \
          FROM @extschema@.workflow_execution e WHERE e.id = $1 \
          ON CONFLICT (execution_id, step_key) DO NOTHING \
          RETURNING input, queue",
    args: &[
        UUIDOID,
        UUIDOID,
        TEXTOID,
        TEXTOID,
        TEXTOID,
        TEXTOID,
        TEXTOID,
        JSONBOID,
        TEXTARRAYOID,
        INT4OID,
        JSONBOID,
        INT4OID,
        INT8OID,
        INT8OID,
        INT8OID,
        INT8OID,
        INT4OID,
    ],
};
static TENANT: Statement =
    Statement { sql: "SELECT tenant_id FROM @extschema@.workflow_execution WHERE id = $1", args: &[UUIDOID] };
static SET_DUE: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_activity SET scheduled_at = $2 WHERE id = $1",
    args: &[UUIDOID, TIMESTAMPTZOID],
};
// Inserts items of the map `$2` of execution `$1` (its source output is `$3`) from the
// rows `item(value, ord)` that `$items` lists (1-based ordinals): each one's input is the
// map's input with `item` and `index` instead of the source array.
macro_rules! insert_map_items {
    ($items:literal) => {
        concat!(
            "INSERT INTO @extschema@.workflow_activity \
               (id, execution_id, step_key, kind, activity_type, queue, status, input, max_attempts, retry, priority, \
                start_to_close, heartbeat_timeout, expires_at) \
             SELECT @extschema@.workflow_uuidv7(), agg.execution_id, agg.step_key || '[' || (item.ord - 1) || ']', \
                    agg.kind, agg.activity_type, agg.queue, 'scheduled', \
                    (agg.input - $3) || jsonb_build_object('item', item.value, 'index', item.ord - 1), \
                    agg.max_attempts, agg.retry, agg.priority, agg.start_to_close, agg.heartbeat_timeout, agg.expires_at \
             FROM @extschema@.workflow_activity agg CROSS JOIN LATERAL ",
            $items,
            " WHERE agg.execution_id = $1 AND agg.step_key = $2 \
             ON CONFLICT (execution_id, step_key) DO NOTHING \
             RETURNING queue, id, input"
        )
    };
}
// Items ($4, $5].
static MAP_ITEMS: Statement = Statement {
    sql: insert_map_items!(
        "(SELECT value, ord FROM jsonb_array_elements(agg.input -> $3) WITH ORDINALITY AS e(value, ord) \
          WHERE ord > $4 AND ord <= $5) item"
    ),
    args: &[UUIDOID, TEXTOID, TEXTOID, INT8OID, INT8OID],
};
// Up to $4 items that are missing below the highest one, lowest first: after a retry
// removed the ones that did not complete.
static MAP_FILL: Statement = Statement {
    sql: insert_map_items!(
        "(SELECT value, ord FROM jsonb_array_elements(agg.input -> $3) WITH ORDINALITY AS e(value, ord) \
          WHERE NOT EXISTS (SELECT FROM @extschema@.workflow_activity x \
                            WHERE x.execution_id = $1 AND x.step_key = $2 || '[' || (e.ord - 1) || ']') \
          ORDER BY ord LIMIT $4) item"
    ),
    args: &[UUIDOID, TEXTOID, TEXTOID, INT8OID],
};
// How many items of a map exist, and how many of them completed.
static MAP_COUNTS: Statement = Statement {
    sql: "SELECT count(*), count(*) FILTER (WHERE status = 'completed') FROM @extschema@.workflow_activity \
          WHERE execution_id = $1 AND starts_with(step_key, $2 || '[')",
    args: &[UUIDOID, TEXTOID],
};
static MAP_SIZE: Statement = Statement {
    sql: "SELECT jsonb_array_length(input -> $3) FROM @extschema@.workflow_activity \
          WHERE execution_id = $1 AND step_key = $2",
    args: &[UUIDOID, TEXTOID, TEXTOID],
};
// Item keys are `<step>[<index>]`; the output keeps input order.
static MAP_COMPLETE: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_activity agg SET status = 'completed', finished_at = now(), \
            output = (SELECT coalesce(jsonb_agg(i.output ORDER BY substring(i.step_key FROM '\\[(\\d+)\\]$')::int), '[]') \
                      FROM @extschema@.workflow_activity i \
                      WHERE i.execution_id = $1 AND starts_with(i.step_key, $2 || '[')) \
          WHERE agg.execution_id = $1 AND agg.step_key = $2",
    args: &[UUIDOID, TEXTOID],
};

fn offset(value: Option<Micros>) -> Option<i64> {
    value
}

/// Inserts the step's row under `key`; returns its id and input, or None if it existed.
#[allow(clippy::too_many_arguments)]
fn insert(
    client: &mut SpiClient<'_>,
    exec: &Execution,
    step: &Step,
    key: &str,
    status: &str,
    activity_type: Option<&str>,
    explicit_input: Option<Value>,
    due_in: Option<Micros>,
    attempt: i32,
) -> Result<Option<(pgrx::Uuid, Value)>> {
    let id = super::new_id();
    // A wait fails at its timeout unless the step asks for retries explicitly.
    let waits = matches!(step.kind, StepKind::Signal { .. } | StepKind::Sleep(_) | StepKind::Workflow { .. });
    let max_attempts =
        if waits && step.retry_json.as_object().is_none_or(|o| o.is_empty()) { 1 } else { step.retry.max_attempts };
    let rows = run(
        client,
        &INSERT,
        &[
            arg(exec.id),
            arg(id),
            arg(key),
            arg(step.kind.name()),
            arg(activity_type),
            arg(step.queue.as_deref()),
            arg(status),
            arg(explicit_input.map(JsonB)),
            arg(step.depends_on.clone()),
            arg(max_attempts),
            arg(JsonB(step.retry_json.clone())),
            arg(step.priority),
            arg(due_in),
            arg(offset(step.timeout)),
            arg(offset(step.heartbeat_timeout)),
            arg(offset(step.schedule_to_close)),
            arg(attempt),
        ],
    )?;
    let Some(row) = rows.into_iter().next() else { return Ok(None) };
    if matches!(step.kind, StepKind::Task { .. }) && status == "scheduled" {
        wake::queue_ready(&row.get::<String>(2)?.unwrap_or_default(), 0);
    } else {
        wake::wake_at_commit(); // a timer, an sql step or a child: the dispatcher re-plans
    }
    Ok(Some((id, row.get::<JsonB>(1)?.map(|j| j.0).unwrap_or(Value::Null))))
}

/// Schedules `step` under `key` (the step name, or a client's key), with the composed
/// input unless `explicit_input` is given.
pub fn schedule(
    client: &mut SpiClient<'_>,
    exec: &Execution,
    step: &Step,
    key: &str,
    explicit_input: Option<Value>,
) -> Result<Scheduled> {
    if step.map.is_some() {
        return schedule_map(client, exec, step, key);
    }
    match &step.kind {
        StepKind::Task { activity } => {
            let Some((id, input)) =
                insert(client, exec, step, key, "scheduled", Some(activity), explicit_input, None, 0)?
            else {
                return Ok(Scheduled::Existed);
            };
            let Some(limit) = &step.concurrency else { return Ok(Scheduled::Open) };
            let tenant = tenant_for(client, exec, limit)?;
            match limit.key_of(&input, tenant.as_deref()) {
                Ok(concurrency_key) => {
                    admission::admit_activity(client, id, activity, &concurrency_key, limit.max_running)?;
                    Ok(Scheduled::Open)
                }
                Err(message) => Ok(Scheduled::FailAtOnce {
                    id,
                    error: json!({"type": "ConcurrencyKeyMissing", "message": message}),
                }),
            }
        }
        StepKind::Sql { .. } => {
            let row = insert(client, exec, step, key, "scheduled", None, explicit_input, None, 0)?;
            Ok(if row.is_some() { Scheduled::Open } else { Scheduled::Existed })
        }
        StepKind::Sleep(Sleep::For(duration)) => {
            let row = insert(client, exec, step, key, "waiting", None, explicit_input, Some(*duration), 1)?;
            Ok(if row.is_some() { Scheduled::Open } else { Scheduled::Existed })
        }
        StepKind::Sleep(Sleep::UntilInputField(field)) => {
            let Some((id, input)) = insert(client, exec, step, key, "waiting", None, explicit_input, Some(-1), 1)?
            else {
                return Ok(Scheduled::Existed);
            };
            let text = input.get("input").and_then(|i| i.get(field)).and_then(Value::as_str);
            match text.map(|t| rows::parse_timestamptz(&format!("input.{field}"), t)) {
                Some(Ok(due)) => {
                    run(client, &SET_DUE, &[arg(id), arg(due)])?;
                    Ok(Scheduled::Open)
                }
                _ => {
                    let error = json!({
                        "type": "InvalidSleep",
                        "message": format!("step \"{key}\" sleeps until input field \"{field}\", which is not a timestamp"),
                    });
                    Ok(Scheduled::FailAtOnce { id, error })
                }
            }
        }
        StepKind::Signal { name } => {
            let due_in = step.timeout.or(Some(-1));
            let Some((id, _)) = insert(client, exec, step, key, "waiting", Some(name), explicit_input, due_in, 1)?
            else {
                return Ok(Scheduled::Existed);
            };
            match rows::consume_signal(client, exec.id, name, key)? {
                Some(payload) => {
                    rows::mark_completed(client, id, payload)?;
                    Ok(Scheduled::CompletedAtOnce)
                }
                None => Ok(Scheduled::Open),
            }
        }
        StepKind::Workflow { workflow_type, client_driven, idempotency_key } => {
            let due_in = step.timeout.or(Some(-1));
            let Some((id, input)) =
                insert(client, exec, step, key, "waiting", Some(workflow_type), explicit_input, due_in, 1)?
            else {
                return Ok(Scheduled::Existed);
            };
            Ok(Scheduled::StartChild {
                id,
                workflow_type: workflow_type.clone(),
                input,
                client_driven: *client_driven,
                idempotency_key: idempotency_key.clone(),
            })
        }
    }
}

/// A map step: a waiting aggregate row under the step's name, and one row per item
/// (`name[i]`), at most `max_concurrency` open at a time.
fn schedule_map(client: &mut SpiClient<'_>, exec: &Execution, step: &Step, key: &str) -> Result<Scheduled> {
    let source = step.map.as_deref().unwrap_or_default();
    let activity_type = match &step.kind {
        StepKind::Task { activity } => activity.as_str(),
        _ => unreachable!("definitions::check_supported allows map on activity steps only"),
    };
    let Some((id, input)) = insert(client, exec, step, key, "waiting", Some(activity_type), None, Some(-1), 0)? else {
        return Ok(Scheduled::Existed);
    };
    let items = match input.get(source) {
        Some(Value::Array(items)) => items.len() as i64,
        other => {
            let got = other.map(crate::model::interval::json_kind).unwrap_or("missing");
            let error = json!({
                "type": "MapError",
                "message": format!("step \"{key}\" maps over the output of \"{source}\", which is {got}, not an array"),
            });
            return Ok(Scheduled::FailAtOnce { id, error });
        }
    };
    if items == 0 {
        rows::mark_completed(client, id, json!([]))?;
        return Ok(Scheduled::CompletedAtOnce);
    }
    // Every item must have its concurrency key: checked before any item exists.
    if let Some(limit) = &step.concurrency {
        let tenant = tenant_for(client, exec, limit)?;
        // As each item's input will be: the map's, with `item` instead of the source array.
        let mut given = input.clone();
        if let Some(o) = given.as_object_mut() {
            o.remove(source);
        }
        for (index, item) in input.get(source).and_then(Value::as_array).into_iter().flatten().enumerate() {
            given["item"] = item.clone();
            if let Err(message) = limit.key_of(&given, tenant.as_deref()) {
                let error = json!({"type": "ConcurrencyKeyMissing", "message": format!("item {index}: {message}")});
                return Ok(Scheduled::FailAtOnce { id, error });
            }
        }
    }
    // Items may exist already: the ones that completed before a workflow_retry.
    let counts = run(client, &MAP_COUNTS, &[arg(exec.id), arg(key)])?.next();
    let (created, completed) = match counts {
        Some(row) => (row.get::<i64>(1)?.unwrap_or(0), row.get::<i64>(2)?.unwrap_or(0)),
        None => (0, 0),
    };
    if created == 0 {
        let first = step.max_concurrency.map_or(items, |m| items.min(m as i64));
        open_items(client, exec, step, key, 0, first)?;
        return Ok(Scheduled::Open);
    }
    if completed >= items {
        run(client, &MAP_COMPLETE, &[arg(exec.id), arg(key)])?;
        return Ok(Scheduled::CompletedAtOnce);
    }
    let open = created - completed;
    let more = step.max_concurrency.map_or(items, |m| m as i64 - open).min(items - created);
    fill_items(client, exec, step, key, more)?;
    Ok(Scheduled::Open)
}

/// Creates up to `count` missing items of a map, lowest first, and announces their queue.
fn fill_items(client: &mut SpiClient<'_>, exec: &Execution, step: &Step, key: &str, count: i64) -> Result<()> {
    if count <= 0 {
        return Ok(());
    }
    let source = step.map.as_deref().unwrap_or_default();
    let rows = run(client, &MAP_FILL, &[arg(exec.id), arg(key), arg(source), arg(count)])?;
    opened(client, exec, step, rows)?;
    Ok(())
}

/// Creates items (from, to] of a map (1-based ordinals) and announces their queue;
/// returns how many it created (fewer where some existed).
fn open_items(client: &mut SpiClient<'_>, exec: &Execution, step: &Step, key: &str, from: i64, to: i64) -> Result<i64> {
    let source = step.map.as_deref().unwrap_or_default();
    let rows = run(client, &MAP_ITEMS, &[arg(exec.id), arg(key), arg(source), arg(from), arg(to)])?;
    opened(client, exec, step, rows)
}

/// New map items: their queue is announced, and under a step's concurrency key each is
/// admitted or held in turn (their keys were checked when the map was scheduled).
fn opened(
    client: &mut SpiClient<'_>,
    exec: &Execution,
    step: &Step,
    rows: pgrx::spi::SpiTupleTable<'_>,
) -> Result<i64> {
    let created = rows.len() as i64;
    let mut queue = None;
    let mut items = Vec::new();
    for row in rows {
        queue = queue.or(row.get::<String>(1)?);
        if step.concurrency.is_some() {
            items.push((row.get::<pgrx::Uuid>(2)?, row.get::<JsonB>(3)?.map(|j| j.0).unwrap_or(Value::Null)));
        }
    }
    if let (Some(limit), StepKind::Task { activity }) = (&step.concurrency, &step.kind) {
        let tenant = tenant_for(client, exec, limit)?;
        for (id, input) in items {
            let (Some(id), Ok(concurrency_key)) = (id, limit.key_of(&input, tenant.as_deref())) else { continue };
            admission::admit_activity(client, id, activity, &concurrency_key, limit.max_running)?;
        }
    }
    if let Some(queue) = queue {
        wake::queue_ready(&queue, 0);
    }
    Ok(created)
}

/// The execution's tenant, when a key reads it.
fn tenant_for(client: &mut SpiClient<'_>, exec: &Execution, limit: &ConcurrencyLimit) -> Result<Option<String>> {
    match limit.key {
        KeyExpr::TenantId => {
            Ok(run(client, &TENANT, &[arg(exec.id)])?.next().and_then(|r| r.get::<String>(1).ok().flatten()))
        }
        _ => Ok(None),
    }
}

/// Moves a running map forward: opens more items as others complete, and completes the
/// step when every item has. True if the step completed.
pub fn map_progress(
    client: &mut SpiClient<'_>,
    exec: &Execution,
    step: &Step,
    states: &HashMap<String, ActivityStatus>,
) -> Result<bool> {
    let prefix = format!("{}[", step.name);
    let (mut created, mut completed) = (0i64, 0i64);
    for (key, status) in states {
        if key.starts_with(&prefix) {
            created += 1;
            completed += (*status == ActivityStatus::Completed) as i64;
        }
    }
    let source = step.map.as_deref().unwrap_or_default();
    let total: i64 = run(client, &MAP_SIZE, &[arg(exec.id), arg(step.name.as_str()), arg(source)])?
        .next()
        .and_then(|r| r.get::<i32>(1).ok().flatten())
        .unwrap_or(0) as i64;
    if completed >= total {
        run(client, &MAP_COMPLETE, &[arg(exec.id), arg(step.name.as_str())])?;
        return Ok(true);
    }
    if let Some(limit) = step.max_concurrency {
        let open = created - completed;
        let more = (total - created).min(limit as i64 - open);
        if more > 0 {
            // Items are created in order, so the next ones follow the last; after a retry
            // the ones that did not complete left holes below it, filled lowest first.
            let opened = open_items(client, exec, step, &step.name, created, created + more)?;
            fill_items(client, exec, step, &step.name, more - opened)?;
        }
    }
    Ok(false)
}

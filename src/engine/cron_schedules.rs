//! Schedules (README: Flow control): start a workflow on a cron schedule or at a fixed
//! interval, in a time zone, with an overlap policy and a catch-up policy. The dispatcher
//! fires what is due in its pass (and `workflow_dispatch()` does without the preload);
//! each fire is an ordinary execution whose idempotency key is the schedule's name and the
//! fire time, and the schedule row is locked (SKIP LOCKED) while it fires, so two
//! dispatchers, or a retry after a crash, never start one fire twice.
//!
//! Local times are walked by the cron model (`model::cron`) and converted by Postgres
//! (`AT TIME ZONE`): on the day clocks spring forward, a time that does not exist fires at
//! the same wall time after the change; when they fall back, an hour that happens twice
//! fires once.

use super::plan::{run, Statement};
use super::subtransaction::in_subtransaction;
use super::tenancy::Caller;
use super::{arg, execution};
use crate::error::{Result, WorkflowError};
use crate::model::cron::{Local, Schedule};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;
use pgrx::{JsonB, Spi, Uuid};
use serde_json::{json, Value};

static VALID_ZONE: Statement =
    Statement { sql: "SELECT EXISTS (SELECT FROM pg_timezone_names WHERE name = $1)", args: &[TEXTOID] };

static TO_LOCAL: Statement = Statement {
    sql: "SELECT extract(year FROM l)::int4, extract(month FROM l)::int4, extract(day FROM l)::int4, \
                 extract(hour FROM l)::int4, extract(minute FROM l)::int4 \
          FROM (SELECT $1 AT TIME ZONE $2 AS l) x",
    args: &[TIMESTAMPTZOID, TEXTOID],
};

static FROM_LOCAL: Statement = Statement {
    sql: "SELECT make_timestamp($1, $2, $3, $4, $5, 0) AT TIME ZONE $6",
    args: &[INT4OID, INT4OID, INT4OID, INT4OID, INT4OID, TEXTOID],
};

static PLUS: Statement =
    Statement { sql: "SELECT $1 + $2::float8 * interval '1 microsecond'", args: &[TIMESTAMPTZOID, INT8OID] };

static NOW: Statement = Statement { sql: "SELECT now()", args: &[] };

static UPSERT: Statement = Statement {
    sql: "INSERT INTO @extschema@.workflow_schedule AS s (name, schedule, timezone, workflow_type, input, options, \
              overlap, catch_up, paused, next_fire_at, owner) \
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::oid::regrole) \
          ON CONFLICT (name) DO UPDATE SET schedule = $2, timezone = $3, workflow_type = $4, input = $5, options = $6, \
              overlap = $7, catch_up = $8, paused = $9, next_fire_at = $10, updated_at = now() \
          RETURNING (xmax = 0)",
    args: &[TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID, JSONBOID, TEXTOID, TEXTOID, BOOLOID, TIMESTAMPTZOID, OIDOID],
};

static DELETE: Statement =
    Statement { sql: "DELETE FROM @extschema@.workflow_schedule WHERE name = $1 RETURNING 1", args: &[TEXTOID] };

static LIST: Statement = Statement {
    sql: "SELECT coalesce(jsonb_agg(jsonb_build_object('name', name, 'schedule', schedule, 'timezone', timezone, \
              'workflow_type', workflow_type, 'input', input, 'options', options, 'overlap', overlap, \
              'catch_up', catch_up, 'paused', paused, 'next_fire_at', next_fire_at, 'last_fire_at', last_fire_at, \
              'last_execution', last_execution, 'last_error', last_error, 'buffered_fire_at', buffered_fire_at) \
              ORDER BY name), '[]') \
          FROM @extschema@.workflow_schedule",
    args: &[],
};

// Due fires, and fires buffered behind a run that has ended. The table is small (one row
// per schedule); rows being fired elsewhere are skipped.
static DUE: Statement = Statement {
    sql: "SELECT s.name, s.schedule, s.timezone, s.workflow_type, s.input, s.options, s.overlap, s.catch_up, \
                 s.next_fire_at, s.buffered_fire_at, s.owner::oid, \
                 EXISTS (SELECT FROM @extschema@.workflow_execution e \
                         WHERE e.id = s.last_execution AND e.status IN ('pending', 'running')) \
          FROM @extschema@.workflow_schedule s \
          WHERE NOT s.paused \
            AND (s.next_fire_at <= now() OR (s.buffered_fire_at IS NOT NULL AND NOT EXISTS \
                 (SELECT FROM @extschema@.workflow_execution e \
                  WHERE e.id = s.last_execution AND e.status IN ('pending', 'running')))) \
          ORDER BY s.next_fire_at LIMIT $1 FOR UPDATE OF s SKIP LOCKED",
    args: &[INT4OID],
};

// A fire that was due sets last_error: null when it started, the error when it could not.
static FIRED: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_schedule SET next_fire_at = $2, buffered_fire_at = $3, \
              last_fire_at = coalesce($4, last_fire_at), last_execution = coalesce($5, last_execution), \
              last_error = CASE WHEN $4 IS NULL THEN last_error ELSE nullif($6, 'null') END \
          WHERE name = $1",
    args: &[TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID, UUIDOID, JSONBOID],
};

fn now(client: &mut SpiClient<'_>) -> Result<TimestampWithTimeZone> {
    run(client, &NOW, &[])?
        .next()
        .and_then(|r| r.get::<TimestampWithTimeZone>(1).ok().flatten())
        .ok_or_else(|| WorkflowError::internal("now() returned nothing"))
}

/// The first fire strictly after `after`, or `None` (an impossible date).
pub fn next_fire(
    client: &mut SpiClient<'_>,
    schedule: &Schedule,
    zone: &str,
    after: TimestampWithTimeZone,
) -> Result<Option<TimestampWithTimeZone>> {
    match schedule {
        Schedule::Every(us) => {
            Ok(run(client, &PLUS, &[arg(after), arg(*us)])?.next().and_then(|r| r.get(1).ok().flatten()))
        }
        Schedule::Cron(cron) => {
            let row = run(client, &TO_LOCAL, &[arg(after), arg(zone)])?
                .next()
                .ok_or_else(|| WorkflowError::internal("no local time"))?;
            let field = |i: usize| -> Result<i32> { Ok(row.get::<i32>(i)?.unwrap_or(0)) };
            let local = Local {
                year: field(1)?,
                month: field(2)? as u32,
                day: field(3)? as u32,
                hour: field(4)? as u32,
                minute: field(5)? as u32,
            };
            // A local time can map back to the same or an earlier instant (clocks falling
            // back): keep walking until the fire is after `after`.
            let mut from = local;
            for _ in 0..4 {
                let Some(next) = cron.next_after(from) else { return Ok(None) };
                let at: Option<TimestampWithTimeZone> = run(
                    client,
                    &FROM_LOCAL,
                    &[
                        arg(next.year),
                        arg(next.month as i32),
                        arg(next.day as i32),
                        arg(next.hour as i32),
                        arg(next.minute as i32),
                        arg(zone),
                    ],
                )?
                .next()
                .and_then(|r| r.get(1).ok().flatten());
                match at {
                    Some(at) if pg_sys::TimestampTz::from(at) > pg_sys::TimestampTz::from(after) => {
                        return Ok(Some(at))
                    }
                    _ => from = next,
                }
            }
            Ok(None)
        }
    }
}

/// A schedule as `workflow_schedule_create` takes it and the table stores it.
struct Spec {
    schedule_text: String,
    schedule: Schedule,
    zone: String,
    workflow_type: String,
    input: Value,
    start: Value,
    overlap: String,
    catch_up: String,
    paused: bool,
}

fn text<'a>(
    options: &'a serde_json::Map<String, Value>,
    key: &str,
    default: &'a str,
    allowed: &[&str],
) -> Result<&'a str> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) if allowed.is_empty() || allowed.contains(&s.as_str()) => Ok(s),
        Some(v) if allowed.is_empty() => {
            Err(WorkflowError::invalid(format!("options.{key} must be a string, got {v}")))
        }
        Some(v) => Err(WorkflowError::invalid(format!("options.{key} must be one of {}, got {v}", allowed.join(", ")))),
    }
}

fn spec(
    client: &mut SpiClient<'_>,
    schedule: &str,
    workflow_type: &str,
    input: Value,
    options: &Value,
) -> Result<Spec> {
    let Value::Object(options) = options else {
        return Err(WorkflowError::invalid(format!("options must be a JSON object, got {options}")));
    };
    const FIELDS: &[&str] = &["timezone", "overlap", "catch_up", "paused", "start"];
    if let Some(key) = options.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(WorkflowError::invalid(format!(
            "options has unknown field \"{key}\"; known fields are {}",
            FIELDS.join(", ")
        )));
    }
    let parsed = Schedule::parse(schedule)
        .map_err(|e| WorkflowError::invalid(format!("schedule \"{}\": {e}", schedule.trim())))?;
    let zone = text(options, "timezone", "UTC", &[])?.to_owned();
    let valid = run(client, &VALID_ZONE, &[arg(zone.as_str())])?.next().and_then(|r| r.get::<bool>(1).ok().flatten());
    if valid != Some(true) {
        return Err(WorkflowError::invalid(format!(
            "options.timezone \"{zone}\" is not a time zone Postgres knows; write a name such as \"Europe/Berlin\" or \"UTC\""
        )));
    }
    let start = options.get("start").cloned().unwrap_or(json!({}));
    if !start.is_object() {
        return Err(WorkflowError::invalid(format!(
            "options.start must be workflow_start's options object, got {start}"
        )));
    }
    let paused = match options.get("paused") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(WorkflowError::invalid(format!("options.paused must be true or false, got {v}"))),
    };
    if workflow_type.trim().is_empty() {
        return Err(WorkflowError::invalid("workflow_type must not be empty; pass the workflow the schedule starts"));
    }
    Ok(Spec {
        schedule_text: schedule.trim().to_owned(),
        schedule: parsed,
        zone,
        workflow_type: workflow_type.to_owned(),
        input,
        start,
        overlap: text(options, "overlap", "skip", &["skip", "buffer_one", "allow_all"])?.to_owned(),
        catch_up: text(options, "catch_up", "latest", &["skip", "latest"])?.to_owned(),
        paused,
    })
}

/// `workflow_schedule_create`: creates or replaces the schedule `name`; returns it.
#[allow(clippy::too_many_arguments)]
pub fn create(
    client: &mut SpiClient<'_>,
    caller: &Caller,
    name: &str,
    schedule: &str,
    workflow_type: &str,
    input: Value,
    options: Value,
) -> Result<Value> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(WorkflowError::invalid("name must be a non-empty name of at most 200 bytes"));
    }
    let spec = spec(client, schedule, workflow_type, input, &options)?;
    let now = now(client)?;
    // What would make every fire fail is refused now, as workflow_start would refuse it.
    execution::check_start(client, caller, &spec.workflow_type, &spec.input, &labelled(&spec.start, name, now))
        .map_err(|mut e| {
            e.message = format!(
                "the schedule's fires would fail: {} (options.start holds workflow_start's options)",
                e.message
            );
            e
        })?;
    let next = next_fire(client, &spec.schedule, &spec.zone, now)?.ok_or_else(|| {
        WorkflowError::invalid(format!("schedule \"{}\" never fires (an impossible date)", spec.schedule_text))
    })?;
    run(
        client,
        &UPSERT,
        &[
            arg(name),
            arg(spec.schedule_text.as_str()),
            arg(spec.zone.as_str()),
            arg(spec.workflow_type.as_str()),
            arg(JsonB(spec.input)),
            arg(JsonB(spec.start)),
            arg(spec.overlap.as_str()),
            arg(spec.catch_up.as_str()),
            arg(spec.paused),
            arg(next),
            arg(caller.role),
        ],
    )?;
    one(client, name)
}

fn one(client: &mut SpiClient<'_>, name: &str) -> Result<Value> {
    let all = list(client)?;
    Ok(all.as_array().and_then(|a| a.iter().find(|s| s["name"] == name).cloned()).unwrap_or(Value::Null))
}

/// `workflow_schedule_delete`: false if there was none.
pub fn delete(client: &mut SpiClient<'_>, name: &str) -> Result<bool> {
    Ok(!run(client, &DELETE, &[arg(name)])?.is_empty())
}

/// `workflow_schedule_list`: every schedule with its next fire time.
pub fn list(client: &mut SpiClient<'_>) -> Result<Value> {
    Ok(run(client, &LIST, &[])?.next().and_then(|r| r.get::<JsonB>(1).ok().flatten()).map(|j| j.0).unwrap_or(json!([])))
}

fn fire_key(name: &str, at: TimestampWithTimeZone) -> String {
    // Microseconds since 2000-01-01 UTC: exact, and the same in every dispatcher.
    format!("schedule:{name}:{}", pg_sys::TimestampTz::from(at))
}

/// A schedule the DUE statement found, locked for this pass.
struct Due {
    name: String,
    spec: Spec,
    next: Option<TimestampWithTimeZone>,
    buffered: Option<TimestampWithTimeZone>,
    owner: pg_sys::Oid,
    /// The last fire's run is still pending or running.
    previous_open: bool,
}

/// Fires up to `limit` due schedules; returns how many executions it started.
pub fn fire_due(client: &mut SpiClient<'_>, limit: i32) -> Result<i32> {
    let rows: Vec<Option<Due>> = run(client, &DUE, &[arg(limit)])?
        .map(|r| -> Result<_> {
            let schedule_text = r.get::<String>(2)?.unwrap_or_default();
            // Parsed when it was stored; a row edited by hand into nonsense is left alone.
            let Ok(schedule) = Schedule::parse(&schedule_text) else { return Ok(None) };
            Ok(Some(Due {
                name: r.get::<String>(1)?.unwrap_or_default(),
                spec: Spec {
                    schedule_text,
                    schedule,
                    zone: r.get::<String>(3)?.unwrap_or_default(),
                    workflow_type: r.get::<String>(4)?.unwrap_or_default(),
                    input: r.get::<JsonB>(5)?.map(|j| j.0).unwrap_or(json!({})),
                    start: r.get::<JsonB>(6)?.map(|j| j.0).unwrap_or(json!({})),
                    overlap: r.get::<String>(7)?.unwrap_or_default(),
                    catch_up: r.get::<String>(8)?.unwrap_or_default(),
                    paused: false,
                },
                next: r.get::<TimestampWithTimeZone>(9)?,
                buffered: r.get::<TimestampWithTimeZone>(10)?,
                owner: r.get::<pg_sys::Oid>(11)?.unwrap_or(pg_sys::Oid::INVALID),
                previous_open: r.get::<bool>(12)?.unwrap_or(false),
            }))
        })
        .collect::<Result<_>>()?;
    let now = now(client)?;
    let mut started = 0;
    for Due { name, spec, next, buffered, owner, previous_open } in rows.into_iter().flatten() {
        let Spec { schedule, zone, workflow_type, input, start, overlap, catch_up, .. } = spec;
        let mut error = None;
        let mut fire = |at: TimestampWithTimeZone| -> Option<Uuid> {
            match fire_one(owner, &name, &workflow_type, &input, &start, at) {
                Ok(id) => {
                    started += 1;
                    Some(id)
                }
                Err(e) => {
                    error = Some(e);
                    None
                }
            }
        };
        // A buffered fire goes once the run it waited for has ended.
        let (mut buffered_left, mut fired_at, mut execution) = (buffered, None, None);
        if let (Some(at), false) = (buffered, previous_open) {
            execution = fire(at);
            fired_at = Some(at);
            buffered_left = None;
        }
        let mut next_left = next;
        if let Some(due) = next.filter(|n| pg_sys::TimestampTz::from(*n) <= pg_sys::TimestampTz::from(now)) {
            // Every fire due by now; with catch_up 'latest' the last of them runs, with
            // 'skip' only a fire that is the only one due (nothing was missed) runs.
            let mut latest = due;
            let mut missed = 0;
            let mut after = next_fire(client, &schedule, &zone, due)?;
            while let Some(n) = after.filter(|n| pg_sys::TimestampTz::from(*n) <= pg_sys::TimestampTz::from(now)) {
                latest = n;
                missed += 1;
                after = next_fire(client, &schedule, &zone, n)?;
            }
            next_left = after;
            let runs = catch_up == "latest" || missed == 0;
            let open = previous_open || execution.is_some();
            if runs {
                match (overlap.as_str(), open) {
                    ("skip", true) => {}
                    ("buffer_one", true) => buffered_left = Some(latest),
                    _ => {
                        execution = fire(latest).or(execution);
                        fired_at = Some(latest);
                    }
                }
            }
        }
        run(
            client,
            &FIRED,
            &[
                arg(name.as_str()),
                arg(next_left),
                arg(buffered_left),
                arg(fired_at),
                arg(execution),
                arg(fired_at.map(|_| JsonB(error.unwrap_or(Value::Null)))),
            ],
        )?;
    }
    Ok(started)
}

/// Starts one fire's execution in a subtransaction, as the schedule's owner: a fire that
/// cannot start (its workflow type since dropped, a tenant gone) is kept as the
/// schedule's `last_error`, and the pass goes on with the other schedules.
fn fire_one(
    owner: pg_sys::Oid,
    name: &str,
    workflow_type: &str,
    input: &Value,
    start: &Value,
    at: TimestampWithTimeZone,
) -> std::result::Result<Uuid, Value> {
    let options = labelled(start, name, at);
    let (key, workflow_type, input) = (fire_key(name, at), workflow_type.to_owned(), input.clone());
    in_subtransaction(move || {
        Spi::connect_mut(|c| {
            execution::start(c, &Caller::unrestricted(owner), &workflow_type, input, Some(&key), options)
        })
    })
    .map_err(|mut e| {
        e["type"] = json!("ScheduleFireFailed");
        e
    })
}

/// workflow_start's options for a fire: the schedule's, with labels naming the schedule
/// and the fire time, so workflow_list finds a schedule's runs.
fn labelled(start: &Value, name: &str, at: TimestampWithTimeZone) -> Value {
    let mut options = start.clone();
    if let Some(o) = options.as_object_mut() {
        let labels = o.entry("labels").or_insert_with(|| json!({}));
        if let Some(l) = labels.as_object_mut() {
            l.insert("schedule".into(), json!(name));
            l.insert("fire_at".into(), json!(pg_sys::TimestampTz::from(at).to_string()));
        }
    }
    options
}

static PAUSE: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_schedule SET paused = $2, updated_at = now() WHERE name = $1 RETURNING 1",
    args: &[TEXTOID, BOOLOID],
};

/// `workflow_schedule_pause` / `_resume`: false if there is no such schedule. A resumed
/// schedule's missed fires follow its catch-up policy.
pub fn set_paused(client: &mut SpiClient<'_>, name: &str, paused: bool) -> Result<bool> {
    Ok(!run(client, &PAUSE, &[arg(name), arg(paused)])?.is_empty())
}

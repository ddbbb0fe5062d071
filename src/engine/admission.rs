//! Admission of executions (README: Flow control): a workflow type's concurrency key
//! (`"concurrency_key": "input.document_id", "max_running": 1`) and a paused type.
//!
//! An execution that may not run yet is `pending` with no start time: it **waits**. A
//! waiting execution is made due (given a start time of now) when a slot may have
//! freed: an execution with its key ended, or its type was resumed; the dispatcher (or
//! `workflow_dispatch()`) then starts due executions through `execution::start_pending`,
//! which asks again. So the finishing transaction does no more than one UPDATE, and
//! whoever starts a waiting execution decides under the key's lock.
//!
//! The decision takes a transaction-scoped advisory lock on (type, key) and counts the
//! key's running executions, so two starts never both take the last slot; an execution
//! that has waited longer (or is due) goes first: a start does not overtake the queue.
//! A waiting execution's deadline keeps its timeout: while it waits, `deadline -
//! created_at` is the timeout, and it counts from the real start.

use super::arg;
use super::plan::{run, Statement};
use crate::error::Result;
use crate::model::definition::Definition;
use pgrx::pg_sys;
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;

/// What may happen to an execution about to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Run,
    /// Pending with no start time, until made due.
    Wait,
    /// Pending and due now: the dispatcher decides (this transaction's snapshot is older
    /// than its statements, so it could not count what others committed meanwhile).
    Defer,
}

impl Admission {
    /// How `INSERT_EXECUTION` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Admission::Run => "run",
            Admission::Wait => "wait",
            Admission::Defer => "defer",
        }
    }
}

static LOCK_KEY: Statement = Statement {
    sql: "SELECT pg_catalog.pg_advisory_xact_lock(hashtext('pg_workflow.concurrency:' || $1), hashtext($2))",
    args: &[TEXTOID, TEXTOID],
};

// The key's running executions (at most $3 are counted), and the first one queued ahead
// of $4: waiting, or due to start.
static SLOTS: Statement = Statement {
    sql: "SELECT (SELECT count(*) FROM (SELECT FROM @extschema@.workflow_execution \
                  WHERE workflow_type = $1 AND concurrency_key = $2 AND status = 'running' LIMIT $3) r), \
                 a.id, a.started_at IS NULL \
          FROM (SELECT) one LEFT JOIN LATERAL ( \
              SELECT id, started_at FROM @extschema@.workflow_execution \
              WHERE workflow_type = $1 AND concurrency_key = $2 AND status = 'pending' AND id < $4 \
                AND (started_at IS NULL OR started_at <= now()) \
              ORDER BY id LIMIT 1) a ON true",
    args: &[TEXTOID, TEXTOID, INT8OID, UUIDOID],
};

// Makes a waiting execution due; its timeout counts from the start to come.
static MAKE_DUE: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_execution \
          SET started_at = now(), deadline = now() + (deadline - created_at) \
          WHERE id = $1 AND (status = 'pending') IS TRUE AND started_at IS NULL",
    args: &[UUIDOID],
};

// The first waiting execution of a key.
static MAKE_NEXT_DUE: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_execution \
          SET started_at = now(), deadline = now() + (deadline - created_at) \
          WHERE id = (SELECT id FROM @extschema@.workflow_execution \
                      WHERE workflow_type = $1 AND concurrency_key = $2 AND status = 'pending' \
                        AND started_at IS NULL \
                      ORDER BY id LIMIT 1) \
            AND status = 'pending' AND started_at IS NULL \
          RETURNING id",
    args: &[TEXTOID, TEXTOID],
};

// Every waiting execution of a resumed type.
static MAKE_TYPE_DUE: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_execution \
          SET started_at = now(), deadline = now() + (deadline - created_at) \
          WHERE status = 'pending' AND started_at IS NULL AND workflow_type = $1",
    args: &[TEXTOID],
};

// A due execution that may not run yet goes back to waiting (a delayed start's timeout
// counted from its start time; now from the start to come).
static BACK_TO_WAITING: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_execution \
          SET deadline = created_at + (deadline - started_at), started_at = NULL \
          WHERE id = $1 AND (status = 'pending') IS TRUE",
    args: &[UUIDOID],
};

/// The key of a type's limit, for an execution with this input and tenant; None if the
/// type has no limit. 22023 when the input lacks the key.
pub fn key_of(
    definition: Option<&Definition>,
    input: &serde_json::Value,
    tenant: Option<&str>,
) -> Result<Option<String>> {
    let Some(limit) = definition.and_then(|d| d.concurrency.as_ref()) else { return Ok(None) };
    let given = serde_json::json!({ "input": input });
    limit.key_of(&given, tenant).map(Some).map_err(crate::error::WorkflowError::invalid)
}

/// May execution `id` of `workflow_type` (with `key` under a limit of `max_running`, or
/// none) start now? Takes the key's lock until the transaction ends.
pub fn admit(
    client: &mut SpiClient<'_>,
    id: Uuid,
    workflow_type: &str,
    limit: Option<(&str, i32)>,
    paused: bool,
) -> Result<Admission> {
    if paused {
        return Ok(Admission::Wait);
    }
    let Some((key, max_running)) = limit else { return Ok(Admission::Run) };
    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        return Ok(Admission::Defer);
    }
    run(client, &LOCK_KEY, &[arg(workflow_type), arg(key)])?;
    let row = run(client, &SLOTS, &[arg(workflow_type), arg(key), arg(max_running as i64), arg(id)])?.next();
    let (running, ahead, ahead_waits) = match row {
        Some(r) => (r.get::<i64>(1)?.unwrap_or(0), r.get::<Uuid>(2)?, r.get::<bool>(3)?.unwrap_or(false)),
        None => (0, None, false),
    };
    match ahead {
        None if running < max_running as i64 => Ok(Admission::Run),
        Some(first) if running < max_running as i64 && ahead_waits => {
            // A slot is free but an older execution waits: it goes first (it was made due
            // by an end this transaction cannot see yet, or the hint was lost).
            run(client, &MAKE_DUE, &[arg(first)])?;
            crate::wake::wake_at_commit();
            Ok(Admission::Wait)
        }
        _ => Ok(Admission::Wait),
    }
}

/// A due execution that may not start yet waits again.
pub fn wait_again(client: &mut SpiClient<'_>, id: Uuid) -> Result<()> {
    run(client, &BACK_TO_WAITING, &[arg(id)])?;
    Ok(())
}

/// An execution with `key` ended (or stopped waiting): the first one waiting for that key
/// becomes due; the dispatcher starts it if a slot is free.
pub fn released(client: &mut SpiClient<'_>, workflow_type: &str, key: &str) -> Result<()> {
    if !run(client, &MAKE_NEXT_DUE, &[arg(workflow_type), arg(key)])?.is_empty() {
        crate::wake::wake_at_commit();
    }
    Ok(())
}

/// A resumed type: every execution waiting for it becomes due.
pub fn resumed(client: &mut SpiClient<'_>, workflow_type: &str) -> Result<()> {
    run(client, &MAKE_TYPE_DUE, &[arg(workflow_type)])?;
    crate::wake::wake_at_commit();
    Ok(())
}

static PAUSE: Statement = Statement {
    sql: "INSERT INTO @extschema@.workflow_paused_type (workflow_type) VALUES ($1) \
          ON CONFLICT (workflow_type) DO NOTHING RETURNING 1",
    args: &[TEXTOID],
};

static RESUME: Statement = Statement {
    sql: "DELETE FROM @extschema@.workflow_paused_type WHERE workflow_type = $1 RETURNING 1",
    args: &[TEXTOID],
};

/// `workflow_type_pause`: new starts of the type (and its delayed starts coming due, and
/// its retries) wait; running executions go on. False if it was paused already.
pub fn pause_type(client: &mut SpiClient<'_>, workflow_type: &str) -> Result<bool> {
    require_declared(client, workflow_type)?;
    Ok(!run(client, &PAUSE, &[arg(workflow_type)])?.is_empty())
}

/// `workflow_type_resume`: what waited for the type starts, oldest first (concurrency
/// keys still apply). False if it was not paused.
pub fn resume_type(client: &mut SpiClient<'_>, workflow_type: &str) -> Result<bool> {
    require_declared(client, workflow_type)?;
    if run(client, &RESUME, &[arg(workflow_type)])?.is_empty() {
        return Ok(false);
    }
    resumed(client, workflow_type)?;
    Ok(true)
}

fn require_declared(client: &mut SpiClient<'_>, workflow_type: &str) -> Result<()> {
    match super::definitions::current(client, workflow_type)? {
        Some(_) => Ok(()),
        None => Err(crate::error::WorkflowError::undefined(format!(
            "workflow type \"{workflow_type}\" is not defined; only declared types can be paused"
        ))
        .with_hint("check the spelling; pause a client-driven workload by pausing its queues")),
    }
}

// Steps (`concurrency_key` on an activity step): an activity over its key's limit is
// held: scheduled, but due at 'infinity', so no claim takes it. A held activity is made
// due by the trigger `workflow_activity_slot_freed` (flow.sql) when an admitted one with
// its key stops being scheduled or running: one freed slot, one admitted.

static LOCK_ACTIVITY_KEY: Statement = Statement {
    sql: "SELECT pg_catalog.pg_advisory_xact_lock(hashtext('pg_workflow.activity:' || $1), hashtext($2))",
    args: &[TEXTOID, TEXTOID],
};

// Admitted activities of the key (at most $3 counted); whether any is held.
static ACTIVITY_SLOTS: Statement = Statement {
    sql: "SELECT (SELECT count(*) FROM (SELECT FROM @extschema@.workflow_activity \
                  WHERE activity_type = $1 AND concurrency_key = $2 AND status IN ('scheduled', 'running') \
                    AND scheduled_at < 'infinity' LIMIT $3) r), \
                 EXISTS (SELECT FROM @extschema@.workflow_activity \
                         WHERE activity_type = $1 AND concurrency_key = $2 AND status = 'scheduled' \
                           AND scheduled_at = 'infinity')",
    args: &[TEXTOID, TEXTOID, INT8OID],
};

static KEY_ACTIVITY: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_activity \
          SET concurrency_key = $2, scheduled_at = CASE WHEN $3 THEN scheduled_at ELSE 'infinity' END \
          WHERE id = $1",
    args: &[UUIDOID, TEXTOID, BOOLOID],
};

/// Gives a just-scheduled activity its key, and holds it if the key's limit is reached
/// or others wait already (they go first). True if it may be claimed now.
pub fn admit_activity(
    client: &mut SpiClient<'_>,
    id: Uuid,
    activity_type: &str,
    key: &str,
    max_running: i32,
) -> Result<bool> {
    run(client, &LOCK_ACTIVITY_KEY, &[arg(activity_type), arg(key)])?;
    let row = run(client, &ACTIVITY_SLOTS, &[arg(activity_type), arg(key), arg(max_running as i64)])?.next();
    let (admitted, held) = match row {
        Some(r) => (r.get::<i64>(1)?.unwrap_or(0), r.get::<bool>(2)?.unwrap_or(false)),
        None => (0, false),
    };
    let now = admitted < max_running as i64 && !held;
    run(client, &KEY_ACTIVITY, &[arg(id), arg(key), arg(now)])?;
    Ok(now)
}

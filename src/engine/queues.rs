//! Flow control per queue (README: Flow control): pause, a concurrency limit (at most N
//! activities running across all workers) and a rate limit (a token bucket: N claims per
//! interval, bursts up to `burst`), set with `workflow_queue_configure`.
//!
//! A claim on a queue with a configuration locks that queue's row first, so claimers of a
//! limited queue are admitted one transaction at a time and can never over-admit; they get
//! fewer rows (or none) instead of waiting. A queue without a configuration takes none of
//! this path: which queues have one is cached per backend and forgotten on any relcache
//! invalidation (the trigger on workflow_queue sends one for that table).

use super::arg;
use super::plan::{run, Statement};
use crate::error::{Result, WorkflowError};
use crate::model::interval::parse_positive_json;
use pgrx::datum::{clock_timestamp, TimestampWithTimeZone};
use pgrx::pg_sys;
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::collections::HashSet;

static CONFIGURED: Statement = Statement { sql: "SELECT queue FROM @extschema@.workflow_queue", args: &[] };

static LOCK: Statement = Statement {
    sql: "SELECT paused, max_running, rate_count, rate_per_us, burst, tokens, refilled_at \
          FROM @extschema@.workflow_queue WHERE queue = $1 FOR UPDATE",
    args: &[TEXTOID],
};

// Bounded by the number of busy workers (the running index).
static RUNNING: Statement = Statement {
    sql: "SELECT count(*) FROM @extschema@.workflow_activity WHERE status = 'running' AND kind = 'task' AND queue = $1",
    args: &[TEXTOID],
};

static SPEND: Statement = Statement {
    sql: "UPDATE @extschema@.workflow_queue SET tokens = $2, refilled_at = $3 WHERE queue = $1",
    args: &[TEXTOID, FLOAT8OID, TIMESTAMPTZOID],
};

// A rate limit that is new starts with a full bucket; a changed one keeps what is left
// (at most the new burst).
static UPSERT: Statement = Statement {
    sql: "INSERT INTO @extschema@.workflow_queue AS q (queue, paused, max_running, rate_count, rate_per_us, burst, tokens, \
                                                     refilled_at, updated_at) \
          VALUES ($1, $2, $3, $4, $5, $6, coalesce($6, 0), now(), now()) \
          ON CONFLICT (queue) DO UPDATE SET paused = $2, max_running = $3, rate_count = $4, rate_per_us = $5, \
              burst = $6, updated_at = now(), \
              tokens = CASE WHEN q.rate_count IS NULL THEN coalesce($6, 0) ELSE least(q.tokens, coalesce($6, 0)) END, \
              refilled_at = CASE WHEN q.rate_count IS NULL THEN now() ELSE q.refilled_at END \
          RETURNING 1",
    args: &[TEXTOID, BOOLOID, INT4OID, INT4OID, INT8OID, FLOAT8OID],
};

static REMOVE: Statement =
    Statement { sql: "DELETE FROM @extschema@.workflow_queue WHERE queue = $1", args: &[TEXTOID] };

thread_local! {
    static LIMITED: RefCell<Option<HashSet<String>>> = const { RefCell::new(None) };
    static WATCHING: Cell<bool> = const { Cell::new(false) };
}

unsafe extern "C-unwind" fn forget_on_relcache(_arg: pg_sys::Datum, _relid: pg_sys::Oid) {
    LIMITED.with(|l| *l.borrow_mut() = None);
}

/// Whether `queue` has a configuration (cached per backend).
fn is_configured(client: &mut SpiClient<'_>, queue: &str) -> Result<bool> {
    if !WATCHING.with(|w| w.replace(true)) {
        unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(forget_on_relcache), pg_sys::Datum::from(0)) };
    }
    if let Some(known) = LIMITED.with(|l| l.borrow().as_ref().map(|set| set.contains(queue))) {
        return Ok(known);
    }
    let set: HashSet<String> =
        run(client, &CONFIGURED, &[])?.filter_map(|r| r.get::<String>(1).ok().flatten()).collect();
    let found = set.contains(queue);
    LIMITED.with(|l| *l.borrow_mut() = Some(set));
    Ok(found)
}

/// What a claim on a limited queue may take, and what to write back once it has.
pub struct Admission {
    pub allowed: i32,
    /// The bucket after refilling (rate-limited queues) and the instant it was refilled
    /// to: the claim spends from it.
    bucket: Option<(f64, TimestampWithTimeZone)>,
}

/// Admits a claim of up to `wanted` activities from `queue`; `None` for a queue with no
/// configuration (the claim goes on unlimited). Locks the queue's row until commit.
pub fn admit(client: &mut SpiClient<'_>, queue: &str, wanted: i32) -> Result<Option<Admission>> {
    if !is_configured(client, queue)? {
        return Ok(None);
    }
    let Some(row) = run(client, &LOCK, &[arg(queue)])?.next() else { return Ok(None) }; // removed meanwhile
    let paused: bool = row.get(1)?.unwrap_or(false);
    if paused {
        return Ok(Some(Admission { allowed: 0, bucket: None }));
    }
    let mut allowed = wanted;
    if let Some(max_running) = row.get::<i32>(2)? {
        let running =
            run(client, &RUNNING, &[arg(queue)])?.next().and_then(|r| r.get::<i64>(1).ok().flatten()).unwrap_or(0);
        allowed = allowed.min((max_running as i64 - running).max(0) as i32);
    }
    let mut bucket = None;
    if let (Some(count), Some(per_us), Some(burst)) = (row.get::<i32>(3)?, row.get::<i64>(4)?, row.get::<f64>(5)?) {
        let tokens: f64 = row.get(6)?.unwrap_or(0.0);
        // The clock now, with the row locked — not now(), the transaction's start: a claim
        // that waited for the lock would count from before the claim it waited for, and
        // writing that earlier instant back would credit the same interval twice.
        let clock = clock_timestamp();
        let refilled_at = row.get::<TimestampWithTimeZone>(7)?.unwrap_or(clock);
        let (clock_us, refilled_us) = (pg_sys::TimestampTz::from(clock), pg_sys::TimestampTz::from(refilled_at));
        // Never back in time, should the bucket have been refilled to a later instant.
        let (at, elapsed_us) = if clock_us > refilled_us { (clock, clock_us - refilled_us) } else { (refilled_at, 0) };
        let refilled = (tokens + elapsed_us as f64 * count as f64 / per_us as f64).min(burst);
        allowed = allowed.min(refilled.floor() as i32);
        bucket = Some((refilled, at));
    }
    Ok(Some(Admission { allowed: allowed.max(0), bucket }))
}

/// After the claim: takes what it claimed from the bucket.
pub fn spend(client: &mut SpiClient<'_>, queue: &str, admission: &Admission, claimed: usize) -> Result<()> {
    if let Some((tokens, at)) = admission.bucket {
        run(client, &SPEND, &[arg(queue), arg(tokens - claimed as f64), arg(at)])?;
    }
    Ok(())
}

fn int_field(options: &serde_json::Map<String, Value>, key: &str, min: i64) -> Result<Option<i32>> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if n >= min && n <= i32::MAX as i64 => Ok(Some(n as i32)),
            _ => {
                Err(WorkflowError::invalid(format!("options.{key} must be a whole number of at least {min}, got {v}")))
            }
        },
    }
}

/// `workflow_queue_configure`: sets the queue's limits and pause (absent or null = none);
/// returns the configuration now in force (`{}` when the queue has none left).
pub fn configure(client: &mut SpiClient<'_>, queue: &str, options: Value) -> Result<Value> {
    if queue.trim().is_empty() {
        return Err(WorkflowError::invalid("queue must not be empty; pass a queue name such as 'default'"));
    }
    let Value::Object(options) = options else {
        return Err(WorkflowError::invalid(format!("options must be a JSON object, got {options}")));
    };
    const FIELDS: &[&str] = &["max_running", "rate_limit", "paused"];
    if let Some(key) = options.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(WorkflowError::invalid(format!(
            "options has unknown field \"{key}\"; known fields are {}",
            FIELDS.join(", ")
        )));
    }
    let paused = match options.get("paused") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(WorkflowError::invalid(format!("options.paused must be true or false, got {v}"))),
    };
    let max_running = int_field(&options, "max_running", 1)?;
    let rate = match options.get("rate_limit") {
        None | Some(Value::Null) => None,
        Some(Value::Object(r)) => {
            if let Some(key) = r.keys().find(|k| !["count", "per", "burst"].contains(&k.as_str())) {
                return Err(WorkflowError::invalid(format!(
                    "options.rate_limit has unknown field \"{key}\"; known fields are count, per, burst"
                )));
            }
            let count = int_field(r, "count", 1)?.ok_or_else(|| {
                WorkflowError::invalid("options.rate_limit.count is missing: how many claims per interval")
            })?;
            let per = r.get("per").ok_or_else(|| {
                WorkflowError::invalid("options.rate_limit.per is missing: the interval, such as \"1 minute\"")
            })?;
            let per_us =
                parse_positive_json(per).map_err(|e| WorkflowError::invalid(format!("options.rate_limit.per {e}")))?;
            let burst = int_field(r, "burst", 1)?.unwrap_or(count);
            Some((count, per_us, burst as f64))
        }
        Some(v) => {
            return Err(WorkflowError::invalid(format!(
                "options.rate_limit must be an object such as {{\"count\": 60, \"per\": \"1 minute\"}}, got {v}"
            )))
        }
    };
    if !paused && max_running.is_none() && rate.is_none() {
        run(client, &REMOVE, &[arg(queue)])?;
        return Ok(json!({}));
    }
    run(
        client,
        &UPSERT,
        &[
            arg(queue),
            arg(paused),
            arg(max_running),
            arg(rate.map(|r| r.0)),
            arg(rate.map(|r| r.1)),
            arg(rate.map(|r| r.2)),
        ],
    )?;
    let mut out = serde_json::Map::new();
    out.insert("paused".into(), json!(paused));
    if let Some(m) = max_running {
        out.insert("max_running".into(), json!(m));
    }
    if let Some((count, _, burst)) = rate {
        out.insert(
            "rate_limit".into(),
            json!({"count": count, "per": options["rate_limit"]["per"], "burst": burst as i64}),
        );
    }
    Ok(Value::Object(out))
}

//! What runs and how it goes (README: Observability): queue depth and recent outcomes,
//! execution and step statistics, and the Prometheus text of both. Read-only; a caller
//! bound to a tenant sees its tenant's work alone ($1 or $2: the tenant, NULL for all).

use super::arg;
use super::plan::{run, Statement};
use super::tenancy::Caller;
use crate::error::{Result, WorkflowError};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;
use pgrx::{JsonB, Uuid};
use serde_json::Value;

// Open work from the claim index (scheduled tasks) and the running index, one part each;
// outcomes from the attempt history of the last hour (its finished_at index).
static QUEUE_STATS: Statement = Statement {
    sql: "WITH open AS ( \
            SELECT a.queue, \
                   count(*) FILTER (WHERE a.scheduled_at <= now()) AS ready, \
                   count(*) FILTER (WHERE a.scheduled_at > now()) AS delayed, \
                   0::int8 AS running, 0::int8 AS expired, \
                   max(now() - a.scheduled_at) FILTER (WHERE a.scheduled_at <= now()) AS oldest \
            FROM @extschema@.workflow_activity a \
            WHERE a.status = 'scheduled' AND a.kind = 'task' \
              AND ($1::text IS NULL OR EXISTS (SELECT FROM @extschema@.workflow_execution t \
                                               WHERE t.id = a.execution_id AND t.tenant_id = $1)) \
            GROUP BY a.queue \
            UNION ALL \
            SELECT a.queue, 0, 0, count(*), count(*) FILTER (WHERE a.lease_expires_at < now()), NULL \
            FROM @extschema@.workflow_activity a \
            WHERE a.status = 'running' AND a.kind = 'task' \
              AND ($1::text IS NULL OR EXISTS (SELECT FROM @extschema@.workflow_execution t \
                                               WHERE t.id = a.execution_id AND t.tenant_id = $1)) \
            GROUP BY a.queue), \
          live AS (SELECT queue, sum(ready)::int8 AS ready, sum(delayed)::int8 AS delayed, \
                          sum(running)::int8 AS running, sum(expired)::int8 AS expired, max(oldest) AS oldest \
                   FROM open GROUP BY queue), \
          done AS ( \
            SELECT h.queue, \
                   count(*) FILTER (WHERE h.outcome = 'completed' AND h.finished_at > now() - interval '1 minute') AS c1, \
                   count(*) FILTER (WHERE h.outcome IN ('failed', 'timed_out', 'lease_expired') \
                                      AND h.finished_at > now() - interval '1 minute') AS f1, \
                   count(*) FILTER (WHERE h.outcome = 'completed') AS c60, \
                   count(*) FILTER (WHERE h.outcome IN ('failed', 'timed_out', 'lease_expired')) AS f60 \
            FROM @extschema@.workflow_attempt h \
            WHERE h.finished_at > now() - interval '1 hour' AND h.queue IS NOT NULL \
              AND ($1::text IS NULL OR EXISTS (SELECT FROM @extschema@.workflow_execution t \
                                               WHERE t.id = h.execution_id AND t.tenant_id = $1)) \
            GROUP BY h.queue) \
          SELECT coalesce(l.queue, d.queue), coalesce(l.ready, 0), coalesce(l.delayed, 0), coalesce(l.running, 0), \
                 coalesce(l.expired, 0), l.oldest, coalesce(d.c1, 0), coalesce(d.f1, 0), coalesce(d.c60, 0), \
                 coalesce(d.f60, 0) \
          FROM live l FULL JOIN done d ON d.queue = l.queue ORDER BY 1",
    args: &[TEXTOID],
};

/// One queue's line of `workflow_queue_stats`.
pub struct QueueStats {
    pub queue: String,
    pub ready: i64,
    pub delayed: i64,
    pub running: i64,
    pub expired_leases: i64,
    pub oldest_ready_age: Option<pgrx::datum::Interval>,
    pub completed_last_minute: i64,
    pub failed_last_minute: i64,
    pub completed_last_hour: i64,
    pub failed_last_hour: i64,
}

pub fn queue_stats(client: &mut SpiClient<'_>, caller: &Caller) -> Result<Vec<QueueStats>> {
    let mut out = Vec::new();
    for row in run(client, &QUEUE_STATS, &[arg(caller.tenant.as_deref())])? {
        let n = |i: usize| -> Result<i64> { Ok(row.get::<i64>(i)?.unwrap_or(0)) };
        out.push(QueueStats {
            queue: row.get(1)?.unwrap_or_default(),
            ready: n(2)?,
            delayed: n(3)?,
            running: n(4)?,
            expired_leases: n(5)?,
            oldest_ready_age: row.get(6)?,
            completed_last_minute: n(7)?,
            failed_last_minute: n(8)?,
            completed_last_hour: n(9)?,
            failed_last_hour: n(10)?,
        });
    }
    Ok(out)
}

// Executions started since $1 (ids are UUIDv7: $1 is the first id of that millisecond, so
// the primary key finds them), by type and version; their steps from the attempt history.
static EXECUTION_STATS: Statement = Statement {
    sql: "WITH ex AS ( \
            SELECT id, workflow_type, definition_version AS version, status, \
                   extract(epoch FROM finished_at - started_at) * 1000 AS ms \
            FROM @extschema@.workflow_execution WHERE id >= $1 AND ($2::text IS NULL OR tenant_id = $2)), \
          counts AS (SELECT workflow_type, version, jsonb_object_agg(status, n) AS by_status \
                     FROM (SELECT workflow_type, version, status, count(*) AS n FROM ex GROUP BY 1, 2, 3) c \
                     GROUP BY 1, 2), \
          took AS (SELECT workflow_type, version, \
                          jsonb_build_object('p50', percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), \
                                             'p95', percentile_cont(0.95) WITHIN GROUP (ORDER BY ms), \
                                             'p99', percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)) AS ms \
                   FROM ex WHERE ms IS NOT NULL GROUP BY 1, 2), \
          tries AS (SELECT ex.workflow_type, ex.version, regexp_replace(h.step_key, '\\[\\d+\\]$', '') AS step, \
                           h.outcome, h.error->>'type' AS error_type, \
                           extract(epoch FROM h.finished_at - h.started_at) * 1000 AS ms \
                    FROM ex JOIN @extschema@.workflow_attempt h ON h.execution_id = ex.id), \
          failures AS (SELECT workflow_type, version, step, jsonb_object_agg(coalesce(error_type, outcome), n) AS by_type \
                       FROM (SELECT workflow_type, version, step, error_type, outcome, count(*) AS n FROM tries \
                             WHERE outcome <> 'completed' GROUP BY 1, 2, 3, 4, 5) f GROUP BY 1, 2, 3), \
          steps AS (SELECT t.workflow_type, t.version, \
                           jsonb_agg(jsonb_build_object('step', t.step, 'attempts', t.attempts, \
                               'completed', t.completed, 'failures', coalesce(f.by_type, '{}'), \
                               'duration_ms', jsonb_build_object('p50', t.p50, 'p95', t.p95)) ORDER BY t.step) AS steps \
                    FROM (SELECT workflow_type, version, step, count(*) AS attempts, \
                                 count(*) FILTER (WHERE outcome = 'completed') AS completed, \
                                 percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, \
                                 percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS p95 \
                          FROM tries GROUP BY 1, 2, 3) t \
                    LEFT JOIN failures f ON f.workflow_type = t.workflow_type \
                         AND f.version IS NOT DISTINCT FROM t.version AND f.step = t.step \
                    GROUP BY 1, 2) \
          SELECT coalesce(jsonb_agg(jsonb_build_object('workflow_type', c.workflow_type, 'version', c.version, \
                     'executions', c.by_status, 'duration_ms', d.ms, 'steps', coalesce(s.steps, '[]')) \
                     ORDER BY c.workflow_type, c.version), '[]') \
          FROM counts c \
          LEFT JOIN took d ON d.workflow_type = c.workflow_type AND d.version IS NOT DISTINCT FROM c.version \
          LEFT JOIN steps s ON s.workflow_type = c.workflow_type AND s.version IS NOT DISTINCT FROM c.version",
    args: &[UUIDOID, TEXTOID],
};

/// The smallest UUIDv7 of the millisecond `at` falls in.
pub fn first_id_at(at: TimestampWithTimeZone) -> Uuid {
    // Postgres timestamps count microseconds from 2000-01-01; Unix milliseconds from 1970.
    let micros: i64 = pgrx::pg_sys::TimestampTz::from(at);
    let unix_ms = micros.div_euclid(1000) + 946_684_800_000;
    let ms = u64::try_from(unix_ms.max(0)).unwrap_or(0).min((1 << 48) - 1);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = 0x70; // version 7
    bytes[8] = 0x80; // RFC 4122 variant
    Uuid::from_bytes(bytes)
}

pub fn execution_stats(client: &mut SpiClient<'_>, caller: &Caller, since: TimestampWithTimeZone) -> Result<Value> {
    if !since.is_finite() {
        return Err(WorkflowError::invalid("since must be a finite timestamp, such as now() - interval '1 day'"));
    }
    let first = first_id_at(since);
    Ok(run(client, &EXECUTION_STATS, &[arg(first), arg(caller.tenant.as_deref())])?
        .next()
        .and_then(|r| r.get::<JsonB>(1).ok().flatten())
        .map(|j| j.0)
        .unwrap_or(Value::Array(vec![])))
}

// Open executions (the index workflow_execution_open) and those that ended in the last
// hour (workflow_execution_finished), by type, status and tenant.
static EXECUTION_COUNTS: Statement = Statement {
    sql: "SELECT workflow_type, status, coalesce(tenant_id, ''), count(*) FROM @extschema@.workflow_execution \
          WHERE status IN ('pending', 'running') AND ($1::text IS NULL OR tenant_id = $1) GROUP BY 1, 2, 3 \
          UNION ALL \
          SELECT workflow_type, status, coalesce(tenant_id, ''), count(*) FROM @extschema@.workflow_execution \
          WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at > now() - interval '1 hour' \
            AND ($1::text IS NULL OR tenant_id = $1) GROUP BY 1, 2, 3 \
          ORDER BY 1, 2, 3",
    args: &[TEXTOID],
};

/// A label value in the Prometheus text format: backslash, quote and newline escaped.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// One metric family: its HELP and TYPE lines, then its samples.
fn family(out: &mut String, name: &str, help: &str, samples: &[(String, f64)]) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
    for (labels, value) in samples {
        out.push_str(&format!("{name}{{{labels}}} {value}\n"));
    }
}

/// `workflow_metrics`: the Prometheus text exposition format (all gauges: counts of the
/// last minute and hour are windows, not counters, because retention deletes history).
pub fn metrics(client: &mut SpiClient<'_>, caller: &Caller) -> Result<String> {
    let queues = queue_stats(client, caller)?;
    let mut out = String::new();
    let per_queue = |f: &dyn Fn(&QueueStats) -> f64| -> Vec<(String, f64)> {
        queues.iter().map(|q| (format!("queue=\"{}\"", label(&q.queue)), f(q))).collect()
    };
    family(&mut out, "pg_workflow_queue_ready", "Activities claimable now.", &per_queue(&|q| q.ready as f64));
    family(
        &mut out,
        "pg_workflow_queue_delayed",
        "Activities waiting for a backoff or a start time.",
        &per_queue(&|q| q.delayed as f64),
    );
    family(&mut out, "pg_workflow_queue_running", "Activities claimed by a worker.", &per_queue(&|q| q.running as f64));
    family(
        &mut out,
        "pg_workflow_queue_expired_leases",
        "Running activities whose lease expired and that the dispatcher has not moved yet.",
        &per_queue(&|q| q.expired_leases as f64),
    );
    family(
        &mut out,
        "pg_workflow_queue_oldest_ready_seconds",
        "How long the oldest claimable activity has waited.",
        &per_queue(&|q| q.oldest_ready_age.map_or(0.0, |i| i.as_micros() as f64 / 1e6)),
    );
    let mut attempts = Vec::new();
    for q in &queues {
        let queue = label(&q.queue);
        for (window, completed, failed) in
            [("1m", q.completed_last_minute, q.failed_last_minute), ("1h", q.completed_last_hour, q.failed_last_hour)]
        {
            attempts.push((format!("queue=\"{queue}\",outcome=\"completed\",window=\"{window}\""), completed as f64));
            attempts.push((format!("queue=\"{queue}\",outcome=\"failed\",window=\"{window}\""), failed as f64));
        }
    }
    family(&mut out, "pg_workflow_attempts", "Attempts that ended in the window, by outcome.", &attempts);
    let mut executions = Vec::new();
    for row in run(client, &EXECUTION_COUNTS, &[arg(caller.tenant.as_deref())])? {
        let (workflow_type, status, tenant): (Option<String>, Option<String>, Option<String>) =
            (row.get(1)?, row.get(2)?, row.get(3)?);
        executions.push((
            format!(
                "workflow_type=\"{}\",status=\"{}\",tenant=\"{}\"",
                label(&workflow_type.unwrap_or_default()),
                label(&status.unwrap_or_default()),
                label(&tenant.unwrap_or_default())
            ),
            row.get::<i64>(4)?.unwrap_or(0) as f64,
        ));
    }
    family(
        &mut out,
        "pg_workflow_executions",
        "Executions pending or running now, and those that ended in the last hour, by status.",
        &executions,
    );
    Ok(out)
}

//! `workflow_status`: the execution and every step, including ones not started yet.

use super::arg;
use super::plan::{run, Statement};
use super::rows;
use super::tenancy::Caller;
use crate::error::{Result, WorkflowError};
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;
use pgrx::{JsonB, Uuid};
use serde_json::{json, Value};

static STATUS: Statement = Statement {
    sql: "SELECT jsonb_build_object( \
            'id', e.id, 'workflow_type', e.workflow_type, 'definition_version', e.definition_version, \
            'status', e.status, 'idempotency_key', e.idempotency_key, 'input', e.input, 'output', e.output, \
            'error', e.error, 'queue', e.queue, 'priority', e.priority, 'labels', e.labels, \
            'tenant_id', e.tenant_id, 'parent_id', e.parent_id, 'parent_step', e.parent_step, \
            'created_at', e.created_at, 'started_at', e.started_at, 'finished_at', e.finished_at, \
            'deadline', e.deadline, 'ready_at', e.ready_at, 'compensation', e.compensation, \
            'concurrency_key', e.concurrency_key, \
            'waiting_for', CASE WHEN e.status <> 'pending' THEN NULL \
                WHEN e.started_at IS NOT NULL THEN 'start_time' \
                WHEN EXISTS (SELECT FROM @extschema@.workflow_paused_type p WHERE p.workflow_type = e.workflow_type) \
                    THEN 'paused_workflow_type' \
                ELSE 'concurrency_key' END, \
            'steps', coalesce((SELECT jsonb_agg(jsonb_build_object( \
                'step_key', a.step_key, 'kind', a.kind, 'activity_type', a.activity_type, 'status', a.status, \
                'attempt', a.attempt, 'max_attempts', a.max_attempts, 'output', a.output, 'error', a.error, \
                'worker_id', a.worker_id, 'scheduled_at', a.scheduled_at, 'started_at', a.started_at, \
                'finished_at', a.finished_at, 'lease_expires_at', a.lease_expires_at, \
                'cancel_requested', a.cancel_requested, 'heartbeat', a.heartbeat, \
                'waiting_for', CASE \
                    WHEN a.status = 'scheduled' AND a.scheduled_at = 'infinity' AND a.concurrency_key IS NOT NULL \
                        THEN jsonb_build_object('reason', 'concurrency_key', 'key', a.concurrency_key) \
                    WHEN q.queue IS NULL THEN NULL \
                    WHEN q.paused THEN jsonb_build_object('reason', 'queue_paused', 'queue', q.queue) \
                    WHEN q.max_running <= (SELECT count(*) FROM (SELECT FROM @extschema@.workflow_activity r \
                            WHERE r.queue = q.queue AND r.status = 'running' AND r.kind = 'task' LIMIT q.max_running) n) \
                        THEN jsonb_build_object('reason', 'queue_concurrency_limit', 'queue', q.queue, \
                                                'max_running', q.max_running) \
                    WHEN least(q.tokens + extract(epoch FROM now() - q.refilled_at) * 1000000 * q.rate_count \
                               / q.rate_per_us, q.burst) < 1 \
                        THEN jsonb_build_object('reason', 'queue_rate_limit', 'queue', q.queue, \
                            'next_claim_at', q.refilled_at + (1 - q.tokens) * q.rate_per_us / q.rate_count \
                                             * interval '1 microsecond') \
                    END, \
                'attempts', (SELECT coalesce(jsonb_agg(jsonb_build_object( \
                    'attempt', t.attempt, 'activity_id', t.activity_id, 'worker_id', t.worker_id, \
                    'started_at', t.started_at, 'finished_at', t.finished_at, 'outcome', t.outcome, \
                    'error', t.error, 'heartbeat', t.heartbeat) ORDER BY t.finished_at, t.attempt), '[]'::jsonb) \
                  FROM @extschema@.workflow_attempt t WHERE t.execution_id = e.id AND t.step_key = a.step_key)) \
                ORDER BY a.created_at, a.step_key) \
              FROM @extschema@.workflow_activity a \
              LEFT JOIN @extschema@.workflow_queue q \
                ON q.queue = a.queue AND a.status = 'scheduled' AND a.kind = 'task' AND a.scheduled_at <= now() \
              WHERE a.execution_id = e.id), '[]'::jsonb)) \
          FROM @extschema@.workflow_execution e WHERE e.id = $1 AND ($2::text IS NULL OR e.tenant_id = $2)",
    args: &[UUIDOID, TEXTOID],
};

/// `workflow_status`; another tenant's execution does not exist for `caller`.
pub fn status(client: &mut SpiClient<'_>, caller: &Caller, id: Uuid) -> Result<Value> {
    let row = run(client, &STATUS, &[arg(id), arg(caller.tenant.as_deref())])?
        .next()
        .ok_or_else(|| WorkflowError::not_found(format!("workflow execution {id} does not exist")))?;
    let mut status = row.get::<JsonB>(1)?.map(|j| j.0).unwrap_or(Value::Null);
    // Declared steps without a row yet are listed as pending, in definition order.
    let definition = rows::read_execution(client, id, None)?.definition;
    if let (Some(def), Some(steps)) = (definition, status.get_mut("steps").and_then(Value::as_array_mut)) {
        for step in &def.steps {
            let started = steps.iter().any(|s| s.get("step_key").and_then(Value::as_str) == Some(step.name.as_str()));
            if !started {
                steps.push(json!({
                    "step_key": step.name, "kind": step.kind.name(), "status": "pending",
                    "depends_on": step.depends_on, "attempt": 0,
                }));
            }
        }
    }
    Ok(status)
}

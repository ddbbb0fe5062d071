//! The NOTIFY statements the engine sends (prepared like every engine statement): the
//! dispatcher's, and `workflow_dispatch()`'s without the preload.

use super::arg;
use super::plan::{run, Statement};
use crate::error::Result;
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;

static SEND: Statement = Statement {
    sql: "SELECT pg_catalog.pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS t(c, p)",
    args: &[TEXTARRAYOID, TEXTARRAYOID],
};
// Every queue with claimable work: after events were lost to a full mailbox, and from
// workflow_dispatch() without the preload (where a retry's backoff ending is announced
// by nobody else). The distinct queues are read by skipping through the claim index
// (one probe per queue, however long the backlog), then each is checked for due work.
static READY_QUEUES: Statement = Statement {
    sql: "WITH RECURSIVE q AS ( \
            (SELECT queue FROM @extschema@.workflow_activity \
             WHERE status = 'scheduled' AND kind = 'task' ORDER BY queue LIMIT 1) \
            UNION ALL \
            SELECT (SELECT a.queue FROM @extschema@.workflow_activity a \
                    WHERE a.status = 'scheduled' AND a.kind = 'task' AND a.queue > q.queue ORDER BY a.queue LIMIT 1) \
            FROM q WHERE q.queue IS NOT NULL) \
          SELECT pg_catalog.pg_notify('workflow_activity_ready', q.queue) FROM q \
          WHERE q.queue IS NOT NULL AND EXISTS (SELECT FROM @extschema@.workflow_activity a \
            WHERE a.status = 'scheduled' AND a.kind = 'task' AND a.queue = q.queue AND a.scheduled_at <= now())",
    args: &[],
};

// Client-driven executions ready for a replay and not in anyone's turn (without the
// preload, a retry's backoff ending is announced by nobody else). Oldest first, bounded.
static READY_EXECUTIONS: Statement = Statement {
    sql: "SELECT pg_catalog.pg_notify('workflow_execution_ready', id::text) FROM ( \
            SELECT id FROM @extschema@.workflow_execution \
            WHERE ready_at <= now() AND status = 'running' AND definition_version IS NULL \
              AND (replay_lease_expires_at IS NULL OR replay_lease_expires_at <= now()) \
            ORDER BY ready_at LIMIT $1) r",
    args: &[pgrx::pg_sys::BuiltinOid::INT4OID],
};

/// Notifies `workflow_execution_ready` for up to `limit` client-driven executions that
/// wait for a replay.
pub fn announce_ready_executions(client: &mut SpiClient<'_>, limit: i32) -> Result<usize> {
    Ok(run(client, &READY_EXECUTIONS, &[arg(limit)])?.len())
}

/// Notifies `workflow_activity_ready` for every queue with claimable work; returns how many.
pub fn announce_ready_queues(client: &mut SpiClient<'_>) -> Result<usize> {
    Ok(run(client, &READY_QUEUES, &[])?.len())
}

pub fn send(client: &mut SpiClient<'_>, channels: Vec<String>, payloads: Vec<String>, all_queues: bool) -> Result<()> {
    if all_queues {
        announce_ready_queues(client)?;
    }
    if !channels.is_empty() {
        run(client, &SEND, &[arg(channels), arg(payloads)])?;
    }
    Ok(())
}

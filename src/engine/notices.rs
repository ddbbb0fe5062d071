//! The NOTIFY statements the dispatcher sends (prepared like every engine statement).

use super::arg;
use super::plan::{run, Statement};
use crate::error::Result;
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;

static SEND: Statement = Statement {
    sql: "SELECT pg_catalog.pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS t(c, p)",
    args: &[TEXTARRAYOID, TEXTARRAYOID],
};
// After events were lost to a full mailbox: announce every queue with claimable work.
static ALL_QUEUES: Statement = Statement {
    sql: "SELECT pg_catalog.pg_notify('workflow_activity_ready', queue) FROM (SELECT DISTINCT queue \
          FROM @extschema@.workflow_activity WHERE status = 'scheduled' AND kind = 'task' AND scheduled_at <= now()) q",
    args: &[],
};

pub fn send(client: &mut SpiClient<'_>, channels: Vec<String>, payloads: Vec<String>, all_queues: bool) -> Result<()> {
    if all_queues {
        run(client, &ALL_QUEUES, &[])?;
    }
    if !channels.is_empty() {
        run(client, &SEND, &[arg(channels), arg(payloads)])?;
    }
    Ok(())
}

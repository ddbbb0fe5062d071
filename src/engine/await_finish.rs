//! `workflow_await`: waits for an execution to finish, interruptibly (cancel and
//! statement_timeout work), checking with a fresh snapshot every few milliseconds.
//! It takes no locks; the calling statement's own snapshot is the only one it holds.

use super::plan::{run, Statement};
use super::tenancy::Caller;
use super::{arg, status};
use crate::error::{Result, WorkflowError};
use pgrx::datum::Interval;
use pgrx::pg_sys;
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::{Spi, Uuid};
use serde_json::Value;
use std::time::{Duration, Instant};

static FINISHED: Statement = Statement {
    sql: "SELECT status IN ('completed', 'failed', 'cancelled') FROM @extschema@.workflow_execution \
          WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)",
    args: &[UUIDOID, TEXTOID],
};

const POLL: Duration = Duration::from_millis(5);

pub fn await_finish(caller: &Caller, id: Uuid, timeout: Interval) -> Result<Value> {
    if timeout.months() != 0 || timeout.as_micros() < 0 {
        return Err(WorkflowError::invalid(
            "timeout must be a non-negative interval without months, such as '30 seconds'",
        ));
    }
    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        return Err(WorkflowError::conflict(
            "workflow_await needs READ COMMITTED: a snapshot transaction would never see the execution finish",
        ));
    }
    let deadline = Instant::now() + Duration::from_micros(timeout.as_micros() as u64);
    loop {
        let finished = Spi::connect_mut(|c| -> Result<Option<bool>> {
            Ok(run(c, &FINISHED, &[arg(id), arg(caller.tenant.as_deref())])?
                .next()
                .and_then(|r| r.get::<bool>(1).ok().flatten()))
        })?;
        match finished {
            None => return Err(WorkflowError::not_found(format!("workflow execution {id} does not exist"))),
            Some(true) => break,
            Some(false) if Instant::now() >= deadline => break,
            Some(false) => unsafe {
                pg_sys::WaitLatch(
                    pg_sys::MyLatch,
                    (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
                    POLL.as_millis() as i64,
                    pg_sys::PG_WAIT_EXTENSION,
                );
                pg_sys::ResetLatch(pg_sys::MyLatch);
                pgrx::check_for_interrupts!();
            },
        }
    }
    Spi::connect_mut(|c| status::status(c, caller, id))
}

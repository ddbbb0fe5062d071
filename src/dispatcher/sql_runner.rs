//! The sql step runner of one database: started by its dispatcher when sql steps are
//! due, it runs them one transaction each until none is left, then exits. A long step
//! delays only the steps queued behind it, never the dispatcher's timers.

use super::{connect, database_oid, guarded};
use crate::engine::sql_step;
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, DynamicBackgroundWorker, SignalWakeFlags};
use pgrx::pg_sys;
use pgrx::prelude::*;

pub fn start(db: pg_sys::Oid) -> Option<DynamicBackgroundWorker> {
    BackgroundWorkerBuilder::new("pg_workflow sql runner")
        .set_type("pg_workflow sql runner")
        .set_library("pg_workflow")
        .set_function("pg_workflow_sql_runner_main")
        .set_argument(Some(pg_sys::Datum::from(db.to_u32())))
        .enable_spi_access()
        .load_dynamic()
        .ok()
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_workflow_sql_runner_main(arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    connect(database_oid(arg));
    while !BackgroundWorker::sigterm_received() {
        // Each step commits on its own: its effects and its completion together.
        let ran = guarded("sql step", || {
            Spi::connect_mut(|c| {
                let next = sql_step::due(c, 1)?;
                match next.first() {
                    Some(id) => sql_step::run_one(c, *id).map(|_| true),
                    None => Ok(false),
                }
            })
            .unwrap_or_else(|e| {
                pgrx::warning!("pg_workflow: sql step: {e}");
                false
            })
        });
        if ran != Some(true) {
            break;
        }
    }
}

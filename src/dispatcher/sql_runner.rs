//! The sql step runner of one database: started by its dispatcher when sql steps are
//! due, it runs them one transaction each until none is left, then exits. A long step
//! delays only the steps queued behind it, never the dispatcher's timers.
//!
//! SIGTERM (`pg_terminate_backend`, fast shutdown, its dispatcher leaving) is handled by
//! Postgres' own `die`, as in a normal backend: the running statement is interrupted at
//! its next interrupt check, the transaction (the step's effects and its completion) is
//! rolled back, and the step stays due for the next runner.

use super::{connect, database_oid, guarded};
use crate::engine::sql_step;
use pgrx::bgworkers::{BackgroundWorkerBuilder, DynamicBackgroundWorker};
use pgrx::pg_sys;
use pgrx::prelude::*;

pub fn start(db: pg_sys::Oid) -> Option<DynamicBackgroundWorker> {
    BackgroundWorkerBuilder::new("pg_workflow sql runner")
        .set_type("pg_workflow sql runner")
        .set_library("pg_workflow")
        .set_function("pg_workflow_sql_runner_main")
        .set_argument(Some(pg_sys::Datum::from(db.to_u32())))
        .enable_spi_access()
        // The postmaster sets the dispatcher's latch when the runner starts and exits.
        .set_notify_pid(unsafe { pg_sys::MyProcPid })
        .load_dynamic()
        .ok()
}

extern "C-unwind" {
    /// Postgres' SIGTERM handler of normal backends (tcop/postgres.c), itself: pgrx's
    /// `pg_sys::die` is a Rust wrapper, which a signal handler must not be.
    #[link_name = "die"]
    fn postgres_die(signal: std::ffi::c_int);
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_workflow_sql_runner_main(arg: pg_sys::Datum) {
    unsafe {
        #[cfg(not(feature = "pg18"))]
        pg_sys::pqsignal(pg_sys::SIGTERM as i32, Some(postgres_die));
        #[cfg(feature = "pg18")]
        pg_sys::pqsignal_be(pg_sys::SIGTERM as i32, Some(postgres_die));
        pg_sys::BackgroundWorkerUnblockSignals();
    }
    let db = database_oid(arg);
    connect(db);
    if crate::wake::is_held(db.to_u32()) {
        return; // a DROP DATABASE (or the like) started while the postmaster started us
    }
    loop {
        // A SIGTERM between steps ends the process here (FATAL, nothing half done).
        pgrx::check_for_interrupts!();
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

//! The background worker (architecture: Processes and the wake-up path): a launcher that
//! keeps one dispatcher per database with the extension, dispatchers that sleep until
//! something is due or a backend wakes them, and per-database runners for `sql` steps,
//! so a long step never stalls dispatch.
//!
//! Every process here works in short transactions and holds none while it sleeps.

mod database_ddl;
mod launcher;
mod notify;
mod sql_runner;
mod worker;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime};
use pgrx::pg_sys;
use pgrx::prelude::PgTryBuilder;
use std::time::Duration;

/// Registers the launcher, and the hook that makes dispatchers leave a database that a
/// statement needs alone; called from `_PG_init` while preloading.
pub fn register() {
    database_ddl::install();
    BackgroundWorkerBuilder::new("pg_workflow launcher")
        .set_type("pg_workflow launcher")
        .set_library("pg_workflow")
        .set_function("pg_workflow_launcher_main")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

/// Runs `body` in a transaction; an ERROR is logged and the transaction rolled back
/// instead of taking the worker down. None if it failed.
fn guarded<R>(what: &str, body: impl FnOnce() -> R + std::panic::UnwindSafe + std::panic::RefUnwindSafe) -> Option<R> {
    PgTryBuilder::new(|| Some(BackgroundWorker::transaction(body)))
        .catch_others(|e| {
            unsafe { pg_sys::AbortCurrentTransaction() };
            pgrx::warning!("pg_workflow: {what} failed: {e:?}");
            None
        })
        .execute()
}

/// Reloads the configuration after SIGHUP.
fn reload_if_asked() {
    if BackgroundWorker::sighup_received() {
        unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
    }
}

fn database_oid(arg: pg_sys::Datum) -> pg_sys::Oid {
    pg_sys::Oid::from(arg.value() as u32)
}

/// Connects a worker to its database with the engine's pinned search_path for the whole
/// session: a database-level `SET search_path` must not reach the superuser's statements.
/// A short deadlock_timeout makes a background process, not the user's transaction (a
/// DROP EXTENSION, say), the one that notices a deadlock and gives way; it retries later.
fn connect(db: pg_sys::Oid) {
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(db), None);
    crate::engine::privileges::set_search_path(pg_sys::GucAction::GUC_ACTION_SET);
    crate::gucs::set_postgres_setting(
        c"deadlock_timeout",
        c"100ms",
        pg_sys::GucContext::PGC_SUSET,
        pg_sys::GucAction::GUC_ACTION_SET,
        pgrx::PgLogLevel::WARNING,
    );
}

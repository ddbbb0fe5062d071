//! A dispatcher: one per database with the extension. Each loop it runs a pass of due
//! work, hands due sql steps to its runner, enforces retention, turns the mailbox into
//! NOTIFYs, and sleeps until the next due time, `workflow.max_sleep`, or a wake-up.

use super::notify::Notifier;
use super::{connect, database_oid, guarded, reload_if_asked, sql_runner};
use crate::engine::dispatch;
use crate::engine::extension::LIBRARY_VERSION;
use crate::gucs;
use crate::model::interval;
use crate::wake;
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerStatus, DynamicBackgroundWorker, SignalWakeFlags};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::time::{Duration, Instant};

/// The version of the extension's SQL objects in this database, if it exists.
fn extension_version() -> Option<String> {
    guarded("looking for the extension", || {
        // Before the first statement of the engine's: its schema lookup needs the extension.
        Spi::get_one::<String>("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_workflow'")
            .ok()
            .flatten()
    })
    .flatten()
}

/// What one pass found.
struct Pass {
    /// Microseconds until the next due item, if any.
    next_due: Option<i64>,
    sql_due: bool,
    /// More work of a kind than one pass may move: go again at once.
    busy: bool,
}

/// One pass. While this dispatcher's runner is alive, due sql steps are its work: they
/// do not make the dispatcher's next pass due (a step running for minutes stays
/// 'scheduled' until it commits), and the runner's exit wakes the dispatcher.
fn run_pass(runner_alive: bool) -> Option<Pass> {
    let batch = gucs::BATCH_SIZE.get();
    guarded("dispatch pass", || {
        Spi::connect_mut(|c| -> crate::error::Result<Pass> {
            let moved = dispatch::pass(c, batch)?;
            let mut busy = moved >= batch;
            if let Some(text) = gucs::retention() {
                match interval::parse_text(&text) {
                    Ok(keep) => busy |= dispatch::purge(c, keep, batch)? >= batch,
                    Err(e) => pgrx::warning!("pg_workflow: workflow.retention {e}; nothing is deleted"),
                }
            }
            Ok(Pass { next_due: dispatch::next_due(c, !runner_alive)?, sql_due: dispatch::sql_due(c)?, busy })
        })
        .map_err(|e| pgrx::warning!("pg_workflow: dispatch pass: {e}"))
        .ok()
    })
    .flatten()
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_workflow_dispatcher_main(arg: pg_sys::Datum) {
    let db = database_oid(arg);
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    connect(db);
    if wake::is_held(db.to_u32()) {
        return; // a DROP DATABASE (or the like) started before we got here
    }
    if !wake::take_slot(db.to_u32()) {
        pgrx::warning!("pg_workflow: more than {} databases; no dispatcher for database {db:?}", wake::MAX_DATABASES);
        return;
    }
    if extension_version().is_none() {
        wake::leave_slot(db.to_u32(), true);
        return;
    }
    pgrx::log!("pg_workflow: dispatcher started");
    let mut notifier = Notifier::default();
    let mut runner: Option<DynamicBackgroundWorker> = None;
    let max_sleep = || Duration::from_millis(gucs::MAX_SLEEP_MS.get().max(10) as u64);
    // A pass runs when something is due or a transaction changed timers; a commit that
    // only made work claimable costs the dispatcher a NOTIFY, not a pass.
    let mut next_pass = Instant::now();
    let mut told_outdated = false;
    loop {
        reload_if_asked();
        if runner.as_ref().is_some_and(|r| !is_alive(r)) {
            // It ran every step that was due, or died: see whether more are.
            runner = None;
            next_pass = Instant::now();
        }
        let drained = wake::drain(db.to_u32());
        if drained.held {
            // A statement needs this database to itself (DROP DATABASE, ...): leave, as a
            // backend of a database being dropped does, and let the launcher decide when
            // to come back. (What was drained is for a database on its way out.)
            pgrx::log!("pg_workflow: dispatcher leaving: the database is being dropped, copied, renamed or moved");
            break;
        }
        let mut wake_in = max_sleep();
        if gucs::ENABLED.get() {
            if drained.timers_changed || Instant::now() >= next_pass {
                let Some(version) = extension_version() else {
                    stop_runner(runner.take());
                    wake::leave_slot(db.to_u32(), true); // DROP EXTENSION: the launcher probes again later
                    return;
                };
                let mut until_next = max_sleep();
                // A new library under old SQL objects (between installing a release and
                // ALTER EXTENSION UPDATE): wait, rather than fail every pass.
                let current = version == LIBRARY_VERSION;
                if !current && !told_outdated {
                    pgrx::log!("pg_workflow: waiting for ALTER EXTENSION pg_workflow UPDATE (objects {version}, library {LIBRARY_VERSION})");
                }
                told_outdated = !current;
                let pass = if current { run_pass(runner.is_some()) } else { None };
                match pass {
                    Some(pass) => {
                        if pass.sql_due && runner.is_none() {
                            runner = sql_runner::start(db);
                            if runner.is_none() {
                                // No background worker slot free: try again in a while
                                // rather than at once.
                                until_next = Duration::from_millis(100);
                            }
                        }
                        if pass.busy {
                            until_next = Duration::ZERO;
                        } else if let Some(us) = pass.next_due {
                            until_next = until_next.min(Duration::from_micros(us.max(0) as u64));
                        }
                    }
                    None => until_next = Duration::from_secs(1),
                }
                next_pass = Instant::now() + until_next;
            }
            wake_in = next_pass.saturating_duration_since(Instant::now());
            if let Some(us) = notifier.flush(&drained.events, drained.overflowed) {
                wake_in = wake_in.min(Duration::from_micros(us.max(0) as u64));
            }
        }
        if !BackgroundWorker::wait_latch(Some(wake_in.max(Duration::from_millis(1)))) {
            break;
        }
    }
    stop_runner(runner.take());
    wake::leave_slot(db.to_u32(), false);
}

/// Whether the runner is running or about to: the postmaster has not started a worker
/// it was asked for yet. Counting that as gone started a second runner, which queued
/// behind the first's step, and left one the dispatcher no longer knew of (it then
/// kept a DROP DATABASE waiting).
fn is_alive(runner: &DynamicBackgroundWorker) -> bool {
    matches!(runner.pid(), Ok(_) | Err(BackgroundWorkerStatus::NotYetStarted))
}

/// Stops this database's sql runner, if one runs or is about to: its step is rolled
/// back and runs again when a dispatcher is back. (The postmaster does not start a
/// worker asked to terminate before it started.)
fn stop_runner(runner: Option<DynamicBackgroundWorker>) {
    if let Some(runner) = runner {
        let _ = runner.terminate();
    }
}

//! The launcher: lists databases, and keeps a dispatcher running in each one that has
//! the extension (a dispatcher that finds none exits, and is tried again later, or at
//! once when CREATE EXTENSION commits anywhere).

use super::{guarded, reload_if_asked};
use crate::gucs;
use crate::wake::{self, MAILBOX};
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, DynamicBackgroundWorker, SignalWakeFlags};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a database without the extension is left alone before it is probed again.
const PROBE_INTERVAL: Duration = Duration::from_secs(10);
/// How often the list of databases is read.
const LIST_INTERVAL: Duration = Duration::from_secs(5);

enum Dispatcher {
    Running(DynamicBackgroundWorker),
    /// Exited at this time; `idle` if because the extension is not there.
    Stopped {
        at: Instant,
        idle: bool,
    },
}

fn list_databases() -> Vec<(pg_sys::Oid, String)> {
    let allowed = gucs::databases();
    guarded("listing databases", || {
        Spi::connect(|c| {
            c.select(
                "SELECT oid, datname::text FROM pg_catalog.pg_database WHERE datallowconn AND NOT datistemplate",
                None,
                &[],
            )
            .map(|rows| {
                rows.filter_map(|r| Some((r.get::<pg_sys::Oid>(1).ok()??, r.get::<String>(2).ok()??)))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
        })
    })
    .unwrap_or_default()
    .into_iter()
    .filter(|(_, name)| allowed.as_ref().is_none_or(|list| list.contains(name)))
    .collect()
}

fn start_dispatcher(db: pg_sys::Oid, name: &str) -> Option<DynamicBackgroundWorker> {
    BackgroundWorkerBuilder::new(&format!("pg_workflow dispatcher {name}"))
        .set_type("pg_workflow dispatcher")
        .set_library("pg_workflow")
        .set_function("pg_workflow_dispatcher_main")
        .set_argument(Some(pg_sys::Datum::from(db.to_u32())))
        .enable_spi_access()
        .set_notify_pid(unsafe { pg_sys::MyProcPid })
        .load_dynamic()
        .ok()
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_workflow_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(Some("postgres"), None);
    MAILBOX.exclusive().launcher_pid = unsafe { pg_sys::MyProcPid };
    let mut dispatchers: HashMap<pg_sys::Oid, Dispatcher> = HashMap::new();
    let mut databases = Vec::new();
    let mut listed: Option<Instant> = None;
    loop {
        reload_if_asked();
        let probe_now = std::mem::take(&mut MAILBOX.exclusive().probe_requested);
        if probe_now || listed.is_none_or(|t| t.elapsed() >= LIST_INTERVAL) {
            databases = list_databases();
            listed = Some(Instant::now());
        }
        // Stop dispatchers of databases that went away or were excluded, and forget
        // what the mailbox still holds for them.
        dispatchers.retain(|db, d| {
            let keep = databases.iter().any(|(oid, _)| oid == db);
            if !keep {
                if let Dispatcher::Running(handle) =
                    std::mem::replace(d, Dispatcher::Stopped { at: Instant::now(), idle: true })
                {
                    let _ = handle.terminate();
                }
                wake::forget_database(db.to_u32());
            }
            keep
        });
        for (db, name) in &databases {
            let state = dispatchers.remove(db);
            let next = match state {
                Some(Dispatcher::Running(handle)) => match handle.pid() {
                    Ok(_) => Dispatcher::Running(handle),
                    Err(pgrx::bgworkers::BackgroundWorkerStatus::NotYetStarted) => Dispatcher::Running(handle),
                    Err(_) => Dispatcher::Stopped { at: Instant::now(), idle: wake::take_exit_note(db.to_u32()) },
                },
                other => {
                    let due = match &other {
                        None => true,
                        Some(Dispatcher::Stopped { at, idle }) => {
                            let wait = if *idle { PROBE_INTERVAL } else { Duration::from_secs(1) };
                            probe_now || at.elapsed() >= wait
                        }
                        Some(Dispatcher::Running(_)) => false,
                    };
                    // A statement needs the database alone (DROP DATABASE, ...): stay away;
                    // and start nothing from a list that a probe request made stale.
                    let due = due && !wake::is_held(db.to_u32()) && !wake::probe_pending();
                    match (due, other) {
                        (true, _) => match start_dispatcher(*db, name) {
                            Some(handle) => Dispatcher::Running(handle),
                            None => Dispatcher::Stopped { at: Instant::now(), idle: false },
                        },
                        (false, Some(state)) => state,
                        (false, None) => Dispatcher::Stopped { at: Instant::now(), idle: false },
                    }
                }
            };
            dispatchers.insert(*db, next);
        }
        if !BackgroundWorker::wait_latch(Some(Duration::from_secs(1))) {
            break;
        }
    }
    MAILBOX.exclusive().launcher_pid = 0;
}

//! Settings (architecture: Processes and the wake-up path). All reload on SIGHUP; none
//! needs a restart. Limits are superuser-settable per session too (SUSET), so a test or a
//! migration can change them.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CString;

pub static ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static DATABASES: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static MAX_SLEEP_MS: GucSetting<i32> = GucSetting::<i32>::new(1000);
pub static BATCH_SIZE: GucSetting<i32> = GucSetting::<i32>::new(1000);
pub static RETENTION: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static MAX_PAYLOAD_BYTES: GucSetting<i32> = GucSetting::<i32>::new(16 * 1024 * 1024);
pub static QUIET_NOTIFY_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(10);
pub static PRELOADED: GucSetting<bool> = GucSetting::<bool>::new(false);

/// Sets one of Postgres' own settings from C strings (`set_config_option`): the
/// engine's pinned search_path, and the background processes' session settings.
/// `action` says for how long: `GUC_ACTION_SET` for the session, `GUC_ACTION_SAVE` until
/// the GUC nest level it was set in ends.
pub fn set_postgres_setting(
    name: &std::ffi::CStr,
    value: &std::ffi::CStr,
    context: pgrx::pg_sys::GucContext::Type,
    action: pgrx::pg_sys::GucAction::Type,
    on_failure: pgrx::PgLogLevel,
) {
    unsafe {
        pgrx::pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            context,
            pgrx::pg_sys::GucSource::PGC_S_SESSION,
            action,
            true,
            on_failure as i32,
            false,
        );
    }
}

pub fn register() {
    GucRegistry::define_bool_guc(
        c"workflow.enabled",
        c"Whether pg_workflow's dispatchers do their work; off pauses them.",
        c"",
        &ENABLED,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"workflow.databases",
        c"Comma-separated databases the launcher may start dispatchers in; empty means all.",
        c"",
        &DATABASES,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"workflow.max_sleep",
        c"Longest a dispatcher sleeps between passes when nothing is due.",
        c"",
        &MAX_SLEEP_MS,
        10,
        3_600_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"workflow.batch_size",
        c"Most items of each kind a dispatcher pass moves.",
        c"",
        &BATCH_SIZE,
        1,
        1_000_000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"workflow.retention",
        c"How long finished executions are kept (e.g. '30 days'); empty keeps them forever.",
        c"",
        &RETENTION,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"workflow.max_payload_bytes",
        c"Largest input, output, error or signal payload pg_workflow accepts, in bytes of JSON.",
        c"Larger payloads are rejected with SQLSTATE 54000; keep big data in tables and pass keys.",
        &MAX_PAYLOAD_BYTES,
        1024,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"workflow.quiet_notify_interval",
        c"With the preload: a transaction that makes work claimable sends its own NOTIFY when pg_workflow sent none in the cluster for this long; 0: the dispatcher always sends them.",
        c"Bounds how often a hot transaction takes the cluster-wide NOTIFY lock; the rest are relayed by the dispatcher, coalesced.",
        &QUIET_NOTIFY_INTERVAL_MS,
        0,
        3_600_000,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    // Read-only, readable by every role: how a worker knows whether workflow_claim_wait
    // is woken by commits (preloaded) or polls (not), and so whether to LISTEN instead.
    GucRegistry::define_bool_guc(
        c"workflow.preloaded",
        c"Whether pg_workflow was loaded by shared_preload_libraries (read-only).",
        c"",
        &PRELOADED,
        GucContext::Internal,
        GucFlags::default(),
    );
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        set_postgres_setting(
            c"workflow.preloaded",
            c"on",
            pgrx::pg_sys::GucContext::PGC_INTERNAL,
            pgrx::pg_sys::GucAction::GUC_ACTION_SET,
            pgrx::PgLogLevel::WARNING,
        );
    }
}

/// The quiet path's interval in microseconds (0: off).
pub fn quiet_notify_interval_us() -> i64 {
    QUIET_NOTIFY_INTERVAL_MS.get().max(0) as i64 * 1000
}

pub fn max_payload_bytes() -> usize {
    MAX_PAYLOAD_BYTES.get().max(0) as usize
}

fn text(setting: &GucSetting<Option<CString>>) -> Option<String> {
    setting.get().map(|c| c.to_string_lossy().trim().to_owned()).filter(|s| !s.is_empty())
}

/// The databases dispatchers may run in; None means all.
pub fn databases() -> Option<Vec<String>> {
    text(&DATABASES).map(|s| s.split(',').map(|d| d.trim().to_owned()).filter(|d| !d.is_empty()).collect())
}

pub fn retention() -> Option<String> {
    text(&RETENTION)
}

//! Statements that need a database to themselves: `DROP DATABASE`, `CREATE DATABASE ...
//! TEMPLATE x` (copying x), `ALTER DATABASE x RENAME` and `ALTER DATABASE x SET
//! TABLESPACE`. Postgres refuses them while another session is connected ("being
//! accessed by other users"), after waiting five seconds for it to leave. Postgres 15
//! does not ask background workers to leave, so this hook (in every backend, with the
//! preload) asks pg_workflow's dispatcher of that database to go, and the launcher to
//! stay away, before the statement runs; the dispatcher leaves within a latch wake-up,
//! well inside those five seconds. Users' test suites that create and drop a database
//! per test work without `WITH (FORCE)`.

use crate::wake;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{register_xact_callback, PgList, PgXactCallbackEvent};
use std::ffi::CStr;

/// How long a dispatcher stays away at most. The hold ends when the statement's
/// transaction does (these statements run in one of their own); this bounds it should
/// the backend die before.
const HOLD_SECONDS: i64 = 10;

static mut PREVIOUS: pg_sys::ProcessUtility_hook_type = None;

/// Installs the hook; called from `_PG_init` while preloading.
pub fn install() {
    unsafe {
        PREVIOUS = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

unsafe fn database_oid(name: *const std::ffi::c_char) -> Option<pg_sys::Oid> {
    if name.is_null() {
        return None;
    }
    let oid = pg_sys::get_database_oid(name, true);
    (oid != pg_sys::Oid::INVALID).then_some(oid)
}

/// The value of option `name` of a CREATE/ALTER DATABASE statement, if given.
unsafe fn option(options: *mut pg_sys::List, name: &str) -> Option<*mut pg_sys::DefElem> {
    PgList::<pg_sys::DefElem>::from_pg(options)
        .iter_ptr()
        .find(|d| !(**d).defname.is_null() && CStr::from_ptr((**d).defname).to_bytes() == name.as_bytes())
}

/// The database a statement needs to itself, if any.
unsafe fn target_of(stmt: *mut pg_sys::Node) -> Option<pg_sys::Oid> {
    if stmt.is_null() {
        return None;
    }
    match (*stmt).type_ {
        pg_sys::NodeTag::T_DropdbStmt => {
            let drop = stmt as *mut pg_sys::DropdbStmt;
            database_oid((*drop).dbname)
        }
        pg_sys::NodeTag::T_CreatedbStmt => {
            let create = stmt as *mut pg_sys::CreatedbStmt;
            let template = option((*create).options, "template")?;
            if (*template).arg.is_null() {
                return None;
            }
            let name = pg_sys::defGetString(template);
            database_oid(name)
        }
        pg_sys::NodeTag::T_RenameStmt => {
            let rename = stmt as *mut pg_sys::RenameStmt;
            if (*rename).renameType != pg_sys::ObjectType::OBJECT_DATABASE {
                return None;
            }
            database_oid((*rename).subname)
        }
        pg_sys::NodeTag::T_AlterDatabaseStmt => {
            let alter = stmt as *mut pg_sys::AlterDatabaseStmt;
            option((*alter).options, "tablespace")?;
            database_oid((*alter).dbname)
        }
        _ => None,
    }
}

// Postgres' own standard_ProcessUtility, called as C calls it: an ERROR in the
// statement then longjmps through the hook like through any C frame, untouched (pgrx's
// wrapper would turn it into a panic and re-raise it with a Rust backtrace as DETAIL).
// The hook's own frame holds nothing that needs dropping; its Rust parts run guarded.
extern "C-unwind" {
    #[cfg(not(feature = "pg13"))]
    #[link_name = "standard_ProcessUtility"]
    fn postgres_standard_process_utility(
        pstmt: *mut pg_sys::PlannedStmt,
        query: *const std::ffi::c_char,
        read_only_tree: bool,
        context: pg_sys::ProcessUtilityContext::Type,
        params: pg_sys::ParamListInfo,
        env: *mut pg_sys::QueryEnvironment,
        dest: *mut pg_sys::DestReceiver,
        qc: *mut pg_sys::QueryCompletion,
    );
    #[cfg(feature = "pg13")]
    #[link_name = "standard_ProcessUtility"]
    fn postgres_standard_process_utility(
        pstmt: *mut pg_sys::PlannedStmt,
        query: *const std::ffi::c_char,
        context: pg_sys::ProcessUtilityContext::Type,
        params: pg_sys::ParamListInfo,
        env: *mut pg_sys::QueryEnvironment,
        dest: *mut pg_sys::DestReceiver,
        qc: *mut pg_sys::QueryCompletion,
    );
}

#[cfg(not(feature = "pg13"))]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    before(pstmt);
    match PREVIOUS {
        Some(previous) => previous(pstmt, query, read_only_tree, context, params, env, dest, qc),
        None => postgres_standard_process_utility(pstmt, query, read_only_tree, context, params, env, dest, qc),
    }
}

#[cfg(feature = "pg13")]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query: *const std::ffi::c_char,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    before(pstmt);
    match PREVIOUS {
        Some(previous) => previous(pstmt, query, context, params, env, dest, qc),
        None => postgres_standard_process_utility(pstmt, query, context, params, env, dest, qc),
    }
}

/// Before the statement: holds the database it needs alone until its transaction ends.
/// Released at commit, a dropped database is gone from the launcher's next list (the
/// commit callback runs once the commit is visible), so no dispatcher is started for it;
/// released at abort, the dispatcher comes back to a database that is still there.
#[pg_guard]
unsafe extern "C-unwind" fn before(pstmt: *mut pg_sys::PlannedStmt) {
    let Some(db) = target_of((*pstmt).utilityStmt) else { return };
    let db = db.to_u32();
    wake::hold_database(db, HOLD_SECONDS);
    register_xact_callback(PgXactCallbackEvent::Commit, move || wake::release_database(db));
    register_xact_callback(PgXactCallbackEvent::Abort, move || wake::release_database(db));
}

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
use pgrx::PgList;
use std::ffi::CStr;

/// How long a dispatcher stays away from a database if the statement never says it is
/// done (it failed): long enough for dropdb's own five-second wait.
const HOLD_SECONDS: i64 = 10;

static mut PREVIOUS: pg_sys::ProcessUtility_hook_type = None;

/// Installs the hook; called from `_PG_init` while preloading.
pub fn install() {
    unsafe {
        PREVIOUS = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

/// What a statement does to a database that needs it alone (no database: INVALID).
#[derive(Clone, Copy)]
#[repr(C)]
struct Target {
    db: pg_sys::Oid,
    /// The database is gone once the statement succeeds.
    dropped: bool,
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

unsafe fn target_of(stmt: *mut pg_sys::Node) -> Option<Target> {
    if stmt.is_null() {
        return None;
    }
    match (*stmt).type_ {
        pg_sys::NodeTag::T_DropdbStmt => {
            let drop = stmt as *mut pg_sys::DropdbStmt;
            Some(Target { db: database_oid((*drop).dbname)?, dropped: true })
        }
        pg_sys::NodeTag::T_CreatedbStmt => {
            let create = stmt as *mut pg_sys::CreatedbStmt;
            let template = option((*create).options, "template")?;
            if (*template).arg.is_null() {
                return None;
            }
            let name = pg_sys::defGetString(template);
            Some(Target { db: database_oid(name)?, dropped: false })
        }
        pg_sys::NodeTag::T_RenameStmt => {
            let rename = stmt as *mut pg_sys::RenameStmt;
            if (*rename).renameType != pg_sys::ObjectType::OBJECT_DATABASE {
                return None;
            }
            Some(Target { db: database_oid((*rename).subname)?, dropped: false })
        }
        pg_sys::NodeTag::T_AlterDatabaseStmt => {
            let alter = stmt as *mut pg_sys::AlterDatabaseStmt;
            option((*alter).options, "tablespace")?;
            Some(Target { db: database_oid((*alter).dbname)?, dropped: false })
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
    let target = before(pstmt);
    match PREVIOUS {
        Some(previous) => previous(pstmt, query, read_only_tree, context, params, env, dest, qc),
        None => postgres_standard_process_utility(pstmt, query, read_only_tree, context, params, env, dest, qc),
    }
    after(target);
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
    let target = before(pstmt);
    match PREVIOUS {
        Some(previous) => previous(pstmt, query, context, params, env, dest, qc),
        None => postgres_standard_process_utility(pstmt, query, context, params, env, dest, qc),
    }
    after(target);
}

/// Before the statement: which database it needs alone, and the hold on it.
#[pg_guard]
unsafe extern "C-unwind" fn before(pstmt: *mut pg_sys::PlannedStmt) -> Target {
    let target = target_of((*pstmt).utilityStmt).unwrap_or(Target { db: pg_sys::Oid::INVALID, dropped: false });
    if target.db != pg_sys::Oid::INVALID {
        wake::hold_database(target.db.to_u32(), HOLD_SECONDS);
    }
    target
}

/// Only reached when the statement succeeded; after an ERROR the hold runs out by itself.
#[pg_guard]
extern "C-unwind" fn after(target: Target) {
    if target.db != pg_sys::Oid::INVALID {
        wake::database_statement_done(target.db.to_u32(), !target.dropped);
    }
}

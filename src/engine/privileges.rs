//! Whose rights the engine's SQL runs with.
//!
//! The tables belong to the extension's owner (the owner of its objects: a superuser, the
//! bootstrap superuser in a trusted install) and nobody else gets write access: a role
//! granted `workflow_claim` can claim, but cannot `UPDATE workflow_activity` by hand.
//! So each API call switches to the owner for its table work, like a SECURITY DEFINER
//! function would, but in Rust, so that the caller's role is still known (it owns the
//! definitions it makes, and its tenant binding applies).
//!
//! Running as the owner makes the search_path an attack surface: a caller could put a
//! schema of its own ahead of pg_catalog and have the owner call its functions. The
//! path is pinned to `pg_catalog, pg_temp` (temp last: no temp table can shadow ours)
//! for the call, and the engine's SQL qualifies its own tables.

use super::extension;
use crate::error::Result;
use pgrx::pg_sys;
use std::ffi::CStr;

/// The search_path every statement of the engine is planned and run under.
pub const PINNED_SEARCH_PATH: &CStr = c"pg_catalog, pg_temp";

/// The role the current statement runs as (`current_user`).
pub fn current_role() -> pg_sys::Oid {
    unsafe { pg_sys::GetUserId() }
}

/// While alive: the extension's owner, with the pinned search_path. Dropped normally,
/// it restores both; when an ERROR unwinds through it, the (sub)transaction abort that
/// follows restores them, as for a SECURITY DEFINER function.
pub struct AsOwner {
    saved_user: pg_sys::Oid,
    saved_context: i32,
    guc_level: i32,
}

impl AsOwner {
    pub fn enter() -> Result<AsOwner> {
        let guc_level = unsafe { pg_sys::NewGUCNestLevel() };
        set_search_path(pg_sys::GucAction::GUC_ACTION_SAVE);
        let owner = match extension::owner() {
            Ok(owner) => owner,
            Err(e) => {
                unsafe { pg_sys::AtEOXact_GUC(true, guc_level) };
                return Err(e);
            }
        };
        let (mut saved_user, mut saved_context) = (pg_sys::Oid::INVALID, 0i32);
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
            // LOCAL_USERID_CHANGE: nothing inside may SET ROLE away from the owner.
            pg_sys::SetUserIdAndSecContext(owner, saved_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
        }
        Ok(AsOwner { saved_user, saved_context, guc_level })
    }
}

impl Drop for AsOwner {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return; // an ERROR: the abort restores user and GUCs
        }
        unsafe {
            pg_sys::SetUserIdAndSecContext(self.saved_user, self.saved_context);
            pg_sys::AtEOXact_GUC(true, self.guc_level);
        }
    }
}

/// Sets the pinned search_path: for a call (`GUC_ACTION_SAVE`, undone by AtEOXact_GUC)
/// or for the session (`GUC_ACTION_SET`, the dispatcher's own backends).
pub fn set_search_path(action: pg_sys::GucAction::Type) {
    set_search_path_to(PINNED_SEARCH_PATH, action);
}

fn set_search_path_to(path: &CStr, action: pg_sys::GucAction::Type) {
    let user_set = pg_sys::GucContext::PGC_USERSET;
    crate::gucs::set_postgres_setting(c"search_path", path, user_set, action, pgrx::PgLogLevel::ERROR);
}

/// Runs a user's SQL: with the database's default search_path (the one a new session
/// would have, not the engine's pinned one) followed by `pg_temp`, so that a temporary
/// table of the session that runs it (a `workflow_dispatch()` caller's) cannot stand in
/// for one of the step's tables; and with every GUC it sets undone
/// afterwards (`SET`, `set_config`, even without LOCAL), so that it leaves no trace in
/// the session that runs it. On an ERROR the subtransaction's abort undoes them.
pub fn with_user_gucs<T>(f: impl FnOnce() -> T) -> T {
    let level = unsafe { pg_sys::NewGUCNestLevel() };
    // The reset value of a built-in setting is never NULL.
    let default_path = unsafe { CStr::from_ptr(pg_sys::GetConfigOptionResetString(c"search_path".as_ptr())) };
    let default_path = default_path.to_string_lossy();
    let path = match default_path.trim() {
        "" => "pg_temp".to_owned(),
        listed => format!("{listed}, pg_temp"),
    };
    let path = std::ffi::CString::new(path).unwrap_or_else(|_| c"pg_temp".to_owned());
    set_search_path_to(&path, pg_sys::GucAction::GUC_ACTION_SAVE);
    let out = f();
    unsafe { pg_sys::AtEOXact_GUC(false, level) };
    out
}

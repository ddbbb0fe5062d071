//! The extension itself, as this backend sees it: its schema, the owner of its objects,
//! and whether its SQL objects are of this library's version (a new library under old
//! objects, before `ALTER EXTENSION pg_workflow UPDATE`, refuses to work). Looked up once
//! per backend.

use crate::error::{Result, WorkflowError};
use pgrx::pg_sys;
use pgrx::Spi;
use std::cell::RefCell;

thread_local! {
    /// The extension's schema (quoted) and the owner of its tables, looked up once per backend.
    static EXTENSION: RefCell<Option<(String, pg_sys::Oid)>> = const { RefCell::new(None) };
}

/// The version of this library; the SQL objects must be the same version.
pub const LIBRARY_VERSION: &str = env!("CARGO_PKG_VERSION");

fn extension() -> Result<(String, pg_sys::Oid)> {
    if let Some(found) = EXTENSION.with(|e| e.borrow().clone()) {
        return Ok(found);
    }
    // Fully qualified, whatever the caller's search_path is.
    let found: Option<(Option<String>, Option<pg_sys::Oid>, Option<String>)> = Spi::get_three(
        "SELECT pg_catalog.quote_ident(n.nspname)::pg_catalog.text, c.relowner, e.extversion \
         FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace \
         JOIN pg_catalog.pg_class c ON c.relnamespace OPERATOR(pg_catalog.=) e.extnamespace \
          AND c.relname OPERATOR(pg_catalog.=) 'workflow_execution' \
         WHERE e.extname OPERATOR(pg_catalog.=) 'pg_workflow'",
    )
    .map(|(s, o, v)| Some((s, o, v)))
    .or_else(|e| match e {
        pgrx::spi::SpiError::InvalidPosition => Ok(None),
        e => Err(e),
    })?;
    let Some((Some(schema), Some(owner), version)) = found else {
        return Err(WorkflowError::undefined("extension pg_workflow is not created in this database")
            .with_hint("run CREATE EXTENSION pg_workflow"));
    };
    let version = version.unwrap_or_default();
    if version != LIBRARY_VERSION {
        return Err(WorkflowError::conflict(format!(
            "pg_workflow's SQL objects in this database are version {version}, but the loaded library is {LIBRARY_VERSION}"
        ))
        .with_hint("run ALTER EXTENSION pg_workflow UPDATE"));
    }
    EXTENSION.with(|e| *e.borrow_mut() = Some((schema.clone(), owner)));
    Ok((schema, owner))
}

/// The quoted name of the schema the extension lives in.
pub fn schema() -> Result<String> {
    Ok(extension()?.0)
}

/// The role that owns the extension's tables and functions, whose rights the API runs
/// with. Not `pg_extension.extowner`: in a trusted install (a non-superuser ran CREATE
/// EXTENSION) the script ran as the bootstrap superuser, who owns the objects, while the
/// extension is owned by the role that created it, which gets the `owner` part instead.
pub fn owner() -> Result<pg_sys::Oid> {
    Ok(extension()?.1)
}

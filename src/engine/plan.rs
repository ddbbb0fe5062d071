//! Prepared statements, planned once per backend and kept for its lifetime.
//!
//! Statements are written with `@extschema@` in place of the extension's schema and
//! qualified at prepare time, so they work whatever the caller's search_path is and the
//! hot paths never re-parse or re-plan SQL.

use crate::error::{Result, WorkflowError};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::{self, PgOid};
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiTupleTable};
use pgrx::pg_sys::BuiltinOid;
use pgrx::Spi;
use std::cell::RefCell;
use std::collections::HashMap;

/// A statement and the types of its parameters.
pub struct Statement {
    pub sql: &'static str,
    pub args: &'static [BuiltinOid],
}

thread_local! {
    /// The extension's schema (quoted) and owner, looked up once per backend.
    static EXTENSION: RefCell<Option<(String, pg_sys::Oid)>> = const { RefCell::new(None) };
    static PLANS: RefCell<HashMap<usize, &'static OwnedPreparedStatement>> = RefCell::new(HashMap::new());
}

fn extension() -> Result<(String, pg_sys::Oid)> {
    if let Some(found) = EXTENSION.with(|e| e.borrow().clone()) {
        return Ok(found);
    }
    // Fully qualified, whatever the caller's search_path is.
    let found: Option<(Option<String>, Option<pg_sys::Oid>, Option<String>)> = Spi::get_three(
        "SELECT pg_catalog.quote_ident(n.nspname)::pg_catalog.text, e.extowner, e.extversion \
         FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace \
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

/// The version of this library; the SQL objects must be the same version.
pub const LIBRARY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The quoted name of the schema the extension lives in.
pub fn schema() -> Result<String> {
    Ok(extension()?.0)
}

/// The role that owns the extension and its tables.
pub fn owner() -> Result<pg_sys::Oid> {
    Ok(extension()?.1)
}

fn plan(client: &SpiClient<'_>, stmt: &'static Statement) -> Result<&'static OwnedPreparedStatement> {
    let key = stmt as *const Statement as usize;
    if let Some(p) = PLANS.with(|p| p.borrow().get(&key).copied()) {
        return Ok(p);
    }
    let sql = stmt.sql.replace("@extschema@", &schema()?);
    let oids: Vec<PgOid> = stmt.args.iter().map(|o| PgOid::BuiltIn(*o)).collect();
    let prepared = client.prepare_mut(sql.as_str(), &oids)?.keep();
    // Plans live as long as the backend; leaking gives them the 'static lifetime SPI wants.
    let prepared: &'static OwnedPreparedStatement = Box::leak(Box::new(prepared));
    PLANS.with(|p| p.borrow_mut().insert(key, prepared));
    Ok(prepared)
}

/// Forces generic plans while it lives. The engine's statements are planned once: left
/// to itself, the plan cache keeps choosing custom plans for some of them (those with
/// `$n IS NULL OR ...` filters) and re-plans on every call, which cost a sixth of the
/// CPU of a hot path. Restored on drop, so also when an ERROR unwinds through here.
struct GenericPlans(i32);

impl GenericPlans {
    fn force() -> GenericPlans {
        unsafe {
            let saved = pgrx::pg_sys::plan_cache_mode;
            pgrx::pg_sys::plan_cache_mode = pgrx::pg_sys::PlanCacheMode::PLAN_CACHE_MODE_FORCE_GENERIC_PLAN as i32;
            GenericPlans(saved)
        }
    }
}

impl Drop for GenericPlans {
    fn drop(&mut self) {
        unsafe { pgrx::pg_sys::plan_cache_mode = self.0 };
    }
}

/// Runs a statement (reading or writing) and returns its rows.
pub fn run<'conn>(
    client: &mut SpiClient<'conn>,
    stmt: &'static Statement,
    args: &[DatumWithOid<'_>],
) -> Result<SpiTupleTable<'conn>> {
    let prepared = plan(client, stmt)?;
    let _generic = GenericPlans::force();
    Ok(client.update(prepared, None, args)?)
}

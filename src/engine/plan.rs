//! Prepared statements, planned once per backend and kept for its lifetime.
//!
//! Statements are written with `@extschema@` in place of the extension's schema and
//! qualified at prepare time, so they work whatever the caller's search_path is and the
//! hot paths never re-parse or re-plan SQL.
//!
//! A row found by its key tests its state as `(status = 'running') IS TRUE`: the same
//! test (status is NOT NULL), in a form the planner cannot prove a partial index's
//! predicate from. Written plainly, `id = $1 AND status = 'running'` lets a plan made
//! under stale statistics (analyzed while nearly every execution had finished, or when
//! the tables were emptied) read a partial index of every open row, with `id = $1` as a
//! filter, instead of descending the primary key: a completion read 35,000 index entries
//! for one execution until the next ANALYZE. `pgrx-tests/plans.rs` makes such plans.

use super::extension;
use crate::error::{Result, WorkflowError};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::BuiltinOid;
use pgrx::pg_sys::{self, PgOid};
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiTupleTable};
use std::cell::RefCell;
use std::collections::HashMap;

/// A statement and the types of its parameters.
pub struct Statement {
    pub sql: &'static str,
    pub args: &'static [BuiltinOid],
}

thread_local! {
    static PLANS: RefCell<HashMap<usize, (&'static Statement, &'static OwnedPreparedStatement)>> =
        RefCell::new(HashMap::new());
}

fn plan(client: &SpiClient<'_>, stmt: &'static Statement) -> Result<&'static OwnedPreparedStatement> {
    let key = stmt as *const Statement as usize;
    if let Some((_, p)) = PLANS.with(|p| p.borrow().get(&key).copied()) {
        return Ok(p);
    }
    let sql = stmt.sql.replace("@extschema@", &extension::schema()?);
    let oids: Vec<PgOid> = stmt.args.iter().map(|o| PgOid::BuiltIn(*o)).collect();
    let prepared = client.prepare_mut(sql.as_str(), &oids)?.keep();
    // Plans live as long as the backend; leaking gives them the 'static lifetime SPI wants.
    let prepared: &'static OwnedPreparedStatement = Box::leak(Box::new(prepared));
    PLANS.with(|p| p.borrow_mut().insert(key, (stmt, prepared)));
    Ok(prepared)
}

/// The statements this backend has prepared so far (for the plan-shape test).
pub fn prepared_statements() -> Vec<&'static Statement> {
    PLANS.with(|p| p.borrow().values().map(|(s, _)| *s).collect())
}

/// `EXPLAIN (FORMAT JSON)` of the generic plan `run` would use for `stmt` under the
/// current statistics: the statement is prepared afresh and planned with the planner
/// settings `run` applies.
pub fn explain_generic(client: &mut SpiClient<'_>, stmt: &'static Statement) -> Result<serde_json::Value> {
    let sql = stmt.sql.replace("@extschema@", &extension::schema()?);
    let types: Vec<String> = stmt
        .args
        .iter()
        .map(|oid| unsafe {
            let name = pg_sys::format_type_be(PgOid::BuiltIn(*oid).value());
            std::ffi::CStr::from_ptr(name).to_string_lossy().into_owned()
        })
        .collect();
    let nulls = vec!["NULL"; types.len()];
    let (types, nulls) = if types.is_empty() {
        (String::new(), String::new())
    } else {
        (format!("({})", types.join(", ")), format!("({})", nulls.join(", ")))
    };
    client.update(&format!("PREPARE pg_workflow_explain {types} AS {sql}"), None, &[])?;
    let explained = {
        let _settings = EngineSettings::apply();
        client.update(&format!("EXPLAIN (FORMAT JSON) EXECUTE pg_workflow_explain {nulls}"), None, &[])
    };
    client.update("DEALLOCATE pg_workflow_explain", None, &[])?;
    let plan: Option<pgrx::Json> = explained?.first().get(1)?;
    plan.map(|j| j.0).ok_or_else(|| WorkflowError::internal("EXPLAIN returned no plan"))
}

/// The planner settings of the engine's statements, while it lives (restored on drop,
/// so also when an ERROR unwinds through here). Set as the planner's own variables,
/// not through the GUC machinery: a store each, on every hot-path call.
///
/// - Generic plans. The engine's statements are planned once: left to itself, the plan
///   cache keeps choosing custom plans for some of them (those with `$n IS NULL OR ...`
///   filters) and re-plans on every call, which cost a sixth of the CPU of a hot path.
/// - No sequential scans, hash joins or merge joins. Every engine statement reaches its
///   rows through an index by key (an id, an execution, a queue's head); a generic plan
///   is kept until the statistics change, and one made while the tables were small
///   (right after an ANALYZE of a new database) would otherwise hash-join a sequential
///   scan of every activity into each claim for as long as it is kept. With these off
///   the plan does not depend on how large the tables looked when it was made.
/// - No JIT. A scan of a small table without an index (the schedules, the queue
///   configurations) costs as much as a disabled plan node, far above `jit_above_cost`:
///   the dispatcher's pass spent a quarter of a second compiling one each time.
struct EngineSettings {
    plan_cache_mode: i32,
    jit_enabled: bool,
    enable_seqscan: bool,
    enable_hashjoin: bool,
    enable_mergejoin: bool,
}

impl EngineSettings {
    fn apply() -> EngineSettings {
        unsafe {
            let saved = EngineSettings {
                plan_cache_mode: pg_sys::plan_cache_mode,
                jit_enabled: pg_sys::jit_enabled,
                enable_seqscan: pg_sys::enable_seqscan,
                enable_hashjoin: pg_sys::enable_hashjoin,
                enable_mergejoin: pg_sys::enable_mergejoin,
            };
            pg_sys::plan_cache_mode = pg_sys::PlanCacheMode::PLAN_CACHE_MODE_FORCE_GENERIC_PLAN as i32;
            pg_sys::jit_enabled = false;
            pg_sys::enable_seqscan = false;
            pg_sys::enable_hashjoin = false;
            pg_sys::enable_mergejoin = false;
            saved
        }
    }
}

impl Drop for EngineSettings {
    fn drop(&mut self) {
        unsafe {
            pg_sys::plan_cache_mode = self.plan_cache_mode;
            pg_sys::jit_enabled = self.jit_enabled;
            pg_sys::enable_seqscan = self.enable_seqscan;
            pg_sys::enable_hashjoin = self.enable_hashjoin;
            pg_sys::enable_mergejoin = self.enable_mergejoin;
        }
    }
}

/// Runs a statement (reading or writing) and returns its rows.
pub fn run<'conn>(
    client: &mut SpiClient<'conn>,
    stmt: &'static Statement,
    args: &[DatumWithOid<'_>],
) -> Result<SpiTupleTable<'conn>> {
    let prepared = plan(client, stmt)?;
    let _settings = EngineSettings::apply();
    Ok(client.update(prepared, None, args)?)
}

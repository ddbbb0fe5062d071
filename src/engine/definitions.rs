//! Stored definitions: versioning on define, and a per-backend cache of parsed ones.
//!
//! A (name, version) row never changes, so a parsed definition can be cached for the
//! backend's life. The row's xmin is part of the key: a definition rolled back and
//! defined again (as tests do) gets a new xmin and is never served stale.

use super::arg;
use super::plan::{run, Statement};
use crate::error::{Result, WorkflowError};
use crate::model::definition::{self, Definition, StepKind};
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;
use pgrx::JsonB;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

pub const MAX_TYPE_NAME_LEN: usize = 200;

static LOCK_NAME: Statement = Statement {
    sql: "SELECT pg_catalog.pg_advisory_xact_lock(hashtext('pg_workflow.define'), hashtext($1))",
    args: &[TEXTOID],
};
static LATEST: Statement = Statement {
    sql: "SELECT version, definition = $2 FROM @extschema@.workflow_definition \
          WHERE name = $1 ORDER BY version DESC LIMIT 1",
    args: &[TEXTOID, JSONBOID],
};
static INSERT: Statement = Statement {
    sql: "INSERT INTO @extschema@.workflow_definition (name, version, definition, owner) \
          VALUES ($1, $2, $3, $4::oid::regrole)",
    args: &[TEXTOID, INT4OID, JSONBOID, OIDOID],
};
static CURRENT: Statement = Statement {
    sql: "SELECT d.version, d.xmin::text, \
                 EXISTS (SELECT FROM @extschema@.workflow_paused_type p WHERE p.workflow_type = $1) \
          FROM @extschema@.workflow_definition d \
          WHERE d.name = $1 ORDER BY d.version DESC LIMIT 1",
    args: &[TEXTOID],
};
static LOAD: Statement = Statement {
    sql: "SELECT definition FROM @extschema@.workflow_definition WHERE name = $1 AND version = $2",
    args: &[TEXTOID, INT4OID],
};

type Key = (String, i32, String);

thread_local! {
    static CACHE: RefCell<HashMap<Key, Rc<Definition>>> = RefCell::new(HashMap::new());
}

/// Checks a workflow type name (also used by `workflow_start`).
pub fn check_type_name(field: &str, name: Option<&str>) -> Result<String> {
    match name {
        None => Err(WorkflowError::invalid(format!("{field} must not be NULL; pass the workflow's name"))),
        Some(n) if n.trim().is_empty() => Err(WorkflowError::invalid(format!("{field} must not be empty"))),
        Some(n) if n.len() > MAX_TYPE_NAME_LEN => Err(WorkflowError::invalid(format!(
            "{field} is {} bytes long; at most {MAX_TYPE_NAME_LEN} are allowed",
            n.len()
        ))),
        Some(n) if n.chars().any(char::is_control) => {
            Err(WorkflowError::invalid(format!("{field} contains control characters; use printable text")))
        }
        Some(n) => Ok(n.to_owned()),
    }
}

/// Kinds the engine can run at this version; the validator accepts every kind the README lists.
fn check_supported(def: &Definition) -> Result<()> {
    for step in &def.steps {
        let unsupported = match (&step.kind, &step.map) {
            (StepKind::Task { .. }, _) | (_, None) => None,
            (_, Some(_)) => Some("map over a non-activity step"),
        };
        if let Some(what) = unsupported {
            return Err(WorkflowError::unsupported(format!(
                "step \"{}\": {what} is valid but not supported by this version of pg_workflow yet",
                step.name
            )));
        }
    }
    Ok(())
}

/// `workflow_define`: validates and stores; an identical definition keeps its version.
/// `owner` is the calling role, whose rights the definition's sql steps run with; `name`
/// was checked by the API (`check_type_name`).
pub fn define(client: &mut SpiClient<'_>, owner: pgrx::pg_sys::Oid, name: &str, definition: Value) -> Result<i32> {
    let parsed = definition::parse(&definition)
        .map_err(|e| WorkflowError::invalid(format!("invalid definition of workflow \"{name}\": {e}")))?;
    check_supported(&parsed)?;
    run(client, &LOCK_NAME, &[arg(name)])?;
    let latest = run(client, &LATEST, &[arg(name), arg(JsonB(definition.clone()))])?;
    let (version, same) = match latest.into_iter().next() {
        Some(row) => (row.get::<i32>(1)?.unwrap_or(0), row.get::<bool>(2)?.unwrap_or(false)),
        None => (0, false),
    };
    if same {
        return Ok(version);
    }
    run(client, &INSERT, &[arg(name), arg(version + 1), arg(JsonB(definition)), arg(owner)])?;
    Ok(version + 1)
}

/// The newest version of a type, its cache stamp, and whether the type is paused; None
/// for a client-driven type.
pub fn current(client: &mut SpiClient<'_>, name: &str) -> Result<Option<(i32, String, bool)>> {
    let rows = run(client, &CURRENT, &[arg(name)])?;
    match rows.into_iter().next() {
        Some(row) => Ok(Some((
            row.get::<i32>(1)?.unwrap_or(0),
            row.get::<String>(2)?.unwrap_or_default(),
            row.get::<bool>(3)?.unwrap_or(false),
        ))),
        None => Ok(None),
    }
}

/// A parsed definition, from the cache or the table.
pub fn load(client: &mut SpiClient<'_>, name: &str, version: i32, stamp: &str) -> Result<Rc<Definition>> {
    let key = (name.to_owned(), version, stamp.to_owned());
    if let Some(def) = CACHE.with(|c| c.borrow().get(&key).cloned()) {
        return Ok(def);
    }
    let rows = run(client, &LOAD, &[arg(name), arg(version)])?;
    let json = rows
        .into_iter()
        .next()
        .and_then(|row| row.get::<JsonB>(1).ok().flatten())
        .ok_or_else(|| WorkflowError::internal(format!("definition {name} version {version} is missing")))?;
    let def = Rc::new(
        definition::parse(&json.0)
            .map_err(|e| WorkflowError::internal(format!("stored definition {name} v{version} is invalid: {e}")))?,
    );
    CACHE.with(|c| c.borrow_mut().insert(key, def.clone()));
    Ok(def)
}

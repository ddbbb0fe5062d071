//! The grant recipes (README: Guarantees and security): the four parts a role can play,
//! given with `workflow_grant` and taken back with `workflow_revoke`.
//!
//! A part is EXECUTE on some functions, USAGE on the schema and SELECT on some tables,
//! never a write. The GRANT statements run as the owner of the extension's objects (the
//! caller has switched to it, `AsOwner`): in a trusted install that is the bootstrap
//! superuser, not the role that created the extension, and only the objects' owner may
//! grant on them. Who may call `workflow_grant` at all is Postgres' EXECUTE check: nothing
//! grants it but the `owner` part.

use super::extension;
use crate::error::{Result, WorkflowError};
use pgrx::pg_sys;
use pgrx::spi::SpiClient;

/// What a role may do with pg_workflow.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// Administers pg_workflow: every function, every table (read), and the right to
    /// grant parts and bind tenants. What the role that creates the extension gets.
    Owner,
    /// Defines workflows, cancels and retries executions, dispatches; reads everything.
    Admin,
    /// Starts and signals executions, drives client-driven ones, reads their status.
    Starter,
    /// Claims, heartbeats, completes and fails activities.
    Worker,
}

const TABLES: &[&str] = &[
    "workflow_definition",
    "workflow_execution",
    "workflow_activity",
    "workflow_signal",
    "workflow_attempt",
    "workflow_queue",
    "workflow_schedule",
    "workflow_paused_type",
    "workflow_tenant_role",
];

impl Part {
    pub fn parse(name: Option<&str>) -> Result<Part> {
        match name {
            Some("owner") => Ok(Part::Owner),
            Some("admin") => Ok(Part::Admin),
            Some("starter") => Ok(Part::Starter),
            Some("worker") => Ok(Part::Worker),
            other => Err(WorkflowError::invalid(format!(
                "part must be 'owner', 'admin', 'starter' or 'worker', got {}",
                other.map_or("NULL".to_owned(), |p| format!("'{}'", p.replace('\'', "''")))
            ))),
        }
    }

    /// The functions the part may execute; `None`: every function of the extension.
    fn functions(self) -> Option<&'static [&'static str]> {
        match self {
            Part::Owner => None,
            Part::Admin => Some(&[
                "workflow_define",
                "workflow_cancel",
                "workflow_retry",
                "workflow_dispatch",
                "workflow_status",
                "workflow_await",
                "workflow_wake",
                "workflow_current_tenant",
                "workflow_uuidv7",
                "workflow_queue_stats",
                "workflow_execution_stats",
                "workflow_list",
                "workflow_waiting",
                "workflow_metrics",
                "workflow_graph",
                "workflow_queue_configure",
                "workflow_retry_many",
                "workflow_cancel_many",
                "workflow_schedule_create",
                "workflow_schedule_delete",
                "workflow_schedule_pause",
                "workflow_schedule_resume",
                "workflow_schedule_list",
                "workflow_type_pause",
                "workflow_type_resume",
            ]),
            Part::Starter => Some(&[
                "workflow_start",
                "workflow_signal",
                "workflow_status",
                "workflow_await",
                "workflow_schedule_activity",
                "workflow_complete",
                "workflow_fail",
                "workflow_current_tenant",
                "workflow_uuidv7",
                "workflow_find",
                "workflow_list",
                "workflow_waiting",
                "workflow_graph",
                "workflow_claim_executions",
                "workflow_renew_execution",
                "workflow_release_execution",
            ]),
            Part::Worker => Some(&[
                "workflow_claim",
                "workflow_claim_wait",
                "workflow_heartbeat",
                "workflow_complete_activity",
                "workflow_complete_activities",
                "workflow_fail_activity",
                "workflow_claim_activity",
                "workflow_queue_stats",
                "workflow_metrics",
                "workflow_current_tenant",
            ]),
        }
    }

    fn tables(self) -> &'static [&'static str] {
        match self {
            Part::Owner | Part::Admin => TABLES,
            Part::Starter => &["workflow_execution", "workflow_activity", "workflow_signal", "workflow_attempt"],
            Part::Worker => &[],
        }
    }
}

/// The extension's functions named in $1 (all of them when $1 is NULL), as
/// `regprocedure` text: schema-qualified, with argument types, so every overload (such
/// as `workflow_complete` with and without a lease token) is granted.
const MEMBER_FUNCTIONS: &str = "SELECT d.objid::pg_catalog.regprocedure::pg_catalog.text \
     FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid \
     JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) d.objid \
     WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass \
       AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass \
       AND d.deptype OPERATOR(pg_catalog.=) 'e' AND e.extname OPERATOR(pg_catalog.=) 'pg_workflow' \
       AND ($1::pg_catalog.text[] IS NULL OR p.proname OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[])) \
     ORDER BY 1";

/// The role's name as an SQL identifier; 42704 if no role has this oid.
fn role_identifier(client: &mut SpiClient<'_>, role: pg_sys::Oid) -> Result<String> {
    let name = client
        .select(
            "SELECT pg_catalog.quote_ident(rolname) FROM pg_catalog.pg_roles WHERE oid OPERATOR(pg_catalog.=) $1",
            None,
            &[role.into()],
        )?
        .first()
        .get_one::<String>()
        .ok()
        .flatten();
    name.ok_or_else(|| {
        WorkflowError::undefined(format!("role with oid {} does not exist", role.to_u32()))
            .with_hint("pass the name of an existing role, such as 'app_worker'")
    })
}

fn member_functions(client: &mut SpiClient<'_>, named: Option<&[&str]>) -> Result<Vec<String>> {
    let named: Option<Vec<String>> = named.map(|n| n.iter().map(|f| (*f).to_owned()).collect());
    Ok(client
        .select(MEMBER_FUNCTIONS, None, &[named.into()])?
        .filter_map(|r| r.get::<String>(1).ok().flatten())
        .collect())
}

fn execute(client: &mut SpiClient<'_>, statement: String) -> Result<()> {
    client.update(&statement, None, &[])?;
    Ok(())
}

/// `workflow_grant`: gives `role` the part (adds to what it has).
pub fn grant(client: &mut SpiClient<'_>, role: pg_sys::Oid, part: Part) -> Result<()> {
    let grantee = role_identifier(client, role)?;
    let schema = extension::schema()?;
    execute(client, format!("GRANT USAGE ON SCHEMA {schema} TO {grantee}"))?;
    for f in member_functions(client, part.functions())? {
        execute(client, format!("GRANT EXECUTE ON ROUTINE {f} TO {grantee}"))?;
    }
    for t in part.tables() {
        execute(client, format!("GRANT SELECT ON {schema}.{t} TO {grantee}"))?;
    }
    Ok(())
}

/// `workflow_revoke`: takes back every part the role was given (USAGE on the schema is
/// left: the schema may be `public`, which the role had before).
pub fn revoke(client: &mut SpiClient<'_>, role: pg_sys::Oid) -> Result<()> {
    let grantee = role_identifier(client, role)?;
    let schema = extension::schema()?;
    for f in member_functions(client, None)? {
        execute(client, format!("REVOKE EXECUTE ON ROUTINE {f} FROM {grantee}"))?;
    }
    for t in TABLES {
        execute(client, format!("REVOKE ALL ON {schema}.{t} FROM {grantee}"))?;
    }
    Ok(())
}

//! Tenant isolation (DESIGN §6). A role is bound to a tenant in `workflow_tenant_role`;
//! a caller acts for the tenant of the bound role it is, or inherits the rights of
//! (`pg_has_role(.., 'USAGE')`), so `SET ROLE` binds a session. A caller bound to no
//! tenant, and any superuser, acts for all of them.
//!
//! The API's functions run their table work as the extension's owner, which RLS does
//! not filter, so the checks here are what keeps a bound caller to its own tenant. They
//! answer "does not exist" for another tenant's ids: a bound caller cannot even learn
//! which ids exist. RLS policies apply the same rule to direct reads of the tables.

use super::arg;
use super::plan::{run, Statement};
use crate::error::{Result, WorkflowError};
use pgrx::pg_sys::{self, BuiltinOid::*};
use pgrx::spi::SpiClient;
use pgrx::Uuid;

/// Who is calling: the role (before the switch to the owner) and the tenant it acts for.
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: pg_sys::Oid,
    /// None: not bound, acts for every tenant.
    pub tenant: Option<String>,
}

impl Caller {
    /// The dispatcher and other internal callers: every tenant, as the given role.
    pub fn unrestricted(role: pg_sys::Oid) -> Caller {
        Caller { role, tenant: None }
    }
}

static TENANTS_OF: Statement = Statement {
    sql: "SELECT DISTINCT tenant_id FROM @extschema@.workflow_tenant_role \
          WHERE pg_catalog.pg_has_role($1, role::oid, 'USAGE') ORDER BY 1 LIMIT 3",
    args: &[OIDOID],
};
static EXECUTION_TENANT: Statement = Statement {
    sql: "SELECT tenant_id FROM @extschema@.workflow_execution WHERE id = $1",
    args: &[UUIDOID],
};
static ACTIVITY_TENANT: Statement = Statement {
    sql: "SELECT e.tenant_id FROM @extschema@.workflow_activity a \
          JOIN @extschema@.workflow_execution e ON e.id = a.execution_id WHERE a.id = $1",
    args: &[UUIDOID],
};
static BIND: Statement = Statement {
    sql: "INSERT INTO @extschema@.workflow_tenant_role (role, tenant_id) VALUES ($1::regrole, $2) \
          ON CONFLICT (role) DO UPDATE SET tenant_id = excluded.tenant_id, bound_at = now()",
    args: &[TEXTOID, TEXTOID],
};
static UNBIND: Statement = Statement {
    sql: "DELETE FROM @extschema@.workflow_tenant_role WHERE role = $1::regrole RETURNING 1",
    args: &[TEXTOID],
};

/// The tenant `role` acts for; an error if it inherits bindings to several tenants.
pub fn resolve(client: &mut SpiClient<'_>, role: pg_sys::Oid) -> Result<Caller> {
    if unsafe { pg_sys::superuser_arg(role) } {
        return Ok(Caller::unrestricted(role));
    }
    let mut tenants = Vec::new();
    for row in run(client, &TENANTS_OF, &[arg(role)])? {
        if let Some(t) = row.get::<String>(1)? {
            tenants.push(t);
        }
    }
    match tenants.len() {
        0 => Ok(Caller::unrestricted(role)),
        1 => Ok(Caller { role, tenant: tenants.pop() }),
        _ => Err(WorkflowError::forbidden(format!(
            "the current role inherits bindings to several tenants ({}{})",
            tenants[..2].join(", "),
            if tenants.len() > 2 { ", ..." } else { "" }
        ))
        .with_hint("SET ROLE to a role bound to one tenant before calling pg_workflow")),
    }
}

fn same_tenant(caller: &Caller, found: Option<String>) -> bool {
    match &caller.tenant {
        None => true,
        Some(t) => found.as_deref() == Some(t.as_str()),
    }
}

/// P0002 unless `caller` may act on the execution (a missing one is left to the engine).
pub fn check_execution(client: &mut SpiClient<'_>, caller: &Caller, id: Option<Uuid>) -> Result<()> {
    let (Some(_), Some(id)) = (&caller.tenant, id) else { return Ok(()) };
    let Some(row) = run(client, &EXECUTION_TENANT, &[arg(id)])?.into_iter().next() else { return Ok(()) };
    if same_tenant(caller, row.get(1)?) {
        Ok(())
    } else {
        Err(WorkflowError::not_found(format!("workflow execution {id} does not exist")))
    }
}

/// P0002 unless `caller` may act on the activity (a missing one is left to the engine).
pub fn check_activity(client: &mut SpiClient<'_>, caller: &Caller, id: Option<Uuid>) -> Result<()> {
    let (Some(_), Some(id)) = (&caller.tenant, id) else { return Ok(()) };
    let Some(row) = run(client, &ACTIVITY_TENANT, &[arg(id)])?.into_iter().next() else { return Ok(()) };
    if same_tenant(caller, row.get(1)?) {
        Ok(())
    } else {
        Err(WorkflowError::not_found(format!("workflow activity {id} does not exist")))
    }
}

/// 42501 for a bound caller: `what` affects every tenant (definitions, dispatch).
pub fn require_unbound(caller: &Caller, what: &str) -> Result<()> {
    match &caller.tenant {
        None => Ok(()),
        Some(t) => Err(WorkflowError::forbidden(format!(
            "{what} affects every tenant, and the current role is bound to tenant \"{t}\""
        ))
        .with_hint("call it from a role that is not bound to a tenant")),
    }
}

/// The tenant a new execution belongs to: the caller's, or the one asked for by an
/// unbound caller. A bound caller may not start work for another tenant.
pub fn tenant_for_start(caller: &Caller, requested: Option<String>) -> Result<Option<String>> {
    if let Some(t) = &requested {
        if t.is_empty() || t.chars().any(char::is_control) {
            return Err(WorkflowError::invalid("options.tenant_id must be non-empty printable text"));
        }
    }
    match (&caller.tenant, requested) {
        (None, requested) => Ok(requested),
        (Some(own), Some(other)) if *own != other => Err(WorkflowError::forbidden(format!(
            "options.tenant_id is \"{other}\", but the current role is bound to tenant \"{own}\""
        ))
        .with_hint("leave options.tenant_id out: a bound role's executions belong to its tenant")),
        (Some(own), _) => Ok(Some(own.clone())),
    }
}

/// `workflow_bind_tenant`: binds `role` (and every role that inherits its rights) to a tenant.
pub fn bind(client: &mut SpiClient<'_>, role: Option<&str>, tenant: Option<&str>) -> Result<()> {
    let role = role.ok_or_else(|| WorkflowError::invalid("role must not be NULL; pass a role name"))?;
    let tenant = match tenant {
        None => return Err(WorkflowError::invalid("tenant_id must not be NULL; to unbind, call workflow_unbind_tenant")),
        Some(t) if t.is_empty() || t.chars().any(char::is_control) => {
            return Err(WorkflowError::invalid("tenant_id must be non-empty printable text"))
        }
        Some(t) => t,
    };
    run(client, &BIND, &[arg(role), arg(tenant)])?;
    Ok(())
}

/// `workflow_unbind_tenant`: false if the role was not bound.
pub fn unbind(client: &mut SpiClient<'_>, role: Option<&str>) -> Result<bool> {
    let role = role.ok_or_else(|| WorkflowError::invalid("role must not be NULL; pass a role name"))?;
    Ok(run(client, &UNBIND, &[arg(role)])?.len() > 0)
}

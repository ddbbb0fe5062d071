//! Tenant isolation (README: Guarantees and security). A role is bound to a tenant in
//! `workflow_tenant_role`; a caller acts for the tenant of the bound role it is, or
//! inherits the rights of (`pg_has_role(.., 'USAGE')`), so `SET ROLE` binds a session. A
//! caller bound to no tenant, and any superuser, acts for all of them.
//!
//! The API's functions run their table work as the extension's owner, which RLS does
//! not filter, so the engine keeps a bound caller to its own tenant: every statement that
//! locks or reads an execution or activity for a caller carries its tenant (`rows`,
//! `status`, `await_finish`, the heartbeat, the claim), and another tenant's ids answer
//! "does not exist": a bound caller cannot even learn which ids exist. RLS policies apply
//! the same rule to direct reads of the tables.

use super::arg;
use super::plan::{run, Statement};
use crate::error::{Result, WorkflowError};
use pgrx::pg_sys::{self, BuiltinOid::*};
use pgrx::spi::SpiClient;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// Longest tenant id accepted; ids are names, not documents.
pub const MAX_TENANT_LEN: usize = 200;

/// None if `t` is a usable tenant id, else what is wrong with it.
fn bad_tenant(t: &str) -> Option<String> {
    if t.is_empty() || t.chars().any(char::is_control) {
        Some("must be non-empty printable text".into())
    } else if t.len() > MAX_TENANT_LEN {
        Some(format!("is {} bytes long; at most {MAX_TENANT_LEN} are allowed", t.len()))
    } else {
        None
    }
}

/// Who is calling: the role (before the switch to the owner) and the tenant it acts for.
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: pg_sys::Oid,
    /// None: not bound, acts for every tenant.
    pub tenant: Option<String>,
}

impl Caller {
    /// A caller bound to no tenant (or a superuser): acts for every tenant.
    pub fn unrestricted(role: pg_sys::Oid) -> Caller {
        Caller { role, tenant: None }
    }
}

// Walks the caller's memberships (a few rows), not the bindings (one per tenant, maybe
// thousands), then keeps the ones whose rights it inherits, as pg_has_role decides on
// this server version.
static TENANTS_OF: Statement = Statement {
    sql: "WITH RECURSIVE member_of(r) AS ( \
              SELECT $1 \
              UNION SELECT m.roleid FROM pg_catalog.pg_auth_members m JOIN member_of ON m.member = member_of.r) \
          SELECT DISTINCT t.tenant_id FROM member_of \
          JOIN @extschema@.workflow_tenant_role t ON t.role = member_of.r::regrole \
          WHERE pg_catalog.pg_has_role($1, member_of.r, 'USAGE') ORDER BY 1 LIMIT 3",
    args: &[OIDOID],
};
static BIND: Statement = Statement {
    sql: "INSERT INTO @extschema@.workflow_tenant_role (role, tenant_id) \
          SELECT r.oid::regrole, $2 FROM pg_catalog.pg_roles r WHERE r.rolname = $1 \
          ON CONFLICT (role) DO UPDATE SET tenant_id = excluded.tenant_id, bound_at = now() \
          RETURNING 1",
    args: &[TEXTOID, TEXTOID],
};
static UNBIND: Statement = Statement {
    sql: "DELETE FROM @extschema@.workflow_tenant_role t USING pg_catalog.pg_roles r \
          WHERE t.role = r.oid::regrole AND r.rolname = $1 RETURNING 1",
    args: &[TEXTOID],
};

thread_local! {
    /// role -> the tenants it acts for, per backend: every API call needs it, bindings
    /// and memberships rarely change. Cleared by any relcache invalidation (the trigger
    /// on workflow_tenant_role sends one for that table) and by any change of roles or
    /// memberships; both also fire when a transaction that changed them aborts.
    static RESOLVED: RefCell<HashMap<u32, Vec<String>>> = RefCell::new(HashMap::new());
    static WATCHING: Cell<bool> = const { Cell::new(false) };
}

fn forget_resolved() {
    RESOLVED.with(|r| r.borrow_mut().clear());
}

unsafe extern "C-unwind" fn forget_on_relcache(_arg: pg_sys::Datum, _relid: pg_sys::Oid) {
    forget_resolved();
}

unsafe extern "C-unwind" fn forget_on_syscache(_arg: pg_sys::Datum, _cache: std::ffi::c_int, _hash: u32) {
    forget_resolved();
}

fn watch_invalidations() {
    if WATCHING.with(|w| w.replace(true)) {
        return;
    }
    use pg_sys::SysCacheIdentifier::{AUTHMEMROLEMEM, AUTHOID};
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(forget_on_relcache), pg_sys::Datum::from(0));
        pg_sys::CacheRegisterSyscacheCallback(AUTHMEMROLEMEM as _, Some(forget_on_syscache), pg_sys::Datum::from(0));
        pg_sys::CacheRegisterSyscacheCallback(AUTHOID as _, Some(forget_on_syscache), pg_sys::Datum::from(0));
    }
}

/// The tenant `role` acts for; an error if it inherits bindings to several tenants.
pub fn resolve(client: &mut SpiClient<'_>, role: pg_sys::Oid) -> Result<Caller> {
    if unsafe { pg_sys::superuser_arg(role) } {
        return Ok(Caller::unrestricted(role));
    }
    watch_invalidations();
    let cached = RESOLVED.with(|r| r.borrow().get(&role.to_u32()).cloned());
    let mut tenants = match cached {
        Some(t) => t,
        None => {
            let t = lookup(client, role)?;
            RESOLVED.with(|r| r.borrow_mut().insert(role.to_u32(), t.clone()));
            t
        }
    };
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

fn lookup(client: &mut SpiClient<'_>, role: pg_sys::Oid) -> Result<Vec<String>> {
    let mut tenants = Vec::new();
    for row in run(client, &TENANTS_OF, &[arg(role)])? {
        if let Some(t) = row.get::<String>(1)? {
            tenants.push(t);
        }
    }
    Ok(tenants)
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
    if let Some(problem) = requested.as_deref().and_then(bad_tenant) {
        return Err(WorkflowError::invalid(format!("options.tenant_id {problem}")));
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
        None => {
            return Err(WorkflowError::invalid("tenant_id must not be NULL; to unbind, call workflow_unbind_tenant"))
        }
        Some(t) => match bad_tenant(t) {
            Some(problem) => return Err(WorkflowError::invalid(format!("tenant_id {problem}"))),
            None => t,
        },
    };
    if run(client, &BIND, &[arg(role), arg(tenant)])?.is_empty() {
        return Err(WorkflowError::undefined(format!("role \"{role}\" does not exist"))
            .with_hint("pass the exact name of an existing role (case matters)"));
    }
    Ok(())
}

/// `workflow_unbind_tenant`: false if the role was not bound.
pub fn unbind(client: &mut SpiClient<'_>, role: Option<&str>) -> Result<bool> {
    let role = role.ok_or_else(|| WorkflowError::invalid("role must not be NULL; pass a role name"))?;
    Ok(!run(client, &UNBIND, &[arg(role)])?.is_empty())
}

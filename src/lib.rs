//! pg_workflow: durable workflows inside PostgreSQL.
//!
//! Layers, each depending only on the ones before it:
//! - `model`: definitions, intervals, retry policy, options — plain Rust, no Postgres;
//! - schema (`schema.sql`): the four tables and their indexes;
//! - `engine`: state transitions as SQL over SPI, in the caller's transaction;
//! - `api`: the SQL functions of the README, thin over the engine;
//! - `dispatcher`: the background worker (launcher, dispatchers, sql runners), which
//!   calls the engine; `wake` is the shared-memory mailbox between the two.

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

pub mod api;
pub mod dispatcher;
pub mod engine;
pub mod error;
pub mod gucs;
pub mod jsonb_arg;
pub mod model;
pub mod waiters;
pub mod wake;

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::register();
    // Shared memory and the background worker exist only with shared_preload_libraries;
    // without it everything but the automatic wake-ups works (workflow_dispatch()).
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        wake::init();
        waiters::init();
        dispatcher::register();
    }
}

extension_sql_file!("schema.sql", name = "schema", requires = [workflow_uuidv7]);
extension_sql_file!("history.sql", name = "history", requires = ["tenancy"]);
extension_sql_file!(
    "flow.sql",
    name = "flow",
    requires = ["tenancy", api::workflow_list, api::workflow_retry, api::workflow_cancel]
);
extension_sql_file!(
    "tenancy.sql",
    name = "tenancy",
    requires = ["schema", api::workflow_current_tenant, api::triggers::workflow_tenant_role_changed]
);

// Nothing is granted to PUBLIC (README: Guarantees and security): Postgres grants EXECUTE
// on new functions to PUBLIC by default, so take it back from every function of this
// extension.
extension_sql!(
    r#"
DO $$
DECLARE f pg_catalog.regprocedure;
BEGIN
    FOR f IN
        SELECT d.objid::pg_catalog.regprocedure FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid
        WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
          AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
          AND e.extname OPERATOR(pg_catalog.=) 'pg_workflow'
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON ROUTINE %s FROM PUBLIC', f);
    END LOOP;
END
$$;
-- A role that created the extension without being a superuser (a trusted install: the
-- script runs as the bootstrap superuser, who owns every object) administers it: it gets
-- the owner part (README: Install). A superuser has every right already.
DO $$
DECLARE
    creator pg_catalog.oid;
    creator_is_superuser boolean;
BEGIN
    SELECT e.extowner, r.rolsuper INTO creator, creator_is_superuser
    FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) e.extowner
    WHERE e.extname OPERATOR(pg_catalog.=) 'pg_workflow';
    IF NOT creator_is_superuser THEN
        PERFORM @extschema@.workflow_grant(creator::pg_catalog.regrole, 'owner');
    END IF;
END
$$;
-- Tell a running launcher (at commit) that this database now has the extension.
SELECT @extschema@.workflow_wake();
"#,
    name = "revoke_public",
    finalize
);

// In-backend tests live in pgrx-tests/; pgrx runs them from the `tests` schema, which
// needs an inline module, hence include!.
#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    include!("../pgrx-tests/engine.rs");
    include!("../pgrx-tests/semantics.rs");
    include!("../pgrx-tests/security.rs");
    include!("../pgrx-tests/plans.rs");
    include!("../pgrx-tests/resume.rs");
    include!("../pgrx-tests/schedules.rs");
    include!("../pgrx-tests/admission.rs");
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        // In-backend tests run with the background worker loaded, as production does.
        vec!["shared_preload_libraries = 'pg_workflow'"]
    }
}

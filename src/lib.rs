//! pg_workflow: durable workflows inside PostgreSQL.
//!
//! Layers, each depending only on the ones before it:
//! - `model`: definitions, intervals, retry policy, options — plain Rust, no Postgres;
//! - schema (`schema.sql`): the four tables and their indexes;
//! - `engine`: state transitions as SQL over SPI, in the caller's transaction;
//! - `api`: the SQL functions of DESIGN §3, thin over the engine.

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

pub mod api;
pub mod engine;
pub mod error;
pub mod gucs;
pub mod model;

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::register();
}

extension_sql_file!("schema.sql", name = "schema", requires = [workflow_uuidv7]);

// Nothing is granted to PUBLIC (DESIGN §6): Postgres grants EXECUTE on new functions to
// PUBLIC by default, so take it back from every function of this extension.
extension_sql!(
    r#"
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN
        SELECT d.objid::regprocedure FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
        WHERE d.classid = 'pg_catalog.pg_proc'::regclass
          AND d.refclassid = 'pg_catalog.pg_extension'::regclass
          AND e.extname = 'pg_workflow'
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END
$$;
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
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}

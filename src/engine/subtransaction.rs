//! Running a piece of work in a subtransaction so that its ERROR is recorded instead of
//! aborting the caller's transaction: a `sql` step's statement (its failure is a failed
//! attempt) and a schedule's fire (its failure is kept on the schedule; the dispatcher's
//! pass goes on with the rest).

use crate::error::Result;
use pgrx::pg_sys;
use pgrx::prelude::PgTryBuilder;
use serde_json::{json, Value};

/// The five-character SQLSTATE of an error code (Postgres packs it six bits a character).
fn sqlstate_text(code: i32) -> String {
    (0..5).map(|i| (((code >> (6 * i)) & 0x3F) as u8 + b'0') as char).collect()
}

/// Runs `f` in a subtransaction; an ERROR inside, or an Err from it (SPI refusing the
/// text, e.g. a COMMIT), rolls it back and comes back as an error object
/// (`{"type": "SqlError", "sqlstate", "message"}`) the caller records.
pub fn in_subtransaction<T>(f: impl FnOnce() -> Result<T> + std::panic::UnwindSafe) -> std::result::Result<T, Value> {
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        PgTryBuilder::new(move || {
            let r = f();
            if r.is_ok() {
                pg_sys::ReleaseCurrentSubTransaction();
            } else {
                pg_sys::RollbackAndReleaseCurrentSubTransaction();
            }
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::CurrentResourceOwner = owner;
            // Not a Postgres ERROR: SPI refused the text before running it (transaction
            // control, a utility statement it cannot run).
            r.map_err(
                |e| json!({"type": "SqlError", "message": format!("the step's SQL cannot run here: {}", e.message)}),
            )
        })
        .catch_others(move |e| {
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::CurrentResourceOwner = owner;
            let error = match e {
                pg_sys::panic::CaughtError::PostgresError(r) | pg_sys::panic::CaughtError::ErrorReport(r) => json!({
                    "type": "SqlError",
                    "sqlstate": sqlstate_text(r.sql_error_code() as i32),
                    "message": r.message(),
                }),
                other => json!({"type": "SqlError", "message": format!("{other:?}")}),
            };
            Err(error)
        })
        .execute()
    }
}

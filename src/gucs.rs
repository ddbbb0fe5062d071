//! Settings (DESIGN §5). All reload on SIGHUP; none needs a restart. Limits are
//! superuser-settable per session too (SUSET), so a test or a migration can change them.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};

pub static MAX_PAYLOAD_BYTES: GucSetting<i32> = GucSetting::<i32>::new(16 * 1024 * 1024);

pub fn register() {
    GucRegistry::define_int_guc(
        c"workflow.max_payload_bytes",
        c"Largest input, output, error or signal payload pg_workflow accepts, in bytes of JSON.",
        c"Larger payloads are rejected with SQLSTATE 54000; keep big data in tables and pass keys.",
        &MAX_PAYLOAD_BYTES,
        1024,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
}

pub fn max_payload_bytes() -> usize {
    MAX_PAYLOAD_BYTES.get().max(0) as usize
}

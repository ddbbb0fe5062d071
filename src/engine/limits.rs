//! Payload limits: `workflow.max_payload_bytes` (README: the background worker's
//! settings) bounds every input, output, error, heartbeat detail and signal payload,
//! with SQLSTATE 54000.

use crate::error::{Result, WorkflowError};
use crate::gucs;
use serde_json::Value;
use std::io::Write;

/// Counts bytes without keeping them.
struct Counter(usize);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn check_payload(field: &str, value: &Value) -> Result<()> {
    let limit = gucs::max_payload_bytes();
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, value).map_err(|e| WorkflowError::internal(e.to_string()))?;
    if counter.0 > limit {
        return Err(WorkflowError::too_large(format!(
            "{field} is {} bytes of JSON; workflow.max_payload_bytes allows {limit}",
            counter.0
        ))
        .with_hint("store large data in a table and pass its key, or raise workflow.max_payload_bytes"));
    }
    Ok(())
}

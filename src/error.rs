//! Errors with the SQLSTATEs of the README. Engine functions return `Result`; the SQL
//! layer turns an `Err` into a Postgres ERROR, so a bad argument never panics.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowError {
    pub code: PgSqlErrorCode,
    pub message: String,
    pub hint: Option<String>,
}

pub type Result<T> = std::result::Result<T, WorkflowError>;

impl WorkflowError {
    fn new(code: PgSqlErrorCode, message: impl Into<String>) -> Self {
        WorkflowError { code, message: message.into(), hint: None }
    }
    /// 22023: bad definition, option, interval, count or argument.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, message)
    }
    /// P0002: unknown execution or activity id.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_NO_DATA_FOUND, message)
    }
    /// 42704: unknown workflow type where a definition is required.
    pub fn undefined(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, message)
    }
    /// 55000: the object's state forbids the transition (stale claim, finished execution).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, message)
    }
    /// 22000: a replay of a client-driven execution asks for a different step under a
    /// key the journal already has (non-deterministic workflow code).
    pub fn nondeterministic(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_DATA_EXCEPTION, message)
    }
    /// 42501: the calling role may not do this (tenant binding, global operations).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE, message)
    }
    /// 54000: a payload over `workflow.max_payload_bytes`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED, message)
    }
    /// 0A000: valid by the contract but not built yet; says so rather than hanging.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED, message)
    }
    /// XX000: a bug or a broken invariant, never the caller's input.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Raises the error as a Postgres ERROR; the caller's transaction aborts.
    pub fn raise(self) -> ! {
        let mut report = ErrorReport::new(self.code, self.message, "pg_workflow");
        if let Some(hint) = self.hint {
            report = report.set_hint(hint);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("an ERROR report does not return")
    }
}

impl fmt::Display for WorkflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl From<pgrx::spi::SpiError> for WorkflowError {
    fn from(e: pgrx::spi::SpiError) -> Self {
        WorkflowError::internal(format!("pg_workflow: SPI failed: {e}"))
    }
}

/// Unwraps an engine result inside a SQL-callable function.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T> {
    fn or_raise(self) -> T {
        self.unwrap_or_else(|e| e.raise())
    }
}

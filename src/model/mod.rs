//! The workflow model, plain Rust: pure functions with no Postgres in them, unit-tested with
//! `cargo test`-style tests. The engine calls them; they call nothing.

pub mod concurrency;
pub mod cron;
pub mod definition;
pub mod interval;
pub mod options;
pub mod retry;

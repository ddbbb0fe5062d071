#!/usr/bin/env bash
# The code gates of `make test` (and `make lint`): every Rust file formatted as
# rustfmt.toml says, no import cycle among the engine's files, and no clippy warning in the extension, its tests, the client tests
# or the benchmark. Allowed lints are allowed where they occur, with the reason beside.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> formatting (cargo fmt --check)"
cargo fmt --check
(cd tests/client && cargo fmt --check)
(cd bench && cargo fmt --check)
# pgrx-tests/ files are include!d into src/lib.rs, which cargo fmt does not follow.
rustfmt --check --edition 2021 --config-path rustfmt.toml pgrx-tests/*.rs
echo "==> the engine's import graph has no cycle (scripts/import_graph.py)"
python3 scripts/import_graph.py
echo "==> lints (cargo clippy -D warnings)"
cargo clippy --quiet --features "pg15 pg_test" --no-default-features --all-targets -- -D warnings
(cd tests/client && cargo clippy --quiet --all-targets -- -D warnings)
(cd bench && cargo clippy --quiet --all-targets -- -D warnings)

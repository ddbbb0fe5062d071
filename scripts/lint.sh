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
echo "==> registry manifests name this version (META.json, Trunk.toml)"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
python3 - "$version" <<'PY'
import json, sys, tomllib
version = sys.argv[1]
meta = json.load(open("META.json"))
trunk = tomllib.load(open("Trunk.toml", "rb"))
found = {"META.json version": meta["version"], "META.json provides": meta["provides"]["pg_workflow"]["version"],
         "Trunk.toml": trunk["extension"]["version"]}
wrong = {k: v for k, v in found.items() if v != version}
if wrong:
    sys.exit(f"Cargo.toml says {version}, but {wrong}")
PY
echo "==> the engine's import graph has no cycle (scripts/import_graph.py)"
python3 scripts/import_graph.py
echo "==> lints (cargo clippy -D warnings)"
cargo clippy --quiet --features "pg15 pg_test" --no-default-features --all-targets -- -D warnings
(cd tests/client && cargo clippy --quiet --all-targets -- -D warnings)
(cd bench && cargo clippy --quiet --all-targets -- -D warnings)

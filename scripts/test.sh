#!/usr/bin/env bash
# `make test`: every test of the project, from a clean clone.
#   1. the model's unit tests and the in-backend #[pg_test]s (cargo pgrx test);
#   2. pg_regress files: the plain-SQL contract, against a throwaway cluster;
#   3. client-level tests: several real connections against that cluster;
#   4. the upgrade test: the previous release, updated to this one (tests/upgrade).
# Before them, the gates: formatting (rustfmt.toml) and lints (clippy, warnings are errors).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/lint.sh
work=${PGWORKFLOW_TEST_DIR:-/tmp/pg_workflow-test}
port=${PGWORKFLOW_TEST_PORT:-28816}
mkdir -p "$work"

echo "==> unit and in-backend tests (cargo pgrx test)"
runas=()
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$work/pgrx-data"; chown postgres: "$work/pgrx-data"
    runas=(--runas postgres --pgdata "$work/pgrx-data")
fi
cargo pgrx test pg15 "${runas[@]}"

echo "==> upgrade from the previous release (tests/upgrade)"
tests/upgrade/run.sh "$work" $((port + 1))

echo "==> installing the extension and starting a throwaway cluster on port $port"
scripts/install.sh
# What users get must be the release build: small, optimised, no debug info.
library="$("$(scripts/pg_config.sh)" --pkglibdir)/pg_workflow.so"
size=$(stat -c %s "$library")
if [ "$size" -gt $((16 * 1024 * 1024)) ] || readelf -S "$library" | grep -q '\.debug_info'; then
    echo "the installed $library ($size bytes) is not the release build: it has debug info or is over 16 MiB" >&2
    exit 1
fi
echo "installed library: $((size / 1024)) KiB, no debug info"

echo "==> pgspot over the install script and the upgrade scripts"
# An extension whose functions run as its owner must not let a caller's search_path
# pick its operators, functions or tables: every finding fails the build.
stage=${CARGO_TARGET_DIR:-target}/install-stage
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
install_script="$stage$("$(scripts/pg_config.sh)" --sharedir)/extension/pg_workflow--$version.sql"
report=$(pgspot --summary-only "$install_script" sql/*.sql || true)
echo "$report" | tail -n 1
if ! grep -q "^TOTAL: Errors: 0 Warnings: 0 Unknown: 0" <<<"$report"; then
    pgspot "$install_script" sql/*.sql || true
    echo "pgspot found problems (above): qualify the names, or justify and ignore them here" >&2
    exit 1
fi

# pg_cron too, for the test of the README's pg_cron lines (its launcher works in
# database postgres only).
scripts/cluster.sh start "$work/cluster" "$port" "fsync = off" "shared_preload_libraries = 'pg_workflow,pg_cron'"
trap 'scripts/cluster.sh stop "$work/cluster"' EXIT

echo "==> pg_regress (tests/pg_regress)"
regress="$("$(scripts/pg_config.sh)" --pkglibdir)/pgxs/src/test/regress/pg_regress"
rm -rf "$work/regress"; mkdir -p "$work/regress"
[ "$(id -u)" = 0 ] && chown postgres: "$work/regress"
tests=$(sed -n 's/^test: //p' tests/pg_regress/schedule | tr '\n' ' ')
if ! "$regress" --host=127.0.0.1 --port="$port" --user=postgres \
        --inputdir=tests/pg_regress --outputdir="$work/regress" --dbname=pg_workflow_regress $tests; then
    cat "$work/regress/regression.diffs" 2>/dev/null | head -200
    exit 1
fi

echo "==> client-level tests (tests/client)"
PGWORKFLOW_TEST_URL="host=127.0.0.1 port=$port user=postgres" PGWORKFLOW_TEST_PGDATA="$work/cluster" \
    cargo test --manifest-path tests/client/Cargo.toml -- --test-threads=1 --nocapture

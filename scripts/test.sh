#!/usr/bin/env bash
# `make test`: every test of the project, from a clean clone.
#   1. the model's unit tests and the in-backend #[pg_test]s (cargo pgrx test);
#   2. the upgrade test: the previous release, updated to this one (tests/upgrade);
#   3. pg_regress files (the plain-SQL contract) and client-level tests (several real
#      connections), in three setups: preloaded; not preloaded and created by a
#      non-superuser (trusted); created by a non-superuser through an allow-list.
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

echo "==> building the packages and installing the .deb (make package; dpkg -i)"
# Every setup below runs against what the Debian package installs.
scripts/package.sh
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO dpkg -i target/package/postgresql-15-pg-workflow_*.deb >/dev/null
dpkg-query -W -f='installed ${Package} ${Version}\n' postgresql-15-pg-workflow
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
stage=${CARGO_TARGET_DIR:-target}/package/root
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
install_script="$stage$("$(scripts/pg_config.sh)" --sharedir)/extension/pg_workflow--$version.sql"
# Upgrade scripts may CREATE OR REPLACE the extension's own functions (PS002): since
# PostgreSQL 15 (and the 2022 minor releases before it) that fails for a function that is
# not already a member of this extension, so nobody can plant one for it to replace.
# PS005 is allowed for the two bulk procedures alone: a SET clause would forbid their
# per-batch COMMITs; they run with the caller's rights and qualify every name.
check_pgspot() {
    local findings
    findings=$(pgspot "$@" 2>&1 | grep -E '^PS[0-9]+' \
        | grep -vE '^PS005: Function without explicit search_path: extschema\.workflow_(retry|cancel)_many\(' || true)
    if [ -n "$findings" ]; then
        echo "$findings"
        echo "pgspot found problems (above): qualify the names, or justify and ignore them here" >&2
        exit 1
    fi
    echo "pgspot: no findings in $*"
}
check_pgspot "$install_script"
check_pgspot --ignore PS002 sql/*.sql

bindir=$("$(scripts/pg_config.sh)" --bindir)
regress="$("$(scripts/pg_config.sh)" --pkglibdir)/pgxs/src/test/regress/pg_regress"
schedule=$(sed -n 's/^test: //p' tests/pg_regress/schedule | tr '\n' ' ')
clusters=()
trap 'for c in "${clusters[@]}"; do scripts/cluster.sh stop "$c"; done' EXIT

# The plain-SQL contract against the cluster on port $1, in database pg_workflow_regress.
# With $2 = a role name, that role (not a superuser) creates the extension first, as a
# user of managed Postgres would; the files then run as the superuser, which they need
# for their fixtures (roles, moving timestamps into the past).
run_regress() {
    local port=$1 creator=${2:-} out="$work/regress-$1" existing=()
    rm -rf "$out"; mkdir -p "$out"; [ "$(id -u)" = 0 ] && chown postgres: "$out"
    if [ -n "$creator" ]; then
        local su=("$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres)
        "${su[@]}" -c "DROP DATABASE IF EXISTS pg_workflow_regress WITH (FORCE)" \
            -c "CREATE DATABASE pg_workflow_regress TEMPLATE template0" \
            -c "GRANT CREATE ON DATABASE pg_workflow_regress TO $creator"
        "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U "$creator" -d pg_workflow_regress \
            -c "CREATE EXTENSION pg_workflow"
        existing=(--use-existing)
    fi
    if ! "$regress" --host=127.0.0.1 --port="$port" --user=postgres "${existing[@]}" \
            --inputdir=tests/pg_regress --outputdir="$out" --dbname=pg_workflow_regress $schedule; then
        cat "$out/regression.diffs" 2>/dev/null | head -200
        exit 1
    fi
}

# The client tests in tests/client/tests/NAME.rs, against the cluster named by the
# environment the caller sets.
run_client_tests() {
    local args=()
    for name in "$@"; do args+=(--test "$name"); done
    cargo test --manifest-path tests/client/Cargo.toml "${args[@]}" -- --test-threads=1 --nocapture
}
# Suites that need a setup of their own (below); every other one runs against setup 1.
own_setup="no_preload allow_list"
common=()
for f in tests/client/tests/*.rs; do
    name=$(basename "$f" .rs)
    [[ " $own_setup " == *" $name "* ]] || common+=("$name")
done

echo "==> setup 1 of 3: pg_workflow preloaded, created by a superuser (port $port)"
# pg_cron too, for the test of the README's pg_cron lines (its launcher works in
# database postgres only).
scripts/cluster.sh start "$work/cluster" "$port" "fsync = off" "shared_preload_libraries = 'pg_workflow,pg_cron'"
clusters+=("$work/cluster")
echo "--> pg_regress (tests/pg_regress)"
run_regress "$port"
echo "--> client-level tests (tests/client)"
PGWORKFLOW_TEST_URL="host=127.0.0.1 port=$port user=postgres" PGWORKFLOW_TEST_PGDATA="$work/cluster" \
    run_client_tests "${common[@]}"
# The TypeScript tests (clients/typescript/test) against the cluster on port $1, under
# Node (compiled) and under Bun; more arguments are environment settings.
run_typescript_tests() {
    local port=$1; shift
    (
        cd clients/typescript
        export PGWORKFLOW_TEST_URL="host=127.0.0.1 port=$port user=postgres" "$@"
        node_modules/.bin/tsc -p tsconfig.json
        node dist/test/run.js
        node_modules/.bin/bun test/run.ts
    )
}
echo "--> the TypeScript client, worker and Effect engine (clients/typescript), under Node and under Bun"
run_typescript_tests "$port" PGWORKFLOW_TEST_PGDATA="$work/cluster" PGWORKFLOW_TS_TEST_SKIP="without the preload"
scripts/cluster.sh stop "$work/cluster"

# A cluster as a provider runs it (DIR PORT postgresql.conf lines...), with a login role
# app_owner that is not a superuser.
managed_cluster() {
    local dir=$1 port=$2; shift 2
    scripts/cluster.sh start "$dir" "$port" "fsync = off" "$@"
    clusters+=("$dir")
    "$bindir/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE ROLE app_owner LOGIN"
}

# Managed Postgres: no preload (pg_cron is, as providers offer it), and the extension
# created by a role that only has CREATE on the database (trusted = true).
port2=$((port + 2))
echo "==> setup 2 of 3: not preloaded, created by a non-superuser (trusted extension; port $port2)"
managed_cluster "$work/no-preload" "$port2" "shared_preload_libraries = 'pg_cron'" "cron.use_background_workers = on"
echo "--> pg_regress (tests/pg_regress)"
run_regress "$port2" app_owner
echo "--> client-level tests (tests/client/tests/no_preload.rs)"
PGWORKFLOW_TEST_NO_PRELOAD_URL="host=127.0.0.1 port=$port2 user=postgres" run_client_tests no_preload
echo "--> the TypeScript worker without the preload"
run_typescript_tests "$port2" PGWORKFLOW_TS_TEST_ONLY="without the preload"
scripts/cluster.sh stop "$work/no-preload"

# A provider's allow-list: pgextwlist lets a non-superuser create the extensions it lists
# (as the bootstrap superuser), and packaging/pgextwlist gives that role the owner part.
port3=$((port + 3))
echo "==> setup 3 of 3: created by a non-superuser through an allow-list (pgextwlist; port $port3)"
# (A copy the postgres user can read, wherever this clone is.)
rm -rf "$work/pgextwlist"; cp -r packaging/pgextwlist "$work/pgextwlist"; chmod -R a+rX "$work/pgextwlist"
managed_cluster "$work/allow-list" "$port3" "local_preload_libraries = 'pgextwlist'" \
    "extwlist.extensions = 'pg_workflow'" "extwlist.custom_path = '$work/pgextwlist'"
echo "--> pg_regress (tests/pg_regress)"
run_regress "$port3" app_owner
echo "--> client-level tests (tests/client/tests/allow_list.rs)"
PGWORKFLOW_TEST_ALLOW_LIST_URL="host=127.0.0.1 port=$port3 user=postgres" run_client_tests allow_list
echo "--> the demo (examples/demo.sql), run by app_owner in a database of its own"
"$bindir/psql" -X -q -h 127.0.0.1 -p "$port3" -U postgres -d postgres -c "CREATE DATABASE pgw_demo OWNER app_owner"
"$bindir/psql" -X -q -h 127.0.0.1 -p "$port3" -U app_owner -d pgw_demo -f examples/demo.sql >"$work/demo-allow-list.out"
grep -q "demo-reviewer" "$work/demo-allow-list.out" || { cat "$work/demo-allow-list.out"; exit 1; }
echo "the demo ran to the end as app_owner"

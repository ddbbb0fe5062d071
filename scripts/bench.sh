#!/usr/bin/env bash
# `make bench`: builds the extension in release mode, starts a throwaway cluster with
# it preloaded (fsync and synchronous_commit on, as in production), runs the benchmark,
# then runs it again on the same cluster without the preload, and stops the cluster.
# Results: the tables on stdout, bench/results.json and bench/results-no-preload.json.
#   PGWORKFLOW_BENCH_SECONDS  seconds per measured run (default 8)
#   PGWORKFLOW_BENCH_QUEUE_LIMIT=1  the queue has (never binding) limits: the cost of admission
#   PGWORKFLOW_BENCH_LONG=N   instead: the long run of N executions (make bench-long),
#                             with workflow.retention = '1 minute' so tables stay bounded
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
dir=/tmp/pg_workflow-bench/cluster
port=${PGWORKFLOW_BENCH_PORT:-28817}
mkdir -p "$(dirname "$dir")"
scripts/cluster.sh stop "$dir" 2>/dev/null || true
echo "==> building pg_workflow (release) and the benchmark"
scripts/install.sh
cargo build --release --quiet --manifest-path bench/Cargo.toml
echo "==> throwaway PostgreSQL 15 on port $port; machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
extra=()
[ -n "${PGWORKFLOW_BENCH_LONG:-}" ] && extra=("workflow.retention = '1 minute'")
scripts/cluster.sh start "$dir" "$port" "shared_buffers = 512MB" "max_wal_size = 4GB" "${extra[@]}"
trap 'scripts/cluster.sh stop "$dir"' EXIT INT TERM
bench/target/release/pg_workflow_bench "host=127.0.0.1 port=$port user=postgres" \
    "${PGWORKFLOW_BENCH_SECONDS:-8}" bench/results.json
[ -n "${PGWORKFLOW_BENCH_LONG:-}" ] && exit 0

# The same cluster without the preload (managed Postgres, README: Install): each
# transaction that makes work claimable sends its own NOTIFY; 4 workers, and the
# ceiling measured again in this run.
echo
echo "==> the same, without shared_preload_libraries (transactions notify themselves)"
scripts/cluster.sh stop "$dir"
scripts/cluster.sh start "$dir" "$port" "shared_buffers = 512MB" "max_wal_size = 4GB" "shared_preload_libraries = ''"
PGWORKFLOW_BENCH_MODE=no_preload PGWORKFLOW_BENCH_WORKERS=${PGWORKFLOW_BENCH_WORKERS:-4} \
    bench/target/release/pg_workflow_bench "host=127.0.0.1 port=$port user=postgres" \
    "${PGWORKFLOW_BENCH_SECONDS:-8}" bench/results-no-preload.json

#!/usr/bin/env bash
# `make bench-peers`: pg_workflow beside pg-boss and graphile-worker on one throwaway
# cluster (pg_workflow preloaded; fsync and synchronous_commit on), all driven from one
# Node process (bench/peers/run.mjs) with the same concurrency and producer. The peers
# need Node >= 22.18: bench/peers pins the npm registry's `node` package, so the system's
# Node 20 is enough to install it. Then the steady-state runs, with a bare pgmq-style SQL
# queue beside them (a kept-full queue, 16 workers; 600 jobs/s to 32 workers, claim
# latency). Not part of make test.
#   PEERS_ROUNDS (3) PEERS_SECONDS (8) PEERS_CONCURRENCY (8) PEERS_BACKLOG (5000)
#   PEERS_PICKUPS (200) PEERS_DEPTH (4000) PEERS_STEADY_WORKERS (16) PEERS_RATE (600)
#   PEERS_RATE_WORKERS (32) PEERS_POLL_MS (5) PEERS_STEADY (0: skip the steady state)
#   PEERS_ONLY (only systems whose name contains it)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
dir=/tmp/pg_workflow-bench/peers
port=${PGWORKFLOW_BENCH_PORT:-28827}
mkdir -p "$(dirname "$dir")"
scripts/cluster.sh stop "$dir" 2>/dev/null || true
echo "==> building pg_workflow (release) and the TypeScript client"
scripts/install.sh
(cd clients/typescript && node_modules/.bin/tsc -p tsconfig.json)
echo "==> the peers (npm ci in bench/peers: pg-boss, graphile-worker, Node 22)"
(cd bench/peers && npm ci --no-audit --no-fund --loglevel=error)
echo "==> throwaway PostgreSQL 15 on port $port; machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
scripts/cluster.sh start "$dir" "$port" "shared_buffers = 512MB" "max_wal_size = 4GB"
trap 'scripts/cluster.sh stop "$dir"' EXIT INT TERM
url="postgresql://postgres@127.0.0.1:$port/postgres"
psql "$url" -qc "DROP DATABASE IF EXISTS peers" -c "CREATE DATABASE peers"
psql "postgresql://postgres@127.0.0.1:$port/peers" -qc "CREATE EXTENSION pg_workflow"
bench/peers/node_modules/.bin/node bench/peers/run.mjs "postgresql://postgres@127.0.0.1:$port/peers" bench/peers-results.json

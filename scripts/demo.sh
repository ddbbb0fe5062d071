#!/usr/bin/env bash
# `make run`: starts a throwaway cluster with pg_workflow preloaded, runs the demo, and
# leaves the cluster up for you to explore (`make stop` stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=/tmp/pg_workflow-demo/cluster
port=${PGWORKFLOW_DEMO_PORT:-28815}
mkdir -p "$(dirname "$dir")"
scripts/cluster.sh stop "$dir" 2>/dev/null || true
echo "==> starting a throwaway PostgreSQL 15 on port $port ($dir)"
scripts/cluster.sh start "$dir" "$port"
psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -f examples/demo.sql
cat <<EOT

==> done. The cluster is still running; connect with
      psql -h 127.0.0.1 -p $port -U postgres
    and try:  SELECT workflow_status(id) FROM workflow_execution;
    Stop it with:  make stop
EOT

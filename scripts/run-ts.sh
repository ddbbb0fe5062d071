#!/usr/bin/env bash
# `make run-ts`: the TypeScript example pipeline (clients/typescript/examples/
# extraction-pipeline.ts, an @effect/workflow workflow on PgWorkflowEngine) against the
# demo cluster of `make run`, started first if it is not running.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
dir=/tmp/pg_workflow-demo/cluster
port=${PGWORKFLOW_DEMO_PORT:-28815}
if ! "$("${PG_CONFIG:-pg_config}" --bindir)/pg_isready" -q -h 127.0.0.1 -p "$port"; then
    scripts/install.sh
    mkdir -p "$(dirname "$dir")"
    echo "==> starting a throwaway PostgreSQL 15 on port $port ($dir)"
    scripts/cluster.sh start "$dir" "$port"
fi
cd clients/typescript
node_modules/.bin/tsc -p tsconfig.json
echo "==> the extraction pipeline (node dist/examples/extraction-pipeline.js)"
DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres" node dist/examples/extraction-pipeline.js

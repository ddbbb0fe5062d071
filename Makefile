# pg_workflow — the two commands of the README, and a few for development.
#   make run    install what is missing, build, install, start a throwaway Postgres
#               with pg_workflow preloaded and run a demo workflow end to end
#   make test   install what is missing and run every test

.PHONY: run run-ts dashboard test lint soak bench bench-peers bench-long deps install package stop clean

run: deps
	scripts/install.sh
	scripts/demo.sh

# The TypeScript example pipeline (@effect/workflow on pg_workflow) against the demo cluster.
run-ts: deps
	scripts/run-ts.sh

# The read-only dashboard on http://127.0.0.1:8089 (DATABASE_URL: the demo cluster's
# database postgres unless given; add DASHBOARD_FLAGS=--allow-actions for cancel/retry).
DATABASE_URL ?= postgres://postgres@127.0.0.1:28815/postgres
dashboard: deps
	cd clients/typescript && node_modules/.bin/tsc -p tsconfig.json && \
		node dist/src/dashboard/cli.js --connection "$(DATABASE_URL)" $(DASHBOARD_FLAGS)

test:
	scripts/test.sh

# The formatting and lint gates alone (make test runs them first).
lint:
	scripts/lint.sh

# make test with a long crash test: 30,000 executions, up to 20 crash restarts (about 2 minutes).
soak:
	PGWORKFLOW_CRASH_EXECUTIONS=30000 scripts/test.sh

# Throughput and pickup latency beside the raw-Postgres ceiling (not part of `make test`).
bench:
	scripts/bench.sh

# pg_workflow beside pg-boss and graphile-worker, one cluster, one Node process (about 9 minutes).
bench-peers:
	scripts/bench-peers.sh

# One million executions, to see throughput and table size stay flat (about 10 minutes).
bench-long:
	PGWORKFLOW_BENCH_LONG=1000000 scripts/bench.sh

deps:
	scripts/deps.sh

install: deps
	scripts/install.sh

# The release build as a Debian package and a tarball, in target/package/ (make test
# installs the .deb with dpkg -i and runs its tests against it).
package: deps
	scripts/package.sh

# Stops the demo cluster started by `make run`.
stop:
	scripts/cluster.sh stop /tmp/pg_workflow-demo/cluster

clean: stop
	cargo clean
	rm -rf /tmp/pg_workflow-demo /tmp/pg_workflow-test

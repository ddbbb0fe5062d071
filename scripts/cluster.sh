#!/usr/bin/env bash
# A throwaway Postgres cluster with pg_workflow preloaded, for the demo, the client
# tests and the benchmark.
#   scripts/cluster.sh start DIR PORT [extra postgresql.conf lines...]
#   scripts/cluster.sh stop DIR
#   scripts/cluster.sh restart DIR  stop (if running) and start again, keeping the data
#   scripts/cluster.sh crash DIR    immediate shutdown (no checkpoint), then start again
# Postgres refuses to run as root, so as root the cluster runs as the `postgres` user.
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?data directory}
bindir=$("${PG_CONFIG:-pg_config}" --bindir)

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
    port=${3:?port}; shift 3
    if [ -f "$dir/postmaster.pid" ]; then as_owner "$bindir/pg_ctl" -D "$dir" -m immediate stop >/dev/null 2>&1 || true; fi
    rm -rf "$dir"; mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    as_owner "$bindir/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir.initdb.log" 2>&1 \
        || { cat "$dir.initdb.log"; exit 1; }
    {
        echo "port = $port"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$dir'"
        echo "shared_preload_libraries = 'pg_workflow'"
        echo "max_connections = 200"
        # One dispatcher per database with the extension (and an sql runner while one
        # runs): test suites that keep many databases need more than the default 8.
        echo "max_worker_processes = 96"
        # %b: the backend type, so a log line says which process wrote it (a pg_workflow
        # dispatcher, an autovacuum worker, ...).
        echo "log_line_prefix = '%m [%p] %b '"
        for line in "$@"; do echo "$line"; done
    } | as_owner tee -a "$dir/postgresql.conf" >/dev/null
    as_owner "$bindir/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null \
        || { cat "$dir/server.log"; exit 1; }
    ;;
stop)
    if [ -f "$dir/postmaster.pid" ]; then as_owner "$bindir/pg_ctl" -D "$dir" -m fast -w stop >/dev/null; fi
    ;;
restart)
    if [ -f "$dir/postmaster.pid" ]; then as_owner "$bindir/pg_ctl" -D "$dir" -m fast -w stop >/dev/null; fi
    as_owner "$bindir/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null
    ;;
crash)
    as_owner "$bindir/pg_ctl" -D "$dir" -m immediate -w stop >/dev/null
    as_owner "$bindir/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null
    ;;
*)
    echo "usage: $0 start DIR PORT | stop DIR | restart DIR | crash DIR" >&2; exit 2 ;;
esac

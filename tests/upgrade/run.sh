#!/usr/bin/env bash
# The upgrade test: installs the previous release (built from its commit in this
# clone's history), fills it with executions in every state, installs this version's
# library, restarts, runs ALTER EXTENSION pg_workflow UPDATE, finishes every execution,
# and checks that the updated objects equal those of a new CREATE EXTENSION.
#   tests/upgrade/run.sh WORK_DIR PORT
# Leaves this version installed. Never run it while another cluster has pg_workflow
# preloaded: installing a library over a loaded one crashes that cluster.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
work=${1:?work dir}/upgrade; port=${2:?port}
read -r prev_version prev_commit < <(grep -v '^#' tests/upgrade/releases | tail -n 1)
if ! git cat-file -e "$prev_commit^{commit}" 2>/dev/null; then
    echo "release $prev_version ($prev_commit) is not in this clone's history; clone without --depth" >&2
    exit 1
fi
mkdir -p "$work"; [ "$(id -u)" = 0 ] && chown postgres: "$work"

echo "==> building and installing the previous release, $prev_version"
rm -rf "$work/src"; mkdir -p "$work/src"
git archive "$prev_commit" | tar -x -C "$work/src"
# Its own target dir, kept between runs: only the first build compiles its dependencies.
(cd "$work/src" && CARGO_TARGET_DIR="$repo/target/release-$prev_version" scripts/install.sh)

cluster="$work/cluster"
scripts/cluster.sh start "$cluster" "$port" "fsync = off"
trap 'scripts/cluster.sh stop "$cluster"' EXIT
regress="$("$(scripts/pg_config.sh)" --pkglibdir)/pgxs/src/test/regress/pg_regress"
rm -rf "$work/results"; mkdir -p "$work/results"; [ "$(id -u)" = 0 ] && chown postgres: "$work/results"
run_regress() {
    if ! "$regress" --host=127.0.0.1 --port="$port" --user=postgres --inputdir=tests/upgrade \
            --outputdir="$work/results" --dbname=upgrade "$@"; then
        cat "$work/results/regression.diffs" 2>/dev/null | head -150
        exit 1
    fi
}
run_regress before

echo "==> installing this version's library and restarting"
scripts/cluster.sh stop "$cluster"
scripts/install.sh
scripts/cluster.sh restart "$cluster"
run_regress --use-existing after

echo "==> comparing the updated objects with a new CREATE EXTENSION"
psql_at() { "$("$(scripts/pg_config.sh)" --bindir)/psql" -X -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"; }
psql_at -d postgres -c "CREATE DATABASE upgrade_fresh" >/dev/null
psql_at -d upgrade_fresh -c "CREATE EXTENSION pg_workflow" >/dev/null
psql_at -d upgrade -f tests/upgrade/describe.sql >"$work/updated.txt"
psql_at -d upgrade_fresh -f tests/upgrade/describe.sql >"$work/fresh.txt"
if ! diff -u "$work/fresh.txt" "$work/updated.txt"; then
    echo "the updated objects differ from a new install's (- new, + updated)" >&2
    exit 1
fi
echo "upgrade $prev_version -> $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1): $(wc -l <"$work/fresh.txt") object lines identical"

#!/usr/bin/env bash
# Builds pg_workflow and installs it into the system PostgreSQL 15.
#   scripts/install.sh [--release]
# Never run this while a cluster with pg_workflow preloaded is up: overwriting a
# loaded shared library in place crashes that cluster's backends.
set -euo pipefail
sudo_flag=(); [ "$(id -u)" = 0 ] || sudo_flag=(--sudo)
cargo pgrx install --pg-config "$(scripts/pg_config.sh)" "${sudo_flag[@]}" "$@" 2>&1 | grep -v "^\s*$" | tail -n 2

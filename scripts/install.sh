#!/usr/bin/env bash
# Builds pg_workflow in release mode (the profile in Cargo.toml: optimised, LTO, no debug
# info) and installs it into the system PostgreSQL 15.
#
# The build is packaged into a staging tree first (`cargo pgrx package`), then copied
# into place; the shared library is copied to a temporary name beside its final one and
# renamed over it, so a running server that has the old one loaded keeps its mapping
# (overwriting a loaded library in place crashes that server's backends). A running
# server uses the new library only after a restart.
set -euo pipefail
cd "$(dirname "$0")/.."
pg_config=$(scripts/pg_config.sh)
stage=${CARGO_TARGET_DIR:-target}/install-stage
rm -rf "$stage"
cargo pgrx package --pg-config "$pg_config" --out-dir "$stage" 2>&1 | grep -v "^\s*$" | tail -n 1
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
pkglibdir=$("$pg_config" --pkglibdir)
sharedir=$("$pg_config" --sharedir)
$SUDO install -d "$sharedir/extension" "$pkglibdir"
for f in "$stage$sharedir"/extension/pg_workflow*; do
    $SUDO install -m 644 "$f" "$sharedir/extension/"
done
library="$stage$pkglibdir/pg_workflow.so"
$SUDO install -m 755 "$library" "$pkglibdir/.pg_workflow.so.new"
$SUDO mv -f "$pkglibdir/.pg_workflow.so.new" "$pkglibdir/pg_workflow.so"
echo "installed pg_workflow $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1) (release, $(( $(stat -c %s "$pkglibdir/pg_workflow.so") / 1024 )) KiB) into $pkglibdir"

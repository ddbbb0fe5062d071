#!/usr/bin/env bash
# Installs what `make run` and `make test` need on Debian bookworm, and quickly skips
# what is already there. Works as root and as a user with sudo.
set -euo pipefail
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

missing=()
# postgresql-15-cron, postgresql-15-pgextwlist: the README's pg_cron lines and its
# allow-list install are tested against what Debian ships; chromium (headless) loads
# the dashboard in its test.
for pkg in postgresql-15 postgresql-server-dev-15 postgresql-15-cron postgresql-15-pgextwlist libclang-dev build-essential pkg-config sudo chromium; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
    echo "cargo is missing: install Rust (https://rustup.rs) and run this again" >&2
    exit 1
fi
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        echo "==> rustup component add $component"
        rustup component add "$component"
    fi
done
# pgspot (PyPI): checks the generated install script and the upgrade scripts for
# search_path pitfalls (make test).
if ! pgspot --version 2>/dev/null | grep -q "0.9.4"; then
    echo "==> pip install pgspot==0.9.4"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore pgspot==0.9.4
fi
if ! cargo pgrx --version 2>/dev/null | grep -q "0.18.1"; then
    echo "==> installing cargo-pgrx 0.18.1 (takes a few minutes, once)"
    cargo install cargo-pgrx --version 0.18.1 --locked
fi
PG_CONFIG=$(scripts/pg_config.sh)
if ! grep -qs "^pg15" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
    echo "==> cargo pgrx init --pg15 $PG_CONFIG"
    cargo pgrx init --pg15 "$PG_CONFIG" >/dev/null
fi
# The TypeScript client's dependencies (clients/typescript), from its lock file: pg, and
# for its tests TypeScript and Bun (the npm package carries the binary).
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    echo "Node.js 20 or later is missing: install it (https://nodejs.org) and run this again" >&2
    exit 1
fi
lock=clients/typescript/package-lock.json
if ! [ clients/typescript/node_modules/.package-lock.json -nt "$lock" ]; then
    echo "==> npm ci (clients/typescript)"
    (cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error)
fi


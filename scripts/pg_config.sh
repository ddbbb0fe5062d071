#!/usr/bin/env bash
# Prints the pg_config of the PostgreSQL 15 we build against.
if [ -n "${PG_CONFIG:-}" ]; then echo "$PG_CONFIG"
elif [ -x /usr/lib/postgresql/15/bin/pg_config ]; then echo /usr/lib/postgresql/15/bin/pg_config
else command -v pg_config; fi

#!/usr/bin/env bash
# Every benchmark, against a PostgreSQL of its own (scripts/own_pg.sh) and SQLite files in
# a temp folder.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
# shellcheck source=scripts/own_pg.sh
. scripts/own_pg.sh
own_pg_start
export RUNSTORE_BENCH_PG_URL="$OWN_PG_URL"
for script in benchmarks/*.py; do
  case "$script" in benchmarks/_*) continue ;; esac
  echo "== $script"
  "$VENV/bin/python" "$script"
done

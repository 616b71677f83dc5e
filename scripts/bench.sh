#!/usr/bin/env bash
# Every benchmark, against the throwaway PostgreSQL and SQLite files in a temp folder.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
url=$(scripts/pg.sh start)
trap 'scripts/pg.sh stop' EXIT
export RUNSTORE_BENCH_PG_URL="$url"
for script in benchmarks/*.py; do
  case "$script" in benchmarks/_*) continue ;; esac
  echo "== $script"
  "$VENV/bin/python" "$script"
done

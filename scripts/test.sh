#!/usr/bin/env bash
# The whole test suite: starts the throwaway PostgreSQL (installing Debian's postgresql when
# it is missing), requires it (a missing server fails, never skips), runs pytest, stops it.
# The LangGraph Agent Server tests are required too (the dev extra installs the server).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
url=$(scripts/pg.sh start)
trap 'scripts/pg.sh stop' EXIT
export RUNSTORE_TEST_PG_URL="$url" RUNSTORE_REQUIRE_PG=1 RUNSTORE_REQUIRE_AGENT_SERVER=1
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"

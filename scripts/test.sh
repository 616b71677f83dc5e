#!/usr/bin/env bash
# The whole test suite: starts a PostgreSQL of its own (scripts/own_pg.sh: a temporary
# directory, a free port; Debian's postgresql is installed when missing), requires it (a
# missing server fails, never skips), runs pytest, then stops and removes only that server.
# The LangGraph Agent Server tests are required too (the dev extra installs the server).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
# shellcheck source=scripts/own_pg.sh
. scripts/own_pg.sh
own_pg_start
export RUNSTORE_TEST_PG_URL="$OWN_PG_URL" RUNSTORE_REQUIRE_PG=1 RUNSTORE_REQUIRE_AGENT_SERVER=1
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"

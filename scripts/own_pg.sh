# Sourced by test.sh and bench.sh: a PostgreSQL server of this run's own, in a fresh
# temporary directory on a free port, stopped and removed on exit. It never touches another
# server, so several runs on one machine (and the developers' shared server that
# `scripts/pg.sh start` keeps at its default directory and port) do not hurt each other.
#   own_pg_start   sets OWN_PG_URL, OWN_PG_DIR and OWN_PG_PORT, and installs the EXIT trap

own_pg_free_port() {
  local python=python3
  [ -x "${VENV:-.venv}/bin/python" ] && python="${VENV:-.venv}/bin/python"
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

own_pg_stop() {
  if [ -n "${OWN_PG_DIR:-}" ]; then
    RUNSTORE_PG_DIR="$OWN_PG_DIR/data" scripts/pg.sh stop || true
    rm -rf "$OWN_PG_DIR"
  fi
}

own_pg_start() {
  OWN_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/runstore-pg.XXXXXX")
  chmod 755 "$OWN_PG_DIR" # the server runs as the postgres user when we are root
  trap own_pg_stop EXIT
  local attempt
  # a free port can be taken by someone else before the server binds it: try another
  for attempt in 1 2 3 4 5; do
    OWN_PG_PORT=$(own_pg_free_port)
    if OWN_PG_URL=$(RUNSTORE_PG_DIR="$OWN_PG_DIR/data" RUNSTORE_PG_PORT="$OWN_PG_PORT" scripts/pg.sh start); then
      return 0
    fi
    echo "PostgreSQL did not start on port $OWN_PG_PORT (attempt $attempt)" >&2
  done
  return 1
}

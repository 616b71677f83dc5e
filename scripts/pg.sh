#!/usr/bin/env bash
# Throwaway PostgreSQL on 127.0.0.1 only, in RUNSTORE_PG_DIR on RUNSTORE_PG_PORT (default
# /tmp/runstore-pg and 55432: the developers' shared server, which start reuses when it is
# running). test.sh and bench.sh give it a directory and port of their own (own_pg.sh).
#   scripts/pg.sh start   -> prints the asyncpg URL; installs Debian's postgresql if missing
#   scripts/pg.sh stop    -> stops the server in RUNSTORE_PG_DIR
# PostgreSQL refuses to run as root, so the cluster belongs to the postgres user.
set -euo pipefail
PGDIR=${RUNSTORE_PG_DIR:-/tmp/runstore-pg}
PORT=${RUNSTORE_PG_PORT:-55432}

find_bin() {
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  return 1
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-start}" in
start)
  if ! BIN=$(find_bin); then
    if [ "$(id -u)" = 0 ]; then
      echo "installing Debian's postgresql" >&2
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >&2
      apt-get install -y -qq postgresql >&2
      BIN=$(find_bin)
    else
      echo "postgresql is not installed and this is not root: apt-get install postgresql" >&2
      exit 1
    fi
  fi
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home /var/lib/postgresql postgres
  fi
  if ! as_pg "$BIN/pg_ctl" -D "$PGDIR" status >/dev/null 2>&1; then
    rm -rf "$PGDIR"
    mkdir -p "$PGDIR"
    [ "$(id -u)" = 0 ] && chown postgres "$PGDIR"
    as_pg "$BIN/initdb" -D "$PGDIR" -U postgres -A trust --no-sync >/dev/null
    as_pg "$BIN/pg_ctl" -D "$PGDIR" -l "$PGDIR/server.log" -w -o \
      "-h 127.0.0.1 -p $PORT -k $PGDIR -c fsync=off -c full_page_writes=off -c max_connections=300" \
      start >/dev/null
  fi
  echo "postgresql+asyncpg://postgres@127.0.0.1:$PORT/postgres"
  ;;
stop)
  BIN=$(find_bin) || exit 0
  as_pg "$BIN/pg_ctl" -D "$PGDIR" -m fast stop >/dev/null 2>&1 || true
  ;;
*)
  echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

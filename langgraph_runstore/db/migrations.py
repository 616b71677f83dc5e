"""The versioned schema: an append-only MIGRATIONS list and the idempotent ``setup()``.

Each migration has a version, a description and DDL per dialect. ``setup()`` applies the
ones a database lacks, in order, under a lock so that several processes starting at once
apply each migration exactly once. Never edit a released migration: append a new one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from langgraph_runstore.db.foreign import refuse_clashes
from langgraph_runstore.db.opening import first_connection
from langgraph_runstore.errors import ForeignDatabaseError, SchemaVersionError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

#: Table that records which migrations a database has.
VERSION_TABLE = "runstore_schema_version"

# Any 64-bit constant works; it only has to be the same in every process.
_PG_MIGRATION_LOCK_KEY = 0x52554E53544F5245  # "RUNSTORE"


@dataclass(frozen=True)
class Migration:
    """One schema step: DDL statements for SQLite and for PostgreSQL."""

    version: int
    description: str
    sqlite: Sequence[str]
    postgresql: Sequence[str]

    def statements(self, dialect: str) -> Sequence[str]:
        return self.sqlite if dialect == "sqlite" else self.postgresql


_RUN_COLUMNS = """
    thread_id TEXT NOT NULL,
    assistant_id TEXT,
    user_id TEXT,
    status TEXT DEFAULT 'pending',
    on_disconnect TEXT DEFAULT 'cancel',
    multitask_strategy TEXT DEFAULT 'reject',
    metadata TEXT,
    kwargs TEXT,
    model_name TEXT,
    error TEXT,
    stop_reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    total_tokens BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens BIGINT NOT NULL DEFAULT 0,
    cache_creation_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens BIGINT NOT NULL DEFAULT 0,
    token_usage_by_model TEXT,
    llm_call_count INTEGER NOT NULL DEFAULT 0,
    message_count INTEGER NOT NULL DEFAULT 0,
    last_ai_message TEXT,
    first_human_message TEXT,
    owner_worker_id TEXT,
    lease_expires_at TEXT,
    cancel_requested_at TEXT,
    cancel_action TEXT,
    attempt INTEGER NOT NULL DEFAULT 0
"""

# Newest first, ties in insertion order: the indexes match list_by_thread's ORDER BY exactly.
_RUN_INDEXES = (
    "CREATE INDEX IF NOT EXISTS runs_thread_created_idx ON runs (thread_id, created_at DESC, seq)",
    "CREATE INDEX IF NOT EXISTS runs_status_idx ON runs (status)",
    "CREATE INDEX IF NOT EXISTS runs_user_idx ON runs (user_id)",
    "CREATE INDEX IF NOT EXISTS runs_created_idx ON runs (created_at DESC, seq)",
    # at most one running run per thread, across every process sharing the database
    "CREATE UNIQUE INDEX IF NOT EXISTS runs_one_running_per_thread "
    "ON runs (thread_id) WHERE status = 'running'",
)

# Checkpoint tables (the SQLAlchemySaver's layout; see langgraph_runstore/checkpoint).
# A checkpoint row holds the checkpoint minus its channel values; each channel value lives
# once per (channel, version) in the blobs table, so unchanged channels are never rewritten.
# PostgreSQL compares identifiers bytewise (COLLATE "C"): uuid6 checkpoint ids then sort by
# time whatever the database's locale, and comparisons are cheaper.
_CP_SQLITE = (
    "CREATE TABLE IF NOT EXISTS rs_checkpoints ("
    "thread_id TEXT NOT NULL, checkpoint_ns TEXT NOT NULL DEFAULT '', "
    "checkpoint_id TEXT NOT NULL, parent_checkpoint_id TEXT, run_id TEXT, "
    "type TEXT NOT NULL, checkpoint BLOB NOT NULL, channel_versions TEXT NOT NULL, "
    "metadata TEXT NOT NULL, "
    "PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS rs_checkpoints_run_id_idx ON rs_checkpoints (run_id)",
    "CREATE TABLE IF NOT EXISTS rs_checkpoint_blobs ("
    "thread_id TEXT NOT NULL, checkpoint_ns TEXT NOT NULL DEFAULT '', channel TEXT NOT NULL, "
    "version TEXT NOT NULL, type TEXT NOT NULL, chain TEXT, blob BLOB NOT NULL, "
    "PRIMARY KEY (thread_id, checkpoint_ns, channel, version))",
    "CREATE TABLE IF NOT EXISTS rs_checkpoint_writes ("
    "thread_id TEXT NOT NULL, checkpoint_ns TEXT NOT NULL DEFAULT '', "
    "checkpoint_id TEXT NOT NULL, task_id TEXT NOT NULL, idx INTEGER NOT NULL, "
    "channel TEXT NOT NULL, type TEXT NOT NULL, value BLOB NOT NULL, "
    "task_path TEXT NOT NULL DEFAULT '', "
    "PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx))",
)

_CP_POSTGRESQL = (
    "CREATE TABLE IF NOT EXISTS rs_checkpoints ("
    'thread_id TEXT COLLATE "C" NOT NULL, checkpoint_ns TEXT COLLATE "C" NOT NULL DEFAULT \'\', '
    'checkpoint_id TEXT COLLATE "C" NOT NULL, parent_checkpoint_id TEXT COLLATE "C", '
    'run_id TEXT COLLATE "C", type TEXT NOT NULL, checkpoint BYTEA NOT NULL, '
    "channel_versions JSONB NOT NULL, metadata JSONB NOT NULL, "
    "PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id))",
    "CREATE INDEX IF NOT EXISTS rs_checkpoints_run_id_idx ON rs_checkpoints (run_id)",
    "CREATE TABLE IF NOT EXISTS rs_checkpoint_blobs ("
    'thread_id TEXT COLLATE "C" NOT NULL, checkpoint_ns TEXT COLLATE "C" NOT NULL DEFAULT \'\', '
    'channel TEXT COLLATE "C" NOT NULL, version TEXT COLLATE "C" NOT NULL, '
    "type TEXT NOT NULL, chain TEXT, blob BYTEA NOT NULL, "
    "PRIMARY KEY (thread_id, checkpoint_ns, channel, version))",
    "CREATE TABLE IF NOT EXISTS rs_checkpoint_writes ("
    'thread_id TEXT COLLATE "C" NOT NULL, checkpoint_ns TEXT COLLATE "C" NOT NULL DEFAULT \'\', '
    'checkpoint_id TEXT COLLATE "C" NOT NULL, task_id TEXT COLLATE "C" NOT NULL, '
    "idx INTEGER NOT NULL, channel TEXT NOT NULL, type TEXT NOT NULL, value BYTEA NOT NULL, "
    "task_path TEXT COLLATE \"C\" NOT NULL DEFAULT '', "
    "PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx))",
)

# Several workers: shared_queue marks a pending run that any worker holding its assistant may
# claim; the indexes serve dispatch (oldest pending first), lease renewal and recovery.
_WORKER_DDL = (
    "ALTER TABLE runs ADD COLUMN shared_queue INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX IF NOT EXISTS runs_pending_idx ON runs (created_at, seq) "
    "WHERE status = 'pending'",
    "CREATE INDEX IF NOT EXISTS runs_owner_idx ON runs (owner_worker_id, lease_expires_at) "
    "WHERE owner_worker_id IS NOT NULL",
)

_QUERY_INDEXES = (
    "CREATE INDEX IF NOT EXISTS runs_status_created_idx ON runs (status, created_at DESC, seq)",
    "CREATE INDEX IF NOT EXISTS runs_user_created_idx ON runs (user_id, created_at DESC, seq)",
    "DROP INDEX IF EXISTS runs_status_idx",
    "DROP INDEX IF EXISTS runs_user_idx",
)

# Reject admission in one round trip. Under READ COMMITTED every statement inside a VOLATILE
# PL/pgSQL function reads a fresh snapshot, so the EXISTS check, taken after the thread's
# advisory lock, sees every active run committed before us; the lock is held until the
# caller's (autocommit) transaction ends. The row arrives as JSON with every runs column but
# seq, which the function draws from the identity sequence.
_PG_ADMIT = """
CREATE OR REPLACE FUNCTION runstore_admit(p_thread_id text, p_row jsonb) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_thread_id, 0));
    IF EXISTS (
        SELECT 1 FROM runs WHERE thread_id = p_thread_id AND status IN ('pending', 'running')
    ) THEN
        RETURN false;
    END IF;
    INSERT INTO runs OVERRIDING SYSTEM VALUE
    SELECT * FROM jsonb_populate_record(
        NULL::runs,
        p_row || jsonb_build_object('seq', nextval(pg_get_serial_sequence('runs', 'seq')))
    );
    RETURN true;
END
$$
"""

# Every index entry is a page a run's insert writes and commits: runs without a user_id
# (most) need no entry in the by-user index.
_LEANER_INDEXES = (
    "DROP INDEX IF EXISTS runs_user_created_idx",
    "CREATE INDEX IF NOT EXISTS runs_user_created_idx ON runs (user_id, created_at DESC, seq) "
    "WHERE user_id IS NOT NULL",
)

# What real providers report: LLM calls that gave no usage, and what a paused run waits for.
_CALL_FIDELITY = (
    "ALTER TABLE runs ADD COLUMN calls_without_usage INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN interrupts TEXT",
)

# jsonb_populate_record leaves a key the row lacks NULL, not the column's default: a process
# of an older version, which knows no calls_without_usage, would have every reject admission
# refused by its NOT NULL. The defaults of the NOT NULL columns go under the row it sends.
_PG_ADMIT_WITH_DEFAULTS = _PG_ADMIT.replace(
    "p_row || jsonb_build_object(",
    '\'{"calls_without_usage": 0, "input_tokens": 0, "output_tokens": 0, '
    '"total_tokens": 0, "cache_read_tokens": 0, "cache_creation_tokens": 0, '
    '"reasoning_tokens": 0, "llm_call_count": 0, "message_count": 0, '
    '"attempt": 0, "shared_queue": 0}\'::jsonb || p_row || jsonb_build_object(',
)

# the fleet: one row per worker, written by its heartbeat (assistants is a JSON list)
_WORKERS_TABLE = (
    "CREATE TABLE IF NOT EXISTS runstore_workers (worker_id TEXT PRIMARY KEY, "
    "host TEXT NOT NULL, pid INTEGER NOT NULL, assistants TEXT NOT NULL DEFAULT '[]', "
    "lease_seconds DOUBLE PRECISION NOT NULL, started_at TEXT NOT NULL, "
    "heartbeat_at TEXT NOT NULL)",
)

# A client's idempotency key names one run: unique across every process sharing the
# database, and no index entry for the runs without one (most).
_IDEMPOTENCY_KEY = (
    "ALTER TABLE runs ADD COLUMN idempotency_key TEXT",
    "CREATE UNIQUE INDEX IF NOT EXISTS runs_idempotency_key_idx ON runs (idempotency_key) "
    "WHERE idempotency_key IS NOT NULL",
)

# What a run's calls cost and how long they took. Nullable, so PostgreSQL's admission
# function (jsonb_populate_record leaves absent keys NULL) needs no new defaults.
_COST_AND_LATENCY = (
    "ALTER TABLE runs ADD COLUMN cost_usd DOUBLE PRECISION",
    "ALTER TABLE runs ADD COLUMN unpriced_calls INTEGER DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN llm_ms DOUBLE PRECISION DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN first_token_ms DOUBLE PRECISION",
    "ALTER TABLE runs ADD COLUMN usage_by_node TEXT",
    "ALTER TABLE runs ADD COLUMN llm_call_ms TEXT",
)

# The run event journal (journal.py): one row per event, clustered by run, so a page of a
# run's events is one range read of the primary key. Events go with their run: a trigger
# on SQLite (whose foreign keys are off unless each connection turns them on), a cascading
# foreign key on PostgreSQL.
_EVENTS_COLUMNS = "seq {seq} NOT NULL, ts TEXT NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL"
_EVENTS_SQLITE = (
    "CREATE TABLE IF NOT EXISTS runstore_events (run_id TEXT NOT NULL, "
    f"{_EVENTS_COLUMNS.format(seq='INTEGER')}, PRIMARY KEY (run_id, seq)) WITHOUT ROWID",
    "CREATE TRIGGER IF NOT EXISTS runstore_events_go_with_run AFTER DELETE ON runs "
    "BEGIN DELETE FROM runstore_events WHERE run_id = OLD.run_id; END",
)
_EVENTS_POSTGRESQL = (
    "CREATE TABLE IF NOT EXISTS runstore_events ("
    "run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE, "
    f"{_EVENTS_COLUMNS.format(seq='BIGINT')}, PRIMARY KEY (run_id, seq))",
)
# list_runs/aggregate_usage by assistant and by model read these in page order; runs that
# name no assistant (or no model yet) need no entry. Metadata filters: a GIN index of the
# JSON on PostgreSQL (containment), a walk of the created_at index on SQLite.
_FILTER_INDEXES = (
    "CREATE INDEX IF NOT EXISTS runs_assistant_created_idx "
    "ON runs (assistant_id, created_at DESC, seq) WHERE assistant_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS runs_model_created_idx "
    "ON runs (model_name, created_at DESC, seq) WHERE model_name IS NOT NULL",
)
_PG_METADATA_INDEX = (
    "CREATE INDEX IF NOT EXISTS runs_metadata_idx ON runs "
    "USING GIN ((CAST(metadata AS jsonb)) jsonb_path_ops) "
    "WHERE metadata IS NOT NULL AND metadata <> '{}'"
)

MIGRATIONS: list[Migration] = [
    Migration(
        version=1,
        description="runs table",
        sqlite=(
            # seq is the rowid: it orders runs that share a created_at by insertion
            f"CREATE TABLE IF NOT EXISTS runs (seq INTEGER PRIMARY KEY, "
            f"run_id TEXT NOT NULL UNIQUE, {_RUN_COLUMNS})",
            *_RUN_INDEXES,
        ),
        postgresql=(
            f"CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, "
            f"seq BIGINT GENERATED ALWAYS AS IDENTITY, {_RUN_COLUMNS})",
            *_RUN_INDEXES,
        ),
    ),
    Migration(
        version=2,
        description="checkpoint tables: checkpoints, per-version channel blobs, writes",
        sqlite=_CP_SQLITE,
        postgresql=_CP_POSTGRESQL,
    ),
    Migration(
        version=3,
        description="shared run queue and lease indexes for several workers",
        sqlite=_WORKER_DDL,
        postgresql=_WORKER_DDL,
    ),
    Migration(
        version=4,
        description="indexes for list_runs by status and by user, newest first",
        # list_runs filters by status or user and pages newest first: with these, each page is
        # an index range read instead of a sort of every matching run. They start with the
        # columns of runs_status_idx and runs_user_idx, which they replace at no extra cost
        # per write.
        sqlite=_QUERY_INDEXES,
        postgresql=_QUERY_INDEXES,
    ),
    Migration(
        version=5,
        description="one-statement reject admission on PostgreSQL; partial by-user index",
        sqlite=_LEANER_INDEXES,  # one INSERT ... WHERE NOT EXISTS is already atomic on SQLite
        postgresql=(_PG_ADMIT, *_LEANER_INDEXES),
    ),
    Migration(
        version=6,
        description="runs: calls_without_usage and interrupts",
        sqlite=_CALL_FIDELITY,
        postgresql=(*_CALL_FIDELITY, _PG_ADMIT_WITH_DEFAULTS),
    ),
    Migration(
        version=7,
        description="runstore_workers: the fleet, one row per worker and its heartbeat",
        sqlite=_WORKERS_TABLE,
        postgresql=_WORKERS_TABLE,
    ),
    Migration(
        version=8,
        description="runs: idempotency_key, unique",
        sqlite=_IDEMPOTENCY_KEY,
        postgresql=_IDEMPOTENCY_KEY,
    ),
    Migration(
        version=9,
        description="runs: cost_usd, unpriced_calls, llm_ms, first_token_ms, usage_by_node, "
        "llm_call_ms",
        sqlite=_COST_AND_LATENCY,
        postgresql=_COST_AND_LATENCY,
    ),
    Migration(
        version=10,
        description="runstore_events: the run event journal; indexes for assistant, model "
        "and metadata filters",
        sqlite=(*_EVENTS_SQLITE, *_FILTER_INDEXES),
        postgresql=(*_EVENTS_POSTGRESQL, *_FILTER_INDEXES, _PG_METADATA_INDEX),
    ),
]


def latest_version() -> int:
    """The schema version this package writes."""
    return MIGRATIONS[-1].version


_CREATED = re.compile(
    r"CREATE (?:UNIQUE )?(TABLE|INDEX|TRIGGER) IF NOT EXISTS (\w+)"
    r"|CREATE OR REPLACE FUNCTION (\w+)\(([^)]*)\)"
)
_IDENTITY = re.compile(r"(\w+) BIGINT GENERATED ALWAYS AS IDENTITY")


@cache
def created_names(dialect: str) -> dict[str, int]:
    """Every name the migrations create on ``dialect``, with the version that creates it:
    tables, indexes, functions (as ``name(argument types)``), and on PostgreSQL the keys and
    sequences that tables imply."""
    names: dict[str, int] = {}
    for migration in MIGRATIONS:
        for statement in migration.statements(dialect):
            for kind, name, function, arguments in _CREATED.findall(statement):
                types = ", ".join(arg.split()[-1] for arg in arguments.split(",") if arg.strip())
                created = [name or f"{function}({types})"]
                if dialect != "sqlite" and kind == "TABLE":
                    if "PRIMARY KEY" in statement:
                        created.append(f"{name}_pkey")
                    created += [f"{name}_{column}_seq" for column in _IDENTITY.findall(statement)]
                for each in created:
                    names.setdefault(each, migration.version)
    return names


async def current_version(conn: AsyncConnection) -> int:
    """The highest migration applied to the database behind ``conn`` (0 for a new one)."""
    from sqlalchemy import text

    dialect = conn.dialect.name
    # (columns, of which "version") of the version table: (0, 0) when there is none
    if dialect == "sqlite":
        shape = await conn.exec_driver_sql(
            "SELECT COUNT(*), COALESCE(SUM(name = 'version'), 0) FROM pragma_table_info(?)",
            (VERSION_TABLE,),
        )
    else:
        # text() binds in either driver's paramstyle (asyncpg's $1, psycopg's %(name)s)
        shape = await conn.execute(
            text(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE attname = 'version') FROM pg_attribute "
                "WHERE attrelid = to_regclass(:table) AND attnum > 0 AND NOT attisdropped"
            ),
            {"table": VERSION_TABLE},
        )
    columns, version_columns = (int(value or 0) for value in shape.one())
    if not columns:
        return 0
    if not version_columns:
        raise ForeignDatabaseError(
            f"database {shown_database(conn)} has a table {VERSION_TABLE!r} that "
            "langgraph-runstore did not create (it has no version column): nothing was "
            "changed. Use another database for the runs, or rename that table",
            names=(VERSION_TABLE,),
        )
    result = await conn.execute(text(f"SELECT MAX(version) FROM {VERSION_TABLE}"))
    return int(result.scalar() or 0)


def shown_database(conn: AsyncConnection) -> str:
    """The database as an error names it: a SQLite file's name, else the URL (no password)."""
    url = conn.engine.url
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return url.render_as_string(hide_password=True)


async def setup(engine: AsyncEngine) -> int:
    """Apply every missing migration and return the schema version; safe to call repeatedly.

    Raises SchemaVersionError when the database was migrated by a newer package, and
    ForeignDatabaseError, before changing anything, when another application's objects hold
    names the migrations would create (``db.foreign``).
    """
    from sqlalchemy import text

    # Fast path: one read when the schema is already current.
    async with first_connection(engine) as conn:
        version = await current_version(conn)
    _check_not_newer(version)
    if version == latest_version():
        return version

    dialect = engine.dialect.name
    async with engine.connect() as conn:
        if dialect == "sqlite":
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            # take the write lock first, so two processes never migrate at once
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            await conn.begin()
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK_KEY}
            )
        try:
            # nothing is created before this check: a database it refuses stays as it was
            version = await current_version(conn)
            _check_not_newer(version)
            await refuse_clashes(
                conn, owned=created_names(dialect), version=version, shown=shown_database(conn)
            )
            await conn.exec_driver_sql(
                f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} "
                "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            for migration in MIGRATIONS:
                if migration.version <= version:
                    continue
                for statement in migration.statements(dialect):
                    await conn.exec_driver_sql(statement)
                await conn.execute(
                    text(
                        f"INSERT INTO {VERSION_TABLE} (version, description, applied_at) "
                        "VALUES (:version, :description, :applied_at)"
                    ),
                    {
                        "version": migration.version,
                        "description": migration.description,
                        "applied_at": _utc_now_iso(),
                    },
                )
                version = migration.version
        except BaseException:
            if dialect == "sqlite":
                await conn.exec_driver_sql("ROLLBACK")
            else:
                await conn.rollback()
            raise
        if dialect == "sqlite":
            await conn.exec_driver_sql("COMMIT")
        else:
            await conn.commit()
    return version


def _check_not_newer(version: int) -> None:
    if version > latest_version():
        raise SchemaVersionError(
            f"database schema version {version} is newer than this package supports "
            f"(latest known: {latest_version()}); upgrade langgraph-runstore"
        )


def _utc_now_iso() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="microseconds")

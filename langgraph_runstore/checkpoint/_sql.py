"""SQL text of the checkpointer, per dialect, written for the driver (no ORM on the hot path).

Reads are one statement: a ``UNION ALL`` that returns the checkpoint rows, the channel blobs
they reference and their pending writes, each row tagged with its kind (see ``KIND_*``).
Blob rows are fetched once per distinct (thread, namespace, channel, version), however many
of the listed checkpoints share them. Every read row has the same ten columns:

====  =============  ===============  ==========  ====  ==========  =======================
kind  thread_id, ns  a                b           c     d (bytes)   e, f, g
====  =============  ===============  ==========  ====  ==========  =======================
0     thread, ns     checkpoint_id    parent id   type  checkpoint  metadata, versions, -
1     thread, ns     channel          version     type  blob        chain, -, -
2     thread, ns     checkpoint_id    task_id     type  value       channel, task_path, idx
====  =============  ===============  ==========  ====  ==========  =======================

A delta blob's ``chain`` is a JSON array of the earlier versions it extends; the read pulls
those blobs too (``_CHAIN`` below), so a value built from several blobs still costs one query.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig

from langgraph_runstore.checkpoint._codec import dumps_json
from langgraph_runstore.errors import InvalidInputError

KIND_CHECKPOINT = 0
KIND_BLOB = 1
KIND_WRITE = 2

CHECKPOINTS = "rs_checkpoints"
BLOBS = "rs_checkpoint_blobs"
WRITES = "rs_checkpoint_writes"

_CP_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, run_id, type, "
    "checkpoint, channel_versions, metadata"
)
_BLOB_COLUMNS = "thread_id, checkpoint_ns, channel, version, type, chain, blob"
_WRITE_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, value"
)


def _metadata_paths(prefix: tuple[str, ...], value: Any) -> list[tuple[tuple[str, ...], Any]]:
    """Flatten a nested filter dict into (path, leaf) pairs, so nested dicts match by subset."""
    if isinstance(value, Mapping) and value:
        out: list[tuple[tuple[str, ...], Any]] = []
        for key, sub in value.items():
            out.extend(_metadata_paths((*prefix, str(key)), sub))
        return out
    return [(prefix, value)]


# the same in both dialects: the rows of one read after the checkpoint rows (blobs the
# checkpoints reference, blobs their delta chains extend, the checkpoints' pending writes)
_READ_BLOBS_AND_WRITES = (
    "UNION ALL SELECT 1, b.thread_id, b.checkpoint_ns, b.channel, b.version, b.type, "
    f"b.blob, b.chain, NULL, NULL FROM k JOIN {BLOBS} AS b ON b.thread_id = k.t "
    "AND b.checkpoint_ns = k.n AND b.channel = k.ch AND b.version = k.v "
    "UNION ALL SELECT 1, b.thread_id, b.checkpoint_ns, b.channel, b.version, b.type, "
    f"b.blob, b.chain, NULL, NULL FROM q JOIN {BLOBS} AS b ON b.thread_id = q.t "
    "AND b.checkpoint_ns = q.n AND b.channel = q.ch AND b.version = q.v "
    "UNION ALL SELECT 2, w.thread_id, w.checkpoint_ns, w.checkpoint_id, w.task_id, w.type, "
    f"w.value, w.channel, w.task_path, w.idx FROM c JOIN {WRITES} AS w "
    "ON w.thread_id = c.thread_id AND w.checkpoint_ns = c.checkpoint_ns "
    "AND w.checkpoint_id = c.checkpoint_id"
)
_CHECKPOINT_SELECT = (
    "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, "
    f"metadata, channel_versions FROM {CHECKPOINTS} "
)


class SqliteSQL:
    """Statements for SQLite (``?`` parameters, JSON1 functions)."""

    dialect = "sqlite"

    @staticmethod
    def read(checkpoints_cte: str) -> str:
        """The one-statement read around a CTE ``c`` that selects the checkpoint rows."""
        # k: the distinct (thread, ns, channel, version) keys the checkpoints reference;
        # q: the versions that delta blobs among them extend. Blob bytes are read once,
        # straight into the result, never copied into a temporary table.
        return (
            f"WITH c AS ({checkpoints_cte}), "
            "k AS (SELECT DISTINCT c.thread_id AS t, c.checkpoint_ns AS n, j.key AS ch, "
            "CAST(j.value AS TEXT) AS v FROM c, json_each(c.channel_versions) AS j), "
            "q AS (SELECT DISTINCT k.t, k.n, k.ch, e.value AS v FROM k "
            f"JOIN {BLOBS} AS h ON h.thread_id = k.t AND h.checkpoint_ns = k.n "
            "AND h.channel = k.ch AND h.version = k.v, json_each(h.chain) AS e "
            "WHERE h.chain IS NOT NULL) "
            "SELECT 0, thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, "
            "checkpoint, metadata, channel_versions, NULL FROM c " + _READ_BLOBS_AND_WRITES
        )

    @classmethod
    def get_by_id(cls) -> str:
        return cls.read(
            _CHECKPOINT_SELECT + "WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"
        )

    @classmethod
    def get_latest(cls) -> str:
        return cls.read(
            _CHECKPOINT_SELECT
            + "WHERE thread_id = ? AND checkpoint_ns = ? ORDER BY checkpoint_id DESC LIMIT 1"
        )

    @classmethod
    def list_query(
        cls,
        *,
        thread_id: str | None,
        checkpoint_ns: str | None,
        checkpoint_id: str | None,
        metadata_filter: Mapping[str, Any] | None,
        before_id: str | None,
        limit: int | None,
    ) -> tuple[str, list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if thread_id is not None:
            where.append("thread_id = ?")
            params.append(thread_id)
        if checkpoint_ns is not None:
            where.append("checkpoint_ns = ?")
            params.append(checkpoint_ns)
        if checkpoint_id is not None:
            where.append("checkpoint_id = ?")
            params.append(checkpoint_id)
        for key, value in (metadata_filter or {}).items():
            if key == "run_id" and isinstance(value, str):
                where.append("run_id = ?")  # the indexed column
                params.append(value)
                continue
            for path, leaf in _metadata_paths((key,), value):
                where.append(cls._leaf_predicate(path, leaf, params))
        if before_id is not None:
            where.append("checkpoint_id < ?")
            params.append(before_id)
        sql = _CHECKPOINT_SELECT
        if where:
            sql += "WHERE " + " AND ".join(where) + " "
        sql += "ORDER BY checkpoint_id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return cls.read(sql), params

    @staticmethod
    def _leaf_predicate(path: tuple[str, ...], leaf: Any, params: list[Any]) -> str:
        for part in path:
            if '"' in part:
                raise InvalidInputError(
                    f"metadata filter key {part!r} contains a double quote, which SQLite "
                    "JSON paths cannot express"
                )
        json_path = "$" + "".join(f'."{part}"' for part in path)
        params.append(json_path)
        if leaf is None:
            return "json_type(metadata, ?) = 'null'"
        if isinstance(leaf, bool):
            return "json_type(metadata, ?) = " + ("'true'" if leaf else "'false'")
        if isinstance(leaf, (int, float, str)):
            params.append(leaf)
            # json_type keeps the string "1" from matching the number 1
            params.append(json_path)
            kind = "'text'" if isinstance(leaf, str) else "'integer', 'real'"
            return f"(json_extract(metadata, ?) = ? AND json_type(metadata, ?) IN ({kind}))"
        if isinstance(leaf, Mapping):  # empty dict: any object
            return "json_type(metadata, ?) = 'object'"
        params.append(dumps_json(leaf))
        return "json_extract(metadata, ?) = json(?)"

    INSERT_BLOB = f"INSERT OR IGNORE INTO {BLOBS} ({_BLOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
    UPSERT_CHECKPOINT = (
        f"INSERT OR REPLACE INTO {CHECKPOINTS} ({_CP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    INSERT_WRITES = (
        f"INSERT OR IGNORE INTO {WRITES} ({_WRITE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    UPSERT_WRITES = (
        f"INSERT OR REPLACE INTO {WRITES} ({_WRITE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    _OF_CHECKPOINT = "WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"
    WRITE_TASK_PATHS = f"SELECT DISTINCT task_id, task_path FROM {WRITES} {_OF_CHECKPOINT}"
    DELETE_CHECKPOINT_WRITES = f"DELETE FROM {WRITES} {_OF_CHECKPOINT}"

    # Thread and run lists travel as one JSON array parameter, so the SQL text is constant.
    _IN_THREADS = "thread_id IN (SELECT value FROM json_each(?))"
    DELETE_THREADS = (
        f"DELETE FROM {WRITES} WHERE {_IN_THREADS}",
        f"DELETE FROM {BLOBS} WHERE {_IN_THREADS}",
        f"DELETE FROM {CHECKPOINTS} WHERE {_IN_THREADS}",
    )
    _RUN_KEYS = (
        f"SELECT thread_id, checkpoint_ns, checkpoint_id FROM {CHECKPOINTS} "
        "WHERE run_id IN (SELECT value FROM json_each(?))"
    )
    THREADS_OF_RUNS = (
        f"SELECT DISTINCT thread_id FROM {CHECKPOINTS} "
        "WHERE run_id IN (SELECT value FROM json_each(?))"
    )
    DELETE_RUNS = (
        f"DELETE FROM {WRITES} WHERE (thread_id, checkpoint_ns, checkpoint_id) IN ({_RUN_KEYS})",
        f"DELETE FROM {CHECKPOINTS} WHERE run_id IN (SELECT value FROM json_each(?))",
    )
    # Drop blobs that no remaining checkpoint of the thread references, directly or as part
    # of a delta chain.
    GC_BLOBS = (
        f"DELETE FROM {BLOBS} WHERE thread_id IN (SELECT value FROM json_each(?1)) "
        "AND (thread_id, checkpoint_ns, channel, version) NOT IN ("
        "SELECT c.thread_id, c.checkpoint_ns, j.key, CAST(j.value AS TEXT) "
        f"FROM {CHECKPOINTS} AS c, json_each(c.channel_versions) AS j "
        "WHERE c.thread_id IN (SELECT value FROM json_each(?1)) "
        "UNION ALL SELECT h.thread_id, h.checkpoint_ns, h.channel, q.value "
        f"FROM {CHECKPOINTS} AS c, json_each(c.channel_versions) AS j "
        f"JOIN {BLOBS} AS h ON h.thread_id = c.thread_id AND h.checkpoint_ns = c.checkpoint_ns "
        "AND h.channel = j.key AND h.version = CAST(j.value AS TEXT), json_each(h.chain) AS q "
        "WHERE c.thread_id IN (SELECT value FROM json_each(?1)) AND h.chain IS NOT NULL)"
    )
    COPY_THREAD = (
        f"INSERT OR IGNORE INTO {CHECKPOINTS} ({_CP_COLUMNS}) SELECT ?2, checkpoint_ns, "
        "checkpoint_id, parent_checkpoint_id, run_id, type, checkpoint, channel_versions, "
        f"metadata FROM {CHECKPOINTS} WHERE thread_id = ?1",
        f"INSERT OR IGNORE INTO {BLOBS} ({_BLOB_COLUMNS}) SELECT ?2, checkpoint_ns, channel, "
        f"version, type, chain, blob FROM {BLOBS} WHERE thread_id = ?1",
        f"INSERT OR IGNORE INTO {WRITES} ({_WRITE_COLUMNS}) SELECT ?2, checkpoint_ns, "
        f"checkpoint_id, task_id, task_path, idx, channel, type, value FROM {WRITES} "
        "WHERE thread_id = ?1",
    )


class PostgresSQL:
    """Statements for PostgreSQL (``$n`` parameters, JSONB, arrays), for asyncpg and for
    psycopg's raw cursors alike."""

    dialect = "postgresql"

    @staticmethod
    def read(checkpoints_cte: str) -> str:
        """The one-statement read around a CTE ``c`` that selects the checkpoint rows."""
        return (
            f"WITH c AS ({checkpoints_cte}), "
            "k AS (SELECT DISTINCT c.thread_id AS t, c.checkpoint_ns AS n, j.key AS ch, "
            "j.value AS v FROM c CROSS JOIN LATERAL jsonb_each_text(c.channel_versions) AS j), "
            "q AS (SELECT DISTINCT k.t, k.n, k.ch, e.value AS v FROM k "
            f"JOIN {BLOBS} AS h ON h.thread_id = k.t AND h.checkpoint_ns = k.n "
            "AND h.channel = k.ch AND h.version = k.v "
            "CROSS JOIN LATERAL jsonb_array_elements_text(h.chain::jsonb) AS e "
            "WHERE h.chain IS NOT NULL) "
            "SELECT 0::int AS kind, thread_id, checkpoint_ns, checkpoint_id, "
            "parent_checkpoint_id, type, checkpoint, metadata::text, channel_versions::text, "
            "NULL::int FROM c " + _READ_BLOBS_AND_WRITES
        )

    @classmethod
    def get_by_id(cls) -> str:
        return cls.read(
            _CHECKPOINT_SELECT
            + "WHERE thread_id = $1 AND checkpoint_ns = $2 AND checkpoint_id = $3"
        )

    @classmethod
    def get_latest(cls) -> str:
        return cls.read(
            _CHECKPOINT_SELECT
            + "WHERE thread_id = $1 AND checkpoint_ns = $2 ORDER BY checkpoint_id DESC LIMIT 1"
        )

    @classmethod
    def list_query(
        cls,
        *,
        thread_id: str | None,
        checkpoint_ns: str | None,
        checkpoint_id: str | None,
        metadata_filter: Mapping[str, Any] | None,
        before_id: str | None,
        limit: int | None,
    ) -> tuple[str, list[Any]]:
        where: list[str] = []
        params: list[Any] = []

        def arg(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        if thread_id is not None:
            where.append(f"thread_id = {arg(thread_id)}")
        if checkpoint_ns is not None:
            where.append(f"checkpoint_ns = {arg(checkpoint_ns)}")
        if checkpoint_id is not None:
            where.append(f"checkpoint_id = {arg(checkpoint_id)}")
        if metadata_filter:
            rest = dict(metadata_filter)
            run_id = rest.get("run_id")
            if isinstance(run_id, str):
                del rest["run_id"]
                where.append(f"run_id = {arg(run_id)}")  # the indexed column
            if rest:
                # JSONB containment: every filter key must be present with that value
                where.append(f"metadata @> {arg(dumps_json(rest))}::text::jsonb")
        if before_id is not None:
            where.append(f"checkpoint_id < {arg(before_id)}")
        sql = _CHECKPOINT_SELECT
        if where:
            sql += "WHERE " + " AND ".join(where) + " "
        sql += "ORDER BY checkpoint_id DESC"
        if limit is not None:
            sql += f" LIMIT {arg(int(limit))}"
        return cls.read(sql), params

    # Blobs and the checkpoint row in one statement: one round trip, and atomic.
    PUT = (
        f"WITH b AS (INSERT INTO {BLOBS} ({_BLOB_COLUMNS}) "
        "SELECT $1, $2, x.channel, x.version, x.type, x.chain, x.blob "
        "FROM unnest($10::text[], $11::text[], $12::text[], $13::text[], $14::bytea[]) "
        "AS x(channel, version, type, chain, blob) "
        "ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING) "
        f"INSERT INTO {CHECKPOINTS} ({_CP_COLUMNS}) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::jsonb, $9::text::jsonb) "
        "ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET "
        "parent_checkpoint_id = EXCLUDED.parent_checkpoint_id, run_id = EXCLUDED.run_id, "
        "type = EXCLUDED.type, checkpoint = EXCLUDED.checkpoint, "
        "channel_versions = EXCLUDED.channel_versions, metadata = EXCLUDED.metadata"
    )
    _WRITES_INSERT = (
        f"INSERT INTO {WRITES} ({_WRITE_COLUMNS}) "
        "SELECT $1, $2, $3, $4, $5, x.idx, x.channel, x.type, x.value "
        "FROM unnest($6::int[], $7::text[], $8::text[], $9::bytea[]) "
        "AS x(idx, channel, type, value) "
        "ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) "
    )
    INSERT_WRITES = _WRITES_INSERT + "DO NOTHING"
    UPSERT_WRITES = (
        _WRITES_INSERT + "DO UPDATE SET channel = EXCLUDED.channel, type = EXCLUDED.type, "
        "value = EXCLUDED.value, task_path = EXCLUDED.task_path"
    )
    DELETE_CHECKPOINT_WRITES = (
        f"DELETE FROM {WRITES} WHERE thread_id = $1 AND checkpoint_ns = $2 "
        "AND checkpoint_id = $3 RETURNING task_id, task_path"
    )
    INSERT_TASK_WRITES = (
        f"INSERT INTO {WRITES} ({_WRITE_COLUMNS}) "
        "SELECT $1, $2, $3, x.task_id, x.task_path, x.idx, x.channel, x.type, x.value "
        "FROM unnest($4::text[], $5::text[], $6::int[], $7::text[], $8::text[], $9::bytea[]) "
        "AS x(task_id, task_path, idx, channel, type, value) ON CONFLICT DO NOTHING"
    )
    DELETE_THREADS = (
        f"WITH w AS (DELETE FROM {WRITES} WHERE thread_id = ANY($1::text[])), "
        f"b AS (DELETE FROM {BLOBS} WHERE thread_id = ANY($1::text[])) "
        f"DELETE FROM {CHECKPOINTS} WHERE thread_id = ANY($1::text[])"
    )
    DELETE_RUNS = (
        f"WITH d AS (DELETE FROM {CHECKPOINTS} WHERE run_id = ANY($1::text[]) "
        "RETURNING thread_id, checkpoint_ns, checkpoint_id), "
        f"w AS (DELETE FROM {WRITES} AS w USING d WHERE w.thread_id = d.thread_id "
        "AND w.checkpoint_ns = d.checkpoint_ns AND w.checkpoint_id = d.checkpoint_id) "
        "SELECT DISTINCT thread_id FROM d"
    )
    GC_BLOBS = (
        f"DELETE FROM {BLOBS} AS b WHERE b.thread_id = ANY($1::text[]) "
        "AND (b.thread_id, b.checkpoint_ns, b.channel, b.version) NOT IN ("
        "SELECT c.thread_id, c.checkpoint_ns, j.key, j.value "
        f"FROM {CHECKPOINTS} AS c CROSS JOIN LATERAL jsonb_each_text(c.channel_versions) AS j "
        "WHERE c.thread_id = ANY($1::text[]) "
        "UNION ALL SELECT h.thread_id, h.checkpoint_ns, h.channel, q.value "
        f"FROM {CHECKPOINTS} AS c CROSS JOIN LATERAL jsonb_each_text(c.channel_versions) AS j "
        f"JOIN {BLOBS} AS h ON h.thread_id = c.thread_id AND h.checkpoint_ns = c.checkpoint_ns "
        "AND h.channel = j.key AND h.version = j.value "
        "CROSS JOIN LATERAL jsonb_array_elements_text(h.chain::jsonb) AS q "
        "WHERE c.thread_id = ANY($1::text[]) AND h.chain IS NOT NULL)"
    )
    COPY_THREAD = (
        f"WITH c AS (INSERT INTO {CHECKPOINTS} ({_CP_COLUMNS}) SELECT $2, checkpoint_ns, "
        "checkpoint_id, parent_checkpoint_id, run_id, type, checkpoint, channel_versions, "
        f"metadata FROM {CHECKPOINTS} WHERE thread_id = $1 ON CONFLICT DO NOTHING), "
        f"b AS (INSERT INTO {BLOBS} ({_BLOB_COLUMNS}) SELECT $2, checkpoint_ns, channel, "
        f"version, type, chain, blob FROM {BLOBS} WHERE thread_id = $1 ON CONFLICT DO NOTHING) "
        f"INSERT INTO {WRITES} ({_WRITE_COLUMNS}) SELECT $2, checkpoint_ns, checkpoint_id, "
        f"task_id, task_path, idx, channel, type, value FROM {WRITES} WHERE thread_id = $1 "
        "ON CONFLICT DO NOTHING"
    )


def config_target(config: RunnableConfig) -> tuple[str, str, Any]:
    """(thread_id, checkpoint_ns, checkpoint_id or None) from a config; thread_id required."""
    configurable = config.get("configurable") if isinstance(config, Mapping) else None
    thread_id = configurable.get("thread_id") if configurable else None
    if thread_id is None:
        raise InvalidInputError(
            "the config has no thread_id: pass {'configurable': {'thread_id': ...}} "
            "(a checkpointer stores every checkpoint under a thread)"
        )
    assert configurable is not None
    return (
        str(thread_id),
        configurable.get("checkpoint_ns") or "",
        configurable.get("checkpoint_id"),
    )

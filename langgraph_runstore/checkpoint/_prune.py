"""``prune(strategy="keep_latest")``: which rows it keeps, and its SQL for both dialects.

Per thread, keep_latest keeps what reading and resuming the thread's latest state needs:

* the latest checkpoint of each namespace, made a root (its parent is deleted), with its
  pending writes and the channel blobs it references (delta chains included);
* but none of a finished subgraph call: a namespace with a task id in it (``node:task``,
  nested ``a:1|b:2``) goes entirely once the root checkpoint it ran under (its metadata's
  ``parents[""]``) is saved and is not the one kept. A call under the kept root checkpoint
  (a subgraph interrupted in the last step) stays, as does one whose root checkpoint is not
  saved yet (a run in flight saves in the background). A namespace without a task id is a
  subgraph with a checkpointer of its own, whose state outlives each call: it keeps its
  latest checkpoint like the root namespace.

Everything else of the thread goes. Writes whose checkpoint is not saved are left alone:
a run saves a step's writes in the background, where they can commit before their
checkpoint does.

A thread that uses a ``DeltaChannel`` is refused, as LangGraph's PostgreSQL saver refuses
it: such a channel's value is rebuilt from the writes of earlier checkpoints, so keeping the
latest alone would read back empty. LangGraph marks those threads with per-channel
counters in the checkpoint metadata (``counters_since_delta_snapshot``; LangGraph.js with
``delta_writes_versioned``). Threads are checked before anything is deleted, in the same
transaction, so a refused call changes nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from langgraph_runstore.checkpoint._codec import dumps_json
from langgraph_runstore.checkpoint._sql import BLOBS, CHECKPOINTS, WRITES, SqliteSQL
from langgraph_runstore.errors import PruneRefusedError

#: metadata keys that mark a thread whose state depends on earlier checkpoints' writes
DELTA_MARKERS = ("counters_since_delta_snapshot", "delta_writes_versioned")

# --- SQLite: several statements in one BEGIN IMMEDIATE transaction -------------------------

_IN_THREADS = "thread_id IN (SELECT value FROM json_each(?1))"
_KEPT = (
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), "
    "json_extract(value, '$[2]') FROM json_each(?2)"
)
_CALLS = "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?2)"

SQLITE_DELTA_THREADS = (
    f"SELECT DISTINCT thread_id FROM {CHECKPOINTS} WHERE {_IN_THREADS} AND ("
    + (" OR ".join(f"json_type(metadata, '$.{key}') IS NOT NULL" for key in DELTA_MARKERS))
    + ") ORDER BY thread_id"
)
# per namespace: the latest checkpoint, the root checkpoint it ran under, whether that is saved
SQLITE_HEADS = (
    "SELECT h.thread_id, h.checkpoint_ns, h.head, "
    "json_extract(c.metadata, '$.parents.\"\"') AS root, EXISTS (SELECT 1 "
    f"FROM {CHECKPOINTS} AS r WHERE r.thread_id = h.thread_id AND r.checkpoint_ns = '' "
    "AND r.checkpoint_id = json_extract(c.metadata, '$.parents.\"\"')) "
    "FROM (SELECT thread_id, checkpoint_ns, MAX(checkpoint_id) AS head "
    f"FROM {CHECKPOINTS} WHERE {_IN_THREADS} GROUP BY thread_id, checkpoint_ns) AS h "
    f"JOIN {CHECKPOINTS} AS c ON c.thread_id = h.thread_id "
    "AND c.checkpoint_ns = h.checkpoint_ns AND c.checkpoint_id = h.head"
)
_SQLITE_UNKEPT = (
    f"SELECT thread_id, checkpoint_ns, checkpoint_id FROM {CHECKPOINTS} WHERE {_IN_THREADS} "
    f"AND (thread_id, checkpoint_ns, checkpoint_id) NOT IN ({_KEPT})"
)
SQLITE_PRUNE = (
    # writes go by the checkpoints deleted (see the module docstring)
    f"DELETE FROM {WRITES} WHERE {_IN_THREADS} "
    f"AND (thread_id, checkpoint_ns, checkpoint_id) IN ({_SQLITE_UNKEPT})",
    f"DELETE FROM {CHECKPOINTS} WHERE {_IN_THREADS} "
    f"AND (thread_id, checkpoint_ns, checkpoint_id) NOT IN ({_KEPT})",
    f"UPDATE {CHECKPOINTS} SET parent_checkpoint_id = NULL "
    f"WHERE (thread_id, checkpoint_ns, checkpoint_id) IN ({_KEPT}) "
    "AND parent_checkpoint_id IS NOT NULL",
)
SQLITE_DROP_CALLS = tuple(
    f"DELETE FROM {table} WHERE {_IN_THREADS} AND (thread_id, checkpoint_ns) IN ({_CALLS})"
    for table in (WRITES, CHECKPOINTS)
)


def is_call_namespace(ns: str) -> bool:
    """A subgraph call's namespace carries its task id after a ``:``."""
    return ":" in ns


def refuse(refused: Sequence[str]) -> None:
    """Raise PruneRefusedError naming the DeltaChannel threads, if there are any."""
    if refused:
        raise PruneRefusedError(
            "keep_latest cannot prune threads that use a DeltaChannel (their state is rebuilt "
            f"from earlier checkpoints' writes): {', '.join(refused)}; nothing was deleted. "
            "Prune them with strategy='delete', or leave them",
            thread_id=refused[0] if len(refused) == 1 else None,
            thread_ids=refused,
        )


def prune_sqlite(db: sqlite3.Connection, thread_ids: Sequence[str]) -> None:
    """keep_latest on SQLite, inside the caller's write transaction."""
    threads = dumps_json(list(thread_ids))
    refuse([str(r[0]) for r in db.execute(SQLITE_DELTA_THREADS, (threads,))])
    heads = db.execute(SQLITE_HEADS, (threads,)).fetchall()
    root_heads = {thread: head for thread, ns, head, _, _ in heads if ns == ""}
    calls = [
        [thread, ns]
        for thread, ns, _, root, root_saved in heads
        if is_call_namespace(ns) and root_saved and root != root_heads.get(thread)
    ]
    dropped = {(thread, ns) for thread, ns in calls}
    kept = [[t, ns, head] for t, ns, head, _, _ in heads if (t, ns) not in dropped]
    if calls:
        for statement in SQLITE_DROP_CALLS:
            db.execute(statement, (threads, dumps_json(calls)))
    for statement in SQLITE_PRUNE:
        db.execute(statement, (threads, dumps_json(kept)))
    db.execute(SqliteSQL.GC_BLOBS, (threads,))


# --- PostgreSQL: one statement, so one snapshot: rows a run saves meanwhile are not seen ---

_PG_KEYS = "{a}.thread_id = {b}.thread_id AND {a}.checkpoint_ns = {b}.checkpoint_ns"
_PG_ROW = _PG_KEYS + " AND {a}.checkpoint_id = {b}.checkpoint_id"


def _keys(a: str, b: str) -> str:
    return _PG_KEYS.format(a=a, b=b)


def _row(a: str, b: str) -> str:
    return _PG_ROW.format(a=a, b=b)


#: $1: the thread ids. Returns the refused (DeltaChannel) threads; nothing changes if any.
PG_PRUNE = (
    f"WITH delta AS (SELECT DISTINCT thread_id FROM {CHECKPOINTS} "
    "WHERE thread_id = ANY($1::text[]) AND ("
    + " OR ".join(f"metadata ? '{key}'" for key in DELTA_MARKERS)
    + ")), "
    "heads AS (SELECT DISTINCT ON (c.thread_id, c.checkpoint_ns) c.thread_id, "
    "c.checkpoint_ns, c.checkpoint_id, c.metadata -> 'parents' ->> '' AS root "
    f"FROM {CHECKPOINTS} AS c WHERE c.thread_id = ANY($1::text[]) "
    "AND NOT EXISTS (SELECT 1 FROM delta) "
    "ORDER BY c.thread_id DESC, c.checkpoint_ns DESC, c.checkpoint_id DESC), "
    "calls AS (SELECT h.thread_id, h.checkpoint_ns FROM heads AS h "
    "WHERE strpos(h.checkpoint_ns, ':') > 0 "
    f"AND EXISTS (SELECT 1 FROM {CHECKPOINTS} AS r WHERE r.thread_id = h.thread_id "
    "AND r.checkpoint_ns = '' AND r.checkpoint_id = h.root) "
    "AND NOT EXISTS (SELECT 1 FROM heads AS r WHERE r.thread_id = h.thread_id "
    "AND r.checkpoint_ns = '' AND r.checkpoint_id = h.root)), "
    "kept AS (SELECT h.thread_id, h.checkpoint_ns, h.checkpoint_id FROM heads AS h "
    f"WHERE NOT EXISTS (SELECT 1 FROM calls AS x WHERE {_keys('x', 'h')})), "
    f"gone AS (SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id FROM {CHECKPOINTS} AS c "
    f"JOIN heads AS h ON {_keys('h', 'c')} "
    f"WHERE NOT EXISTS (SELECT 1 FROM kept AS k WHERE {_row('k', 'c')})), "
    f"dc AS (DELETE FROM {CHECKPOINTS} AS c USING gone AS g WHERE {_row('c', 'g')}), "
    f"dw AS (DELETE FROM {WRITES} AS w WHERE w.thread_id = ANY($1::text[]) "
    f"AND (EXISTS (SELECT 1 FROM gone AS g WHERE {_row('g', 'w')}) "
    f"OR EXISTS (SELECT 1 FROM calls AS x WHERE {_keys('x', 'w')}))), "
    f"roots AS (UPDATE {CHECKPOINTS} AS c SET parent_checkpoint_id = NULL FROM kept AS k "
    f"WHERE {_row('c', 'k')} AND c.parent_checkpoint_id IS NOT NULL), "
    # the blobs the kept checkpoints reference, and the earlier ones their delta chains extend
    "refs AS (SELECT c.thread_id, c.checkpoint_ns, j.key AS channel, j.value AS version "
    f"FROM kept AS k JOIN {CHECKPOINTS} AS c ON {_row('c', 'k')} "
    "CROSS JOIN LATERAL jsonb_each_text(c.channel_versions) AS j), "
    "needed AS (SELECT thread_id, checkpoint_ns, channel, version FROM refs "
    "UNION ALL SELECT r.thread_id, r.checkpoint_ns, r.channel, e.value FROM refs AS r "
    f"JOIN {BLOBS} AS h ON {_keys('h', 'r')} AND h.channel = r.channel "
    "AND h.version = r.version "
    "CROSS JOIN LATERAL jsonb_array_elements_text(h.chain::jsonb) AS e "
    "WHERE h.chain IS NOT NULL), "
    f"db AS (DELETE FROM {BLOBS} AS b WHERE b.thread_id = ANY($1::text[]) "
    "AND NOT EXISTS (SELECT 1 FROM delta) "
    f"AND NOT EXISTS (SELECT 1 FROM needed AS n WHERE {_keys('n', 'b')} "
    "AND n.channel = b.channel AND n.version = b.version)) "
    "SELECT thread_id FROM delta ORDER BY thread_id"
)

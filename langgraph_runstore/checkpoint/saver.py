"""SQLAlchemySaver: a LangGraph checkpointer on the run store's SQLAlchemy engine."""

from __future__ import annotations

import asyncio
import os
import random
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from langgraph_runstore.checkpoint._backend import (
    Backend,
    BlobRow,
    CheckpointRow,
    PostgresBackend,
    Row,
    SqliteBackend,
    TaskWriteRow,
    WriteRow,
    seconds,
)
from langgraph_runstore.checkpoint._codec import decode, dumps_json, encode, loads_json
from langgraph_runstore.checkpoint._deltas import ListDeltas, ListState
from langgraph_runstore.checkpoint._sql import KIND_BLOB, KIND_CHECKPOINT, config_target
from langgraph_runstore.checkpoint.first_use import FirstUse
from langgraph_runstore.checkpoint.opened import OpenedSaver
from langgraph_runstore.checkpoint.sync_methods import SyncMethods
from langgraph_runstore.db import migrations
from langgraph_runstore.db.engine import create_engine
from langgraph_runstore.errors import CheckpointError, DatabaseConfigError, InvalidInputError
from langgraph_runstore.loop_thread import LoopThread

T = TypeVar("T")

# checkpoint keys stored in their own columns/tables rather than in the serialised body
_SPLIT_KEYS = ("channel_values", "channel_versions")


class SQLAlchemySaver(FirstUse, SyncMethods):
    """LangGraph checkpointer that stores checkpoints in the run store's database.

    Give it the AsyncEngine the run store uses (SQLite through aiosqlite, or PostgreSQL
    through asyncpg or psycopg 3), or open one with :meth:`from_url`. It creates or migrates
    its tables on first use, as the stock savers do (``await saver.setup()`` does it up
    front; it is idempotent, and first uses that overlap run it once per loop, under the
    database's migration lock across processes). ``await saver.aclose()`` (or ``async with saver``)
    releases what the saver holds; it does not dispose of the engine.

    Storage: a checkpoint row holds the checkpoint without its channel values; each value is
    stored once per (channel, version), only for the channels in ``new_versions``, and a read
    reassembles the values from the versions the checkpoint lists, in a single statement that
    also returns the pending writes. Checkpoints carry their metadata's ``run_id`` in an
    indexed column, for ``adelete_for_runs`` and ``alist(filter={"run_id": ...})``.

    Long list channels (message histories) grow by appends: when a new version of such a
    channel begins with the very objects of the version last stored or read for that thread,
    only the appended items are stored, chained to the earlier blobs, with a full copy every
    few dozen steps (see ``_deltas``). This assumes stored items are not mutated in place;
    ``list_deltas=False`` stores every version in full. Large blobs are deflated.

    Values go through ``serde`` (a ``JsonPlusSerializer`` unless given; ``with_allowlist``
    and ``EncryptedSerializer`` are honoured). Metadata and channel versions are stored as
    plain JSON, because the database filters on them.

    On PostgreSQL the saver keeps up to ``max_connections`` (default: 8, or the engine's
    pool size if smaller) of the engine's pooled connections warm for its operations and
    hands them back on ``aclose()``, so close a saver you made yourself when done with it.
    An operation cut off mid-way is retried on new connections for ``reconnect_timeout`` s.

    Sync API: ``get_tuple``, ``list``, ``put`` … (what ``graph.invoke`` and ``graph.stream``
    call) run the async method on a private event loop that the saver starts on a daemon
    thread on first use, and block until it finishes. That works the same from a script
    with no loop, from a worker thread beside a running loop, and from a thread that runs a
    loop itself (a Jupyter cell, as with the stock ``SqliteSaver``): that loop waits for the
    call, as for any blocking call, and the call never needs it, since everything it awaits
    lives on the private loop (on PostgreSQL the private loop has its own copy of the
    engine's pool, since async driver connections belong to one loop). A database lock held by
    another connection is waited for as usual (on SQLite, up to ``busy_timeout``). The one
    wait that could never end, on a set-up or rollback transaction this saver left open on
    the very loop that the call blocks, raises RuntimeError instead.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        serde: SerializerProtocol | None = None,
        max_connections: int | None = None,
        list_deltas: bool = True,
        reconnect_timeout: float = 10.0,
    ) -> None:
        super().__init__(serde=serde)
        self._deltas = ListDeltas() if list_deltas else None
        # with_allowlist() makes shallow copies that share the backend; only the original
        # warns about an unclosed connection
        self._owner_id = id(self)
        self.engine = engine
        self._bridge = LoopThread(f"SQLAlchemySaver-{id(self):x}")
        dialect, reconnect_timeout = engine.dialect.name, seconds(reconnect_timeout)
        backend: Backend
        if dialect == "sqlite" and engine.dialect.driver == "aiosqlite":
            backend = SqliteBackend(engine)
        elif dialect == "postgresql" and engine.dialect.driver in ("asyncpg", "psycopg"):
            backend = PostgresBackend(engine, self._bridge, max_connections, reconnect_timeout)
        else:
            raise DatabaseConfigError(
                "SQLAlchemySaver needs a sqlite+aiosqlite, postgresql+asyncpg or "
                f"postgresql+psycopg engine, not {dialect}+{engine.dialect.driver}"
            )
        self._backend = backend
        self._sql = backend.sql
        self._get_by_id = backend.sql.get_by_id()
        self._get_latest = backend.sql.get_latest()

    @classmethod
    def from_url(
        cls,
        url: str | os.PathLike[str] | URL,
        *,
        serde: SerializerProtocol | None = None,
        max_connections: int | None = None,
        list_deltas: bool = True,
        reconnect_timeout: float = 10.0,
        **engine_kwargs: Any,
    ) -> OpenedSaver[SQLAlchemySaver]:
        """Open an engine for ``url``, set the schema up, yield a saver; dispose on exit.

        Use it with ``async with`` in async code, or a plain ``with`` in a script (as with
        ``SqliteSaver.from_conn_string``). Extra keyword arguments go to
        :func:`langgraph_runstore.db.create_engine`.
        """
        return OpenedSaver(
            lambda: cls(
                create_engine(url, **engine_kwargs),
                serde=serde,
                max_connections=max_connections,
                list_deltas=list_deltas,
                reconnect_timeout=reconnect_timeout,
            )
        )

    async def setup(self) -> None:
        """Create or migrate the tables (runs and checkpoints); safe to call repeatedly."""
        with self._transaction_open():
            await migrations.setup(self._backend.setup_engine())
        self._schema_ready = True

    async def aclose(self) -> None:
        """Release the saver's connection and stop its private loop; the engine stays open."""
        bridge_loop = self._bridge.loop
        if bridge_loop is not None:
            if self._bridge.is_current():
                await self._backend.aclose_bridge()
            else:
                done = asyncio.run_coroutine_threadsafe(self._backend.aclose_bridge(), bridge_loop)
                await asyncio.wrap_future(done)
                self._bridge.stop()
        await self._backend.aclose()

    def setup_sync(self) -> None:
        """Synchronous :meth:`setup`, run on the saver's own loop (where its sync calls
        hold their connections), for scripts and notebook cells."""
        self._sync("setup_sync", self.setup)

    def close(self, *, dispose_engine: bool = False) -> None:
        """Synchronous :meth:`aclose`, for scripts and notebook cells; with
        ``dispose_engine`` the engine is disposed too, on the loop its connections use."""
        self._refuse_waiting_on_caller("close")

        async def close_on_bridge() -> None:
            await self._backend.aclose_bridge()
            await self._backend.aclose()
            if dispose_engine:
                await self.engine.dispose()

        try:
            self._bridge.run(close_on_bridge)
        finally:
            self._bridge.stop()

    async def __aenter__(self) -> SQLAlchemySaver:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        backend = getattr(self, "_backend", None)
        owner = getattr(self, "_owner_id", None) == id(self)
        if owner and backend is not None and backend.holds_connection():
            warnings.warn(
                f"{self!r} was garbage-collected while holding a database connection; "
                "call 'await saver.aclose()' (or use 'async with') when done with it",
                ResourceWarning,
                stacklevel=1,
            )

    # --- reads --------------------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Fetch one checkpoint (the latest when config has no checkpoint_id), or None."""
        if not self._schema_ready:
            await self._ensure_schema()
        thread_id, checkpoint_ns, checkpoint_id = config_target(config)
        if checkpoint_id:
            rows = await self._backend.fetch(
                self._get_by_id, (thread_id, checkpoint_ns, str(checkpoint_id))
            )
        else:
            rows = await self._backend.fetch(self._get_latest, (thread_id, checkpoint_ns))
        if not rows:
            return None
        found = self._assemble(rows, remember=self._deltas is not None)
        return found[0] if found else None

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Yield matching checkpoints, newest first.

        ``config`` narrows to a thread (and to a namespace when it names one, and to one
        checkpoint when it names one); ``filter`` matches metadata keys (nested dicts match
        as subsets); ``before`` keeps checkpoints older than the one it names.
        """
        thread_id = checkpoint_ns = checkpoint_id = None
        if config is not None:
            configurable = config.get("configurable") or {}
            if configurable.get("thread_id") is not None:
                thread_id = str(configurable["thread_id"])
            checkpoint_ns = configurable.get("checkpoint_ns")
            checkpoint_id = configurable.get("checkpoint_id")
        before_id = None
        if before is not None:
            before_id = (before.get("configurable") or {}).get("checkpoint_id")
        if limit is not None and limit < 0:
            raise InvalidInputError(f"limit must be >= 0, not {limit!r}", thread_id=thread_id)
        if filter is not None and not isinstance(filter, Mapping):
            raise InvalidInputError("filter must be a dict of metadata keys to values")
        sql, params = self._sql.list_query(
            thread_id=thread_id,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=str(checkpoint_id) if checkpoint_id else None,
            metadata_filter=filter,
            before_id=str(before_id) if before_id else None,
            limit=limit,
        )
        if not self._schema_ready:
            await self._ensure_schema()
        rows = await self._backend.fetch(sql, params)
        for found in self._assemble(rows):
            yield found

    def _assemble(self, rows: Sequence[Row], *, remember: bool = False) -> list[CheckpointTuple]:
        """Turn the rows of one read statement into CheckpointTuples, newest first."""
        checkpoints: list[Row] = []
        blobs: dict[tuple[str, str, str, str], Row] = {}
        writes: dict[tuple[str, str, str], list[Row]] = {}
        for row in rows:
            kind = row[0]
            if kind == KIND_CHECKPOINT:
                checkpoints.append(row)
            elif kind == KIND_BLOB:
                blobs[(row[1], row[2], row[3], row[4])] = row
            else:
                writes.setdefault((row[1], row[2], row[3]), []).append(row)
        if len(checkpoints) > 1:
            checkpoints.sort(key=lambda r: cast(str, r[3]), reverse=True)
        return [self._load_tuple(row, blobs, writes, remember) for row in checkpoints]

    def _load_tuple(
        self,
        row: Row,
        blobs: Mapping[tuple[str, str, str, str], Row],
        writes: Mapping[tuple[str, str, str], list[Row]],
        remember: bool = False,
    ) -> CheckpointTuple:
        _, thread_id, ns, checkpoint_id, parent_id, type_, body, metadata, versions_json, _ = row
        try:
            checkpoint = cast(Checkpoint, self.serde.loads_typed((type_, bytes(body))))
            versions: ChannelVersions = loads_json(versions_json)
            meta = cast(CheckpointMetadata, loads_json(metadata))
        except Exception as exc:
            raise CheckpointError(
                f"cannot decode checkpoint {checkpoint_id!r} of thread {thread_id!r} "
                f"(namespace {ns!r}): {type(exc).__name__}: {exc}",
                thread_id=thread_id,
            ) from exc
        values: dict[str, Any] = {}
        for channel, version in versions.items():
            blob = blobs.get((thread_id, ns, channel, str(version)))
            if blob is not None:
                value = values[channel] = self._load_blob(blob, blobs)
                if remember and self._deltas is not None and type(value) is list:
                    chain = tuple(loads_json(blob[7])) if blob[7] is not None else ()
                    self._deltas.remember((thread_id, ns, channel), blob[4], value, chain)
        checkpoint["channel_values"] = values
        checkpoint["channel_versions"] = versions
        pending: list[PendingWrite] = []
        task_rows = writes.get((thread_id, ns, checkpoint_id))
        if task_rows:
            # writes_sort_key order: (task_path, task_id, idx)
            task_rows.sort(key=lambda r: (r[8], r[4], r[9]))
            for w in task_rows:
                pending.append((w[4], w[7], self._decode(w[5], w[6], thread_id, f"write {w[7]!r}")))
        return CheckpointTuple(
            config={
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": ns,
                    "checkpoint_id": checkpoint_id,
                }
            },
            checkpoint=checkpoint,
            metadata=meta,
            parent_config=(
                {
                    "configurable": {
                        "thread_id": thread_id,
                        "checkpoint_ns": ns,
                        "checkpoint_id": parent_id,
                    }
                }
                if parent_id
                else None
            ),
            pending_writes=pending,
        )

    def _load_blob(self, blob: Row, blobs: Mapping[tuple[str, str, str, str], Row]) -> Any:
        _, thread_id, ns, channel, version, type_, data, chain, _, _ = blob
        what = f"channel {channel!r} version {version!r}"
        if chain is None:
            return self._decode(type_, data, thread_id, what)
        # a delta: the list is the concatenation of the chain's blobs, then this one's
        value: list[Any] = []
        for earlier in loads_json(chain):
            part = blobs.get((thread_id, ns, channel, earlier))
            if part is None:
                raise CheckpointError(
                    f"{what} of thread {thread_id!r} extends version {earlier!r}, "
                    "which is missing from the database",
                    thread_id=thread_id,
                )
            value.extend(self._decode(part[5], part[6], thread_id, what))
        value.extend(self._decode(type_, data, thread_id, what))
        return value

    def _decode(self, type_: str, data: bytes, thread_id: str, what: str) -> Any:
        try:
            return decode(self.serde, type_, data)
        except Exception as exc:
            raise CheckpointError(
                f"cannot decode {what} of thread {thread_id!r}: {type(exc).__name__}: {exc}",
                thread_id=thread_id,
            ) from exc

    # --- writes -------------------------------------------------------------------------------

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint and the values of the channels in ``new_versions``."""
        thread_id, checkpoint_ns, parent_id = config_target(config)
        values = checkpoint["channel_values"]
        blobs: list[BlobRow] = []
        remembered: list[tuple[tuple[str, str, str], ListState]] = []
        deltas = self._deltas
        for channel, version in new_versions.items():
            if channel not in values:  # a channel without a value (emptied) needs no blob
                continue
            value = values[channel]
            chain_json = None
            if deltas is not None and type(value) is list:
                key = (thread_id, checkpoint_ns, channel)
                value, chain, state = deltas.plan(key, version, value)
                if chain is not None:
                    chain_json = dumps_json(chain)
                if state is not None:
                    remembered.append((key, state))
            type_, data = self._encode(value, thread_id, f"channel {channel!r}")
            blobs.append((channel, str(version), type_, chain_json, data))
        body = {k: v for k, v in checkpoint.items() if k not in _SPLIT_KEYS}
        body_type, body_data = self._encode_raw(body, thread_id, "checkpoint")
        meta = get_serializable_checkpoint_metadata(config, metadata)
        try:
            meta_json = dumps_json(meta)
            versions_json = dumps_json(checkpoint["channel_versions"])
        except TypeError as exc:
            raise InvalidInputError(
                f"checkpoint metadata and channel versions must be JSON-serialisable: {exc}",
                thread_id=thread_id,
            ) from exc
        run_id = meta.get("run_id")
        row: CheckpointRow = (
            thread_id,
            checkpoint_ns,
            checkpoint["id"],
            str(parent_id) if parent_id else None,
            run_id if isinstance(run_id, str) else None,
            body_type,
            body_data,
            versions_json,
            meta_json,
        )
        if not self._schema_ready:
            await self._ensure_schema()
        await self._backend.put(row, blobs)
        if deltas is not None:
            for key, state in remembered:
                deltas.commit(key, state)
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes against the checkpoint that ``config`` names.

        Writing the same (task_id, index) again keeps the first value, except for the special
        channels (error, interrupt …), which are replaced.
        """
        thread_id, checkpoint_ns, checkpoint_id = config_target(config)
        if not checkpoint_id:
            raise InvalidInputError(
                "aput_writes needs config['configurable']['checkpoint_id']", thread_id=thread_id
            )
        if not writes:
            return
        rows: list[WriteRow] = []
        for idx, (channel, value) in enumerate(writes):
            type_, data = self._encode(value, thread_id, f"write to channel {channel!r}")
            rows.append((WRITES_IDX_MAP.get(channel, idx), channel, type_, data))
        replace = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        key = (thread_id, checkpoint_ns, str(checkpoint_id), str(task_id), task_path)
        if not self._schema_ready:
            await self._ensure_schema()
        await self._backend.put_writes(key, rows, replace)

    def _encode(self, value: Any, thread_id: str, what: str) -> tuple[str, bytes]:
        try:
            return encode(self.serde, value)
        except Exception as exc:
            raise CheckpointError(
                f"cannot serialise {what} of thread {thread_id!r}: {type(exc).__name__}: {exc}",
                thread_id=thread_id,
            ) from exc

    def _encode_raw(self, value: Any, thread_id: str, what: str) -> tuple[str, bytes]:
        try:
            return self.serde.dumps_typed(value)
        except Exception as exc:
            raise CheckpointError(
                f"cannot serialise {what} of thread {thread_id!r}: {type(exc).__name__}: {exc}",
                thread_id=thread_id,
            ) from exc

    # --- maintenance --------------------------------------------------------------------------

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, blob and write of ``thread_id`` (all namespaces)."""
        if not self._schema_ready:
            await self._ensure_schema()
        self._forget()
        await self._backend.delete_threads([str(thread_id)])

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) whose metadata run_id is in ``run_ids``.

        Channel values no remaining checkpoint refers to are deleted too.
        """
        ids = [str(r) for r in run_ids]
        if ids:
            if not self._schema_ready:
                await self._ensure_schema()
            self._forget()
            with self._transaction_open():
                await self._backend.delete_runs(ids)

    async def areplace_writes(self, config: RunnableConfig, writes: Sequence[PendingWrite]) -> None:
        """Make ``writes`` (``(task_id, channel, value)``, as in ``CheckpointTuple``) the
        whole set of pending writes of the checkpoint ``config`` names, in one transaction.

        A rollback uses it to give a checkpoint back the writes it had when the cancelled
        run started. A task keeps the ``task_path`` its stored writes had.
        """
        thread_id, checkpoint_ns, checkpoint_id = config_target(config)
        if not checkpoint_id:
            raise InvalidInputError(
                "areplace_writes needs config['configurable']['checkpoint_id']",
                thread_id=thread_id,
            )
        rows: dict[tuple[str, int], TaskWriteRow] = {}
        positions: dict[str, int] = {}
        for task_id, channel, value in writes:
            task = str(task_id)
            idx = WRITES_IDX_MAP.get(channel)
            if idx is None:  # numbered within the task, as aput_writes numbers one call
                idx = positions[task] = positions.get(task, -1) + 1
            type_, data = self._encode(value, thread_id, f"write to channel {channel!r}")
            rows[(task, idx)] = (task, idx, channel, type_, data)  # a special channel: last wins
        target = (thread_id, checkpoint_ns, str(checkpoint_id))
        if not self._schema_ready:
            await self._ensure_schema()
        with self._transaction_open():
            await self._backend.replace_writes(target, list(rows.values()))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of one thread to another (all namespaces)."""
        if not self._schema_ready:
            await self._ensure_schema()
        await self._backend.copy_thread(str(source_thread_id), str(target_thread_id))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune threads: ``delete`` removes everything; ``keep_latest`` keeps each namespace's
        latest checkpoint (now a root) with its writes, drops finished subgraph calls, and
        refuses DeltaChannel threads with PruneRefusedError (see ``_prune``)."""
        if strategy not in ("keep_latest", "delete"):
            raise InvalidInputError(
                f"unknown prune strategy {strategy!r}: expected 'keep_latest' or 'delete'"
            )
        if isinstance(thread_ids, (str, bytes)):
            raise InvalidInputError(f"thread_ids must be a list of ids, not {thread_ids!r}")
        ids = [str(t) for t in thread_ids]
        if not ids:
            return
        if not self._schema_ready:
            await self._ensure_schema()
        self._forget()
        if strategy == "delete":
            await self._backend.delete_threads(ids)
        else:
            await self._backend.prune_keep_latest(ids)

    def _forget(self) -> None:
        # a remembered list version may be deleted now: the next write stores in full
        if self._deltas is not None:
            self._deltas.clear()

    def get_next_version(self, current: str | int | float | None, channel: None) -> str:
        """Next channel version: a zero-padded counter plus a random fraction.

        The same format as LangGraph's own savers, so versions compare as strings and
        databases written by either stay readable by the other's graphs.
        """
        if current is None:
            counter = 0
        elif isinstance(current, str):
            counter = int(current.split(".", 1)[0])
        else:
            counter = int(current)
        return f"{counter + 1:032}.{random.random():016}"

    # --- sync API -----------------------------------------------------------------------------

    def _sync(self, method: str, factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
        self._refuse_waiting_on_caller(method)
        return self._bridge.run(lambda: self._on_bridge(factory))

    async def _on_bridge(self, factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
        if not self._schema_ready:
            await self._ensure_schema()
        return await factory()

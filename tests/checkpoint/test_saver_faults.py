"""Bad input, corrupt data, refused values, concurrency, serializers and storage details."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import uuid
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import Checkpoint, empty_checkpoint
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.serde.types import ERROR
from sqlalchemy import text

from langgraph_runstore.checkpoint import SQLAlchemySaver
from langgraph_runstore.db.engine import create_engine
from langgraph_runstore.errors import CheckpointError, InvalidInputError, RunStoreError


@pytest_asyncio.fixture
async def saver(db_url: str) -> AsyncIterator[SQLAlchemySaver]:
    async with SQLAlchemySaver.from_url(db_url) as s:
        yield s


def cfg(thread_id: str, checkpoint_id: str | None = None, ns: str = "") -> Any:
    conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def checkpoint(values: dict[str, Any], versions: dict[str, Any]) -> Checkpoint:
    cp = empty_checkpoint()
    cp["channel_values"] = values
    cp["channel_versions"] = versions
    return cp


async def put(
    saver: SQLAlchemySaver,
    thread_id: str,
    values: dict[str, Any],
    *,
    parent: str | None = None,
    new: dict[str, Any] | None = None,
    versions: dict[str, Any] | None = None,
    **metadata: Any,
) -> str:
    versions = (
        versions
        if versions is not None
        else {k: saver.get_next_version(None, None) for k in values}
    )
    cp = checkpoint(values, versions)
    stored = await saver.aput(
        cfg(thread_id, parent),
        cp,
        {"source": "loop", "step": 0, "parents": {}, **metadata},  # type: ignore[typeddict-item]
        new if new is not None else versions,
    )
    return str(stored["configurable"]["checkpoint_id"])


pytestmark = pytest.mark.asyncio


async def test_config_without_thread_id_is_a_clear_error(saver: SQLAlchemySaver) -> None:
    bad: Any
    for bad in ({}, {"configurable": {}}, {"configurable": {"checkpoint_ns": ""}}):
        with pytest.raises(InvalidInputError, match="thread_id"):
            await saver.aget_tuple(bad)
        with pytest.raises(InvalidInputError, match="thread_id"):
            await saver.aput(bad, empty_checkpoint(), {}, {})
        with pytest.raises(ValueError, match="thread_id"):  # InvalidInputError is a ValueError
            await saver.aput_writes(bad, [("ch", 1)], "task")
    with pytest.raises(InvalidInputError, match="checkpoint_id"):
        await saver.aput_writes(cfg("t"), [("ch", 1)], "task")
    assert [t async for t in saver.alist(None)] == []


async def test_missing_checkpoint_id_gives_none(saver: SQLAlchemySaver) -> None:
    await put(saver, "t", {"a": 1})
    assert await saver.aget_tuple(cfg("t", str(uuid.uuid4()))) is None
    assert await saver.aget_tuple(cfg("other")) is None
    assert [t async for t in saver.alist(cfg("t", str(uuid.uuid4())))] == []


async def test_corrupt_blob_is_reported_and_nothing_else_changes(saver: SQLAlchemySaver) -> None:
    good = await put(saver, "good", {"a": [1, 2]})
    bad = await put(saver, "bad", {"a": [3, 4]})
    async with saver.engine.begin() as conn:
        await conn.execute(
            text("UPDATE rs_checkpoint_blobs SET blob = :b WHERE thread_id = 'bad'"),
            {"b": b"\xc1not msgpack"},
        )
    with pytest.raises(CheckpointError, match="channel 'a'") as info:
        await saver.aget_tuple(cfg("bad"))
    assert info.value.thread_id == "bad"
    assert isinstance(info.value, RunStoreError)
    tup = await saver.aget_tuple(cfg("good", good))
    assert tup is not None and tup.checkpoint["channel_values"] == {"a": [1, 2]}
    # the corrupt row is still there for inspection; nothing was deleted or rewritten
    async with saver.engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT COUNT(*) FROM rs_checkpoints WHERE thread_id = 'bad'")
        )
    assert count == 1 and bad


async def test_pickle_blobs_are_never_unpickled_by_default(saver: SQLAlchemySaver) -> None:
    await put(saver, "p", {"a": 1})
    async with saver.engine.begin() as conn:
        await conn.execute(
            text("UPDATE rs_checkpoint_blobs SET type = 'pickle', blob = :b"),
            {"b": b"cos\nsystem\n(S'echo pwned'\ntR."},
        )
    with pytest.raises(CheckpointError, match="Unknown serialization type: pickle"):
        await saver.aget_tuple(cfg("p"))


class _Unserialisable:
    def __reduce__(self) -> Any:
        raise TypeError("refuses to be serialised")


class _RefusingSerde(JsonPlusSerializer):
    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        if isinstance(obj, _Unserialisable):
            raise TypeError("refuses to be serialised")
        return super().dumps_typed(obj)


async def test_refused_value_raises_and_leaves_the_thread_as_it_was(db_url: str) -> None:
    async with SQLAlchemySaver.from_url(db_url, serde=_RefusingSerde()) as saver:
        first = await put(saver, "r", {"a": "ok"})
        with pytest.raises(CheckpointError, match="channel 'b'") as info:
            await put(saver, "r", {"a": "new", "b": _Unserialisable()}, parent=first)
        assert info.value.thread_id == "r"
        with pytest.raises(CheckpointError, match="write to channel 'x'"):
            await saver.aput_writes(cfg("r", first), [("y", 1), ("x", _Unserialisable())], "t1")
        tup = await saver.aget_tuple(cfg("r"))
        assert tup is not None
        assert tup.checkpoint["id"] == first
        assert tup.checkpoint["channel_values"] == {"a": "ok"}
        assert tup.pending_writes == []  # the good write of the refused batch was not stored
        with pytest.raises(InvalidInputError, match="JSON"):
            await put(saver, "r", {"a": 1}, parent=first, note=object())


async def test_concurrent_puts_and_writes_on_one_thread_keep_everything(
    saver: SQLAlchemySaver,
) -> None:
    root = await put(saver, "c", {"a": 0})

    async def one(i: int) -> str:
        cid = await put(saver, "c", {"a": i, f"own{i}": i}, parent=root)
        await asyncio.gather(
            saver.aput_writes(cfg("c", root), [("ch", i), ("other", -i)], f"task-{i}"),
            saver.aput_writes(cfg("c", cid), [("mine", i)], "solo"),
        )
        return cid

    ids = await asyncio.gather(*(one(i) for i in range(40)))
    listed = {t.checkpoint["id"]: t async for t in saver.alist(cfg("c"))}
    assert set(ids) | {root} == set(listed)
    root_tuple = listed[root]
    assert root_tuple.pending_writes is not None
    assert len(root_tuple.pending_writes) == 80
    assert {(w[0], w[1], w[2]) for w in root_tuple.pending_writes if w[1] == "ch"} == {
        (f"task-{i}", "ch", i) for i in range(40)
    }
    for i, cid in enumerate(ids):
        tup = listed[cid]
        assert tup.checkpoint["channel_values"] == {"a": i, f"own{i}": i}
        assert tup.pending_writes == [("solo", "mine", i)]


async def test_writes_semantics_idempotent_and_special_channels(saver: SQLAlchemySaver) -> None:
    cid = await put(saver, "w", {})
    await saver.aput_writes(cfg("w", cid), [("ch", "first")], "t")
    await saver.aput_writes(cfg("w", cid), [("ch", "second")], "t")
    await saver.aput_writes(cfg("w", cid), [(ERROR, "boom 1")], "t")
    await saver.aput_writes(cfg("w", cid), [(ERROR, "boom 2")], "t")
    tup = await saver.aget_tuple(cfg("w"))
    assert tup is not None
    assert sorted(tup.pending_writes or []) == [("t", ERROR, "boom 2"), ("t", "ch", "first")]


async def test_metadata_filters(saver: SQLAlchemySaver) -> None:
    await put(saver, "m", {}, run_id="r1", user={"name": "ann", "tier": 2}, flag=True, n=None)
    await put(saver, "m", {}, run_id="r2", user={"name": "bob", "tier": 2}, flag=False, n=1.5)
    await put(saver, "m2", {}, run_id="r1", tags=["a", "b"], count=1)

    async def ids(**flt: Any) -> list[str | None]:
        found = [t async for t in saver.alist(None, filter=flt)]
        return sorted(
            str(t.metadata.get("run_id")) + t.config["configurable"]["thread_id"] for t in found
        )

    assert await ids(run_id="r1") == ["r1m", "r1m2"]
    assert await ids(user={"name": "bob"}) == ["r2m"]
    assert await ids(user={"tier": 2}) == ["r1m", "r2m"]
    assert await ids(flag=True) == ["r1m"]
    assert await ids(flag=False) == ["r2m"]
    assert await ids(n=None) == ["r1m"]
    assert await ids(n=1.5) == ["r2m"]
    assert await ids(count=1) == ["r1m2"]
    assert await ids(count="1") == []
    assert await ids(tags=["a", "b"]) == ["r1m2"]
    assert await ids(run_id="r1", source="loop", step=0) == ["r1m", "r1m2"]
    assert await ids(missing="x") == []


async def test_unchanged_channels_are_stored_once(saver: SQLAlchemySaver) -> None:
    big = [f"message {i}" for i in range(50)]
    v1 = {"big": saver.get_next_version(None, None), "small": saver.get_next_version(None, None)}
    first = await put(saver, "s", {"big": big, "small": 0}, versions=v1)
    parent = first
    for i in range(1, 6):
        versions = {"big": v1["big"], "small": saver.get_next_version(str(i), None)}
        parent = await put(
            saver,
            "s",
            {"big": big, "small": i},
            parent=parent,
            versions=versions,
            new={"small": versions["small"]},
        )
    async with saver.engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT channel, COUNT(*) FROM rs_checkpoint_blobs GROUP BY channel")
            )
        ).all()
    assert dict((str(r[0]), int(r[1])) for r in rows) == {"big": 1, "small": 6}
    tup = await saver.aget_tuple(cfg("s"))
    assert tup is not None and tup.checkpoint["channel_values"] == {"big": big, "small": 5}


async def test_delete_for_runs_keeps_values_later_checkpoints_share(saver: SQLAlchemySaver) -> None:
    shared = {"keep": saver.get_next_version(None, None)}
    first = await put(saver, "d", {"keep": "base"}, versions=shared, run_id="run-1")
    v2 = {**shared, "own": "2"}
    second = await put(
        saver,
        "d",
        {"keep": "base", "own": "mine"},
        parent=first,
        versions=v2,
        new={"own": "2"},
        run_id="run-2",
    )
    await saver.aput_writes(cfg("d", second), [("x", 1)], "t")
    await saver.adelete_for_runs(["run-2"])
    tup = await saver.aget_tuple(cfg("d"))
    assert tup is not None and tup.checkpoint["id"] == first
    assert tup.checkpoint["channel_values"] == {"keep": "base"}
    async with saver.engine.connect() as conn:
        blobs = await conn.scalar(text("SELECT COUNT(*) FROM rs_checkpoint_blobs"))
        writes = await conn.scalar(text("SELECT COUNT(*) FROM rs_checkpoint_writes"))
    assert (blobs, writes) == (1, 0)  # "own" went with run-2; "keep" stays


async def test_prune_rejects_unknown_strategy(saver: SQLAlchemySaver) -> None:
    with pytest.raises(InvalidInputError, match="strategy"):
        await saver.aprune(["t"], strategy="everything")


class _XorCipher:
    """A toy cipher for the test: what matters is that stored bytes are not plaintext."""

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        return "xor", bytes(b ^ 0x5A for b in plaintext)

    def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
        assert ciphername == "xor"
        return bytes(b ^ 0x5A for b in ciphertext)


async def test_encrypted_serializer_and_allowlist(db_url: str) -> None:
    serde = EncryptedSerializer(_XorCipher())
    async with SQLAlchemySaver.from_url(db_url, serde=serde) as saver:
        secret = [HumanMessage(content="my secret"), AIMessage(content="noted " * 500)]
        cid = await put(saver, "e", {"messages": secret})
        await saver.aput_writes(cfg("e", cid), [("messages", secret[:1])], "t")
        async with saver.engine.connect() as conn:
            stored = (await conn.execute(text("SELECT type, blob FROM rs_checkpoint_blobs"))).one()
            write = (await conn.execute(text("SELECT value FROM rs_checkpoint_writes"))).one()
        assert b"my secret" not in bytes(stored[1]) and b"my secret" not in bytes(write[0])
        assert stored[0].startswith("msgpack+xor")
        tup = await saver.aget_tuple(cfg("e"))
        assert tup is not None and tup.checkpoint["channel_values"]["messages"] == secret


@dataclasses.dataclass
class Point:
    x: int


async def test_with_allowlist_on_a_strict_encrypted_serializer(db_url: str) -> None:
    strict = EncryptedSerializer(_XorCipher(), JsonPlusSerializer(allowed_msgpack_modules=None))
    async with SQLAlchemySaver.from_url(db_url, serde=strict) as saver:
        await put(saver, "a", {"p": Point(1)})
        blocked = await saver.aget_tuple(cfg("a"))
        assert blocked is not None and blocked.checkpoint["channel_values"]["p"] == {"x": 1}

        allowed = saver.with_allowlist([(Point.__module__, "Point")])
        assert isinstance(allowed, SQLAlchemySaver) and allowed is not saver
        tup = await allowed.aget_tuple(cfg("a"))
        assert tup is not None and tup.checkpoint["channel_values"]["p"] == Point(1)


async def test_large_values_are_compressed(saver: SQLAlchemySaver) -> None:
    messages = [AIMessage(content=f"step {i}: all systems nominal") for i in range(300)]
    await put(saver, "z", {"messages": messages})
    async with saver.engine.connect() as conn:
        type_, size = (
            await conn.execute(text("SELECT type, LENGTH(blob) FROM rs_checkpoint_blobs"))
        ).one()
    raw = len(saver.serde.dumps_typed(messages)[1])
    assert type_.endswith("@z") and size < raw / 4
    tup = await saver.aget_tuple(cfg("z"))
    assert tup is not None and tup.checkpoint["channel_values"]["messages"] == messages


async def test_get_next_version_is_increasing_and_langgraph_compatible(
    saver: SQLAlchemySaver,
) -> None:
    v1 = saver.get_next_version(None, None)
    v2 = saver.get_next_version(v1, None)
    assert v1 < v2 and v1.split(".")[0] == "0" * 31 + "1"
    assert saver.get_next_version(7, None).startswith("0" * 30 + "08.")


@pytest.mark.postgres
async def test_postgres_writes_batch_under_load_and_errors_stay_with_their_caller(
    pg_url: str,
) -> None:
    # one connection: everything beyond the first write queues and goes out in batches
    async with SQLAlchemySaver.from_url(pg_url, max_connections=1) as saver:
        root = await put(saver, "b", {"a": 0})
        bad_config = cfg("b", root)
        bad_config["configurable"]["checkpoint_ns"] = "nul\x00byte"  # PostgreSQL rejects NUL

        async def good(i: int) -> None:
            await saver.aput_writes(cfg("b", root), [("ch", i)], f"task-{i}")

        results = await asyncio.gather(
            *(good(i) for i in range(30)),
            saver.aput_writes(bad_config, [("ch", -1)], "bad-task"),
            *(good(i) for i in range(30, 60)),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1 and "0x00" in str(errors[0])
        tup = await saver.aget_tuple(cfg("b"))
        assert tup is not None and tup.pending_writes is not None
        assert sorted(w[2] for w in tup.pending_writes) == list(range(60))


async def test_a_saver_dropped_while_holding_a_connection_warns(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    saver = SQLAlchemySaver(engine)
    await saver.setup()
    await saver.aget_tuple(cfg("t"))
    clone = saver.with_allowlist([("x", "Y")])
    backend = saver._backend
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del clone  # a copy sharing the connection does not warn
        gc.collect()
        assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
        del saver
        gc.collect()
    assert any("aclose" in str(w.message) for w in caught if w.category is ResourceWarning)
    await backend.aclose()
    await engine.dispose()

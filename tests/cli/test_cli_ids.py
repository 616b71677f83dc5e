"""Ids given to the real console script are checked as the package checks them: bytes that are
not UTF-8 (Python reads them as lone surrogates) or an id over 1024 bytes is a usage error
(exit 2) naming the argument and the limit, in one line, and the database is not touched."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from langgraph_runstore import SQLRunStore
from tests.cli.helpers import run_many, sqlite_snapshot

NOT_UTF8 = "run-\udcff"  # what Python makes of the bytes b"run-\xff" on the command line
TOO_LONG = "é" * 513  # 1026 bytes in UTF-8


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"

    async def go() -> None:
        async with SQLRunStore.from_url(f"sqlite+aiosqlite:///{path}") as store:
            await store.put("r1", thread_id="t1", status="running", user_id="u1")

    asyncio.run(go())
    return path


def test_bad_ids_are_usage_errors_naming_the_argument(db: Path) -> None:
    base = ["--db", str(db)]
    calls = {
        f"{what} {label}": (*args, bad, *base)
        for label, bad in (("not-utf8", NOT_UTF8), ("too-long", TOO_LONG))
        for what, args in {
            "runs show": ("runs", "show"),
            "runs cancel": ("runs", "cancel"),
            "threads show": ("threads", "show"),
            "runs list --thread": ("runs", "list", "--thread"),
            "runs list --user": ("runs", "list", "--user"),
            "runs show --user": ("runs", "show", "r1", "--user"),
            "runs cancel --user": ("runs", "cancel", "r1", "--user"),
            "threads show --user": ("threads", "show", "t1", "--user"),
        }.items()
    }
    expected_name = {
        "runs show": "run_id",
        "runs cancel": "run_id",
        "threads show": "thread_id",
        "runs list --thread": "thread_id",
        "runs list --user": "user_id",
        "runs show --user": "user_id",
        "runs cancel --user": "user_id",
        "threads show --user": "user_id",
    }
    before = sqlite_snapshot(db)
    wrong = []
    for name, result in run_many(calls).items():
        command, label = name.rsplit(" ", 1)
        limit = "surrogate" if label == "not-utf8" else "1024 bytes"
        lines = result.err.strip().splitlines()
        said = lines[0] if len(lines) == 1 else result.err
        if result.code != 2 or expected_name[command] not in said or limit not in said:
            wrong.append(f"{name}: exit {result.code}: {said!r}")
    assert wrong == [], "\n".join(wrong)
    assert sqlite_snapshot(db) == before

"""Fixtures of the ui tests: one SQLite file and one PostgreSQL database filled by the
examples and real graph runs (made once per session, copied for each test that writes),
and where screenshots go.

Screenshots are kept in ``tests/ui/artifacts/`` (ignored by git), or in the folder that
``RUNSTORE_UI_ARTIFACTS`` names, so that CI can keep them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends import PG_BACKENDS, driver_of, libpq_url, with_driver
from tests.ui.helpers import copy_sqlite, fill

pytest.importorskip("starlette", reason="the ui needs the [ui] extra")


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file filled once per session; tests read copies of it."""
    folder = tmp_path_factory.mktemp("ui-data")
    path = folder / "runs.db"
    fill(f"sqlite+aiosqlite:///{path}", folder / "cwd")
    return path


@pytest.fixture
def sqlite_db(template_db: Path, tmp_path: Path) -> Path:
    """This test's own copy of the filled SQLite file."""
    return copy_sqlite(template_db, tmp_path / "runs.db")


@pytest.fixture(scope="session")
def filled_pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL database filled once per session (dropped at its end)."""
    import psycopg

    base = os.environ.get("RUNSTORE_TEST_PG_URL")
    if not base:
        if os.environ.get("RUNSTORE_REQUIRE_PG") == "1":
            pytest.fail("RUNSTORE_REQUIRE_PG=1 but RUNSTORE_TEST_PG_URL is not set")
        pytest.skip("no PostgreSQL server: run scripts/pg.sh start and set RUNSTORE_TEST_PG_URL")
    admin = libpq_url(base)
    name = f"t_ui_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + f"/{name}"
    try:
        fill(url, tmp_path_factory.mktemp("ui-pg") / "cwd")
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", *PG_BACKENDS])
def filled(request: pytest.FixtureRequest) -> str:
    """The filled database as ``--db`` takes it: a SQLite file (a copy) or a URL (on
    either PostgreSQL driver: one filled database, read through each)."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_db"))
    return with_driver(str(request.getfixturevalue("filled_pg_url")), driver_of(request.param))


@pytest.fixture(scope="session")
def artifacts() -> Path:
    folder = Path(os.environ.get("RUNSTORE_UI_ARTIFACTS") or Path(__file__).parent / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder

"""Database URLs as users write them (db/urls.py): plain paths, the driver behind each
backend, libpq's parameters checked per driver, and the one-line refusals of bad ones.
Nothing here needs a server; tests/test_pg_connect.py opens real connections."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from langgraph_runstore import DatabaseConfigError
from langgraph_runstore.db import normalize_url
from langgraph_runstore.db.urls import (
    PG_PARAMETERS,
    as_url,
    asyncpg_arguments,
    connect_timeout_arguments,
)

PG = "postgresql+{driver}://u:secret@h:5432/db"


def pg(driver: str, query: str = "") -> str:
    return PG.format(driver=driver) + (f"?{query}" if query else "")


# -- plain paths -----------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["agent.db", "./data/runs.sqlite", "~/x.db", "sub/dir/a.b.db"])
def test_a_plain_path_is_a_sqlite_file_made_absolute(
    given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = Path(given).expanduser().resolve()
    assert as_url(given) == f"sqlite+aiosqlite:///{expected}"
    assert normalize_url(given).database == str(expected)


def test_absolute_paths_and_path_objects_are_sqlite_files(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    assert normalize_url(str(path)).database == str(path)
    assert normalize_url(path).database == str(path)
    assert normalize_url(path).drivername == "sqlite+aiosqlite"


def test_memory_as_a_plain_value_is_in_memory_sqlite() -> None:
    # as sqlite3.connect(":memory:") and SqliteSaver.from_conn_string(":memory:") read it
    parsed = normalize_url(":memory:")
    assert parsed.drivername == "sqlite+aiosqlite" and parsed.database == ":memory:"


@pytest.mark.parametrize("bad", ["", "   ", 42, None])
def test_an_empty_or_non_text_url_is_refused(bad: Any) -> None:
    with pytest.raises(DatabaseConfigError, match="database URL"):
        normalize_url(bad)


# -- drivers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql+asyncpg://u@h/db", "asyncpg"),
        ("postgresql+psycopg://u@h/db", "psycopg"),
        ("postgresql+psycopg_async://u@h/db", "psycopg"),  # SQLAlchemy's other name for it
        ("postgres+psycopg://u@h/db", "psycopg"),
    ],
)
def test_both_postgres_drivers_are_supported(url: str, driver: str) -> None:
    assert normalize_url(url).drivername == f"postgresql+{driver}"


def test_a_plain_postgresql_url_takes_asyncpg_else_psycopg(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+asyncpg"
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # asyncpg not installed
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(DatabaseConfigError) as info:
        normalize_url("postgresql://u:secret@h/db")
    message = str(info.value)
    assert "neither asyncpg nor psycopg is installed" in message
    assert "langgraph-runstore[postgres]" in message and "langgraph-runstore[psycopg]" in message
    assert "secret" not in message


@pytest.mark.parametrize(("driver", "extra"), [("psycopg", "psycopg"), ("asyncpg", "postgres")])
def test_a_driver_that_cannot_be_imported_names_the_extra(
    driver: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, driver, None)
    with pytest.raises(DatabaseConfigError) as info:
        normalize_url(pg(driver))
    message = str(info.value)
    assert f"needs the {driver} driver" in message
    assert f"pip install 'langgraph-runstore[{extra}]'" in message
    assert "secret" not in message and "\n" not in message


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql+pg8000://u:secret@h/db", "unsupported driver 'pg8000'"),
        ("postgresql+psycopg2://u:secret@h/db", "use postgresql+psycopg:// (psycopg 3)"),
        ("mysql://u:secret@h/db", "unsupported database backend 'mysql'"),
        ("mysql+aiomysql://u:secret@h/db", "unsupported database backend 'mysql'"),
        ("sqlite+pysqlite:///a.db", "use sqlite+aiosqlite://"),
    ],
)
def test_unknown_drivers_and_backends_are_one_line(url: str, says: str) -> None:
    with pytest.raises(DatabaseConfigError) as info:
        normalize_url(url)
    message = str(info.value)
    assert says in message and "secret" not in message and "\n" not in message


# -- libpq parameters ------------------------------------------------------------------------

# parameters both drivers take: libpq's names, translated for asyncpg
COMMON = [
    "sslmode=disable",
    "sslmode=prefer",
    "sslmode=require",
    "application_name=me",
    "connect_timeout=3",
    "options=-c%20search_path%3Dother%20-c%20statement_timeout%3D5000",
    "target_session_attrs=read-write",
    "fallback_application_name=me",
    "client_encoding=UTF8",
]


@pytest.mark.parametrize("query", COMMON)
@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
def test_libpq_parameters_work_on_both_drivers(driver: str, query: str) -> None:
    parsed = normalize_url(pg(driver, query))
    assert parsed.query  # kept in the URL as written (what messages show)


def test_asyncpg_gets_its_own_names_for_libpq_parameters(tmp_path: Path) -> None:
    cert = tmp_path / "root.crt"
    cert.write_text("not read here")
    url = normalize_url(
        pg(
            "asyncpg",
            "sslmode=verify-full&sslrootcert=" + str(cert) + "&application_name=me"
            "&connect_timeout=3&options=-c%20search_path%3Dother&target_session_attrs=read-write"
            "&dbname=other_db",
        )
    )
    moved, args = asyncpg_arguments(url)
    assert moved == {
        "sslmode",
        "sslrootcert",
        "application_name",
        "connect_timeout",
        "options",
        "target_session_attrs",
        "dbname",
    }
    assert args["timeout"] == 3.0
    assert args["server_settings"] == {"application_name": "me", "search_path": "other"}
    assert args["database"] == "other_db"
    # asyncpg's own libpq-compatible parser reads the SSL and session parameters
    assert args["dsn"].startswith("postgresql://?")
    for part in ("sslmode=verify-full", "sslrootcert=", "target_session_attrs=read-write"):
        assert part in args["dsn"]


@pytest.mark.parametrize(
    "query",
    ["keepalives=1", "keepalives_idle=30", "tcp_user_timeout=1000", "gssencmode=disable"],
)
def test_libpq_parameters_asyncpg_lacks_say_to_use_psycopg(query: str) -> None:
    normalize_url(pg("psycopg", query))  # libpq takes it
    with pytest.raises(DatabaseConfigError) as info:
        normalize_url(pg("asyncpg", query))
    name = query.split("=")[0]
    message = str(info.value)
    assert f"connection parameter {name!r}" in message and "not supported by asyncpg" in message
    assert "postgresql+psycopg://" in message and "secret" not in message


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
def test_an_unknown_parameter_is_named(driver: str) -> None:
    with pytest.raises(DatabaseConfigError, match=r"'?sslmod'?") as info:
        normalize_url(pg(driver, "sslmod=require"))
    assert "secret" not in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("connect_timeout=soon", "connect_timeout='soon'"),
        ("connect_timeout=-1", "expected a number of seconds"),
        ("options=--search_path", "asyncpg takes only '-c name=value'"),
        ("options=-X", "asyncpg takes only '-c name=value'"),
        ("client_encoding=LATIN1", "asyncpg speaks UTF8 only"),
    ],
)
def test_asyncpg_values_it_cannot_take_are_named(query: str, says: str) -> None:
    with pytest.raises(DatabaseConfigError) as info:
        normalize_url(pg("asyncpg", query))
    assert says in str(info.value)


@pytest.mark.parametrize("mode", ["verify-full", "verify-ca"])
@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
def test_verifying_sslmode_without_a_root_certificate_says_sslrootcert(
    driver: str, mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.postgresql/root.crt
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    with pytest.raises(DatabaseConfigError) as info:
        normalize_url(pg(driver, f"sslmode={mode}"))
    message = str(info.value)
    assert f"sslmode={mode}" in message and "sslrootcert=/path/to/root.crt" in message
    assert "sslrootcert=system" in message and "\n" not in message
    with pytest.raises(DatabaseConfigError, match="is not a readable file"):
        normalize_url(pg(driver, f"sslmode={mode}&sslrootcert={tmp_path / 'missing.crt'}"))
    # a root certificate where libpq looks by default, given, or the system's: accepted
    (tmp_path / ".postgresql").mkdir()
    (tmp_path / ".postgresql" / "root.crt").write_text("-")
    normalize_url(pg(driver, f"sslmode={mode}"))
    normalize_url(pg(driver, f"sslmode={mode}&sslrootcert=system"))


def test_the_parameter_table_covers_what_the_readme_lists() -> None:
    for name in (
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "application_name",
        "connect_timeout",
        "options",
        "target_session_attrs",
    ):
        assert name in PG_PARAMETERS


def test_the_cli_connect_bound_uses_each_drivers_name() -> None:
    assert connect_timeout_arguments(normalize_url(pg("asyncpg")), 5.0) == {"timeout": 5.0}
    assert connect_timeout_arguments(normalize_url(pg("psycopg")), 5.0) == {"connect_timeout": 5}
    given = normalize_url(pg("psycopg", "connect_timeout=2"))
    assert connect_timeout_arguments(given, 5.0) == {}  # the URL's own bound stands

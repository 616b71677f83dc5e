"""Which databases the tests run on: the backend parameters the fixtures share (PostgreSQL
on asyncpg and on psycopg 3), and URL helpers for either driver."""

from __future__ import annotations

from typing import Any

import pytest

#: backend parameter ids: "postgres" is PostgreSQL through asyncpg (the default driver)
ASYNCPG = "postgres"
PSYCOPG = "postgres-psycopg"

#: PostgreSQL on both drivers, as backend parameters
PG_BACKENDS: list[Any] = [
    pytest.param(ASYNCPG, marks=pytest.mark.postgres),
    pytest.param(PSYCOPG, marks=pytest.mark.postgres),
]

#: the drivers, for tests that take ``pg_url`` themselves
PG_DRIVERS: list[Any] = [
    pytest.param("asyncpg", marks=pytest.mark.postgres),
    pytest.param("psycopg", marks=pytest.mark.postgres),
]


def is_postgres(backend: str) -> bool:
    """Whether a backend parameter names PostgreSQL (on either driver)."""
    return backend.startswith("postgres") or backend.endswith("postgres")


def driver_of(backend: str) -> str:
    """The PostgreSQL driver a backend parameter names ("...postgres-psycopg..." is psycopg)."""
    return "psycopg" if PSYCOPG in backend else "asyncpg"


def with_driver(url: str, driver: str) -> str:
    """``url`` (any PostgreSQL URL) on SQLAlchemy's ``driver``."""
    scheme, sep, rest = url.partition("://")
    assert sep and scheme.split("+")[0] in ("postgresql", "postgres"), url
    return f"postgresql+{driver}://{rest}"


def libpq_url(url: str) -> str:
    """``url`` as a plain ``postgresql://`` URL, for asyncpg.connect / psycopg.connect."""
    scheme, sep, rest = url.partition("://")
    assert sep and scheme.split("+")[0] in ("postgresql", "postgres"), url
    return f"postgresql://{rest}"

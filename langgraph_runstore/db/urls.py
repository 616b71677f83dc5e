"""Database URLs as users write them: plain paths, the driver behind each backend, and
libpq's connection parameters, checked once and translated for the PostgreSQL driver in use.

``postgresql+asyncpg://`` and ``postgresql+psycopg://`` (psycopg 3) both work; a plain
``postgresql://`` takes asyncpg when it is installed, else psycopg. psycopg hands libpq's
parameters (``sslmode``, ``application_name``, ``options`` …) to libpq itself. asyncpg
names several of them differently, so for asyncpg they become its connect arguments
(``PG_PARAMETERS`` is the table), and those asyncpg lacks are refused by name.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from langgraph_runstore.errors import DatabaseConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

#: The drivers the package runs on, keyed by backend; the first is the default.
SUPPORTED_DRIVERS: dict[str, tuple[str, ...]] = {
    "sqlite": ("aiosqlite",),
    "postgresql": ("asyncpg", "psycopg"),
}

#: The package extra that installs each optional driver.
DRIVER_EXTRAS = {"asyncpg": "postgres", "psycopg": "psycopg"}

# SQLAlchemy's other names for a supported driver
_DRIVER_ALIASES = {"psycopg_async": "psycopg"}
# drivers people reach for that the package does not run on, and what to use instead
_INSTEAD = {
    "psycopg2": "postgresql+psycopg:// (psycopg 3)",
    "pysqlite": "sqlite+aiosqlite://",
    "pg8000": "postgresql+asyncpg:// or postgresql+psycopg://",
}

#: What asyncpg does with each libpq parameter: "dsn" (its own libpq-compatible parser
#: reads it), "server_settings", or the asyncpg connect argument it becomes.
PG_PARAMETERS: Mapping[str, str] = {
    "sslmode": "dsn",
    "sslrootcert": "dsn",
    "sslcert": "dsn",
    "sslkey": "dsn",
    "sslpassword": "dsn",
    "sslcrl": "dsn",
    "sslnegotiation": "dsn",
    "ssl_min_protocol_version": "dsn",
    "ssl_max_protocol_version": "dsn",
    "passfile": "dsn",
    "service": "dsn",
    "target_session_attrs": "dsn",
    "krbsrvname": "dsn",
    "gsslib": "dsn",
    "application_name": "server_settings",
    "fallback_application_name": "server_settings",
    "options": "server_settings",
    "connect_timeout": "timeout",
    "client_encoding": "(UTF8 only)",
    "dbname": "database",
    "host": "host",
    "port": "port",
    "user": "user",
    "password": "password",
}

#: libpq parameters asyncpg has no equivalent for (psycopg takes them).
_LIBPQ_ONLY = frozenset(
    {
        "hostaddr",
        "require_auth",
        "channel_binding",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "replication",
        "gssencmode",
        "requiressl",
        "sslcompression",
        "sslcertmode",
        "sslcrldir",
        "sslsni",
        "sslkeylogfile",
        "requirepeer",
        "min_protocol_version",
        "max_protocol_version",
        "gssdelegation",
        "load_balance_hosts",
        "servicefile",
    }
)

# asyncpg's own connect arguments, accepted in the query of a postgresql+asyncpg URL
# (SQLAlchemy converts prepared_statement_cache_size itself)
_ASYNCPG_NATIVE = {
    "ssl": str,
    "prepared_statement_cache_size": str,
    "command_timeout": float,
    "statement_cache_size": int,
    "timeout": float,
}

_VERIFYING_SSL_MODES = ("verify-ca", "verify-full")


def as_url(value: str | os.PathLike[str] | URL) -> str | URL:
    """A URL for ``value``: a plain path (``agent.db``, ``./data/runs.sqlite``, an absolute
    path, a ``pathlib.Path``) names a SQLite file, made absolute, and ``:memory:`` an
    in-memory SQLite database; anything with ``://`` is a URL already.

    DatabaseConfigError for an empty value or something that is neither.
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        from sqlalchemy.engine import URL

        if isinstance(value, URL):
            return value
        raise DatabaseConfigError(
            f"database URL must be a str, a URL or a path, not {type(value).__name__}: "
            "e.g. 'agent.db' or 'postgresql+asyncpg://user@host/db'"
        )
    if not value.strip():
        raise DatabaseConfigError(
            "database URL is empty: expected e.g. 'agent.db', 'sqlite+aiosqlite:///agent.db' "
            "or 'postgresql+asyncpg://user@host/db'"
        )
    if "://" in value:
        return value
    if value == ":memory:":
        return "sqlite+aiosqlite:///:memory:"
    return f"sqlite+aiosqlite:///{Path(value).expanduser().resolve()}"


def _importable(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _missing(driver: str, shown: str, reason: str = "") -> DatabaseConfigError:
    why = f" ({reason})" if reason else ""
    return DatabaseConfigError(
        f"{shown} needs the {driver} driver, which cannot be imported{why}: "
        f"pip install 'langgraph-runstore[{DRIVER_EXTRAS[driver]}]'"
    )


def choose_driver(backend: str, driver: str, shown: str) -> str:
    """The supported driver a URL's ``backend+driver`` names (or the default one when it
    names none), importable; DatabaseConfigError naming the problem otherwise."""
    supported = SUPPORTED_DRIVERS.get(backend)
    expected = " or ".join(f"{b}+{d}" for b, ds in SUPPORTED_DRIVERS.items() for d in ds)
    if supported is None:
        raise DatabaseConfigError(
            f"unsupported database backend {backend!r} in URL {shown!r}: expected {expected}"
        )
    driver = _DRIVER_ALIASES.get(driver, driver)
    if not driver:
        if backend == "sqlite":
            return "aiosqlite"  # plain sqlite:// means the async driver of the same library
        for candidate in supported:
            if _importable(candidate):
                return candidate
        raise DatabaseConfigError(
            f"{shown} needs a PostgreSQL driver and neither asyncpg nor psycopg is installed: "
            "pip install 'langgraph-runstore[postgres]' (asyncpg) or "
            "'langgraph-runstore[psycopg]' (psycopg 3)"
        )
    if driver not in supported:
        instead = _INSTEAD.get(driver) or " or ".join(f"{backend}+{d}://" for d in supported)
        raise DatabaseConfigError(f"unsupported driver {driver!r} in URL {shown!r}: use {instead}")
    if driver in DRIVER_EXTRAS:
        if not _importable(driver):
            raise _missing(driver, shown)
        try:
            importlib.import_module(driver)
        except ImportError as exc:  # installed but unusable (psycopg without its libpq)
            raise _missing(driver, shown, str(exc).splitlines()[0]) from None
    return driver


def check_pg_parameters(url: URL, shown: str) -> None:
    """Refuse, by name, a query parameter the URL's PostgreSQL driver would not take, and
    a certificate-verifying ``sslmode`` with no root certificate to verify against."""
    query = _flat_query(url)
    mode = query.get("sslmode") or os.environ.get("PGSSLMODE", "")
    if mode in _VERIFYING_SSL_MODES:
        _check_root_certificate(query.get("sslrootcert"), mode, shown)
    if url.get_driver_name() == "psycopg":
        _check_with_libpq(query, shown)
        return
    for name in query:
        if name in PG_PARAMETERS or name in _ASYNCPG_NATIVE:
            continue
        if name in _LIBPQ_ONLY:
            raise DatabaseConfigError(
                f"connection parameter {name!r} in URL {shown!r} is not supported by asyncpg: "
                "use a postgresql+psycopg:// URL (pip install 'langgraph-runstore[psycopg]'), "
                "or remove it"
            )
        raise DatabaseConfigError(
            f"unknown connection parameter {name!r} in URL {shown!r}: expected one of "
            f"libpq's ({', '.join(sorted(set(PG_PARAMETERS) - {'host', 'port'}))}, ...)"
        )
    encoding = query.get("client_encoding", "utf8").replace("-", "").lower()
    if encoding != "utf8":
        raise DatabaseConfigError(
            f"client_encoding={query['client_encoding']!r} in URL {shown!r}: asyncpg speaks "
            "UTF8 only; remove it, or use a postgresql+psycopg:// URL"
        )
    if "options" in query:
        _server_settings_of_options(query["options"], shown)
    for name in ("connect_timeout", "timeout", "command_timeout"):
        if name in query:
            _seconds(name, query[name], shown)
    if "statement_cache_size" in query and not query["statement_cache_size"].isdigit():
        raise DatabaseConfigError(
            f"statement_cache_size={query['statement_cache_size']!r} in URL {shown!r}: "
            "expected a whole number"
        )


def _check_with_libpq(query: Mapping[str, str], shown: str) -> None:
    """libpq itself names a parameter it does not know (the installed libpq's list)."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    params = {k: v for k, v in query.items() if k not in ("host", "port")}
    try:
        make_conninfo("", **params)
    except psycopg.ProgrammingError as exc:
        reason = str(exc).splitlines()[0]
        raise DatabaseConfigError(
            f"URL {shown!r}: {reason}; libpq's parameters are listed at "
            "https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS"
        ) from None


def _check_root_certificate(rootcert: str | None, mode: str, shown: str) -> None:
    rootcert = rootcert or os.environ.get("PGSSLROOTCERT")
    if rootcert == "system":
        return
    if rootcert is None:
        default = Path("~/.postgresql/root.crt").expanduser()
        if default.is_file():
            return
        raise DatabaseConfigError(
            f"sslmode={mode} in URL {shown!r} verifies the server's certificate, but no root "
            f"certificate was given and {default} does not exist: add "
            "sslrootcert=/path/to/root.crt (your provider's CA) to the URL, or "
            "sslrootcert=system to trust the system's certificate authorities"
        )
    if not Path(rootcert).expanduser().is_file():
        raise DatabaseConfigError(
            f"sslrootcert={rootcert!r} in URL {shown!r} is not a readable file: give the path "
            "of the server's root certificate (your provider's CA)"
        )


def _flat_query(url: URL) -> dict[str, str]:
    """The URL's query, one value per name (the last, as libpq reads a repeated one); the
    ``host`` list SQLAlchemy reads itself stays out."""
    flat: dict[str, str] = {}
    for name, value in url.query.items():
        if name == "host" and not isinstance(value, str):
            continue
        flat[name] = value if isinstance(value, str) else value[-1]
    return flat


def _seconds(name: str, value: str, shown: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < 1e6:
        raise DatabaseConfigError(
            f"{name}={value!r} in URL {shown!r}: expected a number of seconds >= 0"
        )
    return seconds


def _server_settings_of_options(options: str, shown: str) -> dict[str, str]:
    """libpq's ``options`` (``-c name=value`` or ``--name=value``, repeated) as settings."""
    settings: dict[str, str] = {}
    words = shlex.split(options)
    i = 0
    while i < len(words):
        word = words[i]
        if word == "-c" and i + 1 < len(words):
            setting, i = words[i + 1], i + 2
        elif (word.startswith("-c") and len(word) > 2) or word.startswith("--"):
            setting, i = word[2:], i + 1  # "-cname=value" or "--name=value"
        else:
            setting = ""
        name, eq, value = setting.partition("=")
        if not (name and eq):
            raise DatabaseConfigError(
                f"options={options!r} in URL {shown!r}: asyncpg takes only '-c name=value' "
                "settings there; use a postgresql+psycopg:// URL for other server options"
            )
        settings[name.replace("-", "_")] = value
    return settings


def asyncpg_arguments(url: URL) -> tuple[set[str], dict[str, Any]]:
    """The query parameters of a checked URL (``check_pg_parameters``) that asyncpg would
    refuse as keywords, and the connect arguments they become (``PG_PARAMETERS``)."""
    query = _flat_query(url)
    dsn: dict[str, str] = {}
    settings: dict[str, str] = {}
    args: dict[str, Any] = {}
    for name, value in query.items():
        kind = PG_PARAMETERS.get(name)
        if kind == "dsn":
            dsn[name] = value
        elif name == "options":
            settings.update(_server_settings_of_options(value, ""))
        elif name == "application_name":
            settings["application_name"] = value
        elif name == "connect_timeout":
            args["timeout"] = float(value)
        elif name == "dbname":
            args["database"] = value
        elif name in _ASYNCPG_NATIVE and name != "prepared_statement_cache_size":
            args[name] = _ASYNCPG_NATIVE[name](value)
    if "fallback_application_name" in query:
        settings.setdefault("application_name", query["fallback_application_name"])
    if dsn.get("sslrootcert") == "system":
        args["ssl"] = _system_ssl_context(dsn)
        dsn = {k: v for k, v in dsn.items() if not k.startswith("ssl")}
    if dsn:
        args["dsn"] = "postgresql://?" + urlencode(dsn)
    if settings:
        args["server_settings"] = settings
    kept = {"host", "port", "user", "password", "prepared_statement_cache_size"}
    return set(query) - kept, args


def _system_ssl_context(dsn: Mapping[str, str]) -> Any:
    """libpq's ``sslrootcert=system``: the system's authorities, the host name verified."""
    import ssl

    context = ssl.create_default_context()
    if dsn.get("sslcert"):
        context.load_cert_chain(dsn["sslcert"], dsn.get("sslkey"), dsn.get("sslpassword"))
    return context


def connect_timeout_arguments(url: URL, seconds: float) -> dict[str, Any]:
    """Connect arguments that bound connecting to ``seconds`` on the URL's PostgreSQL
    driver, unless the URL sets ``connect_timeout`` itself."""
    if "connect_timeout" in url.query or "timeout" in url.query:
        return {}
    if url.get_driver_name() == "psycopg":
        return {"connect_timeout": max(1, round(seconds))}  # libpq counts whole seconds
    return {"timeout": seconds}


__all__ = [
    "DRIVER_EXTRAS",
    "PG_PARAMETERS",
    "SUPPORTED_DRIVERS",
    "as_url",
    "asyncpg_arguments",
    "check_pg_parameters",
    "choose_driver",
    "connect_timeout_arguments",
]
